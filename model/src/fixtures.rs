//! Builders of events, records and Host objects for the tests of every crate (feature
//! `fixtures`), so that no test hand-builds a record field by field:
//! `fold_events(&[EventBuilder::new("dc/pdx1/A1").hours(0).build(), ...])`.

use hostledger_schemas::{
    EventKind, HostEvent, HostState, Lifecycle, LockEnd, LockEvent, LockEventKind, Timestamp,
};

use crate::fold::{HostRecord, Position, apply};
use crate::host::{Host, HostSpec, HostStatus};
use crate::names::{labels, object_name};

/// An hour in microseconds.
pub const HOUR: i64 = 3_600_000_000;
/// 2026-01-01T00:00:00Z, where [`EventBuilder::hours`] counts from.
pub const T0: Timestamp = Timestamp(1_767_225_600_000_000);

/// An event of one host; every field has a plain default.
#[derive(Debug, Clone)]
pub struct EventBuilder(HostEvent);

impl EventBuilder {
    /// A `HostChanged` event of `host_id`, in service, observed at [`T0`], from provider `dc`
    /// and source `test`; the host name is the id's last segment.
    pub fn new(host_id: &str) -> Self {
        let name = host_id.rsplit('/').next().unwrap_or(host_id);
        EventBuilder(HostEvent {
            event_id: format!("{host_id}-event"),
            host_id: host_id.to_owned(),
            kind: EventKind::HostChanged,
            provider: "dc".into(),
            source: "test".into(),
            observed_at: T0,
            state: HostState::new(name, Lifecycle::InService, "active"),
            changes: Vec::new(),
        })
    }

    /// The event id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.0.event_id = id.into();
        self
    }

    /// The event kind.
    pub fn kind(mut self, kind: EventKind) -> Self {
        self.0.kind = kind;
        self
    }

    /// The lifecycle phase (and a provider status naming it).
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.0.state.lifecycle = lifecycle;
        self.0.state.provider_status = lifecycle.as_str().to_owned();
        self
    }

    /// The provider's status word.
    pub fn provider_status(mut self, status: &str) -> Self {
        self.0.state.provider_status = status.to_owned();
        self
    }

    /// Observed at `t`.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.0.observed_at = t;
        self
    }

    /// Observed `hours` after [`T0`].
    pub fn hours(self, hours: i64) -> Self {
        self.at(Timestamp(T0.0 + hours * HOUR))
    }

    /// The host name.
    pub fn name(mut self, name: &str) -> Self {
        self.0.state.name = name.to_owned();
        self
    }

    /// The role.
    pub fn role(mut self, role: Option<&str>) -> Self {
        self.0.state.role = role.map(str::to_owned);
        self
    }

    /// The region.
    pub fn region(mut self, region: &str) -> Self {
        self.0.state.region = Some(region.to_owned());
        self
    }

    /// The addresses.
    pub fn addresses(mut self, addresses: &[&str]) -> Self {
        self.0.state.addresses = addresses.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// One attribute.
    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.0
            .state
            .attributes
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Changes the state in any other way.
    pub fn state(mut self, f: impl FnOnce(&mut HostState)) -> Self {
        f(&mut self.0.state);
        self
    }

    /// The event.
    pub fn build(self) -> HostEvent {
        self.0
    }
}

/// A lock fact of `host_id`: lock `lock_id` taken (or, for `HostUnlocked`, released) at
/// `at`, by holder `ansible-42` (user `bob`) for `kernel`, recorded by `test`.
pub fn lock_event(host_id: &str, kind: LockEventKind, lock_id: &str, at: Timestamp) -> LockEvent {
    LockEvent {
        event_id: LockEvent::id_for(lock_id, kind),
        host_id: host_id.to_owned(),
        kind,
        lock_id: lock_id.to_owned(),
        at,
        holder: "ansible-42".into(),
        user: "bob".into(),
        reason: "kernel".into(),
        ttl_seconds: 600,
        ended: (kind == LockEventKind::HostUnlocked).then_some(LockEnd::Released),
        source: "test".into(),
    }
}

/// Offset `offset` of partition 0.
pub fn position(offset: i64) -> Position {
    Position {
        partition: 0,
        offset,
    }
}

/// Folds events of one host at offsets 0, 1, 2, ... of partition 0.
///
/// # Panics
/// When `events` is empty.
pub fn fold_events(events: &[HostEvent]) -> HostRecord {
    let mut record = None;
    for (i, e) in events.iter().enumerate() {
        apply(&mut record, e, position(i as i64));
    }
    record.expect("fold_events needs at least one event")
}

/// The Host object the projector would write for `record`: its name, labels and status.
pub fn host_object(record: &HostRecord) -> Host {
    let mut host = Host::new(&object_name(&record.host_id), HostSpec::default());
    host.metadata.labels = Some(labels(record));
    host.status = Some(HostStatus::from_record(record));
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fold_into_records_and_objects() {
        let events = [
            EventBuilder::new("dc/pdx1/A1")
                .hours(0)
                .role(Some("log"))
                .build(),
            EventBuilder::new("dc/pdx1/A1")
                .lifecycle(Lifecycle::OutOfService)
                .hours(2)
                .build(),
        ];
        let record = fold_events(&events);
        assert_eq!(record.closed_in_service_micros, 2 * HOUR);
        assert_eq!(record.state.name, "A1");
        let host = host_object(&record);
        let name = host.metadata.name.clone().unwrap_or_default();
        assert!(name.starts_with("dc.pdx1.a1-"), "{name}");
        assert_eq!(
            host.metadata.labels.as_ref().map(|l| l["phase"].as_str()),
            Some("OutOfService")
        );
    }
}

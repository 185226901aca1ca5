//! The events themselves, as `hostledger events` shows them: which ones (by time, host, kind
//! and the labels of the event's state) and how they read, as JSON lines or table rows, poison
//! messages included with their reason.

use hostledger_kafka::{Item, ReadScope};
use hostledger_model::Position;
use hostledger_model::names::state_labels;
use hostledger_model::time::{exact_time, formatted};
use hostledger_schemas::{EventKind, HostEvent, LockEvent, Timestamp};
use serde_json::{Value, json};

use crate::history::{describe_field_changes, describe_state, is_named};
use hostledger_model::selector::LabelSelector;

/// Which events to show.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events observed at or after this time.
    pub since: Option<Timestamp>,
    /// Only events observed at or before this time.
    pub until: Option<Timestamp>,
    /// Only events of these kinds (all when empty).
    pub kinds: Vec<EventKind>,
    /// Only one host's events: its id, object name or host name.
    pub host: Option<String>,
    /// Only events whose state has these labels (the labels the projector would set on the
    /// host after the event: provider, region, role, team, phase).
    pub selector: LabelSelector,
}

impl EventFilter {
    /// What to read from the log: for a host given by its id, only its key (its partition).
    /// A host name or object name needs the whole log, since names are not keys.
    pub fn scope(&self, follow: bool) -> ReadScope {
        ReadScope {
            key: self.host.as_ref().filter(|h| h.contains('/')).cloned(),
            follow,
            ..ReadScope::default()
        }
    }

    /// Whether an event is one to show.
    pub fn matches(&self, event: &HostEvent) -> bool {
        self.since.is_none_or(|t| event.observed_at >= t)
            && self.until.is_none_or(|t| event.observed_at <= t)
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self
                .host
                .as_deref()
                .is_none_or(|h| is_named(&event.host_id, &event.state.name, h))
            && (self.selector.is_empty()
                || self.selector.matches(&state_labels(
                    &event.provider,
                    event.state.lifecycle,
                    &event.state,
                )))
    }

    /// Whether a lock fact is one to show: in the time range, of the host asked for (by id
    /// or object name: a lock fact carries no host name), and only when no kind or label
    /// filter is given (a lock fact has neither an event kind nor a state).
    pub fn matches_lock(&self, event: &LockEvent) -> bool {
        self.since.is_none_or(|t| event.at >= t)
            && self.until.is_none_or(|t| event.at <= t)
            && self.kinds.is_empty()
            && self.selector.is_empty()
            && self
                .host
                .as_deref()
                .is_none_or(|h| is_named(&event.host_id, "", h))
    }

    /// Whether a message that is not an event is one to show: always, unless only one host's
    /// events are asked for and its key is another host's. (Its time, kind and state are
    /// unknown, so those filters cannot rule it out.)
    pub fn shows_poison(&self, key: Option<&[u8]>) -> bool {
        match (&self.host, key) {
            (Some(host), Some(key)) if host.contains('/') => key == host.as_bytes(),
            _ => true,
        }
    }

    /// Whether an item read from the log is one to show.
    pub fn shows(&self, item: &Item) -> bool {
        match item {
            Item::Event(event, _) => self.matches(event),
            Item::Lock(event, _) => self.matches_lock(event),
            Item::Poison { key, .. } => self.shows_poison(key.as_deref()),
        }
    }
}

/// The event in the schema's field names (docs/events.md), with `observed_at` as RFC 3339.
pub fn event_json(e: &HostEvent) -> Value {
    let s = &e.state;
    json!({
        "event_id": e.event_id,
        "host_id": e.host_id,
        "kind": e.kind.as_str(),
        "provider": e.provider,
        "source": e.source,
        "observed_at": exact_time(e.observed_at),
        "state": {
            "name": s.name,
            "lifecycle": s.lifecycle.as_str(),
            "provider_status": s.provider_status,
            "region": s.region,
            "zone": s.zone,
            "role": s.role,
            "team": s.team,
            "addresses": s.addresses,
            "machine_type": s.machine_type,
            "attributes": s.attributes,
        },
        "changes": e.changes.iter().map(|c| json!({"field": c.field, "old": c.old, "new": c.new})).collect::<Vec<_>>(),
    })
}

/// The lock fact in the schema's field names (docs/events.md), with `at` as RFC 3339.
pub fn lock_json(e: &LockEvent) -> Value {
    json!({
        "event_id": e.event_id,
        "host_id": e.host_id,
        "kind": e.kind.as_str(),
        "lock_id": e.lock_id,
        "at": exact_time(e.at),
        "holder": e.holder,
        "user": e.user,
        "reason": e.reason,
        "ttl_seconds": e.ttl_seconds,
        "ended": e.ended.map(|x| x.as_str()),
        "source": e.source,
    })
}

/// One JSON line: `{"partition", "offset", "event"}`, `{"partition", "offset", "lock"}` for a
/// lock fact, or, for a message that is not an event,
/// `{"partition", "offset", "key", "poison": REASON}`.
pub fn json_line(item: &Item) -> String {
    let Position { partition, offset } = item.position();
    let value = match item {
        Item::Event(event, _) => json!({
            "partition": partition,
            "offset": offset,
            "event": event_json(event),
        }),
        Item::Lock(event, _) => json!({
            "partition": partition,
            "offset": offset,
            "lock": lock_json(event),
        }),
        Item::Poison { reason, key, .. } => json!({
            "partition": partition,
            "offset": offset,
            "key": key.as_deref().map(String::from_utf8_lossy),
            "poison": reason,
        }),
    };
    value.to_string()
}

/// Table columns, each but the last padded to a fixed width so rows line up as they stream.
const COLUMNS: [(&str, usize); 6] = [
    ("OBSERVED AT (UTC)", 19),
    ("POSITION", 10),
    ("HOST", 28),
    ("EVENT", 20),
    ("PHASE", 12),
    ("WHAT CHANGED", 0),
];

fn line(cells: [&str; 6]) -> String {
    let mut out = String::new();
    for ((cell, (_, width)), i) in cells.iter().zip(COLUMNS).zip(0..) {
        if i > 0 {
            out.push_str("  ");
        }
        out.push_str(&format!("{cell:<width$}"));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The table's header line.
pub fn table_header() -> String {
    line(COLUMNS.map(|(name, _)| name))
}

/// One table row: a discovered host's whole state, a change's fields, or a poison message's
/// reason.
pub fn table_row(item: &Item) -> String {
    let Position { partition, offset } = item.position();
    let position = format!("{partition}/{offset}");
    match item {
        Item::Event(e, _) => {
            let what = match e.kind {
                EventKind::HostDiscovered => describe_state(&e.state),
                _ => describe_field_changes(&e.changes),
            };
            line([
                &formatted(e.observed_at, "%Y-%m-%d %H:%M:%S"),
                &position,
                &e.host_id,
                e.kind.as_str(),
                e.state.lifecycle.as_str(),
                &what,
            ])
        }
        Item::Lock(e, _) => {
            let by = format!("{} (user {})", e.holder, e.user);
            let what = match e.ended {
                None => format!("locked by {by} for {} s: {}", e.ttl_seconds, e.reason),
                end => format!(
                    "lock of {by} {}",
                    hostledger_model::fold::lock_end_word(end)
                ),
            };
            line([
                &formatted(e.at, "%Y-%m-%d %H:%M:%S"),
                &position,
                &e.host_id,
                e.kind.as_str(),
                "-",
                &what,
            ])
        }
        Item::Poison { reason, key, .. } => {
            let key = key
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            line(["-", &position, &key, "(poison)", "-", reason])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_schemas::{FieldChange, HostState, Lifecycle};

    fn event(kind: EventKind, role: &str, micros: i64) -> HostEvent {
        let mut state = HostState::new("web-1", Lifecycle::InService, "active");
        state.role = Some(role.into());
        state.region = Some("pdx1".into());
        HostEvent {
            event_id: format!("e{micros}"),
            host_id: "dc/pdx1/A1".into(),
            kind,
            provider: "dc".into(),
            source: "s".into(),
            observed_at: Timestamp(1_767_225_600_000_000 + micros),
            state,
            changes: vec![FieldChange {
                field: "role".into(),
                old: Some("db".into()),
                new: Some(role.into()),
            }],
        }
    }

    fn at(p: i32, o: i64) -> Position {
        Position {
            partition: p,
            offset: o,
        }
    }

    #[test]
    fn filters_by_time_kind_host_and_state_labels() {
        let e = event(EventKind::HostChanged, "web", 10);
        assert!(EventFilter::default().matches(&e));
        let since = |t: i64| EventFilter {
            since: Some(Timestamp(1_767_225_600_000_000 + t)),
            ..Default::default()
        };
        assert!(since(10).matches(&e));
        assert!(!since(11).matches(&e));
        let until = EventFilter {
            until: Some(Timestamp(1_767_225_600_000_000 + 9)),
            ..Default::default()
        };
        assert!(!until.matches(&e));
        let kinds = |k: Vec<EventKind>| EventFilter {
            kinds: k,
            ..Default::default()
        };
        assert!(kinds(vec![EventKind::HostRetired, EventKind::HostChanged]).matches(&e));
        assert!(!kinds(vec![EventKind::HostRetired]).matches(&e));
        let host = |h: &str| EventFilter {
            host: Some(h.into()),
            ..Default::default()
        };
        assert!(host("dc/pdx1/A1").matches(&e));
        assert!(host("web-1").matches(&e));
        assert!(host(&hostledger_model::names::object_name("dc/pdx1/A1")).matches(&e));
        assert!(!host("dc/pdx1/B2").matches(&e));
        let selector = |s: &str| EventFilter {
            selector: LabelSelector::parse(s).expect("selector"),
            ..Default::default()
        };
        assert!(selector("role=web,provider=dc,phase=InService").matches(&e));
        assert!(!selector("role=db").matches(&e));
    }

    #[test]
    fn a_host_id_reads_only_its_key_and_a_name_reads_everything() {
        let by_id = EventFilter {
            host: Some("dc/pdx1/A1".into()),
            ..Default::default()
        };
        assert_eq!(by_id.scope(false).key.as_deref(), Some("dc/pdx1/A1"));
        assert!(by_id.scope(true).follow);
        assert!(by_id.shows_poison(Some(b"dc/pdx1/A1")));
        assert!(!by_id.shows_poison(Some(b"dc/pdx1/B2")));
        let by_name = EventFilter {
            host: Some("web-1".into()),
            ..Default::default()
        };
        assert_eq!(by_name.scope(false).key, None);
        assert!(by_name.shows_poison(Some(b"dc/pdx1/B2")));
    }

    #[test]
    fn json_lines_carry_the_schema_names_and_poison_its_reason() {
        let item = Item::Event(Box::new(event(EventKind::HostChanged, "web", 0)), at(2, 7));
        let v: Value = serde_json::from_str(&json_line(&item)).expect("JSON");
        assert_eq!(v["partition"], 2);
        assert_eq!(v["offset"], 7);
        assert_eq!(v["event"]["kind"], "HostChanged");
        assert_eq!(v["event"]["observed_at"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(v["event"]["state"]["lifecycle"], "InService");
        assert_eq!(v["event"]["state"]["zone"], Value::Null);
        assert_eq!(v["event"]["changes"][0]["old"], "db");
        let poison = Item::Poison {
            reason: "undecodable: bad marker".into(),
            key: Some(b"dc/x".to_vec()),
            payload: None,
            position: at(0, 3),
        };
        let v: Value = serde_json::from_str(&json_line(&poison)).expect("JSON");
        assert_eq!(v["poison"], "undecodable: bad marker");
        assert_eq!(v["key"], "dc/x");
        assert!(v.get("event").is_none());
    }

    #[test]
    fn table_rows_line_up_under_the_header() {
        let header = table_header();
        let row = table_row(&Item::Event(
            Box::new(event(EventKind::HostChanged, "web", 0)),
            at(1, 42),
        ));
        assert_eq!(header.find("POSITION"), row.find("1/42"));
        assert_eq!(header.find("WHAT CHANGED"), row.find("role: db → web"));
        assert!(row.starts_with("2026-01-01 00:00:00  1/42"), "{row}");
        let discovered = table_row(&Item::Event(
            Box::new(event(EventKind::HostDiscovered, "web", 0)),
            at(1, 0),
        ));
        assert!(
            discovered.contains("hostname=web-1 status=active region=pdx1 role=web"),
            "{discovered}"
        );
        let poison = table_row(&Item::Poison {
            reason: "no marker".into(),
            key: None,
            payload: None,
            position: at(0, 3),
        });
        assert!(
            poison.contains("(poison)") && poison.ends_with("no marker\n"),
            "{poison}"
        );
    }
}

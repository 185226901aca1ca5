//! One host's history: every event with what changed, from its HostHistory objects or from
//! the log (folded the way the projector folds it to write those objects), and how it reads.

use hostledger_k8s::{Histories, K8sError, list_hosts};
use hostledger_kafka::{KafkaClients, ReadScope};
use hostledger_model::history::{fold_entry, fold_lock_existing};
use hostledger_model::names::object_name;
use hostledger_model::time::{exact_time, formatted};
use hostledger_model::{HistoryEntry, Host, HostRecord};
use hostledger_schemas::{Fact, FieldChange, HostState, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams};

use crate::source::{InventoryError, for_each_event_in};
use crate::table::{aligned, csv};

/// A host's events, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HostHistoryView {
    /// The host's id.
    pub host_id: String,
    /// Its events.
    pub entries: Vec<HistoryEntry>,
}

impl HostHistoryView {
    /// Only the events observed at or before `as_of`.
    pub fn until(mut self, as_of: Option<Timestamp>) -> Self {
        if let Some(t) = as_of {
            self.entries.retain(|e| e.observed_at <= t);
        }
        self
    }

    /// One row per event, with its time written by `time`.
    fn rows(&self, time: impl Fn(Timestamp) -> String) -> Vec<Vec<String>> {
        self.entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    time(e.observed_at),
                    e.kind.to_string(),
                    e.phase.to_string(),
                    describe_changes(e),
                ]
            })
            .collect()
    }

    /// `SEQ OBSERVED AT EVENT PHASE WHAT CHANGED`, headed by the host id, with a count.
    pub fn table(&self) -> String {
        let rows = self.rows(|t| formatted(t, "%Y-%m-%d %H:%M:%S"));
        let mut out = format!("{}\n", self.host_id);
        out.push_str(&aligned(
            &["SEQ", "OBSERVED AT (UTC)", "EVENT", "PHASE", "WHAT CHANGED"],
            &rows,
        ));
        out.push_str(&format!("{} events\n", rows.len()));
        out
    }

    /// One line per event, exact times.
    pub fn csv(&self) -> String {
        let rows = self.rows(exact_time);
        csv(&["seq", "observed_at", "event", "phase", "changes"], &rows)
    }
}

/// `role: web → db; attributes.env: (none) → prod`, or the initial state of a first event.
pub fn describe_changes(e: &HistoryEntry) -> String {
    if let Some(lock) = &e.lock {
        let by = format!("{} (user {})", lock.holder, lock.user);
        return match lock.ended {
            None => format!("locked by {by}: {}", lock.reason),
            Some(end) => format!(
                "lock of {by} {}: {}",
                hostledger_model::fold::lock_end_word(Some(end)),
                lock.reason
            ),
        };
    }
    match &e.state {
        Some(s) => describe_state(s),
        None => describe_field_changes(&e.changes),
    }
}

/// A whole state on one line: `hostname=web-1 status=active region=pdx1 …`.
pub fn describe_state(s: &HostState) -> String {
    let mut parts = vec![
        format!("hostname={}", s.name),
        format!("status={}", s.provider_status),
    ];
    for (k, v) in [
        ("region", &s.region),
        ("zone", &s.zone),
        ("role", &s.role),
        ("team", &s.team),
        ("type", &s.machine_type),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    if !s.addresses.is_empty() {
        parts.push(format!("addresses={}", s.addresses.join(",")));
    }
    parts.extend(s.attributes.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(" ")
}

/// `role: web → db; attributes.env: (none) → prod`.
pub fn describe_field_changes(changes: &[FieldChange]) -> String {
    if changes.is_empty() {
        return "(nothing; observed again)".into();
    }
    changes
        .iter()
        .map(|c| {
            format!(
                "{}: {} → {}",
                c.field,
                c.old.as_deref().unwrap_or("(none)"),
                c.new.as_deref().unwrap_or("(none)")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a host is the one asked for by id, object name or host name.
pub(crate) fn is_named(host_id: &str, hostname: &str, wanted: &str) -> bool {
    host_id == wanted || object_name(host_id) == wanted || hostname == wanted
}

/// Finds a Host by id, object name or host name; returns its host id and event count.
pub async fn find_host(
    client: &Client,
    namespace: &str,
    wanted: &str,
) -> Result<(String, u64), InventoryError> {
    let api: Api<Host> = Api::namespaced(client.clone(), namespace);
    let by_name = if wanted.contains('/') {
        object_name(wanted)
    } else {
        wanted.to_owned()
    };
    let found = api
        .get_opt(&by_name)
        .await
        .map_err(|e| K8sError::in_namespace(format!("read Host {by_name}"), namespace, e))?;
    if let Some(status) = found.and_then(|h| h.status) {
        return Ok((
            status.host_id,
            u64::try_from(status.event_count).unwrap_or(0),
        ));
    }
    let all = list_hosts(client.clone(), namespace, ListParams::default()).await?;
    let mut matches: Vec<HostRecord> = all
        .into_iter()
        .map(|h| h.record)
        .filter(|r| is_named(&r.host_id, &r.state.name, wanted))
        .collect();
    match matches.len() {
        0 => Err(InventoryError::UnknownHost {
            host: wanted.to_owned(),
            place: format!("namespace {namespace}"),
        }),
        1 => {
            let r = matches.remove(0);
            Ok((r.host_id, r.event_count))
        }
        _ => Err(InventoryError::AmbiguousHost {
            host: wanted.to_owned(),
            ids: matches.into_iter().map(|r| r.host_id).collect(),
        }),
    }
}

/// A host's history from the objects (id, object name or host name): found among the Hosts,
/// read from the history API (or the HostHistory chunks of a namespace that keeps them).
pub async fn from_objects(
    client: &Client,
    namespace: &str,
    wanted: &str,
) -> Result<HostHistoryView, InventoryError> {
    let (host_id, event_count) = find_host(client, namespace, wanted).await?;
    let mut entries = Histories::of(client, namespace)
        .await?
        .read(&host_id, event_count)
        .await?;
    // Entries beyond the Host's count belong to a write still in progress.
    entries.truncate(usize::try_from(event_count).unwrap_or(0));
    Ok(HostHistoryView { host_id, entries })
}

/// A host's history from the log (id, object name or host name), folded as the projector
/// folds it.
pub async fn from_log(
    kafka: &KafkaClients,
    wanted: &str,
    place: &str,
) -> Result<HostHistoryView, InventoryError> {
    let mut record: Option<HostRecord> = None;
    let mut entries = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    // A host id is the key of its events: only its partition needs reading.
    let scope = ReadScope {
        key: wanted.contains('/').then(|| wanted.to_owned()),
        ..ReadScope::default()
    };
    for_each_event_in(kafka, scope, |fact, position| match fact {
        Fact::Host(event) => {
            if !is_named(&event.host_id, &event.state.name, wanted) {
                return;
            }
            ids.insert(event.host_id.clone());
            entries.extend(fold_entry(&mut record, event, position));
        }
        Fact::Lock(event) => {
            if let Some(r) = record.as_mut().filter(|r| r.host_id == event.host_id) {
                entries.extend(fold_lock_existing(r, event, position));
            }
        }
    })
    .await?;
    if ids.len() > 1 {
        return Err(InventoryError::AmbiguousHost {
            host: wanted.to_owned(),
            ids: ids.into_iter().collect(),
        });
    }
    match record {
        Some(r) => Ok(HostHistoryView {
            host_id: r.host_id,
            entries,
        }),
        None => Err(InventoryError::UnknownHost {
            host: wanted.to_owned(),
            place: place.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::Position;
    use hostledger_schemas::{EventKind, HostEvent, HostState, Lifecycle};

    fn event(n: i64, lifecycle: Lifecycle, role: &str) -> HostEvent {
        let mut state = HostState::new("web-1", lifecycle, lifecycle.as_str());
        state.role = Some(role.into());
        HostEvent {
            event_id: format!("e{n}"),
            host_id: "dc/pdx1/A1".into(),
            kind: EventKind::HostChanged,
            provider: "dc".into(),
            source: "s".into(),
            observed_at: Timestamp(1_767_225_600_000_000 + n * 3_600_000_000),
            state,
            changes: Vec::new(),
        }
    }

    #[test]
    fn tables_say_what_changed() {
        let mut record = None;
        let entries: Vec<_> = [
            event(0, Lifecycle::InService, "web"),
            event(1, Lifecycle::InService, "db"),
            event(2, Lifecycle::InService, "db"),
        ]
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let at = Position {
                partition: 0,
                offset: i as i64,
            };
            fold_entry(&mut record, e, at)
        })
        .collect();
        let view = HostHistoryView {
            host_id: "dc/pdx1/A1".into(),
            entries,
        };
        let table = view.table();
        assert!(
            table.contains("hostname=web-1 status=InService role=web"),
            "{table}"
        );
        assert!(table.contains("role: web → db"), "{table}");
        assert!(table.contains("(nothing; observed again)"), "{table}");
        assert!(table.ends_with("3 events\n"), "{table}");
        assert!(table.contains("2026-01-01 01:00:00"), "{table}");
        let csv = view.clone().csv();
        assert!(csv.starts_with("seq,observed_at,event,phase,changes\n1,2026-01-01T00:00:00.000000Z,HostChanged,InService,"), "{csv}");
        let early = view.until(Some(Timestamp(1_767_225_600_000_000)));
        assert_eq!(early.entries.len(), 1);
    }
}

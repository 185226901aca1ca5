//! Full history of every host, outside the Host object: append-only `HostHistory` objects,
//! one chunk per [`CHUNK_EVENTS`] events of a host, labelled with the host.
//!
//! Entries are keyed by the event's sequence number within its host (1, 2, 3, ... as the fold
//! counts them), and written with JSON merge patches, which add keys and never remove them.
//! Writing the same entries twice — after a crash between the history write and the Host
//! write, say — changes nothing, so the history never holds an event twice.

use std::collections::BTreeMap;

use hostledger_schemas::{
    EventKind, FieldChange, HostEvent, HostState, Lifecycle, LockEnd, LockEvent, LockEventKind,
    Timestamp,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fold::{HostRecord, Outcome, Position, apply_lock, apply_to};

/// Events per HostHistory chunk. An entry is a few hundred bytes, so a chunk stays far below
/// etcd's 1.5 MiB request limit.
pub const CHUNK_EVENTS: u64 = 500;

/// What a history entry records: a host event's kind, or a lock fact's.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// See [`EventKind::HostDiscovered`].
    HostDiscovered,
    /// See [`EventKind::HostChanged`].
    HostChanged,
    /// See [`EventKind::HostLifecycleChanged`].
    HostLifecycleChanged,
    /// See [`EventKind::HostWentMissing`].
    HostWentMissing,
    /// See [`EventKind::HostReturned`].
    HostReturned,
    /// See [`EventKind::HostRetired`].
    HostRetired,
    /// The host was locked.
    HostLocked,
    /// The host's lock ended.
    HostUnlocked,
}

impl EntryKind {
    const ALL: [EntryKind; 8] = [
        EntryKind::HostDiscovered,
        EntryKind::HostChanged,
        EntryKind::HostLifecycleChanged,
        EntryKind::HostWentMissing,
        EntryKind::HostReturned,
        EntryKind::HostRetired,
        EntryKind::HostLocked,
        EntryKind::HostUnlocked,
    ];

    /// The symbol (the event kind's).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::HostLocked => LockEventKind::HostLocked.as_str(),
            EntryKind::HostUnlocked => LockEventKind::HostUnlocked.as_str(),
            other => other.host().map_or("", EventKind::as_str),
        }
    }

    /// The lock fact kind, if it is one.
    pub fn lock(self) -> Option<LockEventKind> {
        match self {
            EntryKind::HostLocked => Some(LockEventKind::HostLocked),
            EntryKind::HostUnlocked => Some(LockEventKind::HostUnlocked),
            _ => None,
        }
    }

    /// The host event kind, if it is one.
    pub fn host(self) -> Option<EventKind> {
        Some(match self {
            EntryKind::HostDiscovered => EventKind::HostDiscovered,
            EntryKind::HostChanged => EventKind::HostChanged,
            EntryKind::HostLifecycleChanged => EventKind::HostLifecycleChanged,
            EntryKind::HostWentMissing => EventKind::HostWentMissing,
            EntryKind::HostReturned => EventKind::HostReturned,
            EntryKind::HostRetired => EventKind::HostRetired,
            EntryKind::HostLocked | EntryKind::HostUnlocked => return None,
        })
    }
}

impl From<EventKind> for EntryKind {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::HostDiscovered => EntryKind::HostDiscovered,
            EventKind::HostChanged => EntryKind::HostChanged,
            EventKind::HostLifecycleChanged => EntryKind::HostLifecycleChanged,
            EventKind::HostWentMissing => EntryKind::HostWentMissing,
            EventKind::HostReturned => EntryKind::HostReturned,
            EventKind::HostRetired => EntryKind::HostRetired,
        }
    }
}

impl From<LockEventKind> for EntryKind {
    fn from(kind: LockEventKind) -> Self {
        match kind {
            LockEventKind::HostLocked => EntryKind::HostLocked,
            LockEventKind::HostUnlocked => EntryKind::HostUnlocked,
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JsonSchema for EntryKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EntryKind".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let symbols: Vec<&str> = EntryKind::ALL.iter().map(|k| k.as_str()).collect();
        schemars::json_schema!({ "type": "string", "enum": symbols })
    }
}

/// The lock behind a `HostLocked` or `HostUnlocked` entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// The lock's identity.
    pub lock_id: String,
    /// Who held it.
    pub holder: String,
    /// The identity that took it.
    pub user: String,
    /// Why.
    pub reason: String,
    /// Its TTL in seconds.
    pub ttl_seconds: i64,
    /// How it ended (unlock only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<LockEnd>,
}

/// One event in a host's history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Position of the event among this host's events, from 1.
    pub seq: i64,
    /// Event id.
    pub event_id: String,
    /// Event kind.
    pub kind: EntryKind,
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// When the provider state was observed.
    pub observed_at: Timestamp,
    /// Fetcher instance that observed it.
    pub source: String,
    /// Provider kind (dc, aws, exec:NAME).
    #[serde(default)]
    pub provider: String,
    /// Lifecycle phase after the event.
    pub phase: Lifecycle,
    /// What changed relative to the host's previous state, as the projector folded it:
    /// field, old value, new value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// The host's full state after its first event; later states follow from `changes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
    /// The lock, for a lock fact (`observedAt` is when it was taken or ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockEntry>,
}

/// A chunk of one host's history. Append-only; written only by the projector.
// One `printcolumn(...)` per column is kube-derive's syntax; clippy mistakes the repeated
// keys for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "hostledger.dev",
    version = "v1alpha1",
    kind = "HostHistory",
    plural = "hosthistories",
    shortname = "hh",
    category = "hostledger",
    namespaced,
    derive = "PartialEq",
    doc = "A chunk of one host's event history, kept by hostledger outside the Host object.",
    printcolumn(name = "Host-ID", type_ = "string", json_path = ".spec.hostId"),
    printcolumn(name = "Chunk", type_ = "integer", json_path = ".spec.chunk"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HostHistorySpec {
    /// The host.
    pub host_id: String,
    /// Chunk number: entries with seq in (chunk*500, (chunk+1)*500].
    pub chunk: i64,
    /// Events keyed by zero-padded sequence number.
    #[serde(default)]
    pub entries: BTreeMap<String, HistoryEntry>,
}

/// The chunk holding sequence number `seq` (from 1).
pub fn chunk_of(seq: u64) -> u64 {
    (seq.max(1) - 1) / CHUNK_EVENTS
}

/// The map key of sequence number `seq`: zero-padded so keys sort in order.
pub fn entry_key(seq: u64) -> String {
    format!("{seq:010}")
}

/// The history entry of `event`, folded as the host's `seq`-th event into `record`.
/// `changes` is the difference from the host's previous state (`None` for its first event,
/// whose entry records the whole state instead).
pub fn entry(
    event: &HostEvent,
    position: Position,
    seq: u64,
    record: &HostRecord,
    changes: Option<Vec<FieldChange>>,
) -> HistoryEntry {
    let state = changes.is_none().then(|| record.state.clone());
    HistoryEntry {
        seq: i64::try_from(seq).unwrap_or(i64::MAX),
        event_id: event.event_id.clone(),
        kind: event.kind.into(),
        partition: position.partition,
        offset: position.offset,
        observed_at: event.observed_at,
        source: event.source.clone(),
        provider: event.provider.clone(),
        phase: record.phase,
        changes: changes.unwrap_or_default(),
        state,
        lock: None,
    }
}

/// Folds a lock fact into a host's record and returns its history entry; `None` when it
/// changed nothing (already applied, another host's, an unlock of a lock not held).
pub fn fold_lock_existing(
    record: &mut HostRecord,
    event: &LockEvent,
    position: Position,
) -> Option<HistoryEntry> {
    if apply_lock(record, event, position) != Outcome::Applied {
        return None;
    }
    Some(HistoryEntry {
        seq: i64::try_from(record.event_count).unwrap_or(i64::MAX),
        event_id: event.event_id.clone(),
        kind: event.kind.into(),
        partition: position.partition,
        offset: position.offset,
        observed_at: event.at,
        source: event.source.clone(),
        provider: record.provider.clone(),
        phase: record.phase,
        changes: Vec::new(),
        state: None,
        lock: Some(LockEntry {
            lock_id: event.lock_id.clone(),
            holder: event.holder.clone(),
            user: event.user.clone(),
            reason: event.reason.clone(),
            ttl_seconds: event.ttl_seconds,
            ended: event.ended,
        }),
    })
}

/// Folds `event` into a host's record the way the projector does to write its history: the
/// changes from the previous state, then the fold, then the entry. `None` is a host not seen
/// before. Returns `None` when the event changed nothing (already applied, another host's).
pub fn fold_entry(
    record: &mut Option<HostRecord>,
    event: &HostEvent,
    position: Position,
) -> Option<HistoryEntry> {
    match record {
        Some(r) => fold_existing(r, event, position),
        None => {
            let (first, entry) = first_entry(event, position);
            *record = Some(first);
            Some(entry)
        }
    }
}

/// [`fold_entry`] for a host already seen.
pub fn fold_existing(
    record: &mut HostRecord,
    event: &HostEvent,
    position: Position,
) -> Option<HistoryEntry> {
    if record.host_id != event.host_id || record.has_applied(position) {
        return None;
    }
    let changes = event.state.changes_from(&record.state);
    if apply_to(record, event, position) != Outcome::Applied {
        return None;
    }
    Some(entry(
        event,
        position,
        record.event_count,
        record,
        Some(changes),
    ))
}

/// The record and the entry of a host's first event (the entry records the whole state).
pub fn first_entry(event: &HostEvent, position: Position) -> (HostRecord, HistoryEntry) {
    let record = HostRecord::first(event, position);
    let entry = entry(event, position, record.event_count, &record, None);
    (record, entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_keys() {
        assert_eq!(chunk_of(1), 0);
        assert_eq!(chunk_of(CHUNK_EVENTS), 0);
        assert_eq!(chunk_of(CHUNK_EVENTS + 1), 1);
        assert_eq!(entry_key(42), "0000000042");
        assert!(entry_key(9) < entry_key(10));
    }

    #[test]
    fn a_full_chunk_stays_far_below_the_etcd_limit() {
        let entry = HistoryEntry {
            seq: 1,
            event_id: "0190f0e4-8d2c-7a3b-9c1e-5f6a7b8c9d0e".into(),
            kind: EventKind::HostLifecycleChanged.into(),
            partition: 5,
            offset: 123_456_789,
            observed_at: Timestamp::parse_rfc3339("2026-11-27T06:51:48.438334Z").expect("time"),
            source: "aws-prod-us-east-1".into(),
            provider: "aws".into(),
            phase: Lifecycle::OutOfService,
            state: None,
            lock: None,
            changes: (0..4)
                .map(|i| FieldChange {
                    field: format!("attributes.tag-{i}"),
                    old: Some("x".repeat(40)),
                    new: Some("y".repeat(40)),
                })
                .collect(),
        };
        let entries: BTreeMap<String, HistoryEntry> = (1..=CHUNK_EVENTS)
            .map(|s| {
                (
                    entry_key(s),
                    HistoryEntry {
                        seq: s as i64,
                        ..entry.clone()
                    },
                )
            })
            .collect();
        let size = serde_json::to_vec(&entries).expect("serializes").len();
        assert!(
            size < 512 * 1024,
            "a chunk of {CHUNK_EVENTS} entries is {size} bytes"
        );
    }

    /// A HostHistory chunk exactly as the previous version wrote it reads back into the
    /// events behind it, and folding them gives the record of that version's Host status.
    #[test]
    fn reads_history_written_by_the_previous_version() {
        let spec: HostHistorySpec =
            serde_json::from_str(include_str!("../tests/data/host-history.v0.json"))
                .expect("readable");
        let entries: Vec<HistoryEntry> = spec.entries.into_values().collect();
        let events = crate::timeline::events_from_history(&spec.host_id, &entries)
            .expect("entries rebuild events");
        let timeline = crate::timeline::fold_until(&events, None).expect("a host");
        let status =
            crate::host::HostStatus::from_json(include_str!("../tests/data/host-status.v0.json"))
                .expect("readable");
        assert_eq!(timeline.record, status.to_record());
        let json = serde_json::to_value(&entries[1]).expect("serializes");
        assert_eq!(json["kind"], "HostLifecycleChanged");
        assert_eq!(json["observedAt"], "2026-11-20T10:30:00.250000Z");
        assert!(json.get("state").is_none());
    }
}

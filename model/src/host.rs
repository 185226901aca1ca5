//! The `Host` custom resource (group `hostledger.dev`, version `v1alpha1`) and its mapping
//! from and to the fold's [`HostRecord`]. The status carries the host's [`HostState`]
//! flattened, and typed phases, kinds and times, so the generated schema lets the API server
//! refuse a status that is not one.
//!
//! The projector owns the status (through the status subresource) and a fixed set of labels
//! and annotations (through server-side apply with one field manager). The spec belongs to
//! people: the projector never writes it, so nothing a person puts there is clobbered.

use hostledger_schemas::{EventKind, HostState, Lifecycle, Timestamp};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fold::{AppliedEvent, Downtime, HeldLock, HostRecord, Position, ServiceInterval};

/// What people may record about a host. The projector never writes the spec.
// One `printcolumn(...)` per column is kube-derive's syntax; clippy mistakes the repeated
// keys for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "hostledger.dev",
    version = "v1alpha1",
    kind = "Host",
    plural = "hosts",
    shortname = "hl",
    category = "hostledger",
    namespaced,
    status = "HostStatus",
    derive = "PartialEq",
    doc = "A machine in the inventory. Status is projected from the host event log by hostledger; spec is for people.",
    printcolumn(name = "Hostname", type_ = "string", json_path = ".status.hostname"),
    printcolumn(name = "Provider", type_ = "string", json_path = ".status.provider"),
    printcolumn(name = "Region", type_ = "string", json_path = ".status.region"),
    printcolumn(name = "Role", type_ = "string", json_path = ".status.role"),
    printcolumn(
        name = "Team",
        type_ = "string",
        json_path = ".status.team",
        priority = "1"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Phase-Since", type_ = "date", json_path = ".status.phaseSince"),
    printcolumn(
        name = "Drifted",
        type_ = "boolean",
        json_path = ".status.drift.drifted",
        priority = "1"
    ),
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".status.addresses[0]",
        priority = "1"
    ),
    printcolumn(
        name = "Host-ID",
        type_ = "string",
        json_path = ".status.hostId",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HostSpec {
    /// Who to talk to about this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free-form notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// What the host should be (role, team, region, phase, labels), declared by people or
    /// tools; hostledger reports where it differs in `status.drift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<crate::drift::ExpectedHost>,
}

/// The last event applied to this Host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastEventStatus {
    /// Event id.
    pub id: String,
    /// Event kind.
    pub kind: EventKind,
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset in that partition. Events at or below it are skipped.
    pub offset: i64,
    /// When the event's state was observed.
    pub observed_at: Timestamp,
}

/// A position in the events topic.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPosition {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A condition in the Kubernetes style.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostCondition {
    /// Condition type (`InService`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The lifecycle phase behind the status.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: Timestamp,
}

/// What the log says about the host. Written only by the projector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// Stable, provider-scoped host id.
    pub host_id: String,
    /// Provider kind (dc, aws, exec:NAME).
    pub provider: String,
    /// Fetcher instance that observed the last event.
    pub source: String,
    /// The host's state after the last event: hostname, phase, provider status, region, ...
    #[serde(flatten)]
    pub state: HostState,
    /// First time the host was observed.
    pub first_seen_at: Timestamp,
    /// Latest observation folded in.
    pub last_observed_at: Timestamp,
    /// When the current phase began.
    pub phase_since: Timestamp,
    /// Start of the current service interval, while in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_service_since: Option<Timestamp>,
    /// Time in service over all closed intervals, in microseconds. Total time in service now
    /// is this plus (now - inServiceSince) while in service.
    pub closed_in_service_micros: i64,
    /// The most recent service intervals, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_intervals: Vec<ServiceInterval>,
    /// Older intervals not listed above (still counted in the total; see HostHistory).
    #[serde(default)]
    pub service_intervals_dropped: i64,
    /// Number of events applied.
    pub event_count: i64,
    /// The last event applied.
    pub last_event: LastEventStatus,
    /// Conditions (`InService`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<HostCondition>,
    /// The lock the host holds as the log records it (its HostLocked fact, not yet ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<HeldLock>,
    /// Time out of service (OutOfService or Missing), planned (while locked) and unplanned.
    /// Absent on Hosts written before lock facts: counted from `phaseSince` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,
    /// Where the last lock fact applied sits in the log (lock facts at or below it, like
    /// events at or below `lastEvent`, are skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lock_event: Option<LogPosition>,
    /// Whether the host is what `spec.expected` says; written by the projector's drift
    /// check under its own field manager, never with the rest of the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::DriftStatus>,
}

/// A Host status that cannot be read (written by hand, or by an older version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Host status: {0}")]
pub struct StatusError(pub String);

impl HostStatus {
    /// The status that shows `record`.
    pub fn from_record(r: &HostRecord) -> Self {
        let in_service = r.phase == Lifecycle::InService;
        HostStatus {
            host_id: r.host_id.clone(),
            provider: r.provider.clone(),
            source: r.source.clone(),
            state: r.state.clone(),
            first_seen_at: r.first_seen_at,
            last_observed_at: r.last_observed_at,
            phase_since: r.phase_since,
            in_service_since: r.in_service_since,
            closed_in_service_micros: r.closed_in_service_micros,
            service_intervals: r.intervals.clone(),
            service_intervals_dropped: i64::try_from(r.intervals_dropped).unwrap_or(i64::MAX),
            event_count: i64::try_from(r.event_count).unwrap_or(i64::MAX),
            last_event: LastEventStatus {
                id: r.last_event.event_id.clone(),
                kind: r.last_event.kind,
                partition: r.last_event.position.partition,
                offset: r.last_event.position.offset,
                observed_at: r.last_event.observed_at,
            },
            conditions: vec![HostCondition {
                type_: "InService".into(),
                status: if in_service { "True" } else { "False" }.into(),
                reason: r.phase.to_string(),
                message: format!("provider status {:?}", r.state.provider_status),
                last_transition_time: r.phase_since,
            }],
            drift: None,
            lock: r.lock.clone(),
            downtime: Some(r.downtime),
            last_lock_event: r.last_lock_position.map(|p| LogPosition {
                partition: p.partition,
                offset: p.offset,
            }),
        }
    }

    /// The record back, so the projector can resume folding from a Host.
    pub fn to_record(&self) -> HostRecord {
        HostRecord {
            host_id: self.host_id.clone(),
            provider: self.provider.clone(),
            source: self.source.clone(),
            state: self.state.clone(),
            phase: self.state.lifecycle,
            first_seen_at: self.first_seen_at,
            last_observed_at: self.last_observed_at,
            phase_since: self.phase_since,
            in_service_since: self.in_service_since,
            closed_in_service_micros: self.closed_in_service_micros,
            intervals: self.service_intervals.clone(),
            intervals_dropped: u64::try_from(self.service_intervals_dropped).unwrap_or(0),
            event_count: u64::try_from(self.event_count).unwrap_or(0),
            last_event: AppliedEvent {
                event_id: self.last_event.id.clone(),
                kind: self.last_event.kind,
                position: Position {
                    partition: self.last_event.partition,
                    offset: self.last_event.offset,
                },
                observed_at: self.last_event.observed_at,
            },
            lock: self.lock.clone(),
            downtime: self.downtime.unwrap_or(Downtime {
                planned_micros: 0,
                unplanned_micros: 0,
                since: self.phase_since,
            }),
            last_lock_position: self.last_lock_event.map(|p| Position {
                partition: p.partition,
                offset: p.offset,
            }),
        }
    }

    /// Reads a status from its JSON text, saying which field is wrong when one is.
    pub fn from_json(text: &str) -> Result<Self, StatusError> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| StatusError(format!("{}: {}", e.path(), e.inner())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::fold;
    use crate::names::labels;
    use hostledger_schemas::HostEvent;

    #[test]
    fn status_round_trips_to_record() {
        let mut state = HostState::new("web-1", Lifecycle::InService, "running");
        state.region = Some("pdx1".into());
        state.attributes.insert("rack".into(), "A1".into());
        let event = HostEvent {
            event_id: "e1".into(),
            host_id: "dc/pdx1/S1".into(),
            kind: EventKind::HostDiscovered,
            provider: "dc".into(),
            source: "src".into(),
            observed_at: Timestamp(1_767_225_600_123_456),
            state: state.clone(),
            changes: vec![],
        };
        let mut record = fold(
            None,
            &event,
            Position {
                partition: 2,
                offset: 7,
            },
        );
        let mut stopped = event.clone();
        stopped.event_id = "e2".into();
        stopped.state.lifecycle = Lifecycle::OutOfService;
        stopped.observed_at = Timestamp(1_767_229_200_654_321);
        record = fold(
            record,
            &stopped,
            Position {
                partition: 2,
                offset: 9,
            },
        );
        let record = record.expect("record");
        let status = HostStatus::from_record(&record);
        assert_eq!(status.to_record(), record);
        let text = serde_json::to_string(&status).expect("serializes");
        assert_eq!(HostStatus::from_json(&text).expect("readable"), status);
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(json["lastEvent"]["offset"], 9);
        assert_eq!(json["phaseSince"], "2026-01-01T01:00:00.654321Z");
        assert_eq!(labels(&record)["phase"], "OutOfService");
        assert!(!labels(&record).contains_key("role"));
    }

    /// The Host object must stay small however long its history: after 10,000 events of
    /// one host (with the largest realistic attributes), the status is far below 10 KiB.
    #[test]
    fn host_stays_small_after_ten_thousand_events() {
        let mut record = None;
        for n in 0..10_000i64 {
            let lifecycle = if n % 2 == 0 {
                Lifecycle::InService
            } else {
                Lifecycle::OutOfService
            };
            let mut state = HostState::new("db-pdx1-042.prod.example.com", lifecycle, "running");
            state.region = Some("us-east-1".into());
            state.zone = Some("us-east-1c".into());
            state.role = Some("database".into());
            state.team = Some("data-platform".into());
            state.addresses = vec!["10.20.30.40".into(), "2001:db8::2a".into()];
            state.machine_type = Some("r6i.4xlarge".into());
            for k in 0..20 {
                state
                    .attributes
                    .insert(format!("tag:example.com/key-{k}"), format!("value-{k}-{n}"));
            }
            let event = HostEvent {
                event_id: format!("0190f0e4-8d2c-7a3b-9c1e-{n:012}"),
                host_id: "aws/123456789012/us-east-1/i-0123456789abcdef0".into(),
                kind: EventKind::HostLifecycleChanged,
                provider: "aws".into(),
                source: "aws-prod".into(),
                observed_at: Timestamp(1_767_225_600_000_000 + n * 60_000_000),
                state,
                changes: vec![],
            };
            record = fold(
                record,
                &event,
                Position {
                    partition: 3,
                    offset: n,
                },
            );
        }
        let record = record.expect("record");
        assert_eq!(record.event_count, 10_000);
        let size = serde_json::to_vec(&HostStatus::from_record(&record))
            .expect("serializes")
            .len();
        assert!(
            size <= 8 * 1024,
            "status is {size} bytes after 10,000 events"
        );
    }

    #[test]
    fn unreadable_status_is_an_error_not_a_panic() {
        let status = HostStatus::from_record(
            &fold(
                None,
                &HostEvent {
                    event_id: "e".into(),
                    host_id: "h".into(),
                    kind: EventKind::HostDiscovered,
                    provider: "dc".into(),
                    source: "s".into(),
                    observed_at: Timestamp(1_767_225_600_000_000),
                    state: HostState::new("h", Lifecycle::InService, "up"),
                    changes: vec![],
                },
                Position {
                    partition: 0,
                    offset: 0,
                },
            )
            .expect("record"),
        );
        let mut json = serde_json::to_value(&status).expect("serializes");
        json["phaseSince"] = "yesterday".into();
        assert!(
            HostStatus::from_json(&json.to_string())
                .unwrap_err()
                .to_string()
                .contains("phaseSince")
        );
        json["phaseSince"] = json["firstSeenAt"].clone();
        json["phase"] = "Sleeping".into();
        assert!(
            HostStatus::from_json(&json.to_string())
                .unwrap_err()
                .to_string()
                .contains("Sleeping")
        );
    }

    /// A Host status exactly as the previous version (string-typed fields) wrote it reads
    /// into the same record, and writes back the same JSON.
    #[test]
    fn reads_status_written_by_the_previous_version() {
        let text = include_str!("../tests/data/host-status.v0.json");
        let status = HostStatus::from_json(text).expect("readable");
        let record = status.to_record();
        assert_eq!(record.host_id, "dc/pdx1/SN-0007");
        assert_eq!(record.phase, Lifecycle::OutOfService);
        assert_eq!(record.state.name, "db-pdx1-07");
        assert_eq!(record.state.attributes["rack"], "C12");
        assert_eq!(record.intervals.len(), 1);
        assert_eq!(record.last_event.kind, EventKind::HostLifecycleChanged);
        assert_eq!(record.last_event.position.offset, 41);
        assert_eq!(
            record.first_seen_at,
            Timestamp::parse_rfc3339("2026-11-01T08:00:00.000000Z").expect("time")
        );
        let mut written: serde_json::Value =
            serde_json::to_value(HostStatus::from_record(&record)).expect("serializes");
        // Downtime is new: a Host written before it counts it from its current phase on.
        let downtime = written
            .as_object_mut()
            .and_then(|o| o.remove("downtime"))
            .expect("downtime written");
        assert_eq!(
            downtime,
            serde_json::json!({"plannedMicros": 0, "unplannedMicros": 0, "since": "2026-11-20T10:30:00.250000Z"})
        );
        let original: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(written, original);
    }
}

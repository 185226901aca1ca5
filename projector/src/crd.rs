//! The `Host` custom resource (group `hostledger.dev`, version `v1alpha1`) and its mapping
//! from and to the fold's [`HostRecord`].
//!
//! The projector owns the status (through the status subresource) and a fixed set of labels
//! and annotations (through server-side apply with one field manager). The spec belongs to
//! people: the projector never writes it, so nothing a person puts there is clobbered.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use hostledger_schemas::{EventKind, HostState, Lifecycle, Timestamp};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fold::{AppliedEvent, HostRecord, Position, ServiceInterval};

/// API group of hostledger's resources.
pub const GROUP: &str = "hostledger.dev";
/// Annotation holding the full host id (object names are derived from it, lossily).
pub const HOST_ID_ANNOTATION: &str = "hostledger.dev/host-id";
/// Finalizer the projector puts on every Host, so that a Host deleted by a person is only
/// removed once the projector has seen the deletion (its HostHistory stays in any case).
pub const HISTORY_FINALIZER: &str = "hostledger.dev/history";
/// Label keys the projector owns.
pub const OWNED_LABELS: [&str; 5] = ["provider", "region", "role", "team", "phase"];

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
}

/// One stretch of time in service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIntervalStatus {
    /// When the host entered service (RFC 3339).
    pub start: String,
    /// When it left service; absent while in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// The last event applied to this Host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastEventStatus {
    /// Event id.
    pub id: String,
    /// Event kind (HostDiscovered, HostChanged, ...).
    pub kind: String,
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset in that partition. Events at or below it are skipped.
    pub offset: i64,
    /// When the event's state was observed (RFC 3339).
    pub observed_at: String,
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
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
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
    /// Host name as the provider knows it.
    pub hostname: String,
    /// Lifecycle phase: Provisioning, InService, OutOfService, Missing or Retired.
    pub phase: String,
    /// The provider's own status word.
    pub provider_status: String,
    /// Region or site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Availability zone, room or rack row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// What the host does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// IP addresses, primary first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Instance type or hardware model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    /// Other provider attributes and tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// First time the host was observed (RFC 3339).
    pub first_seen_at: String,
    /// Latest observation folded in (RFC 3339).
    pub last_observed_at: String,
    /// When the current phase began (RFC 3339).
    pub phase_since: String,
    /// Start of the current service interval, while in service (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_service_since: Option<String>,
    /// Time in service over all closed intervals, in microseconds. Total time in service now
    /// is this plus (now - inServiceSince) while in service.
    pub closed_in_service_micros: i64,
    /// The most recent service intervals, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_intervals: Vec<ServiceIntervalStatus>,
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
}

/// Formats a timestamp as RFC 3339 UTC with microseconds (lossless).
pub fn format_time(t: Timestamp) -> String {
    match t.to_datetime() {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => t.to_string(),
    }
}

/// Parses an RFC 3339 time back into a timestamp.
pub fn parse_time(field: &str, value: &str) -> Result<Timestamp, StatusError> {
    DateTime::parse_from_rfc3339(value)
        .map(|dt| Timestamp(dt.timestamp_micros()))
        .map_err(|e| StatusError(format!("{field}: {value:?} is not an RFC 3339 time: {e}")))
}

/// A Host status that cannot be read back into a record (edited by hand, or corrupt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Host status: {0}")]
pub struct StatusError(pub String);

impl HostStatus {
    /// The status that shows `record`.
    pub fn from_record(r: &HostRecord) -> Self {
        let s = &r.state;
        let in_service = r.phase == Lifecycle::InService;
        HostStatus {
            host_id: r.host_id.clone(),
            provider: r.provider.clone(),
            source: r.source.clone(),
            hostname: s.name.clone(),
            phase: r.phase.to_string(),
            provider_status: s.provider_status.clone(),
            region: s.region.clone(),
            zone: s.zone.clone(),
            role: s.role.clone(),
            team: s.team.clone(),
            addresses: s.addresses.clone(),
            machine_type: s.machine_type.clone(),
            attributes: s.attributes.clone(),
            first_seen_at: format_time(r.first_seen_at),
            last_observed_at: format_time(r.last_observed_at),
            phase_since: format_time(r.phase_since),
            in_service_since: r.in_service_since.map(format_time),
            closed_in_service_micros: r.closed_in_service_micros,
            service_intervals: r
                .intervals
                .iter()
                .map(|i| ServiceIntervalStatus {
                    start: format_time(i.start),
                    end: i.end.map(format_time),
                })
                .collect(),
            service_intervals_dropped: i64::try_from(r.intervals_dropped).unwrap_or(i64::MAX),
            event_count: i64::try_from(r.event_count).unwrap_or(i64::MAX),
            last_event: LastEventStatus {
                id: r.last_event.event_id.clone(),
                kind: r.last_event.kind.to_string(),
                partition: r.last_event.position.partition,
                offset: r.last_event.position.offset,
                observed_at: format_time(r.last_event.observed_at),
            },
            conditions: vec![HostCondition {
                type_: "InService".into(),
                status: if in_service { "True" } else { "False" }.into(),
                reason: r.phase.to_string(),
                message: format!("provider status {:?}", s.provider_status),
                last_transition_time: format_time(r.phase_since),
            }],
        }
    }

    /// Reads the record back, so the projector can resume folding from a Host.
    pub fn to_record(&self) -> Result<HostRecord, StatusError> {
        let phase = Lifecycle::from_symbol(&self.phase).ok_or_else(|| {
            StatusError(format!("phase: {:?} is not a lifecycle phase", self.phase))
        })?;
        let kind = EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == self.last_event.kind)
            .ok_or_else(|| {
                StatusError(format!(
                    "lastEvent.kind: {:?} is not an event kind",
                    self.last_event.kind
                ))
            })?;
        let mut state = HostState::new(self.hostname.clone(), phase, self.provider_status.clone());
        state.region.clone_from(&self.region);
        state.zone.clone_from(&self.zone);
        state.role.clone_from(&self.role);
        state.team.clone_from(&self.team);
        state.addresses.clone_from(&self.addresses);
        state.machine_type.clone_from(&self.machine_type);
        state.attributes.clone_from(&self.attributes);
        let intervals = self
            .service_intervals
            .iter()
            .map(|i| {
                Ok(ServiceInterval {
                    start: parse_time("serviceIntervals.start", &i.start)?,
                    end: i
                        .end
                        .as_deref()
                        .map(|e| parse_time("serviceIntervals.end", e))
                        .transpose()?,
                })
            })
            .collect::<Result<_, StatusError>>()?;
        Ok(HostRecord {
            host_id: self.host_id.clone(),
            provider: self.provider.clone(),
            source: self.source.clone(),
            state,
            phase,
            first_seen_at: parse_time("firstSeenAt", &self.first_seen_at)?,
            last_observed_at: parse_time("lastObservedAt", &self.last_observed_at)?,
            phase_since: parse_time("phaseSince", &self.phase_since)?,
            in_service_since: self
                .in_service_since
                .as_deref()
                .map(|t| parse_time("inServiceSince", t))
                .transpose()?,
            closed_in_service_micros: self.closed_in_service_micros,
            intervals,
            intervals_dropped: u64::try_from(self.service_intervals_dropped).unwrap_or(0),
            event_count: u64::try_from(self.event_count).unwrap_or(0),
            last_event: AppliedEvent {
                event_id: self.last_event.id.clone(),
                kind,
                position: Position {
                    partition: self.last_event.partition,
                    offset: self.last_event.offset,
                },
                observed_at: parse_time("lastEvent.observedAt", &self.last_event.observed_at)?,
            },
        })
    }
}

/// The Kubernetes object name of a host: the host id lower-cased with `/` turned into `.`,
/// and, when that loses information (upper case, other characters, length), a hash of the
/// full id appended so that distinct ids never share a name.
pub fn object_name(host_id: &str) -> String {
    let mut name: String = host_id
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            '/' => '.',
            _ => '-',
        })
        .collect();
    let lossless = host_id
        .chars()
        .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '.' | '/'));
    let valid_edges = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if lossless && name.len() <= 253 && valid_edges(&name) && !name.contains("..") {
        return name;
    }
    let digest = Sha256::digest(host_id.as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    name.truncate(240);
    let trimmed = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .replace("..", ".-");
    if trimmed.is_empty() {
        format!("h-{hash}")
    } else {
        format!("{trimmed}-{hash}")
    }
}

/// A label value made valid: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
/// alphanumeric. `None` when nothing usable is left.
pub fn label_value(value: &str) -> Option<String> {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The labels the projector sets on a Host, for selection with `-l`.
pub fn labels(record: &HostRecord) -> BTreeMap<String, String> {
    let s = &record.state;
    let values = [
        ("provider", Some(record.provider.as_str())),
        ("region", s.region.as_deref()),
        ("role", s.role.as_deref()),
        ("team", s.team.as_deref()),
        ("phase", Some(record.phase.as_str())),
    ];
    values
        .into_iter()
        .filter_map(|(k, v)| v.and_then(label_value).map(|v| (k.to_owned(), v)))
        .collect()
}

/// Every CustomResourceDefinition of hostledger as (file name in `deploy/crds/`, YAML).
pub fn crd_documents() -> Vec<(&'static str, String)> {
    use kube::CustomResourceExt;
    let render = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        let body = serde_yaml::to_string(&crd).expect("a CRD always serializes");
        format!("# Generated by `hostledger crd` from the Rust types in projector/src; do not edit.\n{body}")
    };
    vec![
        ("hosts.hostledger.dev.yaml", render(Host::crd())),
        (
            "hosthistories.hostledger.dev.yaml",
            render(crate::history::HostHistory::crd()),
        ),
    ]
}

/// Every CRD as one multi-document YAML stream.
pub fn crd_yaml() -> String {
    crd_documents()
        .into_iter()
        .map(|(_, yaml)| yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::{Position, fold};
    use hostledger_schemas::HostEvent;

    #[test]
    fn object_names_are_valid_and_distinct() {
        let cases = [
            (
                "aws/123456789012/us-east-1/i-0abc",
                "aws.123456789012.us-east-1.i-0abc",
            ),
            ("dc/pdx1/srv-1", "dc.pdx1.srv-1"),
        ];
        for (id, want) in cases {
            assert_eq!(object_name(id), want);
        }
        let upper = object_name("dc/pdx1/SRV1");
        let lower = object_name("dc/pdx1/srv1");
        assert_ne!(upper, lower);
        assert!(upper.starts_with("dc.pdx1.srv1-"), "{upper}");
        for id in ["dc//x", "/lead", "x/", "weird id!", "Ω", &"a".repeat(300)] {
            let name = object_name(id);
            assert!(name.len() <= 253, "{id}: {name}");
            assert!(!name.contains(".."), "{id}: {name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c)),
                "{name}"
            );
            assert!(
                name.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
    }

    #[test]
    fn label_values_are_made_valid() {
        assert_eq!(label_value("log"), Some("log".into()));
        assert_eq!(
            label_value("Site Reliability"),
            Some("Site-Reliability".into())
        );
        assert_eq!(label_value("--x--"), Some("x".into()));
        assert_eq!(label_value("   "), None);
        assert_eq!(label_value(&"a".repeat(100)).map(|v| v.len()), Some(63));
    }

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
        assert_eq!(status.to_record().expect("readable"), record);
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
        let mut status = HostStatus::from_record(
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
        status.phase_since = "yesterday".into();
        assert!(
            status
                .to_record()
                .unwrap_err()
                .to_string()
                .contains("phaseSince")
        );
        status.phase = "Sleeping".into();
        assert!(
            status
                .to_record()
                .unwrap_err()
                .to_string()
                .contains("Sleeping")
        );
    }
}

//! Host-change events, field for field as in `schemas/avro/host_event.v*.avsc`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A point in time: microseconds since the Unix epoch, UTC (Avro `timestamp-micros`). In JSON
/// (Kubernetes objects, command output) it is an RFC 3339 string in UTC with microseconds,
/// `2026-01-01T00:00:00.123456Z`, lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// The same instant as a chrono date-time, if it is representable.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    /// Microseconds from `earlier` to `self`, never negative.
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with microseconds (lossless): the JSON form.
    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("{}us", self.0),
        }
    }

    /// Parses an RFC 3339 time (any offset, any precision down to microseconds).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
        DateTime::parse_from_rfc3339(text)
            .map(|dt| Timestamp(dt.timestamp_micros()))
            .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.to_datetime() {
            Some(dt) => serializer.serialize_str(&dt.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => Err(serde::ser::Error::custom(format!(
                "{} microseconds since the epoch is not a representable time",
                self.0
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// The JSON schema of an enum of string symbols (what Kubernetes validates a field against).
pub(crate) fn symbols_schema(symbols: impl IntoIterator<Item = &'static str>) -> schemars::Schema {
    let symbols: Vec<&str> = symbols.into_iter().collect();
    schemars::json_schema!({ "type": "string", "enum": symbols })
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Timestamp(value.timestamp_micros())
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with as many fractional digits as needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "{}us", self.0),
        }
    }
}

/// What happened to a host. Every kind is a past-tense fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The host appeared in its provider's listing for the first time.
    HostDiscovered,
    /// Attributes changed; the lifecycle state did not.
    HostChanged,
    /// The lifecycle state changed (e.g. started, stopped, under maintenance).
    HostLifecycleChanged,
    /// The host has been absent from complete listings of a reachable provider for longer
    /// than the grace period.
    HostWentMissing,
    /// A host that had gone missing (or had been retired) is listed again.
    HostReturned,
    /// The provider says the host is gone for good (terminated, decommissioned).
    HostRetired,
}

impl EventKind {
    /// Every kind, in schema order.
    pub const ALL: [EventKind; 6] = [
        EventKind::HostDiscovered,
        EventKind::HostChanged,
        EventKind::HostLifecycleChanged,
        EventKind::HostWentMissing,
        EventKind::HostReturned,
        EventKind::HostRetired,
    ];

    /// The schema's symbol for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HostDiscovered => "HostDiscovered",
            EventKind::HostChanged => "HostChanged",
            EventKind::HostLifecycleChanged => "HostLifecycleChanged",
            EventKind::HostWentMissing => "HostWentMissing",
            EventKind::HostReturned => "HostReturned",
            EventKind::HostRetired => "HostRetired",
        }
    }
}

impl JsonSchema for EventKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventKind".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        symbols_schema(EventKind::ALL.map(EventKind::as_str))
    }
}

impl EventKind {
    /// Parses a schema symbol (exact, case-sensitive).
    pub fn from_symbol(symbol: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == symbol)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a host is in its life. Providers map their own states onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Being built or booted; not yet serving.
    Provisioning,
    /// Running and serving. Time in this state is "time in service".
    InService,
    /// Stopped or under maintenance, expected back.
    OutOfService,
    /// Not in the provider's listing although the provider could be read.
    Missing,
    /// Terminated or decommissioned.
    Retired,
}

impl Lifecycle {
    /// Every state, in schema order.
    pub const ALL: [Lifecycle; 5] = [
        Lifecycle::Provisioning,
        Lifecycle::InService,
        Lifecycle::OutOfService,
        Lifecycle::Missing,
        Lifecycle::Retired,
    ];

    /// The schema's symbol for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Provisioning => "Provisioning",
            Lifecycle::InService => "InService",
            Lifecycle::OutOfService => "OutOfService",
            Lifecycle::Missing => "Missing",
            Lifecycle::Retired => "Retired",
        }
    }

    /// Parses a schema symbol (exact, case-sensitive).
    pub fn from_symbol(symbol: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|l| l.as_str() == symbol)
    }
}

impl JsonSchema for Lifecycle {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Lifecycle".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        symbols_schema(Lifecycle::ALL.map(Lifecycle::as_str))
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The full observed state of a host: declared once, here. The Avro schema carries it in
/// events (mapped in [`crate::avro`]); the Host status and history entries of the Kubernetes
/// objects carry it flattened, in this type's JSON form (camelCase, `hostname`, `phase`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostState {
    /// Host name as the provider knows it.
    #[serde(rename = "hostname")]
    pub name: String,
    /// Lifecycle phase, mapped from the provider's status: Provisioning, InService,
    /// OutOfService, Missing or Retired.
    #[serde(rename = "phase")]
    pub lifecycle: Lifecycle,
    /// The provider's own status word (`running`, `stopped`, `active`, ...).
    pub provider_status: String,
    /// Region or site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Availability zone, room or rack row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// What the host does (`log`, `db`, `web`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// IP addresses, primary first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Instance type or hardware model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    /// Other provider attributes and tags, sorted by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl HostState {
    /// A state with a name and lifecycle and nothing else.
    pub fn new(
        name: impl Into<String>,
        lifecycle: Lifecycle,
        provider_status: impl Into<String>,
    ) -> Self {
        HostState {
            name: name.into(),
            lifecycle,
            provider_status: provider_status.into(),
            region: None,
            zone: None,
            role: None,
            team: None,
            addresses: Vec::new(),
            machine_type: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Field-by-field differences from `old` to `self`, in a stable order. Attributes are
    /// reported per key as `attributes.KEY`.
    pub fn changes_from(&self, old: &HostState) -> Vec<FieldChange> {
        // Compared borrowed, allocated only when different: the projector diffs every event.
        let mut out = Vec::new();
        let mut field = |name: &str, old: Option<&str>, new: Option<&str>| {
            if old != new {
                out.push(FieldChange {
                    field: name.to_owned(),
                    old: old.map(str::to_owned),
                    new: new.map(str::to_owned),
                });
            }
        };
        field("name", Some(&old.name), Some(&self.name));
        field(
            "lifecycle",
            Some(old.lifecycle.as_str()),
            Some(self.lifecycle.as_str()),
        );
        field(
            "provider_status",
            Some(&old.provider_status),
            Some(&self.provider_status),
        );
        field("region", old.region.as_deref(), self.region.as_deref());
        field("zone", old.zone.as_deref(), self.zone.as_deref());
        field("role", old.role.as_deref(), self.role.as_deref());
        field("team", old.team.as_deref(), self.team.as_deref());
        if old.addresses != self.addresses {
            field(
                "addresses",
                Some(&old.addresses.join(",")),
                Some(&self.addresses.join(",")),
            );
        }
        field(
            "machine_type",
            old.machine_type.as_deref(),
            self.machine_type.as_deref(),
        );
        if old.attributes != self.attributes {
            let keys: std::collections::BTreeSet<&String> = old
                .attributes
                .keys()
                .chain(self.attributes.keys())
                .collect();
            for key in keys {
                field(
                    &format!("attributes.{key}"),
                    old.attributes.get(key).map(String::as_str),
                    self.attributes.get(key).map(String::as_str),
                );
            }
        }
        out
    }

    /// Applies changes made by [`HostState::changes_from`] (new values only): the inverse of
    /// that diff, so `old.apply_changes(&new.changes_from(&old))` turns `old` into `new`.
    pub fn apply_changes(&mut self, changes: &[FieldChange]) -> Result<(), String> {
        fn required(field: &str, value: &Option<String>) -> Result<String, String> {
            value
                .clone()
                .ok_or_else(|| format!("{field}: a change cannot remove a required field"))
        }
        for c in changes {
            match c.field.as_str() {
                "name" => self.name = required("name", &c.new)?,
                "lifecycle" => {
                    let symbol = required("lifecycle", &c.new)?;
                    self.lifecycle = Lifecycle::from_symbol(&symbol)
                        .ok_or_else(|| format!("lifecycle: {symbol:?} is not a lifecycle"))?;
                }
                "provider_status" => self.provider_status = required("provider_status", &c.new)?,
                "region" => self.region.clone_from(&c.new),
                "zone" => self.zone.clone_from(&c.new),
                "role" => self.role.clone_from(&c.new),
                "team" => self.team.clone_from(&c.new),
                "machine_type" => self.machine_type.clone_from(&c.new),
                "addresses" => {
                    self.addresses = match c.new.as_deref() {
                        None | Some("") => Vec::new(),
                        Some(list) => list.split(',').map(str::to_owned).collect(),
                    }
                }
                other => match other.strip_prefix("attributes.") {
                    Some(key) => match &c.new {
                        Some(v) => {
                            self.attributes.insert(key.to_owned(), v.clone());
                        }
                        None => {
                            self.attributes.remove(key);
                        }
                    },
                    None => return Err(format!("{other:?} is not a host field")),
                },
            }
        }
        Ok(())
    }
}

/// One changed field: its name, old and new value (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    /// Field name; attributes as `attributes.KEY`.
    pub field: String,
    /// Value before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// Value after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// A fact about one host, observed by one fetcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEvent {
    /// Unique id of this event.
    pub event_id: String,
    /// Stable, provider-scoped host id (`dc/pdx1/SERIAL`, `aws/ACCOUNT/REGION/i-…`).
    pub host_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Provider kind: `dc`, `aws`, `exec:NAME`.
    pub provider: String,
    /// The fetcher instance that observed it.
    pub source: String,
    /// When the provider state was seen.
    pub observed_at: Timestamp,
    /// Full state of the host after the change.
    pub state: HostState,
    /// What changed relative to the previous event of this host.
    pub changes: Vec<FieldChange>,
}

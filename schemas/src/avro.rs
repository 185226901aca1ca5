//! The Avro form of the event types: the same fields under the schema's names
//! (`schemas/avro/host_event.v*.avsc`), derived with serde and converted from and to
//! [`HostEvent`]. Kept apart from the event types so that their JSON form (camelCase, used by
//! the Kubernetes objects) and the Avro field names (the contract) are free of each other.
//! Encoding borrows everything (no copies); decoding owns what it reads.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, FieldChange, HostEvent, HostState, Lifecycle, Timestamp};

/// A host event as the Avro schema names its fields (records and fields alike: apache-avro
/// matches the struct names too).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "HostEvent")]
pub struct AvroEvent<'a> {
    event_id: Cow<'a, str>,
    host_id: Cow<'a, str>,
    kind: EventKind,
    provider: Cow<'a, str>,
    source: Cow<'a, str>,
    /// Microseconds since the epoch (`timestamp-micros`).
    observed_at: i64,
    state: AvroState<'a>,
    changes: Vec<AvroChange<'a>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "HostState")]
struct AvroState<'a> {
    name: Cow<'a, str>,
    lifecycle: Lifecycle,
    provider_status: Cow<'a, str>,
    region: Option<Cow<'a, str>>,
    zone: Option<Cow<'a, str>>,
    role: Option<Cow<'a, str>>,
    team: Option<Cow<'a, str>>,
    addresses: Cow<'a, [String]>,
    machine_type: Option<Cow<'a, str>>,
    attributes: Cow<'a, BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "FieldChange")]
struct AvroChange<'a> {
    field: Cow<'a, str>,
    old: Option<Cow<'a, str>>,
    new: Option<Cow<'a, str>>,
}

fn borrowed(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

impl<'a> From<&'a HostEvent> for AvroEvent<'a> {
    fn from(e: &'a HostEvent) -> Self {
        let s = &e.state;
        AvroEvent {
            event_id: Cow::Borrowed(&e.event_id),
            host_id: Cow::Borrowed(&e.host_id),
            kind: e.kind,
            provider: Cow::Borrowed(&e.provider),
            source: Cow::Borrowed(&e.source),
            observed_at: e.observed_at.unix_micros(),
            state: AvroState {
                name: Cow::Borrowed(&s.name),
                lifecycle: s.lifecycle,
                provider_status: Cow::Borrowed(&s.provider_status),
                region: borrowed(&s.region),
                zone: borrowed(&s.zone),
                role: borrowed(&s.role),
                team: borrowed(&s.team),
                addresses: Cow::Borrowed(&s.addresses),
                machine_type: borrowed(&s.machine_type),
                attributes: Cow::Borrowed(&s.attributes),
            },
            changes: e
                .changes
                .iter()
                .map(|c| AvroChange {
                    field: Cow::Borrowed(&c.field),
                    old: borrowed(&c.old),
                    new: borrowed(&c.new),
                })
                .collect(),
        }
    }
}

impl From<AvroEvent<'_>> for HostEvent {
    fn from(e: AvroEvent<'_>) -> Self {
        let s = e.state;
        HostEvent {
            event_id: e.event_id.into_owned(),
            host_id: e.host_id.into_owned(),
            kind: e.kind,
            provider: e.provider.into_owned(),
            source: e.source.into_owned(),
            observed_at: Timestamp::from_unix_micros(e.observed_at),
            state: HostState {
                name: s.name.into_owned(),
                lifecycle: s.lifecycle,
                provider_status: s.provider_status.into_owned(),
                region: owned(s.region),
                zone: owned(s.zone),
                role: owned(s.role),
                team: owned(s.team),
                addresses: s.addresses.into_owned(),
                machine_type: owned(s.machine_type),
                attributes: s.attributes.into_owned(),
            },
            changes: e
                .changes
                .into_iter()
                .map(|c| FieldChange {
                    field: c.field.into_owned(),
                    old: owned(c.old),
                    new: owned(c.new),
                })
                .collect(),
        }
    }
}

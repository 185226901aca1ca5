//! The mapping between [`HostEvent`] and the Avro host event schema, field by field. Written
//! out rather than derived, so that the Rust types' JSON form (used by the Kubernetes objects)
//! and the Avro field names (the contract) are free of each other.
//!
//! [`AvroEvent`] writes an event in the current writer schema's field names (through serde,
//! so maps keep their sorted order and the bytes are deterministic); [`from_value`] reads a
//! value already resolved to the current reader schema.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::event::{EventKind, FieldChange, HostEvent, HostState, Lifecycle, Timestamp};

/// An event as the Avro schema names its fields.
pub struct AvroEvent<'a>(pub &'a HostEvent);

struct AvroState<'a>(&'a HostState);

struct AvroChanges<'a>(&'a [FieldChange]);

struct AvroChange<'a>(&'a FieldChange);

impl Serialize for AvroEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut r = serializer.serialize_struct("HostEvent", 8)?;
        r.serialize_field("event_id", &e.event_id)?;
        r.serialize_field("host_id", &e.host_id)?;
        r.serialize_field("kind", &e.kind)?;
        r.serialize_field("provider", &e.provider)?;
        r.serialize_field("source", &e.source)?;
        r.serialize_field("observed_at", &e.observed_at.unix_micros())?;
        r.serialize_field("state", &AvroState(&e.state))?;
        r.serialize_field("changes", &AvroChanges(&e.changes))?;
        r.end()
    }
}

impl Serialize for AvroState<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut r = serializer.serialize_struct("HostState", 10)?;
        r.serialize_field("name", &s.name)?;
        r.serialize_field("lifecycle", &s.lifecycle)?;
        r.serialize_field("provider_status", &s.provider_status)?;
        r.serialize_field("region", &s.region)?;
        r.serialize_field("zone", &s.zone)?;
        r.serialize_field("role", &s.role)?;
        r.serialize_field("team", &s.team)?;
        r.serialize_field("addresses", &s.addresses)?;
        r.serialize_field("machine_type", &s.machine_type)?;
        r.serialize_field("attributes", &s.attributes)?;
        r.end()
    }
}

impl Serialize for AvroChanges<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(AvroChange))
    }
}

impl Serialize for AvroChange<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut r = serializer.serialize_struct("FieldChange", 3)?;
        r.serialize_field("field", &c.field)?;
        r.serialize_field("old", &c.old)?;
        r.serialize_field("new", &c.new)?;
        r.end()
    }
}

/// The fields of a record, taken by name.
struct Fields {
    record: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    fn of(record: &'static str, value: Value) -> Result<Self, String> {
        match value {
            Value::Record(fields) => Ok(Fields { record, fields }),
            other => Err(format!("{record} is not a record: {other:?}")),
        }
    }

    fn take(&mut self, name: &str) -> Result<Value, String> {
        let i = self
            .fields
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| format!("{}.{name} is missing", self.record))?;
        Ok(unwrap_union(self.fields.swap_remove(i).1))
    }

    fn string(&mut self, name: &str) -> Result<String, String> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            other => Err(format!("{}.{name} is not a string: {other:?}", self.record)),
        }
    }

    fn optional(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(format!(
                "{}.{name} is neither null nor a string: {other:?}",
                self.record
            )),
        }
    }

    fn symbol(&mut self, name: &str) -> Result<String, String> {
        match self.take(name)? {
            Value::Enum(_, symbol) | Value::String(symbol) => Ok(symbol),
            other => Err(format!("{}.{name} is not an enum: {other:?}", self.record)),
        }
    }

    fn array(&mut self, name: &str) -> Result<Vec<Value>, String> {
        match self.take(name)? {
            Value::Array(items) => Ok(items),
            other => Err(format!("{}.{name} is not an array: {other:?}", self.record)),
        }
    }
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn string_items(record: &str, name: &str, items: Vec<Value>) -> Result<Vec<String>, String> {
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(format!("{record}.{name} holds a non-string: {other:?}")),
        })
        .collect()
}

/// The event in an Avro value of the current reader schema.
pub fn from_value(value: Value) -> Result<HostEvent, String> {
    let mut e = Fields::of("HostEvent", value)?;
    let kind = e.symbol("kind")?;
    let kind =
        EventKind::from_symbol(&kind).ok_or_else(|| format!("{kind:?} is not an event kind"))?;
    let observed_at = match e.take("observed_at")? {
        Value::TimestampMicros(t) | Value::Long(t) => Timestamp::from_unix_micros(t),
        other => {
            return Err(format!(
                "HostEvent.observed_at is not a timestamp: {other:?}"
            ));
        }
    };
    let mut s = Fields::of("HostState", e.take("state")?)?;
    let lifecycle = s.symbol("lifecycle")?;
    let lifecycle = Lifecycle::from_symbol(&lifecycle)
        .ok_or_else(|| format!("{lifecycle:?} is not a lifecycle"))?;
    let attributes = match s.take("attributes")? {
        Value::Map(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k, v)),
                other => Err(format!(
                    "HostState.attributes.{k} is not a string: {other:?}"
                )),
            })
            .collect::<Result<BTreeMap<_, _>, String>>()?,
        other => return Err(format!("HostState.attributes is not a map: {other:?}")),
    };
    let addresses = s.array("addresses")?;
    let state = HostState {
        name: s.string("name")?,
        lifecycle,
        provider_status: s.string("provider_status")?,
        region: s.optional("region")?,
        zone: s.optional("zone")?,
        role: s.optional("role")?,
        team: s.optional("team")?,
        addresses: string_items("HostState", "addresses", addresses)?,
        machine_type: s.optional("machine_type")?,
        attributes,
    };
    let changes = e
        .array("changes")?
        .into_iter()
        .map(|c| {
            let mut c = Fields::of("FieldChange", c)?;
            Ok(FieldChange {
                field: c.string("field")?,
                old: c.optional("old")?,
                new: c.optional("new")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HostEvent {
        event_id: e.string("event_id")?,
        host_id: e.string("host_id")?,
        kind,
        provider: e.string("provider")?,
        source: e.string("source")?,
        observed_at,
        state,
        changes,
    })
}

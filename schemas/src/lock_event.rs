//! Lock facts, field for field as in `schemas/avro/lock_event.v*.avsc`: a host was locked for
//! an operation, or its lock ended. They share the host events topic (key: host id) with
//! [`HostEvent`](crate::HostEvent)s, so a host's locks and its lifecycle are in one order,
//! and a single-object decoder tells the two records apart by their fingerprints.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::{Deserialize, Serialize};

use crate::canonical::parsing_canonical_form;
use crate::codec::{DecodeError, EncodeError, Fingerprint, MARKER};
use crate::event::{HostEvent, Timestamp};
use crate::fingerprint::crc64_avro;
use crate::validate::{InvalidEvent, check_common, check_lengths};

/// Every released version of the lock event schema, oldest first.
pub const LOCK_EVENT_SCHEMAS: &[(u32, &str)] = &[(1, include_str!("../avro/lock_event.v1.avsc"))];

/// What happened to a host's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockEventKind {
    /// The host was locked.
    HostLocked,
    /// The host's lock ended (see [`LockEnd`]).
    HostUnlocked,
}

impl LockEventKind {
    /// The schema's symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            LockEventKind::HostLocked => "HostLocked",
            LockEventKind::HostUnlocked => "HostUnlocked",
        }
    }
}

impl fmt::Display for LockEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockEnd {
    /// Deleted by its holder, or broken by someone allowed to.
    Released,
    /// Not renewed for its TTL; released by the sweeper.
    Expired,
    /// The host was retired or deleted; released by the sweeper.
    HostRetired,
    /// Gone while no recorder was watching; `at` is when it was found gone.
    Unobserved,
}

impl LockEnd {
    /// The schema's symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            LockEnd::Released => "Released",
            LockEnd::Expired => "Expired",
            LockEnd::HostRetired => "HostRetired",
            LockEnd::Unobserved => "Unobserved",
        }
    }
}

impl schemars::JsonSchema for LockEnd {
    fn schema_name() -> Cow<'static, str> {
        "LockEnd".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::event::symbols_schema(
            [
                LockEnd::Released,
                LockEnd::Expired,
                LockEnd::HostRetired,
                LockEnd::Unobserved,
            ]
            .map(LockEnd::as_str),
        )
    }
}

impl fmt::Display for LockEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lock fact about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    /// `lock/LOCK_ID/locked` or `lock/LOCK_ID/unlocked`.
    pub event_id: String,
    /// The locked host.
    pub host_id: String,
    /// Locked or unlocked.
    pub kind: LockEventKind,
    /// The lock's identity (the HostLock's uid).
    pub lock_id: String,
    /// When it was taken or ended.
    pub at: Timestamp,
    /// Who held it.
    pub holder: String,
    /// The identity that took it.
    pub user: String,
    /// Why.
    pub reason: String,
    /// Its TTL in seconds.
    pub ttl_seconds: i64,
    /// How it ended (unlocked only).
    pub ended: Option<LockEnd>,
    /// The hostledger instance that recorded it.
    pub source: String,
}

impl LockEvent {
    /// The event id of a lock fact: the same for every recording of the same fact.
    pub fn id_for(lock_id: &str, kind: LockEventKind) -> String {
        match kind {
            LockEventKind::HostLocked => format!("lock/{lock_id}/locked"),
            LockEventKind::HostUnlocked => format!("lock/{lock_id}/unlocked"),
        }
    }

    /// Checks what Avro cannot: ids present and bounded, a plausible time, an end only on an
    /// unlock.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        let id = || self.event_id.clone();
        check_common(
            &self.event_id,
            &self.host_id,
            &[
                ("event_id", &self.event_id),
                ("host_id", &self.host_id),
                ("lock_id", &self.lock_id),
                ("source", &self.source),
            ],
            self.at,
        )?;
        check_lengths(
            &self.event_id,
            [
                ("holder", &self.holder),
                ("user", &self.user),
                ("reason", &self.reason),
                ("lock_id", &self.lock_id),
            ]
            .map(|(f, v)| (f.to_owned(), v)),
        )?;
        if self.kind == LockEventKind::HostLocked && self.ended.is_some() {
            return Err(InvalidEvent::Inconsistent {
                event_id: id(),
                reason: "a HostLocked fact has no end".into(),
            });
        }
        Ok(())
    }
}

/// Anything on the host events topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// What a fetcher observed.
    Host(HostEvent),
    /// A lock taken or ended.
    Lock(LockEvent),
}

impl Fact {
    /// The host it is about (the message key).
    pub fn host_id(&self) -> &str {
        match self {
            Fact::Host(e) => &e.host_id,
            Fact::Lock(e) => &e.host_id,
        }
    }

    /// Its event id.
    pub fn event_id(&self) -> &str {
        match self {
            Fact::Host(e) => &e.event_id,
            Fact::Lock(e) => &e.event_id,
        }
    }

    /// When it happened (`observed_at`, or a lock's `at`).
    pub fn at(&self) -> Timestamp {
        match self {
            Fact::Host(e) => e.observed_at,
            Fact::Lock(e) => e.at,
        }
    }

    /// Checks what Avro cannot.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        match self {
            Fact::Host(e) => e.validate(),
            Fact::Lock(e) => e.validate(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "HostLockEvent")]
struct AvroLockEvent<'a> {
    event_id: Cow<'a, str>,
    host_id: Cow<'a, str>,
    kind: LockEventKind,
    lock_id: Cow<'a, str>,
    at: i64,
    holder: Cow<'a, str>,
    user: Cow<'a, str>,
    reason: Cow<'a, str>,
    ttl_seconds: i64,
    ended: Option<LockEnd>,
    source: Cow<'a, str>,
}

impl<'a> From<&'a LockEvent> for AvroLockEvent<'a> {
    fn from(e: &'a LockEvent) -> Self {
        AvroLockEvent {
            event_id: Cow::Borrowed(&e.event_id),
            host_id: Cow::Borrowed(&e.host_id),
            kind: e.kind,
            lock_id: Cow::Borrowed(&e.lock_id),
            at: e.at.unix_micros(),
            holder: Cow::Borrowed(&e.holder),
            user: Cow::Borrowed(&e.user),
            reason: Cow::Borrowed(&e.reason),
            ttl_seconds: e.ttl_seconds,
            ended: e.ended,
            source: Cow::Borrowed(&e.source),
        }
    }
}

impl From<AvroLockEvent<'_>> for LockEvent {
    fn from(e: AvroLockEvent<'_>) -> Self {
        LockEvent {
            event_id: e.event_id.into_owned(),
            host_id: e.host_id.into_owned(),
            kind: e.kind,
            lock_id: e.lock_id.into_owned(),
            at: Timestamp::from_unix_micros(e.at),
            holder: e.holder.into_owned(),
            user: e.user.into_owned(),
            reason: e.reason.into_owned(),
            ttl_seconds: e.ttl_seconds,
            ended: e.ended,
            source: e.source.into_owned(),
        }
    }
}

/// One compiled-in lock event schema, parsed once per process.
pub(crate) struct LockSchema {
    pub(crate) version: u32,
    pub(crate) fingerprint: Fingerprint,
    schema: Schema,
}

static LOCK_SCHEMAS: LazyLock<Vec<LockSchema>> = LazyLock::new(|| {
    LOCK_EVENT_SCHEMAS
        .iter()
        .map(|(version, text)| {
            let schema = Schema::parse_str(text).expect("bundled lock schemas are valid (tested)");
            let canonical =
                parsing_canonical_form(text).expect("bundled lock schemas are valid (tested)");
            LockSchema {
                version: *version,
                fingerprint: Fingerprint(crc64_avro(canonical.as_bytes()).to_le_bytes()),
                schema,
            }
        })
        .collect()
});

/// The lock schema a fingerprint names, if it is one.
pub(crate) fn lock_schema(fingerprint: Fingerprint) -> Option<&'static LockSchema> {
    LOCK_SCHEMAS.iter().find(|s| s.fingerprint == fingerprint)
}

/// Fingerprint of the lock event schema this build writes.
pub fn lock_writer_fingerprint() -> Fingerprint {
    LOCK_SCHEMAS
        .last()
        .expect("a lock event schema is compiled in")
        .fingerprint
}

/// Encodes a lock fact as an Avro single-object message with the newest lock schema.
pub fn encode_lock(event: &LockEvent) -> Result<Vec<u8>, EncodeError> {
    let writer = LOCK_SCHEMAS
        .last()
        .expect("a lock event schema is compiled in");
    let mut out = Vec::with_capacity(192);
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&writer.fingerprint.0);
    GenericDatumWriter::builder(&writer.schema)
        .human_readable(false)
        .build()
        .and_then(|w| w.write_ser(&mut out, &AvroLockEvent::from(event)))
        .map_err(|e| EncodeError::new(&event.event_id, writer.version, e.to_string()))?;
    Ok(out)
}

/// Decodes the datum of a lock fact written with `schema` (the header already read).
pub(crate) fn decode_lock(schema: &LockSchema, datum: &[u8]) -> Result<LockEvent, DecodeError> {
    let datum_error = |reason: String| DecodeError::Datum {
        version: schema.version,
        reason: format!("lock event: {reason}"),
    };
    let mut rest = datum;
    let reader = GenericDatumReader::builder(&schema.schema)
        .human_readable(false)
        .build()
        .map_err(|e| datum_error(e.to_string()))?;
    let event = reader
        .read_deser::<AvroLockEvent<'_>>(&mut rest)
        .map(LockEvent::from)
        .map_err(|e| datum_error(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            version: schema.version,
            trailing: rest.len(),
        });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;

    pub(crate) fn unlocked() -> LockEvent {
        LockEvent {
            event_id: LockEvent::id_for("uid-1", LockEventKind::HostUnlocked),
            host_id: "dc/pdx1/SN-1".into(),
            kind: LockEventKind::HostUnlocked,
            lock_id: "uid-1".into(),
            at: Timestamp::parse_rfc3339("2026-12-01T10:00:00.123456Z").expect("time"),
            holder: "ansible-42".into(),
            user: "bob".into(),
            reason: "kernel update".into(),
            ttl_seconds: 3600,
            ended: Some(LockEnd::Expired),
            source: "projector-0".into(),
        }
    }

    #[test]
    fn a_lock_fact_round_trips_and_is_told_apart_from_a_host_event() {
        let codec = Codec::new();
        let event = unlocked();
        let bytes = encode_lock(&event).expect("encodes");
        assert_eq!(bytes[..2], MARKER);
        assert_ne!(lock_writer_fingerprint(), codec.writer_fingerprint());
        assert_eq!(codec.decode_fact(&bytes), Ok(Fact::Lock(event.clone())));
        // A reader of host events only does not mistake it for one.
        let err = codec.decode(&bytes).expect_err("not a host event");
        assert!(err.to_string().contains("lock event"), "{err}");
        // Truncated: an error, not a panic.
        for cut in 10..bytes.len() {
            assert!(codec.decode_fact(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_lock_fact_is_checked() {
        assert_eq!(unlocked().validate(), Ok(()));
        let mut locked = unlocked();
        locked.kind = LockEventKind::HostLocked;
        assert!(locked.validate().is_err(), "a lock has no end");
        locked.ended = None;
        assert_eq!(locked.validate(), Ok(()));
        let mut empty = unlocked();
        empty.lock_id = " ".into();
        assert!(empty.validate().is_err());
        let mut old = unlocked();
        old.at = Timestamp(0);
        assert!(old.validate().is_err());
    }

    #[test]
    fn the_fingerprint_is_the_specifications() {
        // Parsing Canonical Form as the specification defines it: what Java's
        // SchemaNormalization and fastavro compute (the compatibility test checks them).
        let text = LOCK_EVENT_SCHEMAS[0].1;
        let canonical = parsing_canonical_form(text).expect("canonical");
        assert!(canonical.starts_with(r#"{"name":"dev.hostledger.v1.HostLockEvent""#));
        assert_eq!(
            lock_writer_fingerprint().0,
            crc64_avro(canonical.as_bytes()).to_le_bytes()
        );
    }
}

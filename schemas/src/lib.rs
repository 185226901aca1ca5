//! The hostledger event contract.
//!
//! - `event`: the host-change event types (`HostEvent`, `HostState`, `EventKind`,
//!   `Lifecycle`), mirrored one to one from the Avro schemas in `schemas/avro/`.
//! - `avro`: the Avro form of the event types (the schema's field names) and the
//!   conversions from and to them.
//! - `binary`: the current version's Avro datum written and read by hand, the hot path of
//!   the codec (checked byte for byte against the generic Avro library).
//! - `codec` ([`Codec`]): Avro single-object encoding (`C3 01`, 8-byte CRC-64-AVRO fingerprint of the
//!   writer schema, datum); decoding resolves the writer schema by fingerprint among every
//!   schema version compiled in, and rejects anything else with a typed [`DecodeError`].
//! - `canonical` ([`parsing_canonical_form`]): a schema's Parsing Canonical Form, as the
//!   Avro specification defines it.
//! - `fingerprint`: the CRC-64-AVRO (Rabin) fingerprint of a schema's canonical form.
//! - `lock_event` ([`LockEvent`], [`Fact`]): lock facts (a host locked, its lock ended), a
//!   second record on the host events topic with schemas of their own
//!   (`schemas/avro/lock_event.v*.avsc`).
//! - `validate` ([`HostEvent::validate`]): semantic checks that a decodable event is also a sensible one.
//!
//! Nothing here does I/O.

mod avro;
mod binary;
mod canonical;
mod codec;
mod event;
mod fingerprint;
mod lock_event;
mod validate;

pub use canonical::parsing_canonical_form;
pub use codec::{Codec, DecodeError, EncodeError, Fingerprint, HEADER_LEN, MARKER, SchemaError};
pub use event::{EventKind, FieldChange, HostEvent, HostState, Lifecycle, Timestamp};
pub use fingerprint::crc64_avro;
pub use lock_event::{
    Fact, LOCK_EVENT_SCHEMAS, LockEnd, LockEvent, LockEventKind, encode_lock,
    lock_writer_fingerprint,
};
pub use validate::{
    EARLIEST, InvalidEvent, LATEST, MAX_ATTRIBUTES, MAX_HOST_ID_LEN, MAX_VALUE_LEN,
};

/// Every released version of the host event schema, oldest first. A version, once released,
/// never changes; a new one may only add fields with defaults.
pub const HOST_EVENT_SCHEMAS: &[(u32, &str)] = &[(1, include_str!("../avro/host_event.v1.avsc"))];

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = 1;

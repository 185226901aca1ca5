//! Avro single-object encoding of [`HostEvent`]s.
//!
//! A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
//! schema's Parsing Canonical Form (as the Avro specification defines it, so any Avro
//! implementation's single-object decoder finds the schema), then the Avro binary datum. The decoder looks the fingerprint up among every
//! schema version compiled into this build and resolves the datum from that writer schema to
//! the newest reader schema, so old and new producers can share one topic.

use std::fmt;
use std::sync::LazyLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{Schema, from_value};

use crate::avro::AvroEvent;
use crate::binary;
use crate::canonical::parsing_canonical_form;
use crate::event::HostEvent;
use crate::fingerprint::crc64_avro;
use crate::lock_event::{Fact, decode_lock, lock_schema};
use crate::{CURRENT_VERSION, HOST_EVENT_SCHEMAS};

/// The two marker bytes that open every single-object-encoded message.
pub const MARKER: [u8; 2] = [0xC3, 0x01];
/// Marker plus fingerprint.
pub const HEADER_LEN: usize = 10;

/// An 8-byte schema fingerprint, shown as hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a message could not be decoded. Every variant is a poison message: retrying the same
/// bytes can never succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the single-object header.
    #[error("message is {len} bytes, shorter than the {HEADER_LEN}-byte Avro single-object header")]
    TooShort {
        /// Length of the message.
        len: usize,
    },
    /// The first two bytes are not `C3 01`.
    #[error("message does not start with the Avro single-object marker c3 01 (found {found:02x?})")]
    BadMarker {
        /// The first two bytes found.
        found: [u8; 2],
    },
    /// The writer schema is not one this build knows.
    #[error(
        "unknown writer schema fingerprint {fingerprint}: not one of the {known} host event schema versions compiled into this build"
    )]
    UnknownFingerprint {
        /// The fingerprint found in the message.
        fingerprint: Fingerprint,
        /// How many schema versions are known.
        known: usize,
    },
    /// A lock fact where only host events are read.
    #[error(
        "a lock event (lock event schema v{version}), not a host event: read it with Codec::decode_fact"
    )]
    NotAHostEvent {
        /// Lock event schema version.
        version: u32,
    },
    /// The datum does not match the writer schema its fingerprint names.
    #[error("invalid Avro datum for host event schema v{version}: {reason}")]
    Datum {
        /// Writer schema version.
        version: u32,
        /// What the Avro decoder said.
        reason: String,
    },
    /// Bytes left over after a complete datum.
    #[error("{trailing} unexpected bytes after the Avro datum (schema v{version})")]
    TrailingBytes {
        /// Writer schema version.
        version: u32,
        /// How many bytes were left.
        trailing: usize,
    },
}

/// Why an event could not be encoded (a bug or an event the schema cannot hold).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode host event {event_id} with schema v{version}: {reason}")]
pub struct EncodeError {
    event_id: String,
    version: u32,
    reason: String,
}

impl EncodeError {
    pub(crate) fn new(event_id: &str, version: u32, reason: String) -> Self {
        EncodeError {
            event_id: event_id.to_owned(),
            version,
            reason,
        }
    }
}

struct KnownSchema {
    version: u32,
    /// Over the specification's Parsing Canonical Form: what is written.
    fingerprint: Fingerprint,
    /// Over apache-avro's `canonical_form()`, which versions up to 0.1 wrote: still read, as
    /// another name of the same writer schema.
    legacy_fingerprint: Fingerprint,
    schema: Schema,
}

impl KnownSchema {
    fn parse(version: u32, text: &str) -> Result<KnownSchema, SchemaError> {
        let invalid = |reason: String| SchemaError::Invalid { version, reason };
        let schema = Schema::parse_str(text).map_err(|e| invalid(e.to_string()))?;
        let canonical = parsing_canonical_form(text).map_err(|e| invalid(e.to_string()))?;
        Ok(KnownSchema {
            version,
            fingerprint: Fingerprint(crc64_avro(canonical.as_bytes()).to_le_bytes()),
            legacy_fingerprint: Fingerprint(
                crc64_avro(schema.canonical_form().as_bytes()).to_le_bytes(),
            ),
            schema,
        })
    }
}

/// Why a writer schema given to [`Codec::reading_also`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Not an Avro schema.
    #[error("host event schema v{version} is not a valid Avro schema: {reason}")]
    Invalid {
        /// The version it was given as.
        version: u32,
        /// What the parser said.
        reason: String,
    },
    /// Another schema already has this version number.
    #[error(
        "host event schema v{version} is given twice with different texts: a released version never changes"
    )]
    Conflict {
        /// The version number.
        version: u32,
    },
    /// The schema cannot be resolved to the one this build reads into.
    #[error("data written with host event schema v{version} cannot be read as v{reader}: {reason}")]
    Incompatible {
        /// The writer version.
        version: u32,
        /// The reader version.
        reader: u32,
        /// What the resolver said.
        reason: String,
    },
}

/// Every bundled schema, parsed once per process.
static KNOWN: LazyLock<Vec<&'static KnownSchema>> = LazyLock::new(|| {
    HOST_EVENT_SCHEMAS
        .iter()
        .map(|(version, text)| {
            &*Box::leak(Box::new(
                KnownSchema::parse(*version, text)
                    .expect("bundled schemas are valid Avro (tested)"),
            ))
        })
        .collect()
});

/// How to read data written with one known schema.
struct WriterEntry {
    known: &'static KnownSchema,
    /// Read by the hand-written decoder ([`crate::binary`]): the writer schema is the reader
    /// schema and the one that code was written for.
    fast: bool,
    /// Reads straight into the Rust types; set when the writer schema is the reader schema.
    direct: Option<GenericDatumReader<'static>>,
    /// Reads a generic value resolved to the reader schema; for older and newer writers.
    resolving: GenericDatumReader<'static>,
}

/// Encodes and decodes host events. Build one and share it; it is immutable.
pub struct Codec {
    writer: &'static KnownSchema,
    datum_writer: GenericDatumWriter<'static>,
    /// Written by the hand-written encoder ([`crate::binary`]).
    fast_writer: bool,
    reader_version: u32,
    writers: Vec<WriterEntry>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("writer_version", &self.writer.version)
            .field("reader_version", &self.reader_version)
            .finish()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

fn known(version: u32) -> Option<&'static KnownSchema> {
    KNOWN.iter().copied().find(|k| k.version == version)
}

fn resolving_reader(
    writer: &'static KnownSchema,
    reader: &'static KnownSchema,
) -> Result<GenericDatumReader<'static>, SchemaError> {
    let incompatible = |reason: String| SchemaError::Incompatible {
        version: writer.version,
        reader: reader.version,
        reason,
    };
    SchemaCompatibility::can_read(&writer.schema, &reader.schema)
        .map_err(|e| incompatible(e.to_string()))?;
    GenericDatumReader::builder(&writer.schema)
        .reader_schema(&reader.schema)
        .human_readable(false)
        .build()
        .map_err(|e| incompatible(e.to_string()))
}

impl Codec {
    /// A codec that writes [`CURRENT_VERSION`] and reads every version compiled in.
    pub fn new() -> Self {
        Codec::writing(CURRENT_VERSION).expect("the current schema version is compiled in")
    }

    /// The same codec as [`Codec::new`] without its hand-written fast path: every datum goes
    /// through the generic Avro library. Same bytes, same events, slower; for comparisons
    /// (the codec benchmark measures one against the other).
    pub fn generic() -> Self {
        let mut codec = Codec::new();
        codec.fast_writer = false;
        for w in &mut codec.writers {
            w.fast = false;
        }
        codec
    }

    /// A codec that writes the given schema version (to test compatibility); `None` if that
    /// version is not compiled in.
    pub fn writing(version: u32) -> Option<Self> {
        Codec::between(version, CURRENT_VERSION)
    }

    /// A codec that writes `writer` and resolves everything it reads into `reader` (to test
    /// compatibility); `None` if either version is not compiled in.
    pub fn between(writer: u32, reader: u32) -> Option<Self> {
        let writer = known(writer)?;
        let reader = known(reader)?;
        let datum_writer = GenericDatumWriter::builder(&writer.schema)
            .human_readable(false)
            .build()
            .expect("bundled schemas resolve (tested)");
        let writers = KNOWN
            .iter()
            .map(|&k| WriterEntry {
                known: k,
                fast: k.version == reader.version && k.fingerprint.0 == binary::FINGERPRINT,
                direct: (k.version == reader.version).then(|| {
                    GenericDatumReader::builder(&k.schema)
                        .human_readable(false)
                        .build()
                        .expect("bundled schemas resolve (tested)")
                }),
                resolving: resolving_reader(k, reader).expect("bundled schemas resolve (tested)"),
            })
            .collect();
        Some(Codec {
            writer,
            datum_writer,
            fast_writer: writer.fingerprint.0 == binary::FINGERPRINT,
            reader_version: reader.version,
            writers,
        })
    }

    /// A codec that writes [`CURRENT_VERSION`] and also reads data written with `extra`
    /// schema versions, given as (version, `.avsc` text): for instance newer versions a
    /// consumer loads from a directory before this build knows them. Their fields this build
    /// does not know are skipped and their unknown enum symbols read as the enum's default,
    /// as Avro schema resolution says. A version given again with the text compiled in is
    /// ignored.
    ///
    /// The parsed schemas live as long as the process: build such a codec once.
    pub fn reading_also(extra: &[(u32, &str)]) -> Result<Self, SchemaError> {
        let mut codec = Codec::new();
        let reader =
            known(codec.reader_version).expect("the current schema version is compiled in");
        for &(version, text) in extra {
            let parsed = KnownSchema::parse(version, text)?;
            if let Some(entry) = codec.writers.iter().find(|w| w.known.version == version) {
                if entry.known.fingerprint == parsed.fingerprint {
                    continue;
                }
                return Err(SchemaError::Conflict { version });
            }
            let known: &'static KnownSchema = Box::leak(Box::new(parsed));
            codec.writers.push(WriterEntry {
                known,
                fast: false,
                direct: None,
                resolving: resolving_reader(known, reader)?,
            });
        }
        Ok(codec)
    }

    /// Fingerprint of the schema this codec writes.
    pub fn writer_fingerprint(&self) -> Fingerprint {
        self.writer.fingerprint
    }

    /// Encodes one event as an Avro single-object message.
    pub fn encode(&self, event: &HostEvent) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(event, &mut out)?;
        Ok(out)
    }

    /// Appends one event, single-object encoded, to `out`. On error `out` is left as it was.
    pub fn encode_into(&self, event: &HostEvent, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&self.writer.fingerprint.0);
        if self.fast_writer {
            binary::encode(event, out);
            return Ok(());
        }
        if let Err(e) = self.datum_writer.write_ser(out, &AvroEvent::from(event)) {
            out.truncate(start);
            return Err(EncodeError {
                event_id: event.event_id.clone(),
                version: self.writer.version,
                reason: e.to_string(),
            });
        }
        Ok(())
    }

    /// Decodes one message of the host events topic: a host event (any compiled-in version)
    /// or a lock fact, told apart by the writer schema's fingerprint.
    pub fn decode_fact(&self, bytes: &[u8]) -> Result<Fact, DecodeError> {
        if bytes.len() >= HEADER_LEN && bytes[..2] == MARKER {
            let mut fp = [0u8; 8];
            fp.copy_from_slice(&bytes[2..HEADER_LEN]);
            if let Some(schema) = lock_schema(Fingerprint(fp)) {
                return decode_lock(schema, &bytes[HEADER_LEN..]).map(Fact::Lock);
            }
        }
        self.decode(bytes).map(Fact::Host)
    }

    /// Decodes one single-object message, resolving its writer schema by fingerprint.
    pub fn decode(&self, bytes: &[u8]) -> Result<HostEvent, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        if bytes[..2] != MARKER {
            return Err(DecodeError::BadMarker {
                found: [bytes[0], bytes[1]],
            });
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        let fingerprint = Fingerprint(fp);
        let entry = self.writers.iter().find(|w| {
            w.known.fingerprint == fingerprint || w.known.legacy_fingerprint == fingerprint
        });
        let Some(entry) = entry else {
            if let Some(lock) = lock_schema(fingerprint) {
                return Err(DecodeError::NotAHostEvent {
                    version: lock.version,
                });
            }
            return Err(DecodeError::UnknownFingerprint {
                fingerprint,
                known: self.writers.len(),
            });
        };
        let version = entry.known.version;
        let datum_error = |reason: String| DecodeError::Datum { version, reason };
        let mut rest = &bytes[HEADER_LEN..];
        if entry.fast {
            let (event, rest) = binary::decode(rest).map_err(datum_error)?;
            if !rest.is_empty() {
                return Err(DecodeError::TrailingBytes {
                    version,
                    trailing: rest.len(),
                });
            }
            return Ok(event);
        }
        let event = match &entry.direct {
            Some(direct) => direct.read_deser::<AvroEvent<'_>>(&mut rest),
            None => entry
                .resolving
                .read_value(&mut rest)
                .and_then(|value| from_value::<AvroEvent<'_>>(&value)),
        }
        .map(HostEvent::from)
        .map_err(|e| datum_error(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                version,
                trailing: rest.len(),
            });
        }
        Ok(event)
    }
}

#[cfg(test)]
mod fast_path_tests {
    //! The hand-written datum code against the generic Avro library, over generated events.

    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{EventKind, FieldChange, HostState, Lifecycle, Timestamp};

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn text(&mut self) -> String {
            const PIECES: [&str; 8] = ["a", "host-", "é", "日本", "", "0", " ", "\u{1F600}"];
            let max = if self.below(10) == 0 { 200 } else { 6 };
            let len = self.below(max);
            (0..len)
                .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
                .collect()
        }
        fn maybe(&mut self) -> Option<String> {
            (self.below(3) > 0).then(|| self.text())
        }
        fn long(&mut self) -> i64 {
            match self.below(4) {
                0 => 0,
                1 => -(self.below(1 << 40) as i64),
                2 => self.next() as i64,
                _ => 1_767_225_600_000_000 + self.below(1 << 36) as i64,
            }
        }
    }

    fn event(g: &mut Gen) -> HostEvent {
        let mut state = HostState::new(g.text(), Lifecycle::ALL[g.below(5) as usize], g.text());
        state.region = g.maybe();
        state.zone = g.maybe();
        state.role = g.maybe();
        state.team = g.maybe();
        state.addresses = (0..g.below(4)).map(|_| g.text()).collect();
        state.machine_type = g.maybe();
        state.attributes = (0..g.below(5))
            .map(|_| (g.text(), g.text()))
            .collect::<BTreeMap<_, _>>();
        HostEvent {
            event_id: g.text(),
            host_id: g.text(),
            kind: EventKind::ALL[g.below(6) as usize],
            provider: g.text(),
            source: g.text(),
            observed_at: Timestamp(g.long()),
            state,
            changes: (0..g.below(4))
                .map(|_| FieldChange {
                    field: g.text(),
                    old: g.maybe(),
                    new: g.maybe(),
                })
                .collect(),
        }
    }

    fn generic_encode(e: &HostEvent) -> Vec<u8> {
        let schema = &known(1).expect("v1").schema;
        let writer = GenericDatumWriter::builder(schema)
            .human_readable(false)
            .build()
            .expect("writer");
        let mut out = Vec::new();
        writer
            .write_ser(&mut out, &AvroEvent::from(e))
            .expect("generic encode");
        out
    }

    fn generic_decode(bytes: &[u8]) -> Result<HostEvent, String> {
        let schema = &known(1).expect("v1").schema;
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .expect("reader");
        let mut rest = bytes;
        let e = reader
            .read_deser::<AvroEvent<'_>>(&mut rest)
            .map(HostEvent::from)
            .map_err(|e| e.to_string())?;
        if rest.is_empty() {
            Ok(e)
        } else {
            Err("trailing bytes".into())
        }
    }

    #[test]
    fn the_fast_path_is_for_exactly_the_v1_schema() {
        assert_eq!(
            known(1).expect("v1").fingerprint.0,
            binary::FINGERPRINT,
            "the schema changed: bring schemas/src/binary.rs up to date, then its fingerprint"
        );
        let codec = Codec::new();
        assert!(codec.fast_writer && codec.writers.iter().all(|w| w.fast));
    }

    #[test]
    fn both_paths_write_the_same_bytes_and_read_the_same_events() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        for i in 0..5_000 {
            let e = event(&mut g);
            let generic = generic_encode(&e);
            let mut fast = Vec::new();
            binary::encode(&e, &mut fast);
            assert_eq!(fast, generic, "event {i}: {e:?}");
            let (decoded, rest) = binary::decode(&generic).expect("fast decode");
            assert!(rest.is_empty());
            assert_eq!(decoded, e, "event {i}");
            assert_eq!(generic_decode(&generic).expect("generic decode"), e);
        }
    }

    #[test]
    fn damaged_data_is_an_error_on_both_paths_never_a_panic_or_a_guess() {
        let mut g = Gen(42);
        for _ in 0..300 {
            let e = event(&mut g);
            let bytes = generic_encode(&e);
            for cut in 0..bytes.len() {
                let fast = binary::decode(&bytes[..cut]);
                assert!(
                    fast.is_err(),
                    "a datum cut at {cut} of {} was read",
                    bytes.len()
                );
                assert!(generic_decode(&bytes[..cut]).is_err());
            }
            // One flipped byte: the fast path either fails or reads what the generic one reads.
            let mut flipped = bytes.clone();
            let at = g.below(flipped.len() as u64) as usize;
            flipped[at] ^= 1 << g.below(8);
            match (binary::decode(&flipped), generic_decode(&flipped)) {
                (Ok((fast, [])), Ok(generic)) => assert_eq!(fast, generic),
                (Ok((_, rest)), Err(_)) => assert!(
                    !rest.is_empty(),
                    "the fast path read a datum the generic path refuses"
                ),
                _ => {}
            }
        }
        let codec = Codec::new();
        let mut bad = Vec::from(MARKER);
        bad.extend_from_slice(&binary::FINGERPRINT);
        bad.extend_from_slice(&[0x02, b'a', 0x02, 0xff]);
        let err = codec.decode(&bad).expect_err("not UTF-8");
        assert!(
            matches!(&err, DecodeError::Datum { version: 1, reason } if reason.contains("host_id")),
            "{err}"
        );
        let mut garbage = Gen(7);
        for _ in 0..10_000 {
            let mut bytes = bad[..HEADER_LEN].to_vec();
            bytes.extend((0..garbage.below(64)).map(|_| garbage.next() as u8));
            let _ = codec.decode(&bytes);
        }
    }
}

//! Schema evolution, proven with a next version that is never shipped:
//! `tests/evolution/host_event.v2.avsc` adds a field to the event and one to its state (both
//! with defaults) and a symbol to each enum. Every reader version decodes every writer version,
//! and an old reader given a newer writer's event reads it the way docs/events.md says: the
//! new fields are skipped, a new symbol reads as the enum's default (`HostChanged`,
//! `OutOfService`), and without the newer `.avsc` the message is one it cannot read.

use std::path::{Path, PathBuf};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use hostledger_schemas::{
    Codec, DecodeError, EventKind, HEADER_LEN, HOST_EVENT_SCHEMAS, Lifecycle, MARKER, SchemaError,
    crc64_avro, parsing_canonical_form,
};
use serde_json::{Value as Json, json};

const V1: &str = include_str!("../avro/host_event.v1.avsc");
const V2: &str = include_str!("evolution/host_event.v2.avsc");

/// Every shipped version, then the test-only next one.
fn versions() -> Vec<(u32, &'static str)> {
    let mut all = HOST_EVENT_SCHEMAS.to_vec();
    all.push((2, V2));
    all
}

fn schema(text: &str) -> Schema {
    Schema::parse_str(text).expect("a valid schema")
}

/// An event as version 1 knows it, in the schema's field names.
fn event_v1() -> Json {
    json!({
        "event_id": "0190f0e4-8d2c-7a3b-9c1e-5f6a7b8c9d0e",
        "host_id": "dc/pdx1/SRV000123",
        "kind": "HostLifecycleChanged",
        "provider": "dc",
        "source": "dc-export-pdx1",
        "observed_at": 1_767_225_600_123_456_i64,
        "state": {
            "name": "log-pdx1-07",
            "lifecycle": "InService",
            "provider_status": "active",
            "region": "pdx1",
            "zone": null,
            "role": "log",
            "team": null,
            "addresses": ["10.20.3.7"],
            "machine_type": "R650",
            "attributes": {"serial": "SRV000123"},
        },
        "changes": [{"field": "lifecycle", "old": "OutOfService", "new": "InService"}],
    })
}

/// The same event written by version 2: its new fields set, its new symbols used.
fn event_v2() -> Json {
    let mut e = event_v1();
    e["kind"] = json!("HostLocked");
    e["state"]["lifecycle"] = json!("Draining");
    e["state"]["rack"] = json!("C12");
    e["lock_holder"] = json!("alice");
    e
}

fn write(text: &str, event: &Json) -> Vec<u8> {
    let writer = schema(text);
    let value = Value::try_from(event.clone())
        .expect("JSON converts")
        .resolve(&writer)
        .expect("the event fits the writer schema");
    GenericDatumWriter::builder(&writer)
        .build()
        .expect("a writer")
        .write_value_to_vec(value)
        .expect("encodes")
}

fn read(writer: &str, reader: &str, datum: &[u8]) -> Json {
    let (writer, reader) = (schema(writer), schema(reader));
    let value = GenericDatumReader::builder(&writer)
        .reader_schema(&reader)
        .build()
        .expect("a resolving reader")
        .read_value(&mut &datum[..])
        .expect("the reader resolves the writer's datum");
    Json::try_from(value).expect("converts to JSON")
}

/// A single-object message, as a version-2 producer would write it.
fn message(text: &str, event: &Json) -> Vec<u8> {
    let canonical = parsing_canonical_form(text).expect("a valid schema");
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(&crc64_avro(canonical.as_bytes()).to_le_bytes());
    bytes.extend(write(text, event));
    bytes
}

#[test]
fn every_reader_version_can_read_every_writer_version() {
    for (w, writer) in versions() {
        for (r, reader) in versions() {
            SchemaCompatibility::can_read(&schema(writer), &schema(reader))
                .unwrap_or_else(|e| panic!("v{r} cannot read v{w}: {e}"));
        }
    }
}

#[test]
fn each_pair_of_versions_resolves_fields_and_symbols_as_avro_says() {
    // Old writer, new reader: the new fields take their defaults.
    let mut v1_as_v2 = event_v1();
    v1_as_v2["state"]["rack"] = Json::Null;
    v1_as_v2["lock_holder"] = Json::Null;
    // New writer, old reader: the new fields are skipped, the new symbols read as defaults.
    let mut v2_as_v1 = event_v1();
    v2_as_v1["kind"] = json!("HostChanged");
    v2_as_v1["state"]["lifecycle"] = json!("OutOfService");
    let cases = [
        (V1, event_v1(), V1, event_v1()),
        (V1, event_v1(), V2, v1_as_v2),
        (V2, event_v2(), V2, event_v2()),
        (V2, event_v2(), V1, v2_as_v1),
    ];
    for (i, (writer, written, reader, expected)) in cases.into_iter().enumerate() {
        let datum = write(writer, &written);
        assert_eq!(read(writer, reader, &datum), expected, "case {i}");
    }
}

#[test]
fn a_newer_writers_new_symbols_and_fields_read_as_documented() {
    let codec = Codec::reading_also(&[(2, V2)]).expect("v2 resolves to v1");
    let event = codec
        .decode(&message(V2, &event_v2()))
        .expect("an old reader given the newer .avsc decodes it");
    assert_eq!(
        event.kind,
        EventKind::HostChanged,
        "unknown kind → the enum's default"
    );
    assert_eq!(
        event.state.lifecycle,
        Lifecycle::OutOfService,
        "unknown phase → the default"
    );
    assert_eq!(event.host_id, "dc/pdx1/SRV000123");
    assert_eq!(event.observed_at.unix_micros(), 1_767_225_600_123_456);
    assert_eq!(event.state.role.as_deref(), Some("log"));
    assert!(
        !event.state.attributes.contains_key("rack"),
        "a new field is skipped, not guessed"
    );

    // Symbols this build knows keep their meaning; only the new ones fall back.
    let mut known_symbols = event_v2();
    known_symbols["kind"] = json!("HostLifecycleChanged");
    known_symbols["state"]["lifecycle"] = json!("InService");
    let event = codec.decode(&message(V2, &known_symbols)).expect("decodes");
    assert_eq!(event.kind, EventKind::HostLifecycleChanged);
    assert_eq!(event.state.lifecycle, Lifecycle::InService);

    // Version 1 data still decodes with the same codec.
    let event = codec.decode(&message(V1, &event_v1())).expect("decodes");
    assert_eq!(event.kind, EventKind::HostLifecycleChanged);
}

#[test]
fn without_the_newer_schema_its_messages_are_unknown_not_misread() {
    let bytes = message(V2, &event_v2());
    match Codec::new().decode(&bytes) {
        Err(DecodeError::UnknownFingerprint { fingerprint, known }) => {
            assert_eq!(fingerprint.0[..], bytes[2..HEADER_LEN]);
            assert_eq!(known, HOST_EVENT_SCHEMAS.len());
        }
        other => panic!("expected an unknown fingerprint, got {other:?}"),
    }
}

#[test]
fn schemas_that_cannot_be_read_are_refused_when_given() {
    let err = Codec::reading_also(&[(2, "{\"type\": \"record\"}")]).expect_err("not a schema");
    assert!(
        matches!(err, SchemaError::Invalid { version: 2, .. }),
        "{err}"
    );

    let changed = V1.replace("\"HostRetired\"]", "\"HostRetired\", \"HostRenamed\"]");
    assert_ne!(changed, V1);
    let err = Codec::reading_also(&[(1, changed.as_str())]).expect_err("v1 changed");
    assert!(matches!(err, SchemaError::Conflict { version: 1 }), "{err}");
    // The compiled-in schema is not a conflict, nor is a copy whose docs differ (the Parsing
    // Canonical Form, and so the fingerprint, leaves docs out).
    Codec::reading_also(&[(1, V1)]).expect("the same v1");
    let redocumented = V1.replace("Unique id of this event (UUID).", "Another doc.");
    Codec::reading_also(&[(1, redocumented.as_str())]).expect("the same v1, other docs");

    // A writer without a field the reader needs (host_id has no default).
    let mut no_host_id: Json = serde_json::from_str(V1).expect("JSON");
    let fields = no_host_id["fields"].as_array_mut().expect("fields");
    fields.retain(|f| f["name"] != "host_id");
    let err = Codec::reading_also(&[(3, no_host_id.to_string().as_str())])
        .expect_err("v1 cannot read a writer without host_id");
    assert!(
        matches!(
            err,
            SchemaError::Incompatible {
                version: 3,
                reader: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cannot be read as v1"), "{err}");
}

/// The reference implementation agrees: Avro for Java's own single-object decoder, with the
/// version 1 schema as its reader and version 2 added to its schema store, reads the newer
/// event the same way.
#[test]
fn avro_for_java_resolves_the_newer_event_the_same_way() {
    let Some(jars) = std::env::var_os("HOSTLEDGER_JAVA_AVRO") else {
        eprintln!(
            "skipped: HOSTLEDGER_JAVA_AVRO is not set (scripts/test sets it from scripts/lib/java-avro.sh)"
        );
        return;
    };
    let dir = tempfile_dir();
    let msg = dir.join("v2.bin");
    std::fs::write(&msg, message(V2, &event_v2())).expect("write message");
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("java")
        .arg("-cp")
        .arg(Path::new(&jars).join("*"))
        .arg(here.join("tests/reference/AvroReference.java"))
        .arg("resolve")
        .arg(here.join("avro/host_event.v1.avsc"))
        .arg(&msg)
        .arg(here.join("tests/evolution/host_event.v2.avsc"))
        .output()
        .expect("java runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Json =
        serde_json::from_slice(&out.stdout).expect("AvroReference prints one JSON record");
    let mut expected = event_v1();
    expected["kind"] = json!("HostChanged");
    expected["state"]["lifecycle"] = json!("OutOfService");
    assert_eq!(theirs, expected);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hostledger-evolution-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

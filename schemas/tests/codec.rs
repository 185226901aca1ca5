//! The event contract: round trips, golden bytes, compatibility between every pair of schema
//! versions, and rejection of bad bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hostledger_schemas::{
    Codec, DecodeError, EventKind, FieldChange, HEADER_LEN, HOST_EVENT_SCHEMAS, HostEvent,
    HostState, Lifecycle, MARKER, Timestamp, parsing_canonical_form,
};
use proptest::prelude::*;

fn sample(kind: EventKind) -> HostEvent {
    let mut state = HostState::new("log-pdx1-07", Lifecycle::InService, "active");
    state.region = Some("pdx1".into());
    state.zone = Some("row-c".into());
    state.role = Some("log".into());
    state.team = Some("observability".into());
    state.addresses = vec!["10.20.3.7".into(), "2001:db8::7".into()];
    state.machine_type = Some("Dell R650".into());
    state.attributes = BTreeMap::from([
        ("rack".to_owned(), "C12".to_owned()),
        ("serial".to_owned(), "SRV000123".to_owned()),
    ]);
    HostEvent {
        event_id: "0190f0e4-8d2c-7a3b-9c1e-5f6a7b8c9d0e".into(),
        host_id: "dc/pdx1/SRV000123".into(),
        kind,
        provider: "dc".into(),
        source: "dc-export-pdx1".into(),
        observed_at: Timestamp::from_unix_micros(1_767_225_600_123_456),
        state,
        changes: vec![FieldChange {
            field: "role".into(),
            old: None,
            new: Some("log".into()),
        }],
    }
}

fn golden_path(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/host_event.v{version}.bin"))
}

#[test]
fn every_kind_round_trips() {
    let codec = Codec::new();
    for kind in EventKind::ALL {
        let event = sample(kind);
        let bytes = codec.encode(&event).expect("encodes");
        assert_eq!(bytes[..2], MARKER);
        assert_eq!(bytes[2..HEADER_LEN], codec.writer_fingerprint().0);
        assert_eq!(codec.decode(&bytes).expect("decodes"), event);
    }
}

#[test]
fn every_lifecycle_and_empty_optionals_round_trip() {
    let codec = Codec::new();
    for lifecycle in Lifecycle::ALL {
        let mut event = sample(EventKind::HostLifecycleChanged);
        event.state = HostState::new("bare", lifecycle, "");
        event.changes.clear();
        let decoded = codec
            .decode(&codec.encode(&event).expect("encodes"))
            .expect("decodes");
        assert_eq!(decoded, event);
    }
}

/// The bytes of a known event are fixed forever for a released schema version. If this test
/// fails, the encoding changed: that breaks every consumer of the log.
#[test]
fn golden_bytes_of_every_released_version() {
    for (version, _) in HOST_EVENT_SCHEMAS {
        let codec = Codec::writing(*version).expect("version compiled in");
        let event = sample(EventKind::HostChanged);
        let bytes = codec.encode(&event).expect("encodes");
        let path = golden_path(*version);
        if std::env::var_os("HOSTLEDGER_UPDATE_GOLDEN").is_some() && !path.exists() {
            std::fs::write(&path, &bytes).expect("write golden file");
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; create it once with HOSTLEDGER_UPDATE_GOLDEN=1",
                path.display()
            )
        });
        assert_eq!(bytes, golden, "encoding of schema v{version} changed");
        assert_eq!(Codec::new().decode(&golden).expect("golden decodes"), event);
    }
}

/// The header written by hand from the specification: marker, then the little-endian
/// CRC-64-AVRO of the Parsing Canonical Form (the value Avro for Java computes: see
/// tests/reference.rs).
#[test]
fn golden_header_is_marker_and_fingerprint() {
    let golden = std::fs::read(golden_path(1)).expect("golden v1 exists");
    assert_eq!(golden[0], 0xC3);
    assert_eq!(golden[1], 0x01);
    let canonical = parsing_canonical_form(HOST_EVENT_SCHEMAS[0].1).expect("a schema");
    let fp = hostledger_schemas::crc64_avro(canonical.as_bytes());
    assert_eq!(golden[2..10], fp.to_le_bytes());
    assert_eq!(
        fp, 0x89f5_f858_8539_5850,
        "the fingerprint Avro for Java computes"
    );
}

/// Messages written before the fingerprint followed the specification carry the CRC-64-AVRO
/// of apache-avro's own canonical form: they are still read, as the same writer schema.
#[test]
fn messages_with_the_legacy_fingerprint_still_decode() {
    let path = golden_path(1).with_file_name("host_event.v1.legacy-fingerprint.bin");
    let legacy = std::fs::read(&path).expect("legacy golden exists");
    let schema = apache_avro::Schema::parse_str(HOST_EVENT_SCHEMAS[0].1).expect("parses");
    let old = hostledger_schemas::crc64_avro(schema.canonical_form().as_bytes());
    assert_eq!(legacy[2..10], old.to_le_bytes(), "the legacy header");
    let event = Codec::new()
        .decode(&legacy)
        .expect("a legacy message decodes");
    assert_eq!(event, sample(EventKind::HostChanged));
    let current = std::fs::read(golden_path(1)).expect("golden v1 exists");
    assert_eq!(
        legacy[HEADER_LEN..],
        current[HEADER_LEN..],
        "only the header differs"
    );
}

/// Every reader version decodes data from every writer version.
#[test]
fn every_reader_decodes_every_writer() {
    for (writer, _) in HOST_EVENT_SCHEMAS {
        for (reader, _) in HOST_EVENT_SCHEMAS {
            let codec = Codec::between(*writer, *reader).expect("versions compiled in");
            let event = sample(EventKind::HostDiscovered);
            let decoded = codec.decode(&codec.encode(&event).expect("encodes"));
            assert_eq!(
                decoded.expect("decodes"),
                event,
                "writer v{writer}, reader v{reader}"
            );
        }
    }
}

#[test]
fn bundled_schemas_are_distinct_and_ordered() {
    let versions: Vec<u32> = HOST_EVENT_SCHEMAS.iter().map(|(v, _)| *v).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(versions, sorted);
    assert_eq!(
        *versions.last().expect("at least one"),
        hostledger_schemas::CURRENT_VERSION
    );
}

#[test]
fn rejects_short_input() {
    let codec = Codec::new();
    for len in 0..HEADER_LEN {
        let bytes = vec![0xC3; len];
        assert_eq!(codec.decode(&bytes), Err(DecodeError::TooShort { len }));
    }
}

#[test]
fn rejects_bad_marker() {
    let codec = Codec::new();
    let mut bytes = codec
        .encode(&sample(EventKind::HostChanged))
        .expect("encodes");
    bytes[0] = b'{';
    let err = codec.decode(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::BadMarker {
                found: [b'{', 0x01]
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_unknown_fingerprint_with_its_hex() {
    let codec = Codec::new();
    let mut bytes = codec
        .encode(&sample(EventKind::HostChanged))
        .expect("encodes");
    bytes[2..10].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
    let err = codec.decode(&bytes).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownFingerprint { .. }));
    assert!(err.to_string().contains("deadbeef00000001"), "{err}");
}

#[test]
fn rejects_every_truncation() {
    let codec = Codec::new();
    let bytes = codec
        .encode(&sample(EventKind::HostRetired))
        .expect("encodes");
    for cut in HEADER_LEN..bytes.len() {
        let err = codec
            .decode(&bytes[..cut])
            .expect_err("truncated message must not decode");
        assert!(
            matches!(err, DecodeError::Datum { version: 1, .. }),
            "cut {cut}: {err}"
        );
    }
}

#[test]
fn rejects_trailing_bytes() {
    let codec = Codec::new();
    let mut bytes = codec
        .encode(&sample(EventKind::HostChanged))
        .expect("encodes");
    bytes.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        codec.decode(&bytes),
        Err(DecodeError::TrailingBytes {
            version: 1,
            trailing: 3
        })
    );
}

#[test]
fn rejects_out_of_range_enum_symbol() {
    let codec = Codec::new();
    let event = sample(EventKind::HostChanged);
    let mut bytes = codec.encode(&event).expect("encodes");
    // The kind enum index follows the two strings event_id and host_id (zig-zag length
    // prefixes of one byte each here); index 1 = HostChanged is encoded as zig-zag 2.
    let kind_at = HEADER_LEN + 1 + event.event_id.len() + 1 + event.host_id.len();
    assert_eq!(bytes[kind_at], 2);
    bytes[kind_at] = 2 * 40;
    assert!(matches!(
        codec.decode(&bytes),
        Err(DecodeError::Datum { .. })
    ));
}

proptest! {
    #[test]
    fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let codec = Codec::new();
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&codec.writer_fingerprint().0);
        bytes.extend_from_slice(&body);
        // Either an error or (rarely) an event; never a panic or a hang.
        let _ = codec.decode(&bytes);
        let _ = codec.decode(&body);
    }

    #[test]
    fn arbitrary_events_round_trip(
        host in "[a-z]{1,8}/[a-z0-9]{1,6}/[A-Z0-9]{1,12}",
        name in "\\PC{0,30}",
        micros in 946_684_800_000_000i64..7_258_118_400_000_000,
        kind in 0usize..6,
        lifecycle in 0usize..5,
        attrs in proptest::collection::btree_map("[a-z_]{1,10}", "\\PC{0,20}", 0..8),
    ) {
        let codec = Codec::new();
        let mut event = sample(EventKind::ALL[kind]);
        event.host_id = host;
        event.state.name = name;
        event.state.lifecycle = Lifecycle::ALL[lifecycle];
        event.state.attributes = attrs;
        event.observed_at = Timestamp::from_unix_micros(micros);
        let decoded = codec.decode(&codec.encode(&event).expect("encodes")).expect("decodes");
        prop_assert_eq!(decoded, event);
    }
}

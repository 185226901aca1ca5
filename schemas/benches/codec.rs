//! Encode and decode throughput of the host event codec on one core:
//! `cargo bench -p hostledger-schemas --bench codec [-- --events N]` (release build).

use std::collections::BTreeMap;
use std::time::Instant;

use hostledger_schemas::{
    Codec, EventKind, FieldChange, HostEvent, HostState, Lifecycle, Timestamp,
};

fn events(n: usize) -> Vec<HostEvent> {
    (0..n)
        .map(|i| {
            let mut state = HostState::new(format!("web-{i:05}"), Lifecycle::InService, "running");
            state.region = Some("us-east-1".into());
            state.zone = Some("us-east-1c".into());
            state.role = Some("web".into());
            state.team = Some("storefront".into());
            state.addresses = vec![format!("10.0.{}.{}", i / 256 % 256, i % 256)];
            state.machine_type = Some("m6i.large".into());
            state.attributes = BTreeMap::from([
                ("env".to_owned(), "prod".to_owned()),
                ("rack".to_owned(), format!("r{}", i % 40)),
            ]);
            HostEvent {
                event_id: format!("0190f0e4-8d2c-7a3b-9c1e-{i:012}"),
                host_id: format!("aws/123456789012/us-east-1/i-{i:017x}"),
                kind: EventKind::HostChanged,
                provider: "aws".into(),
                source: "aws-prod".into(),
                observed_at: Timestamp(1_767_225_600_000_000 + i as i64),
                state,
                changes: vec![FieldChange {
                    field: "role".into(),
                    old: Some("db".into()),
                    new: Some("web".into()),
                }],
            }
        })
        .collect()
}

fn main() {
    let n = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let build = if cfg!(debug_assertions) {
        "dev build: not representative"
    } else {
        "release build"
    };
    println!("codec benchmark: {n} events, one core ({build})");
    let events = events(n);
    let fast = measure(&Codec::new(), &events);
    let generic = measure(&Codec::generic(), &events);
    assert_eq!(fast.bytes, generic.bytes, "both paths write the same bytes");
    println!("{:<44} {:>14} {:>14}", "", "encode ev/s", "decode ev/s");
    println!(
        "{:<44} {:>14.0} {:>14.0}",
        "hand-written datum code (Codec::new)", fast.encode, fast.decode
    );
    println!(
        "{:<44} {:>14.0} {:>14.0}",
        "baseline: generic Avro library (Codec::generic)", generic.encode, generic.decode
    );
    println!(
        "speed-up: encode {:.1}x, decode {:.1}x; {:.0} bytes per event",
        fast.encode / generic.encode,
        fast.decode / generic.decode,
        fast.bytes as f64 / n as f64
    );
}

struct Rates {
    encode: f64,
    decode: f64,
    bytes: usize,
}

fn measure(codec: &Codec, events: &[HostEvent]) -> Rates {
    let n = events.len() as f64;
    let started = Instant::now();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| codec.encode(e).expect("encodes"))
        .collect();
    let encode_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut decoded = 0usize;
    for bytes in &encoded {
        decoded += codec.decode(bytes).expect("decodes").changes.len();
    }
    let decode_secs = started.elapsed().as_secs_f64();
    assert_eq!(decoded, events.len(), "every event decoded with its change");
    Rates {
        encode: n / encode_secs,
        decode: n / decode_secs,
        bytes: encoded.iter().map(Vec::len).sum(),
    }
}

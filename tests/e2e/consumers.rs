//! Consumers in other languages read hostledger's log: examples/consumers/python
//! (confluent-kafka and fastavro) and examples/consumers/java (Kafka's Java client and Avro for
//! Java's own single-object decoder), neither of them hostledger's code, decode every event a
//! real fetcher published to the real broker, field for field as hostledger decodes it, finding
//! the writer schema by fingerprint from schemas/avro/ alone; a message that is not an event is
//! reported as such, and reading goes on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hostledger_e2e::{Role, TestEnv};
use hostledger_schemas::HostEvent;
use serde_json::{Value, json};

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_owned()
}

/// What a consumer should print for `e`: the event in the Avro schema's names, as
/// `hostledger events` prints it, but with `observed_at` as the schema's long (microseconds).
fn expected(e: &HostEvent) -> Value {
    let mut v = hostledger_inventory::events::event_json(e);
    v["observed_at"] = json!(e.observed_at.unix_micros());
    v
}

/// Runs one consumer over the test's topic; its JSON lines.
async fn consume(name: &str, mut command: tokio::process::Command, env: &TestEnv) -> Vec<Value> {
    let out = command
        // As the stack's reader identity (mutual TLS; may read the topic and consume in
        // groups named hostledger-reader-...).
        .env("HOSTLEDGER_KAFKA_CERT_FILE", Role::Reader.cert())
        .env("HOSTLEDGER_KAFKA_KEY_FILE", Role::Reader.key())
        .args(["--bootstrap", &env.bootstrap])
        .args(["--topic", &env.kafka.settings().topics.events])
        .arg("--schemas")
        .arg(repo().join("schemas/avro"))
        .args(["--idle-secs", "5"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("run the {name} consumer: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the {name} consumer failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {l}")))
        .collect()
}

/// Checks one consumer's lines: every event decoded as hostledger decodes it, and the one
/// message that is not an event reported as poison.
fn check(name: &str, lines: &[Value], events: &[HostEvent], poison_reason: &str) {
    let all = || serde_json::to_string_pretty(lines).unwrap_or_default();
    let decoded: BTreeMap<String, &Value> = lines
        .iter()
        .filter_map(|l| Some((l["event"]["event_id"].as_str()?.to_owned(), &l["event"])))
        .collect();
    assert_eq!(decoded.len(), events.len(), "{name}: {}", all());
    for event in events {
        let theirs = decoded
            .get(&event.event_id)
            .unwrap_or_else(|| panic!("{name}: {} not decoded: {}", event.event_id, all()));
        assert_eq!(**theirs, expected(event), "{name}: {}", event.event_id);
    }
    let poison: Vec<&Value> = lines.iter().filter(|l| l.get("poison").is_some()).collect();
    assert_eq!(poison.len(), 1, "{name}: {}", all());
    assert_eq!(poison[0]["key"], "dc/pdx1/PX999", "{name}");
    assert_eq!(poison[0]["poison"], poison_reason, "{name}");
}

#[tokio::test]
async fn the_python_and_java_consumers_decode_every_event_field_for_field() {
    let tools = std::env::var("HOSTLEDGER_PYTHON_TOOLS").unwrap_or_else(|_| {
        panic!("HOSTLEDGER_PYTHON_TOOLS is not set: run the tests with scripts/test, which installs confluent-kafka and fastavro")
    });
    let env = TestEnv::new("consumers", 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    // Two passes of a real fetcher: three hosts discovered, then a role change, a host into
    // maintenance (with a new rack) and a decommissioning.
    std::fs::write(
        &export,
        format!(
            "{HEADER}\
             PX100,log-pdx1-01,pdx1,hall-a,active,log,observability,10.1.0.1;2001:db8::1,R650,A01\n\
             PX200,db-pdx1-01,pdx1,hall-a,active,db,data,10.1.0.2,R750,A02\n\
             FR300,web-fra2-01,fra2,,active,web,,10.2.0.1,R650,C07\n"
        ),
    )
    .expect("write export");
    env.fetch_once(&config).await;
    std::fs::write(
        &export,
        format!(
            "{HEADER}\
             PX100,log-pdx1-01,pdx1,hall-a,active,metrics,observability,10.1.0.1;2001:db8::1,R650,A01\n\
             PX200,db-pdx1-01,pdx1,hall-a,maintenance,db,data,10.1.0.2,R750,B09\n\
             FR300,web-fra2-01,fra2,,decommissioned,web,,10.2.0.1,R650,C07\n"
        ),
    )
    .expect("write export");
    env.fetch_once(&config).await;
    let events = env.read_events();
    assert_eq!(events.len(), 6, "3 discovered, then 3 changes: {events:?}");
    env.produce_raw("dc/pdx1/PX999", b"not an event").await;

    let mut python = tokio::process::Command::new(PathBuf::from(&tools).join("python"));
    python.arg(repo().join("examples/consumers/python/consume.py"));
    let lines = consume("Python", python, &env).await;
    check("Python", &lines, &events, "no single-object marker");

    let java = tokio::process::Command::new(repo().join("examples/consumers/java/run.sh"));
    let lines = consume("Java", java, &env).await;
    check("Java", &lines, &events, "no single-object marker");
    env.cleanup().await;
}

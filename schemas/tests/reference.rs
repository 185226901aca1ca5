//! hostledger's schema fingerprints and messages as Avro for Java, the reference
//! implementation of the Avro specification, sees them: the same Parsing Canonical Form and
//! CRC-64-AVRO fingerprint for every bundled schema, and Avro's own single-object decoder
//! reads hostledger's message.
//!
//! Needs Java and the Avro jars: `scripts/test` sets `HOSTLEDGER_JAVA_AVRO` to the directory
//! `scripts/lib/java-avro.sh` fills. Without it (a plain `cargo test`) the test says so and
//! checks nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use hostledger_schemas::{HOST_EVENT_SCHEMAS, crc64_avro, parsing_canonical_form};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `AvroReference.java` with `args`; `None` when Avro for Java is not set up.
fn avro_for_java(args: &[&Path]) -> Option<String> {
    let Some(jars) = std::env::var_os("HOSTLEDGER_JAVA_AVRO") else {
        eprintln!(
            "skipped: HOSTLEDGER_JAVA_AVRO is not set (scripts/test sets it from scripts/lib/java-avro.sh)"
        );
        return None;
    };
    let classpath = Path::new(&jars).join("*");
    let out = Command::new("java")
        .arg("-cp")
        .arg(classpath)
        .arg(manifest_dir().join("tests/reference/AvroReference.java"))
        .args(args)
        .output()
        .expect("java runs");
    assert!(
        out.status.success(),
        "AvroReference.java failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8"))
}

fn schema_files() -> Vec<PathBuf> {
    HOST_EVENT_SCHEMAS
        .iter()
        .map(|(v, _)| manifest_dir().join(format!("avro/host_event.v{v}.avsc")))
        .collect()
}

#[test]
fn canonical_forms_and_fingerprints_equal_the_reference() {
    let files = schema_files();
    let args: Vec<&Path> = std::iter::once(Path::new("fingerprint"))
        .chain(files.iter().map(PathBuf::as_path))
        .collect();
    let Some(out) = avro_for_java(&args) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), HOST_EVENT_SCHEMAS.len(), "{out}");
    for ((version, text), line) in HOST_EVENT_SCHEMAS.iter().zip(lines) {
        let mut parts = line.splitn(3, '\t');
        let (_, theirs_fp, theirs_pcf) = (parts.next(), parts.next(), parts.next());
        let ours_pcf = parsing_canonical_form(text).expect("a schema");
        assert_eq!(
            Some(ours_pcf.as_str()),
            theirs_pcf,
            "v{version}: canonical form"
        );
        let ours_fp = format!("{:x}", crc64_avro(ours_pcf.as_bytes()));
        assert_eq!(Some(ours_fp.as_str()), theirs_fp, "v{version}: fingerprint");
    }
}

#[test]
fn avro_for_java_decodes_the_golden_message() {
    let golden = manifest_dir().join("tests/golden/host_event.v1.bin");
    let schema = manifest_dir().join("avro/host_event.v1.avsc");
    let Some(out) = avro_for_java(&[Path::new("decode"), &schema, &golden]) else {
        return;
    };
    let event: serde_json::Value = serde_json::from_str(out.trim()).expect("a JSON record");
    assert_eq!(event["event_id"], "0190f0e4-8d2c-7a3b-9c1e-5f6a7b8c9d0e");
    assert_eq!(event["host_id"], "dc/pdx1/SRV000123");
    assert_eq!(event["kind"], "HostChanged");
    assert_eq!(event["observed_at"], 1_767_225_600_123_456_i64);
    assert_eq!(event["state"]["lifecycle"], "InService");
    assert_eq!(event["state"]["attributes"]["rack"], "C12");
    assert_eq!(event["changes"][0]["new"], "log");
}

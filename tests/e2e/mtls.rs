//! A fetcher far from the centre publishes over TLS with a client certificate (mTLS) to the
//! stack's SSL listener; one without a certificate is refused with a message that says so.

use std::path::Path;

use hostledger_e2e::TestEnv;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run under scripts/test (scripts/stack env sets it)")
    })
}

fn config(env: &TestEnv, dir: &Path, with_certificate: bool) -> std::path::PathBuf {
    let t = &env.kafka.settings().topics;
    let mut kafka = format!(
        "kafka:\n  bootstrap_servers: {}\n  security_protocol: ssl\n  ca_file: {}\n",
        var("HOSTLEDGER_KAFKA_SSL_BOOTSTRAP"),
        var("HOSTLEDGER_KAFKA_CA_FILE")
    );
    if !with_certificate {
        // Explicitly none: not the identity $HOSTLEDGER_KAFKA_CERT_FILE names.
        kafka += "  cert_file: null\n  key_file: null\n";
    } else {
        kafka += &format!(
            "  cert_file: {}\n  key_file: {}\n",
            var("HOSTLEDGER_KAFKA_FETCHER_CERT"),
            var("HOSTLEDGER_KAFKA_FETCHER_KEY")
        );
    }
    kafka += &format!(
        "  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n",
        t.events, t.dead_letter, t.fetcher_state
    );
    let export = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/dc-inventory.csv");
    let text = format!(
        "{kafka}providers:\n  - kind: dc-export\n    name: remote-{}{}\n    path: {}\n",
        env.id,
        if with_certificate { "" } else { "-nocert" },
        export.display()
    );
    let path = dir.join(if with_certificate {
        "with-cert.yaml"
    } else {
        "without-cert.yaml"
    });
    std::fs::write(&path, text).expect("write config");
    path
}

#[tokio::test]
async fn fetcher_with_client_certificate_publishes_and_one_without_is_refused() {
    let env = TestEnv::new("mtls", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let refused = config(&env, dir.path(), false);
    let text = env.fetch_once_err_as_configured(&refused).await;
    assert!(text.contains("cannot connect to Kafka"), "{text}");
    assert!(
        text.contains("set kafka.cert_file and kafka.key_file"),
        "{text}"
    );
    assert!(env.read_events().is_empty(), "nothing was published");

    env.fetch_once(&config(&env, dir.path(), true)).await;
    assert_eq!(
        env.read_events().len(),
        40,
        "every host of the sample export, over mTLS"
    );
    env.project_until_caught_up().await;
    assert_eq!(env.statuses(&env.namespace).await.len(), 40);
    env.cleanup().await;
}

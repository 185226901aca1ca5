//! An exec plugin (deploy/examples/exec-provider-acme.py) flows through the real Kafka into
//! Hosts; a failing plugin publishes nothing.

use std::path::{Path, PathBuf};

use hostledger_e2e::TestEnv;
use hostledger_schemas::EventKind;
use serde_json::json;

fn config(env: &TestEnv, dir: &Path, state_file: &Path) -> PathBuf {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/exec-provider-acme.py");
    let t = &env.kafka.settings().topics;
    let text = format!(
        "kafka:\n  bootstrap_servers: {}\n  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n\
         missing_grace_secs: 0\nproviders:\n  - kind: exec\n    name: acme-{}\n    provider: acme\n    \
         command: [python3, {}]\n    timeout_secs: 20\n    env: {{ACME_STATE_FILE: {}}}\n",
        env.bootstrap,
        t.events,
        t.dead_letter,
        t.fetcher_state,
        env.id,
        script.display(),
        state_file.display()
    );
    let path = dir.join("fetcher.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn machine(id: &str, label: &str, state: &str, role: &str) -> serde_json::Value {
    json!({"machine_id": id, "label": label, "state": state, "dc": "ams", "rack_zone": "ams-b",
           "tags": {"role": role, "team": "storefront"}, "ipv4": "10.30.0.1", "plan": "m.large"})
}

#[tokio::test]
async fn exec_plugin_hosts_flow_into_hosts() {
    let env = TestEnv::new("exec", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("acme.json");
    let config = config(&env, dir.path(), &state);

    let write = |machines: serde_json::Value| {
        std::fs::write(&state, machines.to_string()).expect("write state")
    };
    write(json!([
        machine("vm-1", "web-1", "running", "web"),
        machine("vm-2", "web-2", "running", "web"),
        machine("vm-3", "queue-1", "booting", "queue"),
    ]));
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    let statuses = env.statuses(&env.namespace).await;
    assert_eq!(statuses.len(), 3);
    assert_eq!(statuses["acme/ams/vm-1"].provider, "exec:acme");
    assert_eq!(
        statuses["acme/ams/vm-1"].state.lifecycle.as_str(),
        "InService"
    );
    assert_eq!(
        statuses["acme/ams/vm-3"].state.lifecycle.as_str(),
        "Provisioning"
    );
    let hosts = env.list_hosts(Some("provider=exec-acme,role=web")).await;
    assert_eq!(
        hosts.len(),
        2,
        "provider label value is made valid: exec:acme -> exec-acme"
    );

    // The plugin fails: nothing is published, nobody goes missing.
    std::fs::write(&state, "{ truncated").expect("corrupt state");
    let text = env.fetch_once_err(&config).await;
    assert!(
        text.contains("exited with exit status: 2") && text.contains("cannot read account state"),
        "{text}"
    );

    // One machine halted, one destroyed, one gone from the listing.
    write(json!([
        machine("vm-1", "web-1", "halted", "web"),
        machine("vm-3", "queue-1", "destroyed", "queue")
    ]));
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    let statuses = env.statuses(&env.namespace).await;
    assert_eq!(
        statuses["acme/ams/vm-1"].state.lifecycle.as_str(),
        "OutOfService"
    );
    assert_eq!(
        statuses["acme/ams/vm-2"].state.lifecycle.as_str(),
        "Missing"
    );
    assert_eq!(
        statuses["acme/ams/vm-3"].state.lifecycle.as_str(),
        "Retired"
    );

    let mut kinds: Vec<(String, EventKind)> = env
        .read_events()
        .into_iter()
        .map(|e| (e.host_id, e.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    let expected = [
        ("acme/ams/vm-1", EventKind::HostDiscovered),
        ("acme/ams/vm-1", EventKind::HostLifecycleChanged),
        ("acme/ams/vm-2", EventKind::HostDiscovered),
        ("acme/ams/vm-2", EventKind::HostWentMissing),
        ("acme/ams/vm-3", EventKind::HostDiscovered),
        ("acme/ams/vm-3", EventKind::HostRetired),
    ];
    assert_eq!(kinds, expected.map(|(h, k)| (h.to_owned(), k)).to_vec());
    env.cleanup().await;
}

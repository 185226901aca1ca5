//! Intent and drift on the real stack: a person declares in a Host's `spec.expected` what the
//! host should be; the running projector keeps `status.drift` (its own field manager) and the
//! host's groups count it; the drift appears, changes as the provider and the labels change,
//! clears, and goes when the declaration goes; the projector's own writes never touch the
//! spec; `hostledger drift` and Prometheus discovery report it.

use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, event, run_hostledger};
use hostledger_model::drift::DriftStatus;
use hostledger_model::{Host, HostGroup};
use hostledger_schemas::Lifecycle;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WEB: &str = "test.r1.web-0";

async fn patch(env: &TestEnv, body: serde_json::Value) {
    env.hosts()
        .patch(WEB, &PatchParams::default(), &Patch::Merge(body))
        .await
        .expect("patch Host");
}

async fn wait_drift(
    env: &TestEnv,
    what: &str,
    done: impl Fn(Option<&DriftStatus>) -> bool,
) -> Host {
    let started = Instant::now();
    loop {
        let host = env.hosts().get(WEB).await.expect("Host");
        if done(host.status.as_ref().and_then(|s| s.drift.as_ref())) {
            return host;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: drift is {:?}",
            host.status.and_then(|s| s.drift)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fields(d: Option<&DriftStatus>) -> Vec<(String, String, String)> {
    d.map(|d| {
        d.differences
            .iter()
            .map(|x| (x.field.clone(), x.expected.clone(), x.actual.clone()))
            .collect()
    })
    .unwrap_or_default()
}

#[tokio::test]
async fn drift_appears_follows_the_provider_and_the_labels_and_clears() {
    let env = TestEnv::new("drift", 1).await;
    env.produce(&[
        event("test/r1/web-0", 0, 0, Lifecycle::InService, "web"),
        event("test/r1/db-0", 0, 0, Lifecycle::InService, "db"),
    ])
    .await;
    env.project_until_caught_up().await;
    let _projector = env.spawn_projector(&[], false);
    let group: HostGroup = serde_json::from_value(json!({
        "apiVersion": "hostledger.dev/v1alpha1", "kind": "HostGroup",
        "metadata": {"name": "db"}, "spec": {"selector": "role=db"},
    }))
    .expect("group");
    let groups: Api<HostGroup> = Api::namespaced(env.kube.clone(), &env.namespace);
    groups
        .create(&PostParams::default(), &group)
        .await
        .expect("create group");

    // Declared: web-0 should be a db host with the label tier=gold.
    patch(
        &env,
        json!({"spec": {"expected": {"role": "db", "labels": {"tier": "gold"}}}}),
    )
    .await;
    let host = wait_drift(&env, "drift appears", |d| d.is_some_and(|d| d.drifted)).await;
    let drift = host.status.as_ref().and_then(|s| s.drift.as_ref());
    assert_eq!(
        fields(drift),
        [
            ("role".into(), "db".into(), "web".into()),
            ("label:tier".into(), "gold".into(), String::new()),
        ]
    );
    let report = run_hostledger(&["drift", "--namespace", &env.namespace]).await;
    assert_eq!(report.code, Some(6), "{report:?}");
    assert!(
        report
            .stdout
            .contains("1 of 1 hosts with spec.expected drifted"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("label:tier"), "{}", report.stdout);

    // The provider makes it a db host: only the label is left; it is now in group db, which
    // counts it drifted. The projector's write did not touch the spec.
    env.produce(&[event("test/r1/web-0", 1, 5, Lifecycle::InService, "db")])
        .await;
    let host = wait_drift(&env, "the role matches", |d| fields(d).len() == 1).await;
    assert_eq!(
        host.spec.expected.as_ref().and_then(|e| e.role.as_deref()),
        Some("db"),
        "the projector never writes the spec"
    );
    let started = Instant::now();
    while groups
        .get("db")
        .await
        .ok()
        .and_then(|g| g.status)
        .map(|s| (s.members, s.drifted))
        != Some((2, 1))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "group db does not count the drift"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = dir.path().join("targets.json");
    run_hostledger(&[
        "prometheus-sd",
        "--output",
        targets.to_str().expect("utf-8"),
        "--namespace",
        &env.namespace,
    ])
    .await
    .ok();
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&targets).expect("targets")).expect("JSON");
    let drifted: Vec<_> = file
        .as_array()
        .expect("array")
        .iter()
        .map(|g| {
            (
                g["labels"]["hostname"].clone(),
                g["labels"]["drifted"].clone(),
            )
        })
        .collect();
    assert!(
        drifted.contains(&(json!("web-0"), json!("true"))),
        "{drifted:?}"
    );
    assert!(
        drifted.contains(&(json!("db-0"), json!("false"))),
        "{drifted:?}"
    );

    // A person adds the label: no drift left, since when it is recorded.
    patch(&env, json!({"metadata": {"labels": {"tier": "gold"}}})).await;
    let host = wait_drift(&env, "drift clears", |d| d.is_some_and(|d| !d.drifted)).await;
    assert!(fields(host.status.as_ref().and_then(|s| s.drift.as_ref())).is_empty());
    let report = run_hostledger(&["drift", "--namespace", &env.namespace]).await;
    assert_eq!(report.code, Some(0), "{report:?}");

    // The declaration goes: so does the drift status.
    patch(&env, json!({"spec": {"expected": null}})).await;
    wait_drift(&env, "drift status removed", |d| d.is_none()).await;
    env.cleanup().await;
}

//! A fetcher in a "remote region" that has nothing but a one-time bootstrap token and the CA
//! bundle enrolls through the API server's CertificateSigningRequests (`hostledger enroll`),
//! gets a Kafka client certificate from `hostledger approver` (running with only its role's
//! permissions), publishes with it, and its events become Hosts. A CSR asking for more than
//! its token allows, a used token and an expired one are refused, each saying why.

use std::path::Path;

use hostledger_e2e::{Role, TestEnv, run_hostledger_with, stack_certs, user_kubeconfig};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, PostParams};

/// Everything a process of the stack would inherit, cleared: the remote side has only the
/// token and the bundle.
const NOTHING: [(&str, &str); 4] = [
    ("KUBECONFIG", "/nonexistent"),
    ("HOSTLEDGER_KAFKA_CA_FILE", ""),
    ("HOSTLEDGER_KAFKA_CERT_FILE", ""),
    ("HOSTLEDGER_KAFKA_KEY_FILE", ""),
];

async fn bind_approver(env: &TestEnv, user: &str) {
    let subject = serde_json::json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]);
    let cluster: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "hostledger:approver"},
        "subjects": subject,
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(env.kube.clone())
        .create(&PostParams::default(), &cluster)
        .await
        .expect("bind hostledger:approver");
    let tokens: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "hostledger:approver-tokens"},
        "subjects": subject,
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(env.kube.clone(), "kube-system")
        .create(&PostParams::default(), &tokens)
        .await
        .expect("bind hostledger:approver-tokens in kube-system");
}

async fn create_token(scope: &str, ttl: &str) -> String {
    let out = run_hostledger_with(
        Role::Admin,
        &[],
        &["token", "create", "--scope", scope, "--ttl", ttl],
    )
    .await
    .ok();
    out.lines().next().expect("the token").trim().to_owned()
}

async fn enroll(
    server: &str,
    bundle: &Path,
    token: &str,
    scope: &str,
    out: &Path,
) -> hostledger_e2e::Output {
    run_hostledger_with(
        Role::Reader,
        &NOTHING,
        &[
            "enroll",
            "--server",
            server,
            "--ca",
            bundle.to_str().expect("utf-8"),
            "--token",
            token,
            "--scope",
            scope,
            "--out",
            out.to_str().expect("utf-8"),
            "--lifetime",
            "1h",
            "--timeout",
            "30s",
        ],
    )
    .await
}

#[tokio::test]
async fn a_remote_fetcher_enrolls_with_a_token_publishes_and_its_events_become_hosts() {
    let env = TestEnv::new("enroll", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = stack_certs();

    // The approver, as a user with nothing but hostledger:approver (+ the tokens in
    // kube-system), holding the CA the brokers trust for clients.
    let approver = format!("approver-{}", env.id);
    let kubeconfig = user_kubeconfig(dir.path(), &approver);
    bind_approver(&env, &approver).await;
    let mut approver_process = hostledger_e2e::hostledger_as(Role::Reader)
        .args(["approver", "--ca-cert"])
        .arg(certs.join("kafka-ca.crt"))
        .arg("--ca-key")
        .arg(certs.join("kafka-ca.key"))
        .env("KUBECONFIG", &kubeconfig)
        .env("HOSTLEDGER_LOG", "info")
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger approver");

    // The administrator: a token for the new region's scope, and that identity's ACLs.
    let scope = env.id.clone();
    let identity = format!("hostledger-fetcher-{scope}");
    let token = create_token(&scope, "10m").await;
    env.grant_fetcher(&scope, &format!("User:{identity}")).await;

    // The remote side: the API server's address, a bundle of both CAs, the token.
    let bundle = dir.path().join("bundle.crt");
    let mut text = std::fs::read_to_string(certs.join("kube-ca.crt")).expect("kube CA");
    text += &std::fs::read_to_string(certs.join("kafka-ca.crt")).expect("kafka CA");
    std::fs::write(&bundle, text).expect("bundle");
    let admin = kube::config::Kubeconfig::read().expect("the stack's kubeconfig");
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server");
    let remote = dir.path().join("remote");

    // Asking for another identity than the token's: denied, with why.
    let other = format!("elsewhere-{}", &env.id[env.id.len() - 8..]);
    let refused = enroll(&server, &bundle, &token, &other, &remote)
        .await
        .failed();
    println!("another scope: {refused}");
    assert!(refused.contains("refused"), "{refused}");
    assert!(
        refused.contains(&format!("allows only CN={identity}")),
        "{refused}"
    );

    // The token's own identity: approved and signed; the key never left.
    let out = enroll(&server, &bundle, &token, &scope, &remote).await.ok();
    assert!(out.contains(&format!("enrolled as {identity}")), "{out}");
    for file in ["tls.key", "tls.crt", "ca.crt", "kafka.yaml"] {
        assert!(remote.join(file).is_file(), "{file} written");
    }

    // A token enrolls once.
    let again = enroll(&server, &bundle, &token, &scope, &dir.path().join("again"))
        .await
        .failed();
    println!("used token: {again}");
    // Refused by the API server (the token is gone) or, while its cache still holds the token,
    // by the approver: either way, saying that a token enrolls once.
    assert!(again.contains("enrolls once"), "{again}");

    // The enrolled identity publishes as its scope, and the events become Hosts.
    let t = &env.kafka.settings().topics;
    let config = dir.path().join("remote-fetcher.yaml");
    let export = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/dc-inventory.csv");
    let kafka = std::fs::read_to_string(remote.join("kafka.yaml")).expect("kafka.yaml");
    let kafka: String = kafka
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("  {l}\n"))
        .collect();
    std::fs::write(
        &config,
        format!(
            "kafka:\n{kafka}  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n\
             providers:\n  - kind: dc-export\n    name: {scope}-dc\n    path: {}\n",
            t.events,
            t.dead_letter,
            t.fetcher_state,
            export.display()
        ),
    )
    .expect("config");
    run_hostledger_with(
        Role::Fetcher,
        &NOTHING,
        &[
            "fetch",
            "--once",
            "--metrics-addr",
            "127.0.0.1:0",
            "--config",
            config.to_str().expect("utf-8"),
        ],
    )
    .await
    .ok();
    let events = env.read_events();
    assert_eq!(events.len(), 40, "published as {identity}");
    assert!(events.iter().all(|e| e.source == format!("{scope}-dc")));
    env.project_until_caught_up().await;
    assert_eq!(env.statuses(&env.namespace).await.len(), 40);

    // An expired token is refused by the API server itself.
    let expired = create_token(&scope, "1s").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let late = enroll(&server, &bundle, &expired, &scope, &dir.path().join("late"))
        .await
        .failed();
    println!("expired token: {late}");
    assert!(
        late.contains("unknown, expired or already used") || late.contains("expired at"),
        "{late}"
    );

    approver_process.start_kill().expect("stop the approver");
    env.cleanup().await;
}

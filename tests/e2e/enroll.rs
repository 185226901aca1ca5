//! A fetcher in a "remote region" that has nothing but a one-time bootstrap token and the CA
//! bundle enrolls through the API server's CertificateSigningRequests (`hostledger enroll`),
//! gets a Kafka client certificate from `hostledger approver` (running with only its role's
//! permissions), publishes with it, and its events become Hosts. A CSR asking for more than
//! its token allows, a used token and an expired one are refused, each saying why. An enrolled
//! fetcher renews its short-lived certificate before it expires and goes on publishing each
//! event once.

use std::path::Path;

use hostledger_e2e::{
    Role, TestEnv, run_hostledger_with, server_certificate, stack_certs, user_kubeconfig,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, PostParams};

/// One approver at a time: each decides every CSR of the signer, so two tests' approvers would
/// race for each other's requests.
static ONE_APPROVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// What a remote fetcher is given: the API server's address, and a bundle (in `dir`) of the
/// CAs to trust, the API server's and the brokers'.
fn remote_side(dir: &Path) -> (String, std::path::PathBuf) {
    let certs = stack_certs();
    let bundle = dir.join("bundle.crt");
    let mut text = std::fs::read_to_string(certs.join("kube-ca.crt")).expect("kube CA");
    text += &std::fs::read_to_string(certs.join("kafka-ca.crt")).expect("kafka CA");
    std::fs::write(&bundle, text).expect("bundle");
    let admin = kube::config::Kubeconfig::read().expect("the stack's kubeconfig");
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server");
    (server, bundle)
}

/// A fetcher config publishing the export at `export` as `source` with the Kafka identity of
/// an enrollment's `kafka.yaml`, on the test's topics, with `extra` top-level YAML.
fn enrolled_fetcher_config(
    env: &TestEnv,
    enrolled: &Path,
    source: &str,
    export: &Path,
    extra: &str,
) -> std::path::PathBuf {
    let t = &env.kafka.settings().topics;
    let kafka = std::fs::read_to_string(enrolled.join("kafka.yaml")).expect("kafka.yaml");
    let kafka: String = kafka
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("  {l}\n"))
        .collect();
    let config = enrolled.join(format!("{source}.yaml"));
    std::fs::write(
        &config,
        format!(
            "kafka:\n{kafka}  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n{extra}\
             providers:\n  - kind: dc-export\n    name: {source}\n    path: {}\n",
            t.events,
            t.dead_letter,
            t.fetcher_state,
            export.display()
        ),
    )
    .expect("config");
    config
}

async fn create_token(scope: &str, ttl: &str) -> String {
    create_token_for(&["--scope", scope, "--ttl", ttl]).await
}

/// `hostledger token create WHO` as the administrator: the token.
async fn create_token_for(who: &[&str]) -> String {
    let mut args = vec!["token", "create"];
    args.extend_from_slice(who);
    let out = run_hostledger_with(Role::Admin, &[], &args).await.ok();
    out.lines().next().expect("the token").trim().to_owned()
}

async fn enroll(
    server: &str,
    bundle: &Path,
    token: &str,
    scope: &str,
    out: &Path,
) -> hostledger_e2e::Output {
    enroll_as(server, bundle, token, &["--scope", scope], out).await
}

/// `hostledger enroll ... WHO` with nothing but the token and the bundle.
async fn enroll_as(
    server: &str,
    bundle: &Path,
    token: &str,
    who: &[&str],
    out: &Path,
) -> hostledger_e2e::Output {
    let mut args = vec![
        "enroll",
        "--server",
        server,
        "--ca",
        bundle.to_str().expect("utf-8"),
        "--token",
        token,
        "--out",
        out.to_str().expect("utf-8"),
        "--lifetime",
        "1h",
        "--timeout",
        "30s",
    ];
    args.extend_from_slice(who);
    run_hostledger_with(Role::Reader, &NOTHING, &args).await
}

#[tokio::test]
async fn a_remote_fetcher_enrolls_with_a_token_publishes_and_its_events_become_hosts() {
    let _one = ONE_APPROVER.lock().await;
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
    let (server, bundle) = remote_side(dir.path());
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
    let export = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/dc-inventory.csv");
    let config = enrolled_fetcher_config(&env, &remote, &format!("{scope}-dc"), &export, "");
    hostledger_e2e::fetch_once_with(&NOTHING, &config)
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

/// The approver, as a user with only its role, giving 20-second certificates and renewing
/// them at its HTTPS endpoint (127.0.0.1 and the port returned).
async fn renewing_approver(env: &TestEnv, dir: &Path) -> (tokio::process::Child, u16) {
    approver_with(env, dir, &[]).await
}

/// [`renewing_approver`] with `extra` arguments.
async fn approver_with(
    env: &TestEnv,
    dir: &Path,
    extra: &[&std::ffi::OsStr],
) -> (tokio::process::Child, u16) {
    let certs = stack_certs();
    let kafka_ca = (certs.join("kafka-ca.crt"), certs.join("kafka-ca.key"));
    let approver = format!("approver-{}", env.id);
    let kubeconfig = user_kubeconfig(dir, &approver);
    bind_approver(env, &approver).await;
    let (serving_crt, serving_key) =
        server_certificate(dir, "approver-serving", (&kafka_ca.0, &kafka_ca.1));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let process = hostledger_e2e::hostledger_as(Role::Reader)
        .args(["approver", "--max-lifetime", "20s", "--ca-cert"])
        .arg(&kafka_ca.0)
        .arg("--ca-key")
        .arg(&kafka_ca.1)
        .arg("--renew-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--renew-tls-cert")
        .arg(&serving_crt)
        .arg("--renew-tls-key")
        .arg(&serving_key)
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger approver");
    (process, port)
}

/// Waits until `ready` holds, polling every 200 ms; panics with `what` after `secs`.
async fn wait_until(secs: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_enrolled_fetcher_renews_its_certificate_before_it_expires_and_publishes_each_event_once()
 {
    use hostledger_kafka::renewal::validity;
    let _one = ONE_APPROVER.lock().await;
    let env = TestEnv::new("renew", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let (_approver_process, port) = renewing_approver(&env, dir.path()).await;

    let scope = env.id.clone();
    let token = create_token(&scope, "10m").await;
    env.grant_fetcher(&scope, &format!("User:hostledger-fetcher-{scope}"))
        .await;
    let (server, bundle) = remote_side(dir.path());
    let remote = dir.path().join("remote");
    enroll(&server, &bundle, &token, &scope, &remote).await.ok();
    let cert = remote.join("tls.crt");
    let first = validity(&cert).expect("the enrolled certificate");
    assert!(
        first.not_after - first.not_before <= 80,
        "short-lived: {first:?}"
    );

    // The fetcher, running, with renewal 8 s before expiry.
    let export = dir.path().join("export.csv");
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/dc-inventory.csv"),
    )
    .expect("sample export");
    std::fs::write(&export, &sample).expect("export");
    let config = enrolled_fetcher_config(
        &env,
        &remote,
        &format!("{scope}-dc"),
        &export,
        &format!(
            "interval_secs: 1\nrenewal:\n  url: https://127.0.0.1:{port}\n  before_expiry_secs: 8\n"
        ),
    );
    let fetcher = hostledger_e2e::hostledger_as(Role::Fetcher)
        .args(["fetch", "--metrics-addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .envs(NOTHING.iter().filter(|(k, _)| *k != "KUBECONFIG").copied())
        .env("HOSTLEDGER_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger fetch");
    wait_until(60, "the first pass", || env.read_events().len() == 40).await;

    // Twice: renewed before it expires, the old certificate expires, and a change made after
    // that is published (through connections made with the renewed certificate).
    for (round, status) in [(1, "maintenance"), (2, "active")] {
        let expected = 40 + round;
        let before = validity(&cert).expect("certificate").not_after;
        wait_until(40, &format!("renewal {round}"), || {
            validity(&cert).is_ok_and(|v| v.not_after > before)
        })
        .await;
        let wait = (before + 2 - chrono::Utc::now().timestamp()).max(0);
        tokio::time::sleep(std::time::Duration::from_secs(wait.unsigned_abs())).await;
        let changed = sample.replacen(
            "log-pdx1-01,pdx1,hall-a,active",
            &format!("log-pdx1-01,pdx1,hall-a,{status}"),
            1,
        );
        std::fs::write(&export, changed).expect("change the export");
        wait_until(30, &format!("the change of round {round}"), || {
            env.read_events().len() == expected
        })
        .await;
    }

    let mut fetcher = fetcher;
    fetcher.start_kill().expect("stop the fetcher");
    let out = fetcher
        .wait_with_output()
        .await
        .expect("the fetcher's output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("renewed the Kafka client certificate"),
        "{log}"
    );
    assert!(
        log.contains("reconnected with the renewed certificate"),
        "{log}"
    );
    let events = env.read_events();
    let ids: std::collections::HashSet<_> = events.iter().map(|e| &e.event_id).collect();
    assert_eq!(ids.len(), events.len(), "no event published twice");
    assert_eq!(events.len(), 42, "40 hosts, then one change per round");
    env.project_until_caught_up().await;
    assert_eq!(env.statuses(&env.namespace).await.len(), 40);
    env.cleanup().await;
}

#[tokio::test]
async fn the_projector_renews_its_certificate_before_it_expires_and_applies_each_event_once() {
    use hostledger_kafka::renewal::{Identity, renew, validity};
    let _one = ONE_APPROVER.lock().await;
    let env = TestEnv::new("renew-projector", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_approver_process, port) = renewing_approver(&env, dir.path()).await;
    let url = format!("https://127.0.0.1:{port}");

    // The projector's identity in files of its own, made a 20-second certificate by a first
    // renewal (the approver may still be starting).
    let identity = Identity {
        cert_file: dir.path().join("projector.crt"),
        key_file: dir.path().join("projector.key"),
        ca_file: stack_certs().join("kafka-ca.crt"),
    };
    std::fs::copy(Role::Projector.cert(), &identity.cert_file).expect("copy the certificate");
    std::fs::copy(Role::Projector.key(), &identity.key_file).expect("copy the key");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let first = loop {
        match renew(&identity, &url).await {
            Ok(v) => break v,
            // Not listening yet.
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the first renewal: {e}"),
        }
    };
    assert_eq!(first.common_name, "hostledger-projector");
    assert!(
        first.not_after - first.not_before <= 80,
        "short-lived: {first:?}"
    );
    let (first_cert, first_key) = (dir.path().join("first.crt"), dir.path().join("first.key"));
    std::fs::copy(&identity.cert_file, &first_cert).expect("keep the first certificate");
    std::fs::copy(&identity.key_file, &first_key).expect("keep the first key");

    let hosts: Vec<String> = (0..20).map(|i| format!("dc/renew/{i:02}")).collect();
    let wave = |n: u64| {
        hosts
            .iter()
            .map(|h| {
                hostledger_e2e::event(
                    h,
                    n,
                    n as i64 * 10,
                    hostledger_schemas::Lifecycle::InService,
                    &format!("web{n}"),
                )
            })
            .collect::<Vec<_>>()
    };
    let applied = |n: u64| {
        let env = &env;
        async move {
            let statuses = env.statuses(&env.namespace).await;
            statuses.len() == 20
                && statuses
                    .values()
                    .all(|s| s.state.role.as_deref() == Some(format!("web{n}").as_str()))
        }
    };
    env.produce(&wave(0)).await;

    // The projector, renewing 8 s before expiry.
    let projector = hostledger_e2e::hostledger_as(Role::Projector)
        .args(env.project_args())
        .args(["--renewal-url", &url, "--renew-before-secs", "8"])
        .env("HOSTLEDGER_KAFKA_CERT_FILE", &identity.cert_file)
        .env("HOSTLEDGER_KAFKA_KEY_FILE", &identity.key_file)
        .env("HOSTLEDGER_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger project");
    wait_until_async(60, "the first wave", || applied(0)).await;

    // Twice: renewed before it expires, the old certificate expires, and events published
    // after that are applied.
    for round in 1..=2 {
        let before = validity(&identity.cert_file)
            .expect("certificate")
            .not_after;
        wait_until(40, &format!("renewal {round}"), || {
            validity(&identity.cert_file).is_ok_and(|v| v.not_after > before)
        })
        .await;
        let wait = (before + 2 - chrono::Utc::now().timestamp()).max(0);
        tokio::time::sleep(std::time::Duration::from_secs(wait.unsigned_abs())).await;
        env.produce(&wave(round)).await;
        wait_until_async(30, &format!("the wave of round {round}"), || applied(round)).await;
    }

    // The first certificate has expired: a new connection with it is refused, so the
    // projector's come from a renewed one.
    let stale = run_hostledger_with(
        Role::Reader,
        &[
            (
                "HOSTLEDGER_KAFKA_CERT_FILE",
                first_cert.to_str().expect("utf-8"),
            ),
            (
                "HOSTLEDGER_KAFKA_KEY_FILE",
                first_key.to_str().expect("utf-8"),
            ),
        ],
        &["events", "--topic-prefix", &env.topic_prefix],
    )
    .await
    .failed();
    assert!(stale.contains("cannot connect to Kafka"), "{stale}");

    let mut projector = projector;
    projector.start_kill().expect("stop the projector");
    let out = projector
        .wait_with_output()
        .await
        .expect("the projector's output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("renewed the Kafka client certificate"),
        "{log}"
    );
    assert!(
        log.contains("reconnected with the renewed certificate"),
        "{log}"
    );
    let statuses = env.statuses(&env.namespace).await;
    assert!(
        statuses.values().all(|s| s.event_count == 3),
        "each host's three events applied once: {:?}",
        statuses.values().map(|s| s.event_count).collect::<Vec<_>>()
    );
    env.cleanup().await;
}

/// [`wait_until`] for a condition that has to ask a server.
async fn wait_until_async<F: std::future::Future<Output = bool>>(
    secs: u64,
    what: &str,
    mut ready: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ready().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Binds `role` to group `group` in the test's namespace (what the stack and the deployment's
/// base do in theirs).
async fn bind_group(env: &TestEnv, group: &str, role: &str) {
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": group, "namespace": env.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(env.kube.clone(), &env.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the group");
}

#[tokio::test]
async fn a_person_enrolls_with_a_token_and_works_in_their_own_name_with_their_roles_rights() {
    let _one = ONE_APPROVER.lock().await;
    let env = TestEnv::new("enroll-person", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = stack_certs();
    // No kube-controller-manager here: the approver signs people's certificates itself.
    let (kube_ca, kube_key) = (certs.join("kube-ca.crt"), certs.join("kube-ca.key"));
    let _approver = approver_with(
        &env,
        dir.path(),
        &[
            "--kube-ca-cert".as_ref(),
            kube_ca.as_os_str(),
            "--kube-ca-key".as_ref(),
            kube_key.as_os_str(),
        ],
    )
    .await;
    // Without a controller manager, the approver also signs that signer's requests.
    let approver = format!("approver-{}", env.id);
    let signer: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{approver}-people-signer")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "hostledger:people-signer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": approver}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(env.kube.clone())
        .create(&PostParams::default(), &signer)
        .await
        .expect("bind hostledger:people-signer");
    bind_group(&env, "hostledger-operators", "hostledger:operator").await;
    bind_group(&env, "hostledger-readers", "hostledger:reader").await;
    env.produce(&[hostledger_e2e::event(
        "test/r1/db-0",
        0,
        0,
        hostledger_schemas::Lifecycle::InService,
        "db",
    )])
    .await;
    env.project_until_caught_up().await;
    let (server, bundle) = remote_side(dir.path());

    // An operator: a token for alice, and nothing else on her machine.
    let alice = format!("alice-{}", env.id);
    let token = create_token_for(&["--role", "operator", "--name", &alice, "--ttl", "10m"]).await;
    let home = dir.path().join("alice");
    let out = enroll_as(
        &server,
        &bundle,
        &token,
        &["--role", "operator", "--name", &alice],
        &home,
    )
    .await
    .ok();
    assert!(
        out.contains(&format!(
            "enrolled as user {alice} in group hostledger-operators"
        )),
        "{out}"
    );
    let kubeconfig = home.join("kubeconfig");
    let as_alice = [("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))];
    let lock = [
        "lock",
        "test.r1.db-0",
        "--namespace",
        &env.namespace,
        "--reason",
        "disk swap",
    ];
    run_hostledger_with(Role::Reader, &as_alice, &lock)
        .await
        .ok();
    let held: hostledger_model::HostLock = Api::namespaced(env.kube.clone(), &env.namespace)
        .get("test.r1.db-0")
        .await
        .expect("the lock");
    assert_eq!(held.spec.user, alice, "locked in her own name");
    let unlock = ["unlock", "test.r1.db-0", "--namespace", &env.namespace];
    run_hostledger_with(Role::Reader, &as_alice, &unlock)
        .await
        .ok();

    // A reader reads, and may not lock.
    let rita = format!("rita-{}", env.id);
    let reader_token =
        create_token_for(&["--role", "reader", "--name", &rita, "--ttl", "10m"]).await;
    // Asking for more than the token allows (an operator's group) is denied, saying why;
    // the denial uses the token up.
    let greedy = enroll_as(
        &server,
        &bundle,
        &reader_token,
        &["--role", "operator", "--name", &rita],
        &dir.path().join("greedy"),
    )
    .await
    .failed();
    assert!(
        greedy.contains(&format!(
            "allows only CN={rita}, OrganizationName=hostledger-readers"
        )),
        "{greedy}"
    );
    let reader_token =
        create_token_for(&["--role", "reader", "--name", &rita, "--ttl", "10m"]).await;
    let home = dir.path().join("rita");
    enroll_as(
        &server,
        &bundle,
        &reader_token,
        &["--role", "reader", "--name", &rita],
        &home,
    )
    .await
    .ok();
    let kubeconfig = home.join("kubeconfig");
    let as_rita = [("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))];
    let listed = run_hostledger_with(
        Role::Reader,
        &as_rita,
        &["uptime", "--namespace", &env.namespace, "-o", "json"],
    )
    .await
    .ok();
    assert!(listed.contains("\"hosts\": 1"), "{listed}");
    let refused = run_hostledger_with(Role::Reader, &as_rita, &lock)
        .await
        .failed();
    assert!(refused.contains("the API server refused"), "{refused}");
    assert!(refused.contains(&rita), "names who was refused: {refused}");
    env.cleanup().await;
}

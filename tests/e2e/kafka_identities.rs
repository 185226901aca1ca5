//! Kafka authorizes each hostledger identity by its client certificate (the stack's broker
//! runs StandardAuthorizer; `hostledger topics grant` and `scripts/stack` create the ACLs): each
//! role may do what it needs and is refused the rest, with an error that says which identity
//! was refused what and how to grant it. Clients without a certificate, or with one of another
//! CA, are refused too.

use std::path::{Path, PathBuf};

use hostledger_e2e::{
    Role, TestEnv, client_certificate, fetch_once_with, foreign_ca, run_hostledger_with,
    stack_certs,
};

fn export() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/dc-inventory.csv")
}

/// `hostledger events ...` on the test's topics as `role`, with environment overrides.
async fn events(env: &TestEnv, role: Role, envs: &[(&str, &str)]) -> hostledger_e2e::Output {
    run_hostledger_with(
        role,
        envs,
        &["events", "-o", "json", "--topic-prefix", &env.topic_prefix],
    )
    .await
}

/// A fetcher config for the sample export, publishing as `source`.
fn fetcher_config(env: &TestEnv, dir: &Path, source: &str) -> PathBuf {
    let t = &env.kafka.settings().topics;
    let path = dir.join(format!("{source}.yaml"));
    let text = format!(
        "kafka:\n  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n\
         providers:\n  - kind: dc-export\n    name: {source}\n    path: {}\n",
        t.events,
        t.dead_letter,
        t.fetcher_state,
        export().display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// The command failed with the brokers' refusal of `principal` for want of `missing`.
fn refused(output: hostledger_e2e::Output, principal: &str, missing: &str) -> String {
    let stderr = output.failed();
    assert!(
        stderr.contains(&format!("Kafka refused to let {principal}")),
        "names the identity refused: {stderr}"
    );
    assert!(stderr.contains(missing), "{stderr}");
    assert!(
        stderr.contains("hostledger topics grant ROLE --principal User:NAME"),
        "says how to grant it: {stderr}"
    );
    stderr
}

#[tokio::test]
async fn each_role_may_do_what_it_needs_and_is_refused_the_rest() {
    let env = TestEnv::new("kafka-roles", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = env.dc_fetcher_config(dir.path(), &export(), 600);

    // The fetcher publishes, but may not read what it published.
    env.fetch_once(&config).await;
    assert_eq!(
        env.read_events().len(),
        40,
        "published as hostledger-fetcher"
    );
    refused(
        events(&env, Role::Fetcher, &[]).await,
        "User:hostledger-fetcher (certificate ",
        "fetchers may write the events topic but not read it",
    );

    // A reader reads the log, but may not publish.
    let lines = events(&env, Role::Reader, &[]).await.ok();
    assert_eq!(lines.lines().count(), 40, "{lines}");
    let path = config.to_str().expect("utf-8");
    let out = run_hostledger_with(
        Role::Reader,
        &[],
        &[
            "fetch",
            "--once",
            "--metrics-addr",
            "127.0.0.1:0",
            "--config",
            path,
        ],
    )
    .await;
    refused(
        out,
        "User:hostledger-reader (certificate ",
        "may not publish as this source",
    );

    // The projector projects (reads the events, commits in its group).
    env.project_until_caught_up().await;
    assert_eq!(env.statuses(&env.namespace).await.len(), 40);
    // ... in its own group only.
    let out = run_hostledger_with(
        Role::Projector,
        &[],
        &env.scoped(&[
            "project",
            "--until-caught-up",
            "--group",
            "someone-elses",
            "--metrics-addr",
            "127.0.0.1:0",
        ]),
    )
    .await;
    refused(
        out,
        "User:hostledger-projector (certificate ",
        "no ACL for the consumer group",
    );

    // Only an administrator grants.
    let grant = [
        "topics",
        "grant",
        "reader",
        "--principal",
        "User:hostledger-reader",
        "--topic-prefix",
        &env.topic_prefix,
    ];
    let out = run_hostledger_with(Role::Reader, &[], &grant).await;
    refused(
        out,
        "User:hostledger-reader (certificate ",
        "only administrators have",
    );
    let out = run_hostledger_with(Role::Admin, &[], &grant).await.ok();
    assert!(
        out.contains("allow User:hostledger-reader Read on topic"),
        "{out}"
    );
    assert!(out.contains("created 7 ACLs"), "{out}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_fetcher_publishes_only_as_sources_of_its_scope() {
    let env = TestEnv::new("kafka-scope", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let scope = format!("eu-{}", env.id);
    let name = format!("fetcher-{scope}");
    let certs = stack_certs();
    let (crt, key) = client_certificate(
        dir.path(),
        &name,
        (&certs.join("kafka-ca.crt"), &certs.join("kafka-ca.key")),
    );
    let principal = format!("User:{name}");
    let out = env.grant_fetcher(&scope, &principal).await;
    assert!(
        out.contains(&format!(
            "Write on transactional id hostledger-fetcher-{scope}*"
        )),
        "{out}"
    );

    let as_scoped = [
        ("HOSTLEDGER_KAFKA_CERT_FILE", crt.to_str().expect("utf-8")),
        ("HOSTLEDGER_KAFKA_KEY_FILE", key.to_str().expect("utf-8")),
    ];
    let fetch = |config: PathBuf| async move { fetch_once_with(&as_scoped, &config).await };
    let other = format!("us-{}", env.id);
    let out = fetch(fetcher_config(&env, dir.path(), &other)).await;
    refused(
        out,
        &format!("{principal} (certificate {}", crt.display()),
        "publishes only as sources whose names start with S",
    );
    assert!(env.read_events().is_empty(), "nothing published as {other}");

    let own = format!("{scope}-dc");
    fetch(fetcher_config(&env, dir.path(), &own)).await.ok();
    let events = env.read_events();
    assert_eq!(events.len(), 40);
    assert!(events.iter().all(|e| e.source == own), "published as {own}");
    env.cleanup().await;
}

#[tokio::test]
async fn anonymous_clients_and_certificates_of_another_ca_are_refused() {
    let env = TestEnv::new("kafka-strangers", 1).await;
    env.produce(&[hostledger_e2e::event(
        "dc/x/1",
        0,
        0,
        hostledger_schemas::Lifecycle::InService,
        "web",
    )])
    .await;

    // No certificate, on the plaintext listener: User:ANONYMOUS, allowed nothing.
    let plaintext = std::env::var("HOSTLEDGER_KAFKA_PLAINTEXT_BOOTSTRAP")
        .expect("HOSTLEDGER_KAFKA_PLAINTEXT_BOOTSTRAP (scripts/stack env)");
    let anonymous = [
        ("HOSTLEDGER_KAFKA_BOOTSTRAP", plaintext.as_str()),
        ("HOSTLEDGER_KAFKA_CA_FILE", ""),
        ("HOSTLEDGER_KAFKA_CERT_FILE", ""),
        ("HOSTLEDGER_KAFKA_KEY_FILE", ""),
    ];
    let stderr = refused(
        events(&env, Role::Reader, &anonymous).await,
        "User:ANONYMOUS (an anonymous client",
        "the identity has no ACL for this on the topic",
    );
    assert!(
        stderr.contains("--kafka-cert"),
        "says how to name one: {stderr}"
    );

    // A certificate the brokers' CA did not sign: the TLS handshake fails.
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca_crt, ca_key) = foreign_ca(dir.path(), "elsewhere-ca");
    let (crt, key) = client_certificate(dir.path(), "hostledger-reader", (&ca_crt, &ca_key));
    let foreign = [
        ("HOSTLEDGER_KAFKA_CERT_FILE", crt.to_str().expect("utf-8")),
        ("HOSTLEDGER_KAFKA_KEY_FILE", key.to_str().expect("utf-8")),
    ];
    let stderr = events(&env, Role::Reader, &foreign).await.failed();
    assert!(stderr.contains("cannot connect to Kafka"), "{stderr}");
    assert!(stderr.contains("TLS failed"), "{stderr}");
    env.cleanup().await;
}

#[tokio::test]
async fn the_stacks_acls_are_those_topics_grant_gives_each_role() {
    // scripts/stack creates them with Kafka's own tool (it runs before hostledger is built):
    // they must be what the code says each role needs, on the default topics.
    use hostledger_kafka::acl::KafkaIdentity;
    use hostledger_kafka::{KafkaClients, Topics};
    let topics = Topics::default();
    let admin = KafkaClients::new(hostledger_e2e::kafka_settings_as(Role::Admin, &topics))
        .expect("settings");
    let on_brokers = admin
        .describe_acls_async()
        .await
        .expect("describe the ACLs");
    let group = hostledger_model::defaults::defaults()
        .projector_group
        .clone();
    for (role, identity) in [
        (
            Role::Fetcher,
            KafkaIdentity::Fetcher {
                scope: String::new(),
            },
        ),
        (
            Role::Backfill,
            KafkaIdentity::Backfill {
                scope: String::new(),
            },
        ),
        (Role::Projector, KafkaIdentity::Projector { group }),
        (Role::Reader, KafkaIdentity::Reader),
    ] {
        let principal = role.principal();
        let mut granted: Vec<_> = on_brokers
            .iter()
            // Tests grant the same identities on their own topics and groups (e2e...).
            .filter(|a| a.principal == principal && !a.name.starts_with("e2e"))
            .cloned()
            .collect();
        granted.dedup();
        assert_eq!(granted, identity.acls(&principal, &topics), "{principal}");
    }
}

//! Support for end-to-end tests against the real stack started by `scripts/stack up`.
//!
//! Every test gets its own topics, consumer group and namespace, so tests run in parallel and
//! leave each other alone. The stack is found through the variables `scripts/stack env`
//! prints; without them the tests fail with a message saying how to start it.
//!
//! Kafka authorizes every client by its certificate: a test creates its topics and their ACLs
//! as the admin, and runs each `hostledger` command as the identity of its role ([`Role`]):
//! fetchers as `hostledger-fetcher`, the projector as `hostledger-projector`, everything else
//! as `hostledger-reader`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hostledger_kafka::acl::KafkaIdentity;
use hostledger_kafka::{KafkaClients, KafkaSettings, Topics};
use hostledger_model::Host;
use hostledger_schemas::{Codec, HostEvent};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// A message as read back: key, payload, headers.
pub type RawMessage = (Vec<u8>, Vec<u8>, std::collections::BTreeMap<String, String>);

/// One test's private slice of the stack.
pub struct TestEnv {
    /// Short unique id, used in every name below.
    pub id: String,
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Prefix of this test's topics.
    pub topic_prefix: String,
    /// This test's namespace.
    pub namespace: String,
    /// This test's consumer group.
    pub group: String,
    /// Kafka clients using this test's topics.
    pub kafka: KafkaClients,
    /// Kubernetes client.
    pub kube: kube::Client,
}

fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: end-to-end tests need the local stack. Run scripts/test, or \
             scripts/stack up && eval \"$(scripts/stack env)\" before cargo test"
        )
    })
}

/// A role's Kafka identity on the stack: a client certificate from `scripts/stack env`
/// (`HOSTLEDGER_KAFKA_<ROLE>_{CERT,KEY}`), principal `User:hostledger-<role>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Creates topics and ACLs (a super user).
    Admin,
    /// Publishes events (`fetch`).
    Fetcher,
    /// Imports archives (`backfill`): a fetcher that also reads the events.
    Backfill,
    /// Consumes them into the API server (`project`, `replay`, `migrate`).
    Projector,
    /// Reads the log (every other command).
    Reader,
}

impl Role {
    /// The role a `hostledger` subcommand runs as.
    pub fn of_command(subcommand: &str) -> Role {
        match subcommand {
            "fetch" => Role::Fetcher,
            "backfill" => Role::Backfill,
            "project" | "replay" | "migrate" => Role::Projector,
            "topics" => Role::Admin,
            _ => Role::Reader,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Fetcher => "fetcher",
            Role::Backfill => "backfill",
            Role::Projector => "projector",
            Role::Reader => "reader",
        }
    }

    /// The role's client certificate.
    pub fn cert(self) -> String {
        stack_var(&format!(
            "HOSTLEDGER_KAFKA_{}_CERT",
            self.name().to_uppercase()
        ))
    }

    /// The role's private key.
    pub fn key(self) -> String {
        stack_var(&format!(
            "HOSTLEDGER_KAFKA_{}_KEY",
            self.name().to_uppercase()
        ))
    }

    /// The principal the brokers see.
    pub fn principal(self) -> String {
        format!("User:hostledger-{}", self.name())
    }

    /// `--kafka-cert C --kafka-key K` for a command line.
    pub fn flags(self) -> [String; 4] {
        [
            "--kafka-cert".into(),
            self.cert(),
            "--kafka-key".into(),
            self.key(),
        ]
    }
}

/// The kubeconfig of the stack identity a `hostledger` subcommand runs as against the API
/// server: `project` and `replay` as `hostledger-projector`, the readers as
/// `hostledger-reader` (each bound in every test namespace by [`TestEnv::new`]); `None` for
/// commands that do not read the inventory's namespace, and for host locks, whose tests say
/// who takes them.
pub fn kubeconfig_of_command(subcommand: &str) -> Option<String> {
    let identity = match subcommand {
        "project" | "replay" => "PROJECTOR",
        // Locks are taken and released in a person's name: the operator's.
        "lock" | "unlock" | "locks" | "with-lock" => "OPERATOR",
        // `migrate history` is an administrator's one-off: it reads both histories (the
        // reader's) and rewrites the namespace (the projector's).
        "fetch" | "backfill" | "topics" | "token" | "enroll" | "approver" | "history-server"
        | "crd" | "events" | "migrate" => {
            return None;
        }
        _ => "READER",
    };
    Some(stack_var(&format!("HOSTLEDGER_{identity}_KUBECONFIG")))
}

/// The stack's CA for the brokers' certificates.
pub fn kafka_ca() -> String {
    stack_var("HOSTLEDGER_KAFKA_CA_FILE")
}

/// Kafka settings as `role` on the stack's mutual-TLS listener.
pub fn kafka_settings_as(role: Role, topics: &Topics) -> KafkaSettings {
    let mut settings = KafkaSettings::plaintext(stack_var("HOSTLEDGER_KAFKA_BOOTSTRAP"))
        .with_identity(kafka_ca().into(), role.cert().into(), role.key().into());
    settings.topics = topics.clone();
    settings
}

/// Waits until the broker's authorizer holds the ACLs just created on `topics` (they reach it
/// through the metadata log a moment after the controller takes them): each stack identity
/// can see the topics its role uses.
async fn acls_in_force(topics: &Topics) {
    let uses = [
        (Role::Fetcher, vec![&topics.events, &topics.fetcher_state]),
        (Role::Backfill, vec![&topics.events, &topics.fetcher_state]),
        (Role::Projector, vec![&topics.events, &topics.dead_letter]),
        (Role::Reader, vec![&topics.events, &topics.dead_letter]),
    ];
    let started = std::time::Instant::now();
    for (role, used) in uses {
        let kafka = KafkaClients::new(kafka_settings_as(role, topics)).expect("valid settings");
        for topic in used {
            loop {
                match kafka
                    .partition_count_async(topic, std::time::Duration::from_secs(10))
                    .await
                {
                    Ok(_) => break,
                    Err(e) => assert!(
                        started.elapsed() < std::time::Duration::from_secs(30),
                        "the ACLs of {role:?} on {topic} did not take effect: {e}"
                    ),
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

impl TestEnv {
    /// Creates this test's topics (with `partitions` partitions), the ACLs of the stack's
    /// identities on them, and its namespace.
    pub async fn new(name: &str, partitions: i32) -> TestEnv {
        let id = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let env = TestEnv::existing(&id).await;
        env.kafka
            .ensure_topics(&env.kafka.standard_topics(partitions), 1)
            .await
            .expect("create test topics");
        let topics = Topics::with_prefix(&env.topic_prefix);
        let mut acls = KafkaIdentity::Fetcher {
            scope: String::new(),
        }
        .acls(&Role::Fetcher.principal(), &topics);
        acls.extend(
            KafkaIdentity::Backfill {
                scope: String::new(),
            }
            .acls(&Role::Backfill.principal(), &topics),
        );
        acls.extend(
            KafkaIdentity::Projector {
                group: env.group.clone(),
            }
            .acls(&Role::Projector.principal(), &topics),
        );
        acls.extend(KafkaIdentity::Reader.acls(&Role::Reader.principal(), &topics));
        env.kafka
            .create_acls_async(acls)
            .await
            .expect("grant the stack's identities their roles on the test topics");
        acls_in_force(&topics).await;
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": env.namespace }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(env.kube.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        bind_stack_identities(&env.kube, &env.namespace).await;
        env
    }

    /// The environment a run left in place (`--keep`), by its id (`scale100000-1a2b3c4d`):
    /// its namespace, topics, group and ACLs are used as they are, nothing is created.
    pub async fn existing(id: &str) -> TestEnv {
        hostledger_cli::init_tls();
        let bootstrap = stack_var("HOSTLEDGER_KAFKA_BOOTSTRAP");
        stack_var("KUBECONFIG");
        let topic_prefix = format!("e2e.{id}");
        let topics = Topics::with_prefix(&topic_prefix);
        let kafka = KafkaClients::new(kafka_settings_as(Role::Admin, &topics))
            .expect("valid Kafka settings");
        let kube = kube::Client::try_default()
            .await
            .expect("Kubernetes client from KUBECONFIG");
        TestEnv {
            group: format!("e2e-{id}"),
            id: id.to_owned(),
            bootstrap,
            topic_prefix,
            namespace: format!("e2e-{id}"),
            kafka,
            kube,
        }
    }

    /// `hostledger topics grant fetcher --scope SCOPE --principal PRINCIPAL` on this test's
    /// topics, as the admin; what it printed.
    pub async fn grant_fetcher(&self, scope: &str, principal: &str) -> String {
        run_hostledger_with(
            Role::Admin,
            &[],
            &[
                "topics",
                "grant",
                "fetcher",
                "--scope",
                scope,
                "--principal",
                principal,
                "--topic-prefix",
                &self.topic_prefix,
            ],
        )
        .await
        .ok()
    }

    /// Kafka clients on this test's topics as `role`.
    pub fn kafka_as(&self, role: Role) -> KafkaClients {
        KafkaClients::new(kafka_settings_as(role, &self.kafka.settings().topics))
            .expect("valid Kafka settings")
    }

    /// Hosts in this test's namespace.
    pub fn hosts(&self) -> Api<Host> {
        Api::namespaced(self.kube.clone(), &self.namespace)
    }

    /// Every Host in the namespace, optionally filtered by a label selector.
    pub async fn list_hosts(&self, selector: Option<&str>) -> Vec<Host> {
        let mut params = ListParams::default();
        if let Some(s) = selector {
            params = params.labels(s);
        }
        self.hosts().list(&params).await.expect("list Hosts").items
    }

    /// Runs `hostledger ARGS...` in-process, exactly as the binary would, as the Kafka
    /// identity of the command's role.
    pub async fn hostledger(&self, args: &[&str]) {
        let cli = parse_as_role(args);
        let code = hostledger_cli::run(cli)
            .await
            .unwrap_or_else(|e| panic!("hostledger {args:?} failed: {e:#}"));
        assert_eq!(code, std::process::ExitCode::SUCCESS, "hostledger {args:?}");
    }

    /// `hostledger fetch --once` as the fetcher identity that must fail; returns the error
    /// with its causes.
    pub async fn fetch_once_err(&self, config: &Path) -> String {
        let path = config.to_str().expect("utf-8 path");
        let cli = parse_as_role(&["fetch", "--once", "--config", path]);
        run_err(cli).await
    }

    /// `hostledger fetch --once` with nothing but what `config` says about Kafka (no
    /// identity added), which must fail; returns the error with its causes.
    pub async fn fetch_once_err_as_configured(&self, config: &Path) -> String {
        use clap::Parser as _;
        let path = config.to_str().expect("utf-8 path");
        let cli = hostledger_cli::Cli::try_parse_from([
            "hostledger",
            "fetch",
            "--once",
            "--config",
            path,
        ])
        .expect("command line");
        run_err(cli).await
    }
}

/// Binds the stack's projector and reader identities in `namespace` to their roles, as an
/// installation binds them in the inventory's namespace.
async fn bind_stack_identities(kube: &kube::Client, namespace: &str) {
    let bindings = [
        ("hostledger-projector", "hostledger:projector"),
        ("hostledger-projector", "hostledger:projection-recorder"),
        ("hostledger-reader", "hostledger:reader"),
        ("hostledger-operator", "hostledger:operator"),
    ];
    for (user, role) in bindings {
        bind_in(kube, namespace, role, user).await;
    }
}

/// Parses `hostledger ARGS` with the identities of the command's role added: its Kafka
/// certificate where the command talks to Kafka (takes `--kafka-cert`), its kubeconfig where it
/// reads or writes the inventory ([`kubeconfig_of_command`]).
fn parse_as_role(args: &[&str]) -> hostledger_cli::Cli {
    use clap::Parser as _;
    let mut argv = vec!["hostledger".to_owned()];
    let subcommand = args.first().copied().unwrap_or_default();
    if let Some(kubeconfig) = kubeconfig_of_command(subcommand) {
        argv.extend(["--kubeconfig".to_owned(), kubeconfig]);
    }
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let role = Role::of_command(subcommand);
    let mut with_identity = argv.clone();
    with_identity.extend(role.flags());
    match hostledger_cli::Cli::try_parse_from(&with_identity) {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
            hostledger_cli::Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("bad test command line: {e}"))
        }
        Err(e) => panic!("bad test command line: {e}"),
    }
}

/// Runs a command that must fail; returns the error with its causes.
async fn run_err(cli: hostledger_cli::Cli) -> String {
    let err = hostledger_cli::run(cli)
        .await
        .expect_err("this fetch must fail");
    format!("{err:#}")
}

impl TestEnv {
    /// `hostledger fetch --once` with a config file.
    pub async fn fetch_once(&self, config: &Path) {
        self.hostledger(&[
            "fetch",
            "--once",
            "--config",
            config.to_str().expect("utf-8 path"),
        ])
        .await;
    }

    /// `hostledger project` on this test's topics, namespace and group, metrics on a free port.
    pub fn project_args(&self) -> [&str; 11] {
        [
            "project",
            "--namespace",
            &self.namespace,
            "--group",
            &self.group,
            "--topic-prefix",
            &self.topic_prefix,
            "--kafka-bootstrap",
            &self.bootstrap,
            "--metrics-addr",
            "127.0.0.1:0",
        ]
    }

    /// Waits until exactly `count` Hosts match `selector` (labels written by another
    /// process, such as the projector's lock sweeper); panics with `what` after 30 s.
    pub async fn wait_for_hosts(&self, selector: &str, count: usize, what: &str) {
        let started = std::time::Instant::now();
        while self.list_hosts(Some(selector)).await.len() != count {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{what}: not after 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `hostledger project --until-caught-up` on this test's topics, namespace and group.
    pub async fn project_until_caught_up(&self) {
        let mut args = self.project_args().to_vec();
        args.push("--until-caught-up");
        self.hostledger(&args).await;
    }

    /// Starts the `hostledger project` process on this test's topics, namespace and group,
    /// with `extra` arguments (metrics on a free port, `HOSTLEDGER_LOG=warn`, killed when
    /// dropped). Its standard error is piped when `capture_stderr`, else inherited.
    pub fn spawn_projector(&self, extra: &[&str], capture_stderr: bool) -> tokio::process::Child {
        let mut command = hostledger_as(Role::Projector);
        command
            .args(self.project_args())
            .args(extra)
            .env("HOSTLEDGER_LOG", "warn")
            .kill_on_drop(true);
        if capture_stderr {
            command.stderr(std::process::Stdio::piped());
        }
        command.spawn().expect("start hostledger project")
    }

    /// A fetcher config for one data-centre export provider on this test's topics.
    pub fn dc_fetcher_config(
        &self,
        dir: &Path,
        export: &Path,
        missing_grace_secs: u64,
    ) -> std::path::PathBuf {
        let path = dir.join("fetcher.yaml");
        let t = &self.kafka.settings().topics;
        let text = format!(
            "kafka:\n  bootstrap_servers: {}\n  topics:\n    events: {}\n    dead_letter: {}\n    fetcher_state: {}\n\
             missing_grace_secs: {missing_grace_secs}\nproviders:\n  - kind: dc-export\n    name: dc-{}\n    path: {}\n",
            self.bootstrap,
            t.events,
            t.dead_letter,
            t.fetcher_state,
            self.id,
            export.display()
        );
        std::fs::write(&path, text).expect("write fetcher config");
        path
    }

    /// Creates one more namespace for this test (`e2e-ID-SUFFIX`).
    pub async fn extra_namespace(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.namespace);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(self.kube.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        bind_stack_identities(&self.kube, &name).await;
        name
    }

    /// Publishes events to this test's events topic, keyed by host id, and waits for each.
    pub async fn produce(&self, events: &[HostEvent]) {
        let producer = self
            .kafka_as(Role::Fetcher)
            .producer(None)
            .expect("producer");
        let codec = Codec::new();
        let topic = self.kafka.settings().topics.events.clone();
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let payload = codec.encode(event).expect("encodes");
            loop {
                let record = rdkafka::producer::FutureRecord::to(&topic)
                    .key(event.host_id.as_str())
                    .payload(&payload);
                match producer.send_result(record) {
                    Ok(d) => {
                        deliveries.push(d);
                        break;
                    }
                    Err((e, _)) => {
                        assert_eq!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                            "{e}"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
        for d in deliveries {
            d.await.expect("delivery future").expect("delivered");
        }
    }

    /// Publishes raw bytes to this test's events topic.
    pub async fn produce_raw(&self, key: &str, payload: &[u8]) {
        let producer = self
            .kafka_as(Role::Fetcher)
            .producer(None)
            .expect("producer");
        let topic = self.kafka.settings().topics.events.clone();
        let record = rdkafka::producer::FutureRecord::to(&topic)
            .key(key)
            .payload(payload);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("delivered");
    }

    /// `hostledger replay` of this test's topics into `namespace`, with extra arguments.
    pub async fn replay_into(&self, namespace: &str, extra: &[&str]) {
        let mut args = vec![
            "replay",
            "--quiet",
            "--namespace",
            namespace,
            "--topic-prefix",
            &self.topic_prefix,
            "--kafka-bootstrap",
            &self.bootstrap,
        ];
        args.extend_from_slice(extra);
        self.hostledger(&args).await;
    }

    /// Every Host status in `namespace`, by host id.
    pub async fn statuses(
        &self,
        namespace: &str,
    ) -> std::collections::BTreeMap<String, hostledger_model::HostStatus> {
        Api::<Host>::namespaced(self.kube.clone(), namespace)
            .list(&ListParams::default())
            .await
            .expect("list Hosts")
            .items
            .into_iter()
            .filter_map(|h| h.status)
            .map(|s| (s.host_id.clone(), s))
            .collect()
    }

    /// Every history entry in `namespace`, by host id, in order, as readers get them: from
    /// the history API (or the HostHistory chunks of a namespace that keeps them), as many
    /// as each Host counts.
    pub async fn histories(
        &self,
        namespace: &str,
    ) -> std::collections::BTreeMap<String, Vec<hostledger_model::HistoryEntry>> {
        let statuses = self.statuses(namespace).await;
        let wanted: std::collections::HashMap<&str, u64> = statuses
            .iter()
            .map(|(h, s)| (h.as_str(), u64::try_from(s.event_count).unwrap_or(0)))
            .collect();
        let mut read = hostledger_k8s::Histories::of(&self.kube, namespace)
            .await
            .expect("where the namespace keeps history")
            .read_many(&wanted)
            .await
            .expect("read the histories");
        wanted
            .iter()
            .map(|(host, count)| {
                let mut entries = read.remove(*host).unwrap_or_default();
                entries.truncate(usize::try_from(*count).unwrap_or(0));
                ((*host).to_owned(), entries)
            })
            .collect()
    }

    /// Every committed message of the dead-letter topic: key, payload and headers.
    pub fn read_dead_letters(&self) -> Vec<RawMessage> {
        read_topic_with_headers(
            &self.kafka_as(Role::Reader),
            &self.kafka.settings().topics.dead_letter,
        )
    }

    /// Every committed host event on this test's events topic, in partition order.
    pub fn read_events(&self) -> Vec<HostEvent> {
        self.read_facts()
            .into_iter()
            .filter_map(|f| match f {
                hostledger_schemas::Fact::Host(e) => Some(e),
                hostledger_schemas::Fact::Lock(_) => None,
            })
            .collect()
    }

    /// Every committed fact (host events and lock facts) on this test's events topic, in
    /// partition order.
    pub fn read_facts(&self) -> Vec<hostledger_schemas::Fact> {
        read_topic(
            &self.kafka_as(Role::Reader),
            &self.kafka.settings().topics.events,
        )
        .into_iter()
        .map(|(_, payload)| {
            Codec::new()
                .decode_fact(&payload)
                .expect("events on the topic decode")
        })
        .collect()
    }

    /// Deletes this test's topics (the namespace stays: without a controller manager it
    /// would only sit in Terminating).
    pub async fn cleanup(self) {
        let t = self.kafka.settings().topics.clone();
        let _ = self
            .kafka
            .delete_topics(&[&t.events, &t.dead_letter, &t.fetcher_state])
            .await;
    }
}

/// Reads every committed message of `topic` from the beginning: (key, payload).
pub fn read_topic(kafka: &KafkaClients, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    read_topic_with_headers(kafka, topic)
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect()
}

/// Reads every committed message of `topic` from the beginning: (key, payload, headers).
pub fn read_topic_with_headers(kafka: &KafkaClients, topic: &str) -> Vec<RawMessage> {
    use rdkafka::message::Headers as _;
    let partitions = kafka
        .partition_count(topic, Duration::from_secs(10))
        .expect("topic exists");
    let reader = kafka.reader().expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    reader.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut at_end = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (at_end.len() as i32) < partitions {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                                (h.key.to_owned(), value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let key = m.key().unwrap_or_default().to_vec();
                out.push((key, m.payload().unwrap_or_default().to_vec(), headers));
            }
            Some(Err(RdError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// A host event for tests: host `host`, its `n`-th observation at `minutes` past a fixed
/// start, in `lifecycle`, with `role`.
pub fn event(
    host: &str,
    n: u64,
    minutes: i64,
    lifecycle: hostledger_schemas::Lifecycle,
    role: &str,
) -> HostEvent {
    use hostledger_schemas::{EventKind, HostState, Timestamp};
    let mut state = HostState::new(
        host.rsplit('/').next().unwrap_or(host),
        lifecycle,
        lifecycle.as_str(),
    );
    state.region = Some("test-1".into());
    state.role = Some(role.into());
    state.team = Some("sre".into());
    state.addresses = vec![format!("10.0.{}.{}", n % 250, n % 200)];
    HostEvent {
        event_id: format!("{host}#{n}"),
        host_id: host.to_owned(),
        kind: if n == 0 {
            EventKind::HostDiscovered
        } else {
            EventKind::HostChanged
        },
        provider: "test".into(),
        source: "e2e".into(),
        observed_at: Timestamp(1_767_225_600_000_000 + minutes * 60_000_000),
        state,
        changes: Vec::new(),
    }
}

/// The lifecycle cycle of benchmark hosts.
pub const BENCH_PHASES: [hostledger_schemas::Lifecycle; 3] = [
    hostledger_schemas::Lifecycle::InService,
    hostledger_schemas::Lifecycle::OutOfService,
    hostledger_schemas::Lifecycle::InService,
];

/// A benchmark log: `events` events spread evenly over `hosts` hosts, a minute apart per 60
/// events, cycling in service / out of service, with a role change every fifth observation.
pub fn bench_log(events: usize, hosts: usize) -> Vec<HostEvent> {
    (0..events)
        .map(|i| {
            let h = i % hosts;
            let n = (i / hosts) as u64;
            let role = if n % 5 == 4 { "db" } else { "web" };
            event(
                &format!("bench/b1/host-{h:06}"),
                n,
                i as i64 / 60,
                BENCH_PHASES[(n as usize + h) % 3],
                role,
            )
        })
        .collect()
}

/// The pid of a process the stack started (`kube-apiserver`, `etcd`, `history-server`, …),
/// from `$HOSTLEDGER_STACK_DIR/COMPONENT.pid`.
pub fn stack_pid(component: &str) -> Option<u32> {
    let dir = std::env::var("HOSTLEDGER_STACK_DIR").ok()?;
    std::fs::read_to_string(format!("{dir}/{component}.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Where the `hostledger` binary of this build is (next to the test executable's folder).
pub fn hostledger_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("hostledger");
    assert!(
        bin.exists(),
        "{} not built: run cargo test --workspace (or cargo build -p hostledger-cli)",
        bin.display()
    );
    bin
}

/// Makes `command` authenticate to Kafka as `role`.
fn with_kafka_identity(command: &mut tokio::process::Command, role: Role) {
    command
        .env("HOSTLEDGER_KAFKA_CERT_FILE", role.cert())
        .env("HOSTLEDGER_KAFKA_KEY_FILE", role.key());
}

/// A command running the `hostledger` binary as `role`'s Kafka identity.
pub fn hostledger_as(role: Role) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(hostledger_binary());
    with_kafka_identity(&mut command, role);
    let kubeconfig = match role {
        Role::Projector => Some("HOSTLEDGER_PROJECTOR_KUBECONFIG"),
        Role::Reader => Some("HOSTLEDGER_READER_KUBECONFIG"),
        Role::Admin | Role::Fetcher | Role::Backfill => None,
    };
    if let Some(var) = kubeconfig {
        command.env("KUBECONFIG", stack_var(var));
    }
    command
}

/// What a run of the `hostledger` binary printed.
#[derive(Debug)]
pub struct Output {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Standard output of a run that must have succeeded.
    pub fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "hostledger failed: {}", self.stderr);
        self.stdout
    }

    /// Standard error of a run that must have failed with exit code 1 and nothing on stdout.
    pub fn failed(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "hostledger should have failed; stdout: {} stderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(self.stdout.is_empty(), "a failure printed: {}", self.stdout);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self.stderr
    }
}

/// Writes a kubeconfig for an API server that cannot be reached (https://127.0.0.1:1) into
/// `dir` and returns its path.
pub fn unreachable_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: x}\n",
    )
    .expect("kubeconfig");
    path
}

/// Runs the `hostledger` binary as `role` with the environment overrides `envs` (an empty
/// value unsets the variable for the run).
pub async fn run_hostledger_with(role: Role, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = hostledger_as(role);
    command.args(args).env("HOSTLEDGER_LOG", "warn");
    for (k, v) in envs {
        command.env(k, v);
    }
    output_of(command).await
}

/// Runs `command` and collects what it printed.
async fn output_of(mut command: tokio::process::Command) -> Output {
    let out = command.output().await.expect("run hostledger");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hostledger fetch --once --config CONFIG` as the fetcher, with the environment overrides
/// `envs` (e.g. another identity's certificate).
pub async fn fetch_once_with(envs: &[(&str, &str)], config: &Path) -> Output {
    let config = config.to_str().expect("utf-8 path");
    run_hostledger_with(
        Role::Fetcher,
        envs,
        &[
            "fetch",
            "--once",
            "--metrics-addr",
            "127.0.0.1:0",
            "--config",
            config,
        ],
    )
    .await
}

/// Runs the `hostledger` binary (stack variables inherited) and collects what it printed.
pub async fn run_hostledger(args: &[&str]) -> Output {
    run_hostledger_as(None, args).await
}

/// [`run_hostledger`] with another identity's kubeconfig, if given.
pub async fn run_hostledger_as(kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let subcommand = args.first().copied().unwrap_or_default();
    let mut command = tokio::process::Command::new(hostledger_binary());
    with_kafka_identity(&mut command, Role::of_command(subcommand));
    command.args(args).env("HOSTLEDGER_LOG", "warn");
    if let Some(k) = kubeconfig
        .map(Path::to_path_buf)
        .or_else(|| kubeconfig_of_command(subcommand).map(PathBuf::from))
    {
        command.env("KUBECONFIG", k);
    }
    output_of(command).await
}

impl TestEnv {
    /// `ARGS --namespace NS --topic-prefix P --kafka-bootstrap B` for this test's slice.
    pub fn scoped<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend_from_slice(&[
            "--namespace",
            &self.namespace,
            "--topic-prefix",
            &self.topic_prefix,
            "--kafka-bootstrap",
            &self.bootstrap,
        ]);
        v
    }
}

/// The value of `--NAME N` on a benchmark's command line (underscores allowed: 1_000_000),
/// or `default`.
pub fn bench_arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
        })
        .unwrap_or(default)
}

/// The value of `--NAME TEXT` on a benchmark's command line, if given.
pub fn bench_text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The `p` quantile (0 to 1) of sorted values, nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One figure a benchmark measured, for the table `scripts/bench` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What was measured, e.g. `decode + fold, one core`.
    pub figure: String,
    /// The measured value.
    pub value: f64,
    /// Its unit, e.g. `events/s`, `s`, `writes/host`.
    pub unit: String,
    /// The floor or baseline measured in the same run, if the figure has one.
    pub floor: Option<f64>,
    /// What the floor is, e.g. `raw write floor`.
    pub floor_name: Option<String>,
    /// The target, as text (`>= 1,000,000`, `<= 1.25 x floor + 2 s`).
    pub target: String,
    /// Whether the target is met; `None` for figures without one.
    pub pass: Option<bool>,
}

impl Figure {
    /// A figure without a floor.
    pub fn new(figure: &str, value: f64, unit: &str, target: &str, pass: Option<bool>) -> Self {
        Figure {
            figure: figure.to_owned(),
            value,
            unit: unit.to_owned(),
            floor: None,
            floor_name: None,
            target: target.to_owned(),
            pass,
        }
    }

    /// The same figure with the floor it is compared with.
    pub fn with_floor(mut self, name: &str, floor: f64) -> Self {
        self.floor_name = Some(name.to_owned());
        self.floor = Some(floor);
        self
    }

    /// Appends the figure as one JSON line to the file given with `--json PATH`, if any.
    pub fn record(&self) {
        let Some(path) = bench_text_arg("--json") else {
            return;
        };
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        let line = serde_json::to_string(self).expect("a figure serializes");
        writeln!(file, "{line}").unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
}

/// Runs `openssl ARGS`, which must succeed.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// A new certificate authority of its own in `dir` (`NAME.crt`, `NAME.key`): one the stack's
/// servers have never heard of.
pub fn foreign_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path_str(&key),
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "1",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        &path_str(&crt),
    ]);
    (crt, key)
}

/// A client certificate for common name `name` in `dir` (`NAME.crt`, `NAME.key`), signed by
/// the CA whose certificate and key are given: valid for a day, client authentication only.
pub fn client_certificate(dir: &Path, name: &str, ca: (&Path, &Path)) -> (PathBuf, PathBuf) {
    issue_certificate(dir, name, ca, "extendedKeyUsage=clientAuth\n")
}

/// A serving certificate for 127.0.0.1 and localhost in `dir` (`NAME.crt`, `NAME.key`), signed
/// by the CA whose certificate and key are given.
pub fn server_certificate(dir: &Path, name: &str, ca: (&Path, &Path)) -> (PathBuf, PathBuf) {
    issue_certificate(
        dir,
        name,
        ca,
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
}

/// A P-256 key and a certificate for `/CN=name` with the extensions `ext`, valid for a day.
fn issue_certificate(dir: &Path, name: &str, ca: (&Path, &Path), ext: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let ext_file = dir.join(format!("{name}.ext"));
    std::fs::write(&ext_file, ext).expect("ext");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &path_str(&key),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        &path_str(&key),
        "-subj",
        &format!("/CN={name}"),
        "-out",
        &path_str(&csr),
    ]);
    let serial = format!("0x{}", uuid::Uuid::new_v4().simple());
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path_str(&csr),
        "-CA",
        &path_str(ca.0),
        "-CAkey",
        &path_str(ca.1),
        "-set_serial",
        &serial,
        "-days",
        "1",
        "-extfile",
        &path_str(&ext_file),
        "-out",
        &path_str(&crt),
    ]);
    (crt, key)
}

/// The stack's certificate directory (`$HOSTLEDGER_STACK_DIR/certs`).
pub fn stack_certs() -> PathBuf {
    Path::new(&stack_var("HOSTLEDGER_STACK_DIR")).join("certs")
}

/// A kubeconfig for user `name` (a client certificate from the stack's CA, no groups).
pub fn user_kubeconfig(dir: &Path, name: &str) -> PathBuf {
    let ca = stack_certs();
    let (crt, key) = client_certificate(
        dir,
        name,
        (&ca.join("kube-ca.crt"), &ca.join("kube-ca.key")),
    );
    kubeconfig_with(dir, name, &crt, &key)
}

/// A kubeconfig for the stack's API server authenticating with `crt` and `key`.
pub fn kubeconfig_with(dir: &Path, name: &str, crt: &Path, key: &Path) -> PathBuf {
    let p = |p: &Path| path_str(p);
    let admin = kube::config::Kubeconfig::read().expect("the stack's kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("cluster");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "stack", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": name, "user": {"client-certificate": p(crt), "client-key": p(key)}}],
        "contexts": [{"name": name, "context": {"cluster": "stack", "user": name}}],
        "current-context": name,
    });
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, config.to_string()).expect("kubeconfig");
    path
}

/// Binds ClusterRole `role` to `user` in the test's namespace.
pub async fn bind(env: &TestEnv, role: &str, user: &str) {
    bind_in(&env.kube, &env.namespace, role, user).await;
}

/// Binds ClusterRole `role` to `user` in `namespace`.
async fn bind_in(kube: &kube::Client, namespace: &str, role: &str, user: &str) {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{user}-{}", role.replace(':', "-"))},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(kube.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("bind {role} to {user} in {namespace}: {e}"));
}

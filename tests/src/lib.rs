//! Support for end-to-end tests against the real stack started by `scripts/stack up`.
//!
//! Every test gets its own topics, consumer group and namespace, so tests run in parallel and
//! leave each other alone. The stack is found through the variables `scripts/stack env`
//! prints; without them the tests fail with a message saying how to start it.

use std::path::Path;
use std::time::Duration;

use hostledger_kafka::{KafkaClients, KafkaSettings, Topics};
use hostledger_projector::Host;
use hostledger_schemas::{Codec, HostEvent};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

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

impl TestEnv {
    /// Creates this test's topics (with `partitions` partitions) and namespace.
    pub async fn new(name: &str, partitions: i32) -> TestEnv {
        let bootstrap = stack_var("HOSTLEDGER_KAFKA_BOOTSTRAP");
        stack_var("KUBECONFIG");
        let id = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let topic_prefix = format!("e2e.{id}");
        let mut settings = KafkaSettings::plaintext(bootstrap.clone());
        settings.topics = Topics::with_prefix(&topic_prefix);
        let kafka = KafkaClients::new(settings).expect("valid Kafka settings");
        kafka
            .ensure_topics(&kafka.standard_topics(partitions), 1)
            .await
            .expect("create test topics");
        let kube = kube::Client::try_default()
            .await
            .expect("Kubernetes client from KUBECONFIG");
        let namespace = format!("e2e-{id}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(kube.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        TestEnv {
            group: format!("e2e-{id}"),
            id,
            bootstrap,
            topic_prefix,
            namespace,
            kafka,
            kube,
        }
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

    /// Runs `hostledger ARGS...` in-process, exactly as the binary would.
    pub async fn hostledger(&self, args: &[&str]) {
        use clap::Parser as _;
        let mut argv = vec!["hostledger"];
        argv.extend_from_slice(args);
        let cli = hostledger_cli::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("bad test command line: {e}"));
        let code = hostledger_cli::run(cli)
            .await
            .unwrap_or_else(|e| panic!("hostledger {args:?} failed: {e:#}"));
        assert_eq!(code, std::process::ExitCode::SUCCESS, "hostledger {args:?}");
    }

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

    /// `hostledger project --until-caught-up` on this test's topics, namespace and group.
    pub async fn project_until_caught_up(&self) {
        self.hostledger(&[
            "project",
            "--until-caught-up",
            "--namespace",
            &self.namespace,
            "--group",
            &self.group,
            "--topic-prefix",
            &self.topic_prefix,
            "--kafka-bootstrap",
            &self.bootstrap,
        ])
        .await;
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

    /// Every committed event on this test's events topic, in partition order.
    pub fn read_events(&self) -> Vec<HostEvent> {
        read_topic(&self.kafka, &self.kafka.settings().topics.events)
            .into_iter()
            .map(|(_, payload)| {
                Codec::new()
                    .decode(&payload)
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
            Some(Ok(m)) => out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            )),
            Some(Err(RdError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

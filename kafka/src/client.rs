//! Every Kafka client hostledger uses is built here.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, FutureProducer, ProducerContext};

use crate::error::KafkaError;
use crate::settings::KafkaSettings;

/// The client context of every hostledger Kafka client: librdkafka's errors go to
/// `tracing` with the standard field names, except partition-end markers, which are not
/// errors (consumers ask for them to know when they have caught up).
#[derive(Debug, Clone, Default)]
pub struct KafkaContext {
    assignments: std::sync::Arc<std::sync::atomic::AtomicU64>,
    last_error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl KafkaContext {
    /// The last error librdkafka reported for this client (connection, TLS, authentication).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// How many partition assignments this consumer has received. A change means another
    /// group member may have written state for partitions this one now owns.
    pub fn assignments(&self) -> u64 {
        self.assignments.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(message.to_owned());
                }
                tracing::warn!(target: "librdkafka", facility = fac, "{message}")
            }
            L::Notice | L::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{message}")
            }
            L::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        if matches!(error, RdError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            return;
        }
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown)
            && let Ok(mut last) = self.last_error.lock()
        {
            *last = Some(reason.to_owned());
        }
        match crate::error::classify(&error) {
            crate::ErrorClass::Transient => {
                tracing::warn!(%error, reason, "Kafka unavailable; retrying")
            }
            _ => tracing::error!(%error, reason, "librdkafka error"),
        }
    }
}

impl ConsumerContext for KafkaContext {
    fn pre_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions assigned");
            self.assignments
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A group consumer as built by [`KafkaClients::consumer`].
pub type GroupConsumer = StreamConsumer<KafkaContext>;
/// A group-less consumer as built by [`KafkaClients::reader`].
pub type Reader = BaseConsumer<KafkaContext>;
/// A producer as built by [`KafkaClients::producer`].
pub type Producer = FutureProducer<KafkaContext>;
/// A transactional producer as built by [`KafkaClients::transactional_producer`].
pub type TransactionalProducer = BaseProducer<DeliveryContext>;

/// The context of a [`TransactionalProducer`]: [`KafkaContext`]'s logging, and deliveries
/// counted by one callback instead of a future per message (the publish path sends two
/// messages per event). A failed delivery is kept for the transaction to report; librdkafka
/// also fails the commit of a transaction with a message that was not delivered.
#[derive(Debug, Clone, Default)]
pub struct DeliveryContext {
    inner: KafkaContext,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl DeliveryContext {
    /// The first delivery failure since the last call, if any.
    pub fn take_failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|mut f| f.take())
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.inner.log(level, fac, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        self.inner.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            use rdkafka::Message as _;
            if let Ok(mut failed) = self.failed.lock() {
                failed.get_or_insert_with(|| {
                    format!(
                        "{error} (topic {}, partition {})",
                        message.topic(),
                        message.partition()
                    )
                });
            }
        }
    }
}

/// What a client is for; decides the role-specific librdkafka options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRole {
    /// Idempotent producer (acks=all); transactional when an id is given.
    Producer {
        /// `transactional.id`, stable per fetcher instance so a restart fences its
        /// predecessor.
        transactional_id: Option<String>,
    },
    /// Group consumer: manual offset commits, committed transactions only, partition EOF
    /// events on.
    Consumer {
        /// Consumer group id.
        group_id: String,
        /// `group.instance.id` (static membership, KIP-345): a member restarted with the same
        /// id gets its partitions back at once instead of after the old session expires.
        instance_id: Option<String>,
    },
    /// A consumer without a group, for reading a topic from the start (state restore,
    /// metadata, watermarks).
    Reader,
    /// Topic administration.
    Admin,
}

/// The layout of a topic hostledger creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count, fixed once created.
    pub partitions: i32,
    /// Topic configs (retention, compaction).
    pub configs: Vec<(String, String)>,
}

/// Builds Kafka clients from validated settings.
#[derive(Debug, Clone)]
pub struct KafkaClients {
    settings: KafkaSettings,
}

impl KafkaClients {
    /// Validates the settings; every client built later uses them.
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
        settings.validate()?;
        Ok(KafkaClients { settings })
    }

    /// The settings in force.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    /// The principal the brokers see for these settings, for error messages:
    /// `User:CN (certificate FILE)` with a client certificate, the SASL user with SASL,
    /// otherwise an anonymous client.
    pub fn principal(&self) -> String {
        let s = &self.settings;
        if s.security_protocol.uses_sasl() {
            return match &s.sasl_username {
                Some(user) => format!("User:{user} (SASL)"),
                None => "a SASL client without a user name".to_owned(),
            };
        }
        match &s.cert_file {
            Some(file) if s.security_protocol.uses_tls() => match crate::identity::validity(file) {
                Ok(v) => format!("User:{} (certificate {})", v.common_name, file.display()),
                Err(_) => format!("the holder of certificate {}", file.display()),
            },
            _ => "User:ANONYMOUS (an anonymous client: no client certificate)".to_owned(),
        }
    }

    /// [`KafkaError::client`], naming this client's principal if the brokers refused it.
    pub fn error(&self, action: impl Into<String>, source: RdError) -> KafkaError {
        KafkaError::client(action, source).refused_as(&self.principal())
    }

    /// The full librdkafka configuration for a role. Passthrough options from the settings
    /// are applied last, so an operator can override anything.
    pub fn config(&self, role: &ClientRole) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in self.settings.librdkafka_properties() {
            if !self.settings.options.contains_key(&k) {
                config.set(k, v);
            }
        }
        match role {
            ClientRole::Producer { transactional_id } => {
                config
                    .set("client.id", "hostledger-producer")
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "5")
                    .set("compression.type", "lz4")
                    .set("message.timeout.ms", "60000")
                    // Part of the event contract: a host's partition is CRC-32 of its id
                    // modulo the partition count (log::partition_for_key).
                    .set("partitioner", "consistent_random");
                if let Some(id) = transactional_id {
                    config
                        .set("transactional.id", id)
                        .set("transaction.timeout.ms", "60000");
                }
            }
            ClientRole::Consumer {
                group_id,
                instance_id,
            } => {
                if let Some(id) = instance_id {
                    config.set("group.instance.id", id);
                }
                config
                    .set("client.id", "hostledger-consumer")
                    .set("group.id", group_id)
                    .set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("isolation.level", "read_committed")
                    .set("enable.partition.eof", "true");
            }
            ClientRole::Reader => {
                config
                    .set("client.id", "hostledger-reader")
                    // A reader assigns partitions itself and commits nothing, but librdkafka
                    // assigns only with a group, whose coordinator it looks up: every identity
                    // may describe this one group (acl.rs), nothing more.
                    .set("group.id", crate::acl::ASSIGN_ONLY_GROUP)
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("isolation.level", "read_committed")
                    .set("enable.partition.eof", "true")
                    // Readers go through whole partitions: fetch big, and do not wait at
                    // the end of one for data that will not come.
                    .set("max.partition.fetch.bytes", "8388608")
                    .set("fetch.wait.max.ms", "20");
            }
            ClientRole::Admin => {
                config.set("client.id", "hostledger-admin");
            }
        }
        for (k, v) in &self.settings.options {
            config.set(k, v);
        }
        config
    }

    /// An idempotent (optionally transactional) producer.
    pub fn producer(&self, transactional_id: Option<&str>) -> Result<Producer, KafkaError> {
        let role = ClientRole::Producer {
            transactional_id: transactional_id.map(str::to_owned),
        };
        self.config(&role)
            .create_with_context(KafkaContext::default())
            .map_err(|e| self.error("create the producer", e))
    }

    /// A transactional, idempotent producer whose deliveries are counted by its context
    /// ([`DeliveryContext`]). Its callbacks run when it is polled: the sender polls as it
    /// queues, and committing a transaction polls until every message is delivered.
    pub fn transactional_producer(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionalProducer, KafkaError> {
        let role = ClientRole::Producer {
            transactional_id: Some(transactional_id.to_owned()),
        };
        self.config(&role)
            .create_with_context(DeliveryContext::default())
            .map_err(|e| self.error("create the producer", e))
    }

    /// A group consumer with manual commits; a static member of the group when `instance_id`
    /// is given.
    pub fn consumer(
        &self,
        group_id: &str,
        instance_id: Option<&str>,
    ) -> Result<GroupConsumer, KafkaError> {
        let role = ClientRole::Consumer {
            group_id: group_id.to_owned(),
            instance_id: instance_id.map(str::to_owned),
        };
        self.config(&role)
            .create_with_context(KafkaContext::default())
            .map_err(|e| self.error(format!("create the consumer for group {group_id}"), e))
    }

    /// A group-less consumer for reading partitions by assignment.
    pub fn reader(&self) -> Result<Reader, KafkaError> {
        self.config(&ClientRole::Reader)
            .create_with_context(KafkaContext::default())
            .map_err(|e| self.error("create a reader", e))
    }

    pub(crate) fn admin_client(&self) -> Result<AdminClient<KafkaContext>, KafkaError> {
        self.config(&ClientRole::Admin)
            .create_with_context(KafkaContext::default())
            .map_err(|e| self.error("create the admin client", e))
    }

    /// Connects to the brokers and reads the cluster metadata, so that a wrong address, a
    /// refused certificate or failed authentication is reported at start-up, clearly.
    pub fn check_connection(&self, timeout: Duration) -> Result<(), KafkaError> {
        let reader = self.reader()?;
        let deadline = std::time::Instant::now() + timeout;
        // Short attempts, polling in between, so that librdkafka's reports of why it cannot
        // connect (delivered through the client's queue) are seen before giving up.
        let result = loop {
            let attempt = reader.fetch_metadata(None, Duration::from_secs(1));
            let _ = reader.poll(Duration::ZERO);
            match attempt {
                Ok(_) => break Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => break Err(e),
                Err(_) => {}
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                let detail = reader
                    .context()
                    .last_error()
                    .unwrap_or_else(|| error.to_string());
                let lower = detail.to_ascii_lowercase();
                let hint = if lower.contains("certificate") && self.settings.cert_file.is_none() {
                    " (the broker asks for a client certificate: set kafka.cert_file and kafka.key_file for mutual TLS)"
                } else if lower.contains("certificate") || lower.contains("ssl") {
                    " (TLS failed: check kafka.ca_file, kafka.cert_file and kafka.key_file, and that the broker's certificate names this host)"
                } else if lower.contains("sasl") || lower.contains("authentication") {
                    " (authentication failed: check kafka.sasl_mechanism, sasl_username and sasl_password)"
                } else {
                    " (is the broker running and the address right?)"
                };
                Err(KafkaError::Connect {
                    bootstrap: self.settings.bootstrap_servers.clone(),
                    detail: format!("{detail}{hint}"),
                })
            }
        }
    }

    /// The partition count of `topic`, or [`KafkaError::MissingTopic`].
    pub fn partition_count(&self, topic: &str, timeout: Duration) -> Result<i32, KafkaError> {
        let reader = self.reader()?;
        let metadata = reader
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| self.error(format!("read metadata of topic {topic:?}"), e))?;
        let missing = || KafkaError::MissingTopic {
            topic: topic.to_owned(),
            bootstrap: self.settings.bootstrap_servers.clone(),
        };
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(missing)?;
        match t.error() {
            Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
                Err(missing())
            }
            Some(e) => Err(self.error(
                format!("read metadata of topic {topic:?}"),
                RdError::MetadataFetch(e.into()),
            )),
            None if t.partitions().is_empty() => Err(missing()),
            None => Ok(t.partitions().len() as i32),
        }
    }

    /// Low and high watermark of every partition of `topic`, by partition.
    pub fn watermarks(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<HashMap<i32, (i64, i64)>, KafkaError> {
        let partitions = self.partition_count(topic, timeout)?;
        let reader = self.reader()?;
        (0..partitions)
            .map(|p| {
                reader
                    .fetch_watermarks(topic, p, timeout)
                    .map(|w| (p, w))
                    .map_err(|e| self.error(format!("read watermarks of {topic}/{p}"), e))
            })
            .collect()
    }

    /// Runs a blocking client call on the blocking thread pool, so that async tasks are not
    /// held up by metadata requests.
    pub async fn blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<KafkaError> + Send + 'static,
        F: FnOnce(&KafkaClients) -> Result<T, E> + Send + 'static,
    {
        let clients = self.clone();
        tokio::task::spawn_blocking(move || f(&clients))
            .await
            .map_err(|e| KafkaError::Config(format!("a blocking Kafka call failed: {e}")))?
    }

    /// [`KafkaClients::check_connection`] without blocking the calling task.
    pub async fn check_connection_async(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.blocking(move |k| k.check_connection(timeout)).await
    }

    /// [`KafkaClients::partition_count`] without blocking the calling task.
    pub async fn partition_count_async(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<i32, KafkaError> {
        let topic = topic.to_owned();
        self.blocking(move |k| k.partition_count(&topic, timeout))
            .await
    }

    /// [`KafkaClients::watermarks`] without blocking the calling task.
    pub async fn watermarks_async(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<HashMap<i32, (i64, i64)>, KafkaError> {
        let topic = topic.to_owned();
        self.blocking(move |k| k.watermarks(&topic, timeout)).await
    }

    /// The standard topics: events (retained forever), dead letters (forever), fetcher state
    /// (compacted), with `partitions` partitions for the keyed ones.
    pub fn standard_topics(&self, partitions: i32) -> Vec<TopicSpec> {
        let t = &self.settings.topics;
        let forever = || {
            vec![
                ("retention.ms".into(), "-1".into()),
                ("retention.bytes".into(), "-1".into()),
            ]
        };
        vec![
            TopicSpec {
                name: t.events.clone(),
                partitions,
                configs: forever(),
            },
            TopicSpec {
                name: t.dead_letter.clone(),
                partitions: 1,
                configs: forever(),
            },
            TopicSpec {
                name: t.fetcher_state.clone(),
                partitions,
                configs: vec![("cleanup.policy".into(), "compact".into())],
            },
        ]
    }

    /// Creates the topics that do not exist yet; existing ones are left as they are.
    pub async fn ensure_topics(
        &self,
        specs: &[TopicSpec],
        replication: i32,
    ) -> Result<(), KafkaError> {
        let admin = self.admin_client()?;
        let new_topics: Vec<NewTopic<'_>> = specs
            .iter()
            .map(|s| {
                s.configs.iter().fold(
                    NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(replication)),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(new_topics.iter(), &opts)
            .await
            .map_err(|e| self.error("create topics", e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
            }
        }
        Ok(())
    }

    /// Deletes topics (tests clean up after themselves with this).
    pub async fn delete_topics(&self, names: &[&str]) -> Result<(), KafkaError> {
        let admin = self.admin_client()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        admin
            .delete_topics(names, &opts)
            .await
            .map_err(|e| self.error("delete topics", e))?;
        Ok(())
    }
}

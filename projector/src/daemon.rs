//! The live projector: consume the events topic in batches as a consumer-group member, fold
//! per host, write each touched host once per batch, dead-letter what cannot be used, then
//! commit the offsets the writes covered.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostledger_k8s::locks::{LockStore, SweepReason};
use hostledger_k8s::{HostStore, projection};
use hostledger_kafka::log::{Item, decode};
use hostledger_kafka::renewal::{Identity, RenewalConfig};
use hostledger_kafka::{ErrorClass, GroupConsumer, KafkaClients, KafkaError, Producer};
use hostledger_model::Position;
use hostledger_model::backoff::Backoff;
use hostledger_model::defaults::defaults;
use hostledger_model::lock::ExpiryTracker;
use hostledger_model::names::HISTORY_FINALIZER;
use hostledger_schemas::Codec;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::apply::Applier;
use crate::error::ProjectorError;
use crate::lockfacts::LockRecorder;
use crate::metrics::Metrics;

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// Kafka consumer group. Replicas in one group split the partitions.
    pub group_id: String,
    /// This replica's stable name in the group (`group.instance.id`, static membership): a
    /// replica restarted under the same name is given its partitions back at once, instead
    /// of after the consumer-group session of the process it replaces has expired.
    pub instance_id: Option<String>,
    /// Most events in one batch.
    pub batch_max_events: usize,
    /// Longest wait for a batch to fill once it has its first event.
    pub batch_max_wait: Duration,
    /// Most Host writes in flight at once.
    pub max_in_flight: usize,
    /// Exit once every partition has been applied up to its end.
    pub until_caught_up: bool,
    /// Renew the Kafka client certificate before it expires (the approver's renewal
    /// endpoint), reconnecting between two batches.
    pub renewal: Option<(Identity, RenewalConfig)>,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        ProjectorSettings {
            group_id: defaults().projector_group.clone(),
            instance_id: None,
            batch_max_events: defaults().projector_batch_events as usize,
            batch_max_wait: Duration::from_millis(50),
            max_in_flight: defaults().max_in_flight as usize,
            until_caught_up: false,
            renewal: None,
        }
    }
}

/// Counters of one projector run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectorStats {
    /// Messages read from the events topic.
    pub consumed: u64,
    /// Events folded into a host record.
    pub applied: u64,
    /// Events already applied (at or below a Host's last offset).
    pub skipped: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Hosts written (one per touched host per batch).
    pub hosts_written: u64,
    /// API write requests made (Hosts and HostHistory, retries included).
    pub api_writes: u64,
    /// Batches processed.
    pub batches: u64,
}

/// The projector: one consumer, one applier, one dead-letter producer.
pub struct Projector {
    kafka: KafkaClients,
    store: HostStore,
    settings: ProjectorSettings,
    codec: Codec,
    metrics: Arc<Metrics>,
    stats: ProjectorStats,
}

impl Projector {
    /// A projector of `kafka`'s events topic writing Hosts through `store`. It records in the
    /// namespace which topic it projects ([`projection::claim`]); full history stays in the
    /// log, or goes on into HostHistory chunks where the namespace still keeps them.
    pub fn new(kafka: KafkaClients, store: HostStore, settings: ProjectorSettings) -> Self {
        Projector {
            kafka,
            store,
            settings,
            codec: Codec::new(),
            metrics: Arc::new(Metrics::default()),
            stats: ProjectorStats::default(),
        }
    }

    /// Shares counters with a metrics endpoint.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until `shutdown` resolves, or, with `until_caught_up`, until every partition has
    /// been applied to its end. Offsets are committed only after the writes they cover.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ProjectorStats, ProjectorError> {
        // A renewed certificate bumps the generation; the consumer and producers are made
        // again between two batches (librdkafka reads the files only when a client is made).
        let (renewed, mut generation) = tokio::sync::watch::channel(0u64);
        let _renewer = match self.settings.renewal.clone() {
            Some((identity, config)) => {
                if hostledger_kafka::renewal::finish_interrupted(&identity)? {
                    tracing::info!(cert = %identity.cert_file.display(), "finished replacing a renewed certificate");
                }
                Some(AbortOnDrop(tokio::spawn(
                    hostledger_kafka::renewal::keep_renewed(identity, config, renewed),
                )))
            }
            // Without renewal, a certificate replaced in place (a rotated Secret) is taken
            // up the same way.
            None => self.kafka.settings().cert_file.clone().map(|cert| {
                AbortOnDrop(tokio::spawn(hostledger_kafka::renewal::keep_watched(
                    cert,
                    Duration::from_secs(5),
                    renewed,
                )))
            }),
        };
        // Host locks need only the API server: swept from the start, also while Kafka is away.
        let recorder = LockRecorder::new(
            self.kafka.producer(None)?,
            self.kafka.settings().topics.events.clone(),
            recorder_source(self.settings.instance_id.as_deref()),
        );
        let sweeper = AbortOnDrop(tokio::spawn(sweep_locks(
            LockStore::new(self.store.client(), self.store.namespace()),
            recorder,
            kube::Api::namespaced(self.store.client(), self.store.namespace()),
            (self.kafka.clone(), generation.clone()),
        )));
        let group_statuses = AbortOnDrop(tokio::spawn(crate::groups::keep_group_statuses(
            self.store.client(),
            self.store.namespace().to_owned(),
        )));
        let topic = self.kafka.settings().topics.events.clone();
        self.kafka
            .check_connection_async(Duration::from_secs(15))
            .await?;
        let partitions = self
            .kafka
            .partition_count_async(&topic, Duration::from_secs(10))
            .await?;
        let (store, history) = crate::replay::claim(&self.store, &topic, None).await?;
        self.store = store;
        let mut applier =
            Applier::load(self.store.clone(), history, self.settings.max_in_flight).await?;
        tracing::info!(
            topic = %topic,
            partitions,
            namespace = %self.store.namespace(),
            hosts = applier.hosts().len(),
            history_in_chunks = applier.writes_chunks(),
            "projector starting"
        );
        let mut consumer = self.subscribe(&topic)?;
        let mut dead_letters = self.kafka.producer(None)?;
        let releaser = tokio::spawn(release_deleted_hosts(self.store.clone()));
        self.metrics.set_ready(true);

        tokio::pin!(shutdown);
        let mut at_end: HashSet<i32> = HashSet::new();
        let mut seen_assignments = consumer.context().assignments();
        let mut lag_measured = Instant::now();
        loop {
            let mut stopping = false;
            let batch = tokio::select! {
                batch = self.next_batch(&consumer, &mut at_end) => batch?,
                () = &mut shutdown => { stopping = true; Vec::new() }
            };
            let assignments = consumer.context().assignments();
            if assignments != seen_assignments {
                // Another member may have written hosts of partitions this one now owns,
                // also between this one's start-up load and its first assignment (when
                // replicas start together, the first to join owns every partition for a
                // moment), so the first assignment reloads too.
                tracing::info!("partition assignment changed; reloading Hosts");
                applier.reload().await?;
            }
            seen_assignments = assignments;
            if !batch.is_empty() {
                self.process(&consumer, &dead_letters, &topic, &mut applier, batch)
                    .await?;
            }
            if lag_measured.elapsed() >= Duration::from_secs(5) {
                lag_measured = Instant::now();
                if let Some(lag) = measure_lag(&self.kafka, &consumer, &topic).await {
                    self.metrics.lag_events.set(lag);
                }
            }
            if stopping {
                tracing::info!("shutdown requested; every applied batch is committed");
                break;
            }
            if generation.has_changed().unwrap_or(false) {
                // Every batch taken is applied and committed: the new consumer goes on from
                // the committed offsets, so nothing is skipped or applied twice.
                generation.mark_unchanged();
                drop(consumer);
                consumer = self.subscribe(&topic)?;
                dead_letters = self.kafka.producer(None)?;
                // The new consumer counts its assignments from 0; its first one reloads the
                // Hosts, as at start-up (another member may have owned them meanwhile).
                seen_assignments = 0;
                at_end.clear();
                tracing::info!("reconnected with the renewed certificate");
            }
            if self.settings.until_caught_up && at_end.len() as i32 >= partitions {
                tracing::info!(stats = ?self.stats, "caught up with the end of every partition");
                break;
            }
        }
        self.metrics.set_ready(false);
        releaser.abort();
        drop((sweeper, group_statuses));
        Ok(self.stats)
    }

    /// A consumer of the group, subscribed to `topic`.
    fn subscribe(&self, topic: &str) -> Result<GroupConsumer, ProjectorError> {
        let consumer = self.kafka.consumer(
            &self.settings.group_id,
            self.settings.instance_id.as_deref(),
        )?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| self.kafka.error(format!("subscribe to {topic}"), e))?;
        Ok(consumer)
    }

    /// Waits for the first message, then gathers more until the batch is full or the wait
    /// is over. Partition-end markers are recorded in `at_end`.
    async fn next_batch(
        &self,
        consumer: &GroupConsumer,
        at_end: &mut HashSet<i32>,
    ) -> Result<Vec<Item>, ProjectorError> {
        let mut batch = Vec::new();
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.settings.batch_max_events {
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None if self.settings.until_caught_up => Duration::from_millis(200),
                // Idle, the loop still comes round each second (lag, a renewed certificate).
                None => Duration::from_secs(1),
            };
            let received = match tokio::time::timeout(wait, consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(r) => r,
            };
            match received {
                Ok(message) => {
                    let position = Position {
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    at_end.remove(&position.partition);
                    batch.push(decode(&self.codec, &message, position));
                    deadline.get_or_insert_with(|| Instant::now() + self.settings.batch_max_wait);
                }
                Err(RdError::PartitionEOF(partition)) => {
                    at_end.insert(partition);
                    if batch.is_empty() && self.settings.until_caught_up {
                        break;
                    }
                }
                Err(error) => match hostledger_kafka::classify(&error) {
                    ErrorClass::Fatal => {
                        if let Some(instance) = &self.settings.instance_id
                            && fenced(&error, consumer.context().last_error().as_deref())
                        {
                            return Err(ProjectorError::Fenced {
                                group: self.settings.group_id.clone(),
                                instance: instance.clone(),
                            });
                        }
                        return Err(self.kafka.error("consume host events", error).into());
                    }
                    _ => {
                        tracing::warn!(%error, "transient error while consuming; continuing");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        Ok(batch)
    }

    async fn process(
        &mut self,
        consumer: &GroupConsumer,
        dead_letters: &Producer,
        topic: &str,
        applier: &mut Applier,
        batch: Vec<Item>,
    ) -> Result<(), ProjectorError> {
        let started = Instant::now();
        self.stats.batches += 1;
        self.stats.consumed += batch.len() as u64;
        self.metrics.consumed.add(batch.len() as u64);
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        for item in &batch {
            let p = item.position();
            let next = next_offsets.entry(p.partition).or_insert(p.offset + 1);
            *next = (*next).max(p.offset + 1);
        }

        let before = applier.stats.clone();
        let mut poison = Vec::new();
        for item in batch {
            match item {
                Item::Event(event, position) => {
                    applier.fold(&event, position);
                }
                Item::Lock(event, position) => {
                    applier.fold_lock(&event, position);
                }
                Item::Poison {
                    reason,
                    key,
                    payload,
                    position,
                } => poison.push((reason, key, payload, position)),
            }
        }
        if applier.writes_chunks() {
            // `hostledger migrate history` may have moved the namespace's history to the log.
            let home =
                projection::history_home(&self.store.client(), self.store.namespace()).await?;
            if home == projection::HistoryHome::Log {
                tracing::info!(
                    "the namespace's history is the log's now; no more HostHistory chunks"
                );
                applier.stop_writing_chunks();
            }
        }
        applier.flush().await?;
        let after = &applier.stats;
        self.stats.applied += after.applied - before.applied;
        self.stats.skipped += after.skipped - before.skipped;
        self.stats.hosts_written += after.hosts_written - before.hosts_written;
        self.stats.api_writes += after.api_writes() - before.api_writes();
        self.metrics.applied.add(after.applied - before.applied);
        self.metrics.skipped.add(after.skipped - before.skipped);
        self.metrics
            .hosts_written
            .add(after.hosts_written - before.hosts_written);
        self.metrics
            .api_writes
            .add(after.api_writes() - before.api_writes());

        let dlq_topic = self.kafka.settings().topics.dead_letter.clone();
        for (reason, key, payload, position) in poison {
            tracing::warn!(
                topic,
                partition = position.partition,
                offset = position.offset,
                error = %reason,
                "dead-lettering message"
            );
            send_dead_letter(
                dead_letters,
                &dlq_topic,
                topic,
                &reason,
                key.as_deref(),
                payload.as_deref(),
                position,
            )
            .await
            .map_err(|e| match e {
                ProjectorError::Kafka(e) => e.refused_as(&self.kafka.principal()).into(),
                other => other,
            })?;
            self.stats.dead_lettered += 1;
            self.metrics.dead_lettered.add(1);
        }

        // Everything the batch covers is durable: commit.
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in next_offsets {
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(|e| KafkaError::client("build the offset list", e))?;
        }
        if let Err(error) = consumer.commit(&offsets, CommitMode::Sync) {
            // Writes are idempotent: if this commit is lost, the events come back and are
            // skipped by their offsets.
            tracing::warn!(%error, "offset commit failed; the batch will be redelivered and skipped");
        }
        self.metrics.batch_seconds.observe(started.elapsed());
        Ok(())
    }
}

/// Sends one message to the dead-letter topic with its reason and origin in headers,
/// retrying transient failures until the broker has it.
async fn send_dead_letter(
    producer: &Producer,
    dlq_topic: &str,
    source_topic: &str,
    reason: &str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    position: Position,
) -> Result<(), ProjectorError> {
    let partition = position.partition.to_string();
    let offset = position.offset.to_string();
    let mut backoff = Backoff::default();
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "hostledger.reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "hostledger.source.topic",
                value: Some(source_topic),
            })
            .insert(Header {
                key: "hostledger.source.partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "hostledger.source.offset",
                value: Some(offset.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlq_topic).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => return Ok(()),
            Err((error, _)) if hostledger_kafka::classify(&error) == ErrorClass::Transient => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, "could not dead-letter a message; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            Err((error, _)) => {
                return Err(KafkaError::client(
                    format!("dead-letter a message to {dlq_topic}"),
                    error,
                )
                .into());
            }
        }
    }
}

/// Watches Hosts and lets those that people delete go (see [`HostStore::release`]); their
/// HostHistory stays, and a replay brings the Host back.
///
/// Only the Hosts' metadata is watched (finalizers and the deletion timestamp are all this
/// needs), and the initial list and every relist are served from kube-apiserver's watch cache.
/// A full list from etcd of 100,000 Hosts took longer than the cache keeps changes while the
/// projector was writing, so each relist expired before it ended and the watch relisted in a
/// loop (docs/benchmarks.md, "Scale").
async fn release_deleted_hosts(store: HostStore) {
    use futures::StreamExt as _;
    use kube::api::{Api, PartialObjectMeta};
    use kube::runtime::{WatchStreamExt as _, watcher};
    let api: Api<PartialObjectMeta<hostledger_model::Host>> =
        Api::namespaced(store.client(), store.namespace());
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(next) = stream.next().await {
        let host = match next {
            Ok(host) => host,
            Err(error) => {
                tracing::warn!(%error, "watching Hosts for deletions failed; retrying");
                continue;
            }
        };
        let ours = host
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == HISTORY_FINALIZER));
        if host.metadata.deletion_timestamp.is_none() || !ours {
            continue;
        }
        let name = host.metadata.name.clone().unwrap_or_default();
        match store.release(&name).await {
            Ok(()) => {
                tracing::info!(host = %name, "Host deleted by a person; its HostHistory is kept")
            }
            Err(error) => tracing::warn!(host = %name, %error, "could not release a deleted Host"),
        }
    }
}

/// A task aborted when this handle is dropped, also when `run` returns early with an error.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The `source` of the lock facts this process records: `projector/INSTANCE` or
/// `projector@HOSTNAME`.
fn recorder_source(instance_id: Option<&str>) -> String {
    match instance_id {
        Some(id) => format!("projector/{id}"),
        None => format!(
            "projector@{}",
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        ),
    }
}

/// How often the lock sweeper looks at the HostLocks.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Releases HostLocks that expired (unchanged for their TTL, by this process's monotonic
/// clock) and locks of Hosts that retired or were deleted, and marks locked Hosts (label
/// `hostledger.dev/locked`, annotation `hostledger.dev/lock`). Every replica sweeps; the deletes
/// carry preconditions, so two sweepers never release a lock that was renewed meanwhile.
async fn sweep_locks(
    locks: LockStore,
    mut recorder: LockRecorder,
    hosts: kube::Api<hostledger_model::Host>,
    (kafka, mut generation): (KafkaClients, tokio::sync::watch::Receiver<u64>),
) {
    let mut tracker = ExpiryTracker::default();
    let mut marks = None;
    let mut warned = false;
    let mut recorder_warned = false;
    loop {
        if generation.has_changed().unwrap_or(false) {
            generation.mark_unchanged();
            match kafka.producer(None) {
                Ok(producer) => recorder.reconnect(producer),
                Err(error) => {
                    generation.mark_changed();
                    tracing::warn!(%error, "the lock facts' producer could not reconnect with the renewed certificate; retrying");
                }
            }
        }
        let pass = async {
            if marks.is_none() {
                marks = Some(locks.marked_hosts().await?);
            }
            let sweep = locks.sweep(&mut tracker, Instant::now()).await?;
            if let Some(marks) = marks.as_mut() {
                locks.reconcile_marks(&sweep.held, marks).await?;
            }
            Ok::<_, hostledger_k8s::K8sError>(sweep)
        };
        let pass = async {
            let sweep = pass.await?;
            match recorder.record(&hosts, &sweep).await {
                Ok(()) => recorder_warned = false,
                Err(error) if !recorder_warned => {
                    recorder_warned = true;
                    tracing::warn!(%error, "cannot record lock facts in the log yet; retrying");
                }
                Err(_) => {}
            }
            Ok::<_, hostledger_k8s::K8sError>(sweep.released)
        };
        match pass.await {
            Ok(released) => {
                warned = false;
                for (lock, reason) in released {
                    let host = lock.metadata.name.clone().unwrap_or_default();
                    let why = match reason {
                        SweepReason::Expired(d) => format!("not renewed for {} s", d.as_secs()),
                        SweepReason::HostRetired => "its host retired".to_owned(),
                        SweepReason::HostGone => "its Host was deleted".to_owned(),
                    };
                    tracing::info!(
                        %host,
                        host_id = %lock.spec.host_id,
                        holder = %lock.spec.holder,
                        user = %lock.spec.user,
                        "released a host lock: {why}"
                    );
                }
            }
            Err(error) if !warned => {
                warned = true;
                tracing::warn!(%error, "cannot sweep host locks; retrying");
            }
            Err(_) => {}
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// Events between this consumer's position and the end of each assigned partition, summed.
/// `None` when it cannot be measured right now (no assignment yet, broker unreachable).
async fn measure_lag(kafka: &KafkaClients, consumer: &GroupConsumer, topic: &str) -> Option<u64> {
    let positions = consumer.position().ok()?;
    let watermarks = kafka
        .watermarks_async(topic, Duration::from_secs(1))
        .await
        .ok()?;
    let mut lag = 0u64;
    for element in positions.elements_for_topic(topic) {
        let Offset::Offset(position) = element.offset() else {
            continue;
        };
        let (_, high) = watermarks.get(&element.partition())?;
        lag += u64::try_from(high - position).unwrap_or(0);
    }
    Some(lag)
}

/// Whether the broker fenced this static member: another consumer joined the group with the
/// same `group.instance.id`. librdkafka delivers it as a generic fatal error; the reason it
/// reported just before names the instance id.
fn fenced(error: &RdError, last_reported: Option<&str>) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    error.rdkafka_error_code() == Some(C::FencedInstanceId)
        || last_reported.is_some_and(|r| r.contains("group.instance.id"))
}

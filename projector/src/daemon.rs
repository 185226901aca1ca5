//! The projector loop: consume the events topic in batches, fold per host, write each touched
//! host once per batch, dead-letter what cannot be used, then commit the offsets the writes
//! covered.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use hostledger_kafka::{GroupConsumer, KafkaClients, KafkaError, Producer};
use hostledger_schemas::{Codec, HostEvent};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::ProjectorError;
use crate::fold::{Outcome, Position, apply};
use crate::k8s::{HostStore, StoredHost};

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// Kafka consumer group. Replicas in one group split the partitions.
    pub group_id: String,
    /// Most events in one batch.
    pub batch_max_events: usize,
    /// Longest wait for a batch to fill once it has its first event.
    pub batch_max_wait: Duration,
    /// Most Host writes in flight at once.
    pub max_in_flight: usize,
    /// Exit once every partition has been applied up to its end.
    pub until_caught_up: bool,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        ProjectorSettings {
            group_id: "hostledger-projector".into(),
            batch_max_events: 5_000,
            batch_max_wait: Duration::from_millis(50),
            max_in_flight: 16,
            until_caught_up: false,
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
    /// API write requests made (metadata and status, retries included).
    pub api_writes: u64,
    /// Batches processed.
    pub batches: u64,
}

/// Something read from the topic.
enum Item {
    Event(Box<HostEvent>, Position),
    Poison {
        reason: String,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        position: Position,
    },
}

impl Item {
    fn position(&self) -> Position {
        match self {
            Item::Event(_, p) | Item::Poison { position: p, .. } => *p,
        }
    }
}

/// The projector: one consumer, one Host store, one dead-letter producer.
pub struct Projector {
    kafka: KafkaClients,
    store: HostStore,
    settings: ProjectorSettings,
    codec: Codec,
    hosts: HashMap<String, StoredHost>,
    stats: ProjectorStats,
}

impl Projector {
    /// A projector writing Hosts through `store`.
    pub fn new(kafka: KafkaClients, store: HostStore, settings: ProjectorSettings) -> Self {
        Projector {
            kafka,
            store,
            settings,
            codec: Codec::new(),
            hosts: HashMap::new(),
            stats: ProjectorStats::default(),
        }
    }

    /// Runs until `shutdown` resolves, or, with `until_caught_up`, until every partition has
    /// been applied to its end. Offsets are committed only after the writes they cover.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ProjectorStats, ProjectorError> {
        let topic = self.kafka.settings().topics.events.clone();
        let partitions = self
            .kafka
            .partition_count(&topic, Duration::from_secs(10))?;
        self.hosts = self.store.load_all().await?;
        tracing::info!(
            topic = %topic,
            partitions,
            namespace = %self.store.namespace(),
            hosts = self.hosts.len(),
            "projector starting"
        );
        let consumer = self.kafka.consumer(&self.settings.group_id)?;
        consumer
            .subscribe(&[&topic])
            .map_err(|e| KafkaError::client(format!("subscribe to {topic}"), e))?;
        let dead_letters = self.kafka.producer(None)?;

        tokio::pin!(shutdown);
        let mut at_end: HashSet<i32> = HashSet::new();
        loop {
            let mut stopping = false;
            let batch = tokio::select! {
                batch = self.next_batch(&consumer, &mut at_end) => batch?,
                () = &mut shutdown => { stopping = true; Vec::new() }
            };
            if !batch.is_empty() {
                self.process(&consumer, &dead_letters, &topic, batch)
                    .await?;
            }
            if stopping {
                tracing::info!("shutdown requested; offsets of applied batches are committed");
                break;
            }
            if self.settings.until_caught_up && at_end.len() as i32 >= partitions {
                tracing::info!(stats = ?self.stats, "caught up with the end of every partition");
                break;
            }
        }
        Ok(self.stats)
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
        let caught_up_check = Duration::from_millis(200);
        while batch.len() < self.settings.batch_max_events {
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None if self.settings.until_caught_up => caught_up_check,
                None => Duration::from_secs(3600),
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
                    batch.push(self.decode(&message, position));
                    deadline.get_or_insert_with(|| Instant::now() + self.settings.batch_max_wait);
                }
                Err(RdError::PartitionEOF(partition)) => {
                    at_end.insert(partition);
                    if batch.is_empty() && self.settings.until_caught_up {
                        break;
                    }
                }
                Err(error) => match hostledger_kafka::error::classify(&error) {
                    hostledger_kafka::ErrorClass::Fatal => {
                        return Err(KafkaError::client("consume host events", error).into());
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

    fn decode(&self, message: &impl Message, position: Position) -> Item {
        let poison = |reason: String| Item::Poison {
            reason,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            position,
        };
        let Some(payload) = message.payload() else {
            return poison("message has no payload".into());
        };
        let event = match self.codec.decode(payload) {
            Ok(event) => event,
            Err(error) => return poison(format!("undecodable: {error}")),
        };
        if let Err(error) = event.validate() {
            return poison(format!("invalid event: {error}"));
        }
        if message.key() != Some(event.host_id.as_bytes()) {
            return poison(format!(
                "message key {:?} is not the event's host id {:?}",
                message.key().map(String::from_utf8_lossy),
                event.host_id
            ));
        }
        Item::Event(Box::new(event), position)
    }

    async fn process(
        &mut self,
        consumer: &GroupConsumer,
        dead_letters: &Producer,
        topic: &str,
        batch: Vec<Item>,
    ) -> Result<(), ProjectorError> {
        self.stats.batches += 1;
        self.stats.consumed += batch.len() as u64;
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        for item in &batch {
            let p = item.position();
            let next = next_offsets.entry(p.partition).or_insert(p.offset + 1);
            *next = (*next).max(p.offset + 1);
        }

        // Fold every event into its host's record; remember which hosts changed.
        let mut touched: Vec<String> = Vec::new();
        let mut touched_set: HashSet<String> = HashSet::new();
        let mut poison = Vec::new();
        for item in batch {
            match item {
                Item::Event(event, position) => {
                    let stored = self.hosts.get(&event.host_id);
                    let mut record = stored.map(|s| s.record.clone());
                    match apply(&mut record, &event, position) {
                        Outcome::Applied => {
                            self.stats.applied += 1;
                            let record = record.expect("apply always leaves a record");
                            let labels = stored.map(|s| s.labels.clone()).unwrap_or_default();
                            if touched_set.insert(event.host_id.clone()) {
                                touched.push(event.host_id.clone());
                            }
                            self.hosts
                                .insert(event.host_id.clone(), StoredHost { record, labels });
                        }
                        Outcome::Duplicate | Outcome::OtherHost => self.stats.skipped += 1,
                    }
                }
                Item::Poison {
                    reason,
                    key,
                    payload,
                    position,
                } => poison.push((reason, key, payload, position)),
            }
        }

        // Write each touched host once, a bounded number at a time.
        let store = &self.store;
        let hosts = &self.hosts;
        let writes: Vec<(String, crate::k8s::WriteReport)> = futures::stream::iter(touched)
            .map(|host_id| async move {
                let stored = &hosts[&host_id];
                let previous = (!stored.labels.is_empty()).then_some(&stored.labels);
                store
                    .write(&stored.record, previous)
                    .await
                    .map(|report| (host_id, report))
            })
            .buffer_unordered(self.settings.max_in_flight)
            .try_collect()
            .await?;
        for (host_id, report) in writes {
            self.stats.hosts_written += 1;
            self.stats.api_writes += report.requests;
            if let Some(stored) = self.hosts.get_mut(&host_id) {
                stored.labels = report.labels;
            }
        }

        // Dead-letter what could not be used, and wait until the broker has it.
        let dlq_topic = self.kafka.settings().topics.dead_letter.clone();
        for (reason, key, payload, position) in poison {
            tracing::warn!(topic, partition = position.partition, offset = position.offset, error = %reason, "dead-lettering message");
            let partition = position.partition.to_string();
            let offset = position.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "hostledger.reason",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "hostledger.source.topic",
                    value: Some(topic),
                })
                .insert(Header {
                    key: "hostledger.source.partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "hostledger.source.offset",
                    value: Some(offset.as_str()),
                });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&dlq_topic).headers(headers);
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            if let Some(p) = payload.as_deref() {
                record = record.payload(p);
            }
            dead_letters
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| {
                    KafkaError::client(format!("dead-letter a message to {dlq_topic}"), e)
                })?;
            self.stats.dead_lettered += 1;
        }

        // Everything the batch covers is durable: commit.
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in next_offsets {
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(|e| KafkaError::client("build the offset list", e))?;
        }
        if let Err(error) = consumer.commit(&offsets, CommitMode::Sync) {
            // The writes are idempotent: if this commit is lost the events are skipped when
            // they come back.
            tracing::warn!(%error, "offset commit failed; events will be redelivered and skipped");
        }
        Ok(())
    }
}

//! Replay and backfill: rebuild Hosts and their history from offset 0 with the same fold and
//! the same writes as the live projector, optionally only up to a time (the inventory as it
//! stood then), into any namespace. No consumer group is used and no offset is committed, so
//! a replay never disturbs the live projector.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hostledger_kafka::{KafkaClients, KafkaError};
use hostledger_schemas::{Codec, Timestamp};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::apply::{Applier, ApplyStats};
use crate::daemon::{Item, decode};
use crate::error::ProjectorError;
use crate::fold::Position;
use crate::history::HistoryStore;
use crate::k8s::HostStore;

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Only fold events observed at or before this time.
    pub until: Option<Timestamp>,
    /// Events folded in memory before the touched hosts are written. Larger means fewer
    /// writes (a host is written once per batch it appears in) and more memory.
    pub batch_max_events: usize,
    /// Most writes in flight at once.
    pub max_in_flight: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            until: None,
            batch_max_events: 1_000_000,
            max_in_flight: 16,
            progress: true,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Messages read.
    pub events: u64,
    /// Messages that could not be used (undecodable, unknown schema, invalid), logged and
    /// counted; the live projector dead-letters them.
    pub poison: u64,
    /// What the applier did.
    pub apply: ApplyStats,
    /// Time spent writing (the rest is loading, reading, decoding and folding).
    pub write_time: Duration,
}

/// Reads the events topic from the beginning up to its end as of the start, folds it, and
/// writes the result. Returns when everything up to that end is written.
pub async fn replay(
    kafka: &KafkaClients,
    store: HostStore,
    history: HistoryStore,
    settings: &ReplaySettings,
) -> Result<ReplayStats, ProjectorError> {
    let topic = kafka.settings().topics.events.clone();
    crate::blocking(|| kafka.check_connection(Duration::from_secs(15)))?;
    let watermarks = kafka.watermarks(&topic, Duration::from_secs(10))?;
    let total: u64 = watermarks
        .values()
        .map(|(lo, hi)| (hi - lo).max(0) as u64)
        .sum();
    let mut applier = Applier::load(store, history, settings.max_in_flight)
        .await?
        .with_until(settings.until);
    tracing::info!(topic = %topic, events = total, hosts = applier.hosts().len(), "replay starting");

    let bar = if settings.progress {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {human_pos}/{human_len} events  {per_sec}  ETA {eta}  {msg}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    bar.set_prefix("replay");

    // A blocking reader thread decodes; this task folds and writes.
    let (tx, mut rx) = mpsc::channel::<Vec<Item>>(8);
    let reader_kafka = kafka.clone();
    let reader_topic = topic.clone();
    let ends: Vec<(i32, i64, i64)> = watermarks
        .iter()
        .map(|(p, (lo, hi))| (*p, *lo, *hi))
        .collect();
    let reader =
        tokio::task::spawn_blocking(move || read_to_end(&reader_kafka, &reader_topic, &ends, &tx));

    let started = Instant::now();
    let mut stats = ReplayStats::default();
    let mut write_time = Duration::ZERO;
    while let Some(chunk) = rx.recv().await {
        for item in chunk {
            stats.events += 1;
            bar.inc(1);
            match item {
                Item::Event(event, position) => {
                    applier.fold(&event, position);
                }
                Item::Poison {
                    reason, position, ..
                } => {
                    stats.poison += 1;
                    tracing::warn!(partition = position.partition, offset = position.offset, error = %reason, "skipping unusable message");
                }
            }
            if applier.pending_events() >= settings.batch_max_events {
                bar.set_message(format!("writing {} hosts", applier.dirty_hosts()));
                let t = Instant::now();
                applier.flush().await?;
                write_time += t.elapsed();
                bar.set_message(String::new());
            }
        }
    }
    reader
        .await
        .map_err(|e| ProjectorError::Internal(format!("replay reader task: {e}")))??;
    let read_time = started.elapsed();
    bar.set_message(format!("writing {} hosts", applier.dirty_hosts()));
    let t = Instant::now();
    applier.flush().await?;
    write_time += t.elapsed();
    bar.finish_and_clear();
    stats.apply = applier.stats.clone();
    stats.write_time = write_time;
    tracing::info!(elapsed = ?started.elapsed(), ?read_time, ?write_time, ?stats, "replay done");
    Ok(stats)
}

/// Reads every partition from its low watermark to its high watermark (as measured at the
/// start), decoding as it goes, in chunks sent to `tx`.
pub fn read_to_end(
    kafka: &KafkaClients,
    topic: &str,
    ends: &[(i32, i64, i64)],
    tx: &mpsc::Sender<Vec<Item>>,
) -> Result<(), ProjectorError> {
    let reader = kafka.reader()?;
    let mut assignment = TopicPartitionList::new();
    let mut open: HashSet<i32> = HashSet::new();
    for (partition, lo, hi) in ends {
        if hi > lo {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(*lo))
                .map_err(|e| KafkaError::client("build the replay assignment", e))?;
            open.insert(*partition);
        }
    }
    if open.is_empty() {
        return Ok(());
    }
    reader
        .assign(&assignment)
        .map_err(|e| KafkaError::client(format!("assign {topic}"), e))?;
    let codec = Codec::new();
    let high: std::collections::HashMap<i32, i64> =
        ends.iter().map(|(p, _, hi)| (*p, *hi)).collect();
    let mut chunk = Vec::with_capacity(4096);
    while !open.is_empty() {
        match reader.poll(Duration::from_millis(500)) {
            None => {}
            Some(Ok(message)) => {
                let position = Position {
                    partition: message.partition(),
                    offset: message.offset(),
                };
                if position.offset + 1 >= high[&position.partition] {
                    open.remove(&position.partition);
                }
                if position.offset < high[&position.partition] {
                    chunk.push(decode(&codec, &message, position));
                }
                if chunk.len() >= 4096 {
                    if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                        return Ok(()); // the folding side stopped; its error is reported there
                    }
                    chunk.reserve(4096);
                }
            }
            Some(Err(RdError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => match hostledger_kafka::error::classify(&e) {
                hostledger_kafka::ErrorClass::Fatal => {
                    return Err(KafkaError::client(format!("read {topic}"), e).into());
                }
                _ => tracing::warn!(error = %e, "transient error while reading; continuing"),
            },
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

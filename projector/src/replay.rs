//! Replay and backfill: rebuild Hosts and their history from offset 0 with the same fold and
//! the same writes as the live projector, optionally only up to a time (the inventory as it
//! stood then), into any namespace. No consumer group is used and no offset is committed, so
//! a replay never disturbs the live projector.

use std::time::{Duration, Instant};

use hostledger_k8s::projection::{self, HistoryHome};
use hostledger_k8s::{HistoryStore, HostStore};
use hostledger_kafka::{Item, KafkaClients, LogReader};
use hostledger_model::defaults::defaults;
use hostledger_schemas::Timestamp;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Applier, ApplyStats};
use crate::error::ProjectorError;

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
            batch_max_events: defaults().replay_batch_events as usize,
            max_in_flight: defaults().max_in_flight as usize,
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

/// Records in `store`'s namespace that it is the projection of `topic` (up to `until`), and
/// returns the store and HostHistory chunks to write with: chunks (and the finalizer that
/// keeps them) only where the namespace still keeps history in etcd.
pub async fn claim(
    store: &HostStore,
    topic: &str,
    until: Option<Timestamp>,
) -> Result<(HostStore, Option<HistoryStore>), ProjectorError> {
    let client = store.client();
    let namespace = store.namespace();
    let projection = projection::claim(&client, namespace, topic, until).await?;
    let chunks = projection.history == HistoryHome::Chunks;
    let history = chunks.then(|| HistoryStore::new(client, namespace));
    Ok((store.clone().with_history_finalizer(chunks), history))
}

/// Reads the events topic from the beginning up to its end as of the start, folds it, and
/// writes the result. Returns when everything up to that end is written.
pub async fn replay(
    kafka: &KafkaClients,
    store: HostStore,
    settings: &ReplaySettings,
) -> Result<ReplayStats, ProjectorError> {
    let topic = kafka.settings().topics.events.clone();
    let (store, history) = claim(&store, &topic, settings.until).await?;
    let mut log = LogReader::open(kafka).await?;
    let total = log.total;
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

    let started = Instant::now();
    let mut stats = ReplayStats::default();
    let mut write_time = Duration::ZERO;
    while let Some(chunk) = log.next_chunk().await {
        for item in chunk {
            stats.events += 1;
            bar.inc(1);
            match item {
                Item::Event(event, position) => {
                    applier.fold(&event, position);
                }
                Item::Lock(event, position) => {
                    applier.fold_lock(&event, position);
                }
                Item::Poison {
                    reason, position, ..
                } => {
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
    stats.poison = log.finish().await?.poison;
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

//! Reading the events topic: decoding and checking each message, and the one reader of the
//! log (from each partition's start to its end as of the read's start, or on as new events
//! arrive) that replay, `hostledger events` and the `--source log` queries share. A blocking
//! thread reads and decodes; the caller gets chunks over a bounded channel, so memory stays
//! bounded however long the log is.
//!
//! One host's events are all in one partition, the one its key (the host id) hashes to, so a
//! read scoped to one host reads that partition only and decodes only that host's messages.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostledger_model::Position;
use hostledger_schemas::{Codec, Fact, HostEvent, LockEvent};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::KafkaClients;
use crate::error::{ErrorClass, KafkaError, classify};

/// Something read from the events topic.
#[derive(Debug)]
pub enum Item {
    /// A decoded, valid event and where it sits in the log.
    Event(Box<HostEvent>, Position),
    /// A decoded, valid lock fact and where it sits in the log.
    Lock(Box<LockEvent>, Position),
    /// A message that cannot be folded (undecodable, unknown schema, invalid).
    Poison {
        /// What is wrong with it.
        reason: String,
        /// The message key.
        key: Option<Vec<u8>>,
        /// The message payload.
        payload: Option<Vec<u8>>,
        /// Where it sits in the log.
        position: Position,
    },
}

impl Item {
    /// Where the message sits in the log.
    pub fn position(&self) -> Position {
        match self {
            Item::Event(_, p) | Item::Lock(_, p) | Item::Poison { position: p, .. } => *p,
        }
    }
}

/// Decodes and validates one message of the events topic; anything unusable becomes poison
/// with its reason.
pub fn decode(codec: &Codec, message: &impl Message, position: Position) -> Item {
    let poison = |reason: String| Item::Poison {
        reason,
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        position,
    };
    let Some(payload) = message.payload() else {
        return poison("message has no payload".into());
    };
    let fact = match codec.decode_fact(payload) {
        Ok(fact) => fact,
        Err(error) => return poison(format!("undecodable: {error}")),
    };
    if let Err(error) = fact.validate() {
        return poison(format!("invalid event: {error}"));
    }
    if message.key() != Some(fact.host_id().as_bytes()) {
        return poison(format!(
            "message key {:?} is not the event's host id {:?}",
            message.key().map(String::from_utf8_lossy),
            fact.host_id()
        ));
    }
    match fact {
        Fact::Host(event) => Item::Event(Box::new(event), position),
        Fact::Lock(event) => Item::Lock(Box::new(event), position),
    }
}

/// Messages per chunk handed to the caller.
const CHUNK: usize = 4096;
/// Chunks in flight between the reading thread and the caller.
const CHUNKS_IN_FLIGHT: usize = 8;

/// What reading the log met so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Messages read.
    pub messages: u64,
    /// Messages that are not usable events (the projector dead-letters them).
    pub poison: u64,
}

/// Which part of the log a [`LogReader`] reads.
#[derive(Debug, Clone, Default)]
pub struct ReadScope {
    /// Only the messages with this key (a host id): only its partition is read, and the other
    /// hosts' messages are skipped without being decoded.
    pub key: Option<String>,
    /// Go on past the end, handing out new messages as they arrive, until the reader is dropped.
    pub follow: bool,
    /// Where to start reading each partition (an index that resumes); the others, and any
    /// offset below a partition's start, start at its start.
    pub start: HashMap<i32, i64>,
}

/// The partition the producers' partitioner puts `key` in: CRC-32 (IEEE) of the key modulo
/// the partition count (librdkafka's `consistent_random`, pinned in the producer settings).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(crc32fast::hash(key) % partitions).expect("below an i32 partition count")
}

/// How far a following read has gone: each partition's position (the next offset, past
/// transaction markers) as of the last time the read reached that partition's end, which
/// partitions it is at the end of (nothing read since), and how many chunks had been handed
/// out by then. A consumer of the chunks that has taken in that many has everything the log
/// held up to those positions (see [`ReadProgress::covers`]).
#[derive(Debug, Default)]
pub struct ReadProgress {
    state: Mutex<ProgressState>,
}

#[derive(Debug, Default, Clone)]
struct ProgressState {
    reached: HashMap<i32, i64>,
    at_end: HashSet<i32>,
    sent: u64,
}

impl ReadProgress {
    fn state(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sent_one(&self) {
        self.state().sent += 1;
    }

    /// The read reached the end of `partition`, at `position` when the consumer knows it
    /// (it does not before it has handed out a message since the assignment).
    fn reached(&self, partition: i32, position: Option<i64>) {
        let mut state = self.state();
        state.at_end.insert(partition);
        if let Some(position) = position {
            let at = state.reached.entry(partition).or_insert(position);
            *at = (*at).max(position);
        }
    }

    fn read_one(&self, partition: i32) {
        self.state().at_end.remove(&partition);
    }

    /// Whether the chunks up to `taken` (non-empty chunks received) hold every message below
    /// `ends` (partition → end offset, as [`KafkaClients::watermarks`] reports it for a
    /// read_committed reader: the last stable offset). A partition is there when the read's
    /// position is at its end; or, once the caller has waited long enough for anything
    /// below its end to have been fetched (`quiet`), when the read has been at its end with
    /// nothing read since. `Err`: not yet, and how many partitions are behind.
    pub fn covers(
        &self,
        ends: &HashMap<i32, (i64, i64)>,
        taken: u64,
        quiet: bool,
    ) -> Result<(), usize> {
        let state = self.state().clone();
        let behind = ends
            .iter()
            .filter(|(p, (lo, hi))| {
                hi > lo
                    && state.reached.get(p).is_none_or(|r| r < hi)
                    && !(quiet && state.at_end.contains(p))
            })
            .count();
        if behind > 0 {
            return Err(behind);
        }
        if taken < state.sent {
            return Err(1);
        }
        Ok(())
    }
}

/// A read of the events topic: up to its end when the read began, or on (see [`ReadScope`]).
pub struct LogReader {
    /// Messages between the start and the end of every partition when the read began.
    pub total: u64,
    /// What has been handed out so far.
    pub stats: LogStats,
    caught_up: bool,
    progress: Arc<ReadProgress>,
    rx: mpsc::Receiver<Vec<Item>>,
    task: JoinHandle<Result<(), KafkaError>>,
}

impl LogReader {
    /// Checks the connection, measures where every partition ends, and starts reading the
    /// whole log.
    pub async fn open(kafka: &KafkaClients) -> Result<LogReader, KafkaError> {
        LogReader::open_scoped(kafka, ReadScope::default()).await
    }

    /// Like [`LogReader::open`], reading only what `scope` says.
    pub async fn open_scoped(
        kafka: &KafkaClients,
        scope: ReadScope,
    ) -> Result<LogReader, KafkaError> {
        let topic = kafka.settings().topics.events.clone();
        kafka
            .check_connection_async(Duration::from_secs(15))
            .await?;
        let mut watermarks = kafka
            .watermarks_async(&topic, Duration::from_secs(10))
            .await?;
        if let Some(key) = &scope.key {
            let partitions = i32::try_from(watermarks.len()).unwrap_or(i32::MAX);
            let wanted = partition_for_key(key.as_bytes(), partitions);
            watermarks.retain(|partition, _| *partition == wanted);
        }
        for (partition, (lo, hi)) in watermarks.iter_mut() {
            if let Some(start) = scope.start.get(partition) {
                *lo = (*start).clamp(*lo, *hi);
            }
        }
        let total = watermarks
            .values()
            .map(|(lo, hi)| u64::try_from(hi - lo).unwrap_or(0))
            .sum();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let reader_kafka = kafka.clone();
        let progress = Arc::new(ReadProgress::default());
        let shared = progress.clone();
        let task = tokio::task::spawn_blocking(move || {
            read_log(&reader_kafka, &topic, &watermarks, &scope, &tx, &shared)
        });
        Ok(LogReader {
            total,
            stats: LogStats::default(),
            caught_up: false,
            progress,
            rx,
            task,
        })
    }

    /// The next chunk of messages in log order (per partition); `None` at the end. When
    /// following, an empty chunk says every message up to where the log ended at the start
    /// has been handed out (see [`LogReader::caught_up`]).
    pub async fn next_chunk(&mut self) -> Option<Vec<Item>> {
        let chunk = self.rx.recv().await?;
        Some(self.took(chunk))
    }

    /// The next chunk if one has been read already, without waiting (see
    /// [`LogReader::next_chunk`]).
    pub fn ready_chunk(&mut self) -> Option<Vec<Item>> {
        let chunk = self.rx.try_recv().ok()?;
        Some(self.took(chunk))
    }

    fn took(&mut self, chunk: Vec<Item>) -> Vec<Item> {
        if chunk.is_empty() {
            self.caught_up = true;
        }
        self.stats.messages += chunk.len() as u64;
        self.stats.poison += chunk
            .iter()
            .filter(|i| matches!(i, Item::Poison { .. }))
            .count() as u64;
        chunk
    }

    /// Whether every message up to where the log ended when the read began has been handed
    /// out (by position, so transaction markers, which take offsets and are never handed
    /// out, count too). Only a following read tells; a bounded one ends with `None`.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// How far a following read has gone, shared with whoever needs to wait for it.
    pub fn progress(&self) -> Arc<ReadProgress> {
        self.progress.clone()
    }

    /// Waits for the reading thread; its error if it failed.
    pub async fn finish(self) -> Result<LogStats, KafkaError> {
        drop(self.rx);
        self.task
            .await
            .map_err(|e| KafkaError::Config(format!("the log reader thread failed: {e}")))??;
        Ok(self.stats)
    }
}

/// Reads every partition of `watermarks` from its low watermark to its high watermark (or on,
/// when following), decoding as it goes, in chunks sent to `tx`. Stops early, without error,
/// when the receiving side is gone.
fn read_log(
    kafka: &KafkaClients,
    topic: &str,
    watermarks: &HashMap<i32, (i64, i64)>,
    scope: &ReadScope,
    tx: &mpsc::Sender<Vec<Item>>,
    progress: &ReadProgress,
) -> Result<(), KafkaError> {
    let reader = kafka.reader()?;
    let mut assignment = TopicPartitionList::new();
    let mut open: HashSet<i32> = HashSet::new();
    // Following: the partitions not yet read up to where they ended at the start.
    let mut behind: HashSet<i32> = watermarks
        .iter()
        .filter(|(_, (lo, hi))| hi > lo)
        .map(|(p, _)| *p)
        .collect();
    let mut announced = false;
    for (partition, (lo, hi)) in watermarks {
        if hi > lo || scope.follow {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(*lo))
                .map_err(|e| KafkaError::client("build the log assignment", e))?;
            open.insert(*partition);
        }
    }
    if open.is_empty() {
        return Ok(());
    }
    reader
        .assign(&assignment)
        .map_err(|e| kafka.error(format!("assign {topic}"), e))?;
    let codec = Codec::new();
    let key = scope.key.as_ref().map(String::as_bytes);
    let mut chunk = Vec::with_capacity(CHUNK);
    // Hands the chunk over; false when the caller stopped (its error is reported there).
    let send = |chunk: &mut Vec<Item>| {
        if chunk.is_empty() {
            return true;
        }
        let sent = tx
            .blocking_send(std::mem::replace(chunk, Vec::with_capacity(CHUNK)))
            .is_ok();
        if sent {
            progress.sent_one();
        }
        sent
    };
    // Following: once every partition is read to where it ended at the start, what was read
    // is handed over, then an empty chunk says so.
    let announce = |chunk: &mut Vec<Item>, behind: &HashSet<i32>, announced: &mut bool| {
        if *announced || !behind.is_empty() {
            return true;
        }
        *announced = true;
        send(chunk) && tx.blocking_send(Vec::new()).is_ok()
    };
    if scope.follow && !announce(&mut chunk, &behind, &mut announced) {
        return Ok(());
    }
    while !open.is_empty() {
        match reader.poll(Duration::from_millis(if scope.follow { 100 } else { 500 })) {
            None => {
                // Idle: stop once nobody reads any more.
                if scope.follow && (tx.is_closed() || !send(&mut chunk)) {
                    return Ok(());
                }
            }
            Some(Ok(message)) => {
                let position = Position {
                    partition: message.partition(),
                    offset: message.offset(),
                };
                let high = watermarks.get(&position.partition).map_or(0, |w| w.1);
                if scope.follow {
                    progress.read_one(position.partition);
                    if key.is_none_or(|k| message.key() == Some(k)) {
                        chunk.push(decode(&codec, &message, position));
                    }
                    if position.offset + 1 >= high {
                        behind.remove(&position.partition);
                    }
                    if !announce(&mut chunk, &behind, &mut announced) {
                        return Ok(());
                    }
                } else {
                    if position.offset + 1 >= high {
                        open.remove(&position.partition);
                    }
                    if position.offset < high && key.is_none_or(|k| message.key() == Some(k)) {
                        chunk.push(decode(&codec, &message, position));
                    }
                }
                if chunk.len() >= CHUNK && !send(&mut chunk) {
                    return Ok(());
                }
            }
            Some(Err(RdError::PartitionEOF(p))) => {
                if scope.follow {
                    behind.remove(&p);
                    if !send(&mut chunk) || !announce(&mut chunk, &behind, &mut announced) {
                        return Ok(());
                    }
                    // Everything before the position is handed out now.
                    progress.reached(p, position_of(&reader, topic, p));
                } else {
                    open.remove(&p);
                }
            }
            // A followed topic that was deleted does not come back.
            Some(Err(e))
                if scope.follow
                    && matches!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                    ) =>
            {
                return Err(KafkaError::client(format!("follow {topic}"), e));
            }
            Some(Err(e)) => match classify(&e) {
                ErrorClass::Fatal => {
                    return Err(kafka.error(format!("read {topic}"), e));
                }
                _ => tracing::warn!(error = %e, "transient error while reading; continuing"),
            },
        }
    }
    send(&mut chunk);
    Ok(())
}

/// The consumer's position in `topic`/`partition` (the next offset it fetches), if it has one.
fn position_of(reader: &crate::client::Reader, topic: &str, partition: i32) -> Option<i64> {
    let positions = reader.position().ok()?;
    match positions.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_covers_the_ends_once_reached_and_taken() {
        let progress = ReadProgress::default();
        let ends = HashMap::from([(0, (0, 10)), (1, (5, 5))]);
        assert_eq!(
            progress.covers(&ends, 0, true),
            Err(1),
            "partition 0 not reached"
        );
        progress.sent_one();
        progress.reached(0, Some(9));
        progress.read_one(0);
        assert_eq!(
            progress.covers(&ends, 1, true),
            Err(1),
            "below its end, read since"
        );
        progress.reached(0, Some(10));
        assert_eq!(
            progress.covers(&ends, 0, false),
            Err(1),
            "a chunk not taken in yet"
        );
        assert_eq!(progress.covers(&ends, 1, false), Ok(()));
        progress.reached(0, Some(3));
        assert_eq!(progress.covers(&ends, 1, false), Ok(()), "never goes back");
        // At the end without a known position (nothing handed out since the assignment):
        // there once the caller has waited for anything below the end to be fetched.
        let fresh = ReadProgress::default();
        fresh.reached(0, None);
        assert_eq!(fresh.covers(&ends, 0, false), Err(1));
        assert_eq!(fresh.covers(&ends, 0, true), Ok(()));
    }

    /// librdkafka's consistent partitioner is CRC-32 (IEEE) modulo the partition count; these
    /// are CRC-32 check values (`123456789` → cbf43926).
    #[test]
    fn a_key_hashes_to_one_partition_like_the_producers() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            partition_for_key(b"123456789", 6),
            (0xcbf4_3926_u32 % 6) as i32
        );
        assert_eq!(partition_for_key(b"dc/pdx1/PX100", 1), 0);
        assert!((0..6).contains(&partition_for_key(b"aws/123456789012/us-east-1/i-0abc", 6)));
    }
}

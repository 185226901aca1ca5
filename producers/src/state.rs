//! Restoring a fetcher's known state from the compacted fetcher-state topic. Its size is
//! bounded by the number of hosts, not the length of the event log, so restart time does not
//! grow with history.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hostledger_kafka::{KafkaClients, KafkaError};
use hostledger_schemas::{Codec, HostEvent};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::diff::KnownHost;
use crate::error::FetchError;

/// Reads every committed state entry of `source` and returns the known hosts. Entries of
/// other sources are ignored; an undecodable entry is an error (the state topic is written
/// only by fetchers, so it means a bug or tampering and must not be guessed around).
pub fn restore(
    kafka: &KafkaClients,
    source: &str,
    timeout: Duration,
) -> Result<HashMap<String, KnownHost>, FetchError> {
    Ok(restore_events(kafka, source, timeout)?
        .into_iter()
        .map(|(host_id, event)| {
            let known = KnownHost {
                state: event.state,
                absent_since: None,
            };
            (host_id, known)
        })
        .collect())
}

/// The last event `source` published for each of its hosts, as its state entries hold them.
pub fn restore_events(
    kafka: &KafkaClients,
    source: &str,
    timeout: Duration,
) -> Result<HashMap<String, HostEvent>, FetchError> {
    let topic = kafka.settings().topics.fetcher_state.clone();
    let partitions = kafka.partition_count(&topic, timeout)?;
    let reader = kafka.reader()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .map_err(|e| KafkaError::client("build the state assignment", e))?;
    }
    reader
        .assign(&assignment)
        .map_err(|e| KafkaError::client(format!("assign {topic}"), e))?;
    let codec = Codec::new();
    let prefix = format!("{source}|");
    let mut known = HashMap::new();
    let mut at_end: HashSet<i32> = HashSet::new();
    let deadline = Instant::now() + timeout;
    while (at_end.len() as i32) < partitions {
        if Instant::now() > deadline {
            return Err(FetchError::Internal(format!(
                "restoring state from {topic} took longer than {timeout:?} ({} of {partitions} partitions read)",
                at_end.len()
            )));
        }
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(RdError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(KafkaError::client(format!("read {topic}"), e).into()),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                let Some(key) = message.key() else { continue };
                let Some(host_id) = std::str::from_utf8(key)
                    .ok()
                    .and_then(|k| k.strip_prefix(&prefix))
                else {
                    continue;
                };
                match message.payload() {
                    None => {
                        known.remove(host_id);
                    }
                    Some(payload) => {
                        let event = codec.decode(payload).map_err(|e| {
                            FetchError::Internal(format!(
                                "fetcher state {topic}/{}@{} for {host_id} is unreadable: {e}",
                                message.partition(),
                                message.offset()
                            ))
                        })?;
                        known.insert(host_id.to_owned(), event);
                    }
                }
            }
        }
    }
    Ok(known)
}

//! Restoring a fetcher's known state from the compacted fetcher-state topic. Its size is
//! bounded by the number of hosts, not the length of the event log, so restart time does not
//! grow with history.
//!
//! One entry per host, keyed `SOURCE|HOST_ID` ([`crate::state_key`]): the value is the last
//! event the source published for the host, and while the host is absent from the listings
//! the header [`ABSENT_SINCE_HEADER`] says since when, so that the grace period before
//! `HostWentMissing` survives restarts.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hostledger_kafka::{KafkaClients, KafkaError};
use hostledger_schemas::{Codec, HostEvent, Timestamp};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::diff::KnownHost;
use crate::error::FetchError;

/// The header of a fetcher-state entry that holds when its host was first seen absent from a
/// complete listing: microseconds since the Unix epoch, in decimal ASCII. Absent while the
/// host is listed (and in entries written before the header existed).
pub const ABSENT_SINCE_HEADER: &str = "hostledger-absent-since";

/// What a fetcher-state entry holds about one host.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEntry {
    /// The last event the source published for the host.
    pub event: HostEvent,
    /// Since when the host has been absent from complete listings, if it is.
    pub absent_since: Option<Timestamp>,
}

/// A fetcher's memory of what it published, as restored from its state entries.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Each host's last published state and absence clock, as the diff wants them.
    pub known: HashMap<String, KnownHost>,
    /// The last event published for each host (the value of its state entry).
    pub last: HashMap<String, HostEvent>,
}

/// What `source` knows about its hosts, from its committed state entries.
pub fn restore(
    kafka: &KafkaClients,
    source: &str,
    timeout: Duration,
) -> Result<Restored, FetchError> {
    let entries = restore_entries(kafka, source, timeout)?;
    let mut known = HashMap::with_capacity(entries.len());
    let mut last = HashMap::with_capacity(entries.len());
    for (host_id, entry) in entries {
        known.insert(
            host_id.clone(),
            KnownHost {
                state: entry.event.state.clone(),
                absent_since: entry.absent_since,
            },
        );
        last.insert(host_id, entry.event);
    }
    Ok(Restored { known, last })
}

/// The last event `source` published for each of its hosts, as its state entries hold them.
pub fn restore_events(
    kafka: &KafkaClients,
    source: &str,
    timeout: Duration,
) -> Result<HashMap<String, HostEvent>, FetchError> {
    Ok(restore_entries(kafka, source, timeout)?
        .into_iter()
        .map(|(host_id, entry)| (host_id, entry.event))
        .collect())
}

/// Every committed state entry of `source`, by host. Entries of other sources are ignored; an
/// undecodable entry is an error (the state topic is written only by fetchers, so it means a
/// bug or tampering and must not be guessed around).
pub fn restore_entries(
    kafka: &KafkaClients,
    source: &str,
    timeout: Duration,
) -> Result<HashMap<String, StateEntry>, FetchError> {
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
        .map_err(|e| kafka.error(format!("assign {topic}"), e))?;
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
            Some(Err(e)) => return Err(kafka.error(format!("read {topic}"), e).into()),
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
                        let unreadable = |what: String| {
                            FetchError::Internal(format!(
                                "fetcher state {topic}/{}@{} for {host_id} is unreadable: {what}",
                                message.partition(),
                                message.offset()
                            ))
                        };
                        let event = codec
                            .decode(payload)
                            .map_err(|e| unreadable(e.to_string()))?;
                        let absent_since = message
                            .headers()
                            .and_then(|h| h.iter().find(|h| h.key == ABSENT_SINCE_HEADER))
                            .map(|h| parse_absent_since(h.value.unwrap_or_default()))
                            .transpose()
                            .map_err(unreadable)?;
                        known.insert(
                            host_id.to_owned(),
                            StateEntry {
                                event,
                                absent_since,
                            },
                        );
                    }
                }
            }
        }
    }
    Ok(known)
}

/// The value of [`ABSENT_SINCE_HEADER`] for a time.
pub(crate) fn absent_since_value(since: Timestamp) -> String {
    since.0.to_string()
}

fn parse_absent_since(value: &[u8]) -> Result<Timestamp, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .map(Timestamp)
        .ok_or_else(|| {
            format!(
                "header {ABSENT_SINCE_HEADER} is {:?}, not microseconds since the epoch",
                String::from_utf8_lossy(value)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_since_round_trips_and_rejects_garbage() {
        let t = Timestamp(1_767_225_600_123_456);
        let value = absent_since_value(t);
        assert_eq!(value, "1767225600123456");
        assert_eq!(parse_absent_since(value.as_bytes()), Ok(t));
        let err = parse_absent_since(b"yesterday").expect_err("not a number");
        assert!(err.contains("\"yesterday\""), "{err}");
        assert!(parse_absent_since(b"").is_err());
    }
}

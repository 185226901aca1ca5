//! Publishing: the events of one pass and the fetcher's new state go to Kafka in one
//! transaction, so the log and the fetcher's memory of it can never disagree.

use std::borrow::Cow;
use std::time::Duration;

use hostledger_kafka::{KafkaClients, KafkaError, Producer as KafkaProducer};
use hostledger_schemas::{Codec, HostEvent, Timestamp};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};

use crate::error::FetchError;
use crate::state::{ABSENT_SINCE_HEADER, absent_since_value};

/// How long a transaction may take to commit or abort.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The key of a host's entry in the fetcher-state topic.
pub fn state_key(source: &str, host_id: &str) -> String {
    format!("{source}|{host_id}")
}

/// A transactional publisher for one fetcher instance (`source`).
pub struct Publisher {
    producer: KafkaProducer,
    codec: Codec,
    source: String,
    events_topic: String,
    state_topic: String,
}

impl Publisher {
    /// Creates the producer and initialises its transactions, which fences any earlier
    /// instance with the same source that may still be running.
    pub async fn new(kafka: &KafkaClients, source: &str) -> Result<Self, FetchError> {
        let transactional_id = format!("hostledger-fetcher-{source}");
        let producer = kafka.producer(Some(&transactional_id))?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(TRANSACTION_TIMEOUT))
            .await
            .map_err(|e| FetchError::Internal(format!("init_transactions task: {e}")))?
            .map_err(|e| {
                KafkaError::client(format!("initialise transactions for {transactional_id}"), e)
            })?;
        let topics = &kafka.settings().topics;
        Ok(Publisher {
            producer,
            codec: Codec::new(),
            source: source.to_owned(),
            events_topic: topics.events.clone(),
            state_topic: topics.fetcher_state.clone(),
        })
    }

    /// Publishes `events` and, for each, the host's new state, atomically. Returns once the
    /// transaction is committed; on error it is aborted and nothing is visible to
    /// read-committed consumers.
    pub async fn publish(&self, events: &[HostEvent]) -> Result<(), FetchError> {
        self.publish_pass(events, &[]).await
    }

    /// [`Publisher::publish`], plus the absence clocks of hosts that have no event in this
    /// pass: each `(last event published for the host, absent since)` rewrites that host's
    /// state entry with the clock started (`Some`) or stopped (`None`), in the same
    /// transaction.
    pub async fn publish_pass(
        &self,
        events: &[HostEvent],
        absence: &[(&HostEvent, Option<Timestamp>)],
    ) -> Result<(), FetchError> {
        if events.is_empty() && absence.is_empty() {
            return Ok(());
        }
        let encode = |event: &HostEvent| {
            self.codec
                .encode(event)
                .map_err(|e| FetchError::Internal(e.to_string()))
        };
        let encoded = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let clocks = absence
            .iter()
            .map(|(event, since)| Ok((event.host_id.as_str(), encode(event)?, *since)))
            .collect::<Result<Vec<_>, FetchError>>()?;
        self.producer
            .begin_transaction()
            .map_err(|e| KafkaError::client("begin a transaction", e))?;
        let result = self.send_all(events, &encoded, &clocks).await;
        let producer = self.producer.clone();
        let outcome = match result {
            Ok(()) => tokio::task::spawn_blocking(move || {
                producer.commit_transaction(TRANSACTION_TIMEOUT)
            })
            .await
            .map_err(|e| FetchError::Internal(format!("commit task: {e}")))?
            .map_err(|e| KafkaError::client("commit the transaction", e).into()),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            let producer = self.producer.clone();
            let aborted = tokio::task::spawn_blocking(move || {
                producer.abort_transaction(TRANSACTION_TIMEOUT)
            })
            .await;
            if let Ok(Err(error)) = aborted {
                tracing::warn!(%error, "could not abort the failed transaction");
            }
        }
        outcome
    }

    async fn send_all(
        &self,
        events: &[HostEvent],
        encoded: &[Vec<u8>],
        clocks: &[(&str, Vec<u8>, Option<Timestamp>)],
    ) -> Result<(), FetchError> {
        let mut deliveries = Vec::with_capacity(events.len() * 2 + clocks.len());
        // Event records borrow the host id as their key; state keys are built.
        let state_entries = clocks.iter().map(|(host_id, payload, since)| {
            let key = Cow::Owned(state_key(&self.source, host_id));
            (key, payload.as_slice(), *since)
        });
        let records = events
            .iter()
            .zip(encoded)
            .flat_map(|(event, payload)| {
                [
                    (
                        &self.events_topic,
                        Cow::Borrowed(event.host_id.as_str()),
                        payload.as_slice(),
                        None,
                    ),
                    (
                        &self.state_topic,
                        Cow::Owned(state_key(&self.source, &event.host_id)),
                        payload.as_slice(),
                        None,
                    ),
                ]
            })
            .chain(
                state_entries.map(|(key, payload, since)| (&self.state_topic, key, payload, since)),
            );
        for (topic, key, payload, absent_since) in records {
            let since = absent_since.map(absent_since_value);
            let delivery = loop {
                let mut record = FutureRecord::to(topic).key(key.as_ref()).payload(payload);
                if let Some(since) = &since {
                    record = record.headers(OwnedHeaders::new().insert(Header {
                        key: ABSENT_SINCE_HEADER,
                        value: Some(since.as_str()),
                    }));
                }
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((e, _))
                        if e.rdkafka_error_code()
                            == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                    {
                        self.producer.poll(Duration::from_millis(10));
                        tokio::task::yield_now().await;
                    }
                    Err((e, _)) => {
                        return Err(
                            KafkaError::client(format!("queue an event for {topic}"), e).into()
                        );
                    }
                }
            };
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(KafkaError::client("deliver an event", e).into()),
                Err(_) => return Err(FetchError::Internal("delivery future cancelled".into())),
            }
        }
        Ok(())
    }
}

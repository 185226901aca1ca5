//! Publishing: the events of one pass and the fetcher's new state go to Kafka in one
//! transaction, so the log and the fetcher's memory of it can never disagree.

use std::time::Duration;

use hostledger_kafka::{KafkaClients, KafkaError, Producer as KafkaProducer};
use hostledger_schemas::{Codec, HostEvent};
use rdkafka::producer::{FutureRecord, Producer};

use crate::error::FetchError;

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
        if events.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            encoded.push(
                self.codec
                    .encode(event)
                    .map_err(|e| FetchError::Internal(e.to_string()))?,
            );
        }
        self.producer
            .begin_transaction()
            .map_err(|e| KafkaError::client("begin a transaction", e))?;
        let result = self.send_all(events, &encoded).await;
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

    async fn send_all(&self, events: &[HostEvent], encoded: &[Vec<u8>]) -> Result<(), FetchError> {
        let mut deliveries = Vec::with_capacity(events.len() * 2);
        for (event, payload) in events.iter().zip(encoded) {
            let state_key = state_key(&self.source, &event.host_id);
            for (topic, key) in [
                (&self.events_topic, event.host_id.as_str()),
                (&self.state_topic, state_key.as_str()),
            ] {
                let delivery = loop {
                    match self
                        .producer
                        .send_result(FutureRecord::to(topic).key(key).payload(payload.as_slice()))
                    {
                        Ok(delivery) => break delivery,
                        Err((e, _))
                            if e.rdkafka_error_code()
                                == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                        {
                            self.producer.poll(Duration::from_millis(10));
                            tokio::task::yield_now().await;
                        }
                        Err((e, _)) => {
                            return Err(KafkaError::client(
                                format!("queue an event for {topic}"),
                                e,
                            )
                            .into());
                        }
                    }
                };
                deliveries.push(delivery);
            }
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

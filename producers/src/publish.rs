//! Publishing: the events of one pass and the fetcher's new state go to Kafka in one
//! transaction, so the log and the fetcher's memory of it can never disagree.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use hostledger_kafka::{KafkaClients, KafkaError, TransactionalProducer};
use hostledger_schemas::{Codec, HostEvent, Timestamp};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

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
    producer: Arc<TransactionalProducer>,
    codec: Codec,
    source: String,
    events_topic: String,
    state_topic: String,
    /// Who the brokers see, named in their refusals.
    principal: String,
}

impl Publisher {
    /// Creates the producer and initialises its transactions, which fences any earlier
    /// instance with the same source that may still be running.
    pub async fn new(kafka: &KafkaClients, source: &str) -> Result<Self, FetchError> {
        let transactional_id = format!("hostledger-fetcher-{source}");
        let producer = Arc::new(kafka.transactional_producer(&transactional_id)?);
        let p = Arc::clone(&producer);
        tokio::task::spawn_blocking(move || p.init_transactions(TRANSACTION_TIMEOUT))
            .await
            .map_err(|e| FetchError::Internal(format!("init_transactions task: {e}")))?
            .map_err(|e| {
                kafka.error(format!("initialise transactions for {transactional_id}"), e)
            })?;
        let topics = &kafka.settings().topics;
        Ok(Publisher {
            producer,
            codec: Codec::new(),
            source: source.to_owned(),
            events_topic: topics.events.clone(),
            state_topic: topics.fetcher_state.clone(),
            principal: kafka.principal(),
        })
    }

    /// `error`, naming this publisher's principal if the brokers refused it.
    fn refused(&self, error: KafkaError) -> KafkaError {
        error.refused_as(&self.principal)
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
            .map_err(|e| self.refused(KafkaError::client("begin a transaction", e)))?;
        self.producer.context().take_failure();
        let result = self.send_all(events, &encoded, &clocks).await;
        let producer = Arc::clone(&self.producer);
        let outcome = match result {
            // The commit waits for every message of the transaction and fails if one was not
            // delivered.
            Ok(()) => tokio::task::spawn_blocking(move || {
                // Serve the last delivery reports first: a commit that has to wait for them
                // itself sleeps in 100 ms steps (one pass per transaction: 10 passes/s).
                let deadline = std::time::Instant::now() + TRANSACTION_TIMEOUT;
                while producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
                    producer.poll(Duration::from_millis(1));
                }
                producer.commit_transaction(TRANSACTION_TIMEOUT)
            })
            .await
            .map_err(|e| FetchError::Internal(format!("commit task: {e}")))?
            .map_err(|e| match self.producer.context().take_failure() {
                Some(failure) => self
                    .refused(KafkaError::client(
                        format!("commit the transaction (a message was not delivered: {failure})"),
                        e,
                    ))
                    .into(),
                None => self
                    .refused(KafkaError::client("commit the transaction", e))
                    .into(),
            }),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            let producer = Arc::clone(&self.producer);
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
        for (n, (topic, key, payload, absent_since)) in records.enumerate() {
            // Serve the delivery reports of what was sent so far (they are counted, not
            // awaited), so that their queue does not fill.
            if n % 1024 == 1023 {
                self.producer.poll(Duration::ZERO);
            }
            let since = absent_since.map(absent_since_value);
            loop {
                let mut record = BaseRecord::to(topic).key(key.as_ref()).payload(payload);
                if let Some(since) = &since {
                    record = record.headers(OwnedHeaders::new().insert(Header {
                        key: ABSENT_SINCE_HEADER,
                        value: Some(since.as_str()),
                    }));
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    // Wait for room: deliveries free it.
                    Err((e, _))
                        if e.rdkafka_error_code()
                            == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                    {
                        self.producer.poll(Duration::from_millis(10));
                        tokio::task::yield_now().await;
                    }
                    Err((e, _)) => {
                        return Err(self
                            .refused(KafkaError::client(format!("queue an event for {topic}"), e))
                            .into());
                    }
                }
            }
        }
        Ok(())
    }
}

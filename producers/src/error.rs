//! Fetcher errors.

use hostledger_kafka::KafkaError;

use crate::provider::ProviderError;

/// What went wrong in a fetcher.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The configuration is invalid.
    #[error("invalid fetcher config: {0}")]
    Config(String),
    /// A provider could not be listed; nothing was published for it.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Kafka failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

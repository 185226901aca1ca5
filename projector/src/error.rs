//! Errors of the projector, each saying what it was trying to do.

use hostledger_k8s::K8sError;
use hostledger_kafka::KafkaError;

/// What stopped the projector.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// A Kafka operation failed for good.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// A Kubernetes API call failed for good (or the CRDs are not installed).
    #[error(transparent)]
    K8s(#[from] K8sError),
    /// A task failed in a way that is a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

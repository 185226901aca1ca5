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
    /// Another replica joined the group under this one's instance id and took its partitions.
    #[error(
        "another projector joined consumer group {group} with the same --instance-id {instance:?} \
         and took over this one's partitions; this one stops. Give each replica its own instance \
         id (a StatefulSet's pod name), or none"
    )]
    Fenced {
        /// The consumer group.
        group: String,
        /// The shared instance id.
        instance: String,
    },
    /// A task failed in a way that is a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

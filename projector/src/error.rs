//! Errors of the projector, each saying what it was trying to do.

use hostledger_kafka::KafkaError;

/// What stopped the projector.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// A Kafka operation failed for good.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The Host CRD is not installed, or the namespace does not exist.
    #[error(
        "cannot list Hosts in namespace {namespace:?}: {detail}. Is the Host CRD installed (kubectl apply --server-side -f deploy/crds/) and does the namespace exist?"
    )]
    NotInstalled {
        /// The namespace.
        namespace: String,
        /// The API server's message.
        detail: String,
    },
    /// A task failed in a way that is a bug.
    #[error("internal error: {0}")]
    Internal(String),
    /// A Kubernetes API call failed with an error that retrying cannot fix.
    #[error("Kubernetes API: could not {action}: {source}")]
    Kube {
        /// What we were doing.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl ProjectorError {
    /// Wraps a Kubernetes client error with what we were doing.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        ProjectorError::Kube {
            action: action.into(),
            source,
        }
    }
}

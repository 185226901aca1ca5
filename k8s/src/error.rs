//! What can go wrong talking to the Kubernetes API server, each saying what we were doing.

/// A Kubernetes API call that failed for good (transient failures are retried before this).
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The CRDs are not installed, or the namespace does not exist.
    #[error(
        "cannot {action} in namespace {namespace:?}: {detail}. Install the CRDs (`hostledger crd | kubectl apply --server-side -f -`, or `kubectl apply --server-side -f deploy/crds/`) and create the namespace (`kubectl create namespace {namespace}`)"
    )]
    NotInstalled {
        /// What we were doing (`list Hosts`).
        action: String,
        /// The namespace.
        namespace: String,
        /// The API server's message.
        detail: String,
    },
    /// An API call failed with an error that retrying cannot fix.
    #[error("Kubernetes API: could not {action}: {source}")]
    Api {
        /// What we were doing.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The API server answered with something that is not what its API says.
    #[error("Kubernetes API: could not {action}: {reason}")]
    Unreadable {
        /// What we were doing.
        action: String,
        /// What is wrong with the answer.
        reason: String,
    },
}

impl K8sError {
    /// Wraps a client error with what we were doing in `namespace`; a 404 means the CRD or the
    /// namespace is missing.
    pub fn in_namespace(action: impl Into<String>, namespace: &str, source: kube::Error) -> Self {
        match &source {
            kube::Error::Api(status) if status.code == 404 => K8sError::NotInstalled {
                action: action.into(),
                namespace: namespace.to_owned(),
                detail: status.message.clone(),
            },
            _ => K8sError::Api {
                action: format!("{} in namespace {namespace}", action.into()),
                source,
            },
        }
    }

    /// Wraps a client error with what we were doing.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        K8sError::Api {
            action: action.into(),
            source,
        }
    }
}

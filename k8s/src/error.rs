//! What can go wrong talking to the Kubernetes API server, each saying what we were doing.

/// A Kubernetes API call that failed for good (transient failures are retried before this).
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The CRDs are not installed, or the namespace does not exist.
    #[error(
        "cannot {action} in namespace {namespace:?}: {detail}. Install the CRDs (`hostledger crd | kubectl apply --server-side -f -`, or `kubectl apply --server-side -k deploy/crds/`) and create the namespace (`kubectl create namespace {namespace}`)"
    )]
    NotInstalled {
        /// What we were doing (`list Hosts`).
        action: String,
        /// The namespace.
        namespace: String,
        /// The API server's message.
        detail: String,
    },
    /// The API server refused the request (403): which identity was refused what, and which
    /// role grants it.
    #[error("Kubernetes API: could not {action}: {message}. {hint}")]
    Refused {
        /// What we were doing.
        action: String,
        /// The API server's message (it names the user, the verb and the resource).
        message: String,
        /// How to grant what is missing.
        hint: String,
    },
    /// The API server did not accept the credentials (401): a certificate of another CA, an
    /// expired certificate or token.
    #[error(
        "Kubernetes API: could not {action}: the API server did not accept this client's credentials ({message}). \
         Use a kubeconfig whose client certificate is signed by the cluster's CA and not expired, or a valid token \
         (check KUBECONFIG)"
    )]
    Unauthenticated {
        /// What we were doing.
        action: String,
        /// The API server's message.
        message: String,
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
            _ => K8sError::api(
                format!("{} in namespace {namespace}", action.into()),
                source,
            ),
        }
    }

    /// Wraps a client error with what we were doing; a refusal (403) says how to grant it.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        match source {
            kube::Error::Api(status) if status.code == 403 => K8sError::Refused {
                action: action.into(),
                hint: grant_hint(&status.message),
                message: status.message,
            },
            kube::Error::Api(status) if status.code == 401 => K8sError::Unauthenticated {
                action: action.into(),
                message: format!("401 {}", status.message),
            },
            source => K8sError::Api {
                action: action.into(),
                source,
            },
        }
    }
}

/// How to grant what a refusal message (`User "alice" cannot list resource "hosts" in API
/// group "hostledger.dev" in the namespace "inv"`) says is missing: the hostledger role that
/// has it (deploy/policies/), bound in the namespace.
pub fn grant_hint(message: &str) -> String {
    let quoted = |after: &str| {
        let rest = &message[message.find(after)? + after.len()..];
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_owned())
    };
    let user = quoted("User ");
    if user.as_deref() == Some("system:anonymous") {
        return "The request carried no credentials, so the API server saw an anonymous user, which may do nothing: \
                use a kubeconfig with a client certificate (or token) of a hostledger identity"
            .to_owned();
    }
    let verb = message
        .split(" cannot ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default();
    let resource = quoted("resource ").unwrap_or_default();
    let group = quoted("in API group ").unwrap_or_default();
    let namespace = quoted("in the namespace ");
    let ours = matches!(group.as_str(), "hostledger.dev" | "history.hostledger.dev")
        || (group.is_empty() && resource == "configmaps");
    let role = if !ours {
        None
    } else if matches!(verb, "get" | "list" | "watch") {
        Some("hostledger:reader")
    } else if resource == "configmaps" {
        Some("hostledger:projection-recorder")
    } else if resource == "hostlocks" || resource == "hostgroups" {
        Some("hostledger:operator")
    } else {
        Some("hostledger:projector")
    };
    let Some(role) = role else {
        return "Ask the cluster's administrator for that permission.".to_owned();
    };
    let subject = match user
        .as_deref()
        .and_then(|u| u.strip_prefix("system:serviceaccount:"))
    {
        Some(sa) => format!("--serviceaccount={sa}"),
        None => format!("--user={}", user.as_deref().unwrap_or("USER")),
    };
    let besides = if role == "hostledger:projection-recorder" {
        " (a projector needs it besides hostledger:projector)"
    } else {
        ""
    };
    match namespace {
        Some(ns) => format!(
            "The ClusterRole {role} (deploy/policies/) has it{besides}; grant it in this namespace with: kubectl create rolebinding {} --clusterrole={role} {subject} -n {ns}",
            role.replace(':', "-")
        ),
        None => format!(
            "The ClusterRole {role} (deploy/policies/) has it{besides}, bound in the inventory's namespace with a RoleBinding ({subject})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::grant_hint;

    #[test]
    fn a_refusal_names_the_role_that_grants_it() {
        let read = grant_hint(
            r#"hosts.hostledger.dev is forbidden: User "alice" cannot list resource "hosts" in API group "hostledger.dev" in the namespace "inv""#,
        );
        assert!(read.contains("hostledger:reader"), "{read}");
        assert!(read.contains("--user=alice -n inv"), "{read}");
        let write = grant_hint(
            r#"hosts.hostledger.dev "h" is forbidden: User "system:serviceaccount:hostledger-system:hostledger-projector" cannot patch resource "hosts/status" in API group "hostledger.dev" in the namespace "inv""#,
        );
        assert!(write.contains("hostledger:projector"), "{write}");
        assert!(
            write.contains("--serviceaccount=hostledger-system:hostledger-projector"),
            "{write}"
        );
        let lock = grant_hint(
            r#"hostlocks.hostledger.dev is forbidden: User "bob" cannot create resource "hostlocks" in API group "hostledger.dev" in the namespace "inv""#,
        );
        assert!(lock.contains("hostledger:operator"), "{lock}");
        let other = grant_hint(
            r#"namespaces "inv" is forbidden: User "bob" cannot delete resource "namespaces" in API group "" in the namespace "inv""#,
        );
        assert!(other.contains("administrator"), "{other}");
    }
}

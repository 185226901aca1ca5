//! Writing Hosts to the Kubernetes API server: server-side apply with one field manager,
//! status through the status subresource, transient failures retried with backoff.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Error as KubeError};
use serde_json::json;

use crate::crd::{
    HISTORY_FINALIZER, HOST_ID_ANNOTATION, Host, HostStatus, OWNED_LABELS, labels, object_name,
};
use crate::error::ProjectorError;
use crate::fold::HostRecord;

/// The one field manager the projector writes with.
pub const FIELD_MANAGER: &str = "hostledger-projector";

/// A host as the projector last wrote (or read) it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHost {
    /// The folded record.
    pub record: HostRecord,
    /// The projector-owned labels present on the object, to skip metadata writes that would
    /// change nothing.
    pub labels: BTreeMap<String, String>,
}

/// Whether an API error is worth retrying.
pub fn is_transient(error: &KubeError) -> bool {
    match error {
        KubeError::Api(status) => matches!(status.code, 409 | 429 | 500..=599),
        KubeError::HyperError(_) | KubeError::Service(_) | KubeError::ReadEvents(_) => true,
        _ => false,
    }
}

/// Hosts in one namespace.
#[derive(Clone)]
pub struct HostStore {
    api: Api<Host>,
    namespace: String,
}

impl HostStore {
    /// Hosts in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        HostStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace written to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The typed API handle.
    pub fn api(&self) -> &Api<Host> {
        &self.api
    }

    /// Reads every Host in the namespace, keyed by host id. A Host whose status cannot be
    /// read back is reported and left out (the next event for it starts a fresh record).
    pub async fn load_all(&self) -> Result<HashMap<String, StoredHost>, ProjectorError> {
        let mut out = HashMap::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = self
                .api
                .list(&params)
                .await
                .map_err(|e| self.read_error(e))?;
            for host in page.items {
                let name = host.metadata.name.clone().unwrap_or_default();
                let Some(status) = host.status else { continue };
                match status.to_record() {
                    Ok(record) => {
                        let labels = owned_labels(host.metadata.labels.as_ref());
                        out.insert(record.host_id.clone(), StoredHost { record, labels });
                    }
                    Err(error) => {
                        tracing::warn!(host = %name, %error, "skipping Host with unreadable status")
                    }
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        Ok(out)
    }

    fn read_error(&self, error: KubeError) -> ProjectorError {
        match &error {
            KubeError::Api(status) if status.code == 404 => ProjectorError::NotInstalled {
                namespace: self.namespace.clone(),
                detail: status.message.clone(),
            },
            _ => ProjectorError::kube(format!("list Hosts in namespace {}", self.namespace), error),
        }
    }

    /// Writes one host: [`HostStore::write_metadata`], then [`HostStore::write_status`].
    pub async fn write(
        &self,
        record: &HostRecord,
        previous_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<WriteReport, ProjectorError> {
        let mut report = self.write_metadata(record, previous_labels).await?;
        report.requests += self.write_status(record, &report.labels).await?;
        Ok(report)
    }

    /// Applies the host's labels, annotation and finalizer when they differ from
    /// `previous_labels` (always for a new host, which creates it). Transient failures are
    /// retried until they succeed.
    pub async fn write_metadata(
        &self,
        record: &HostRecord,
        previous_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<WriteReport, ProjectorError> {
        let labels = labels(record);
        let mut requests = 0;
        if previous_labels != Some(&labels) {
            requests += self
                .apply_metadata(&object_name(&record.host_id), record, &labels)
                .await?;
        }
        Ok(WriteReport { requests, labels })
    }

    /// Applies the host's status; the object must exist. A Host that vanished meanwhile
    /// (deleted by a person) is created again. Returns the number of requests made.
    pub async fn write_status(
        &self,
        record: &HostRecord,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64, ProjectorError> {
        let name = object_name(&record.host_id);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let status = json!({
            "apiVersion": "hostledger.dev/v1alpha1",
            "kind": "Host",
            "status": HostStatus::from_record(record),
        });
        let patch = Patch::Apply(&status);
        let action = format!("apply status of Host {name}");
        let (written, mut requests) = retry(&action, || async {
            match self.api.patch_status(&name, &params, &patch).await {
                Ok(_) => Ok(true),
                Err(KubeError::Api(s)) if s.code == 404 => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?;
        if !written {
            tracing::info!(host_id = %record.host_id, "Host was deleted; creating it again");
            requests += self.apply_metadata(&name, record, labels).await?;
            requests += retry(&action, || self.api.patch_status(&name, &params, &patch))
                .await?
                .1;
        }
        Ok(requests)
    }

    async fn apply_metadata(
        &self,
        name: &str,
        record: &HostRecord,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64, ProjectorError> {
        let object = json!({
            "apiVersion": "hostledger.dev/v1alpha1",
            "kind": "Host",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": { HOST_ID_ANNOTATION: record.host_id },
                "finalizers": [HISTORY_FINALIZER],
            },
            "spec": {},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(&object);
        Ok(retry(&format!("apply Host {name}"), || {
            self.api.patch(name, &params, &patch)
        })
        .await?
        .1)
    }

    /// Lets a Host that a person deleted go: the projector gives up what it owns in the
    /// object's metadata, its finalizer included (history is always written before the Host,
    /// so nothing is pending). Other finalizers, labels and annotations are untouched.
    pub async fn release(&self, name: &str) -> Result<(), ProjectorError> {
        let object = json!({
            "apiVersion": "hostledger.dev/v1alpha1",
            "kind": "Host",
            "metadata": { "name": name },
            "spec": {},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match self.api.patch(name, &params, &Patch::Apply(&object)).await {
            Ok(_) => Ok(()),
            Err(KubeError::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(ProjectorError::kube(
                format!("remove the finalizer of Host {name}"),
                e,
            )),
        }
    }
}

/// What one host write did.
#[derive(Debug, Clone)]
pub struct WriteReport {
    /// API requests made, retries included.
    pub requests: u64,
    /// The labels now on the object.
    pub labels: BTreeMap<String, String>,
}

/// The projector-owned subset of an object's labels.
pub fn owned_labels(labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .map(|l| {
            l.iter()
                .filter(|(k, _)| OWNED_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `op` until it succeeds or fails with a non-transient error, backing off from 100 ms
/// to 10 s between attempts. Returns the result and the number of attempts.
pub(crate) async fn retry<T, F, Fut>(action: &str, mut op: F) -> Result<(T, u64), ProjectorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KubeError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match op().await {
            Ok(value) => return Ok((value, attempts)),
            Err(error) if is_transient(&error) => {
                tracing::warn!(%error, attempt = attempts, "could not {action}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(error) => return Err(ProjectorError::kube(action, error)),
        }
    }
}

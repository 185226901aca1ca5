//! Hosts in the Kubernetes API server: listing them as records (each page parsed on a
//! blocking thread while the next is fetched), and writing them with server-side apply under
//! one field manager, status through the status subresource, transient failures retried.

use std::collections::{BTreeMap, HashMap};

use hostledger_model::names::{
    HISTORY_FINALIZER, HOST_ID_ANNOTATION, labels, object_name, owned_labels,
};
use hostledger_model::{Host, HostRecord, HostStatus};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Error as KubeError};
use serde_json::json;

use crate::error::K8sError;
use crate::pager::paged;
use crate::retry::retry;

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

/// A Host as listed: its metadata and its status read back into a record.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedHost {
    /// Object name.
    pub name: String,
    /// Every label on the object.
    pub labels: BTreeMap<String, String>,
    /// Every annotation on the object.
    pub annotations: BTreeMap<String, String>,
    /// The object's finalizers.
    pub finalizers: Vec<String>,
    /// The status as a record.
    pub record: HostRecord,
}

/// How a Host's status is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusWrite {
    /// Server-side apply of the whole status, forced, under [`FIELD_MANAGER`].
    #[default]
    Apply,
    /// A JSON patch that replaces the whole status (`add /status`), under [`FIELD_MANAGER`],
    /// without kube-apiserver merging an applied configuration. It also replaces the status
    /// fields other writers own (the drift check's `status.drift`), so the projector does
    /// not use it: it is there to be measured (`cargo bench --bench writes`; 13 % less
    /// kube-apiserver CPU per write at 100,000 Hosts, docs/benchmarks.md).
    JsonPatch,
}

/// Hosts in one namespace.
#[derive(Clone)]
pub struct HostStore {
    client: Client,
    api: Api<Host>,
    namespace: String,
    finalizer: bool,
    status_write: StatusWrite,
}

impl HostStore {
    /// Hosts in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        HostStore {
            api: Api::namespaced(client.clone(), namespace),
            client,
            namespace: namespace.to_owned(),
            finalizer: false,
            status_write: StatusWrite::default(),
        }
    }

    /// Writes statuses with `write` (see [`StatusWrite`]).
    pub fn with_status_write(mut self, write: StatusWrite) -> Self {
        self.status_write = write;
        self
    }

    /// Puts the `hostledger.dev/history` finalizer on the Hosts it writes, as in a namespace
    /// that still keeps history in HostHistory chunks (a Host deleted by a person is let go
    /// by the projector, which keeps its chunks). Without it, applying a Host's metadata
    /// removes the finalizer this field manager set before.
    pub fn with_history_finalizer(mut self, finalizer: bool) -> Self {
        self.finalizer = finalizer;
        self
    }

    /// The namespace written to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The client it writes with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The typed API handle.
    pub fn api(&self) -> &Api<Host> {
        &self.api
    }

    /// Every Host matching `params` that has a status, page by page. A Host whose status
    /// cannot be read is reported and left out (the next event for it starts a fresh record).
    pub async fn list(&self, params: ListParams) -> Result<Vec<ListedHost>, K8sError> {
        list_hosts(self.client.clone(), &self.namespace, params).await
    }

    /// Reads every Host in the namespace, keyed by host id.
    pub async fn load_all(&self) -> Result<HashMap<String, StoredHost>, K8sError> {
        let hosts = self.list(ListParams::default()).await?;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let labels = owned_labels(Some(&h.labels));
                (
                    h.record.host_id.clone(),
                    StoredHost {
                        record: h.record,
                        labels,
                    },
                )
            })
            .collect())
    }

    /// Writes one host: [`HostStore::write_metadata`], then [`HostStore::write_status`].
    pub async fn write(
        &self,
        record: &HostRecord,
        previous_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<WriteReport, K8sError> {
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
    ) -> Result<WriteReport, K8sError> {
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
    ) -> Result<u64, K8sError> {
        let name = object_name(&record.host_id);
        let status = HostStatus::from_record(record);
        let (params, patch) = match self.status_write {
            StatusWrite::Apply => (
                PatchParams::apply(FIELD_MANAGER).force(),
                Patch::Apply(json!({
                    "apiVersion": "hostledger.dev/v1alpha1",
                    "kind": "Host",
                    "status": status,
                })),
            ),
            StatusWrite::JsonPatch => (
                PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                Patch::Json(json_patch::Patch(vec![json_patch::PatchOperation::Add(
                    json_patch::AddOperation {
                        path: json_patch::jsonptr::PointerBuf::from_tokens(["status"]),
                        value: serde_json::to_value(&status).unwrap_or_default(),
                    },
                )])),
            ),
        };
        let action = format!("write the status of Host {name}");
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
    ) -> Result<u64, K8sError> {
        let finalizers: &[&str] = if self.finalizer {
            &[HISTORY_FINALIZER]
        } else {
            &[]
        };
        let object = json!({
            "apiVersion": "hostledger.dev/v1alpha1",
            "kind": "Host",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": { HOST_ID_ANNOTATION: record.host_id },
                "finalizers": finalizers,
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
    pub async fn release(&self, name: &str) -> Result<(), K8sError> {
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
            Err(e) => Err(K8sError::api(
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

/// The parts of a listed Host that are read (its managed fields, the bulk of a listed
/// object, are skipped rather than parsed; the status is parsed on its own so that one bad
/// status does not spoil a page).
#[derive(serde::Deserialize)]
struct RawHost<'a> {
    metadata: RawMeta,
    #[serde(borrow)]
    status: Option<&'a serde_json::value::RawValue>,
}

#[derive(serde::Deserialize)]
struct RawMeta {
    name: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    items: Vec<RawHost<'a>>,
}

#[derive(serde::Deserialize, Default)]
struct PageMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(serde::Deserialize)]
struct PageHeader {
    #[serde(default)]
    metadata: PageMeta,
}

/// Reads one page of Hosts into records; unreadable statuses are logged and left out.
pub(crate) fn parse_page(text: &str) -> Result<Vec<ListedHost>, String> {
    let page: RawPage<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(page.items.len());
    for host in page.items {
        let name = host.metadata.name.unwrap_or_default();
        let Some(status) = host.status else { continue };
        // The plain parse first; the one that names the wrong field only for a status that
        // does not parse (it is slower, and 100,000 statuses are read at once).
        let parsed = serde_json::from_str::<HostStatus>(status.get())
            .or_else(|_| HostStatus::from_json(status.get()));
        match parsed {
            Ok(status) => out.push(ListedHost {
                name,
                labels: host.metadata.labels.unwrap_or_default(),
                annotations: host.metadata.annotations.unwrap_or_default(),
                finalizers: host.metadata.finalizers.unwrap_or_default(),
                record: status.to_record(),
            }),
            Err(error) => {
                tracing::warn!(host = %name, %error, "skipping Host with unreadable status")
            }
        }
    }
    Ok(out)
}

/// Lists Hosts page by page, parsing each page on a blocking thread while the API server
/// prepares the next one.
pub async fn list_hosts(
    client: Client,
    namespace: &str,
    params: ListParams,
) -> Result<Vec<ListedHost>, K8sError> {
    use kube::Resource as _;
    let request = kube::core::Request::new(Host::url_path(&(), Some(namespace)));
    let unreadable = |reason: String| K8sError::Unreadable {
        action: format!("list Hosts in namespace {namespace}"),
        reason,
    };
    let params = if params.limit.is_none() {
        params.limit(2000)
    } else {
        params
    };
    let parsers = paged(params, |p| {
        let (client, request) = (&client, &request);
        async move {
            let http_request = request
                .list(&p)
                .map_err(|e| unreadable(format!("cannot build the request: {e}")))?;
            let text = client
                .request_text(http_request)
                .await
                .map_err(|e| K8sError::in_namespace("list Hosts", namespace, e))?;
            let header: PageHeader = serde_json::from_str(&text)
                .map_err(|e| unreadable(format!("the answer is not JSON: {e}")))?;
            let parser = tokio::task::spawn_blocking(move || parse_page(&text));
            Ok((parser, header.metadata.continue_))
        }
    })
    .await?;
    let mut out = Vec::new();
    for parser in parsers {
        let page = parser
            .await
            .map_err(|e| unreadable(format!("the page parser failed: {e}")))?
            .map_err(|e| unreadable(format!("a page that cannot be read: {e}")))?;
        out.extend(page);
    }
    Ok(out)
}

//! HostHistory chunks in the Kubernetes API server: reading a host's history, and appending
//! entries idempotently (JSON merge patches add keys and never remove them, so writing the
//! same entries twice changes nothing).

use std::collections::{BTreeMap, HashMap, HashSet};

use hostledger_model::history::HostHistorySpec;
use hostledger_model::names::{HOST_LABEL, chunk_name, host_label};
use hostledger_model::{HistoryEntry, HostHistory};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Error as KubeError};
use serde_json::json;

use crate::error::K8sError;
use crate::hosts::FIELD_MANAGER;
use crate::pager::{list_all, list_names};
use crate::retry::retry;

/// HostHistory objects in one namespace.
#[derive(Clone)]
pub struct HistoryStore {
    api: Api<HostHistory>,
}

impl HistoryStore {
    /// HostHistory objects in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        HistoryStore {
            api: Api::namespaced(client, namespace),
        }
    }

    /// The typed API handle.
    pub fn api(&self) -> &Api<HostHistory> {
        &self.api
    }

    /// Names of every chunk that exists, so writes can skip the create attempt.
    pub async fn existing_chunks(&self) -> Result<HashSet<String>, K8sError> {
        let names = list_names(&self.api, ListParams::default(), "HostHistory chunks").await?;
        Ok(names.into_iter().collect())
    }

    /// The chunks of the given hosts (all chunks when there are many hosts), entries in
    /// sequence order per host.
    pub async fn read_many(
        &self,
        host_ids: &HashSet<&str>,
    ) -> Result<HashMap<String, Vec<HistoryEntry>>, K8sError> {
        let chunks = if host_ids.len() <= 20 {
            let mut chunks = Vec::new();
            for host_id in host_ids {
                chunks.extend(self.chunks_of(host_id).await?);
            }
            chunks
        } else {
            list_all(&self.api, ListParams::default(), "HostHistory").await?
        };
        let mut out: HashMap<String, Vec<HistoryEntry>> = HashMap::new();
        for chunk in chunks {
            if host_ids.contains(chunk.spec.host_id.as_str()) {
                out.entry(chunk.spec.host_id)
                    .or_default()
                    .extend(chunk.spec.entries.into_values());
            }
        }
        for entries in out.values_mut() {
            entries.sort_by_key(|e| e.seq);
        }
        Ok(out)
    }

    async fn chunks_of(&self, host_id: &str) -> Result<Vec<HostHistory>, K8sError> {
        let params = ListParams::default().labels(&format!("{HOST_LABEL}={}", host_label(host_id)));
        let chunks = list_all(&self.api, params, "HostHistory").await?;
        // A label value may be a hash shared by two long ids: keep this host's chunks.
        Ok(chunks
            .into_iter()
            .filter(|h| h.spec.host_id == host_id)
            .collect())
    }

    /// Every entry of a host's history, in order.
    pub async fn read(&self, host_id: &str) -> Result<Vec<HistoryEntry>, K8sError> {
        let mut entries: Vec<HistoryEntry> = self
            .chunks_of(host_id)
            .await?
            .into_iter()
            .flat_map(|h| h.spec.entries.into_values())
            .collect();
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    /// Adds `entries` (sequence number → entry) to one chunk, creating it when needed.
    /// Idempotent. Returns the number of API requests made.
    pub async fn append(
        &self,
        host_id: &str,
        chunk: u64,
        entries: &BTreeMap<String, HistoryEntry>,
        exists: bool,
    ) -> Result<u64, K8sError> {
        let name = chunk_name(host_id, chunk);
        let mut requests = 0;
        if !exists {
            let object = HostHistory {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(
                        HOST_LABEL.to_owned(),
                        host_label(host_id),
                    )])),
                    ..Default::default()
                },
                spec: HostHistorySpec {
                    host_id: host_id.to_owned(),
                    chunk: i64::try_from(chunk).unwrap_or(i64::MAX),
                    entries: entries.clone(),
                },
            };
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            };
            let (created, attempts) = retry(&format!("create HostHistory {name}"), || async {
                match self.api.create(&params, &object).await {
                    Ok(_) => Ok(true),
                    Err(KubeError::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
            requests += attempts;
            if created {
                return Ok(requests);
            }
        }
        let patch = json!({ "spec": { "entries": entries } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let patch = Patch::Merge(&patch);
        requests += retry(&format!("append to HostHistory {name}"), || {
            self.api.patch(&name, &params, &patch)
        })
        .await?
        .1;
        Ok(requests)
    }
}

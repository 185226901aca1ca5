//! Full history of every host, outside the Host object: append-only `HostHistory` objects,
//! one chunk per [`CHUNK_EVENTS`] events of a host, labelled with the host.
//!
//! Entries are keyed by the event's sequence number within its host (1, 2, 3, ... as the fold
//! counts them), and written with JSON merge patches, which add keys and never remove them.
//! Writing the same entries twice — after a crash between the history write and the Host
//! write, say — changes nothing, so the history never holds an event twice.

use std::collections::{BTreeMap, HashSet};

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResource, Error as KubeError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::crd::{format_time, object_name};
use crate::error::ProjectorError;
use crate::fold::{HostRecord, Position};
use crate::k8s::{FIELD_MANAGER, retry};
use hostledger_schemas::{FieldChange, HostEvent, HostState, Lifecycle};

/// Events per HostHistory chunk. An entry is a few hundred bytes, so a chunk stays far below
/// etcd's 1.5 MiB request limit.
pub const CHUNK_EVENTS: u64 = 500;
/// Label carrying the Host's object name (or a hash of it when longer than a label value).
pub const HOST_LABEL: &str = "hostledger.dev/host";

/// One event in a host's history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Position of the event among this host's events, from 1.
    pub seq: i64,
    /// Event id.
    pub event_id: String,
    /// Event kind.
    pub kind: String,
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// When the provider state was observed (RFC 3339).
    pub observed_at: String,
    /// Fetcher instance that observed it.
    pub source: String,
    /// Provider kind (dc, aws, exec:NAME).
    #[serde(default)]
    pub provider: String,
    /// Lifecycle phase after the event.
    pub phase: String,
    /// What changed relative to the host's previous state, as the projector folded it:
    /// field, old value, new value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<HistoryChange>,
    /// The host's full state after its first event; later states follow from `changes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HistoryState>,
}

/// A host's full state, as recorded with its first event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryState {
    /// Host name as the provider knows it.
    pub hostname: String,
    /// Lifecycle phase.
    pub phase: String,
    /// The provider's own status word.
    pub provider_status: String,
    /// Region or site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Availability zone, room or rack row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// What the host does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// IP addresses, primary first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Instance type or hardware model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    /// Other provider attributes and tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl HistoryState {
    /// The recorded form of a state.
    pub fn from_state(s: &HostState) -> Self {
        HistoryState {
            hostname: s.name.clone(),
            phase: s.lifecycle.to_string(),
            provider_status: s.provider_status.clone(),
            region: s.region.clone(),
            zone: s.zone.clone(),
            role: s.role.clone(),
            team: s.team.clone(),
            addresses: s.addresses.clone(),
            machine_type: s.machine_type.clone(),
            attributes: s.attributes.clone(),
        }
    }

    /// The state back, or what is wrong with the record.
    pub fn to_state(&self) -> Result<HostState, String> {
        let lifecycle = Lifecycle::from_symbol(&self.phase)
            .ok_or_else(|| format!("state.phase: {:?} is not a lifecycle phase", self.phase))?;
        let mut s = HostState::new(
            self.hostname.clone(),
            lifecycle,
            self.provider_status.clone(),
        );
        s.region.clone_from(&self.region);
        s.zone.clone_from(&self.zone);
        s.role.clone_from(&self.role);
        s.team.clone_from(&self.team);
        s.addresses.clone_from(&self.addresses);
        s.machine_type.clone_from(&self.machine_type);
        s.attributes.clone_from(&self.attributes);
        Ok(s)
    }
}

/// One changed field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryChange {
    /// Field name.
    pub field: String,
    /// Value before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// Value after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// A chunk of one host's history. Append-only; written only by the projector.
// One `printcolumn(...)` per column is kube-derive's syntax; clippy mistakes the repeated
// keys for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "hostledger.dev",
    version = "v1alpha1",
    kind = "HostHistory",
    plural = "hosthistories",
    shortname = "hh",
    category = "hostledger",
    namespaced,
    derive = "PartialEq",
    doc = "A chunk of one host's event history, kept by hostledger outside the Host object.",
    printcolumn(name = "Host-ID", type_ = "string", json_path = ".spec.hostId"),
    printcolumn(name = "Chunk", type_ = "integer", json_path = ".spec.chunk"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HostHistorySpec {
    /// The host.
    pub host_id: String,
    /// Chunk number: entries with seq in (chunk*500, (chunk+1)*500].
    pub chunk: i64,
    /// Events keyed by zero-padded sequence number.
    #[serde(default)]
    pub entries: BTreeMap<String, HistoryEntry>,
}

/// The label value naming a host's object.
pub fn host_label(host_id: &str) -> String {
    let name = object_name(host_id);
    if name.len() <= 63 && !name.ends_with('.') {
        return name;
    }
    let digest = Sha256::digest(host_id.as_bytes());
    format!(
        "h-{}",
        digest
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Name of chunk `chunk` of a host's history.
pub fn chunk_name(host_id: &str, chunk: u64) -> String {
    let mut base = object_name(host_id);
    base.truncate(240);
    format!("{}.h{chunk:05}", base.trim_end_matches(['.', '-']))
}

/// The chunk holding sequence number `seq` (from 1).
pub fn chunk_of(seq: u64) -> u64 {
    (seq.max(1) - 1) / CHUNK_EVENTS
}

/// The map key of sequence number `seq`: zero-padded so keys sort in order.
pub fn entry_key(seq: u64) -> String {
    format!("{seq:010}")
}

/// The history entry of `event`, folded as the host's `seq`-th event into `record`.
/// `changes` is the difference from the host's previous state (`None` for its first event,
/// whose entry records the whole state instead).
pub fn entry(
    event: &HostEvent,
    position: Position,
    seq: u64,
    record: &HostRecord,
    changes: Option<Vec<FieldChange>>,
) -> HistoryEntry {
    let state = changes
        .is_none()
        .then(|| HistoryState::from_state(&record.state));
    HistoryEntry {
        seq: i64::try_from(seq).unwrap_or(i64::MAX),
        event_id: event.event_id.clone(),
        kind: event.kind.to_string(),
        partition: position.partition,
        offset: position.offset,
        observed_at: format_time(event.observed_at),
        source: event.source.clone(),
        provider: event.provider.clone(),
        phase: record.phase.to_string(),
        changes: changes
            .unwrap_or_default()
            .into_iter()
            .map(|c| HistoryChange {
                field: c.field,
                old: c.old,
                new: c.new,
            })
            .collect(),
        state,
    }
}

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
    pub async fn existing_chunks(&self) -> Result<HashSet<String>, ProjectorError> {
        let mut out = HashSet::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = self
                .api
                .list_metadata(&params)
                .await
                .map_err(|e| ProjectorError::kube("list HostHistory chunks", e))?;
            out.extend(page.items.into_iter().filter_map(|m| m.metadata.name));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Every entry of a host's history, in order.
    pub async fn read(&self, host_id: &str) -> Result<Vec<HistoryEntry>, ProjectorError> {
        let params = ListParams::default().labels(&format!("{HOST_LABEL}={}", host_label(host_id)));
        let list = self
            .api
            .list(&params)
            .await
            .map_err(|e| ProjectorError::kube(format!("list the history of {host_id}"), e))?;
        let mut entries: Vec<HistoryEntry> = list
            .items
            .into_iter()
            .filter(|h| h.spec.host_id == host_id)
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
    ) -> Result<u64, ProjectorError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_keys() {
        assert_eq!(chunk_of(1), 0);
        assert_eq!(chunk_of(CHUNK_EVENTS), 0);
        assert_eq!(chunk_of(CHUNK_EVENTS + 1), 1);
        assert_eq!(entry_key(42), "0000000042");
        assert!(entry_key(9) < entry_key(10));
        assert_eq!(chunk_name("dc/pdx1/s-1", 3), "dc.pdx1.s-1.h00003");
    }

    #[test]
    fn labels_fit() {
        assert_eq!(host_label("dc/pdx1/s-1"), "dc.pdx1.s-1");
        let long = format!("dc/pdx1/{}", "x".repeat(100));
        let label = host_label(&long);
        assert!(label.len() <= 63 && label.starts_with("h-"), "{label}");
        assert!(chunk_name(&"y".repeat(300), 1).len() <= 253);
    }

    #[test]
    fn a_full_chunk_stays_far_below_the_etcd_limit() {
        let entry = HistoryEntry {
            seq: 1,
            event_id: "0190f0e4-8d2c-7a3b-9c1e-5f6a7b8c9d0e".into(),
            kind: "HostLifecycleChanged".into(),
            partition: 5,
            offset: 123_456_789,
            observed_at: "2026-11-27T06:51:48.438334Z".into(),
            source: "aws-prod-us-east-1".into(),
            provider: "aws".into(),
            phase: "OutOfService".into(),
            state: None,
            changes: (0..4)
                .map(|i| HistoryChange {
                    field: format!("attributes.tag-{i}"),
                    old: Some("x".repeat(40)),
                    new: Some("y".repeat(40)),
                })
                .collect(),
        };
        let entries: BTreeMap<String, HistoryEntry> = (1..=CHUNK_EVENTS)
            .map(|s| {
                (
                    entry_key(s),
                    HistoryEntry {
                        seq: s as i64,
                        ..entry.clone()
                    },
                )
            })
            .collect();
        let size = serde_json::to_vec(&entries).expect("serializes").len();
        assert!(
            size < 512 * 1024,
            "a chunk of {CHUNK_EVENTS} entries is {size} bytes"
        );
    }
}

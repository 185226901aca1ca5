//! What a namespace is the projection of, recorded in the namespace itself (the ConfigMap
//! `hostledger-projection`): which events topic, up to which time, and where its hosts' full
//! history lives. The projector writes it when it starts; the history server reads it to
//! know which log answers for the namespace; readers read it to know where to get history.

use std::collections::BTreeMap;

use hostledger_model::HostHistory;
use hostledger_model::time::exact_time;
use hostledger_schemas::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Error as KubeError};
use serde_json::json;

use crate::error::K8sError;
use crate::hosts::FIELD_MANAGER;
use crate::retry::retry;

/// The ConfigMap's name, the same in every namespace.
pub const PROJECTION_CONFIGMAP: &str = "hostledger-projection";

/// Where a namespace's full host history lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryHome {
    /// In the log, served by `hostledger history-server` (`hosthistories.history.hostledger.dev`).
    /// etcd holds the Hosts only.
    Log,
    /// In HostHistory chunks beside the Hosts, as versions before the history server wrote it.
    /// `hostledger migrate history` moves a namespace to [`HistoryHome::Log`].
    Chunks,
}

impl HistoryHome {
    /// The word stored in the ConfigMap.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryHome::Log => "log",
            HistoryHome::Chunks => "chunks",
        }
    }
}

/// What a namespace is the projection of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// The events topic its Hosts are folded from.
    pub events_topic: String,
    /// Only events observed up to this time (a replay `--until`); `None` is the whole log.
    pub until: Option<Timestamp>,
    /// Where the full history lives.
    pub history: HistoryHome,
}

impl Projection {
    /// Reads what `map` (a ConfigMap named [`PROJECTION_CONFIGMAP`]) records.
    pub fn parse(namespace: &str, map: &ConfigMap) -> Result<Self, K8sError> {
        let data = map.data.clone().unwrap_or_default();
        let unreadable = |reason: String| K8sError::Unreadable {
            action: format!("read ConfigMap {PROJECTION_CONFIGMAP} in namespace {namespace}"),
            reason: format!(
                "{reason}; it is written by `hostledger project` and `replay`: delete it and start the projector again"
            ),
        };
        let events_topic = data
            .get("eventsTopic")
            .filter(|t| !t.is_empty())
            .cloned()
            .ok_or_else(|| unreadable("it has no eventsTopic".into()))?;
        let until = match data.get("untilMicros").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(Timestamp(v.parse().map_err(|_| {
                unreadable(format!("untilMicros {v:?} is not a number"))
            })?)),
        };
        let history = match data.get("history").map(String::as_str) {
            Some("log") => HistoryHome::Log,
            Some("chunks") => HistoryHome::Chunks,
            other => {
                return Err(unreadable(format!(
                    "history is {other:?}, neither \"log\" nor \"chunks\""
                )));
            }
        };
        Ok(Projection {
            events_topic,
            until,
            history,
        })
    }

    /// The ConfigMap's data.
    pub fn data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::from([
            ("eventsTopic".to_owned(), self.events_topic.clone()),
            ("history".to_owned(), self.history.as_str().to_owned()),
        ]);
        if let Some(until) = self.until {
            data.insert("untilMicros".into(), until.0.to_string());
            data.insert("until".into(), exact_time(until));
        }
        data
    }
}

/// What `namespace` records it is the projection of; `None` when nothing was projected
/// into it by this version.
pub async fn read(client: &Client, namespace: &str) -> Result<Option<Projection>, K8sError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let (found, _) = retry(
        &format!("read ConfigMap {PROJECTION_CONFIGMAP} in namespace {namespace}"),
        || api.get_opt(PROJECTION_CONFIGMAP),
    )
    .await?;
    found
        .map(|map| Projection::parse(namespace, &map))
        .transpose()
}

/// Records `projection` in `namespace` (server-side apply; idempotent).
pub async fn record(
    client: &Client,
    namespace: &str,
    projection: &Projection,
) -> Result<(), K8sError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": PROJECTION_CONFIGMAP,
            "labels": {"app.kubernetes.io/part-of": "hostledger"},
        },
        "data": projection.data(),
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&object);
    retry(
        &format!("write ConfigMap {PROJECTION_CONFIGMAP} in namespace {namespace}"),
        || api.patch(PROJECTION_CONFIGMAP, &params, &patch),
    )
    .await
    .map_err(|e| match e {
        K8sError::Api { source, action } => K8sError::in_namespace(action, namespace, source),
        other => other,
    })?;
    Ok(())
}

/// Whether `namespace` holds HostHistory chunks (written by a version before the history
/// server). `false` also when the HostHistory CRD is not installed.
pub async fn has_chunks(client: &Client, namespace: &str) -> Result<bool, K8sError> {
    let api: Api<HostHistory> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().limit(1);
    let listed = retry(
        &format!("look for HostHistory chunks in namespace {namespace}"),
        || async {
            match api.list_metadata(&params).await {
                Ok(list) => Ok(!list.items.is_empty()),
                Err(KubeError::Api(s)) if s.code == 404 => Ok(false),
                Err(e) => Err(e),
            }
        },
    )
    .await?;
    Ok(listed.0)
}

/// Where history lives in `namespace` when it records nothing: in chunks if it holds any
/// (a namespace written by an earlier version), in the log otherwise.
pub async fn history_home(client: &Client, namespace: &str) -> Result<HistoryHome, K8sError> {
    match read(client, namespace).await? {
        Some(p) => Ok(p.history),
        None if has_chunks(client, namespace).await? => Ok(HistoryHome::Chunks),
        None => Ok(HistoryHome::Log),
    }
}

/// What a projector of `events_topic` (up to `until`) into `namespace` records when it
/// starts: the topic and time, keeping where history lives if the namespace says so already.
/// Refuses a namespace that is the projection of another topic.
pub async fn claim(
    client: &Client,
    namespace: &str,
    events_topic: &str,
    until: Option<Timestamp>,
) -> Result<Projection, K8sError> {
    let existing = read(client, namespace).await?;
    if let Some(p) = &existing
        && p.events_topic != events_topic
    {
        return Err(K8sError::Unreadable {
            action: format!("project {events_topic} into namespace {namespace}"),
            reason: format!(
                "namespace {namespace} holds the projection of topic {}: project into another namespace, or delete the namespace's Hosts and its ConfigMap {PROJECTION_CONFIGMAP} first",
                p.events_topic
            ),
        });
    }
    let history = match &existing {
        Some(p) => p.history,
        None if has_chunks(client, namespace).await? => HistoryHome::Chunks,
        None => HistoryHome::Log,
    };
    let projection = Projection {
        events_topic: events_topic.to_owned(),
        until,
        history,
    };
    if existing.as_ref() != Some(&projection) {
        record(client, namespace, &projection).await?;
    }
    Ok(projection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn round_trips_through_its_data() {
        let p = Projection {
            events_topic: "hostledger.host-events".into(),
            until: Some(Timestamp(1_767_225_600_000_000)),
            history: HistoryHome::Log,
        };
        let data = p.data();
        assert_eq!(data["until"], "2026-01-01T00:00:00.000000Z");
        let back: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(Projection::parse("ns", &map(&back)).expect("parses"), p);
    }

    #[test]
    fn a_broken_record_says_what_is_wrong() {
        let e = Projection::parse("ns", &map(&[("history", "log")])).expect_err("no topic");
        assert!(e.to_string().contains("it has no eventsTopic"), "{e}");
        let e = Projection::parse("ns", &map(&[("eventsTopic", "t"), ("history", "etcd")]))
            .expect_err("bad home");
        assert!(
            e.to_string().contains("neither \"log\" nor \"chunks\""),
            "{e}"
        );
        let e = Projection::parse(
            "ns",
            &map(&[
                ("eventsTopic", "t"),
                ("history", "log"),
                ("untilMicros", "x"),
            ]),
        )
        .expect_err("bad time");
        assert!(e.to_string().contains("untilMicros \"x\""), "{e}");
    }
}

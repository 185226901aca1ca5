//! Keeps every HostGroup's status and every Host's drift status current: watches Hosts,
//! HostLocks and HostGroups (one watch each, cached), recomputes when any of them changes
//! (changes arriving within 100 ms are taken together), and writes only what differs.
//!
//! A Host's `status.drift` (is it what `spec.expected` says?) is written with its own field
//! manager, so the projector's status writes and the drift check never remove each other's
//! fields; a person changing `spec.expected` is seen through the same watch.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use hostledger_model::drift::{self, DRIFT_MANAGER};
use hostledger_model::group::{HostGroup, Member};
use hostledger_model::{Host, HostLock};
use hostledger_schemas::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

/// Field manager of the HostGroup statuses.
pub const GROUP_MANAGER: &str = "hostledger-groups";

/// How long to gather changes before recomputing.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Writes the status of every group in `groups` that `hosts` and `locks` change; returns
/// how many it wrote.
async fn write_statuses(
    api: &Api<HostGroup>,
    groups: &Store<HostGroup>,
    hosts: &Store<Host>,
    locks: &Store<HostLock>,
) -> usize {
    let locked: HashSet<String> = locks
        .state()
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    let members: Vec<Member> = hosts
        .state()
        .iter()
        .map(|h| {
            Member::of(
                h,
                h.metadata.name.as_ref().is_some_and(|n| locked.contains(n)),
            )
        })
        .collect();
    let now = Timestamp::from(chrono::Utc::now());
    let mut written = 0;
    for group in groups.state() {
        let status = group.observe(&members, now);
        if group.status.as_ref() == Some(&status) {
            continue;
        }
        let name = group.metadata.name.clone().unwrap_or_default();
        written +=
            usize::from(apply_status(api, "HostGroup", &name, GROUP_MANAGER, json!(status)).await);
    }
    written
}

/// Writes `status.drift` of every Host whose drift status is not what it should be; returns
/// how many it wrote.
async fn write_drift(api: &Api<Host>, hosts: &Store<Host>) -> usize {
    let now = Timestamp::from(chrono::Utc::now());
    let mut written = 0;
    for host in hosts.state() {
        let want = drift::observe(&host, now);
        let have = host.status.as_ref().and_then(|s| s.drift.as_ref());
        if host.status.is_none() || want.as_ref() == have {
            continue;
        }
        let name = host.metadata.name.clone().unwrap_or_default();
        // Without `drift`, the apply removes the field this manager owned.
        let status = match &want {
            Some(d) => json!({ "drift": d }),
            None => json!({}),
        };
        written += usize::from(apply_status(api, "Host", &name, DRIFT_MANAGER, status).await);
    }
    written
}

/// Applies `status` to the `kind` object `name` as `manager` (server-side apply of the
/// status subresource: the manager owns exactly the fields it sends). Logs a failure;
/// returns whether it was written.
async fn apply_status<K>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    manager: &str,
    status: serde_json::Value,
) -> bool
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": "hostledger.dev/v1alpha1",
        "kind": kind,
        "status": status,
    });
    let params = PatchParams::apply(manager).force();
    match api.patch_status(name, &params, &Patch::Apply(&patch)).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%name, %error, "could not write the status of {kind} {name}");
            false
        }
    }
}

/// Runs until aborted.
pub async fn keep_group_statuses(client: Client, namespace: String) {
    let hosts_api: Api<Host> = Api::namespaced(client.clone(), &namespace);
    let drift_api = hosts_api.clone();
    let locks_api: Api<HostLock> = Api::namespaced(client.clone(), &namespace);
    let groups_api: Api<HostGroup> = Api::namespaced(client, &namespace);
    let (hosts, hosts_writer) = reflector::store();
    let (locks, locks_writer) = reflector::store();
    let (groups, groups_writer) = reflector::store();
    let config = watcher::Config::default;
    let streams = [
        reflector(hosts_writer, watcher(hosts_api, config()))
            .default_backoff()
            .map(|r| r.err().map(|e| ("Hosts", e.to_string())))
            .boxed(),
        reflector(locks_writer, watcher(locks_api, config()))
            .default_backoff()
            .map(|r| r.err().map(|e| ("HostLocks", e.to_string())))
            .boxed(),
        reflector(groups_writer, watcher(groups_api.clone(), config()))
            .default_backoff()
            .map(|r| r.err().map(|e| ("HostGroups", e.to_string())))
            .boxed(),
    ];
    let mut changes = futures::stream::select_all(streams);
    let mut warned = HashSet::new();
    let mut ready = false;
    while let Some(change) = changes.next().await {
        if let Some((what, error)) = change
            && warned.insert(what)
        {
            tracing::warn!(%error, "watching {what} for HostGroup statuses failed; retrying");
        }
        let deadline = tokio::time::Instant::now() + DEBOUNCE;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, changes.next()).await {}
        // Until every watch has listed once, counts would be short.
        if !ready {
            use futures::FutureExt as _;
            let listed = |ready: Option<Result<(), _>>| matches!(ready, Some(Ok(())));
            ready = listed(hosts.wait_until_ready().now_or_never())
                && listed(locks.wait_until_ready().now_or_never())
                && listed(groups.wait_until_ready().now_or_never());
            if !ready {
                continue;
            }
        }
        write_drift(&drift_api, &hosts).await;
        write_statuses(&groups_api, &groups, &hosts, &locks).await;
    }
}

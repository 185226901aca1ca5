//! Keeps every HostGroup's status and every Host's drift status current: watches Hosts,
//! HostLocks and HostGroups (one watch each, cached), and after each gathering of changes
//! (those arriving within 100 ms are taken together) looks again at what they touched and
//! writes only what differs. The work of one gathering follows the Hosts it changed, not the
//! fleet: a Host's drift is looked at when that Host changes, and each group's member is kept
//! from one gathering to the next (a watch that lists again starts over from its list).
//!
//! A Host's `status.drift` (is it what `spec.expected` says?) is written with its own field
//! manager, so the projector's status writes and the drift check never remove each other's
//! fields; a person changing `spec.expected` is seen through the same watch.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt as _;
use hostledger_model::drift::{self, DRIFT_MANAGER};
use hostledger_model::group::{HostGroup, Member};
use hostledger_model::{Host, HostLock};
use hostledger_schemas::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher as watch};
use serde_json::json;

/// Field manager of the HostGroup statuses.
pub const GROUP_MANAGER: &str = "hostledger-groups";

/// How long to gather changes before recomputing.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What a watch delivered.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// A Host, or the HostLock of a Host (named as it), made, changed or deleted (what
    /// [`Change::of`] makes of any object's change).
    Host(String),
    /// A HostGroup made, changed or deleted.
    Group,
    /// A watch has listed its objects again: everything is looked at again.
    Listed,
    /// Part of a list still being read.
    Listing,
    /// A watch failed (it is retried with backoff).
    Failed(&'static str, String),
}

impl Change {
    fn of<K: kube::Resource>(what: &'static str, event: Result<Event<K>, watcher::Error>) -> Self {
        let name = |k: &K| k.meta().name.clone().unwrap_or_default();
        match event {
            Ok(Event::Apply(k) | Event::Delete(k)) => Change::Host(name(&k)),
            Ok(Event::InitDone) => Change::Listed,
            Ok(Event::Init | Event::InitApply(_)) => Change::Listing,
            Err(error) => Change::Failed(what, error.to_string()),
        }
    }
}

/// What changed since the last look.
#[derive(Debug, Default)]
struct Pending {
    /// Hosts to look at again (their drift, and what they are to a group).
    hosts: HashSet<String>,
    /// Every Host and group (at the start, and after a watch listed again).
    everything: bool,
    /// The groups' statuses (a group changed, or a write failed).
    groups: bool,
}

impl Pending {
    fn note(&mut self, change: Change) {
        match change {
            Change::Host(name) => {
                self.hosts.insert(name);
            }
            Change::Group => self.groups = true,
            Change::Listed => self.everything = true,
            Change::Listing | Change::Failed(..) => {}
        }
    }
}

/// What each Host is to a group, kept between gatherings: in a slice, as
/// [`HostGroup::observe`] takes them, with each Host's place by name.
#[derive(Debug, Default)]
struct Members {
    list: Vec<Member>,
    place: HashMap<String, usize>,
}

impl Members {
    fn set(&mut self, member: Member) {
        match self.place.get(&member.name) {
            Some(&i) => self.list[i] = member,
            None => {
                self.place.insert(member.name.clone(), self.list.len());
                self.list.push(member);
            }
        }
    }

    fn remove(&mut self, name: &str) {
        let Some(i) = self.place.remove(name) else {
            return;
        };
        self.list.swap_remove(i);
        if let Some(moved) = self.list.get(i) {
            self.place.insert(moved.name.clone(), i);
        }
    }
}

/// The watched objects.
struct Watched {
    hosts: Store<Host>,
    locks: Store<HostLock>,
    groups: Store<HostGroup>,
    namespace: String,
}

impl Watched {
    fn host(&self, name: &str) -> Option<std::sync::Arc<Host>> {
        self.hosts
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    fn locked(&self, name: &str) -> bool {
        self.locks
            .get(&ObjectRef::new(name).within(&self.namespace))
            .is_some()
    }
}

/// Looks again at what `pending` names: writes the drift status of those Hosts that need one
/// written, brings `members` up to date, and writes the groups' statuses that changed. What
/// could not be written stays pending.
async fn look_again(
    watched: &Watched,
    members: &mut Members,
    pending: &mut Pending,
    api: (&Api<Host>, &Api<HostGroup>),
) {
    let (hosts_api, groups_api) = api;
    let everything = std::mem::take(&mut pending.everything);
    let names: Vec<String> = if everything {
        *members = Members::default();
        pending.hosts.clear();
        watched
            .hosts
            .state()
            .iter()
            .filter_map(|h| h.metadata.name.clone())
            .collect()
    } else {
        pending.hosts.drain().collect()
    };
    let changed_members = everything || !names.is_empty();
    for name in names {
        let Some(host) = watched.host(&name) else {
            members.remove(&name);
            continue;
        };
        members.set(Member::of(&host, watched.locked(&name)));
        if !write_drift(hosts_api, &host).await {
            pending.hosts.insert(name);
        }
    }
    let groups_changed = std::mem::take(&mut pending.groups);
    if (changed_members || groups_changed)
        && !watched.groups.is_empty()
        && !write_statuses(groups_api, &watched.groups, &members.list).await
    {
        pending.groups = true;
    }
}

/// Writes the status of every group in `groups` that `members` change; whether every write
/// that was needed succeeded.
async fn write_statuses(
    api: &Api<HostGroup>,
    groups: &Store<HostGroup>,
    members: &[Member],
) -> bool {
    let now = Timestamp::from(chrono::Utc::now());
    let mut all = true;
    for group in groups.state() {
        let status = group.observe(members, now);
        if group.status.as_ref() == Some(&status) {
            continue;
        }
        let name = group.metadata.name.clone().unwrap_or_default();
        all &= apply_status(api, "HostGroup", &name, GROUP_MANAGER, json!(status)).await;
    }
    all
}

/// Writes `status.drift` of `host` if it is not what it should be; whether it is now (or
/// was already).
async fn write_drift(api: &Api<Host>, host: &Host) -> bool {
    let now = Timestamp::from(chrono::Utc::now());
    let want = drift::observe(host, now);
    let have = host.status.as_ref().and_then(|s| s.drift.as_ref());
    if host.status.is_none() || want.as_ref() == have {
        return true;
    }
    let name = host.metadata.name.clone().unwrap_or_default();
    // Without `drift`, the apply removes the field this manager owned.
    let status = match &want {
        Some(d) => json!({ "drift": d }),
        None => json!({}),
    };
    apply_status(api, "Host", &name, DRIFT_MANAGER, status).await
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
    let locks_api: Api<HostLock> = Api::namespaced(client.clone(), &namespace);
    let groups_api: Api<HostGroup> = Api::namespaced(client, &namespace);
    let (hosts, hosts_writer) = reflector::store();
    let (locks, locks_writer) = reflector::store();
    let (groups, groups_writer) = reflector::store();
    let config = watcher::Config::default;
    let streams = [
        // Their managedFields are not read here (at 100,000 Hosts they would be a third of
        // what the copy holds).
        watch(hosts_api.clone(), config())
            .default_backoff()
            .modify(|h| h.metadata.managed_fields = None)
            .reflect(hosts_writer)
            .map(|e| Change::of("Hosts", e))
            .boxed(),
        watch(locks_api, config())
            .default_backoff()
            .reflect(locks_writer)
            .map(|e| Change::of("HostLocks", e))
            .boxed(),
        watch(groups_api.clone(), config())
            .default_backoff()
            .reflect(groups_writer)
            .map(|e| match Change::of("HostGroups", e) {
                Change::Host(_) => Change::Group,
                change => change,
            })
            .boxed(),
    ];
    let watched = Watched {
        hosts,
        locks,
        groups,
        namespace,
    };
    let mut changes = futures::stream::select_all(streams);
    let mut warned = HashSet::new();
    let mut ready = false;
    let mut members = Members::default();
    let mut pending = Pending::default();
    let note = |pending: &mut Pending, warned: &mut HashSet<&str>, change: Change| {
        if let Change::Failed(what, error) = &change
            && warned.insert(what)
        {
            tracing::warn!(%error, "watching {what} for HostGroup statuses failed; retrying");
        }
        pending.note(change);
    };
    while let Some(change) = changes.next().await {
        note(&mut pending, &mut warned, change);
        let deadline = tokio::time::Instant::now() + DEBOUNCE;
        while let Ok(Some(change)) = tokio::time::timeout_at(deadline, changes.next()).await {
            note(&mut pending, &mut warned, change);
        }
        // Until every watch has listed once, counts would be short.
        if !ready {
            use futures::FutureExt as _;
            let listed = |ready: Option<Result<(), _>>| matches!(ready, Some(Ok(())));
            ready = listed(watched.hosts.wait_until_ready().now_or_never())
                && listed(watched.locks.wait_until_ready().now_or_never())
                && listed(watched.groups.wait_until_ready().now_or_never());
            if !ready {
                continue;
            }
            pending.everything = true;
        }
        look_again(
            &watched,
            &mut members,
            &mut pending,
            (&hosts_api, &groups_api),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::fixtures::{EventBuilder, fold_events, host_object};

    fn member(name: &str, locked: bool) -> Member {
        let mut host = host_object(&fold_events(&[
            EventBuilder::new(&format!("dc/a/{name}")).build()
        ]));
        host.metadata.name = Some(name.to_owned());
        Member::of(&host, locked)
    }

    #[test]
    fn members_are_kept_by_name_through_changes_and_removals() {
        let mut members = Members::default();
        for name in ["a", "b", "c"] {
            members.set(member(name, false));
        }
        members.set(member("b", true));
        assert_eq!(members.list.len(), 3, "b changed in its place");
        assert!(members.list[members.place["b"]].locked);
        members.remove("a");
        members.remove("nobody");
        let names: HashSet<&str> = members.list.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, HashSet::from(["b", "c"]));
        for (name, &i) in &members.place {
            assert_eq!(
                &members.list[i].name, name,
                "each place still points at its host"
            );
        }
        members.remove("c");
        members.remove("b");
        assert!(members.list.is_empty() && members.place.is_empty());
    }

    #[test]
    fn a_change_names_what_to_look_at_again() {
        let mut pending = Pending::default();
        pending.note(Change::Host("a".into()));
        pending.note(Change::Host("a".into()));
        pending.note(Change::Listing);
        pending.note(Change::Failed("Hosts", "gone".into()));
        assert_eq!(pending.hosts, HashSet::from(["a".to_owned()]));
        assert!(!pending.everything && !pending.groups);
        pending.note(Change::Group);
        pending.note(Change::Listed);
        assert!(pending.everything && pending.groups);
        let host = host_object(&fold_events(&[EventBuilder::new("dc/a/x").build()]));
        assert_eq!(
            Change::of::<Host>("Hosts", Ok(Event::Delete(host.clone()))),
            Change::Host(host.metadata.name.clone().unwrap_or_default())
        );
        assert_eq!(
            Change::of::<Host>("Hosts", Ok(Event::InitApply(host))),
            Change::Listing
        );
        assert_eq!(
            Change::of::<Host>("Hosts", Ok(Event::InitDone)),
            Change::Listed
        );
    }
}

//! Host changes as they happen, from a Kubernetes watch: the tracker that turns watch events
//! into changes (shared by `hostledger watch` and `prometheus-sd --watch`), and how a change
//! is printed.
//!
//! A change is what the projector's status or people's labels say differently: the phase, the
//! fields of the host's state (compared with
//! [`HostState::changes_from`](hostledger_schemas::HostState::changes_from), the diff the
//! fetchers publish) and labels other than the projector's own (which follow the status and
//! would only repeat it). A Host is shown once it has a status: the projector creates the
//! object and then writes its status, and the first is not yet a host anyone can use.

use std::collections::BTreeMap;
use std::pin::Pin;

use hostledger_model::Host;
use hostledger_model::names::OWNED_LABELS;
use hostledger_schemas::FieldChange;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_hosts};
use serde::Serialize;

use crate::LabelSelector;

/// A watch of the Hosts of `api` matching `selector`: the current list (`Init`,
/// `InitApply`..., `InitDone`), then changes. After an error it resumes with the watcher's
/// default backoff, from where it was or, when the API server no longer has that, with a new
/// list. Errors are items of the stream: it never ends by itself.
///
/// Lists are served from kube-apiserver's watch cache, not read from etcd: a watch starts from
/// whatever the cache holds and then receives every later change, so nothing is missed, and a
/// list of 100,000 Hosts does not outlast the changes the cache keeps while the projector
/// writes (which made a list from etcd expire and start over).
pub fn host_watch(
    api: Api<Host>,
    selector: Option<&LabelSelector>,
) -> Pin<Box<impl WatchStreamExt<Item = watcher::Result<Event<Host>>> + Send>> {
    let mut config = watcher::Config::default().any_semantic();
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        config = config.labels(s.as_str());
    }
    Box::pin(watch_hosts(api, config).default_backoff())
}

/// The next item of a stream: `futures::StreamExt::next`, which this crate does without (it
/// does not depend on `futures`; `WatchStreamExt` brings the `Stream` trait along).
pub async fn next<S>(stream: &mut Pin<Box<S>>) -> Option<S::Item>
where
    S: WatchStreamExt + ?Sized,
{
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

/// An error and its causes on one line, each cause only where the text so far does not already
/// say it (kube's errors repeat their sources in their own messages).
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// The object name of a Host.
pub fn name_of(host: &Host) -> String {
    host.metadata.name.clone().unwrap_or_default()
}

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// A Host appeared (or was there when the watch started).
    Added,
    /// A Host changed.
    Modified,
    /// A Host was deleted.
    Deleted,
}

impl ChangeType {
    /// `ADDED`, `MODIFIED`, `DELETED`, as Kubernetes watches name them.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One printed change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeType,
    /// The Host as it is now (as it was last, for a deletion).
    pub host: Host,
    /// Its phase before (MODIFIED only).
    pub previous_phase: Option<String>,
    /// What changed (MODIFIED only): `phase`, the state's fields, `labels.KEY`.
    pub changes: Vec<FieldChange>,
}

/// What changed from `old` to `new`: the phase first, then the host's state (as
/// `HostState::changes_from` names the fields, without `lifecycle`, which is the phase), then
/// labels that are not the projector's own.
pub fn changes_between(old: &Host, new: &Host) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if let (Some(before), Some(after)) = (&old.status, &new.status) {
        let (before, after) = (&before.state, &after.state);
        if before.lifecycle != after.lifecycle {
            out.push(FieldChange {
                field: "phase".into(),
                old: Some(before.lifecycle.to_string()),
                new: Some(after.lifecycle.to_string()),
            });
        }
        out.extend(
            after
                .changes_from(before)
                .into_iter()
                .filter(|c| c.field != "lifecycle"),
        );
    }
    let empty = BTreeMap::new();
    let before = old.metadata.labels.as_ref().unwrap_or(&empty);
    let after = new.metadata.labels.as_ref().unwrap_or(&empty);
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        if OWNED_LABELS.contains(&key.as_str()) || before.get(key) == after.get(key) {
            continue;
        }
        out.push(FieldChange {
            field: format!("labels.{key}"),
            old: before.get(key).cloned(),
            new: after.get(key).cloned(),
        });
    }
    out
}

/// Follows the Hosts a watch reports and turns them into changes to print.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Hosts with a status, by object name, as last seen.
    known: BTreeMap<String, Host>,
    /// Hosts listed so far while the watch (re)lists.
    listing: Option<BTreeMap<String, Host>>,
    /// Whether a complete list has been seen.
    synced: bool,
    /// Print the Hosts of the first list.
    initial: bool,
    /// Print MODIFIED events that change nothing shown.
    verbose: bool,
}

impl Tracker {
    /// A tracker that reports the Hosts of the first list as ADDED when `initial`.
    pub fn new(initial: bool, verbose: bool) -> Self {
        Tracker {
            initial,
            verbose,
            ..Tracker::default()
        }
    }

    /// Whether a complete list has been seen.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// How many Hosts (with a status) are known.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no Host is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The Hosts known now (those with a status), by object name.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.known.values()
    }

    /// The changes one watch event makes.
    pub fn handle(&mut self, event: Event<Host>) -> Vec<Change> {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(host) => {
                if host.status.is_some() {
                    self.listing
                        .get_or_insert_default()
                        .insert(name_of(&host), host);
                }
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let mut out = Vec::new();
                if !self.synced {
                    self.synced = true;
                    if self.initial {
                        out.extend(listed.values().map(|h| added(h.clone())));
                    }
                } else {
                    // Listed again after an error: what changed while the watch was down.
                    for (name, host) in &listed {
                        match self.known.get(name) {
                            Some(old) => out.extend(self.modified(old, host)),
                            None => out.push(added(host.clone())),
                        }
                    }
                    for (name, host) in &self.known {
                        if !listed.contains_key(name) {
                            out.push(deleted(host.clone()));
                        }
                    }
                }
                self.known = listed;
                sort(&mut out);
                out
            }
            Event::Apply(host) => {
                if host.status.is_none() {
                    return Vec::new();
                }
                let name = name_of(&host);
                let out = match self.known.get(&name) {
                    Some(old) => self.modified(old, &host).into_iter().collect(),
                    None => vec![added(host.clone())],
                };
                self.known.insert(name, host);
                out
            }
            Event::Delete(host) => match self.known.remove(&name_of(&host)) {
                Some(last) => vec![deleted(if host.status.is_some() { host } else { last })],
                None => Vec::new(),
            },
        }
    }

    fn modified(&self, old: &Host, new: &Host) -> Option<Change> {
        let changes = changes_between(old, new);
        (self.verbose || !changes.is_empty()).then(|| Change {
            kind: ChangeType::Modified,
            host: new.clone(),
            previous_phase: old.status.as_ref().map(|s| s.state.lifecycle.to_string()),
            changes,
        })
    }
}

fn added(host: Host) -> Change {
    Change {
        kind: ChangeType::Added,
        host,
        previous_phase: None,
        changes: Vec::new(),
    }
}

fn deleted(host: Host) -> Change {
    Change {
        kind: ChangeType::Deleted,
        host,
        previous_phase: None,
        changes: Vec::new(),
    }
}

/// Orders the changes of one list by host id.
fn sort(changes: &mut [Change]) {
    let key = |c: &Change| {
        c.host
            .status
            .as_ref()
            .map(|s| s.host_id.clone())
            .unwrap_or_default()
    };
    changes.sort_by_key(key);
}

/// A value for a line: `(none)` when absent, quoted when it would not read as one word.
fn word(value: Option<&str>) -> String {
    match value {
        None => "(none)".into(),
        Some(v) if v.is_empty() || v.contains(char::is_whitespace) || v.contains('→') => {
            format!("{v:?}")
        }
        Some(v) => v.to_owned(),
    }
}

/// `TIME TYPE NAME HOST-ID ...`: for a change, `FIELD OLD→NEW` per changed field; for an
/// addition or a deletion, `phase PHASE hostname HOSTNAME`.
pub fn line(change: &Change, observed_at: &str) -> String {
    let status = change.host.status.as_ref();
    let mut out = format!(
        "{observed_at} {} {} {}",
        change.kind.as_str(),
        name_of(&change.host),
        word(status.map(|s| s.host_id.as_str()))
    );
    if change.kind == ChangeType::Modified {
        if change.changes.is_empty() {
            out.push_str(" (nothing shown changed)");
        }
        for c in &change.changes {
            out.push_str(&format!(
                " {} {}→{}",
                c.field,
                word(c.old.as_deref()),
                word(c.new.as_deref())
            ));
        }
    } else {
        out.push_str(&format!(
            " phase {} hostname {}",
            word(status.map(|s| s.state.lifecycle.as_str())),
            word(status.map(|s| s.state.name.as_str()))
        ));
    }
    out
}

/// One field of [`JsonChange::changes`].
#[derive(Debug, Serialize)]
struct JsonField<'a> {
    field: &'a str,
    old: Option<&'a str>,
    new: Option<&'a str>,
}

/// A change as `-o json` prints it (fields in this order).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonChange<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    name: String,
    host_id: Option<&'a str>,
    hostname: Option<&'a str>,
    phase: Option<&'a str>,
    previous_phase: Option<&'a str>,
    resource_version: Option<&'a str>,
    observed_at: &'a str,
    changes: Vec<JsonField<'a>>,
    labels: &'a BTreeMap<String, String>,
}

/// The change as one JSON object (one line).
pub fn json(change: &Change, observed_at: &str) -> String {
    let status = change.host.status.as_ref();
    let empty = BTreeMap::new();
    let value = JsonChange {
        type_: change.kind.as_str(),
        name: name_of(&change.host),
        host_id: status.map(|s| s.host_id.as_str()),
        hostname: status.map(|s| s.state.name.as_str()),
        phase: status.map(|s| s.state.lifecycle.as_str()),
        previous_phase: change.previous_phase.as_deref(),
        resource_version: change.host.metadata.resource_version.as_deref(),
        observed_at,
        changes: change
            .changes
            .iter()
            .map(|c| JsonField {
                field: &c.field,
                old: c.old.as_deref(),
                new: c.new.as_deref(),
            })
            .collect(),
        labels: change.host.metadata.labels.as_ref().unwrap_or(&empty),
    };
    serde_json::to_string(&value).expect("strings always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::HostSpec;
    use hostledger_model::fixtures::{EventBuilder, fold_events, host_object};
    use hostledger_schemas::{EventKind, Lifecycle, Timestamp};
    use serde_json::json;

    fn host(id: &str, phase: Lifecycle, provider_status: &str, rv: &str) -> Host {
        let event = EventBuilder::new(id)
            .kind(EventKind::HostDiscovered)
            .name("log-1")
            .lifecycle(phase)
            .provider_status(provider_status)
            .at(Timestamp(0))
            .role(Some("log"))
            .build();
        let mut host = host_object(&fold_events(&[event]));
        host.metadata.name = Some(id.to_lowercase().replace('/', "."));
        host.metadata.resource_version = Some(rv.into());
        host
    }

    fn kinds(changes: &[Change]) -> Vec<(&'static str, String)> {
        changes
            .iter()
            .map(|c| (c.kind.as_str(), name_of(&c.host)))
            .collect()
    }

    #[test]
    fn existing_hosts_are_added_then_changes_follow() {
        let mut t = Tracker::new(true, false);
        assert!(t.handle(Event::Init).is_empty());
        t.handle(Event::InitApply(host(
            "dc/b",
            Lifecycle::InService,
            "active",
            "1",
        )));
        t.handle(Event::InitApply(host(
            "dc/a",
            Lifecycle::InService,
            "active",
            "2",
        )));
        // Created but not yet projected: not a host to show.
        t.handle(Event::InitApply(Host::new("dc.c", HostSpec::default())));
        let first = t.handle(Event::InitDone);
        assert_eq!(
            kinds(&first),
            [("ADDED", "dc.a".into()), ("ADDED", "dc.b".into())]
        );
        assert!(t.synced());

        // Only the projector's phase label changed (its metadata write comes first): skipped.
        let mut relabelled = host("dc/a", Lifecycle::InService, "active", "3");
        relabelled
            .metadata
            .labels
            .get_or_insert_default()
            .insert("phase".into(), "OutOfService".into());
        assert!(t.handle(Event::Apply(relabelled)).is_empty());

        // Then the status: one MODIFIED with the phase and the state's changes.
        let stopped = host("dc/a", Lifecycle::OutOfService, "maintenance", "4");
        let changes = t.handle(Event::Apply(stopped));
        assert_eq!(kinds(&changes), [("MODIFIED", "dc.a".into())]);
        let c = &changes[0];
        assert_eq!(c.previous_phase.as_deref(), Some("InService"));
        let fields: Vec<(&str, Option<&str>, Option<&str>)> = c
            .changes
            .iter()
            .map(|c| (c.field.as_str(), c.old.as_deref(), c.new.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                ("phase", Some("InService"), Some("OutOfService")),
                ("provider_status", Some("active"), Some("maintenance")),
            ]
        );
        assert_eq!(
            line(c, "2026-11-27T09:33:40Z"),
            "2026-11-27T09:33:40Z MODIFIED dc.a dc/a phase InService→OutOfService provider_status active→maintenance"
        );
        let text = json(c, "2026-11-27T09:33:40.123Z");
        assert!(
            text.starts_with(r#"{"type":"MODIFIED","name":"dc.a","hostId":"dc/a","hostname":"log-1","phase":"OutOfService","previousPhase":"InService","resourceVersion":"4","observedAt":"2026-11-27T09:33:40.123Z","changes":[{"field":"phase""#),
            "{text}"
        );
        let j: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(j["type"], "MODIFIED");
        assert_eq!(j["hostId"], "dc/a");
        assert_eq!(j["phase"], "OutOfService");
        assert_eq!(j["previousPhase"], "InService");
        assert_eq!(j["resourceVersion"], "4");
        assert_eq!(
            j["changes"][1],
            json!({"field": "provider_status", "old": "active", "new": "maintenance"})
        );
        assert_eq!(j["labels"]["role"], "log");

        // Nothing shown changed (a new resourceVersion only): skipped.
        let same = host("dc/a", Lifecycle::OutOfService, "maintenance", "5");
        assert!(t.handle(Event::Apply(same)).is_empty());

        // A person's label is a change.
        let mut owned = host("dc/a", Lifecycle::OutOfService, "maintenance", "6");
        owned
            .metadata
            .labels
            .get_or_insert_default()
            .insert("owner".into(), "alice smith".into());
        let changes = t.handle(Event::Apply(owned));
        assert_eq!(
            line(&changes[0], "T"),
            "T MODIFIED dc.a dc/a labels.owner (none)→\"alice smith\""
        );

        // A new Host appears once it has a status.
        assert!(
            t.handle(Event::Apply(Host::new("dc.c", HostSpec::default())))
                .is_empty()
        );
        let added = t.handle(Event::Apply(host(
            "dc/c",
            Lifecycle::Provisioning,
            "racked",
            "7",
        )));
        assert_eq!(
            line(&added[0], "T"),
            "T ADDED dc.c dc/c phase Provisioning hostname log-1"
        );

        let gone = t.handle(Event::Delete(host(
            "dc/b",
            Lifecycle::InService,
            "active",
            "8",
        )));
        assert_eq!(kinds(&gone), [("DELETED", "dc.b".into())]);
        let j: serde_json::Value = serde_json::from_str(&json(&gone[0], "T")).expect("JSON");
        assert_eq!(j["previousPhase"], serde_json::Value::Null);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn error_text_says_each_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "list failed: client error (Connect)",
            Some(Box::new(E(
                "client error (Connect)",
                Some(Box::new(E(
                    "tcp connect error: Connection refused",
                    Some(Box::new(E("Connection refused", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_text(&e),
            "list failed: client error (Connect): tcp connect error: Connection refused"
        );
    }

    #[test]
    fn changes_only_skips_the_first_list_and_verbose_shows_everything() {
        let mut t = Tracker::new(false, true);
        t.handle(Event::Init);
        t.handle(Event::InitApply(host(
            "dc/a",
            Lifecycle::InService,
            "active",
            "1",
        )));
        assert!(t.handle(Event::InitDone).is_empty());
        let changes = t.handle(Event::Apply(host(
            "dc/a",
            Lifecycle::InService,
            "active",
            "2",
        )));
        assert_eq!(kinds(&changes), [("MODIFIED", "dc.a".into())]);
        assert!(changes[0].changes.is_empty());
        assert_eq!(
            line(&changes[0], "T"),
            "T MODIFIED dc.a dc/a (nothing shown changed)"
        );
    }

    #[test]
    fn a_list_after_an_outage_reports_what_changed_meanwhile() {
        let mut t = Tracker::new(true, false);
        t.handle(Event::Init);
        t.handle(Event::InitApply(host(
            "dc/a",
            Lifecycle::InService,
            "active",
            "1",
        )));
        t.handle(Event::InitApply(host(
            "dc/b",
            Lifecycle::InService,
            "active",
            "2",
        )));
        assert_eq!(t.handle(Event::InitDone).len(), 2);
        // The API server went away; the watcher lists again.
        t.handle(Event::Init);
        t.handle(Event::InitApply(host(
            "dc/b",
            Lifecycle::Retired,
            "gone",
            "3",
        )));
        t.handle(Event::InitApply(host(
            "dc/c",
            Lifecycle::InService,
            "active",
            "4",
        )));
        t.handle(Event::InitApply(host(
            "dc/d",
            Lifecycle::InService,
            "active",
            "5",
        )));
        let changes = t.handle(Event::InitDone);
        assert_eq!(
            kinds(&changes),
            [
                ("DELETED", "dc.a".into()),
                ("MODIFIED", "dc.b".into()),
                ("ADDED", "dc.c".into()),
                ("ADDED", "dc.d".into()),
            ]
        );
        assert_eq!(t.len(), 3);
    }
}

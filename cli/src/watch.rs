//! `hostledger watch`: Host changes as they happen, from a Kubernetes watch, as lines or JSON.
//! Also the watch plumbing that `prometheus-sd --watch` shares (`host_watch`, `next`).
//!
//! A change is what the projector's status or people's labels say differently: the phase, the
//! fields of the host's state (compared with
//! [`HostState::changes_from`](hostledger_schemas::HostState::changes_from), the diff the
//! fetchers publish) and labels other than the projector's own (which follow the status and
//! would only repeat it). A Host is shown once it has a status: the projector creates the
//! object and then writes its status, and the first is not yet a host anyone can use.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::process::ExitCode;

use crate::read::Scope;
use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use hostledger_inventory::LabelSelector;
use hostledger_projector::Host;
use hostledger_projector::crd::OWNED_LABELS;
use hostledger_schemas::FieldChange;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_hosts};
use serde::Serialize;

/// Output formats of `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchOutput {
    /// One line per change: `TIME TYPE NAME HOST-ID FIELD OLD→NEW ...`.
    Line,
    /// One JSON object per line: type, name, hostId, hostname, phase, previousPhase,
    /// resourceVersion, observedAt, changes [{field, old, new}], labels.
    Json,
}

/// `hostledger watch`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the Hosts there are (as ADDED, unless --changes-only), then every change as it happens: \
ADDED, MODIFIED (with what changed), DELETED. Each line is flushed as it is printed, so scripts \
can read it live; a closed pipe (| head -1) ends the command at once with exit code 0. TIME \
(observedAt) is when the watch saw the change, in UTC.

MODIFIED events in which nothing shown changed (only the object's metadata, the status's \
bookkeeping such as lastEvent, or the projector's own labels provider, region, role, team and \
phase, which follow the status) are skipped; --verbose prints them too. A Host is shown once \
the projector has written its status.

If the API server cannot be reached at the start, the command fails; if it goes away later, \
the watch resumes with backoff and reports what changed meanwhile.")]
pub struct WatchArgs {
    /// Which Hosts.
    #[command(flatten)]
    pub scope: Scope,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = WatchOutput::Line)]
    pub output: WatchOutput,

    /// Do not print the Hosts that exist when the watch starts; only changes after it.
    #[arg(long)]
    pub changes_only: bool,

    /// Also print MODIFIED events in which nothing shown changed.
    #[arg(long)]
    pub verbose: bool,
}

/// A watch of the Hosts of `api` matching `selector`: the current list (`Init`,
/// `InitApply`..., `InitDone`), then changes. After an error it resumes with the watcher's
/// default backoff, from where it was or, when the API server no longer has that, with a new
/// list. Errors are items of the stream: it never ends by itself.
pub(crate) fn host_watch(
    api: Api<Host>,
    selector: Option<&LabelSelector>,
) -> Pin<Box<impl WatchStreamExt<Item = watcher::Result<Event<Host>>> + Send>> {
    let mut config = watcher::Config::default();
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        config = config.labels(s.as_str());
    }
    Box::pin(watch_hosts(api, config).default_backoff())
}

/// The next item of a stream: `futures::StreamExt::next`, which this crate does without (it
/// does not depend on `futures`; `WatchStreamExt` brings the `Stream` trait along).
pub(crate) async fn next<S>(stream: &mut Pin<Box<S>>) -> Option<S::Item>
where
    S: WatchStreamExt + ?Sized,
{
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

/// An error and its causes on one line, each cause only where the text so far does not already
/// say it (kube's errors repeat their sources in their own messages).
pub(crate) fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
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
pub(crate) fn name_of(host: &Host) -> String {
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
        if before.phase != after.phase {
            out.push(FieldChange {
                field: "phase".into(),
                old: Some(before.phase.clone()),
                new: Some(after.phase.clone()),
            });
        }
        match (before.to_record(), after.to_record()) {
            (Ok(b), Ok(a)) => out.extend(
                a.state
                    .changes_from(&b.state)
                    .into_iter()
                    .filter(|c| c.field != "lifecycle"),
            ),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(host = %name_of(new), %error, "cannot compare the Host's status; showing the phase only");
            }
        }
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
            previous_phase: old.status.as_ref().map(|s| s.phase.clone()),
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
            word(status.map(|s| s.phase.as_str())),
            word(status.map(|s| s.hostname.as_str()))
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
        hostname: status.map(|s| s.hostname.as_str()),
        phase: status.map(|s| s.phase.as_str()),
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

/// Resolves once stdout is a pipe whose reader has gone (`| head -1` has its line), so the
/// command can end then rather than at the next line it would print, which may be long after
/// (a script waiting for `head` waits for the whole pipeline). Never resolves when stdout is
/// not something that can tell (a file, /dev/null).
async fn stdout_closed() {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;
        let watched = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| {
                // SAFETY: `fd` is an `OwnedFd` (a duplicate of stdout) that the `AsyncFd` owns:
                // it stays open and is the same descriptor for the `AsyncFd`'s whole life.
                unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) }.ok()
            });
        if let Some(fd) = watched {
            while let Ok(mut guard) = fd.ready(Interest::ERROR).await {
                if guard.ready().is_error() {
                    return;
                }
                guard.clear_ready();
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Prints changes as they happen until Ctrl-C, SIGTERM or a closed stdout.
pub async fn run(args: WatchArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let api: Api<Host> = Api::namespaced(client, &args.scope.namespace);
    let mut stream = host_watch(api, args.scope.selector.as_ref());
    let mut tracker = Tracker::new(!args.changes_only, args.verbose);
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let closed = stdout_closed();
    tokio::pin!(closed);
    loop {
        let item = tokio::select! {
            () = &mut shutdown => return Ok(ExitCode::SUCCESS),
            () = &mut closed => return Ok(ExitCode::SUCCESS),
            item = next(&mut stream) => item,
        };
        let event = match item {
            None => bail!("the watch of Hosts ended"),
            Some(Ok(event)) => event,
            Some(Err(error)) if !tracker.synced() => bail!(
                "cannot watch Hosts in namespace {} on the Kubernetes API server{}: {}",
                args.scope.namespace,
                crate::read::client_url(),
                error_text(&error)
            ),
            Some(Err(error)) => {
                let error = error_text(&error);
                tracing::warn!(%error, namespace = %args.scope.namespace, "watch of Hosts interrupted; resuming with backoff");
                continue;
            }
        };
        let was_synced = tracker.synced();
        let changes = tracker.handle(event);
        if !was_synced && tracker.synced() {
            tracing::info!(namespace = %args.scope.namespace, hosts = tracker.len(), "watching Hosts");
        }
        if changes.is_empty() {
            continue;
        }
        let observed_at = match args.output {
            WatchOutput::Line => {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }
            WatchOutput::Json => {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }
        };
        let mut text = String::new();
        for change in &changes {
            match args.output {
                WatchOutput::Line => text.push_str(&line(change, &observed_at)),
                WatchOutput::Json => text.push_str(&json(change, &observed_at)),
            }
            text.push('\n');
        }
        crate::print_out(&text)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_projector::fold::{HostRecord, Position};
    use hostledger_projector::{HostSpec, HostStatus};
    use hostledger_schemas::{EventKind, HostEvent, HostState, Lifecycle, Timestamp};
    use serde_json::json;

    fn host(id: &str, phase: Lifecycle, provider_status: &str, rv: &str) -> Host {
        let mut state = HostState::new("log-1", phase, provider_status);
        state.role = Some("log".into());
        let event = HostEvent {
            event_id: "e".into(),
            host_id: id.into(),
            kind: EventKind::HostDiscovered,
            provider: "dc".into(),
            source: "s".into(),
            observed_at: Timestamp(0),
            state,
            changes: Vec::new(),
        };
        let record = HostRecord::first(
            &event,
            Position {
                partition: 0,
                offset: 0,
            },
        );
        let mut host = Host::new(&id.to_lowercase().replace('/', "."), HostSpec::default());
        host.metadata.labels = Some(hostledger_projector::crd::labels(&record));
        host.metadata.resource_version = Some(rv.into());
        host.status = Some(HostStatus::from_record(&record));
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

//! The history API's pure part: what `hostledger history-server` serves to kube-apiserver's
//! aggregation layer (group `history.hostledger.dev`, version `v1alpha1`, resource
//! `hosthistories`), and the index of the log it serves from. No I/O here: the server reads
//! the log into a [`HistoryIndex`], routes a request with [`Route::parse`] and answers with
//! the JSON built here. See docs/design/history.md.

use std::collections::BTreeMap;

use hostledger_model::history::{fold_entry, fold_existing, fold_lock_existing};
use hostledger_model::names::{OWNED_LABELS, labels as derived_labels, object_name};
use hostledger_model::selector::LabelSelector;
use hostledger_model::timeline::{HistoryError, Timeline, events_from_history, fold_until};
use hostledger_model::{HistoryEntry, HostRecord, HostStatus, Position, ServicePoint};
use hostledger_schemas::{Fact, Timestamp};
use kube::core::ObjectMeta;
use serde::Serialize;
use serde_json::{Value, json};

pub use hostledger_k8s::history_api::{GROUP, RESOURCE, VERSION};

/// `GROUP/VERSION`.
pub fn group_version() -> String {
    format!("{GROUP}/{VERSION}")
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/apis/history.hostledger.dev`: the group.
    Group,
    /// `/apis/history.hostledger.dev/v1alpha1`: its resources.
    Resources,
    /// One host's history.
    Get {
        /// Namespace of the Host.
        namespace: String,
        /// The Host object's name.
        name: String,
    },
    /// Every host's history in a namespace, or in all (`None`).
    List {
        /// The namespace, if one.
        namespace: Option<String>,
    },
    /// Anything else.
    NotFound,
}

impl Route {
    /// Routes a request path (the query string is ignored).
    pub fn parse(path: &str) -> Route {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["apis", g] if *g == GROUP => Route::Group,
            ["apis", g, v] if *g == GROUP && *v == VERSION => Route::Resources,
            ["apis", g, v, r] if *g == GROUP && *v == VERSION && *r == RESOURCE => {
                Route::List { namespace: None }
            }
            ["apis", g, v, "namespaces", ns, r]
                if *g == GROUP && *v == VERSION && *r == RESOURCE =>
            {
                Route::List {
                    namespace: Some((*ns).to_owned()),
                }
            }
            ["apis", g, v, "namespaces", ns, r, name]
                if *g == GROUP && *v == VERSION && *r == RESOURCE && !name.is_empty() =>
            {
                Route::Get {
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                }
            }
            _ => Route::NotFound,
        }
    }
}

/// The API group document.
pub fn api_group() -> Value {
    let gv = json!({"groupVersion": group_version(), "version": VERSION});
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
        "versions": [gv.clone()], "preferredVersion": gv,
    })
}

/// The resource list of the version.
pub fn api_resources() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(),
        "resources": [{
            "name": RESOURCE, "singularName": "hosthistory", "namespaced": true,
            "kind": "HostHistory", "verbs": ["get", "list"], "shortNames": ["hhist"],
            "categories": ["hostledger"],
        }],
    })
}

/// A Kubernetes `Status` failure.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "code": code, "reason": reason, "message": message,
    })
}

/// Folds one fact into the record of a host already known, the way the projector folds
/// it; the history entry it adds, if it adds one (not a duplicate).
pub fn fold_into(record: &mut HostRecord, fact: &Fact, position: Position) -> Option<HistoryEntry> {
    match fact {
        Fact::Host(event) => fold_existing(record, event, position),
        Fact::Lock(event) => fold_lock_existing(record, event, position),
    }
}

/// The record and first entry of a host not known yet; `None` for a lock fact (a lock of a
/// host never seen is not its history).
pub fn fold_first(fact: &Fact, position: Position) -> Option<(HostRecord, HistoryEntry)> {
    let Fact::Host(event) = fact else {
        return None;
    };
    let mut record = None;
    let entry = fold_entry(&mut record, event, position)?;
    Some((record?, entry))
}

/// One host's full history, in the log's order.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedHost {
    /// The fold's record after the last entry.
    pub record: HostRecord,
    /// Every entry, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// A page of hosts by object name, and the continue token when more follow.
pub type HostPage = (Vec<(String, IndexedHost)>, Option<String>);

/// Every host's full history, folded from the log the way the projector folds it.
#[derive(Debug, Default)]
pub struct HistoryIndex {
    /// By Host object name.
    hosts: BTreeMap<String, IndexedHost>,
    /// Only facts up to this time, as a replay `--until` folds them.
    until: Option<Timestamp>,
    /// Facts folded.
    pub facts: u64,
}

impl HistoryIndex {
    /// An index of facts up to `until` (`None`: every fact), the history of a namespace
    /// replayed `--until` that time.
    pub fn until(until: Option<Timestamp>) -> Self {
        HistoryIndex {
            until,
            ..HistoryIndex::default()
        }
    }

    /// Folds one fact of the log.
    pub fn push(&mut self, fact: &Fact, position: Position) {
        if self.until.is_some_and(|until| fact.at() > until) {
            return;
        }
        let name = object_name(fact.host_id());
        match self.hosts.get_mut(&name) {
            Some(host) => {
                if let Some(entry) = fold_into(&mut host.record, fact, position) {
                    host.entries.push(entry);
                    self.facts += 1;
                }
            }
            None => {
                if let Some((record, entry)) = fold_first(fact, position) {
                    self.facts += 1;
                    self.hosts.insert(
                        name,
                        IndexedHost {
                            record,
                            entries: vec![entry],
                        },
                    );
                }
            }
        }
    }

    /// One host's history, by Host object name.
    pub fn get(&self, name: &str) -> Option<&IndexedHost> {
        self.hosts.get(name)
    }

    /// Every host, by object name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &IndexedHost)> {
        self.hosts.iter()
    }

    /// A page: at most `page.limit` hosts after `page.after`, and the continue token when
    /// more follow.
    pub fn page(&self, page: &Page) -> HostPage {
        let limit = page.limit.unwrap_or(usize::MAX);
        let mut items: Vec<(String, IndexedHost)> = self
            .after(page.after.as_deref())
            .take(limit.saturating_add(1))
            .map(|(n, h)| (n.clone(), h.clone()))
            .collect();
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|(n, _)| n.clone()).unwrap_or_default()
        });
        (items, next)
    }

    /// Hosts by object name after `after` (`None`: from the first).
    pub fn after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a String, &'a IndexedHost)> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        self.hosts.range((start, Bound::Unbounded))
    }

    /// Hosts indexed.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A host's history as the API serves it: a `HostHistory` of group `history.hostledger.dev`
/// with the host's id and every entry in order.
pub fn history_object(namespace: &str, name: &str, host: &IndexedHost) -> Value {
    json!({
        "apiVersion": group_version(), "kind": "HostHistory",
        "metadata": {
            "name": name, "namespace": namespace,
            "creationTimestamp": host.record.first_seen_at.to_datetime()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        },
        "spec": {
            "hostId": host.record.host_id,
            "events": host.record.event_count,
            "entries": host.entries,
        },
    })
}

/// A page of a list: at most `limit` histories (all when `None`) after the `continue` token
/// `after`; the next page's token when more follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Most items.
    pub limit: Option<usize>,
    /// The previous page's token (the last name it held).
    pub after: Option<String>,
    /// `asOf=MICROS`: each host's state as of that time, folded here, instead of its
    /// entries (what `uptime --as-of` needs, a fraction of the bytes).
    pub as_of: Option<Timestamp>,
    /// What each item holds (`view=`).
    pub view: View,
    /// `labelSelector=` (kubectl syntax) for `view=hosts` and `view=inventory`: only Hosts
    /// whose labels match.
    pub label_selector: Option<String>,
}

/// What a list's items hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum View {
    /// Each host's entries (as of `asOf`: its state then).
    #[default]
    Entries,
    /// `view=uptime`: each host's time-in-service point (as of `asOf`, or now) instead of its
    /// entries or state: what `hostledger uptime` needs, a few hundred bytes a host.
    Uptime,
    /// `view=hosts`: each Host as it stands, its labels and annotations (from a watch on the
    /// Hosts) with its status folded from the log, without kube-apiserver encoding every
    /// Host.
    Hosts,
    /// `view=inventory`: what an inventory reads of each Host, about half the bytes of
    /// `view=hosts`: the labels people gave it (the projector's own follow from the status;
    /// a reader derives them again, as it makes the conditions), its annotations, and its
    /// status without service intervals, downtime and lock. What `hostledger ansible --list`
    /// reads.
    Inventory,
}

impl View {
    /// Whether its items are Hosts (`view=hosts` or `view=inventory`).
    pub fn lists_hosts(self) -> bool {
        matches!(self, View::Hosts | View::Inventory)
    }

    /// Its name in `view=`.
    pub fn name(self) -> &'static str {
        match self {
            View::Entries => "entries",
            View::Uptime => "uptime",
            View::Hosts => "hosts",
            View::Inventory => "inventory",
        }
    }
}

impl Page {
    /// Reads `limit` and `continue` from a query string.
    pub fn parse(query: Option<&str>) -> Result<Page, String> {
        let mut page = Page::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match key {
                "limit" if !value.is_empty() => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("limit={value} is not a number"))?;
                    page.limit = (n > 0).then_some(n);
                }
                "continue" if !value.is_empty() => page.after = Some(value),
                "asOf" if !value.is_empty() => {
                    let micros: i64 = value.parse().map_err(|_| {
                        format!("asOf={value} is not a time in microseconds since 1970")
                    })?;
                    page.as_of = Some(Timestamp(micros));
                }
                "view" if value == "uptime" => page.view = View::Uptime,
                "view" if value == "hosts" => page.view = View::Hosts,
                "view" if value == "inventory" => page.view = View::Inventory,
                "view" => {
                    return Err(format!(
                        "view={value} is not a view of host histories: leave it out for the entries, or use view=uptime, view=hosts or view=inventory"
                    ));
                }
                "labelSelector" if !value.is_empty() => {
                    LabelSelector::parse(&value)
                        .map_err(|e| format!("labelSelector={value}: {}", e.reason))?;
                    page.label_selector = Some(value);
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

fn percent_decode(value: &str) -> Result<String, String> {
    let spaced = value.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    if spaced.contains('%')
        && spaced.split('%').skip(1).any(|rest| {
            rest.get(..2)
                .is_none_or(|h| u8::from_str_radix(h, 16).is_err())
        })
    {
        return Err(format!("{value:?} has a broken %-escape"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{value:?} is not UTF-8"))
}

/// A page of histories, as the API serves it; `next` is the continue token when more follow.
pub fn history_list(namespace: &str, items: &[(String, IndexedHost)], next: Option<&str>) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(name, host)| history_object(namespace, name, host))
        .collect();
    json!({
        "apiVersion": group_version(), "kind": "HostHistoryList",
        "metadata": list_meta(next), "items": items,
    })
}

fn list_meta(next: Option<&str>) -> Value {
    match next {
        Some(token) => json!({"continue": token}),
        None => json!({}),
    }
}

/// One page of the indexed hosts' states as of `at`, each folded from its history the way
/// readers fold it (`fold_until`): the status a Host would have had then, its service
/// intervals up to then, and how many entries its history holds now (so a reader can tell
/// the server has read as far as the Hosts). A host not yet observed at `at` has no status.
pub fn states_list(
    namespace: &str,
    items: &[(String, IndexedHost)],
    next: Option<&str>,
    at: Timestamp,
) -> Result<Value, HistoryError> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for (name, host) in items {
        let events = events_from_history(&host.record.host_id, &host.entries)?;
        let then = fold_until(&events, Some(at));
        out.push(json!({
            "metadata": {"name": name, "namespace": namespace},
            "hostId": host.record.host_id,
            "events": host.entries.len(),
            "status": then.as_ref().map(|t| HostStatus::from_record(&t.record)),
            "intervals": then.as_ref().map(Timeline::intervals).unwrap_or_default(),
        }));
    }
    Ok(json!({
        "apiVersion": group_version(), "kind": "HostStateList",
        "metadata": list_meta(next), "items": out,
    }))
}

/// One page of the hosts' time-in-service points as of a time (`view=uptime`): per host its
/// object name, the entries its history holds, and its point then (`null`: not observed yet).
/// Serialized as it stands (a page is tens of thousands of hosts; no JSON tree is built).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UptimeList<'a> {
    api_version: String,
    kind: &'static str,
    metadata: Value,
    items: Vec<UptimeListItem<'a>>,
}

#[derive(Serialize)]
struct UptimeListItem<'a> {
    metadata: ItemMeta<'a>,
    events: u64,
    point: &'a Option<ServicePoint>,
}

#[derive(Serialize)]
struct ItemMeta<'a> {
    name: &'a str,
    namespace: &'a str,
}

/// The `HostUptimeList` of a page of points.
pub fn uptime_list<'a>(
    namespace: &'a str,
    items: &'a [(String, u64, Option<ServicePoint>)],
    next: Option<&str>,
) -> UptimeList<'a> {
    UptimeList {
        api_version: group_version(),
        kind: "HostUptimeList",
        metadata: list_meta(next),
        items: items
            .iter()
            .map(|(name, events, point)| UptimeListItem {
                metadata: ItemMeta { name, namespace },
                events: *events,
                point,
            })
            .collect(),
    }
}

/// One page of Hosts (`view=hosts`, `view=inventory`), shaped like a page of kube-apiserver's
/// HostList (the readers parse both alike): each item's name, labels, annotations and
/// finalizers, and its status. Serialized as it stands.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostsList<'a> {
    api_version: String,
    kind: &'static str,
    metadata: Value,
    items: Vec<HostsListItem<'a>>,
}

/// A Host of a [`HostsList`].
#[derive(Serialize)]
pub struct HostsListItem<'a> {
    metadata: HostsItemMeta<'a>,
    status: HostStatus,
}

#[derive(Serialize)]
struct HostsItemMeta<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: ItemLabels,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finalizers: Option<&'a Vec<String>>,
}

/// A listed Host's labels: every one (what a selector matches), of which `view=inventory`
/// writes only the people's.
struct ItemLabels {
    all: BTreeMap<String, String>,
    peoples_only: bool,
}

impl Serialize for ItemLabels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.peoples_only {
            return self.all.serialize(serializer);
        }
        serializer.collect_map(
            self.all
                .iter()
                .filter(|(k, _)| !OWNED_LABELS.contains(&k.as_str())),
        )
    }
}

impl<'a> HostsListItem<'a> {
    /// A Host: its object's labels with the projector's own ones as `record` gives them (the
    /// log can be a moment ahead of the object), its annotations and finalizers, and `record`
    /// as its status; for [`View::Inventory`], what an inventory reads of them.
    pub fn new(
        name: &'a str,
        namespace: &'a str,
        meta: &'a ObjectMeta,
        record: &HostRecord,
        view: View,
    ) -> Self {
        let mut labels: BTreeMap<String, String> = meta
            .labels
            .iter()
            .flatten()
            .filter(|(k, _)| !OWNED_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.extend(derived_labels(record));
        let inventory = view == View::Inventory;
        // Its conditions follow from its phase; a reader makes them again.
        let mut status = HostStatus::from_record(record);
        status.conditions.clear();
        if inventory {
            status.service_intervals.clear();
            status.service_intervals_dropped = 0;
            status.downtime = None;
            status.lock = None;
            status.last_lock_event = None;
        }
        HostsListItem {
            metadata: HostsItemMeta {
                name,
                namespace,
                labels: ItemLabels {
                    all: labels,
                    peoples_only: inventory,
                },
                annotations: meta.annotations.as_ref().filter(|a| !a.is_empty()),
                finalizers: meta
                    .finalizers
                    .as_ref()
                    .filter(|f| !inventory && !f.is_empty()),
            },
            status,
        }
    }

    /// Its object's name.
    pub fn name(&self) -> &str {
        self.metadata.name
    }

    /// Its labels, what a `labelSelector` matches.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.metadata.labels.all
    }
}

/// The `HostList` (`HostInventoryList` for [`View::Inventory`]) of a page of Hosts.
pub fn hosts_list<'a>(
    items: Vec<HostsListItem<'a>>,
    next: Option<&str>,
    view: View,
) -> HostsList<'a> {
    HostsList {
        api_version: group_version(),
        kind: if view == View::Inventory {
            "HostInventoryList"
        } else {
            "HostList"
        },
        metadata: list_meta(next),
        items,
    }
}

/// Histories as a `meta.k8s.io/v1` Table, what kubectl asks for to print columns: name,
/// host id, events, phase now, first seen.
pub fn history_table<'a>(
    namespace: &str,
    hosts: impl IntoIterator<Item = (&'a String, &'a IndexedHost)>,
) -> Value {
    let rows: Vec<Value> = hosts
        .into_iter()
        .map(|(name, host)| {
            let first = host.record.first_seen_at.to_datetime()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            json!({
                "cells": [name, host.record.host_id, host.entries.len(), host.record.phase.as_str(), first],
                "object": {
                    "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"name": name, "namespace": namespace, "creationTimestamp": first},
                },
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "The Host object's name"},
            {"name": "Host-ID", "type": "string", "description": "The host's id"},
            {"name": "Events", "type": "integer", "description": "Entries in its history"},
            {"name": "Phase", "type": "string", "description": "Its lifecycle phase after the last one"},
            {"name": "First-Seen", "type": "date", "description": "When it was first observed"},
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::fixtures::EventBuilder;
    use hostledger_schemas::Lifecycle;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/apis/history.hostledger.dev"), Route::Group);
        assert_eq!(
            Route::parse("/apis/history.hostledger.dev/v1alpha1?timeout=32s"),
            Route::Resources
        );
        assert_eq!(
            Route::parse(
                "/apis/history.hostledger.dev/v1alpha1/namespaces/ns/hosthistories/dc.pdx1.a"
            ),
            Route::Get {
                namespace: "ns".into(),
                name: "dc.pdx1.a".into()
            }
        );
        assert_eq!(
            Route::parse(
                "/apis/history.hostledger.dev/v1alpha1/namespaces/ns/hosthistories?limit=500"
            ),
            Route::List {
                namespace: Some("ns".into())
            }
        );
        assert_eq!(
            Route::parse("/apis/history.hostledger.dev/v1alpha1/hosthistories"),
            Route::List { namespace: None }
        );
        assert_eq!(
            Route::parse("/apis/hostledger.dev/v1alpha1"),
            Route::NotFound
        );
        assert_eq!(Route::parse("/healthz"), Route::NotFound);
    }

    #[test]
    fn the_index_folds_like_the_projector() {
        let mut index = HistoryIndex::default();
        for (i, l) in [
            Lifecycle::InService,
            Lifecycle::OutOfService,
            Lifecycle::InService,
        ]
        .into_iter()
        .enumerate()
        {
            let e = EventBuilder::new("dc/pdx1/A")
                .id(format!("e{i}"))
                .name("a")
                .lifecycle(l)
                .provider_status("x")
                .at(Timestamp(1_767_225_600_000_000 + i as i64 * 60_000_000))
                .build();
            let p = Position {
                partition: 0,
                offset: i as i64,
            };
            index.push(&Fact::Host(e.clone()), p);
            index.push(&Fact::Host(e), p); // a duplicate delivery adds nothing
        }
        assert_eq!(index.len(), 1);
        assert_eq!(index.facts, 3);
        let name = object_name("dc/pdx1/A");
        let host = index.get(&name).expect("indexed");
        assert_eq!(
            host.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let object = history_object("ns", &name, host);
        assert_eq!(object["apiVersion"], "history.hostledger.dev/v1alpha1");
        assert_eq!(object["spec"]["hostId"], "dc/pdx1/A");
        assert_eq!(object["spec"]["entries"][1]["phase"], "OutOfService");
        let (items, next) = index.page(&Page::default());
        assert_eq!(next, None);
        assert_eq!(
            history_list("ns", &items, None)["items"][0]["metadata"]["name"],
            name
        );
    }

    #[test]
    fn lists_page_by_page_and_an_until_index_stops_there() {
        let at = |m: i64| Timestamp(1_767_225_600_000_000 + m * 60_000_000);
        let mut full = HistoryIndex::default();
        let mut until = HistoryIndex::until(Some(at(1)));
        for (i, host) in ["dc/a/1", "dc/a/2", "dc/a/3"].into_iter().enumerate() {
            for m in 0..3 {
                let e = EventBuilder::new(host)
                    .id(format!("{host}-{m}"))
                    .name(host)
                    .lifecycle(Lifecycle::InService)
                    .provider_status(&format!("s{m}"))
                    .at(at(m + i as i64))
                    .build();
                let p = Position {
                    partition: 0,
                    offset: (i * 3) as i64 + m,
                };
                full.push(&Fact::Host(e.clone()), p);
                until.push(&Fact::Host(e), p);
            }
        }
        let page = Page::parse(Some("limit=2")).expect("parses");
        let (items, next) = full.page(&page);
        let first = history_list("ns", &items, next.as_deref());
        assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
        let token = first["metadata"]["continue"]
            .as_str()
            .expect("a continue token");
        let encoded: String = token.replace('.', "%2E");
        let page = Page::parse(Some(&format!("limit=2&continue={encoded}"))).expect("parses");
        let (items, next) = full.page(&page);
        let second = history_list("ns", &items, next.as_deref());
        assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
        assert!(second["metadata"].get("continue").is_none());
        assert_eq!(second["items"][0]["spec"]["hostId"], "dc/a/3");
        // Up to minute 1: two entries of the first host, one of the second, none of the third.
        let counts: Vec<usize> = until.iter().map(|(_, h)| h.entries.len()).collect();
        assert_eq!(counts, [2, 1]);
        // Every host's state as of minute 1, folded here: the first two hosts existed then.
        let page = Page::parse(Some("asOf=1767225660000000")).expect("parses");
        assert_eq!(page.as_of, Some(at(1)));
        let (items, next) = full.page(&page);
        let states = states_list("ns", &items, next.as_deref(), at(1)).expect("folds");
        let items = states["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        assert!(items[2]["status"].is_null(), "not observed yet then");
        assert_eq!(items[0]["hostId"], "dc/a/1");
        assert_eq!(items[0]["events"], 3, "entries held now");
        assert_eq!(items[0]["status"]["eventCount"], 2, "events up to then");
        assert!(Page::parse(Some("asOf=yesterday")).is_err());
        assert!(Page::parse(Some("limit=x")).is_err());
        assert!(Page::parse(Some("continue=%zz")).is_err());
    }

    #[test]
    fn a_listed_host_keeps_peoples_labels_and_takes_the_projectors_from_the_log() {
        let page = Page::parse(Some("view=hosts&labelSelector=role%3Ddb%2Crack")).expect("parses");
        assert_eq!(page.view, View::Hosts);
        assert_eq!(page.label_selector.as_deref(), Some("role=db,rack"));
        let refused = Page::parse(Some("view=hosts&labelSelector=role+in+%28db")).unwrap_err();
        assert!(
            refused.starts_with("labelSelector=role in (db"),
            "{refused}"
        );
        assert!(Page::parse(Some("view=everything")).is_err());

        let e = EventBuilder::new("dc/pdx1/A")
            .name("a")
            .lifecycle(Lifecycle::OutOfService)
            .provider_status("maintenance")
            .build();
        let record = hostledger_model::fixtures::fold_events(&[e]);
        // The object still has the phase label of before, and a person's label and annotation.
        let meta = ObjectMeta {
            labels: Some(BTreeMap::from([
                ("phase".to_owned(), "InService".to_owned()),
                ("rack".to_owned(), "a01".to_owned()),
            ])),
            annotations: Some(BTreeMap::from([(
                "ansible.hostledger.dev/user".to_owned(),
                "deploy".to_owned(),
            )])),
            finalizers: Some(Vec::new()),
            ..ObjectMeta::default()
        };
        let item = HostsListItem::new("dc.pdx1.a", "ns", &meta, &record, View::Hosts);
        assert_eq!(item.labels()["phase"], "OutOfService", "the log's phase");
        assert_eq!(item.labels()["rack"], "a01", "a person's label kept");
        assert_eq!(item.labels()["provider"], "dc");
        let list = serde_json::to_value(hosts_list(vec![item], Some("dc.pdx1.a"), View::Hosts))
            .expect("JSON");
        assert_eq!(list["kind"], "HostList");
        assert_eq!(list["metadata"]["continue"], "dc.pdx1.a");
        let host = &list["items"][0];
        assert_eq!(
            host["metadata"]["annotations"]["ansible.hostledger.dev/user"],
            "deploy"
        );
        assert!(host["metadata"].get("finalizers").is_none(), "none to list");
        let status: HostStatus = serde_json::from_value(host["status"].clone()).expect("a status");
        assert_eq!(status.to_record(), record);
        assert!(
            host["status"].get("conditions").is_none(),
            "made again by readers"
        );
    }

    #[test]
    fn an_inventory_item_leaves_out_what_follows_from_its_status_and_what_an_inventory_does_not_read()
     {
        let page =
            Page::parse(Some("view=inventory&labelSelector=phase%3DInService")).expect("parses");
        assert_eq!(page.view, View::Inventory);
        assert!(
            page.view.lists_hosts() && View::Hosts.lists_hosts() && !View::Uptime.lists_hosts()
        );

        let up = EventBuilder::new("dc/pdx1/A").name("a").build();
        let down = EventBuilder::new("dc/pdx1/A")
            .name("a")
            .lifecycle(Lifecycle::OutOfService)
            .hours(1)
            .build();
        let back = EventBuilder::new("dc/pdx1/A").name("a").hours(2).build();
        let record = hostledger_model::fixtures::fold_events(&[up, down, back]);
        assert!(
            !record.intervals.is_empty(),
            "a closed interval and an open one"
        );
        let meta = ObjectMeta {
            labels: Some(BTreeMap::from([
                ("phase".to_owned(), "InService".to_owned()),
                ("rack".to_owned(), "a01".to_owned()),
            ])),
            finalizers: Some(vec!["hostledger.dev/history".to_owned()]),
            ..ObjectMeta::default()
        };
        let full = serde_json::to_string(&hosts_list(
            vec![HostsListItem::new(
                "dc.pdx1.a",
                "ns",
                &meta,
                &record,
                View::Hosts,
            )],
            None,
            View::Hosts,
        ))
        .expect("JSON");
        let item = HostsListItem::new("dc.pdx1.a", "ns", &meta, &record, View::Inventory);
        assert_eq!(
            item.labels()["provider"],
            "dc",
            "a selector matches every label"
        );
        let text =
            serde_json::to_string(&hosts_list(vec![item], None, View::Inventory)).expect("JSON");
        assert!(
            text.len() < full.len(),
            "{} bytes against {}",
            text.len(),
            full.len()
        );
        let list: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(list["kind"], "HostInventoryList");
        let host = &list["items"][0];
        assert_eq!(
            host["metadata"]["labels"],
            json!({"rack": "a01"}),
            "people's labels only"
        );
        assert!(host["metadata"].get("finalizers").is_none());
        for left_out in ["serviceIntervals", "downtime", "conditions"] {
            assert!(host["status"].get(left_out).is_none(), "{left_out}: {text}");
        }
        // What an inventory reads is as the log has it, and the projector's labels follow.
        let status: HostStatus = serde_json::from_value(host["status"].clone()).expect("a status");
        let read = status.to_record();
        assert_eq!(read.state, record.state);
        assert_eq!(
            (
                read.host_id.as_str(),
                read.phase,
                read.first_seen_at,
                read.in_service_since
            ),
            (
                record.host_id.as_str(),
                record.phase,
                record.first_seen_at,
                record.in_service_since
            )
        );
        assert_eq!(derived_labels(&read), derived_labels(&record));
    }
}

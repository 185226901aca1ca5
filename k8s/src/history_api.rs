//! The history API as a client sees it: `hosthistories.history.hostledger.dev`, served by
//! `hostledger history-server` from the log behind kube-apiserver's aggregation layer, and
//! read here through the same API server, credentials and RBAC as the Hosts.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hostledger_model::names::{labels as derived_labels, object_name};
use hostledger_model::{HistoryEntry, HostRecord, HostStatus, ServiceInterval, ServicePoint};
use hostledger_schemas::Timestamp;
use kube::{Client, Error as KubeError};
use serde::Deserialize;

use crate::error::K8sError;
use crate::hosts::{ListedHost, parse_page};
use crate::pager::PAGE_SIZE;

/// The API group.
pub const GROUP: &str = "history.hostledger.dev";
/// The API version.
pub const VERSION: &str = "v1alpha1";
/// The resource.
pub const RESOURCE: &str = "hosthistories";
/// The APIService that registers the group-version with kube-apiserver.
pub const API_SERVICE: &str = "v1alpha1.history.hostledger.dev";

/// How long a reader waits for the history server to catch up with the Hosts (it reads the
/// same log as the projector, a moment apart).
const CATCH_UP: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct Spec {
    #[serde(rename = "hostId")]
    host_id: String,
    entries: Vec<HistoryEntry>,
}

#[derive(Deserialize)]
struct Object {
    spec: Spec,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(Deserialize)]
struct StateItem {
    #[serde(rename = "hostId")]
    host_id: String,
    events: u64,
    status: Option<HostStatus>,
    #[serde(default)]
    intervals: Vec<ServiceInterval>,
}

#[derive(Deserialize)]
struct StateList {
    #[serde(default)]
    metadata: ListMeta,
    items: Vec<StateItem>,
}

/// A host as it stood at a past time, folded by the history server.
#[derive(Debug, Clone, PartialEq)]
pub struct StateThen {
    /// The record then; `None` when the host had not been observed yet.
    pub record: Option<HostRecord>,
    /// Every service interval up to then.
    pub intervals: Vec<ServiceInterval>,
    /// Entries the server's history of the host holds now.
    pub entries: u64,
}

#[derive(Deserialize)]
struct UptimeItem {
    point: Option<ServicePoint>,
}

#[derive(Deserialize)]
struct UptimeList {
    items: Vec<UptimeItem>,
}

/// Hosts per page of `view=uptime` (a few hundred bytes each).
const UPTIME_PAGE: usize = 20_000;

/// Hosts per page of `view=inventory` (about 0.8 KB each): few pages, since each costs the
/// server a pass over the namespace's Hosts, and still a few to parse while the next comes.
const HOSTS_PAGE: usize = 25_000;

/// What the parse of a page needs first: where the next one starts.
#[derive(Deserialize)]
struct ListHeader {
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    metadata: ListMeta,
    items: Vec<Object>,
}

/// Host histories in one namespace, from the history API.
#[derive(Clone)]
pub struct HistoryApi {
    client: Client,
    namespace: String,
}

impl HistoryApi {
    /// The history API for `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        HistoryApi {
            client,
            namespace: namespace.to_owned(),
        }
    }

    fn base(&self) -> String {
        format!(
            "/apis/{GROUP}/{VERSION}/namespaces/{}/{RESOURCE}",
            self.namespace
        )
    }

    fn unavailable(&self, detail: &str) -> K8sError {
        K8sError::Unreadable {
            action: format!("read host histories in namespace {}", self.namespace),
            reason: format!(
                "{detail}. Full history is served by `hostledger history-server` through the APIService {API_SERVICE}: start it (docs/operations.md, \"The history API\"), or read from the log with --source log"
            ),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>, K8sError> {
        let Some(text) = self.get_text(path).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.unavailable(&format!("the answer to {path} cannot be read: {e}")))
    }

    /// The body of `path`'s answer, retried while the server catches up; `None` for a host
    /// it does not know.
    async fn get_text(&self, path: &str) -> Result<Option<String>, K8sError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let request = http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| self.unavailable(&format!("cannot build the request {path}: {e}")))?;
            match self.client.request_text(request).await {
                Ok(value) => return Ok(Some(value)),
                // A host the server does not know (yet).
                Err(KubeError::Api(s)) if s.code == 404 && s.message.contains("no host") => {
                    return Ok(None);
                }
                Err(KubeError::Api(s)) if s.code == 404 => {
                    return Err(self.unavailable(&format!(
                        "the API server does not serve {RESOURCE}.{GROUP} ({})",
                        s.message
                    )));
                }
                Err(KubeError::Api(s)) if s.code == 403 => {
                    return Err(K8sError::Api {
                        action: format!(
                            "read host histories in namespace {} (grant the ClusterRole hostledger:history-reader)",
                            self.namespace
                        ),
                        source: KubeError::Api(s),
                    });
                }
                // Still reading the log, or briefly unreachable: wait, within reason.
                Err(KubeError::Api(s))
                    if matches!(s.code, 429 | 500..=599) && started.elapsed() < CATCH_UP =>
                {
                    tracing::debug!(code = s.code, message = %s.message, "history API not ready; retrying");
                }
                Err(KubeError::Api(s)) => {
                    return Err(self.unavailable(&format!(
                        "the history API answered {} {}: {}",
                        s.code, s.reason, s.message
                    )));
                }
                Err(e) if crate::is_transient(&e) && started.elapsed() < CATCH_UP => {
                    tracing::debug!(error = %e, "history API unreachable; retrying");
                }
                Err(e) => return Err(self.unavailable(&format!("the request failed: {e}"))),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Whether the API server serves the history API (the APIService is registered and its
    /// server answers). The error says why not and what to do.
    pub async fn check(&self) -> Result<(), K8sError> {
        let _: serde_json::Value = self
            .get(&format!("/apis/{GROUP}/{VERSION}"))
            .await?
            .unwrap_or_default();
        Ok(())
    }

    /// The namespace's Hosts as an inventory reads them, from the history server
    /// (`view=inventory`): the labels and annotations of each Host object with its status
    /// folded from the log, in pages parsed while the next is served. Only those `selector`
    /// matches, when one is given. Each record is the log's, without its service intervals,
    /// downtime and lock, which the view leaves out (an inventory's variables do not read
    /// them; a lock shows in the labels and annotations).
    pub async fn inventory(&self, selector: Option<&str>) -> Result<Vec<ListedHost>, K8sError> {
        let mut query = format!("view=inventory&limit={HOSTS_PAGE}");
        if let Some(s) = selector.filter(|s| !s.is_empty()) {
            query.push_str("&labelSelector=");
            query.push_str(&percent_encode(s));
        }
        self.pages(query, parse_inventory_page).await
    }

    /// Every page of the list `?query`, each parsed by `parse` on a blocking thread while the
    /// next is served; their items in order.
    async fn pages<T: Send + 'static>(
        &self,
        query: String,
        parse: fn(&str) -> Result<Vec<T>, String>,
    ) -> Result<Vec<T>, K8sError> {
        let mut parsers = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("{}?{query}", self.base());
            if let Some(t) = &token {
                path.push_str("&continue=");
                path.push_str(&percent_encode(t));
            }
            let Some(text) = self.get_text(&path).await? else {
                break;
            };
            let header: ListHeader = serde_json::from_str(&text)
                .map_err(|e| self.unavailable(&format!("the answer is not a list: {e}")))?;
            parsers.push(tokio::task::spawn_blocking(move || parse(&text)));
            match header.metadata.continue_ {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        let mut out = Vec::new();
        for parser in parsers {
            let page = parser
                .await
                .map_err(|e| self.unavailable(&format!("the page parser failed: {e}")))?
                .map_err(|e| self.unavailable(&format!("a page that cannot be read: {e}")))?;
            out.extend(page);
        }
        Ok(out)
    }

    /// One host's entries, in order (empty when the server knows no such host).
    pub async fn read(&self, host_id: &str) -> Result<Vec<HistoryEntry>, K8sError> {
        let path = format!("{}/{}", self.base(), object_name(host_id));
        Ok(self
            .get::<Object>(&path)
            .await?
            .filter(|o| o.spec.host_id == host_id)
            .map(|o| o.spec.entries)
            .unwrap_or_default())
    }

    /// Every host's entries (a paginated list).
    async fn read_all(&self) -> Result<HashMap<String, Vec<HistoryEntry>>, K8sError> {
        let mut out = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("{}?limit={PAGE_SIZE}", self.base());
            if let Some(t) = &token {
                path.push_str("&continue=");
                path.push_str(&percent_encode(t));
            }
            let Some(list) = self.get::<List>(&path).await? else {
                return Ok(out);
            };
            for o in list.items {
                out.insert(o.spec.host_id, o.spec.entries);
            }
            match list.metadata.continue_ {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Every host's state as of `at`, folded by the history server (one list, a fraction of
    /// the histories' bytes), once it holds at least as many entries of each wanted host as
    /// asked for (the count its Host claims), or after a minute.
    pub async fn states_as_of(
        &self,
        at: Timestamp,
        wanted: &HashMap<&str, u64>,
    ) -> Result<HashMap<String, StateThen>, K8sError> {
        let started = Instant::now();
        loop {
            let mut out = HashMap::new();
            let mut token: Option<String> = None;
            loop {
                let mut path = format!("{}?limit={PAGE_SIZE}&asOf={}", self.base(), at.0);
                if let Some(t) = &token {
                    path.push_str("&continue=");
                    path.push_str(&percent_encode(t));
                }
                let Some(list) = self.get::<StateList>(&path).await? else {
                    break;
                };
                for item in list.items {
                    out.insert(
                        item.host_id,
                        StateThen {
                            record: item.status.map(|s| s.to_record()),
                            intervals: item.intervals,
                            entries: item.events,
                        },
                    );
                }
                match list.metadata.continue_ {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => break,
                }
            }
            let behind = wanted
                .iter()
                .filter(|(h, n)| out.get(**h).is_none_or(|s| s.entries < **n))
                .count();
            if behind == 0 || started.elapsed() > CATCH_UP {
                return Ok(out);
            }
            tracing::debug!(
                behind,
                "the history server has not read as far as the Hosts yet; asking again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every host's time-in-service point as of `at` (now when `None`), from the history
    /// server's index (`view=uptime`), which first reads the log up to where it ends when
    /// asked; hosts not observed yet at `at` are left out.
    /// Each page is parsed while the next is served.
    pub async fn uptime(&self, at: Option<Timestamp>) -> Result<Vec<ServicePoint>, K8sError> {
        let mut query = format!("view=uptime&limit={UPTIME_PAGE}");
        if let Some(at) = at {
            query.push_str(&format!("&asOf={}", at.0));
        }
        self.pages(query, |text| {
            let list: UptimeList = serde_json::from_str(text).map_err(|e| e.to_string())?;
            Ok(list.items.into_iter().filter_map(|i| i.point).collect())
        })
        .await
    }

    /// The entries of each wanted host, at least as many as it asks for (the count its Host
    /// claims) when the server catches up within a minute; fewer after that, for the caller
    /// to report.
    pub async fn read_many(
        &self,
        wanted: &HashMap<&str, u64>,
    ) -> Result<HashMap<String, Vec<HistoryEntry>>, K8sError> {
        let started = Instant::now();
        let mut out: HashMap<String, Vec<HistoryEntry>> = HashMap::new();
        let mut missing: HashSet<&str> = wanted.keys().copied().collect();
        loop {
            if missing.len() <= 20 {
                for host_id in &missing {
                    out.insert((*host_id).to_owned(), self.read(host_id).await?);
                }
            } else {
                let mut all = self.read_all().await?;
                for host_id in &missing {
                    out.insert(
                        (*host_id).to_owned(),
                        all.remove(*host_id).unwrap_or_default(),
                    );
                }
            }
            missing.retain(|h| (out[*h].len() as u64) < wanted[h]);
            if missing.is_empty() || started.elapsed() > CATCH_UP {
                return Ok(out);
            }
            tracing::debug!(
                behind = missing.len(),
                "the history server has not read as far as the Hosts yet; asking again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A page of `view=inventory`: Hosts whose labels are the people's alone, to which the
/// projector's own are added as their status gives them.
fn parse_inventory_page(text: &str) -> Result<Vec<ListedHost>, String> {
    let mut hosts = parse_page(text)?;
    for host in &mut hosts {
        host.labels.extend(derived_labels(&host.record));
    }
    Ok(hosts)
}

/// Percent-encodes a continue token for a query string.
fn percent_encode(token: &str) -> String {
    percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Where a namespace's readers get full host histories: the history API, or the HostHistory
/// chunks of a namespace that still keeps them (see [`crate::projection::HistoryHome`]).
#[derive(Clone)]
pub enum Histories {
    /// From the log, through the history API.
    Api(HistoryApi),
    /// From HostHistory chunks in etcd.
    Chunks(crate::HistoryStore),
}

impl Histories {
    /// Where `namespace` keeps its history.
    pub async fn of(client: &Client, namespace: &str) -> Result<Self, K8sError> {
        Ok(
            match crate::projection::history_home(client, namespace).await? {
                crate::projection::HistoryHome::Log => {
                    Histories::Api(HistoryApi::new(client.clone(), namespace))
                }
                crate::projection::HistoryHome::Chunks => {
                    Histories::Chunks(crate::HistoryStore::new(client.clone(), namespace))
                }
            },
        )
    }

    /// One host's entries, at least `count` of them when the history server catches up.
    pub async fn read(&self, host_id: &str, count: u64) -> Result<Vec<HistoryEntry>, K8sError> {
        match self {
            Histories::Chunks(store) => store.read(host_id).await,
            Histories::Api(api) => Ok(api
                .read_many(&HashMap::from([(host_id, count)]))
                .await?
                .remove(host_id)
                .unwrap_or_default()),
        }
    }

    /// The entries of each wanted host (host id → the count its Host claims).
    pub async fn read_many(
        &self,
        wanted: &HashMap<&str, u64>,
    ) -> Result<HashMap<String, Vec<HistoryEntry>>, K8sError> {
        match self {
            Histories::Chunks(store) => store.read_many(&wanted.keys().copied().collect()).await,
            Histories::Api(api) => api.read_many(wanted).await,
        }
    }
}

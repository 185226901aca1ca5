//! Where answers come from: the Host and HostHistory objects in the API server (the
//! default, fast), or the log itself (`--source log`: every event folded in memory). Both
//! yield [`HostView`]s built by the same fold, so the answers are the same.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use hostledger_kafka::KafkaClients;
use hostledger_projector::crd::{labels as derived_labels, object_name};
use hostledger_projector::daemon::Item;
use hostledger_projector::fold::{HostRecord, Position, ServiceInterval};
use hostledger_projector::history::{HOST_LABEL, HistoryEntry, HostHistory, host_label};
use hostledger_projector::{Host, ProjectorError};
use hostledger_schemas::{HostEvent, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams};

use crate::selector::LabelSelector;
use crate::timeline::{HistoryError, Timeline, Timelines, events_from_history, fold_until};

/// Where the answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Host and HostHistory objects.
    Objects,
    /// The events topic, folded in memory.
    Log,
}

/// One host as of the query time.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    /// The Host object's name.
    pub name: String,
    /// The fold's record as of the query time.
    pub record: HostRecord,
    /// Labels: the Host object's (now), or those the projector derives from the record.
    pub labels: BTreeMap<String, String>,
    /// The Host object's annotations (none from the log).
    pub annotations: BTreeMap<String, String>,
    /// Every service interval when the query asked for them; otherwise the record's recent ones.
    pub intervals: Vec<ServiceInterval>,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only hosts whose labels match.
    pub selector: LabelSelector,
    /// The inventory as it stood then (events observed up to this time); `None` is now.
    pub as_of: Option<Timestamp>,
    /// Every service interval of every host (reads HostHistory where the Host lists only the
    /// most recent ones).
    pub full_intervals: bool,
}

/// The answer to a query.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Selected hosts that existed at the query time, by host id.
    pub hosts: Vec<HostView>,
    /// The first observation of any host (all hosts, not only the selected ones); `None` when
    /// the inventory is empty. Known when the query has an as-of time.
    pub first_event_at: Option<Timestamp>,
}

/// What can go wrong reading the inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The API server failed or refused.
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    /// A Kafka operation failed.
    #[error(transparent)]
    Kafka(#[from] hostledger_kafka::KafkaError),
    /// Stored history is unusable.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The as-of time is before anything was observed.
    #[error(
        "--as-of {as_of} is before the first event in the inventory ({first}); nothing existed then"
    )]
    BeforeFirstEvent {
        /// The requested time.
        as_of: String,
        /// The first event's time.
        first: String,
    },
    /// The as-of time has not happened yet.
    #[error("--as-of {as_of} is in the future (it is now {now}); leave --as-of out for now")]
    InFuture {
        /// The requested time.
        as_of: String,
        /// The current time.
        now: String,
    },
    /// The inventory has nothing in it.
    #[error("the inventory is empty: {0}")]
    Empty(String),
    /// No host has that id or name.
    #[error("no host {host:?} in {place}; `hostledger hosts` lists them")]
    UnknownHost {
        /// What was asked for.
        host: String,
        /// Where it was looked for.
        place: String,
    },
}

/// Refuses as-of times in the future or before the first event.
pub fn check_as_of(
    as_of: Timestamp,
    first_event_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), InventoryError> {
    let show = crate::table::exact_time;
    if as_of > now {
        return Err(InventoryError::InFuture {
            as_of: show(as_of),
            now: show(now),
        });
    }
    match first_event_at {
        Some(first) if as_of < first => Err(InventoryError::BeforeFirstEvent {
            as_of: show(as_of),
            first: show(first),
        }),
        _ => Ok(()),
    }
}

fn list_error(namespace: &str, what: &str, error: kube::Error) -> ProjectorError {
    match &error {
        kube::Error::Api(status) if status.code == 404 => ProjectorError::NotInstalled {
            namespace: namespace.to_owned(),
            detail: status.message.clone(),
        },
        _ => ProjectorError::kube(format!("list {what} in namespace {namespace}"), error),
    }
}

/// Every object of a kind matching `params`, page by page.
async fn list_all<K>(
    api: &Api<K>,
    mut params: ListParams,
    namespace: &str,
    what: &str,
) -> Result<Vec<K>, ProjectorError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    params = params.limit(1000);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| list_error(namespace, what, e))?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// The parts of a Host object the queries read (its managed fields, the bulk of a listed
/// object, are skipped rather than parsed).
#[derive(serde::Deserialize)]
struct ListedHost {
    metadata: ListedMeta,
    status: Option<hostledger_projector::HostStatus>,
}

#[derive(serde::Deserialize)]
struct ListedMeta {
    name: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(serde::Deserialize)]
struct HostPage {
    items: Vec<ListedHost>,
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

/// Lists Hosts page by page, parsing each page (and reading its statuses back into records)
/// on a blocking thread while the API server prepares the next one.
async fn list_hosts(
    client: &Client,
    namespace: &str,
    mut params: ListParams,
) -> Result<Vec<(ListedMeta, HostRecord)>, ProjectorError> {
    use kube::Resource as _;
    let request = kube::core::Request::new(Host::url_path(&(), Some(namespace)));
    params = params.limit(2000);
    let mut parsers = Vec::new();
    loop {
        let http_request = request
            .list(&params)
            .map_err(|e| ProjectorError::Internal(format!("build a list request: {e}")))?;
        let text = client
            .request_text(http_request)
            .await
            .map_err(|e| list_error(namespace, "Hosts", e))?;
        let header: PageHeader = serde_json::from_str(&text).map_err(|e| {
            ProjectorError::Internal(format!("a list of Hosts that is not JSON: {e}"))
        })?;
        parsers.push(tokio::task::spawn_blocking(move || {
            let page: HostPage = serde_json::from_str(&text).map_err(|e| {
                ProjectorError::Internal(format!("a list of Hosts that cannot be read: {e}"))
            })?;
            let mut out = Vec::with_capacity(page.items.len());
            for host in page.items {
                let name = host.metadata.name.clone().unwrap_or_default();
                let Some(status) = &host.status else { continue };
                match status.to_record() {
                    Ok(record) => out.push((host.metadata, record)),
                    Err(error) => {
                        tracing::warn!(host = %name, %error, "skipping Host with unreadable status")
                    }
                }
            }
            Ok::<_, ProjectorError>(out)
        }));
        match header.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for parser in parsers {
        out.extend(
            parser
                .await
                .map_err(|e| ProjectorError::Internal(format!("Host parser task: {e}")))??,
        );
    }
    Ok(out)
}

/// Reads the inventory from the Host and HostHistory objects of `namespace`.
pub async fn from_objects(
    client: Client,
    namespace: &str,
    query: &Query,
) -> Result<Inventory, InventoryError> {
    let history_api: Api<HostHistory> = Api::namespaced(client.clone(), namespace);
    // Now: the API server selects on the Hosts' labels (people's own labels included).
    // As of a past time, labels must be those the host had then, so selection is local.
    let mut params = ListParams::default();
    if query.as_of.is_none() && !query.selector.is_empty() {
        params = params.labels(query.selector.as_str());
    }
    let current = list_hosts(&client, namespace, params).await?;
    let first_event_at = current.iter().map(|(_, r)| r.first_seen_at).min();

    // Hosts whose status is not the answer: changed after the as-of time, or with service
    // intervals older than the status keeps when every interval is wanted.
    let needs_history = |r: &HostRecord| {
        query.as_of.is_some_and(|t| r.last_observed_at > t)
            || (query.full_intervals && r.intervals_dropped > 0)
    };
    let wanted: HashSet<&str> = current
        .iter()
        .filter(|(_, r)| needs_history(r))
        .map(|(_, r)| r.host_id.as_str())
        .collect();
    let mut histories: HashMap<String, Vec<HistoryEntry>> = HashMap::new();
    if !wanted.is_empty() {
        let chunks = if wanted.len() <= 20 {
            let mut chunks = Vec::new();
            for host_id in &wanted {
                let params =
                    ListParams::default().labels(&format!("{HOST_LABEL}={}", host_label(host_id)));
                chunks.extend(list_all(&history_api, params, namespace, "HostHistory").await?);
            }
            chunks
        } else {
            list_all(
                &history_api,
                ListParams::default(),
                namespace,
                "HostHistory",
            )
            .await?
        };
        for chunk in chunks {
            if wanted.contains(chunk.spec.host_id.as_str()) {
                histories
                    .entry(chunk.spec.host_id)
                    .or_default()
                    .extend(chunk.spec.entries.into_values());
            }
        }
    }

    let mut hosts = Vec::with_capacity(current.len());
    for (meta, record) in current {
        let annotations = meta.annotations.unwrap_or_default();
        let (record, intervals, labels) = if needs_history(&record) {
            let mut entries = histories.remove(&record.host_id).unwrap_or_default();
            entries.sort_by_key(|e| e.seq);
            if (entries.len() as u64) < record.event_count {
                return Err(HistoryError {
                    host_id: record.host_id.clone(),
                    reason: format!(
                        "the Host counts {} events but its HostHistory holds {}",
                        record.event_count,
                        entries.len()
                    ),
                }
                .into());
            }
            entries.truncate(record.event_count as usize);
            let events = events_from_history(&record.host_id, &entries)?;
            let Some(timeline) = fold_until(&events, query.as_of) else {
                continue; // not observed yet at the as-of time
            };
            let labels = if query.as_of.is_some() {
                derived_labels(&timeline.record)
            } else {
                meta.labels.unwrap_or_default()
            };
            let intervals = timeline.intervals();
            (timeline.record, intervals, labels)
        } else {
            let labels = if query.as_of.is_some() {
                derived_labels(&record)
            } else {
                meta.labels.unwrap_or_default()
            };
            let intervals = record.intervals.clone();
            (record, intervals, labels)
        };
        if query.as_of.is_some() && !query.selector.matches(&labels) {
            continue;
        }
        hosts.push(HostView {
            name: meta.name.unwrap_or_else(|| object_name(&record.host_id)),
            record,
            labels,
            annotations,
            intervals,
        });
    }
    hosts.sort_by(|a, b| a.record.host_id.cmp(&b.record.host_id));
    Ok(Inventory {
        hosts,
        first_event_at,
    })
}

/// Reads the whole events topic (up to its end when the read starts) and calls `f` with each
/// usable event in log order (per partition). Unusable messages are counted and logged.
pub async fn for_each_event(
    kafka: &KafkaClients,
    mut f: impl FnMut(&HostEvent, Position),
) -> Result<LogStats, InventoryError> {
    let topic = kafka.settings().topics.events.clone();
    let check = kafka.clone();
    tokio::task::spawn_blocking(move || check.check_connection(Duration::from_secs(15)))
        .await
        .map_err(|e| ProjectorError::Internal(format!("Kafka check task: {e}")))??;
    let watermarks = {
        let k = kafka.clone();
        let t = topic.clone();
        tokio::task::spawn_blocking(move || k.watermarks(&t, Duration::from_secs(10)))
            .await
            .map_err(|e| ProjectorError::Internal(format!("watermarks task: {e}")))??
    };
    let ends: Vec<(i32, i64, i64)> = watermarks
        .iter()
        .map(|(p, (lo, hi))| (*p, *lo, *hi))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Item>>(8);
    let reader_kafka = kafka.clone();
    let reader = tokio::task::spawn_blocking(move || {
        hostledger_projector::replay::read_to_end(&reader_kafka, &topic, &ends, &tx)
    });
    let mut stats = LogStats::default();
    while let Some(chunk) = rx.recv().await {
        for item in chunk {
            stats.messages += 1;
            match item {
                Item::Event(event, position) => f(&event, position),
                Item::Poison {
                    reason, position, ..
                } => {
                    stats.unusable += 1;
                    tracing::warn!(partition = position.partition, offset = position.offset, error = %reason, "skipping unusable message (the projector dead-letters it)");
                }
            }
        }
    }
    reader
        .await
        .map_err(|e| ProjectorError::Internal(format!("log reader task: {e}")))??;
    Ok(stats)
}

/// Reads the whole events topic and folds it, keeping events observed up to `until`.
pub async fn fold_log(
    kafka: &KafkaClients,
    until: Option<Timestamp>,
) -> Result<(Timelines, LogStats), InventoryError> {
    let mut timelines = Timelines::new(until);
    let stats = for_each_event(kafka, |event, position| timelines.push(event, position)).await?;
    Ok((timelines, stats))
}

/// What reading the log met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Messages read.
    pub messages: u64,
    /// Messages that are not usable events (the projector dead-letters them).
    pub unusable: u64,
}

/// Reads the inventory by folding the log.
pub async fn from_log(kafka: &KafkaClients, query: &Query) -> Result<Inventory, InventoryError> {
    let (timelines, _) = fold_log(kafka, query.as_of).await?;
    let first_event_at = timelines.first_event_at();
    let mut hosts: Vec<HostView> = timelines
        .into_hosts()
        .into_values()
        .filter_map(|t: Timeline| {
            let labels = derived_labels(&t.record);
            if !query.selector.matches(&labels) {
                return None;
            }
            let intervals = if query.full_intervals {
                t.intervals()
            } else {
                t.record.intervals.clone()
            };
            Some(HostView {
                name: object_name(&t.record.host_id),
                record: t.record,
                labels,
                annotations: BTreeMap::new(),
                intervals,
            })
        })
        .collect();
    hosts.sort_by(|a, b| a.record.host_id.cmp(&b.record.host_id));
    Ok(Inventory {
        hosts,
        first_event_at,
    })
}

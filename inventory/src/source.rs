//! Where answers come from: the Host and HostHistory objects in the API server (the
//! default, fast), or the log itself (`--source log`: every event folded in memory). Both
//! yield [`HostView`]s built by the same fold, so the answers are the same.

use std::collections::{BTreeMap, HashMap};

use hostledger_k8s::history_api::StateThen;
use hostledger_k8s::{Histories, K8sError, ListedHost, list_hosts};
use hostledger_kafka::{Item, KafkaClients, KafkaError, LogReader, LogStats, ReadScope};
use hostledger_model::names::{labels as derived_labels, object_name};
use hostledger_model::time::exact_time;
use hostledger_model::timeline::{
    HistoryError, Timeline, Timelines, events_from_history, fold_until,
};
use hostledger_model::{HistoryEntry, HostRecord, Position, ServiceInterval};
use hostledger_schemas::{Fact, Timestamp};
use kube::Client;
use kube::api::ListParams;

use hostledger_model::selector::LabelSelector;

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
    K8s(#[from] K8sError),
    /// A Kafka operation failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
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
    /// More than one host has that name.
    #[error("{} hosts are named {host:?}; give a host id instead: {}", .ids.len(), .ids.join(", "))]
    AmbiguousHost {
        /// What was asked for.
        host: String,
        /// The ids of the hosts with that name.
        ids: Vec<String>,
    },
}

/// Refuses as-of times in the future or before the first event.
pub fn check_as_of(
    as_of: Timestamp,
    first_event_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), InventoryError> {
    let show = exact_time;
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

/// Hosts as they stand now, by host id: each with its labels and annotations and its record's
/// recent service intervals (what [`from_objects`] answers for now, from any list of Hosts).
pub fn views_now(listed: Vec<ListedHost>) -> Vec<HostView> {
    let mut hosts: Vec<HostView> = listed
        .into_iter()
        .map(|h| HostView {
            intervals: h.record.intervals.clone(),
            name: h.name,
            record: h.record,
            labels: h.labels,
            annotations: h.annotations,
        })
        .collect();
    hosts.sort_by(|a, b| a.record.host_id.cmp(&b.record.host_id));
    hosts
}

/// Reads the inventory from the Host and HostHistory objects of `namespace`.
pub async fn from_objects(
    client: Client,
    namespace: &str,
    query: &Query,
) -> Result<Inventory, InventoryError> {
    // Now: the API server selects on the Hosts' labels (people's own labels included).
    // As of a past time, labels must be those the host had then, so selection is local.
    let mut params = ListParams::default();
    if query.as_of.is_none() && !query.selector.is_empty() {
        params = params.labels(query.selector.as_str());
    }
    let current = list_hosts(client.clone(), namespace, params).await?;
    let first_event_at = current.iter().map(|h| h.record.first_seen_at).min();

    // Hosts whose status is not the answer: changed after the as-of time, or with service
    // intervals older than the status keeps when every interval is wanted.
    // A lock fact moves `downtime.since`, not `lastObservedAt`.
    let needs_history = |r: &HostRecord| {
        query
            .as_of
            .is_some_and(|t| r.last_observed_at.max(r.downtime.since) > t)
            || (query.full_intervals && r.intervals_dropped > 0)
    };
    let wanted: HashMap<&str, u64> = current
        .iter()
        .filter(|h| needs_history(&h.record))
        .map(|h| (h.record.host_id.as_str(), h.record.event_count))
        .collect();
    // As of a past time, the history server folds the fleet itself and answers with each
    // host's state then: one list instead of every entry of every host that changed since.
    let mut histories: HashMap<String, Vec<HistoryEntry>> = HashMap::new();
    let mut states: Option<HashMap<String, StateThen>> = None;
    if !wanted.is_empty() {
        match (Histories::of(&client, namespace).await?, query.as_of) {
            (Histories::Api(api), Some(at)) if !query.full_intervals => {
                states = Some(api.states_as_of(at, &wanted).await?);
            }
            (source, _) => histories = source.read_many(&wanted).await?,
        }
    }

    let mut hosts = Vec::with_capacity(current.len());
    for ListedHost {
        name,
        labels: current_labels,
        annotations,
        record,
        ..
    } in current
    {
        let (record, intervals, labels) =
            if let Some(states) = states.as_mut().filter(|_| needs_history(&record)) {
                let then = states.remove(&record.host_id);
                let held = then.as_ref().map_or(0, |t| t.entries);
                if held < record.event_count {
                    return Err(HistoryError {
                        host_id: record.host_id.clone(),
                        reason: format!(
                            "the Host counts {} events but the history server holds {held}",
                            record.event_count
                        ),
                    }
                    .into());
                }
                let Some(StateThen {
                    record: Some(then),
                    intervals,
                    ..
                }) = then
                else {
                    continue; // not observed yet at the as-of time
                };
                let labels = derived_labels(&then);
                (then, intervals, labels)
            } else if needs_history(&record) {
                let mut entries = histories.remove(&record.host_id).unwrap_or_default();
                if (entries.len() as u64) < record.event_count {
                    return Err(HistoryError {
                        host_id: record.host_id.clone(),
                        reason: format!(
                            "the Host counts {} events but its history holds {}",
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
                    current_labels
                };
                let intervals = timeline.intervals();
                (timeline.record, intervals, labels)
            } else {
                let labels = if query.as_of.is_some() {
                    derived_labels(&record)
                } else {
                    current_labels
                };
                let intervals = record.intervals.clone();
                (record, intervals, labels)
            };
        if query.as_of.is_some() && !query.selector.matches(&labels) {
            continue;
        }
        hosts.push(HostView {
            name,
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
/// usable fact (host event or lock fact) in log order (per partition). Unusable messages are
/// counted and logged.
pub async fn for_each_event(
    kafka: &KafkaClients,
    f: impl FnMut(&Fact, Position),
) -> Result<LogStats, InventoryError> {
    for_each_event_in(kafka, ReadScope::default(), f).await
}

/// [`for_each_event`] over the part of the log `scope` names.
pub async fn for_each_event_in(
    kafka: &KafkaClients,
    scope: ReadScope,
    mut f: impl FnMut(&Fact, Position),
) -> Result<LogStats, InventoryError> {
    let mut log = LogReader::open_scoped(kafka, scope).await?;
    while let Some(chunk) = log.next_chunk().await {
        for item in chunk {
            match item {
                Item::Event(event, position) => f(&Fact::Host(*event), position),
                Item::Lock(event, position) => f(&Fact::Lock(*event), position),
                Item::Poison {
                    reason, position, ..
                } => {
                    tracing::warn!(partition = position.partition, offset = position.offset, error = %reason, "skipping unusable message (the projector dead-letters it)");
                }
            }
        }
    }
    Ok(log.finish().await?)
}

/// Reads the whole events topic and folds it, keeping events observed up to `until`.
pub async fn fold_log(
    kafka: &KafkaClients,
    until: Option<Timestamp>,
) -> Result<(Timelines, LogStats), InventoryError> {
    let mut timelines = Timelines::new(until);
    let stats = for_each_event(kafka, |fact, position| timelines.push_fact(fact, position)).await?;
    Ok((timelines, stats))
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

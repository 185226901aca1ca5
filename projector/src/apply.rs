//! Folding events into cached host records and writing every touched host once: the part of
//! the projector that the live daemon and replay share.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use hostledger_k8s::{HistoryStore, HostStore, K8sError, StoredHost, WriteReport};
use hostledger_model::fold::apply_to;
use hostledger_model::history::{
    chunk_of, entry_key, first_entry, fold_existing, fold_lock_existing,
};
use hostledger_model::names::chunk_name;
use hostledger_model::{HistoryEntry, HostRecord, Outcome, Position};
use hostledger_schemas::{HostEvent, LockEvent, Timestamp};

use crate::error::ProjectorError;

/// Counters of what an [`Applier`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Events folded into a record.
    pub applied: u64,
    /// Events already applied (at or below a Host's last position), or filtered by time.
    pub skipped: u64,
    /// Hosts written (Host and its new history), one per touched host per flush.
    pub hosts_written: u64,
    /// API write requests for Hosts (metadata and status), retries included.
    pub host_requests: u64,
    /// API write requests for HostHistory chunks, retries included.
    pub history_requests: u64,
}

impl ApplyStats {
    /// Every API write request.
    pub fn api_writes(&self) -> u64 {
        self.host_requests + self.history_requests
    }
}

/// Host records cached from the API server, folded forward, and written back in bulk.
pub struct Applier {
    store: HostStore,
    /// HostHistory chunks, in a namespace whose history is still kept in etcd (written by an
    /// earlier version, not yet migrated); `None` when the log is the history.
    history: Option<HistoryStore>,
    hosts: HashMap<String, StoredHost>,
    chunks: HashSet<String>,
    dirty: Vec<String>,
    dirty_set: HashSet<String>,
    /// Entries for HostHistory chunks, kept only where the namespace still has them.
    pending: HashMap<String, BTreeMap<u64, HistoryEntry>>,
    /// Events folded since the last flush.
    pending_count: usize,
    max_in_flight: usize,
    until: Option<Timestamp>,
    /// What this applier has done so far.
    pub stats: ApplyStats,
}

impl Applier {
    /// Loads every Host of the namespace (and the names of its HostHistory chunks, when it
    /// keeps history in them).
    pub async fn load(
        store: HostStore,
        history: Option<HistoryStore>,
        max_in_flight: usize,
    ) -> Result<Self, ProjectorError> {
        let hosts = store.load_all().await?;
        let chunks = match &history {
            Some(h) => h.existing_chunks().await?,
            None => HashSet::new(),
        };
        Ok(Applier {
            store,
            history,
            hosts,
            chunks,
            dirty: Vec::new(),
            dirty_set: HashSet::new(),
            pending: HashMap::new(),
            pending_count: 0,
            max_in_flight: max_in_flight.max(1),
            until: None,
            stats: ApplyStats::default(),
        })
    }

    /// Ignore events observed after `until` (to build the inventory as it stood then).
    pub fn with_until(mut self, until: Option<Timestamp>) -> Self {
        self.until = until;
        self
    }

    /// Reads every Host again (after a rebalance, another replica may have written hosts of
    /// the partitions this one now owns). Must not be called with unwritten changes.
    pub async fn reload(&mut self) -> Result<(), ProjectorError> {
        debug_assert!(self.dirty.is_empty(), "reload with unwritten changes");
        self.hosts = self.store.load_all().await?;
        if let Some(h) = &self.history {
            self.chunks = h.existing_chunks().await?;
        }
        Ok(())
    }

    /// Whether history entries are written to HostHistory chunks.
    pub fn writes_chunks(&self) -> bool {
        self.history.is_some()
    }

    /// Stops writing HostHistory chunks (the namespace was migrated: its history is the log's).
    pub fn stop_writing_chunks(&mut self) {
        self.history = None;
        self.chunks.clear();
    }

    /// Hosts in the cache.
    pub fn hosts(&self) -> &HashMap<String, StoredHost> {
        &self.hosts
    }

    /// Events folded but not yet written.
    pub fn pending_events(&self) -> usize {
        self.pending_count
    }

    /// Hosts with unwritten changes.
    pub fn dirty_hosts(&self) -> usize {
        self.dirty.len()
    }

    /// Folds one event into its host's cached record (and, where the namespace keeps
    /// HostHistory chunks, queues its history entry).
    pub fn fold(&mut self, event: &HostEvent, position: Position) -> Outcome {
        if self.until.is_some_and(|until| event.observed_at > until) {
            self.stats.skipped += 1;
            return Outcome::Duplicate;
        }
        let chunks = self.history.is_some();
        // Without chunks no entry is made: the changes and the entry cost more than the fold.
        let applied = match self.hosts.get_mut(&event.host_id) {
            Some(stored) if chunks => fold_existing(&mut stored.record, event, position).map(Some),
            Some(stored) => {
                (apply_to(&mut stored.record, event, position) == Outcome::Applied).then_some(None)
            }
            None => {
                let (record, entry) = if chunks {
                    let (record, entry) = first_entry(event, position);
                    (record, Some(entry))
                } else {
                    (HostRecord::first(event, position), None)
                };
                let labels = BTreeMap::new();
                self.hosts
                    .insert(event.host_id.clone(), StoredHost { record, labels });
                Some(entry)
            }
        };
        self.queue(&event.host_id, applied)
    }

    /// Folds one lock fact into its host's cached record and queues its history entry. A
    /// fact about a host not projected here is skipped (its first event comes before it in
    /// the same partition, so that is a host of another namespace's inventory or time).
    pub fn fold_lock(&mut self, event: &LockEvent, position: Position) -> Outcome {
        if self.until.is_some_and(|until| event.at > until) {
            self.stats.skipped += 1;
            return Outcome::Duplicate;
        }
        let Some(stored) = self.hosts.get_mut(&event.host_id) else {
            self.stats.skipped += 1;
            return Outcome::OtherHost;
        };
        let before = stored.record.last_lock_position;
        let entry = fold_lock_existing(&mut stored.record, event, position);
        if entry.is_none() && stored.record.last_lock_position != before {
            // A fact that changed nothing still moves the host's position: write it, so a
            // restart does not fold it again.
            self.mark_dirty(&event.host_id);
        }
        self.queue(&event.host_id, entry.map(Some))
    }

    /// Counts an applied event (`Some`, with its history entry when chunks are written) and
    /// marks its host for the next flush; `None` is an event that changed nothing.
    fn queue(&mut self, host_id: &str, applied: Option<Option<HistoryEntry>>) -> Outcome {
        let Some(entry) = applied else {
            self.stats.skipped += 1;
            return Outcome::Duplicate;
        };
        self.stats.applied += 1;
        self.pending_count += 1;
        if let Some(entry) = entry.filter(|_| self.history.is_some()) {
            let seq = u64::try_from(entry.seq).unwrap_or(0);
            self.pending
                .entry(host_id.to_owned())
                .or_default()
                .insert(seq, entry);
        }
        self.mark_dirty(host_id);
        Outcome::Applied
    }

    /// Queues a host for the next flush, once.
    fn mark_dirty(&mut self, host_id: &str) {
        if !self.dirty_set.contains(host_id) {
            self.dirty_set.insert(host_id.to_owned());
            self.dirty.push(host_id.to_owned());
        }
    }

    /// Writes every host touched since the last flush: its new history entries first, then
    /// the Host. Returns once all writes succeeded.
    pub async fn flush(&mut self) -> Result<(), ProjectorError> {
        let dirty = std::mem::take(&mut self.dirty);
        self.dirty_set.clear();
        let mut pending = std::mem::take(&mut self.pending);
        self.pending_count = 0;
        let jobs: Vec<(String, BTreeMap<u64, HistoryEntry>)> = dirty
            .into_iter()
            .map(|h| {
                let p = pending.remove(&h).unwrap_or_default();
                (h, p)
            })
            .collect();
        let store = &self.store;
        let history = self.history.as_ref();
        let hosts = &self.hosts;
        let chunks = &self.chunks;
        let results: Vec<(String, WriteReport, u64, Vec<String>)> = futures::stream::iter(jobs)
            .map(|(host_id, entries)| async move {
                let stored = &hosts[&host_id];
                let mut by_chunk: BTreeMap<u64, BTreeMap<String, HistoryEntry>> = BTreeMap::new();
                for (seq, e) in entries {
                    by_chunk
                        .entry(chunk_of(seq))
                        .or_default()
                        .insert(entry_key(seq), e);
                }
                // History first (concurrently with creating the object), then the status
                // that claims it: a crash in between leaves history the status does not
                // count yet, which the next write rewrites idempotently.
                let previous = (!stored.labels.is_empty()).then_some(&stored.labels);
                let write_history = async {
                    let mut requests = 0;
                    let mut created = Vec::new();
                    let Some(history) = history else {
                        return Ok::<_, K8sError>((requests, created));
                    };
                    for (chunk, entries) in &by_chunk {
                        let name = chunk_name(&host_id, *chunk);
                        let exists = chunks.contains(&name);
                        requests += history.append(&host_id, *chunk, entries, exists).await?;
                        if !exists {
                            created.push(name);
                        }
                    }
                    Ok::<_, K8sError>((requests, created))
                };
                let ((history_requests, created), mut report) = futures::try_join!(
                    write_history,
                    store.write_metadata(&stored.record, previous)
                )?;
                report.requests += store.write_status(&stored.record, &report.labels).await?;
                Ok::<_, ProjectorError>((host_id, report, history_requests, created))
            })
            .buffer_unordered(self.max_in_flight)
            .try_collect()
            .await?;
        for (host_id, report, history_requests, created) in results {
            self.stats.hosts_written += 1;
            self.stats.host_requests += report.requests;
            self.stats.history_requests += history_requests;
            self.chunks.extend(created);
            if let Some(stored) = self.hosts.get_mut(&host_id) {
                stored.labels = report.labels;
            }
        }
        Ok(())
    }
}

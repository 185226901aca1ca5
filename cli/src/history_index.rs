//! The history server's index of one log, on local disk (an embedded redb database per log):
//! every host's entries keyed by (Host object name, sequence number), each host's record after
//! its last entry, and the next offset of every partition, written together in one
//! transaction per chunk of the log. A restart goes on from those offsets; a lost file is
//! rebuilt from offset 0. Memory holds the records only (bounded per host), not the entries.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hostledger_inventory::history_api::{HostPage, IndexedHost, Page, fold_first, fold_into};
use hostledger_model::names::object_name;
use hostledger_model::{HistoryEntry, HostRecord, HostStatus, Position};
use hostledger_schemas::{Fact, Timestamp};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Entries: (object name, seq) → the entry's JSON.
const ENTRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("entries");
/// Records: object name → the record as a Host status's JSON.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// Page cache of each index.
const CACHE_BYTES: usize = 64 << 20;

/// Partition → the next offset to read.
const OFFSETS: TableDefinition<i32, i64> = TableDefinition::new("offsets");

/// One log's index on disk.
pub struct DiskIndex {
    db: Database,
    path: PathBuf,
    until: Option<Timestamp>,
    records: BTreeMap<String, HostRecord>,
    offsets: HashMap<i32, i64>,
    /// Facts folded into it (all time).
    pub facts: u64,
}

/// The file of a log's index in `dir`: the topic's name, and the `--until` time of a replay.
pub fn index_path(dir: &Path, topic: &str, until: Option<Timestamp>) -> PathBuf {
    let name = match until {
        Some(t) => format!("{topic}@{}.redb", t.0),
        None => format!("{topic}.redb"),
    };
    dir.join(name)
}

impl DiskIndex {
    /// Opens (or creates) the index at `path`, folding only facts up to `until`.
    pub fn open(path: &Path, until: Option<Timestamp>) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the index directory {}", dir.display()))?;
        }
        // redb caches up to a GiB of pages by default; the entries are read a host at a time.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .with_context(|| {
                format!(
                    "cannot open the history index {} (delete it to rebuild it from the log)",
                    path.display()
                )
            })?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(RECORDS)?;
        txn.open_table(OFFSETS)?;
        txn.commit()?;
        let mut records = BTreeMap::new();
        let mut offsets = HashMap::new();
        let mut facts = 0;
        {
            let read = db.begin_read()?;
            for row in read.open_table(RECORDS)?.iter()? {
                let (name, json) = row?;
                let status: HostStatus =
                    serde_json::from_slice(json.value()).with_context(|| {
                        format!("the history index {} is unreadable", path.display())
                    })?;
                let record = status.to_record();
                facts += record.event_count;
                records.insert(name.value().to_owned(), record);
            }
            for row in read.open_table(OFFSETS)?.iter()? {
                let (partition, offset) = row?;
                offsets.insert(partition.value(), offset.value());
            }
        }
        Ok(DiskIndex {
            db,
            path: path.to_owned(),
            until,
            records,
            offsets,
            facts,
        })
    }

    /// Where each partition's reading goes on from.
    pub fn offsets(&self) -> &HashMap<i32, i64> {
        &self.offsets
    }

    /// Hosts indexed.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no host is indexed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Folds a chunk of the log (facts, and the positions of every message read, usable or
    /// not) and stores it with the offsets it reaches, in one transaction.
    pub fn apply(&mut self, facts: &[(Fact, Position)], read: &[Position]) -> Result<()> {
        let mut entries: Vec<(String, HistoryEntry)> = Vec::new();
        let mut touched: BTreeMap<String, ()> = BTreeMap::new();
        for (fact, position) in facts {
            if self.until.is_some_and(|until| fact.at() > until) {
                continue;
            }
            let name = object_name(fact.host_id());
            let entry = match self.records.get_mut(&name) {
                Some(record) => fold_into(record, fact, *position),
                None => fold_first(fact, *position).map(|(record, entry)| {
                    self.records.insert(name.clone(), record);
                    entry
                }),
            };
            if let Some(entry) = entry {
                touched.insert(name.clone(), ());
                entries.push((name, entry));
            }
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            for (name, entry) in &entries {
                let seq = u64::try_from(entry.seq).unwrap_or(0);
                table.insert((name.as_str(), seq), serde_json::to_vec(entry)?.as_slice())?;
            }
            let mut table = txn.open_table(RECORDS)?;
            for name in touched.keys() {
                if let Some(record) = self.records.get(name) {
                    let json = serde_json::to_vec(&HostStatus::from_record(record))?;
                    table.insert(name.as_str(), json.as_slice())?;
                }
            }
            let mut table = txn.open_table(OFFSETS)?;
            for p in read {
                let next = self.offsets.entry(p.partition).or_insert(0);
                *next = (*next).max(p.offset + 1);
                table.insert(p.partition, *next)?;
            }
        }
        txn.commit()
            .with_context(|| format!("cannot write the history index {}", self.path.display()))?;
        self.facts += entries.len() as u64;
        Ok(())
    }

    /// One host's record and every entry, by object name.
    pub fn get(&self, name: &str) -> Result<Option<IndexedHost>> {
        let Some(record) = self.records.get(name) else {
            return Ok(None);
        };
        let read = self.db.begin_read()?;
        let table = read.open_table(ENTRIES)?;
        let mut entries = Vec::with_capacity(usize::try_from(record.event_count).unwrap_or(0));
        for row in table.range((name, 0)..=(name, u64::MAX))? {
            let (_, json) = row?;
            entries.push(serde_json::from_slice(json.value()).with_context(|| {
                format!("the history index {} is unreadable", self.path.display())
            })?);
        }
        Ok(Some(IndexedHost {
            record: record.clone(),
            entries,
        }))
    }

    /// A page of hosts (by object name, after `page.after`, at most `page.limit`), and the
    /// continue token when more follow.
    pub fn page(&self, page: &Page) -> Result<HostPage> {
        let limit = page.limit.unwrap_or(usize::MAX);
        let start = match page.after.as_deref() {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        let names: Vec<&String> = self
            .records
            .range((start, Bound::Unbounded))
            .map(|(n, _)| n)
            .take(limit.saturating_add(1))
            .collect();
        let more = names.len() > limit;
        let mut items = Vec::with_capacity(names.len().min(limit));
        for name in names.into_iter().take(limit) {
            if let Some(host) = self.get(name)? {
                items.push((name.clone(), host));
            }
        }
        let next = more.then(|| items.last().map(|(n, _)| n.clone())).flatten();
        Ok((items, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::fixtures::EventBuilder;
    use hostledger_schemas::Lifecycle;

    fn facts(host: &str, n: usize, from: i64) -> Vec<(Fact, Position)> {
        (0..n)
            .map(|i| {
                let e = EventBuilder::new(host)
                    .id(format!("{host}-{i}"))
                    .name("a")
                    .lifecycle(if i % 2 == 0 {
                        Lifecycle::InService
                    } else {
                        Lifecycle::OutOfService
                    })
                    .provider_status(&format!("s{i}"))
                    .at(Timestamp(1_767_225_600_000_000 + i as i64 * 60_000_000))
                    .build();
                let p = Position {
                    partition: 0,
                    offset: from + i as i64,
                };
                (Fact::Host(e), p)
            })
            .collect()
    }

    #[test]
    fn survives_a_restart_and_folds_like_the_memory_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = index_path(dir.path(), "t.host-events", None);
        let first = facts("dc/a/1", 3, 0);
        let mut memory = hostledger_inventory::history_api::HistoryIndex::default();
        {
            let mut index = DiskIndex::open(&path, None).expect("opens");
            let read: Vec<Position> = first.iter().map(|(_, p)| *p).collect();
            index.apply(&first, &read).expect("applies");
            // The same chunk again (a redelivery) adds nothing.
            index.apply(&first, &read).expect("applies");
            assert_eq!(index.facts, 3);
        }
        for (f, p) in &first {
            memory.push(f, *p);
        }
        let index = DiskIndex::open(&path, None).expect("opens again");
        assert_eq!(index.offsets().get(&0), Some(&3), "goes on after the chunk");
        assert_eq!(index.len(), 1);
        let name = object_name("dc/a/1");
        let host = index.get(&name).expect("reads").expect("indexed");
        assert_eq!(&host, memory.get(&name).expect("in memory"));
        let (items, next) = index
            .page(&Page {
                limit: Some(1),
                ..Page::default()
            })
            .expect("pages");
        assert_eq!((items.len(), next), (1, None));
        assert!(index.get("nobody").expect("reads").is_none());
    }

    #[test]
    fn an_until_index_stops_at_its_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let until = Timestamp(1_767_225_600_000_000 + 60_000_000);
        let path = index_path(dir.path(), "t.host-events", Some(until));
        assert!(
            path.to_string_lossy()
                .ends_with("t.host-events@1767225660000000.redb")
        );
        let mut index = DiskIndex::open(&path, Some(until)).expect("opens");
        let all = facts("dc/a/1", 4, 0);
        let read: Vec<Position> = all.iter().map(|(_, p)| *p).collect();
        index.apply(&all, &read).expect("applies");
        let host = index
            .get(&object_name("dc/a/1"))
            .expect("reads")
            .expect("indexed");
        assert_eq!(host.entries.len(), 2);
        assert_eq!(
            index.offsets().get(&0),
            Some(&4),
            "read past its time all the same"
        );
    }
}

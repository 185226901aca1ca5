//! The history server's index of one log, on local disk, in two embedded redb databases per
//! log. The entries file holds every host's entries keyed by (Host object name, sequence
//! number), each host's record after its last entry and the next offset of every partition,
//! written in one transaction per chunk of the log. The points file beside it holds each
//! host's clock after each entry, packed [`POINTS_PER_BLOCK`] to a block keyed by its first
//! point's time, and its names where they change: uptime as of a past time is one block per
//! host there, among clocks only, not between the entries' pages. One point a key made the
//! file 4 GiB at 10 million events (its B-tree's pages half full from 100,000 hosts appended
//! to at once), so lookups missed every cache. A chunk's points are written before its
//! entries and offsets; a crash between the two leaves points that the log gives again, and
//! a block takes only points newer than its last. A restart goes on from the offsets; a
//! lost file, or one written in an older layout, is rebuilt from offset 0. Memory holds the
//! records only (bounded per host), not the entries.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hostledger_inventory::history_api::{HostPage, IndexedHost, Page, fold_first, fold_into};
use hostledger_model::clock::CLOCK_BYTES;
use hostledger_model::names::object_name;
use hostledger_model::timeline::{events_from_history, fold_until};
use hostledger_model::{
    HistoryEntry, HostNames, HostRecord, HostStatus, Position, ServiceClock, ServicePoint,
};
use hostledger_schemas::{Fact, Timestamp};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

/// Entries: (object name, seq) → the entry's JSON.
const ENTRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("entries");
/// Records: object name → the record as a Host status's JSON.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// Page cache of each entries file (read a host at a time).
const CACHE_BYTES: usize = 64 << 20;
/// Page cache of each points file (read a lookup per host for a whole fleet at once; the
/// file was 4 GiB at 100,000 hosts of 100 entries, so the page cache holds the rest).
const POINTS_CACHE_BYTES: usize = 256 << 20;

/// Partition → the next offset to read.
const OFFSETS: TableDefinition<i32, i64> = TableDefinition::new("offsets");
/// Clocks: (object name, the time and seq of the block's first point) → a block of points,
/// each the fact's time and seq and the host's [`ServiceClock`] after that entry
/// ([`POINT_BYTES`]); written while the host's facts come in time order.
const CLOCKS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("clocks");
/// Points in a block: a block is rewritten with each point added to it, so this bounds the
/// bytes written per fact (about 1 KiB on average) and the bytes read per lookup.
const POINTS_PER_BLOCK: usize = 32;
/// A point in a block: time (i64), seq (u64), clock, little-endian.
const POINT_BYTES: usize = 16 + CLOCK_BYTES;
/// Names: (object name, the fact's time, seq) → the host's [`HostNames`] from that entry on,
/// as JSON; written when they change (and with a host's first entry).
const NAMES: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("names");
/// Order: object name → (the latest fact time, whether every fact came in time order).
const ORDER: TableDefinition<&str, (i64, bool)> = TableDefinition::new("order");
/// Layout: "format" → [`FORMAT`].
const LAYOUT: TableDefinition<&str, u64> = TableDefinition::new("layout");
/// How often a write is made durable (the others are not synced to disk on their own).
const DURABLE_EVERY: Duration = Duration::from_secs(5);
/// The layout this version writes; an index in another is rebuilt from the log (3: the
/// points in a file of their own; 4: in blocks).
const FORMAT: u64 = 4;

/// One host's time in service as of a time: its object name, the entries its history holds,
/// and its point then (`None`: not observed yet then).
pub type UptimeItem = (String, u64, Option<ServicePoint>);

/// One log's index on disk.
pub struct DiskIndex {
    db: Database,
    /// Clocks and names (the points file).
    points: Database,
    path: PathBuf,
    until: Option<Timestamp>,
    records: BTreeMap<String, HostRecord>,
    /// Per host: the latest fact time, and whether its facts came in time order (then its
    /// state at any time is the one after its last fact up to then, a point).
    order: HashMap<String, (i64, bool)>,
    offsets: HashMap<i32, i64>,
    last_durable: Instant,
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

/// The points file beside the entries file at `path` (`….redb` → `….points.redb`).
pub fn points_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".redb").unwrap_or(&name);
    path.with_file_name(format!("{stem}.points.redb"))
}

impl DiskIndex {
    /// Opens (or creates) the index at `path`, folding only facts up to `until`.
    pub fn open(path: &Path, until: Option<Timestamp>) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the index directory {}", dir.display()))?;
        }
        let points_file = points_path(path);
        let had_points = points_file.exists();
        let mut db = create(path, CACHE_BYTES)?;
        let mut points = create(&points_file, POINTS_CACHE_BYTES)?;
        let older = layout(&db)? != Some(FORMAT);
        if (older || !had_points) && !is_empty(&db)? {
            if older {
                tracing::info!(index = %path.display(), "the history index was written in an older layout; rebuilding it from the log");
            } else {
                tracing::info!(index = %points_file.display(), "the history index's points file is missing; rebuilding the index from the log");
            }
            drop((db, points));
            for file in [path, points_file.as_path()] {
                std::fs::remove_file(file).with_context(|| {
                    format!("cannot remove the old history index {}", file.display())
                })?;
            }
            db = create(path, CACHE_BYTES)?;
            points = create(&points_file, POINTS_CACHE_BYTES)?;
        }
        let txn = points.begin_write()?;
        txn.open_table(CLOCKS)?;
        txn.open_table(NAMES)?;
        txn.commit()?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(RECORDS)?;
        txn.open_table(OFFSETS)?;
        txn.open_table(ORDER)?;
        txn.open_table(LAYOUT)?.insert("format", FORMAT)?;
        txn.commit()?;
        let mut records = BTreeMap::new();
        let mut order = HashMap::new();
        let mut offsets = HashMap::new();
        let mut facts = 0;
        {
            let read = db.begin_read()?;
            for row in read.open_table(ORDER)?.iter()? {
                let (name, value) = row?;
                order.insert(name.value().to_owned(), value.value());
            }
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
            points,
            path: path.to_owned(),
            until,
            records,
            order,
            offsets,
            last_durable: Instant::now(),
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
        let mut clocks: Vec<(String, i64, u64, [u8; CLOCK_BYTES])> = Vec::new();
        let mut names: Vec<(String, i64, u64, Vec<u8>)> = Vec::new();
        let mut touched: BTreeMap<String, ()> = BTreeMap::new();
        for (fact, position) in facts {
            let at = fact.at();
            if self.until.is_some_and(|until| at > until) {
                continue;
            }
            let name = object_name(fact.host_id());
            let before = self.records.get(&name).map(HostNames::of);
            let entry = match self.records.get_mut(&name) {
                Some(record) => fold_into(record, fact, *position),
                None => fold_first(fact, *position).map(|(record, entry)| {
                    self.records.insert(name.clone(), record);
                    entry
                }),
            };
            let Some(entry) = entry else { continue };
            let order = self.order.entry(name.clone()).or_insert((at.0, true));
            order.1 &= at.0 >= order.0;
            order.0 = order.0.max(at.0);
            if order.1
                && let Some(record) = self.records.get(&name)
            {
                let seq = u64::try_from(entry.seq).unwrap_or(0);
                clocks.push((name.clone(), at.0, seq, record.clock().to_bytes()));
                if before.is_none_or(|b| !b.are_of(record)) {
                    let json = serde_json::to_vec(&HostNames::of(record))?;
                    names.push((name.clone(), at.0, seq, json));
                }
            }
            touched.insert(name.clone(), ());
            entries.push((name, entry));
        }
        // Durable every few seconds: a crash loses at most those, which the log gives again
        // (the offsets are in the entries file's transactions, written after the points').
        let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        let unwritable = || format!("cannot write the history index {}", self.path.display());
        let mut txn = self.points.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(CLOCKS)?;
            let mut by_host: BTreeMap<&str, Vec<NewPoint<'_>>> = BTreeMap::new();
            for (name, at, seq, clock) in &clocks {
                by_host
                    .entry(name.as_str())
                    .or_default()
                    .push((*at, *seq, clock));
            }
            for (name, points) in by_host {
                append_points(&mut table, name, &points)?;
            }
            let mut table = txn.open_table(NAMES)?;
            for (name, at, seq, json) in &names {
                table.insert((name.as_str(), *at, *seq), json.as_slice())?;
            }
        }
        txn.commit().with_context(unwritable)?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            for (name, entry) in &entries {
                let seq = u64::try_from(entry.seq).unwrap_or(0);
                table.insert((name.as_str(), seq), serde_json::to_vec(entry)?.as_slice())?;
            }
            let mut table = txn.open_table(ORDER)?;
            for name in touched.keys() {
                if let Some(order) = self.order.get(name) {
                    table.insert(name.as_str(), *order)?;
                }
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
        txn.commit().with_context(unwritable)?;
        if durable {
            self.last_durable = Instant::now();
        }
        self.facts += entries.len() as u64;
        Ok(())
    }

    /// One host's record (its status now), by object name.
    pub fn record(&self, name: &str) -> Option<&HostRecord> {
        self.records.get(name)
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

    /// The names of a page of hosts (by object name, after `page.after`, at most
    /// `page.limit`), and the continue token when more follow.
    fn names(&self, page: &Page) -> (Vec<&String>, Option<String>) {
        let limit = page.limit.unwrap_or(usize::MAX);
        let start = match page.after.as_deref() {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        let mut names: Vec<&String> = self
            .records
            .range((start, Bound::Unbounded))
            .map(|(n, _)| n)
            .take(limit.saturating_add(1))
            .collect();
        let more = names.len() > limit;
        names.truncate(limit);
        let next = more.then(|| names.last().map(|n| (*n).clone())).flatten();
        (names, next)
    }

    /// A page of hosts (by object name, after `page.after`, at most `page.limit`), and the
    /// continue token when more follow.
    pub fn page(&self, page: &Page) -> Result<HostPage> {
        let (names, next) = self.names(page);
        let mut items = Vec::with_capacity(names.len());
        for name in names {
            if let Some(host) = self.get(name)? {
                items.push((name.clone(), host));
            }
        }
        Ok((items, next))
    }

    /// A page of hosts' points as of `page.as_of` (now when `None`): the record's for a host
    /// whose last fact is not later, one lookup for a host whose facts came in time order,
    /// a fold of its history for the others.
    pub fn uptime_page(&self, page: &Page) -> Result<(Vec<UptimeItem>, Option<String>)> {
        let (names, next) = self.names(page);
        let read = self.points.begin_read()?;
        let clocks = read.open_table(CLOCKS)?;
        let host_names = read.open_table(NAMES)?;
        let unreadable = || format!("the history index {} is unreadable", self.path.display());
        let mut items = Vec::with_capacity(names.len());
        for name in names {
            let Some(record) = self.records.get(name) else {
                continue;
            };
            let (last, ordered) = self.order.get(name).copied().unwrap_or((i64::MAX, false));
            let point = match page.as_of {
                None => Some(ServicePoint::of(record)),
                Some(at) if ordered && last <= at.0 => Some(ServicePoint::of(record)),
                Some(at) if ordered => {
                    let upto = (name.as_str(), i64::MIN, 0)..=(name.as_str(), at.0, u64::MAX);
                    match clocks.range(upto.clone())?.next_back().transpose()? {
                        Some((_, block)) => {
                            let clock = last_point_until(block.value(), at.0)
                                .and_then(ServiceClock::from_bytes)
                                .with_context(unreadable)?;
                            let row = host_names
                                .range(upto)?
                                .next_back()
                                .with_context(unreadable)??;
                            let names: HostNames =
                                serde_json::from_slice(row.1.value()).with_context(unreadable)?;
                            Some(ServicePoint { names, clock })
                        }
                        None => None,
                    }
                }
                Some(at) => match self.get(name)? {
                    Some(host) => {
                        let events = events_from_history(&host.record.host_id, &host.entries)?;
                        fold_until(&events, Some(at)).map(|t| ServicePoint::of(&t.record))
                    }
                    None => None,
                },
            };
            items.push((name.clone(), record.event_count, point));
        }
        Ok((items, next))
    }
}

/// A point to add to a host's blocks: the fact's time, its seq, the clock after it.
type NewPoint<'a> = (i64, u64, &'a [u8; CLOCK_BYTES]);

/// A point's time and seq.
fn point_key(point: &[u8]) -> (i64, u64) {
    let at = i64::from_le_bytes(point[..8].try_into().expect("8 bytes"));
    let seq = u64::from_le_bytes(point[8..16].try_into().expect("8 bytes"));
    (at, seq)
}

/// The clock of the last point of `block` at or before `at` (the block's first point is).
fn last_point_until(block: &[u8], at: i64) -> Option<&[u8]> {
    block
        .chunks_exact(POINT_BYTES)
        .take_while(|p| point_key(p).0 <= at)
        .last()
        .map(|p| &p[16..])
}

/// Adds a host's points (in its time order) to its last block, and to new blocks when that is
/// full. Points not newer than the last one stored (a chunk read again after a crash) are
/// skipped.
fn append_points(
    table: &mut redb::Table<(&str, i64, u64), &[u8]>,
    name: &str,
    points: &[NewPoint<'_>],
) -> Result<()> {
    let last = table
        .range((name, i64::MIN, 0)..=(name, i64::MAX, u64::MAX))?
        .next_back()
        .transpose()?
        .map(|(key, block)| {
            let (_, at, seq) = key.value();
            ((at, seq), block.value().to_vec())
        });
    let Some((mut key, mut block)) =
        last.or_else(|| points.first().map(|(at, seq, _)| ((*at, *seq), Vec::new())))
    else {
        return Ok(());
    };
    let mut newest = block
        .chunks_exact(POINT_BYTES)
        .last()
        .map(|p| point_key(p).1);
    for (at, seq, clock) in points {
        if newest.is_some_and(|n| *seq <= n) {
            continue;
        }
        if block.len() >= POINTS_PER_BLOCK * POINT_BYTES {
            table.insert((name, key.0, key.1), block.as_slice())?;
            key = (*at, *seq);
            block.clear();
        }
        block.extend_from_slice(&at.to_le_bytes());
        block.extend_from_slice(&seq.to_le_bytes());
        block.extend_from_slice(clock.as_slice());
        newest = Some(*seq);
    }
    table.insert((name, key.0, key.1), block.as_slice())?;
    Ok(())
}

/// Opens or creates the database at `path`, caching up to `cache` bytes of its pages (redb's
/// default is a GiB per database).
fn create(path: &Path, cache: usize) -> Result<Database> {
    Database::builder()
        .set_cache_size(cache)
        .create(path)
        .with_context(|| {
            format!(
                "cannot open the history index {} (delete it to rebuild it from the log)",
                path.display()
            )
        })
}

/// The layout `db` was written in, if it says.
fn layout(db: &Database) -> Result<Option<u64>> {
    let read = db.begin_read()?;
    match read.open_table(LAYOUT) {
        Ok(table) => Ok(table.get("format")?.map(|v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `db` holds no records.
fn is_empty(db: &Database) -> Result<bool> {
    let read = db.begin_read()?;
    match read.open_table(RECORDS) {
        Ok(table) => Ok(table.is_empty()?),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::fixtures::EventBuilder;
    use hostledger_schemas::Lifecycle;

    /// `n` facts of `host` a minute apart, alternating in and out of service.
    fn facts(host: &str, n: usize, from: i64) -> Vec<(Fact, Position)> {
        let minutes: Vec<i64> = (0..n as i64).collect();
        facts_at(host, &minutes, from)
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

    /// Facts of `host` at the given minutes, in this log order.
    fn facts_at(host: &str, minutes: &[i64], from: i64) -> Vec<(Fact, Position)> {
        minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let e = EventBuilder::new(host)
                    .id(format!("{host}-{i}"))
                    .name("a")
                    .lifecycle(if i % 2 == 0 {
                        Lifecycle::InService
                    } else {
                        Lifecycle::OutOfService
                    })
                    .provider_status(&format!("s{i}"))
                    .at(Timestamp(1_767_225_600_000_000 + m * 60_000_000))
                    .build();
                let p = Position {
                    partition: 0,
                    offset: from + i as i64,
                };
                (Fact::Host(e), p)
            })
            .collect()
    }

    /// The point of the host named `name` as of `at`, folded from its entries.
    fn folded_point(index: &DiskIndex, name: &str, at: Timestamp) -> (u64, Option<ServicePoint>) {
        let host = index.get(name).expect("reads").expect("indexed");
        let history = events_from_history(&host.record.host_id, &host.entries).expect("events");
        let point = fold_until(&history, Some(at)).map(|t| ServicePoint::of(&t.record));
        (host.record.event_count, point)
    }

    #[test]
    fn uptime_points_equal_the_fold_at_every_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = index_path(dir.path(), "t.host-events", None);
        let mut index = DiskIndex::open(&path, None).expect("opens");
        // One host in time order, one whose third fact is older than its second (a
        // backfill), one seen only late.
        let mut all = facts_at("dc/a/1", &[0, 10, 20, 30], 0);
        all.extend(facts_at("dc/a/2", &[0, 20, 10, 30], 4));
        all.extend(facts_at("dc/a/3", &[25], 8));
        let read: Vec<Position> = all.iter().map(|(_, p)| *p).collect();
        // In two chunks, so that order is carried from one to the next.
        index.apply(&all[..6], &read[..6]).expect("applies");
        index.apply(&all[6..], &read[6..]).expect("applies");
        let index = {
            drop(index);
            DiskIndex::open(&path, None).expect("reopens")
        };
        for minute in [-1, 0, 5, 10, 15, 20, 25, 30, 40] {
            let at = Timestamp(1_767_225_600_000_000 + minute * 60_000_000);
            let (items, next) = index
                .uptime_page(&Page {
                    as_of: Some(at),
                    ..Page::default()
                })
                .expect("answers");
            assert_eq!(next, None);
            assert_eq!(items.len(), 3);
            for (name, events, point) in items {
                let (count, folded) = folded_point(&index, &name, at);
                assert_eq!(events, count);
                assert_eq!(point, folded, "{name} at minute {minute}");
            }
        }
        let (now, _) = index.uptime_page(&Page::default()).expect("answers");
        for (name, _, point) in now {
            let host = index.get(&name).expect("reads").expect("indexed");
            assert_eq!(point, Some(ServicePoint::of(&host.record)));
        }
    }

    #[test]
    fn points_fill_blocks_and_a_chunk_read_again_adds_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = index_path(dir.path(), "t.host-events", None);
        let mut index = DiskIndex::open(&path, None).expect("opens");
        let n = POINTS_PER_BLOCK * 2 + 5;
        let all = facts("dc/a/1", n, 0);
        let read: Vec<Position> = all.iter().map(|(_, p)| *p).collect();
        for (chunk, positions) in all.chunks(7).zip(read.chunks(7)) {
            index.apply(chunk, positions).expect("applies");
        }
        let name = object_name("dc/a/1");
        let blocks = |index: &DiskIndex| -> Vec<usize> {
            let txn = index.points.begin_read().expect("reads");
            let table = txn.open_table(CLOCKS).expect("table");
            table
                .iter()
                .expect("iterates")
                .map(|row| row.expect("row").1.value().len() / POINT_BYTES)
                .collect()
        };
        assert_eq!(
            blocks(&index),
            [POINTS_PER_BLOCK, POINTS_PER_BLOCK, 5],
            "full blocks, then the open one"
        );
        // A crash after the points of a chunk, before its entries: the chunk's points are
        // given again, and none is added twice.
        {
            let txn = index.points.begin_write().expect("writes");
            {
                let mut table = txn.open_table(CLOCKS).expect("table");
                let clock = [0u8; CLOCK_BYTES];
                let again: Vec<NewPoint<'_>> = (0..n as u64).map(|seq| (0, seq, &clock)).collect();
                append_points(&mut table, &name, &again).expect("appends");
            }
            txn.commit().expect("commits");
        }
        assert_eq!(blocks(&index), [POINTS_PER_BLOCK, POINTS_PER_BLOCK, 5]);
        for minute in [0, 1, 31, 32, 33, 63, 64, 65, 68, 99] {
            let at = Timestamp(1_767_225_600_000_000 + minute * 60_000_000);
            let (items, _) = index
                .uptime_page(&Page {
                    as_of: Some(at),
                    ..Page::default()
                })
                .expect("answers");
            assert_eq!(
                items[0].2,
                folded_point(&index, &name, at).1,
                "at minute {minute}"
            );
        }
    }

    #[test]
    fn an_index_in_an_older_layout_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = index_path(dir.path(), "t.host-events", None);
        {
            let db = create(&path, CACHE_BYTES).expect("creates");
            let txn = db.begin_write().expect("writes");
            txn.open_table(RECORDS)
                .expect("table")
                .insert("dc.a.1", b"{}".as_slice())
                .expect("inserts");
            txn.open_table(OFFSETS)
                .expect("table")
                .insert(0, 7)
                .expect("inserts");
            txn.commit().expect("commits");
        }
        let index = DiskIndex::open(&path, None).expect("opens");
        assert!(index.is_empty(), "rebuilt empty");
        assert!(index.offsets().is_empty(), "from the start of the log");
        drop(index);
        let again = DiskIndex::open(&path, None).expect("opens again");
        assert!(again.offsets().is_empty());
    }

    #[test]
    fn a_lost_points_file_rebuilds_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = index_path(dir.path(), "t.host-events", None);
        assert_eq!(
            points_path(&path),
            dir.path().join("t.host-events.points.redb")
        );
        {
            let mut index = DiskIndex::open(&path, None).expect("opens");
            let all = facts("dc/a/1", 3, 0);
            let read: Vec<Position> = all.iter().map(|(_, p)| *p).collect();
            index.apply(&all, &read).expect("applies");
        }
        assert!(points_path(&path).exists(), "written beside the entries");
        assert_eq!(
            DiskIndex::open(&path, None).expect("reopens").len(),
            1,
            "kept"
        );
        std::fs::remove_file(points_path(&path)).expect("removes");
        let index = DiskIndex::open(&path, None).expect("opens without its points");
        assert!(index.is_empty(), "rebuilt empty");
        assert!(index.offsets().is_empty(), "from the start of the log");
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

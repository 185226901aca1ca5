//! A host's life as the fold sees it: the record at some time, plus every phase change
//! (for full service timelines, which the Host object keeps only the latest of). Pure.
//!
//! "As of T" means: the host's events observed at or before T, folded in log order — what
//! `hostledger replay --until T` builds. Both sources of the audit queries (the log, and
//! the HostHistory objects the projector keeps) feed the same events through the same
//! fold, so their answers are equal by construction; tests check it on the real stack.

use std::collections::{HashMap, HashSet};

use hostledger_schemas::{Fact, HostEvent, Lifecycle, LockEvent, Timestamp};

use crate::fold::{HostRecord, Outcome, Position, ServiceInterval, apply_lock, apply_to};
use crate::history::HistoryEntry;

/// The phase a host entered, and when (the fold's clamped time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseChange {
    /// When the phase began.
    pub at: Timestamp,
    /// The phase.
    pub phase: Lifecycle,
}

/// One host folded up to some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The fold's record.
    pub record: HostRecord,
    /// Every phase the host entered, oldest first (the first is its initial phase).
    pub phases: Vec<PhaseChange>,
}

impl Timeline {
    /// The timeline of a host whose first event is `event`.
    pub fn first(event: &HostEvent, at: Position) -> Self {
        let record = HostRecord::first(event, at);
        let phases = vec![PhaseChange {
            at: record.phase_since,
            phase: record.phase,
        }];
        Timeline { record, phases }
    }

    /// Folds one more event.
    pub fn push(&mut self, event: &HostEvent, at: Position) -> Outcome {
        let before = self.record.phase;
        let outcome = apply_to(&mut self.record, event, at);
        if outcome == Outcome::Applied && self.record.phase != before {
            self.phases.push(PhaseChange {
                at: self.record.phase_since,
                phase: self.record.phase,
            });
        }
        outcome
    }

    /// Folds one lock fact.
    pub fn push_lock(&mut self, event: &LockEvent, at: Position) -> Outcome {
        apply_lock(&mut self.record, event, at)
    }

    /// Every service interval, oldest first; the last is open while the host is in service.
    pub fn intervals(&self) -> Vec<ServiceInterval> {
        intervals_of(&self.phases)
    }
}

/// Service intervals from a list of phase changes.
pub fn intervals_of(phases: &[PhaseChange]) -> Vec<ServiceInterval> {
    let mut out: Vec<ServiceInterval> = Vec::new();
    for change in phases {
        let open = out.last().is_some_and(|i| i.end.is_none());
        match (open, change.phase == Lifecycle::InService) {
            (true, false) => {
                if let Some(last) = out.last_mut() {
                    last.end = Some(change.at);
                }
            }
            (false, true) => out.push(ServiceInterval {
                start: change.at,
                end: None,
            }),
            _ => {}
        }
    }
    out
}

/// Folds events of many hosts in log order, keeping those observed at or before `until`.
#[derive(Debug, Default)]
pub struct Timelines {
    until: Option<Timestamp>,
    hosts: HashMap<String, Timeline>,
    /// With `until`: hosts seen at all, and the earliest first event among them.
    seen: HashSet<String>,
    first_seen: Option<Timestamp>,
    /// Events folded.
    pub applied: u64,
    /// Events skipped: already folded (same position), or observed after `until`.
    pub skipped: u64,
}

impl Timelines {
    /// Folds everything (`until` = `None`) or only what was observed up to `until`.
    pub fn new(until: Option<Timestamp>) -> Self {
        Timelines {
            until,
            ..Default::default()
        }
    }

    /// Folds one event.
    pub fn push(&mut self, event: &HostEvent, at: Position) {
        if self.until.is_some() && !self.seen.contains(&event.host_id) {
            self.seen.insert(event.host_id.clone());
            let t = event.observed_at;
            self.first_seen = Some(self.first_seen.map_or(t, |f| f.min(t)));
        }
        if self.until.is_some_and(|t| event.observed_at > t) {
            self.skipped += 1;
            return;
        }
        let outcome = match self.hosts.get_mut(&event.host_id) {
            Some(timeline) => timeline.push(event, at),
            None => {
                self.hosts
                    .insert(event.host_id.clone(), Timeline::first(event, at));
                Outcome::Applied
            }
        };
        match outcome {
            Outcome::Applied => self.applied += 1,
            _ => self.skipped += 1,
        }
    }

    /// Folds one lock fact (of a host already seen; others are skipped).
    pub fn push_lock(&mut self, event: &LockEvent, at: Position) {
        if self.until.is_some_and(|t| event.at > t) {
            self.skipped += 1;
            return;
        }
        let outcome = match self.hosts.get_mut(&event.host_id) {
            Some(timeline) => timeline.push_lock(event, at),
            None => Outcome::OtherHost,
        };
        match outcome {
            Outcome::Applied => self.applied += 1,
            _ => self.skipped += 1,
        }
    }

    /// Folds one fact of either kind.
    pub fn push_fact(&mut self, fact: &Fact, at: Position) {
        match fact {
            Fact::Host(event) => self.push(event, at),
            Fact::Lock(event) => self.push_lock(event, at),
        }
    }

    /// When the earliest host was first seen (whatever `until` is): the time before which
    /// nothing existed.
    pub fn first_event_at(&self) -> Option<Timestamp> {
        match self.until {
            Some(_) => self.first_seen,
            None => self.hosts.values().map(|t| t.record.first_seen_at).min(),
        }
    }

    /// The timelines, by host id.
    pub fn into_hosts(self) -> HashMap<String, Timeline> {
        self.hosts
    }
}

/// What is wrong with a stored history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the HostHistory of {host_id} cannot be read back: {reason}")]
pub struct HistoryError {
    /// The host.
    pub host_id: String,
    /// What is wrong.
    pub reason: String,
}

/// The facts behind a host's HostHistory entries (in sequence order), rebuilt: the first
/// entry records the whole state, each later one what changed (or the lock it records).
/// Event ids, kinds, times, sources, providers and log positions are the originals, so
/// folding these gives exactly what folding the log gives.
pub fn events_from_history(
    host_id: &str,
    entries: &[HistoryEntry],
) -> Result<Vec<(Fact, Position)>, HistoryError> {
    let fail = |reason: String| HistoryError {
        host_id: host_id.to_owned(),
        reason,
    };
    let Some(first) = entries.first() else {
        return Ok(Vec::new());
    };
    let Some(initial) = &first.state else {
        return Err(fail(format!(
            "entry {} has no recorded state (it was written by an older projector); rebuild the history with `hostledger replay` into a new namespace",
            first.seq
        )));
    };
    let mut state = initial.clone();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as i64 + 1 {
            return Err(fail(format!(
                "entry {} is missing (found {} in its place)",
                i + 1,
                e.seq
            )));
        }
        if i > 0 {
            state
                .apply_changes(&e.changes)
                .map_err(|r| fail(format!("entry {}: {r}", e.seq)))?;
        }
        if state.lifecycle != e.phase {
            return Err(fail(format!(
                "entry {}: its changes give phase {} but it records {}",
                e.seq, state.lifecycle, e.phase
            )));
        }
        let position = Position {
            partition: e.partition,
            offset: e.offset,
        };
        let fact = match (e.kind.host(), e.kind.lock().zip(e.lock.as_ref())) {
            (Some(kind), _) => Fact::Host(HostEvent {
                event_id: e.event_id.clone(),
                host_id: host_id.to_owned(),
                kind,
                provider: e.provider.clone(),
                source: e.source.clone(),
                observed_at: e.observed_at,
                state: state.clone(),
                changes: Vec::new(),
            }),
            (None, Some((kind, lock))) if i > 0 => Fact::Lock(LockEvent {
                event_id: e.event_id.clone(),
                host_id: host_id.to_owned(),
                kind,
                lock_id: lock.lock_id.clone(),
                at: e.observed_at,
                holder: lock.holder.clone(),
                user: lock.user.clone(),
                reason: lock.reason.clone(),
                ttl_seconds: lock.ttl_seconds,
                ended: lock.ended,
                source: e.source.clone(),
            }),
            (None, _) => {
                return Err(fail(format!(
                    "entry {} is a {} without its lock (or is the host's first entry)",
                    e.seq, e.kind
                )));
            }
        };
        out.push((fact, position));
    }
    Ok(out)
}

/// Folds a host's rebuilt events up to `until`; `None` when nothing was observed by then.
pub fn fold_until(events: &[(Fact, Position)], until: Option<Timestamp>) -> Option<Timeline> {
    let mut set = Timelines::new(until);
    for (fact, at) in events {
        set.push_fact(fact, *at);
    }
    set.into_hosts().into_values().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fold_entry;
    use hostledger_schemas::{EventKind, HostState};

    const HOUR: i64 = 3_600_000_000;

    fn event(n: i64, lifecycle: Lifecycle, role: &str) -> HostEvent {
        let mut state = HostState::new("web-1", lifecycle, lifecycle.as_str());
        state.role = Some(role.to_owned());
        HostEvent {
            event_id: format!("e{n}"),
            host_id: "dc/pdx1/A1".into(),
            kind: if n == 0 {
                EventKind::HostDiscovered
            } else {
                EventKind::HostChanged
            },
            provider: "dc".into(),
            source: "dc-test".into(),
            observed_at: Timestamp(n * HOUR),
            state,
            changes: Vec::new(),
        }
    }

    fn pos(offset: i64) -> Position {
        Position {
            partition: 0,
            offset,
        }
    }

    /// In service 0–2 h, out 2–5 h, in again from 5 h (retired at 8 h, returned at 9 h).
    fn life() -> Vec<HostEvent> {
        vec![
            event(0, Lifecycle::InService, "web"),
            event(2, Lifecycle::OutOfService, "web"),
            event(3, Lifecycle::OutOfService, "db"),
            event(5, Lifecycle::InService, "db"),
            event(8, Lifecycle::Retired, "db"),
            event(9, Lifecycle::InService, "db"),
        ]
    }

    #[test]
    fn time_in_service_as_of_any_moment() {
        let events = life();
        let mut all = Timelines::new(None);
        for (i, e) in events.iter().enumerate() {
            all.push(e, pos(i as i64));
        }
        let rebuilt: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, e)| (Fact::Host(e.clone()), pos(i as i64)))
            .collect();
        // (as of, in service so far in hours, phase)
        let cases = [
            (1, 1, Lifecycle::InService),
            (2, 2, Lifecycle::OutOfService),
            (4, 2, Lifecycle::OutOfService),
            (6, 3, Lifecycle::InService),
            (8, 5, Lifecycle::Retired),
            (10, 6, Lifecycle::InService),
        ];
        for (at, hours, phase) in cases {
            let t = fold_until(&rebuilt, Some(Timestamp(at * HOUR))).expect("exists");
            assert_eq!(t.record.phase, phase, "as of {at} h");
            assert_eq!(
                t.record.in_service_micros_at(Timestamp(at * HOUR)),
                hours * HOUR,
                "as of {at} h"
            );
        }
        let whole = &all.into_hosts()["dc/pdx1/A1"];
        let spans: Vec<_> = whole
            .intervals()
            .iter()
            .map(|i| (i.start.0 / HOUR, i.end.map(|e| e.0 / HOUR)))
            .collect();
        assert_eq!(spans, vec![(0, Some(2)), (5, Some(8)), (9, None)]);
        assert!(fold_until(&rebuilt, Some(Timestamp(-1))).is_none());
    }

    #[test]
    fn lock_facts_in_the_history_rebuild_the_same_record() {
        use crate::history::fold_lock_existing;
        use hostledger_schemas::LockEventKind;
        let lock = |kind: LockEventKind, hours: i64| {
            crate::fixtures::lock_event("dc/pdx1/A1", kind, "L1", Timestamp(hours * HOUR))
        };
        let events = life();
        let mut log: Vec<(Fact, Position)> = Vec::new();
        let mut record: Option<HostRecord> = None;
        let mut entries = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let p = pos(log.len() as i64);
            entries.push(fold_entry(&mut record, e, p).expect("applied"));
            log.push((Fact::Host(e.clone()), p));
            if i == 0 {
                let p = pos(log.len() as i64);
                let l = lock(LockEventKind::HostLocked, 1);
                let r = record.as_mut().expect("record");
                entries.push(fold_lock_existing(r, &l, p).expect("locked"));
                log.push((Fact::Lock(l), p));
            }
            if i == 3 {
                let p = pos(log.len() as i64);
                let l = lock(LockEventKind::HostUnlocked, 6);
                let r = record.as_mut().expect("record");
                entries.push(fold_lock_existing(r, &l, p).expect("unlocked"));
                log.push((Fact::Lock(l), p));
            }
        }
        let rebuilt = events_from_history("dc/pdx1/A1", &entries).expect("readable");
        let from_history = fold_until(&rebuilt, None).expect("host").record;
        let from_log = fold_until(&log, None).expect("host").record;
        assert_eq!(from_history, from_log);
        assert_eq!(from_log, record.expect("record"));
        // Out 2–5 h while locked (1–6 h): planned; nothing unplanned; as of 4 h, 2 h planned.
        assert_eq!(
            from_log.downtime_micros_at(Timestamp(10 * HOUR)),
            (3 * HOUR, 0)
        );
        let at4 = fold_until(&rebuilt, Some(Timestamp(4 * HOUR))).expect("host");
        assert_eq!(
            at4.record.downtime_micros_at(Timestamp(4 * HOUR)),
            (2 * HOUR, 0)
        );
        assert!(at4.record.lock.is_some());
    }

    #[test]
    fn history_entries_rebuild_the_same_events() {
        let events = life();
        let mut record: Option<HostRecord> = None;
        let mut entries = Vec::new();
        for (i, e) in events.iter().enumerate() {
            entries.push(fold_entry(&mut record, e, pos(i as i64)).expect("applied"));
        }
        assert!(
            fold_entry(&mut record, &events[0], pos(0)).is_none(),
            "a duplicate makes no entry"
        );
        let rebuilt = events_from_history("dc/pdx1/A1", &entries).expect("readable");
        for ((got, at), (i, want)) in rebuilt.iter().zip(events.iter().enumerate()) {
            assert_eq!(at, &pos(i as i64));
            let mut want = want.clone();
            want.changes.clear();
            assert_eq!(got, &Fact::Host(want));
        }
        // A history from an older projector (no initial state) is refused with advice.
        let mut old = entries.clone();
        old[0].state = None;
        let e = events_from_history("dc/pdx1/A1", &old).expect_err("no state");
        assert!(e.to_string().contains("hostledger replay"), "{e}");
        // A gap is refused.
        let mut gap = entries;
        gap.remove(2);
        assert!(
            events_from_history("dc/pdx1/A1", &gap)
                .expect_err("gap")
                .to_string()
                .contains("entry 3 is missing")
        );
    }
}

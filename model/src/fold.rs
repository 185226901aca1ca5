//! The fold: `(HostRecord, HostEvent) -> HostRecord`. Pure, deterministic, no I/O.
//!
//! The daemon, replay, backfill and the audit queries all fold events with this code, so
//! they cannot disagree. Times come from `observed_at`; an event older than one already
//! folded for the same host is clamped to the later time, so durations are never negative.

use hostledger_schemas::{
    EventKind, HostEvent, HostState, Lifecycle, LockEnd, LockEvent, LockEventKind, Timestamp,
};
use schemars::JsonSchema;

use crate::clock::ServiceClock;
use serde::{Deserialize, Serialize};

/// Most service intervals a record keeps; older ones are summed into the total and counted
/// in `intervals_dropped` (the full history lives in HostHistory and in the log).
///
/// The intervals are a Host's largest field: 74 bytes each in JSON, and kube-apiserver holds
/// every Host decoded in its watch cache, several times the JSON's size. Sixteen made 1,181
/// of a Host's 3,757 bytes at 100,000 Hosts (docs/benchmarks.md, "Scale"); four show the
/// latest comings and goings, and readers that want every interval read the history.
pub const MAX_INTERVALS: usize = 4;

/// Where an event sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// The last event folded into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEvent {
    /// Event id.
    pub event_id: String,
    /// Event kind.
    pub kind: EventKind,
    /// Position in the log.
    pub position: Position,
    /// The event's own `observed_at` (before clamping).
    pub observed_at: Timestamp,
}

/// One stretch of time in service; `end` is `None` while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceInterval {
    /// When the host entered service.
    pub start: Timestamp,
    /// When it left service; absent while in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
}

/// The lock a host holds, as the log says (its `HostLocked` fact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldLock {
    /// The lock's identity (the HostLock's uid).
    pub id: String,
    /// Who holds it.
    pub holder: String,
    /// The identity that took it.
    pub user: String,
    /// Why.
    pub reason: String,
    /// When it was taken (the fold's clamped time).
    pub since: Timestamp,
}

/// Time out of service (OutOfService or Missing), split by whether the host was locked:
/// planned (locked for an operation) or unplanned. Sums of closed stretches up to `since`;
/// the stretch from `since` on counts by the record's current phase and lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Downtime {
    /// Planned downtime before `since`, in microseconds.
    pub planned_micros: i64,
    /// Unplanned downtime before `since`, in microseconds.
    pub unplanned_micros: i64,
    /// When the current stretch began (the last phase or lock change).
    pub since: Timestamp,
}

/// Everything the log says about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// Stable host id.
    pub host_id: String,
    /// Provider kind.
    pub provider: String,
    /// Fetcher instance of the last event.
    pub source: String,
    /// Latest observed state.
    pub state: HostState,
    /// Current lifecycle phase (equals `state.lifecycle`).
    pub phase: Lifecycle,
    /// First time any event was observed.
    pub first_seen_at: Timestamp,
    /// Latest (clamped) observation time folded in.
    pub last_observed_at: Timestamp,
    /// When the current phase began.
    pub phase_since: Timestamp,
    /// Start of the current service interval, if in service.
    pub in_service_since: Option<Timestamp>,
    /// Sum of all closed service intervals, in microseconds.
    pub closed_in_service_micros: i64,
    /// The most recent service intervals, oldest first (at most [`MAX_INTERVALS`]).
    pub intervals: Vec<ServiceInterval>,
    /// How many older intervals were dropped from `intervals`.
    pub intervals_dropped: u64,
    /// Number of events folded in.
    pub event_count: u64,
    /// The last event folded in.
    pub last_event: AppliedEvent,
    /// The lock the host holds, if any.
    pub lock: Option<HeldLock>,
    /// Time out of service, planned and unplanned.
    pub downtime: Downtime,
    /// Where the last lock fact folded in sits in the log (duplicates at or below it, and at
    /// or below `last_event`, are skipped).
    pub last_lock_position: Option<Position>,
}

/// What folding one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed the record.
    Applied,
    /// The event is at or below the last applied position: already folded in.
    Duplicate,
    /// The event is about another host; the record is untouched.
    OtherHost,
}

impl HostRecord {
    /// The record of a host whose first event is `event`.
    pub fn first(event: &HostEvent, at: Position) -> Self {
        let t = event.observed_at;
        let phase = event.state.lifecycle;
        let in_service = phase == Lifecycle::InService;
        HostRecord {
            host_id: event.host_id.clone(),
            provider: event.provider.clone(),
            source: event.source.clone(),
            state: event.state.clone(),
            phase,
            first_seen_at: t,
            last_observed_at: t,
            phase_since: t,
            in_service_since: in_service.then_some(t),
            closed_in_service_micros: 0,
            intervals: if in_service {
                vec![ServiceInterval {
                    start: t,
                    end: None,
                }]
            } else {
                Vec::new()
            },
            intervals_dropped: 0,
            event_count: 1,
            last_event: AppliedEvent {
                event_id: event.event_id.clone(),
                kind: event.kind,
                position: at,
                observed_at: event.observed_at,
            },
            lock: None,
            downtime: Downtime {
                planned_micros: 0,
                unplanned_micros: 0,
                since: t,
            },
            last_lock_position: None,
        }
    }

    /// Planned and unplanned downtime up to `now`, in microseconds: closed stretches plus the
    /// current one (counted up to `now`, never negative).
    pub fn downtime_micros_at(&self, now: Timestamp) -> (i64, i64) {
        self.clock().downtime_micros_at(now)
    }

    /// The part of the record time in service and downtime follow from.
    pub fn clock(&self) -> ServiceClock {
        ServiceClock {
            phase: self.phase,
            first_seen_at: self.first_seen_at,
            in_service_since: self.in_service_since,
            closed_in_service_micros: self.closed_in_service_micros,
            downtime: self.downtime,
            locked: self.lock.is_some(),
        }
    }

    /// Closes the current downtime stretch at `t` (a phase or lock change).
    fn close_stretch(&mut self, t: Timestamp) {
        let (planned, unplanned) = self.downtime_micros_at(t);
        self.downtime = Downtime {
            planned_micros: planned,
            unplanned_micros: unplanned,
            since: t.max(self.downtime.since),
        };
    }

    /// Total time in service up to `now`, in microseconds: closed intervals plus the open one
    /// (counted up to `now`, never negative).
    pub fn in_service_micros_at(&self, now: Timestamp) -> i64 {
        self.clock().in_service_micros_at(now)
    }

    /// Whether an event at `at` has already been folded into this record.
    pub fn has_applied(&self, at: Position) -> bool {
        let covers = |last: Position| last.partition == at.partition && at.offset <= last.offset;
        covers(self.last_event.position) || self.last_lock_position.is_some_and(covers)
    }
}

/// Folds one event into a host's record in place. `None` is a host never seen before.
pub fn apply(record: &mut Option<HostRecord>, event: &HostEvent, at: Position) -> Outcome {
    match record {
        Some(r) => apply_to(r, event, at),
        None => {
            *record = Some(HostRecord::first(event, at));
            Outcome::Applied
        }
    }
}

/// Folds one event into an existing record in place.
pub fn apply_to(r: &mut HostRecord, event: &HostEvent, at: Position) -> Outcome {
    if r.host_id != event.host_id {
        return Outcome::OtherHost;
    }
    if r.has_applied(at) {
        return Outcome::Duplicate;
    }
    let t = event.observed_at.max(r.last_observed_at);
    let new_phase = event.state.lifecycle;
    if new_phase != r.phase {
        r.close_stretch(t);
        if r.phase == Lifecycle::InService {
            if let Some(since) = r.in_service_since.take() {
                r.closed_in_service_micros += t.micros_since(since);
            }
            if let Some(open) = r.intervals.last_mut().filter(|i| i.end.is_none()) {
                open.end = Some(t);
            }
        }
        if new_phase == Lifecycle::InService {
            r.in_service_since = Some(t);
            r.intervals.push(ServiceInterval {
                start: t,
                end: None,
            });
            if r.intervals.len() > MAX_INTERVALS {
                let excess = r.intervals.len() - MAX_INTERVALS;
                r.intervals.drain(..excess);
                r.intervals_dropped += excess as u64;
            }
        }
        r.phase = new_phase;
        r.phase_since = t;
    }
    r.state.clone_from(&event.state);
    r.provider.clone_from(&event.provider);
    r.source.clone_from(&event.source);
    r.last_observed_at = t;
    r.event_count += 1;
    r.last_event = AppliedEvent {
        event_id: event.event_id.clone(),
        kind: event.kind,
        position: at,
        observed_at: event.observed_at,
    };
    Outcome::Applied
}

/// Folds one lock fact into a host's record in place. A lock taken is held until its own
/// unlock (same lock id); an unlock of another lock, or a lock while one is held, changes
/// nothing but the position. Times are clamped like events' (never before what was folded).
pub fn apply_lock(r: &mut HostRecord, event: &LockEvent, at: Position) -> Outcome {
    if r.host_id != event.host_id {
        return Outcome::OtherHost;
    }
    if r.has_applied(at) {
        return Outcome::Duplicate;
    }
    let t = event.at.max(r.last_observed_at).max(r.downtime.since);
    let outcome = match event.kind {
        LockEventKind::HostLocked if r.lock.is_none() => {
            r.close_stretch(t);
            r.lock = Some(HeldLock {
                id: event.lock_id.clone(),
                holder: event.holder.clone(),
                user: event.user.clone(),
                reason: event.reason.clone(),
                since: t,
            });
            Outcome::Applied
        }
        LockEventKind::HostUnlocked if r.lock.as_ref().is_some_and(|l| l.id == event.lock_id) => {
            r.close_stretch(t);
            r.lock = None;
            Outcome::Applied
        }
        _ => Outcome::Duplicate,
    };
    r.last_lock_position = Some(at);
    if outcome == Outcome::Applied {
        r.event_count += 1;
    }
    outcome
}

/// How a lock ended, for people: `released`, `expired`, ...
pub fn lock_end_word(end: Option<LockEnd>) -> &'static str {
    match end {
        None | Some(LockEnd::Released) => "released",
        Some(LockEnd::Expired) => "expired",
        Some(LockEnd::HostRetired) => "released: host retired",
        Some(LockEnd::Unobserved) => "gone unobserved",
    }
}

/// The fold as a function of values: the record after `event`.
pub fn fold(record: Option<HostRecord>, event: &HostEvent, at: Position) -> Option<HostRecord> {
    let mut record = record;
    apply(&mut record, event, at);
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const HOUR: i64 = 3_600_000_000;
    const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    fn event(host: &str, lifecycle: Lifecycle, hours: i64) -> HostEvent {
        HostEvent {
            event_id: format!("{host}-{hours}-{lifecycle}"),
            host_id: host.to_owned(),
            kind: EventKind::HostLifecycleChanged,
            provider: "dc".into(),
            source: "test".into(),
            observed_at: Timestamp(T0 + hours * HOUR),
            state: HostState::new(host, lifecycle, lifecycle.as_str()),
            changes: Vec::new(),
        }
    }

    fn fold_all(events: &[(HostEvent, Position)]) -> Option<HostRecord> {
        events.iter().fold(None, |r, (e, p)| fold(r, e, *p))
    }

    fn at(offset: i64) -> Position {
        Position {
            partition: 0,
            offset,
        }
    }

    use Lifecycle::*;

    fn lock_fact(host: &str, kind: LockEventKind, id: &str, hours: i64) -> LockEvent {
        crate::fixtures::lock_event(host, kind, id, Timestamp(T0 + hours * HOUR))
    }

    /// Downtime while locked is planned, any other is unplanned; a stretch that a lock
    /// begins or ends in the middle is split at that moment.
    #[test]
    fn planned_and_unplanned_downtime() {
        use LockEventKind::{HostLocked, HostUnlocked};
        let mut r = fold(None, &event("h", InService, 0), at(0)).expect("record");
        let mut n = 0;
        let mut next = || {
            n += 1;
            at(n)
        };
        assert_eq!(
            apply_lock(&mut r, &lock_fact("h", HostLocked, "L1", 1), next()),
            Outcome::Applied
        );
        apply_to(&mut r, &event("h", OutOfService, 2), next());
        apply_to(&mut r, &event("h", InService, 4), next());
        assert_eq!(
            apply_lock(&mut r, &lock_fact("h", HostUnlocked, "L1", 5), next()),
            Outcome::Applied
        );
        assert_eq!(r.lock, None);
        // Down without a lock; locked halfway through (at 7 h), unlocked after it returned.
        apply_to(&mut r, &event("h", OutOfService, 6), next());
        apply_lock(&mut r, &lock_fact("h", HostLocked, "L2", 7), next());
        assert_eq!(r.lock.as_ref().map(|l| l.id.as_str()), Some("L2"));
        // An unlock of another lock and a second lock change nothing.
        let p = next();
        assert_eq!(
            apply_lock(&mut r, &lock_fact("h", HostUnlocked, "L1", 7), p),
            Outcome::Duplicate
        );
        assert!(r.has_applied(p), "its position is remembered");
        assert_eq!(
            apply_lock(&mut r, &lock_fact("h", HostLocked, "L3", 7), next()),
            Outcome::Duplicate
        );
        apply_to(&mut r, &event("h", Missing, 8), next());
        apply_to(&mut r, &event("h", InService, 9), next());
        let (planned, unplanned) = r.downtime_micros_at(Timestamp(T0 + 10 * HOUR));
        assert_eq!((planned, unplanned), (2 * HOUR + 2 * HOUR, HOUR));
        // Still locked and down now: the open stretch counts as planned up to now.
        let p = next();
        apply_to(&mut r, &event("h", OutOfService, 10), p);
        assert_eq!(
            r.downtime_micros_at(Timestamp(T0 + 12 * HOUR)),
            (6 * HOUR, HOUR)
        );
        // A duplicate delivery changes nothing.
        let before = r.clone();
        assert_eq!(
            apply_lock(&mut r, &lock_fact("h", HostUnlocked, "L2", 11), p),
            Outcome::Duplicate
        );
        assert_eq!(r, before);
        // Retired is not downtime.
        apply_lock(&mut r, &lock_fact("h", HostUnlocked, "L2", 12), next());
        apply_to(&mut r, &event("h", Retired, 13), next());
        assert_eq!(
            r.downtime_micros_at(Timestamp(T0 + 20 * HOUR)),
            (6 * HOUR, 2 * HOUR)
        );
    }

    /// Given a sequence of phases at hour marks, then the total time in service at the end.
    #[test]
    fn time_in_service_table() {
        // (case, phases entered at hour marks, now in hours, expected hours in service)
        type Case<'a> = (&'a str, &'a [(Lifecycle, i64)], i64, i64);
        let cases: &[Case<'_>] = &[
            ("discovered in service", &[(InService, 0)], 5, 5),
            (
                "provisioned then in service",
                &[(Provisioning, 0), (InService, 2)],
                5,
                3,
            ),
            (
                "stopped and started",
                &[(InService, 0), (OutOfService, 2), (InService, 4)],
                10,
                8,
            ),
            ("retired", &[(InService, 0), (Retired, 3)], 10, 3),
            (
                "retired and returned twice",
                &[
                    (InService, 0),
                    (Retired, 1),
                    (InService, 2),
                    (Missing, 4),
                    (InService, 7),
                    (Retired, 8),
                ],
                20,
                4,
            ),
            (
                "never in service",
                &[(Provisioning, 0), (OutOfService, 3)],
                9,
                0,
            ),
            (
                "repeated in-service observations",
                &[(InService, 0), (InService, 1), (InService, 2)],
                3,
                3,
            ),
        ];
        for (name, phases, now, want) in cases {
            let events: Vec<_> = phases
                .iter()
                .enumerate()
                .map(|(i, (l, h))| (event("h", *l, *h), at(i as i64)))
                .collect();
            let r = fold_all(&events).expect("record");
            assert_eq!(
                r.in_service_micros_at(Timestamp(T0 + now * HOUR)),
                want * HOUR,
                "{name}"
            );
            assert_eq!(r.phase, phases.last().expect("non-empty").0, "{name}");
            assert_eq!(r.event_count, phases.len() as u64, "{name}");
        }
    }

    #[test]
    fn out_of_order_times_are_clamped() {
        let events = [
            (event("h", InService, 5), at(0)),
            (event("h", OutOfService, 2), at(1)), // observed "before" the previous event
            (event("h", InService, 6), at(2)),
        ];
        let r = fold_all(&events).expect("record");
        assert_eq!(
            r.closed_in_service_micros, 0,
            "interval 5h..max(2h,5h) is empty, not negative"
        );
        assert_eq!(r.in_service_since, Some(Timestamp(T0 + 6 * HOUR)));
        assert_eq!(r.phase_since, Timestamp(T0 + 6 * HOUR));
    }

    #[test]
    fn intervals_are_bounded_but_total_is_kept() {
        let mut events = Vec::new();
        for i in 0..100 {
            events.push((event("h", InService, 2 * i), at(2 * i)));
            events.push((event("h", OutOfService, 2 * i + 1), at(2 * i + 1)));
        }
        let r = fold_all(&events).expect("record");
        assert_eq!(r.intervals.len(), MAX_INTERVALS);
        assert_eq!(r.intervals_dropped, 100 - MAX_INTERVALS as u64);
        assert_eq!(r.closed_in_service_micros, 100 * HOUR);
        assert_eq!(r.first_seen_at, Timestamp(T0));
    }

    #[test]
    fn first_seen_and_attributes_follow_events() {
        let mut changed = event("h", InService, 3);
        changed.state.role = Some("db".into());
        changed.state.attributes = BTreeMap::from([("rack".into(), "A1".into())]);
        let r = fold_all(&[
            (event("h", Provisioning, 1), at(0)),
            (changed.clone(), at(1)),
        ])
        .expect("record");
        assert_eq!(r.first_seen_at, Timestamp(T0 + HOUR));
        assert_eq!(r.state, changed.state);
        assert_eq!(r.last_event.event_id, changed.event_id);
        assert_eq!(r.last_event.position, at(1));
    }

    fn arb_log() -> impl Strategy<Value = Vec<(HostEvent, Position)>> {
        let phase = prop::sample::select(Lifecycle::ALL.to_vec());
        let host = prop::sample::select(vec!["a", "b", "c"]);
        prop::collection::vec((host, phase, 0i64..200, any::<bool>()), 1..60).prop_map(|steps| {
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (h, l, hours, with_role))| {
                    let mut e = event(h, l, hours);
                    e.event_id = format!("e{i}");
                    if with_role {
                        e.state.role = Some("web".into());
                    }
                    (e, at(i as i64))
                })
                .collect()
        })
    }

    fn fold_host(log: &[(HostEvent, Position)], host: &str) -> Option<HostRecord> {
        log.iter()
            .filter(|(e, _)| e.host_id == host)
            .fold(None, |r, (e, p)| fold(r, e, *p))
    }

    proptest! {
        /// Folding a log in one go equals folding it in any two chunks, with the record
        /// carried between them (what a restart does).
        #[test]
        fn chunking_does_not_matter(log in arb_log(), cut in 0usize..60) {
            let cut = cut.min(log.len());
            for host in ["a", "b", "c"] {
                let whole = fold_host(&log, host);
                let first = fold_host(&log[..cut], host);
                let resumed = log[cut..].iter().filter(|(e, _)| e.host_id == host).fold(first, |r, (e, p)| fold(r, e, *p));
                prop_assert_eq!(whole, resumed);
            }
        }

        /// Redelivering any prefix of the log (at-least-once) changes nothing.
        #[test]
        fn duplicates_are_no_ops(log in arb_log(), replay_upto in 0usize..60) {
            let upto = replay_upto.min(log.len());
            for host in ["a", "b", "c"] {
                let once = fold_host(&log, host);
                let mut record = once.clone();
                for (e, p) in log[..upto].iter().filter(|(e, _)| e.host_id == host) {
                    let outcome = apply(&mut record, e, *p);
                    prop_assert_eq!(outcome, Outcome::Duplicate);
                }
                prop_assert_eq!(&record, &once);
            }
        }

        /// Events of other hosts never change a host's record.
        #[test]
        fn other_hosts_are_ignored(log in arb_log()) {
            let mine = fold_host(&log, "a");
            prop_assume!(mine.is_some());
            let mut record = mine.clone();
            for (e, p) in &log {
                if e.host_id != "a" {
                    prop_assert_eq!(apply(&mut record, e, Position { partition: 9, offset: p.offset + 1000 }), Outcome::OtherHost);
                }
            }
            prop_assert_eq!(record, mine);
        }

        /// Time in service never decreases, never exceeds the host's observed life, and is
        /// never negative.
        #[test]
        fn time_in_service_is_bounded(log in arb_log(), later in 0i64..100) {
            for host in ["a", "b", "c"] {
                if let Some(r) = fold_host(&log, host) {
                    let now = Timestamp(r.last_observed_at.0 + later * HOUR);
                    let total = r.in_service_micros_at(now);
                    prop_assert!(total >= 0);
                    prop_assert!(total <= now.micros_since(r.first_seen_at));
                    prop_assert!(r.in_service_micros_at(Timestamp(now.0 + HOUR)) >= total);
                }
            }
        }
    }
}

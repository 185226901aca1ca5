//! The diff: last known state + a complete listing → the events that describe the change.
//! Pure code, no I/O, no clock: the listing carries its observation time.

use std::collections::{HashMap, HashSet};

use hostledger_schemas::{EventKind, FieldChange, HostState, Lifecycle, Timestamp};

/// What the fetcher last published about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    /// The state in the last event published for the host.
    pub state: HostState,
    /// Since when the host has been absent from complete listings, if it is.
    pub absent_since: Option<Timestamp>,
}

/// One host as a provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedHost {
    /// Stable, provider-scoped host id.
    pub host_id: String,
    /// What the provider says about it now.
    pub state: HostState,
}

/// A provider's answer: the hosts it listed, when, and any problems that make absence
/// unprovable (a bad row may be a host we cannot see this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Hosts listed.
    pub hosts: Vec<ListedHost>,
    /// When the listing was taken.
    pub observed_at: Timestamp,
    /// Problems with individual entries. When there are any, no host is declared missing.
    pub problems: Vec<String>,
}

/// A change to publish: an event without its id and source yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The host.
    pub host_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Full state after the change.
    pub state: HostState,
    /// Field-level differences from the last published state.
    pub changes: Vec<FieldChange>,
}

/// The result of one diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Changes to publish, in listing order, then missing hosts in id order.
    pub changes: Vec<Change>,
    /// Hosts whose absence clock starts (`Some`) or stops (`None`) with this listing. These
    /// are fetcher bookkeeping, not events.
    pub absence: Vec<(String, Option<Timestamp>)>,
}

/// Compares a listing with what was last published.
///
/// - a listed host never published: `HostDiscovered`;
/// - a listed host that was published as missing or retired and now is not retired:
///   `HostReturned`;
/// - a new lifecycle: `HostRetired` when it is `Retired`, otherwise `HostLifecycleChanged`;
/// - other attributes differ: `HostChanged`;
/// - a published host absent from a listing without problems for at least
///   `missing_grace_micros`: `HostWentMissing` (its last state, lifecycle `Missing`).
pub fn diff(
    known: &HashMap<String, KnownHost>,
    listing: &Listing,
    missing_grace_micros: i64,
) -> Diff {
    let mut out = Diff::default();
    let mut listed: HashSet<&str> = HashSet::with_capacity(listing.hosts.len());
    for host in &listing.hosts {
        if !listed.insert(host.host_id.as_str()) {
            continue; // providers report duplicates as problems; the first entry wins
        }
        let Some(previous) = known.get(&host.host_id) else {
            out.changes.push(Change {
                host_id: host.host_id.clone(),
                kind: EventKind::HostDiscovered,
                state: host.state.clone(),
                changes: Vec::new(),
            });
            continue;
        };
        if previous.absent_since.is_some() {
            out.absence.push((host.host_id.clone(), None));
        }
        if previous.state == host.state {
            continue;
        }
        let old = previous.state.lifecycle;
        let new = host.state.lifecycle;
        let kind = if new == Lifecycle::Retired && old != Lifecycle::Retired {
            EventKind::HostRetired
        } else if matches!(old, Lifecycle::Missing | Lifecycle::Retired) && new != old {
            EventKind::HostReturned
        } else if new != old {
            EventKind::HostLifecycleChanged
        } else {
            EventKind::HostChanged
        };
        out.changes.push(Change {
            host_id: host.host_id.clone(),
            kind,
            changes: host.state.changes_from(&previous.state),
            state: host.state.clone(),
        });
    }
    if !listing.problems.is_empty() {
        return out;
    }
    let mut missing: Vec<(&String, &KnownHost)> = known
        .iter()
        .filter(|(id, k)| {
            !listed.contains(id.as_str())
                && !matches!(k.state.lifecycle, Lifecycle::Missing | Lifecycle::Retired)
        })
        .collect();
    missing.sort_unstable_by_key(|(id, _)| *id);
    for (host_id, k) in missing {
        let since = match k.absent_since {
            Some(since) => since,
            None => {
                out.absence
                    .push((host_id.clone(), Some(listing.observed_at)));
                listing.observed_at
            }
        };
        if listing.observed_at.micros_since(since) >= missing_grace_micros {
            let mut state = k.state.clone();
            state.lifecycle = Lifecycle::Missing;
            out.changes.push(Change {
                host_id: host_id.clone(),
                kind: EventKind::HostWentMissing,
                changes: state.changes_from(&k.state),
                state,
            });
        }
    }
    out
}

/// Records what was published (only after the broker confirmed it) and the absence clocks.
pub fn advance(known: &mut HashMap<String, KnownHost>, diff: &Diff) {
    for (host_id, since) in &diff.absence {
        if let Some(k) = known.get_mut(host_id) {
            k.absent_since = *since;
        }
    }
    for change in &diff.changes {
        let entry = known
            .entry(change.host_id.clone())
            .or_insert_with(|| KnownHost {
                state: change.state.clone(),
                absent_since: None,
            });
        entry.state.clone_from(&change.state);
        // Once published, a host's clock is done: a missing host is not declared missing
        // again, and a listed one is not absent.
        entry.absent_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_767_225_600_000_000;
    const MIN: i64 = 60_000_000;

    fn host(id: &str, lifecycle: Lifecycle, role: &str) -> ListedHost {
        let mut state = HostState::new(id, lifecycle, "x");
        state.role = Some(role.into());
        ListedHost {
            host_id: id.into(),
            state,
        }
    }

    fn listing(hosts: Vec<ListedHost>, minutes: i64) -> Listing {
        Listing {
            hosts,
            observed_at: Timestamp(T + minutes * MIN),
            problems: Vec::new(),
        }
    }

    fn kinds(d: &Diff) -> Vec<(&str, EventKind)> {
        d.changes
            .iter()
            .map(|c| (c.host_id.as_str(), c.kind))
            .collect()
    }

    /// Runs a sequence of listings, advancing as if every publish succeeded.
    fn run(listings: &[Listing], grace_minutes: i64) -> Vec<Vec<(String, EventKind)>> {
        let mut known = HashMap::new();
        listings
            .iter()
            .map(|l| {
                let d = diff(&known, l, grace_minutes * MIN);
                advance(&mut known, &d);
                d.changes
                    .iter()
                    .map(|c| (c.host_id.clone(), c.kind))
                    .collect()
            })
            .collect()
    }

    use EventKind::*;
    use Lifecycle::*;

    #[test]
    fn discovery_change_and_lifecycle() {
        let steps = run(
            &[
                listing(
                    vec![host("a", InService, "web"), host("b", Provisioning, "db")],
                    0,
                ),
                listing(
                    vec![host("a", InService, "web"), host("b", Provisioning, "db")],
                    1,
                ),
                listing(
                    vec![host("a", InService, "log"), host("b", InService, "db")],
                    2,
                ),
                listing(
                    vec![host("a", Retired, "log"), host("b", OutOfService, "db")],
                    3,
                ),
                listing(
                    vec![host("a", InService, "log"), host("b", OutOfService, "db")],
                    4,
                ),
            ],
            0,
        );
        let s = |v: &[(&str, EventKind)]| {
            v.iter()
                .map(|(h, k)| (h.to_string(), *k))
                .collect::<Vec<_>>()
        };
        assert_eq!(steps[0], s(&[("a", HostDiscovered), ("b", HostDiscovered)]));
        assert_eq!(steps[1], s(&[]), "an unchanged listing publishes nothing");
        assert_eq!(
            steps[2],
            s(&[("a", HostChanged), ("b", HostLifecycleChanged)])
        );
        assert_eq!(
            steps[3],
            s(&[("a", HostRetired), ("b", HostLifecycleChanged)])
        );
        assert_eq!(steps[4], s(&[("a", HostReturned)]));
    }

    #[test]
    fn missing_only_after_grace_and_back() {
        let steps = run(
            &[
                listing(
                    vec![host("a", InService, "web"), host("b", InService, "db")],
                    0,
                ),
                listing(vec![host("a", InService, "web")], 1), // b absent: clock starts
                listing(vec![host("a", InService, "web")], 5), // 4 min < 10 min grace
                listing(vec![host("a", InService, "web")], 11), // 10 min: missing
                listing(vec![host("a", InService, "web")], 12), // already missing: nothing
                listing(
                    vec![host("a", InService, "web"), host("b", InService, "db")],
                    13,
                ),
            ],
            10,
        );
        assert!(steps[1].is_empty() && steps[2].is_empty());
        assert_eq!(steps[3], vec![("b".to_owned(), HostWentMissing)]);
        assert!(steps[4].is_empty());
        assert_eq!(steps[5], vec![("b".to_owned(), HostReturned)]);
    }

    #[test]
    fn absence_clock_resets_when_host_reappears() {
        let steps = run(
            &[
                listing(vec![host("a", InService, "web")], 0),
                listing(vec![], 1),
                listing(vec![host("a", InService, "web")], 5),
                listing(vec![], 9),
                listing(vec![], 15), // 6 min since it vanished again: not yet
                listing(vec![], 19),
            ],
            10,
        );
        assert_eq!(steps[0], vec![("a".to_owned(), HostDiscovered)]);
        assert!(steps[1..5].iter().all(Vec::is_empty), "{steps:?}");
        assert_eq!(steps[5], vec![("a".to_owned(), HostWentMissing)]);
    }

    #[test]
    fn a_listing_with_problems_declares_nobody_missing() {
        let mut known = HashMap::new();
        let first = diff(
            &known,
            &listing(
                vec![host("a", InService, "web"), host("b", InService, "db")],
                0,
            ),
            0,
        );
        advance(&mut known, &first);
        let mut partial = listing(vec![host("a", InService, "log")], 1);
        partial
            .problems
            .push("inventory.csv line 3: unknown status \"zombie\"".into());
        let d = diff(&known, &partial, 0);
        assert_eq!(
            kinds(&d),
            vec![("a", HostChanged)],
            "good rows still count; absence proves nothing"
        );
        assert!(d.absence.is_empty());
    }

    #[test]
    fn changes_list_fields() {
        let mut known = HashMap::new();
        let first = diff(&known, &listing(vec![host("a", InService, "web")], 0), 0);
        advance(&mut known, &first);
        let d = diff(&known, &listing(vec![host("a", OutOfService, "db")], 1), 0);
        let fields: Vec<_> = d.changes[0]
            .changes
            .iter()
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(fields, ["lifecycle", "role"]);
        assert_eq!(d.changes[0].changes[1].old.as_deref(), Some("web"));
        assert_eq!(d.changes[0].changes[1].new.as_deref(), Some("db"));
    }

    #[test]
    fn nothing_is_known_until_advanced() {
        // A failed publish does not call advance: the same diff comes out next time.
        let known = HashMap::new();
        let l = listing(vec![host("a", InService, "web")], 0);
        assert_eq!(diff(&known, &l, 0), diff(&known, &l, 0));
    }
}

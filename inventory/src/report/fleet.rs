//! The figures the page shows, computed from the hosts alone: hosts in service over time,
//! hosts per phase. Pure; no geometry, no HTML.

use std::collections::BTreeMap;

use hostledger_schemas::Timestamp;

use super::ReportHost;

/// Fleet size in service over time: step points `(time, hosts in service)` from all
/// intervals, starting at the earliest `first_seen_at` (or interval start), ending at `as_of`.
///
/// Each point holds from its time until the next point's. Intervals are half-open: a host whose
/// interval ends at `t` no longer counts at `t`. Interval ends after `as_of` count as open, and
/// intervals starting after `as_of` are ignored. Without hosts: `[(as_of, 0)]`.
pub fn fleet_in_service(hosts: &[ReportHost], as_of: Timestamp) -> Vec<(Timestamp, u64)> {
    let mut start = as_of.0;
    let mut deltas: BTreeMap<i64, i64> = BTreeMap::new();
    for host in hosts {
        start = start.min(host.first_seen_at.0);
        for &(from, to) in &host.intervals {
            let empty = to.is_some_and(|to| to.0 <= from.0);
            if from.0 > as_of.0 || empty {
                continue;
            }
            start = start.min(from.0);
            *deltas.entry(from.0).or_default() += 1;
            if let Some(to) = to
                && to.0 <= as_of.0
            {
                *deltas.entry(to.0).or_default() -= 1;
            }
        }
    }
    let mut points: Vec<(Timestamp, u64)> = vec![(Timestamp(start), 0)];
    let mut count: i64 = 0;
    for (t, delta) in deltas {
        if delta == 0 {
            continue;
        }
        count += delta;
        let n = count.max(0) as u64;
        match points.last_mut() {
            Some(last) if last.0.0 == t => last.1 = n,
            Some(last) if last.1 == n => {}
            _ => points.push((Timestamp(t), n)),
        }
    }
    if points.last().is_some_and(|p| p.0.0 < as_of.0) {
        let n = points.last().map_or(0, |p| p.1);
        points.push((as_of, n));
    }
    points
}

/// How many hosts are in each phase, by phase name (any phase, known or not).
pub(super) fn phase_counts(hosts: &[ReportHost]) -> BTreeMap<&str, usize> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for host in hosts {
        *counts.entry(host.phase.as_str()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::super::axis::HOUR;
    use super::super::tests::host;
    use super::*;

    const H: i64 = HOUR;

    fn steps(points: &[(Timestamp, u64)]) -> Vec<(i64, u64)> {
        points.iter().map(|&(t, n)| (t.0 / H, n)).collect()
    }

    #[test]
    fn fleet_steps_over_overlapping_intervals() {
        let a = host("dc/pdx1/A", 0, &[(0, Some(4 * H)), (6 * H, None)]);
        let b = host("dc/pdx1/B", 2 * H, &[(3 * H, None)]);
        let points = fleet_in_service(&[a, b], Timestamp(10 * H));
        assert_eq!(steps(&points), [(0, 1), (3, 2), (4, 1), (6, 2), (10, 2)]);
    }

    #[test]
    fn fleet_handles_hosts_without_intervals() {
        // Alone: zero from first seen to as of.
        let idle = host("dc/pdx1/C", -2 * H, &[]);
        let points = fleet_in_service(std::slice::from_ref(&idle), Timestamp(5 * H));
        assert_eq!(steps(&points), [(-2, 0), (5, 0)]);
        // With others: it only moves the start earlier.
        let a = host("dc/pdx1/A", 0, &[(H, Some(3 * H))]);
        let points = fleet_in_service(&[a, idle], Timestamp(5 * H));
        assert_eq!(steps(&points), [(-2, 0), (1, 1), (3, 0), (5, 0)]);
        // No hosts at all.
        assert_eq!(
            fleet_in_service(&[], Timestamp(5 * H)),
            [(Timestamp(5 * H), 0)]
        );
    }

    #[test]
    fn fleet_merges_simultaneous_changes_and_clips_to_as_of() {
        // A hands over to B at 2h (no step); C ends exactly at as of; D starts after as of.
        let a = host("a", 0, &[(0, Some(2 * H))]);
        let b = host("b", 0, &[(2 * H, None)]);
        let c = host("c", 0, &[(H, Some(4 * H))]);
        let d = host("d", 0, &[(5 * H, None)]);
        let points = fleet_in_service(&[a, b, c, d], Timestamp(4 * H));
        assert_eq!(steps(&points), [(0, 1), (1, 2), (4, 1)]);
    }

    #[test]
    fn phases_are_counted_by_name() {
        let a = host("a", 0, &[]);
        let mut b = host("b", 0, &[]);
        b.phase = "Retired".into();
        let mut c = host("c", 0, &[]);
        c.phase = "Unheard-of".into();
        let hosts = [a.clone(), b, a, c];
        let counts = phase_counts(&hosts);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [("InService", 2), ("Retired", 1), ("Unheard-of", 1)]
        );
        assert!(phase_counts(&[]).is_empty());
    }
}

//! Diff benchmark: 100,000 known hosts against a listing with 1% changed (and a few new and
//! gone), best of several runs, next to a naive baseline that compares every pair through
//! a sorted list search.
//!
//! usage: cargo bench -p hostledger-producers --bench diff -- [--hosts N]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hostledger_producers::diff::{KnownHost, ListedHost, Listing, diff};
use hostledger_schemas::{HostState, Lifecycle, Timestamp};

fn state(i: usize, role: &str) -> HostState {
    let mut s = HostState::new(
        format!("host-{i:06}.example.com"),
        Lifecycle::InService,
        "running",
    );
    s.region = Some(format!("region-{}", i % 7));
    s.zone = Some(format!("zone-{}", i % 21));
    s.role = Some(role.to_owned());
    s.team = Some(format!("team-{}", i % 13));
    s.addresses = vec![format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)];
    s.machine_type = Some("m6i.xlarge".into());
    s.attributes = BTreeMap::from([
        ("image".to_owned(), "debian-12".to_owned()),
        ("owner".to_owned(), format!("svc-{}", i % 97)),
        ("cost-center".to_owned(), format!("cc-{}", i % 31)),
    ]);
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hosts: usize = args
        .iter()
        .position(|a| a == "--hosts")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--hosts takes a number"))
        .unwrap_or(100_000);
    let known: HashMap<String, KnownHost> = (0..hosts)
        .map(|i| {
            (
                format!("aws/1234/eu-1/i-{i:08x}"),
                KnownHost {
                    state: state(i, "web"),
                    absent_since: None,
                },
            )
        })
        .collect();
    let mut listed: Vec<ListedHost> = (0..hosts)
        .filter(|i| i % 1000 != 7) // 0.1% gone
        .map(|i| ListedHost {
            host_id: format!("aws/1234/eu-1/i-{i:08x}"),
            state: state(i, if i % 100 == 3 { "db" } else { "web" }), // 1% changed
        })
        .collect();
    listed.extend((hosts..hosts + hosts / 1000).map(|i| ListedHost {
        host_id: format!("aws/1234/eu-1/i-{i:08x}"),
        state: state(i, "web"),
    }));
    let listing = Listing {
        hosts: listed,
        observed_at: Timestamp(1_767_225_600_000_000),
        problems: Vec::new(),
    };

    let mut best = Duration::MAX;
    let mut changes = 0;
    for _ in 0..7 {
        let started = Instant::now();
        let d = diff(&known, &listing, 0);
        best = best.min(started.elapsed());
        changes = d.changes.len();
    }

    // Baseline: the obvious approach, a sorted vector of known hosts searched per listed host
    // and the listing searched per known host.
    let mut sorted: Vec<(&String, &KnownHost)> = known.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut listed_ids: Vec<&str> = listing.hosts.iter().map(|h| h.host_id.as_str()).collect();
    listed_ids.sort_unstable();
    let mut baseline = Duration::MAX;
    let mut baseline_changes = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let mut n = 0;
        for h in &listing.hosts {
            match sorted.binary_search_by(|(id, _)| id.as_str().cmp(&h.host_id)) {
                Ok(i) if sorted[i].1.state != h.state => {
                    n += h.state.changes_from(&sorted[i].1.state).len().min(1)
                }
                Ok(_) => {}
                Err(_) => n += 1,
            }
        }
        for (id, _) in &sorted {
            if listed_ids.binary_search(&id.as_str()).is_err() {
                n += 1;
            }
        }
        baseline = baseline.min(started.elapsed());
        baseline_changes = n;
    }
    println!("diff of {hosts} known hosts against a listing with 1% changed, 0.1% new, 0.1% gone:");
    println!(
        "  hostledger diff: {:>8.1} ms  ({changes} events)   target <= 100 ms: {}",
        best.as_secs_f64() * 1e3,
        if best <= Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  sorted-search baseline: {:>8.1} ms  ({baseline_changes} changes)   hostledger is {:.1}x faster",
        baseline.as_secs_f64() * 1e3,
        baseline.as_secs_f64() / best.as_secs_f64()
    );
}

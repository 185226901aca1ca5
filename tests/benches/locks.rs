//! Host lock benchmark on the real stack: how long taking and releasing a lock takes, against
//! the API server's own floor for the same verbs, measured in the same run.
//!
//! - acquire (a HostLock create, through the admission policy) and release (a delete with a
//!   uid precondition), one at a time, `--rounds N` times, p50/p99 in milliseconds;
//! - the floor: creating and deleting a ConfigMap (a built-in object with no policy) with
//!   the same client, the same number of times;
//! - contention: `--contenders N` tasks racing for one host, over and over; exactly one wins
//!   each round (checked), and the time until every contender has its answer.
//!
//! - host groups: `--group-hosts N` Hosts in `--groups M` HostGroups (one label value each),
//!   the real `hostledger project` keeping their statuses; a member's phase changed
//!   `--changes K` times, and the time from the Host write until its group's status shows
//!   it, p50/p99.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo build --release -p hostledger-cli --bin hostledger &&
//!        cargo bench -p hostledger-e2e --bench locks -- [--rounds N] [--contenders N]
//!        [--group-hosts N] [--groups M] [--changes K]

use std::time::{Duration, Instant};

use hostledger_e2e::{Figure, TestEnv, bench_arg, percentile};
use hostledger_k8s::locks::{Acquired, LockStore};
use hostledger_model::HostLock;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn request(name: &str, holder: &str) -> HostLock {
    HostLock::request(
        name,
        &format!("bench/{name}"),
        Default::default(),
        holder,
        "hostledger-admin",
        "benchmark",
        Duration::from_secs(60),
    )
}

#[tokio::main]
async fn main() {
    let rounds = bench_arg("--rounds", 300);
    let contenders = bench_arg("--contenders", 20);
    let env = TestEnv::new("benchlocks", 1).await;
    let store = LockStore::new(env.kube.clone(), &env.namespace);
    let user = hostledger_k8s::locks::whoami(&env.kube)
        .await
        .expect("whoami");
    assert_eq!(user, "hostledger-admin", "the stack's admin identity");

    // Warm up connections and the API server's caches for both kinds.
    let maps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), &env.namespace);
    let (mut acquire, mut release, mut create, mut delete) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + 10 {
        let name = format!("host-{}", round % 10);
        let started = Instant::now();
        let lock = match store
            .acquire(&request(&name, "bench"))
            .await
            .expect("acquire")
        {
            Acquired::New(l) => l,
            other => panic!("a free host was not locked: {other:?}"),
        };
        let acquired = started.elapsed();
        let started = Instant::now();
        assert!(store.release(&lock).await.expect("release"));
        let released = started.elapsed();

        let map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "data": {"reason": "benchmark"}
        }))
        .expect("configmap");
        let started = Instant::now();
        maps.create(&PostParams::default(), &map)
            .await
            .expect("create ConfigMap");
        let created = started.elapsed();
        let started = Instant::now();
        maps.delete(&name, &DeleteParams::default())
            .await
            .expect("delete ConfigMap");
        let deleted = started.elapsed();
        if round >= 10 {
            acquire.push(ms(acquired));
            release.push(ms(released));
            create.push(ms(created));
            delete.push(ms(deleted));
        }
    }
    let (acquire, release, create, delete) = (
        sorted(acquire),
        sorted(release),
        sorted(create),
        sorted(delete),
    );

    // Contention: every contender asks at once; one wins, the others read who holds it.
    let mut answered = Vec::new();
    for round in 0..20 {
        let name = format!("contended-{round}");
        let started = Instant::now();
        let results = futures::future::join_all((0..contenders).map(|c| {
            let store = store.clone();
            let name = name.clone();
            async move {
                store
                    .acquire(&request(&name, &format!("contender-{c}")))
                    .await
                    .expect("acquire")
            }
        }))
        .await;
        answered.push(ms(started.elapsed()));
        let winners: Vec<_> = results
            .iter()
            .filter_map(|r| match r {
                Acquired::New(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        for r in &results {
            if let Acquired::HeldBy(l) = r {
                assert_eq!(
                    l.spec.holder, winners[0].spec.holder,
                    "told the real holder"
                );
            }
        }
        assert!(store.release(winners[0]).await.expect("release"));
    }
    let answered = sorted(answered);

    println!("host locks, {rounds} rounds, one at a time (ms):");
    println!("{:<44} {:>8} {:>8}", "", "p50", "p99");
    let rows = [
        ("acquire (HostLock create + policy)", &acquire),
        ("  floor: ConfigMap create", &create),
        ("release (HostLock delete, uid precondition)", &release),
        ("  floor: ConfigMap delete", &delete),
    ];
    for (what, v) in rows {
        println!(
            "{what:<44} {:>8.1} {:>8.1}",
            percentile(v, 0.5),
            percentile(v, 0.99)
        );
    }
    println!(
        "{contenders} contenders for one host, until all answered (20 rounds): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&answered, 0.5),
        percentile(&answered, 0.99)
    );
    for (figure, q, v, floor, floor_name) in [
        (
            "lock acquire p50",
            0.5,
            &acquire,
            &create,
            "ConfigMap create p50",
        ),
        (
            "lock acquire p99",
            0.99,
            &acquire,
            &create,
            "ConfigMap create p99",
        ),
        (
            "lock release p50",
            0.5,
            &release,
            &delete,
            "ConfigMap delete p50",
        ),
        (
            "lock release p99",
            0.99,
            &release,
            &delete,
            "ConfigMap delete p99",
        ),
    ] {
        Figure::new(figure, percentile(v, q), "ms", "", None)
            .with_floor(floor_name, percentile(floor, q))
            .record();
    }
    Figure::new(
        &format!("{contenders} contenders for one host, all answered, p99"),
        percentile(&answered, 0.99),
        "ms",
        "exactly one winner",
        Some(true),
    )
    .record();
    env.cleanup().await;

    group_status_latency(
        bench_arg("--group-hosts", 10_000),
        bench_arg("--groups", 100),
        bench_arg("--changes", 20),
    )
    .await;
}

/// Hosts in groups, the projector keeping the statuses: how long after a Host write its
/// group's status shows it.
async fn group_status_latency(hosts: usize, groups: usize, changes: usize) {
    use futures::StreamExt as _;
    use hostledger_k8s::HostStore;
    use hostledger_model::{HostGroup, HostRecord, Position};
    use hostledger_schemas::Lifecycle;
    let env = TestEnv::new("benchgroups", 1).await;
    let store = HostStore::new(env.kube.clone(), &env.namespace);
    let team = |i: usize| format!("team-{:03}", i % groups);
    let mut records: Vec<HostRecord> = (0..hosts)
        .map(|i| {
            let mut e = hostledger_e2e::event(
                &format!("bench/g/h-{i:05}"),
                0,
                0,
                Lifecycle::InService,
                "app",
            );
            e.state.team = Some(team(i));
            HostRecord::first(
                &e,
                Position {
                    partition: 0,
                    offset: i as i64,
                },
            )
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(records.iter().map(|r| store.write(r, None)))
        .buffer_unordered(16)
        .for_each(|r| async {
            r.expect("write Host");
        })
        .await;
    println!(
        "\nhost groups: wrote {hosts} Hosts in {:.1} s; {groups} groups of {} hosts",
        started.elapsed().as_secs_f64(),
        hosts / groups.max(1)
    );
    let api: Api<HostGroup> = Api::namespaced(env.kube.clone(), &env.namespace);
    for g in 0..groups {
        let group: HostGroup = serde_json::from_value(serde_json::json!({
            "apiVersion": "hostledger.dev/v1alpha1", "kind": "HostGroup",
            "metadata": {"name": team(g)},
            "spec": {"selector": format!("team={}", team(g)), "minInService": 1},
        }))
        .expect("group");
        api.create(&PostParams::default(), &group)
            .await
            .expect("create HostGroup");
    }
    let mut projector = env.spawn_projector(&[], false);
    let in_service = async |name: &str| {
        api.get(name)
            .await
            .ok()
            .and_then(|g| g.status)
            .map(|s| s.in_service)
    };
    let started = Instant::now();
    // Every group's first status (they are written one after another, in no set order).
    let all_counted = async || {
        let listed = api.list(&Default::default()).await.map(|l| l.items);
        listed.is_ok_and(|listed| {
            listed.len() == groups
                && listed.iter().all(|g| {
                    g.status
                        .as_ref()
                        .is_some_and(|s| s.in_service == (hosts / groups) as i64)
                })
        })
    };
    while !all_counted().await {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "group statuses never came"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "first statuses of all groups {:.1} s after the projector started",
        started.elapsed().as_secs_f64()
    );
    let mut latencies = Vec::new();
    for k in 0..changes {
        let i = (k * 7919) % hosts;
        let record = &mut records[i];
        let (phase, expect_delta) = if record.phase == Lifecycle::InService {
            (Lifecycle::OutOfService, -1)
        } else {
            (Lifecycle::InService, 1)
        };
        let group = team(i);
        let before = in_service(&group).await.expect("status");
        record.phase = phase;
        record.state.lifecycle = phase;
        store.write(record, None).await.expect("write Host");
        let written = Instant::now();
        while in_service(&group).await != Some(before + expect_delta) {
            assert!(
                written.elapsed() < Duration::from_secs(60),
                "group {group} never followed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(ms(written.elapsed()));
    }
    let latencies = sorted(latencies);
    println!(
        "group status after a Host write ({changes} changes, {hosts} hosts in {groups} groups): p50 {:.0} ms, p99 {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        Figure::new(
            &format!("group status update {name}, {hosts} hosts in {groups} groups"),
            percentile(&latencies, q),
            "ms",
            "<= 1,000 ms",
            Some(percentile(&latencies, q) <= 1000.0),
        )
        .record();
    }
    let _ = projector.start_kill();
    let _ = projector.wait().await;
    env.cleanup().await;
}

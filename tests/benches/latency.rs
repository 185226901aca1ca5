//! Live latency on the real stack: events produced at a fixed rate, the real `hostledger
//! project` process applying them, a Kubernetes watch on the Hosts seeing the change. For each
//! scenario (hosts, events/s) it prints p50/p95/p99/max of produced (acknowledged by the
//! broker) → seen by the watch, whether every event was applied and how long after the last
//! one, next to the API server's status-write floor measured in the same run. Then, per host
//! count, the sustainable rate (the highest probed at which the projector keeps up), and the
//! time a projector needs after SIGKILL and a restart under the same `--instance-id`. Every
//! run and every probe starts on fresh Hosts, so no run measures the objects of another.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo build --release -p hostledger-cli --bin hostledger &&
//!        cargo bench -p hostledger-e2e --bench latency -- [--secs 60] [--probe-secs 15]
//!          [--scenarios 200x50,200x200,200x1000,10000x1000] [--json FILE]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hostledger_e2e::{Figure, TestEnv, bench_arg, bench_text_arg, event, percentile};
use hostledger_k8s::HostStore;
use hostledger_model::names::labels;
use hostledger_model::{HostRecord, Position, fold::apply};
use hostledger_schemas::{Codec, HostEvent, Lifecycle};
use kube::runtime::watcher::{self, Event};

/// The writes the projector makes per touched host and batch: the status. History is the
/// log's (served by the history API), so no chunk is written beside it.
const WRITES_PER_HOST: f64 = 1.0;
/// p99 target while the rate is at most half of what the write floor allows.
const P99_TARGET_SECS: f64 = 0.350;

fn host(h: usize) -> String {
    format!("bench/l1/host-{h:06}")
}

/// The `n`-th change of host `h`: its address changes, its labels (role, team, phase, ...)
/// do not, so the change is one status write. (A change of a labelled field is a second
/// write: the labels are on the object, the status is its subresource.)
fn change(h: usize, n: u64) -> HostEvent {
    event(&host(h), n, n as i64, Lifecycle::InService, "web")
}

/// (host index, observation number) of an event made by [`change`] (`HOST#N`).
fn parse_id(id: &str) -> Option<(usize, u64)> {
    let (host, n) = id.rsplit_once('#')?;
    let h = host.rsplit_once('-')?.1.parse().ok()?;
    Some((h, n.parse().ok()?))
}

/// A projector process on the benchmark's slice of the stack.
fn projector(env: &TestEnv, instance: &str) -> tokio::process::Child {
    env.spawn_projector(&["--instance-id", instance], false)
}

/// Peak resident memory of a process, from /proc (Linux), in MiB.
fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// When the watch saw each host reach each observation number.
type Seen = Arc<Mutex<HashMap<usize, Vec<(u64, Instant)>>>>;

/// Watches the Hosts of the namespace and records, per host, the observation number of its
/// last applied event each time it changes.
fn watch(env: &TestEnv) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let api = env.hosts();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = Box::pin(watcher::watcher(api, watcher::Config::default()));
        while let Some(item) = stream.next().await {
            let now = Instant::now();
            let host = match item {
                Ok(Event::Apply(h) | Event::InitApply(h)) => h,
                _ => continue,
            };
            let Some(status) = host.status else { continue };
            if let Some((h, n)) = parse_id(&status.last_event.id) {
                record
                    .lock()
                    .expect("lock")
                    .entry(h)
                    .or_default()
                    .push((n, now));
            }
        }
    });
    (seen, task)
}

/// Waits until the watch has seen every host at observation `n` or later.
async fn wait_seen(seen: &Seen, hosts: usize, n: u64, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let done = {
            let seen = seen.lock().expect("lock");
            (0..hosts)
                .filter(|h| seen.get(h).is_some_and(|v| v.iter().any(|(m, _)| *m >= n)))
                .count()
        };
        if done == hosts {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// What one run at a fixed rate measured.
struct Run {
    /// Latencies of the applied events, sorted.
    latencies: Vec<f64>,
    /// Median latency of the events sent in the first and in the last third of the run.
    first_third_p50: f64,
    last_third_p50: f64,
    sent: usize,
    applied: usize,
    /// From the last acknowledged event until every event was seen (None: not within the
    /// drain time).
    drained_after: Option<f64>,
}

impl Run {
    /// Every event applied, and the lag did not grow during the run: the events of its last
    /// third waited at most 1.5 x as long as those of its first third (+ 250 ms of noise).
    fn keeps_up(&self) -> bool {
        self.applied == self.sent
            && self.drained_after.is_some()
            && self.last_third_p50 <= 1.5 * self.first_third_p50 + 0.25
    }
}

/// Produces HostChanged events round-robin over `hosts` hosts at `rate` per second for `secs`
/// seconds, starting at observation `first`, and measures when the watch sees each applied.
async fn run_at(
    env: &TestEnv,
    seen: &Seen,
    hosts: usize,
    rate: usize,
    secs: f64,
    first: u64,
) -> (Run, u64) {
    let producer = env.kafka.producer(None).expect("producer");
    let codec = Codec::new();
    let topic = env.kafka.settings().topics.events.clone();
    let total = (rate as f64 * secs) as usize;
    let acked: Arc<Mutex<Vec<(usize, u64, Instant)>>> = Arc::default();
    let mut pending = Vec::with_capacity(total);
    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0usize;
    while sent < total {
        ticker.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(total);
        while sent < due {
            let h = sent % hosts;
            let n = first + (sent / hosts) as u64;
            let payload = codec.encode(&change(h, n)).expect("encodes");
            let key = host(h);
            let delivery = loop {
                let record = rdkafka::producer::FutureRecord::to(&topic)
                    .key(key.as_str())
                    .payload(&payload);
                match producer.send_result(record) {
                    Ok(d) => break d,
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            };
            let acked = acked.clone();
            pending.push(tokio::spawn(async move {
                if let Ok(Ok(_)) = delivery.await {
                    acked.lock().expect("lock").push((h, n, Instant::now()));
                }
            }));
            sent += 1;
        }
    }
    for p in pending {
        let _ = p.await;
    }
    let last_n = first + ((total.max(1) - 1) / hosts) as u64;
    let last_ack = acked
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, _, t)| *t)
        .max()
        .unwrap_or_else(Instant::now);
    // Every host whose last event is `last_n` or `last_n - 1` must get there.
    let drain = Duration::from_secs(60);
    let deadline = last_ack + drain;
    let mut drained_after = None;
    while Instant::now() < deadline {
        let all = {
            let seen = seen.lock().expect("lock");
            acked
                .lock()
                .expect("lock")
                .iter()
                .all(|(h, n, _)| seen.get(h).is_some_and(|v| v.iter().any(|(m, _)| m >= n)))
        };
        if all {
            drained_after = Some(last_ack.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().expect("lock");
    let acked = acked.lock().expect("lock");
    let mut timed = Vec::with_capacity(acked.len());
    for (h, n, at) in acked.iter() {
        let applied = seen
            .get(h)
            .and_then(|v| v.iter().filter(|(m, _)| m >= n).map(|(_, t)| *t).min());
        if let Some(t) = applied {
            timed.push((*at, t.saturating_duration_since(*at).as_secs_f64()));
        }
    }
    let third = |from: f64, to: f64| {
        let span = last_ack.saturating_duration_since(started).as_secs_f64();
        let mut part: Vec<f64> = timed
            .iter()
            .filter(|(at, _)| {
                let x = at.saturating_duration_since(started).as_secs_f64() / span.max(1e-9);
                x >= from && x <= to
            })
            .map(|(_, l)| *l)
            .collect();
        part.sort_by(f64::total_cmp);
        percentile(&part, 0.5)
    };
    let (first_third_p50, last_third_p50) = (third(0.0, 1.0 / 3.0), third(2.0 / 3.0, 1.0));
    let mut latencies: Vec<f64> = timed.iter().map(|(_, l)| *l).collect();
    latencies.sort_by(f64::total_cmp);
    let run = Run {
        first_third_p50,
        last_third_p50,
        applied: latencies.len(),
        sent: total,
        latencies,
        drained_after,
    };
    (run, last_n + 1)
}

/// The API server's status-write floor: status applies of changed records, issued directly
/// with the projector's verbs and concurrency (16 in flight), in writes per second.
async fn write_floor(env: &TestEnv, hosts: usize) -> f64 {
    let ns = env.extra_namespace("floor").await;
    let store = HostStore::new(env.kube.clone(), &ns);
    let mut records: Vec<Option<HostRecord>> = vec![None; hosts];
    for (h, slot) in records.iter_mut().enumerate() {
        apply(
            slot,
            &change(h, 0),
            Position {
                partition: 0,
                offset: 0,
            },
        );
    }
    let records: Vec<HostRecord> = records.into_iter().flatten().collect();
    futures::stream::iter(records.iter())
        .map(|r| store.write(r, None))
        .buffer_unordered(16)
        .for_each(|r| async move {
            r.expect("create floor Host");
        })
        .await;
    let rounds = (2_000 / hosts).max(1);
    let mut changed = Vec::with_capacity(rounds * hosts);
    for round in 1..=rounds as u64 {
        for (h, r) in records.iter().enumerate() {
            let mut slot = Some(r.clone());
            apply(
                &mut slot,
                &change(h, round),
                Position {
                    partition: 0,
                    offset: round as i64,
                },
            );
            changed.extend(slot);
        }
    }
    let started = Instant::now();
    futures::stream::iter(changed.iter())
        .map(|r| {
            let labels = labels(r);
            let store = &store;
            async move { store.write_status(r, &labels).await }
        })
        .buffer_unordered(16)
        .for_each(|r| async move {
            r.expect("floor status write");
        })
        .await;
    changed.len() as f64 / started.elapsed().as_secs_f64()
}

/// Fresh Hosts on a fresh slice of the stack, discovered and projected by a running
/// projector, with a watch recording what it applies.
struct Fleet {
    env: TestEnv,
    instance: String,
    child: tokio::process::Child,
    seen: Seen,
    watch_task: tokio::task::JoinHandle<()>,
}

impl Fleet {
    async fn start(hosts: usize) -> Fleet {
        let env = TestEnv::new("latency", 6).await;
        let discovery: Vec<HostEvent> = (0..hosts).map(|h| change(h, 0)).collect();
        env.produce(&discovery).await;
        let instance = format!("{}-p", env.id);
        let child = projector(&env, &instance);
        let (seen, watch_task) = watch(&env);
        assert!(
            wait_seen(&seen, hosts, 0, Duration::from_secs(600)).await,
            "the projector did not create the {hosts} Hosts"
        );
        Fleet {
            env,
            instance,
            child,
            seen,
            watch_task,
        }
    }

    /// SIGKILL, an immediate restart under the same instance id, then one new event (its
    /// observation number `next`): seconds from the restart until the watch sees it applied.
    async fn recovery(&mut self, next: u64) -> f64 {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
        let restarted = Instant::now();
        self.child = projector(&self.env, &self.instance);
        self.env.produce(&[change(0, next)]).await;
        let limit = Duration::from_secs(120);
        loop {
            let done = self
                .seen
                .lock()
                .expect("lock")
                .get(&0)
                .is_some_and(|v| v.iter().any(|(m, _)| *m >= next));
            if done {
                return restarted.elapsed().as_secs_f64();
            }
            assert!(
                restarted.elapsed() < limit,
                "no event applied after restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.child.start_kill().expect("stop the projector");
        let _ = self.child.wait().await;
        self.watch_task.abort();
        self.env.cleanup().await;
    }
}

fn parse_scenarios(text: &str) -> Vec<(usize, usize)> {
    text.split(',')
        .map(|s| {
            let (h, r) = s
                .split_once('x')
                .unwrap_or_else(|| panic!("--scenarios takes HOSTSxRATE,..., not {s:?}"));
            (
                h.parse().expect("hosts a number"),
                r.parse().expect("rate a number"),
            )
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let secs = bench_arg("--secs", 60) as f64;
    let probe_secs = bench_arg("--probe-secs", 15) as f64;
    let scenarios = parse_scenarios(
        &bench_text_arg("--scenarios")
            .unwrap_or_else(|| "200x50,200x200,200x1000,10000x1000".into()),
    );
    println!(
        "live latency: produced (broker ack) -> Host change seen by a Kubernetes watch; {secs} s per rate ({})",
        if cfg!(debug_assertions) {
            "dev build: not representative"
        } else {
            "release build"
        }
    );

    let mut by_hosts: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(hosts, rate) in &scenarios {
        by_hosts.entry(hosts).or_default().push(rate);
    }
    println!(
        "\n{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10} {:>9} {:>8}",
        "hosts",
        "events/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "applied",
        "drained s",
        "target",
        "result"
    );
    let mut sustainable: Vec<(usize, usize, f64)> = Vec::new();
    let mut recovery: Option<f64> = None;
    let mut rss: Option<f64> = None;
    for (hosts, rates) in by_hosts {
        // Every run starts on fresh Hosts, so that no run measures what another left behind
        // (a namespace that still keeps HostHistory chunks grows them with every event).
        let first = Fleet::start(hosts).await;
        let floor = write_floor(&first.env, hosts.min(2_000)).await;
        let allowed = floor / WRITES_PER_HOST;
        let mut fleet = Some(first);
        for rate in rates {
            let mut f = match fleet.take() {
                Some(f) => f,
                None => Fleet::start(hosts).await,
            };
            let (run, next) = run_at(&f.env, &f.seen, hosts, rate, secs, 1).await;
            let p = |q| percentile(&run.latencies, q) * 1000.0;
            let p99 = p(0.99) / 1000.0;
            // At most half of what the floor allows: p99 <= 350 ms. Above: p99 <= 1.25 x the
            // time the floor needs for the writes of one second of events (touched hosts x
            // writes per host), every event applied, the lag not growing.
            let (target, limit) = if (rate as f64) <= allowed / 2.0 {
                ("<= 350 ms".to_owned(), P99_TARGET_SECS)
            } else {
                let pending = (hosts.min(rate) as f64) * WRITES_PER_HOST / floor;
                (format!("<= {:.0} ms", 1250.0 * pending), 1.25 * pending)
            };
            let pass = run.keeps_up() && p99 <= limit;
            println!(
                "{hosts:>7} {rate:>9} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>5}/{:<5} {:>10} {target:>9} {:>8}",
                p(0.5),
                p(0.95),
                p(0.99),
                p(1.0),
                run.applied,
                run.sent,
                run.drained_after
                    .map_or("never".to_owned(), |d| format!("{d:.2}")),
                if pass { "met" } else { "NOT met" }
            );
            Figure::new(
                &format!("live p99, {rate} events/s over {hosts} hosts"),
                p99,
                "s",
                &target,
                Some(pass),
            )
            .with_floor("status-write floor, writes/s", floor)
            .record();
            if recovery.is_none() {
                rss = peak_rss_mib(f.child.id());
                let back = f.recovery(next).await;
                recovery = Some(back);
                Figure::new(
                    "projector back after SIGKILL + restart (restart -> new event applied)",
                    back,
                    "s",
                    "<= 5 s",
                    Some(back <= 5.0),
                )
                .record();
            }
            f.stop().await;
        }

        if let Some(unused) = fleet {
            unused.stop().await;
        }
        // The sustainable rate: probes of doubling rates until the projector falls behind,
        // each on fresh Hosts.
        let mut best = 0;
        let mut rate = 50;
        while rate <= 20_000 {
            let f = Fleet::start(hosts).await;
            let (run, _) = run_at(&f.env, &f.seen, hosts, rate, probe_secs, 1).await;
            f.stop().await;
            if !run.keeps_up() {
                break;
            }
            best = rate;
            rate *= 2;
        }
        sustainable.push((hosts, best, floor));
        Figure::new(
            &format!("sustainable rate over {hosts} hosts (probes of {probe_secs} s, doubling)"),
            best as f64,
            "events/s",
            if hosts == 200 { ">= 1,000" } else { "" },
            (hosts == 200).then_some(best >= 1_000),
        )
        .with_floor("status-write floor, writes/s", floor)
        .record();
    }
    println!();
    for (hosts, best, floor) in &sustainable {
        println!(
            "sustainable over {hosts} hosts: {best} events/s (highest probed rate kept up with; status-write floor {floor:.0} writes/s)"
        );
    }
    if let Some(back) = recovery {
        println!(
            "projector SIGKILL + immediate restart (same --instance-id) -> a new event applied: {back:.2} s (target <= 5 s)"
        );
    }
    if let Some(rss) = rss {
        println!("projector peak RSS (first host count): {rss:.0} MiB");
        Figure::new("projector peak RSS", rss, "MiB", "", None).record();
    }
}

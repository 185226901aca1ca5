//! Status writes on the real stack, two ways, measured in one run: server-side apply of the
//! whole status (what the projector does by default) and a JSON patch that replaces it (`add
//! /status`, `StatusWrite::JsonPatch`). Each way writes its own set of Hosts, the same records,
//! with the projector's concurrency (16 in flight); the rounds alternate which way goes first.
//! Per way: writes/s, and the CPU time kube-apiserver and etcd spend per write (from
//! `/proc/PID/stat`). Both ways must leave the same statuses.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo bench -p hostledger-e2e --bench writes -- [--hosts 5000] [--rounds 4]

use std::time::Instant;

use futures::StreamExt;
use hostledger_e2e::{BENCH_PHASES as PHASES, Figure, TestEnv, bench_arg, event, stack_pid};
use hostledger_k8s::{HostStore, StatusWrite};
use hostledger_model::names::labels;
use hostledger_model::{HostRecord, Position, fold::apply};

const IN_FLIGHT: usize = 16;

/// CPU time a stack component has used, user and system, in seconds.
fn cpu_secs(component: &str, ticks_per_sec: f64) -> f64 {
    let Some(pid) = stack_pid(component) else {
        return f64::NAN;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: field 3 (state) first, so fields 14 and 15
    // (utime, stime) are the 12th and 13th.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .unwrap_or_default();
    match (fields.get(11), fields.get(12)) {
        (Some(user), Some(system)) => (user + system) / ticks_per_sec,
        _ => f64::NAN,
    }
}

/// One way of writing, its Hosts and what it measured.
struct Way {
    name: &'static str,
    store: HostStore,
    secs: f64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    writes: usize,
}

impl Way {
    async fn write(&mut self, records: &[HostRecord], ticks: f64) {
        let (api0, etcd0) = (cpu_secs("kube-apiserver", ticks), cpu_secs("etcd", ticks));
        let started = Instant::now();
        let store = &self.store;
        futures::stream::iter(records)
            .map(|r| async move { store.write_status(r, &labels(r)).await })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|written| async move {
                written.expect("status written");
            })
            .await;
        self.secs += started.elapsed().as_secs_f64();
        self.apiserver_cpu += cpu_secs("kube-apiserver", ticks) - api0;
        self.etcd_cpu += cpu_secs("etcd", ticks) - etcd0;
        self.writes += records.len();
    }

    fn rate(&self) -> f64 {
        self.writes as f64 / self.secs
    }

    fn ms_per_write(cpu: f64, writes: usize) -> f64 {
        cpu * 1000.0 / writes as f64
    }

    fn print(&self) {
        println!(
            "{:<20} {:>8.0} writes/s   kube-apiserver {:>5.2} ms CPU/write   etcd {:>5.2} ms CPU/write   ({} writes in {:.1} s)",
            self.name,
            self.rate(),
            Way::ms_per_write(self.apiserver_cpu, self.writes),
            Way::ms_per_write(self.etcd_cpu, self.writes),
            self.writes,
            self.secs
        );
    }
}

#[tokio::main]
async fn main() {
    let hosts = bench_arg("--hosts", 5_000);
    let rounds = bench_arg("--rounds", 4).max(1);
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    println!(
        "status writes: {hosts} Hosts per way, {rounds} rounds, {IN_FLIGHT} in flight ({})",
        if cfg!(debug_assertions) {
            "dev build"
        } else {
            "release build"
        }
    );
    let env = TestEnv::new("writes", 1).await;
    let patched_ns = env.extra_namespace("jsonpatch").await;
    let mut ways = [
        Way {
            name: "server-side apply",
            store: HostStore::new(env.kube.clone(), &env.namespace),
            secs: 0.0,
            apiserver_cpu: 0.0,
            etcd_cpu: 0.0,
            writes: 0,
        },
        Way {
            name: "JSON patch",
            store: HostStore::new(env.kube.clone(), &patched_ns)
                .with_status_write(StatusWrite::JsonPatch),
            secs: 0.0,
            apiserver_cpu: 0.0,
            etcd_cpu: 0.0,
            writes: 0,
        },
    ];
    let mut records: Vec<Option<HostRecord>> = vec![None; hosts];
    let mut fold = |n: u64| -> Vec<HostRecord> {
        records
            .iter_mut()
            .enumerate()
            .map(|(h, slot)| {
                let e = event(
                    &format!("bench/w1/host-{h:06}"),
                    n,
                    n as i64,
                    PHASES[(n as usize + h) % 3],
                    "web",
                );
                apply(
                    slot,
                    &e,
                    Position {
                        partition: 0,
                        offset: n as i64,
                    },
                );
                slot.clone().expect("folded")
            })
            .collect()
    };
    // The Hosts, created the projector's way in both namespaces.
    let first = fold(0);
    for way in &ways {
        futures::stream::iter(&first)
            .map(|r| way.store.write(r, None))
            .buffer_unordered(IN_FLIGHT)
            .for_each(|written| async move {
                written.expect("Host created");
            })
            .await;
    }
    let mut last = first;
    for round in 1..=rounds {
        last = fold(round as u64);
        let order: [usize; 2] = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            ways[i].write(&last, ticks).await;
        }
    }
    for way in &ways {
        way.print();
    }
    // The same statuses either way.
    for way in &ways {
        let stored = way.store.load_all().await.expect("Hosts read back");
        for record in &last {
            assert_eq!(
                stored.get(&record.host_id).map(|s| &s.record),
                Some(record),
                "{}: the status read back is not the one written",
                way.name
            );
        }
    }
    let [apply_way, patch_way] = &ways;
    let cpu = |w: &Way| Way::ms_per_write(w.apiserver_cpu, w.writes);
    println!(
        "JSON patch / server-side apply: {:.2}x the writes/s, {:.2}x kube-apiserver's CPU per write",
        patch_way.rate() / apply_way.rate(),
        cpu(patch_way) / cpu(apply_way)
    );
    Figure::new(
        "status writes, JSON patch",
        patch_way.rate(),
        "writes/s",
        "-",
        None,
    )
    .with_floor("server-side apply, writes/s", apply_way.rate())
    .record();
    Figure::new(
        "kube-apiserver CPU per status write, JSON patch",
        cpu(patch_way),
        "ms",
        "-",
        None,
    )
    .with_floor("server-side apply, ms", cpu(apply_way))
    .record();
    env.cleanup().await;
}

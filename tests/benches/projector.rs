//! Projector benchmark on the real stack, printing figures and ratios measured in one run:
//!
//! - decode + fold throughput on one core;
//! - cold replay (hostledger's batched, coalescing projector) vs the naive projector that
//!   writes once per event (the same code with batches of one event), vs the raw write
//!   floor (the final Host writes issued directly, same verbs, same concurrency);
//! - a second replay over the up-to-date namespace;
//! - the size of a Host object after 10,000 events of one host.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo bench -p hostledger-e2e --bench projector -- [--events N] [--hosts N] [--naive-events N]

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use hostledger_e2e::{BENCH_PHASES as PHASES, Figure, TestEnv, bench_arg, bench_log, event};
use hostledger_k8s::HostStore;
use hostledger_model::HostStatus;
use hostledger_model::{HostRecord, Position, fold::apply};
use hostledger_projector::{ReplaySettings, replay};
use hostledger_schemas::Codec;

#[tokio::main]
async fn main() {
    let events_n = bench_arg("--events", 1_000_000);
    let hosts_n = bench_arg("--hosts", 10_000);
    let naive_n = bench_arg("--naive-events", events_n);
    let in_flight = 16;
    println!(
        "projector benchmark: {events_n} events over {hosts_n} hosts; naive run over the first {naive_n} events"
    );
    println!(
        "({}; real Kafka {} and kube-apiserver from KUBECONFIG; etcd without fsync)",
        if cfg!(debug_assertions) {
            "dev build: the decode + fold figure is not representative"
        } else {
            "release build"
        },
        std::env::var("HOSTLEDGER_KAFKA_BOOTSTRAP").unwrap_or_default()
    );

    // Decode + fold on one core.
    let events = bench_log(events_n, hosts_n);
    let codec = Codec::new();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| codec.encode(e).expect("encodes"))
        .collect();
    let started = Instant::now();
    let mut records: std::collections::HashMap<String, Option<HostRecord>> =
        std::collections::HashMap::new();
    for (i, bytes) in encoded.iter().enumerate() {
        let e = codec.decode(bytes).expect("decodes");
        let slot = records.entry(e.host_id.clone()).or_default();
        apply(
            slot,
            &e,
            Position {
                partition: 0,
                offset: i as i64,
            },
        );
    }
    let fold_secs = started.elapsed().as_secs_f64();
    Figure::new(
        "decode + fold, one core",
        events_n as f64 / fold_secs,
        "events/s",
        ">= 1,000,000",
        Some(events_n as f64 / fold_secs >= 1e6),
    )
    .record();
    println!(
        "decode + fold, one core:        {:>12.0} events/s   ({events_n} events in {fold_secs:.2} s; target >= 1,000,000/s: {:.2}x)",
        events_n as f64 / fold_secs,
        events_n as f64 / fold_secs / 1e6
    );

    // Host object size after 10,000 events of one host.
    let mut one = None;
    for n in 0..10_000u64 {
        let e = event("bench/b1/busy", n, n as i64, PHASES[n as usize % 3], "web");
        apply(
            &mut one,
            &e,
            Position {
                partition: 0,
                offset: n as i64,
            },
        );
    }
    let status = HostStatus::from_record(&one.expect("record"));
    let size = serde_json::to_vec(&status).expect("serializes").len();
    println!("Host status after 10,000 events of one host: {size} bytes (target <= 10,240)");

    let env = TestEnv::new("bench", 6).await;
    let started = Instant::now();
    env.produce(&events).await;
    let produce_secs = started.elapsed().as_secs_f64();
    println!(
        "produced {events_n} events in {produce_secs:.1} s ({:.0} events/s)",
        events_n as f64 / produce_secs
    );

    let settings = ReplaySettings {
        progress: false,
        max_in_flight: in_flight,
        ..Default::default()
    };
    let stores = |ns: &str| HostStore::new(env.kube.clone(), ns);

    // Cold replay with hostledger's projector.
    let store = stores(&env.namespace);
    let started = Instant::now();
    let cold = replay(&env.kafka, store, &settings).await.expect("replay");
    let cold_secs = started.elapsed().as_secs_f64();
    let touched = cold.apply.hosts_written;
    println!(
        "cold replay: {cold_secs:.1} s, of which {:.1} s writing (the rest: load, read, decode, fold)",
        cold.write_time.as_secs_f64()
    );

    // Again, over the up-to-date namespace.
    let store = stores(&env.namespace);
    let started = Instant::now();
    let warm = replay(&env.kafka, store, &settings)
        .await
        .expect("second replay");
    let warm_secs = started.elapsed().as_secs_f64();

    // The raw write floor: the final Hosts written directly, same verbs, same concurrency.
    let floor_ns = env.extra_namespace("floor").await;
    let finals: Vec<HostRecord> = records.into_values().flatten().collect();
    let floor_store = HostStore::new(env.kube.clone(), &floor_ns);
    let started = Instant::now();
    let floor_requests: u64 = futures::stream::iter(finals.iter())
        .map(|r| floor_store.write(r, None))
        .buffer_unordered(in_flight)
        .map_ok(|report| report.requests)
        .try_fold(0, |acc, n| async move { Ok(acc + n) })
        .await
        .expect("floor writes");
    let floor_secs = started.elapsed().as_secs_f64();

    // The naive projector: one write per event (batches of one event), same code otherwise.
    let naive_ns = env.extra_namespace("naive").await;
    let store = stores(&naive_ns);
    let naive_settings = ReplaySettings {
        batch_max_events: 1,
        ..settings.clone()
    };
    let naive_env = if naive_n < events_n {
        let sub = TestEnv::new("benchnaive", 6).await;
        sub.produce(&events[..naive_n]).await;
        Some(sub)
    } else {
        None
    };
    let naive_kafka = naive_env.as_ref().map_or(&env.kafka, |e| &e.kafka);
    let started = Instant::now();
    let naive = replay(naive_kafka, store, &naive_settings)
        .await
        .expect("naive replay");
    let naive_secs = started.elapsed().as_secs_f64();

    let scale = events_n as f64 / naive_n as f64;
    println!();
    println!(
        "{:<44} {:>10} {:>12} {:>12} {:>14}",
        "run", "events", "API writes", "wall (s)", "writes/host"
    );
    let row = |name: &str, events: u64, writes: u64, secs: f64, hosts: u64| {
        println!(
            "{name:<44} {events:>10} {writes:>12} {secs:>12.1} {:>14.2}",
            writes as f64 / hosts.max(1) as f64
        );
    };
    row(
        "hostledger replay (cold)",
        cold.events,
        cold.apply.api_writes(),
        cold_secs,
        touched,
    );
    row(
        "  of which Host / HostHistory",
        0,
        cold.apply.host_requests,
        0.0,
        touched,
    );
    row("  ", 0, cold.apply.history_requests, 0.0, touched);
    row(
        "hostledger replay again (up to date)",
        warm.events,
        warm.apply.api_writes(),
        warm_secs,
        touched,
    );
    row(
        "raw write floor (final Hosts, direct)",
        0,
        floor_requests,
        floor_secs,
        finals.len() as u64,
    );
    row(
        "naive: one write per event",
        naive.events,
        naive.apply.api_writes(),
        naive_secs,
        naive.apply.hosts_written.max(1),
    );
    println!();
    let writes_per_host = cold.apply.api_writes() as f64 / touched.max(1) as f64;
    Figure::new(
        "cold replay, API writes per host",
        writes_per_host,
        "writes/host",
        "<= 1.01",
        Some(writes_per_host <= 1.01),
    )
    .with_floor(
        "raw write floor, writes/host",
        floor_requests as f64 / finals.len().max(1) as f64,
    )
    .record();
    Figure::new(
        &format!("cold replay wall, {events_n} events over {hosts_n} hosts"),
        cold_secs,
        "s",
        "<= 1.25 x floor + 2 s",
        Some(cold_secs <= floor_secs * 1.25 + 2.0),
    )
    .with_floor("raw write floor, s", floor_secs)
    .record();
    let rewrites = warm.apply.api_writes() as f64 / touched.max(1) as f64;
    Figure::new(
        "re-replay, API writes per host",
        rewrites,
        "writes/host",
        "<= 0.01",
        Some(rewrites <= 0.01),
    )
    .record();
    Figure::new(
        &format!("naive one-write-per-event replay ({naive_n} events) / hostledger, wall"),
        naive_secs * (events_n as f64 / naive_n as f64) / cold_secs,
        "x",
        "",
        None,
    )
    .record();
    println!(
        "API writes, cold replay / hosts touched: {:.3} (Host + HostHistory; target <= 1.01 counts one write per host)",
        cold.apply.api_writes() as f64 / touched.max(1) as f64
    );
    println!(
        "Host writes, cold replay / hosts touched: {:.3}",
        cold.apply.host_requests as f64 / touched.max(1) as f64
    );
    println!(
        "replay wall / raw write floor: {:.2}x   (target <= 1.25x + 2 s: {:.1} s vs {:.1} s allowed)",
        cold_secs / floor_secs,
        cold_secs,
        floor_secs * 1.25 + 2.0
    );
    println!(
        "re-replay writes / hosts: {:.4}   (target <= 0.01)",
        warm.apply.api_writes() as f64 / touched.max(1) as f64
    );
    println!(
        "naive / hostledger: {:.1}x the API writes, {:.1}x the wall time{}",
        naive.apply.api_writes() as f64 * scale / cold.apply.api_writes().max(1) as f64,
        naive_secs * scale / cold_secs,
        if naive_n < events_n {
            format!(" (naive measured on {naive_n} events and scaled by {scale:.1})")
        } else {
            String::new()
        }
    );
    if let Some(sub) = naive_env {
        sub.cleanup().await;
    }
    env.cleanup().await;
}

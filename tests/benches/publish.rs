//! Fetcher publishing benchmark on the real broker: events (and the fetcher's state records)
//! published in one Kafka transaction per pass, next to a baseline of one transaction per
//! event, measured in the same run.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo bench -p hostledger-e2e --bench publish -- [--events N] [--baseline-events N]

use std::time::Instant;

use hostledger_e2e::{Figure, TestEnv, bench_arg, event};
use hostledger_producers::Publisher;
use hostledger_schemas::Lifecycle;

#[tokio::main]
async fn main() {
    let n = bench_arg("--events", 500_000);
    let baseline_n = bench_arg("--baseline-events", 2_000);
    let env = TestEnv::new("publish", 6).await;
    let events: Vec<_> = (0..n)
        .map(|i| {
            event(
                &format!("bench/p1/host-{:06}", i % 100_000),
                (i / 100_000) as u64,
                0,
                Lifecycle::InService,
                "web",
            )
        })
        .collect();

    let publisher = Publisher::new(&env.kafka, &format!("bench-{}", env.id))
        .await
        .expect("publisher");
    let started = Instant::now();
    publisher.publish(&events).await.expect("publish");
    let secs = started.elapsed().as_secs_f64();
    let rate = n as f64 / secs;

    let baseline = Publisher::new(&env.kafka, &format!("bench-baseline-{}", env.id))
        .await
        .expect("publisher");
    let started = Instant::now();
    for e in &events[..baseline_n] {
        baseline
            .publish(std::slice::from_ref(e))
            .await
            .expect("publish one");
    }
    let baseline_rate = baseline_n as f64 / started.elapsed().as_secs_f64();

    println!(
        "publishing host events with their fetcher state, acks=all, idempotent, transactional:"
    );
    println!(
        "  one transaction per pass:  {rate:>10.0} events/s  ({n} events in {secs:.2} s; target >= 200,000/s: {})",
        if rate >= 200_000.0 { "met" } else { "NOT met" }
    );
    println!("  one transaction per event: {baseline_rate:>10.0} events/s  ({baseline_n} events)");
    println!("  ratio: {:.0}x", rate / baseline_rate);
    Figure::new(
        &format!("publish, one fetcher pass of {n} changes"),
        rate,
        "events/s",
        ">= 200,000",
        Some(rate >= 200_000.0),
    )
    .with_floor("one transaction per event, events/s", baseline_rate)
    .record();
    env.cleanup().await;
}

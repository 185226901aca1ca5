//! Audit benchmark on the real stack, printing figures and ratios measured in one run:
//!
//! - `hostledger uptime` over N Host objects (the whole command: start, list, compute,
//!   print JSON), against `kubectl get hosts -o json` listing the same objects;
//! - `hostledger uptime --source log` folding the whole events topic, against reading the
//!   same messages from Kafka without decoding them;
//! - whether both sources give the same answer (as of the last event).
//!
//! The Host objects are written directly from the fold of the same log (the projector's own
//! verbs, 16 in flight), which is much faster than replaying a million events through it.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo build --release -p hostledger-cli --bin hostledger &&
//!        cargo bench -p hostledger-e2e --bench audit -- [--hosts N] [--events N] [--runs N]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use hostledger_e2e::{Figure, TestEnv, bench_arg, bench_log, hostledger_binary};
use hostledger_k8s::HostStore;
use hostledger_model::time::exact_time as format_time;
use hostledger_model::{HostRecord, Position, fold::apply};

/// Runs a command `runs` times; returns the fastest and median wall time and the last stdout.
async fn time_command(runs: usize, program: &std::path::Path, args: &[&str]) -> (f64, f64, String) {
    let mut times = Vec::with_capacity(runs);
    let mut stdout = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let out = tokio::process::Command::new(program)
            .args(args)
            .env("HOSTLEDGER_LOG", "warn")
            .output()
            .await
            .expect("run command");
        times.push(started.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2], stdout)
}

fn total_hosts(uptime_json: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(uptime_json).expect("uptime prints JSON");
    v["total"]["hosts"].as_u64().expect("total.hosts")
}

/// Reads the events topic from its low to its high watermarks the way `--source log` does
/// (same client settings), touching every payload but decoding none: messages and bytes.
fn read_undecoded(kafka: &hostledger_kafka::KafkaClients) -> (u64, u64) {
    use rdkafka::consumer::Consumer as _;
    use rdkafka::message::Message as _;
    let topic = kafka.settings().topics.events.clone();
    let marks = kafka
        .watermarks(&topic, Duration::from_secs(10))
        .expect("watermarks");
    let reader = kafka.reader().expect("reader");
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut open = HashMap::new();
    for (p, (lo, hi)) in &marks {
        if hi > lo {
            tpl.add_partition_offset(&topic, *p, rdkafka::Offset::Offset(*lo))
                .expect("offset");
            open.insert(*p, *hi);
        }
    }
    reader.assign(&tpl).expect("assign");
    let (mut messages, mut bytes) = (0u64, 0u64);
    while !open.is_empty() {
        match reader.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let high = open.get(&m.partition()).copied().unwrap_or(i64::MIN);
                if m.offset() < high {
                    messages += 1;
                    bytes += m.payload().map_or(0, |p| p.len() as u64);
                }
                if m.offset() + 1 >= high {
                    open.remove(&m.partition());
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    (messages, bytes)
}

#[tokio::main]
async fn main() {
    let hosts_n = bench_arg("--hosts", 10_000);
    let events_n = bench_arg("--events", 1_000_000);
    let runs = bench_arg("--runs", 3).max(1);
    let binary = hostledger_binary();
    println!(
        "audit benchmark: {events_n} events over {hosts_n} hosts; each command run {runs} times (fastest / median)"
    );
    println!(
        "(hostledger binary: {}; real Kafka {} and kube-apiserver from KUBECONFIG)",
        binary.display(),
        std::env::var("HOSTLEDGER_KAFKA_BOOTSTRAP").unwrap_or_default()
    );

    let env = TestEnv::new("auditbench", 6).await;
    let events = bench_log(events_n, hosts_n);
    let started = Instant::now();
    env.produce(&events).await;
    println!(
        "produced {events_n} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The Host objects: the fold of the same log, written with the projector's verbs.
    let mut records: HashMap<String, Option<HostRecord>> = HashMap::new();
    let produced = env.read_events();
    let mut last = hostledger_schemas::Timestamp(i64::MIN);
    for (i, e) in produced.iter().enumerate() {
        last = last.max(e.observed_at);
        let slot = records.entry(e.host_id.clone()).or_default();
        // Positions only need to grow per host for this fold.
        apply(
            slot,
            e,
            Position {
                partition: 0,
                offset: i as i64,
            },
        );
    }
    let store = HostStore::new(env.kube.clone(), &env.namespace);
    let started = Instant::now();
    let writes: u64 = futures::stream::iter(records.values().flatten())
        .map(|r| store.write(r, None))
        .buffer_unordered(16)
        .map_ok(|report| report.requests)
        .try_fold(0, |acc, n| async move { Ok(acc + n) })
        .await
        .expect("write Hosts");
    println!(
        "wrote {} Host objects ({writes} API writes) in {:.1} s",
        records.len(),
        started.elapsed().as_secs_f64()
    );
    let ns = env.namespace.clone();
    let prefix = env.topic_prefix.clone();
    let bootstrap = env.bootstrap.clone();

    // uptime from the Host objects vs kubectl listing them.
    let (objects_min, objects_med, objects_out) =
        time_command(runs, &binary, &["uptime", "--namespace", &ns, "-o", "json"]).await;
    assert_eq!(
        total_hosts(&objects_out),
        hosts_n as u64,
        "uptime covers every host"
    );
    let kubectl = std::path::PathBuf::from("kubectl");
    let (kubectl_min, kubectl_med, _) = time_command(
        runs,
        &kubectl,
        &["get", "hosts", "--namespace", &ns, "-o", "json"],
    )
    .await;
    // The API server's answer alone: the same paged list, read as text in-process (no
    // parsing into objects, no printing).
    let mut raw_pages = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut next = String::new();
        loop {
            let mut path =
                format!("/apis/hostledger.dev/v1alpha1/namespaces/{ns}/hosts?limit=1000");
            if !next.is_empty() {
                path.push_str(&format!("&continue={next}"));
            }
            let request = http::Request::get(path).body(Vec::new()).expect("request");
            let text = env.kube.request_text(request).await.expect("list page");
            // Only the continue token is read, from the end of the page.
            next = text
                .rsplit_once("\"continue\":\"")
                .and_then(|(_, rest)| rest.split('"').next())
                .unwrap_or_default()
                .to_owned();
            if next.is_empty() {
                break;
            }
        }
        raw_pages.push(started.elapsed().as_secs_f64());
    }
    raw_pages.sort_by(f64::total_cmp);
    let (pages_min, pages_med) = (raw_pages[0], raw_pages[runs / 2]);

    // uptime from the log vs reading the same messages undecoded.
    let log_args = [
        "uptime",
        "--source",
        "log",
        "--namespace",
        &ns,
        "--topic-prefix",
        &prefix,
        "--kafka-bootstrap",
        &bootstrap,
        "-o",
        "json",
    ];
    let (log_min, log_med, log_out) = time_command(runs, &binary, &log_args).await;
    assert_eq!(total_hosts(&log_out), hosts_n as u64);
    let mut raw_times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let (messages, _bytes) = read_undecoded(&env.kafka);
        raw_times.push(started.elapsed().as_secs_f64());
        assert_eq!(messages, events_n as u64);
    }
    raw_times.sort_by(f64::total_cmp);
    let (raw_min, raw_med) = (raw_times[0], raw_times[runs / 2]);

    // One host's history from the log: by id, reading only its partition, against the same
    // history found by host name, which needs every partition.
    let host = format!("host-{:06}", hosts_n / 2);
    let host_id = format!("bench/b1/{host}");
    let history = |wanted: &str| {
        [
            "history",
            wanted,
            "--source",
            "log",
            "--namespace",
            &ns,
            "--topic-prefix",
            &prefix,
            "--kafka-bootstrap",
            &bootstrap,
            "-o",
            "json",
        ]
        .map(str::to_owned)
    };
    let by_id_args = history(&host_id);
    let by_id_args: Vec<&str> = by_id_args.iter().map(String::as_str).collect();
    let (hist_id_min, hist_id_med, hist_id_out) = time_command(runs, &binary, &by_id_args).await;
    let by_name_args = history(&host);
    let by_name_args: Vec<&str> = by_name_args.iter().map(String::as_str).collect();
    let (hist_name_min, hist_name_med, hist_name_out) =
        time_command(runs, &binary, &by_name_args).await;
    assert_eq!(
        hist_id_out, hist_name_out,
        "the same history by id and by name"
    );
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&hist_id_out).expect("history prints JSON");
    assert_eq!(entries.len(), events_n / hosts_n, "every event of the host");

    // Same answer from both sources, as of the last event.
    let at = format_time(last);
    let (_, _, a) = time_command(
        1,
        &binary,
        &["uptime", "--namespace", &ns, "--as-of", &at, "-o", "json"],
    )
    .await;
    let mut as_of_log = log_args.to_vec();
    as_of_log.extend_from_slice(&["--as-of", &at]);
    let (_, _, b) = time_command(1, &binary, &as_of_log).await;

    println!();
    println!("{:<58} {:>10} {:>10}", "run", "fastest s", "median s");
    let row = |name: &str, min: f64, med: f64| println!("{name:<58} {min:>10.3} {med:>10.3}");
    row(
        &format!("hostledger uptime, {hosts_n} Host objects (-o json)"),
        objects_min,
        objects_med,
    );
    row(
        &format!("baseline: kubectl get hosts -o json ({hosts_n} objects)"),
        kubectl_min,
        kubectl_med,
    );
    row(
        "baseline: the API server's pages alone (read as text)",
        pages_min,
        pages_med,
    );
    row(
        &format!("hostledger uptime --source log, {events_n} events"),
        log_min,
        log_med,
    );
    row(
        &format!("baseline: read {events_n} messages, not decoded (in-process)"),
        raw_min,
        raw_med,
    );
    row(
        &format!(
            "hostledger history HOST_ID --source log ({} events)",
            entries.len()
        ),
        hist_id_min,
        hist_id_med,
    );
    row(
        "baseline: hostledger history HOSTNAME --source log (whole log)",
        hist_name_min,
        hist_name_med,
    );
    println!();
    println!(
        "one host's history from a log of {events_n} events: {hist_id_med:.3} s median (target <= 1 s: {}); {:.2}x the whole-log read by name",
        if hist_id_med <= 1.0 { "met" } else { "NOT met" },
        hist_id_med / hist_name_med
    );
    println!(
        "uptime from Host objects: {objects_med:.3} s median (target <= 1 s: {}); {:.2}x kubectl's listing, {:.2}x the API server's pages alone",
        if objects_med <= 1.0 { "met" } else { "NOT met" },
        objects_med / kubectl_med,
        objects_med / pages_med
    );
    println!(
        "uptime from the log: {log_med:.3} s median for {events_n} events, {:.0} events/s (target <= 5 s: {}); {:.2}x the undecoded read",
        events_n as f64 / log_med,
        if log_med <= 5.0 { "met" } else { "NOT met" },
        log_med / raw_med
    );
    Figure::new(
        &format!("uptime over {hosts_n} Host objects (median)"),
        objects_med,
        "s",
        "<= 1.1 x the API server's pages",
        Some(objects_med <= 1.1 * pages_med),
    )
    .with_floor("the API server's pages alone, s", pages_med)
    .record();
    Figure::new(
        &format!("one host's history from a log of {events_n} events (median)"),
        hist_id_med,
        "s",
        "<= 1 s",
        Some(hist_id_med <= 1.0),
    )
    .record();
    Figure::new(
        &format!("uptime from a log of {events_n} events (median)"),
        log_med,
        "s",
        "<= 5 s",
        Some(log_med <= 5.0),
    )
    .with_floor("read the messages, not decoded, s", raw_med)
    .record();
    println!(
        "objects and log give the same answer as of {at}: {}",
        if a == b { "yes" } else { "NO" }
    );
    assert_eq!(a, b, "objects and log disagree");
    env.cleanup().await;
}

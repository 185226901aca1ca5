//! Backfill benchmark on the real broker, figures measured in one run:
//!
//! - `hostledger backfill --dry-run` over an archive of W weekly exports of H hosts (written by
//!   scripts/lib/demo-archive.py --hosts H): reading, diffing and checking against the log;
//! - `hostledger backfill` of the same archive: everything, publishing included, as events/s;
//! - baseline: one `hostledger fetch --once` pass over the last export into a fresh topic (the
//!   live fetcher discovering every host: one transaction of H events).
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo build --release -p hostledger-cli --bin hostledger &&
//!        cargo bench -p hostledger-e2e --bench backfill -- [--hosts N] [--weeks N]

use std::path::{Path, PathBuf};
use std::time::Instant;

use hostledger_e2e::{TestEnv, bench_arg, hostledger_binary};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_owned()
}

/// Runs the hostledger binary; its wall time and stdout.
fn timed(args: &[&str]) -> (f64, String) {
    let started = Instant::now();
    let out = std::process::Command::new(hostledger_binary())
        .args(args)
        .env("HOSTLEDGER_LOG", "warn")
        .output()
        .expect("run hostledger");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "hostledger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number before " events published" in backfill's summary line.
fn published(summary: &str) -> usize {
    summary
        .split(" events published")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no event count in {summary:?}"))
}

#[tokio::main]
async fn main() {
    let hosts = bench_arg("--hosts", 10_000);
    let weeks = bench_arg("--weeks", 52);
    println!("backfill benchmark: {weeks} weekly exports of {hosts} hosts");
    println!("(hostledger binary: {})", hostledger_binary().display());
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let status = std::process::Command::new("python3")
        .arg(repo().join("scripts/lib/demo-archive.py"))
        .args(["--hosts", &hosts.to_string(), "--weeks", &weeks.to_string()])
        .args(["--end", "2026-12-01", "--name", "bench"])
        .arg("--out")
        .arg(&archive)
        .status()
        .expect("run demo-archive.py");
    assert!(status.success(), "demo-archive.py failed");

    let env = TestEnv::new("backfillbench", 6).await;
    let last = std::fs::read_dir(&archive)
        .expect("archive")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max()
        .expect("a snapshot");
    let config = env.dc_fetcher_config(dir.path(), Path::new("unused"), 600);
    let config = config.to_str().expect("utf-8");
    let archive = archive.to_str().expect("utf-8");

    let (plan_secs, plan) = timed(&["backfill", "-c", config, "--dry-run", "--quiet", archive]);
    let planned_line = plan.lines().last().unwrap_or_default().to_owned();
    let (run_secs, summary) = timed(&["backfill", "-c", config, "--quiet", archive]);
    let events = published(&summary);
    assert_eq!(
        env.read_events().len(),
        events,
        "the log holds what backfill says"
    );

    // Baseline: a live pass discovering every host of the last export, in a fresh topic.
    let live = TestEnv::new("backfillbench-live", 6).await;
    let live_config = live.dc_fetcher_config(dir.path(), &last, 600);
    let (live_secs, _) = timed(&[
        "fetch",
        "--once",
        "-c",
        live_config.to_str().expect("utf-8"),
    ]);
    let live_events = live.read_events().len();

    println!();
    println!("{planned_line}");
    println!(
        "{:<64} {:>9} {:>9} {:>12}",
        "run", "events", "wall s", "events/s"
    );
    let row = |name: &str, n: usize, s: f64| {
        println!("{name:<64} {n:>9} {s:>9.2} {:>12.0}", n as f64 / s)
    };
    row(
        "hostledger backfill --dry-run (read, diff, check the log)",
        events,
        plan_secs,
    );
    row(
        &format!("hostledger backfill ({weeks} transactions)"),
        events,
        run_secs,
    );
    row(
        "baseline: hostledger fetch --once, last export, every host new",
        live_events,
        live_secs,
    );
    println!();
    println!(
        "backfill: {:.0} events/s for {weeks} snapshots x {hosts} hosts ({:.2}x a live pass's rate; {:.0}% of its wall time reading and diffing)",
        events as f64 / run_secs,
        (events as f64 / run_secs) / (live_events as f64 / live_secs),
        100.0 * plan_secs / run_secs
    );
    live.cleanup().await;
    env.cleanup().await;
}

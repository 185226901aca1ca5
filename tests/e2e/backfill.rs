//! `hostledger backfill` on the real stack: a year-like archive of weekly exports becomes the
//! fetcher's events at those dates; killed with SIGKILL half-way and run again, every event is
//! in the log exactly once; `uptime --as-of` inside the archive's span equals the time in
//! service the snapshots themselves say, computed here independently; an archive older than
//! what the log holds is refused with nothing published.

use std::collections::BTreeMap;
use std::path::Path;

use hostledger_e2e::{Role, TestEnv, hostledger_as, run_hostledger};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

const WEEKS: usize = 30;
const WEEK_SECS: i64 = 7 * 86_400;
/// Monday 2025-01-06 00:00:00 UTC.
const START: i64 = 1_736_121_600;

/// Each host's status in each week (`None`: not in that week's export).
fn schedule() -> BTreeMap<&'static str, Vec<Option<&'static str>>> {
    let weeks = |f: &dyn Fn(usize) -> Option<&'static str>| (0..WEEKS).map(f).collect::<Vec<_>>();
    BTreeMap::from([
        ("A1", weeks(&|_| Some("active"))),
        (
            "B2",
            weeks(&|w| {
                Some(if (10..13).contains(&w) {
                    "maintenance"
                } else {
                    "active"
                })
            }),
        ),
        (
            "C3",
            weeks(&|w| match w {
                0..5 => None,
                5..7 => Some("staged"),
                _ => Some("active"),
            }),
        ),
        (
            "D4",
            weeks(&|w| match w {
                0..15 => Some("active"),
                15..20 => Some("decommissioned"),
                _ => None,
            }),
        ),
        (
            "E5",
            weeks(&|w| (!(18..21).contains(&w)).then_some("active")),
        ),
        // Changes role every week, so that every snapshot has an event.
        ("F6", weeks(&|_| Some("active"))),
    ])
}

fn role(serial: &str, week: usize) -> &'static str {
    match (serial, week % 2) {
        ("F6", 0) => "web",
        ("F6", _) => "db",
        _ => "app",
    }
}

fn write_archive(dir: &Path) {
    std::fs::create_dir_all(dir).expect("archive dir");
    let schedule = schedule();
    for week in 0..WEEKS {
        let day = chrono::DateTime::from_timestamp(START + week as i64 * WEEK_SECS, 0)
            .expect("a time")
            .format("%Y-%m-%d");
        let mut text = String::from("serial,hostname,site,status,role\n");
        for (serial, weeks) in &schedule {
            if let Some(status) = weeks[week] {
                let host = serial.to_lowercase();
                text.push_str(&format!(
                    "{serial},{host},pdx1,{status},{}\n",
                    role(serial, week)
                ));
            }
        }
        std::fs::write(dir.join(format!("pdx1-{day}.csv")), text).expect("write snapshot");
    }
}

/// Seconds each host was in service up to `as_of`, straight from the schedule: a snapshot's
/// status holds until the next snapshot (the last one's until `as_of`).
fn truth(as_of: i64) -> BTreeMap<String, i64> {
    schedule()
        .into_iter()
        .map(|(serial, weeks)| {
            let secs = (0..WEEKS)
                .filter(|w| weeks[*w] == Some("active"))
                .map(|w| {
                    let from = START + w as i64 * WEEK_SECS;
                    let to = if w + 1 < WEEKS {
                        from + WEEK_SECS
                    } else {
                        i64::MAX
                    };
                    (to.min(as_of) - from.min(as_of)).max(0)
                })
                .sum();
            (format!("dc/pdx1/{serial}"), secs)
        })
        .collect()
}

/// (host, observed_at, kind) of every event, counted.
fn tally<'a>(
    events: impl Iterator<Item = (&'a str, String, &'a str)>,
) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for (host, at, kind) in events {
        *out.entry((host.to_owned(), at, kind.to_owned()))
            .or_default() += 1;
    }
    out
}

fn uptime_by_host(json: &str) -> BTreeMap<String, f64> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            let id = h["hostId"].as_str().expect("hostId").to_owned();
            (
                id,
                h["inServiceSeconds"].as_f64().expect("inServiceSeconds"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_killed_backfill_resumes_with_each_event_once_and_uptime_as_of_matches_the_snapshots() {
    let env = TestEnv::new("backfill", 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    write_archive(&archive);
    let config = env.dc_fetcher_config(dir.path(), &dir.path().join("unused.csv"), 0);
    let config = config.to_str().expect("utf-8");
    let archive = archive.to_str().expect("utf-8");

    // What would be published, before anything is.
    let plan = run_hostledger(&["backfill", "-c", config, "--dry-run", "-o", "json", archive])
        .await
        .ok();
    let planned: Vec<Value> = plan
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        planned.len() > WEEKS,
        "an event every week and more: {}",
        planned.len()
    );
    let planned = tally(planned.iter().map(|e| {
        (
            e["host_id"].as_str().expect("host_id"),
            e["observed_at"].as_str().expect("observed_at").to_owned(),
            e["kind"].as_str().expect("kind"),
        )
    }));

    // Killed after its third snapshot is committed.
    let mut child = hostledger_as(Role::Backfill)
        .args(["backfill", "-c", config, "--quiet", archive])
        .env("HOSTLEDGER_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start backfill");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut published = 0;
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        if line.contains("snapshot published") {
            published += 1;
            if published == 3 {
                break;
            }
        }
    }
    assert_eq!(published, 3, "the backfill ended before its third snapshot");
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("wait");
    let partial = env.read_events().len();
    let total: usize = planned.values().sum();
    assert!(
        partial > 0 && partial < total,
        "killed half-way: {partial} of {total} published"
    );

    // Run again: it resumes, and the log holds each planned event once.
    let out = run_hostledger(&["backfill", "-c", config, archive])
        .await
        .ok();
    assert!(
        out.contains("earlier snapshots had been published by an earlier run"),
        "{out}"
    );
    let events = env.read_events();
    let logged = tally(events.iter().map(|e| {
        (
            e.host_id.as_str(),
            e.observed_at.to_rfc3339(),
            e.kind.as_str(),
        )
    }));
    assert_eq!(logged, planned, "each planned event once, no other");
    let again = run_hostledger(&["backfill", "-c", config, archive])
        .await
        .ok();
    assert!(
        again.starts_with("nothing to publish: all 30 snapshots"),
        "{again}"
    );
    assert_eq!(env.read_events().len(), events.len());

    // Time in service as of a moment inside the archive, from the log and from the Hosts.
    let as_of = START + 25 * WEEK_SECS + 3 * 86_400 + 3_600;
    let as_of_text = chrono::DateTime::from_timestamp(as_of, 0)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expected = truth(as_of);
    env.project_until_caught_up().await;
    for source in ["log", "objects"] {
        let args = env.scoped(&[
            "uptime",
            "--as-of",
            &as_of_text,
            "--source",
            source,
            "-o",
            "json",
        ]);
        let uptime = uptime_by_host(&run_hostledger(&args).await.ok());
        assert_eq!(
            uptime.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{source}: the hosts that existed then"
        );
        for (host, secs) in &expected {
            assert!(
                (uptime[host] - *secs as f64).abs() < 1e-6,
                "{source}: {host} in service {} s as of {as_of_text}, the snapshots say {secs} s",
                uptime[host]
            );
        }
    }
    env.cleanup().await;
}

#[tokio::test]
async fn an_archive_older_than_the_log_is_refused_and_nothing_is_published() {
    let env = TestEnv::new("backfill-old", 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    std::fs::write(&export, "serial,hostname,site,status\nA1,a1,pdx1,active\n").expect("export");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    env.fetch_once(&config).await; // observed now
    let before = env.read_events().len();

    // Another provider name with an archive of the same host, a year ago.
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).expect("dir");
    std::fs::write(
        archive.join("2025-01-06.csv"),
        "serial,hostname,site,status\nA1,a1,pdx1,maintenance\n",
    )
    .expect("snapshot");
    let other = dir.path().join("other.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &other,
        text.replace(&format!("name: dc-{}", env.id), "name: dc-archive"),
    )
    .expect("config");
    let err = run_hostledger(&[
        "backfill",
        "-c",
        other.to_str().expect("utf-8"),
        archive.to_str().expect("utf-8"),
    ])
    .await
    .failed();
    assert!(
        err.contains("already holds later observations of 1 host"),
        "{err}"
    );
    assert!(err.contains("dc/pdx1/A1: archive 2025-01-06"), "{err}");
    assert_eq!(env.read_events().len(), before, "nothing published");

    // The fetcher's own source, which has published live: not this archive's state.
    let err = run_hostledger(&[
        "backfill",
        "-c",
        config.to_str().expect("utf-8"),
        archive.to_str().expect("utf-8"),
    ])
    .await
    .failed();
    assert!(err.contains("does not come from this archive"), "{err}");
    assert_eq!(env.read_events().len(), before, "nothing published");
    env.cleanup().await;
}

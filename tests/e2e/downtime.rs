//! Lock facts and planned downtime on the real stack: a host locked with `hostledger lock`
//! goes out of service and comes back, another goes out without a lock. The running
//! projector records the lock and its end in the log, and `uptime` reports the first
//! outage as planned and the second as unplanned, to the microsecond the events say, the
//! same from the objects as from the log, now and as of a moment in the middle of the
//! outages; the report shows the same sums.

use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, event, run_hostledger};
use hostledger_model::time::exact_time;
use hostledger_schemas::{
    EventKind, Fact, HostEvent, Lifecycle, LockEnd, LockEventKind, Timestamp,
};
use serde_json::Value;

/// `event(…)` observed now.
fn now_event(host: &str, n: u64, lifecycle: Lifecycle) -> HostEvent {
    let mut e = event(host, n, 0, lifecycle, "db");
    e.observed_at = Timestamp::from(chrono::Utc::now());
    if n > 0 {
        e.kind = EventKind::HostLifecycleChanged;
    }
    e
}

async fn wait_for(
    env: &TestEnv,
    what: &str,
    done: impl Fn(&hostledger_model::HostStatus) -> bool,
    host: &str,
) {
    let started = Instant::now();
    loop {
        let statuses = env.statuses(&env.namespace).await;
        if statuses.get(host).is_some_and(&done) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not after 30 s; status {:?}",
            statuses.get(host)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn uptime(env: &TestEnv, source: &str, at: Timestamp) -> Value {
    let at = exact_time(at);
    let out =
        run_hostledger(&env.scoped(&["uptime", "--as-of", &at, "--source", source, "-o", "json"]))
            .await
            .ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// (planned, unplanned) downtime of `host` in an uptime JSON, in microseconds.
fn downtime(report: &Value, host: &str) -> (i64, i64) {
    let row = report["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["hostId"] == host)
        .unwrap_or_else(|| panic!("{host} in {report}"));
    let micros = |k: &str| (row[k].as_f64().expect(k) * 1e6).round() as i64;
    (
        micros("plannedDowntimeSeconds"),
        micros("unplannedDowntimeSeconds"),
    )
}

#[tokio::test]
async fn downtime_while_locked_is_planned_and_the_rest_unplanned() {
    let env = TestEnv::new("downtime", 2).await;
    let (a, b) = ("test/r1/db-a", "test/r1/db-b");
    env.produce(&[
        now_event(a, 0, Lifecycle::InService),
        now_event(b, 0, Lifecycle::InService),
    ])
    .await;
    let _projector = env.spawn_projector(&[], false);
    env.wait_for_hosts("", 2, "both hosts projected").await;

    // A is locked, and the lock is in the log (and so on its Host) before it goes down.
    run_hostledger(&[
        "lock",
        "test.r1.db-a",
        "--reason",
        "firmware update",
        "--namespace",
        &env.namespace,
    ])
    .await
    .ok();
    wait_for(&env, "the lock recorded", |s| s.lock.is_some(), a).await;

    let a_down = now_event(a, 1, Lifecycle::OutOfService);
    let b_down = now_event(b, 1, Lifecycle::OutOfService);
    env.produce(&[a_down.clone(), b_down.clone()]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a_up = now_event(a, 2, Lifecycle::InService);
    let b_up = now_event(b, 2, Lifecycle::InService);
    env.produce(&[a_up.clone(), b_up.clone()]).await;
    for host in [a, b] {
        wait_for(
            &env,
            "back in service",
            |s| s.event_count >= 3 && s.state.lifecycle == Lifecycle::InService,
            host,
        )
        .await;
    }
    run_hostledger(&["unlock", "test.r1.db-a", "--namespace", &env.namespace])
        .await
        .ok();
    wait_for(
        &env,
        "the unlock recorded",
        |s| s.lock.is_none() && s.event_count >= 5,
        a,
    )
    .await;

    // The log holds the two facts, with the lock's holder and how it ended.
    let facts: Vec<_> = env
        .read_facts()
        .into_iter()
        .filter_map(|f| match f {
            Fact::Lock(l) => Some(l),
            Fact::Host(_) => None,
        })
        .collect();
    let kinds: Vec<_> = facts.iter().map(|f| (f.kind, f.ended)).collect();
    assert_eq!(
        kinds[..2],
        [
            (LockEventKind::HostLocked, None),
            (LockEventKind::HostUnlocked, Some(LockEnd::Released))
        ],
        "{facts:?}"
    );
    assert!(
        facts
            .iter()
            .all(|f| f.host_id == a && f.reason == "firmware update")
    );
    assert!(facts[0].at <= a_down.observed_at && facts[1].at >= a_up.observed_at);

    let a_outage = a_up.observed_at.micros_since(a_down.observed_at);
    let b_outage = b_up.observed_at.micros_since(b_down.observed_at);
    let now = Timestamp::from(chrono::Utc::now());
    let mid = Timestamp((a_down.observed_at.0 + a_up.observed_at.0) / 2);
    for (at, want_a, want_b) in [
        (now, (a_outage, 0), (0, b_outage)),
        (
            mid,
            (mid.micros_since(a_down.observed_at), 0),
            (0, mid.micros_since(b_down.observed_at)),
        ),
    ] {
        let objects = uptime(&env, "objects", at).await;
        let log = uptime(&env, "log", at).await;
        assert_eq!(objects, log, "objects and log disagree as of {at}");
        assert_eq!(downtime(&objects, a), want_a, "A (locked) as of {at}");
        assert_eq!(downtime(&objects, b), want_b, "B (not locked) as of {at}");
    }

    // Table, CSV and the report say the same.
    let at = exact_time(now);
    let table = run_hostledger(&env.scoped(&["uptime", "--as-of", &at]))
        .await
        .ok();
    println!("$ hostledger uptime --as-of {at}\n{table}");
    assert!(
        table.contains("PLANNED DOWN") && table.contains("out of service:"),
        "{table}"
    );
    let csv = run_hostledger(&env.scoped(&["uptime", "--as-of", &at, "-o", "csv"]))
        .await
        .ok();
    let row = csv.lines().find(|l| l.starts_with(a)).expect("A's row");
    assert!(
        row.ends_with(&format!(",{:.6},{:.6}", a_outage as f64 / 1e6, 0.0)),
        "{row}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("report.html");
    run_hostledger(&env.scoped(&[
        "report",
        "--html",
        page.to_str().expect("utf-8"),
        "--as-of",
        &at,
    ]))
    .await
    .ok();
    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(
        html.contains(&format!(
            "id=\"planned-downtime\" data-micros=\"{a_outage}\""
        )),
        "planned downtime on the report"
    );
    assert!(
        html.contains(&format!(
            "id=\"unplanned-downtime\" data-micros=\"{b_outage}\""
        )),
        "unplanned downtime on the report"
    );

    // The history shows the lock among the events.
    let history = run_hostledger(&env.scoped(&["history", a])).await.ok();
    println!("$ hostledger history {a}\n{history}");
    assert!(
        history.contains("HostLocked")
            && history.contains("lock of")
            && history.contains("released"),
        "{history}"
    );
    env.cleanup().await;
}

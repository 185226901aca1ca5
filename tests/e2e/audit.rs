//! The audit queries (`uptime`, `hosts`, `history`, with `--as-of`, selectors and groups)
//! give the same answers from the Host/HostHistory objects as from folding the log, on data
//! that came through the real fetcher, Kafka and projector — including as-of times in the
//! middle of service intervals and a host retired and returned — and refuse bad input with
//! clear errors.

use std::collections::BTreeMap;

use hostledger_e2e::{TestEnv, run_hostledger};
use hostledger_model::time::exact_time as format_time;
use hostledger_schemas::Timestamp;
use serde_json::Value;

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn row(serial: &str, name: &str, status: &str, role: &str) -> String {
    format!(
        "{serial},{name},pdx1,hall-a,{status},{role},sre,10.1.0.{},R650,A01\n",
        serial.len()
    )
}

/// `hostledger ARGS` against this test's namespace and topics, from one source.
async fn query(env: &TestEnv, source: &str, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend_from_slice(&["--source", source]);
    run_hostledger(&env.scoped(&full)).await.ok()
}

/// Runs `args` from both sources and checks they print exactly the same.
async fn same_from_both(env: &TestEnv, args: &[&str]) -> String {
    let objects = query(env, "objects", args).await;
    let log = query(env, "log", args).await;
    assert_eq!(objects, log, "objects and log disagree on {args:?}");
    objects
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn hosts_by_id(uptime: &Value) -> BTreeMap<String, Value> {
    uptime["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| (h["hostId"].as_str().expect("id").to_owned(), h.clone()))
        .collect()
}

#[tokio::test]
async fn objects_and_log_give_the_same_answers_at_any_time() {
    let env = TestEnv::new("audit", 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);

    // Four passes of the export, a moment apart, projected after each:
    //   A: active → maintenance → active → active
    //   B: active → decommissioned (retired) → active (returned) → decommissioned
    //   C: maintenance → active → active → active
    //   D: active (web) → active (db) → gone (missing)
    let passes = [
        [
            row("A", "a-1", "active", "web"),
            row("B", "b-1", "active", "db"),
            row("C", "c-1", "maintenance", "db"),
            row("D", "d-1", "active", "web"),
        ]
        .concat(),
        [
            row("A", "a-1", "maintenance", "web"),
            row("B", "b-1", "decommissioned", "db"),
            row("C", "c-1", "active", "db"),
            row("D", "d-1", "active", "db"),
        ]
        .concat(),
        [
            row("A", "a-1", "active", "web"),
            row("B", "b-1", "active", "db"),
            row("C", "c-1", "active", "db"),
        ]
        .concat(),
        [
            row("A", "a-1", "active", "web"),
            row("B", "b-1", "decommissioned", "db"),
            row("C", "c-1", "active", "db"),
        ]
        .concat(),
    ];
    for pass in &passes {
        std::fs::write(&export, format!("{HEADER}{pass}")).expect("write export");
        env.fetch_once(&config).await;
        env.project_until_caught_up().await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }

    // The time of each pass, from the events themselves.
    let events = env.read_events();
    let mut times: Vec<i64> = events.iter().map(|e| e.observed_at.0).collect();
    times.sort_unstable();
    times.dedup();
    assert_eq!(times.len(), 4, "one observation time per pass: {times:?}");
    let t = |micros: i64| format_time(Timestamp(micros));
    let mid = |i: usize| (times[i] + times[i + 1]) / 2;
    let after = times[3] + 500_000;

    // As of the middle of each pass-to-pass gap, exactly at a pass, and after the last:
    // uptime (per host and grouped, with and without selectors) and hosts are the same
    // from both sources.
    let moments = [mid(0), times[1], mid(1), mid(2), after];
    let mut uptimes = Vec::new();
    for m in moments {
        let at = t(m);
        let u = same_from_both(&env, &["uptime", "--as-of", &at, "-o", "json"]).await;
        uptimes.push(json(&u));
        same_from_both(
            &env,
            &["uptime", "--as-of", &at, "--group-by", "role", "-o", "csv"],
        )
        .await;
        same_from_both(
            &env,
            &["uptime", "--as-of", &at, "-l", "role=db", "-o", "table"],
        )
        .await;
        same_from_both(&env, &["hosts", "--as-of", &at, "-o", "json"]).await;
    }

    // And the answers are right, not just equal. Pass times p0..p3:
    let secs = |micros: i64| micros as f64 / 1e6;
    let (p0, p1, p2, p3) = (times[0], times[1], times[2], times[3]);
    let m12 = hosts_by_id(&uptimes[3]);
    let at = mid(2);
    // B: in service p0→p1, retired p1→p2, returned p2→: in service (p1-p0) + (at-p2).
    let b = &m12["dc/pdx1/B"];
    assert_eq!(b["phase"], "InService");
    assert_eq!(
        b["inServiceSeconds"].as_f64(),
        Some(secs(p1 - p0 + at - p2))
    );
    // A: in service p0→p1, out p1→p2, in again p2→.
    assert_eq!(
        m12["dc/pdx1/A"]["inServiceSeconds"].as_f64(),
        Some(secs(p1 - p0 + at - p2))
    );
    // D: gone from the p2 export: missing since p2, in service p0→p2.
    assert_eq!(m12["dc/pdx1/D"]["phase"], "Missing");
    assert_eq!(
        m12["dc/pdx1/D"]["inServiceSeconds"].as_f64(),
        Some(secs(p2 - p0))
    );
    // In the middle of the first gap B is in service, after it retired again.
    assert_eq!(hosts_by_id(&uptimes[0])["dc/pdx1/B"]["phase"], "InService");
    let last = hosts_by_id(&uptimes[4]);
    assert_eq!(last["dc/pdx1/B"]["phase"], "Retired");
    assert_eq!(
        last["dc/pdx1/B"]["inServiceSeconds"].as_f64(),
        Some(secs(p1 - p0 + p3 - p2))
    );
    // C entered service at p1: as of the middle of the first gap it has none.
    assert_eq!(
        hosts_by_id(&uptimes[0])["dc/pdx1/C"]["inServiceSeconds"].as_f64(),
        Some(0.0)
    );

    // As of a time, selection uses the labels hosts had then: D was role=web until p1.
    let web = json(
        &same_from_both(
            &env,
            &[
                "uptime",
                "--as-of",
                &t(mid(0)),
                "-l",
                "role=web",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(
        hosts_by_id(&web).keys().collect::<Vec<_>>(),
        ["dc/pdx1/A", "dc/pdx1/D"]
    );
    let web_now = json(
        &same_from_both(
            &env,
            &[
                "uptime",
                "--as-of",
                &t(after),
                "-l",
                "role=web",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(
        hosts_by_id(&web_now).keys().collect::<Vec<_>>(),
        ["dc/pdx1/A"]
    );

    // Grouped totals add up.
    let grouped = json(
        &same_from_both(
            &env,
            &[
                "uptime",
                "--as-of",
                &t(after),
                "--group-by",
                "role",
                "-o",
                "json",
            ],
        )
        .await,
    );
    let groups = grouped["groups"].as_array().expect("groups");
    let sum: u64 = groups.iter().map(|g| g["hosts"].as_u64().expect("n")).sum();
    assert_eq!(sum, 4);
    assert_eq!(grouped["total"]["hosts"], 4);

    // history: every event of B with what changed, the same from both sources.
    let history = json(&same_from_both(&env, &["history", "dc/pdx1/B", "-o", "json"]).await);
    let phases: Vec<&str> = history
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["phase"].as_str().expect("phase"))
        .collect();
    assert_eq!(phases, ["InService", "Retired", "InService", "Retired"]);
    assert_eq!(history[0]["state"]["hostname"], "b-1");
    assert!(
        history[1]["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["field"] == "provider_status"
                && c["old"] == "active"
                && c["new"] == "decommissioned"),
        "{history}"
    );
    // by host name too, and as a table
    let table = query(&env, "objects", &["history", "b-1"]).await;
    assert!(
        table.contains("provider_status: active → decommissioned"),
        "{table}"
    );
    assert!(table.contains("4 events"), "{table}");
    // The projector's history of D records the role change.
    let d = query(&env, "log", &["history", "dc/pdx1/D", "-o", "csv"]).await;
    assert!(d.contains("role: web → db"), "{d}");

    env.cleanup().await;
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_a_failure_code() {
    let env = TestEnv::new("audit-bad", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    std::fs::write(
        &export,
        format!("{HEADER}{}", row("A", "a-1", "active", "web")),
    )
    .expect("write");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;

    for source in ["objects", "log"] {
        // Unknown host.
        let e = run_hostledger(&env.scoped(&["history", "dc/nowhere/X", "--source", source]))
            .await
            .failed();
        assert!(e.contains("no host \"dc/nowhere/X\""), "{e}");
        // Before the first event.
        let e =
            run_hostledger(&env.scoped(&["uptime", "--as-of", "2001-01-01", "--source", source]))
                .await
                .failed();
        assert!(
            e.contains("is before the first event in the inventory"),
            "{e}"
        );
        // In the future.
        let e = run_hostledger(&env.scoped(&[
            "hosts",
            "--as-of",
            "2999-01-01T00:00:00Z",
            "--source",
            source,
        ]))
        .await
        .failed();
        assert!(e.contains("is in the future"), "{e}");
        // A selector that matches nothing is not an empty success.
        let e = run_hostledger(&env.scoped(&["uptime", "-l", "role=nothing", "--source", source]))
            .await
            .failed();
        assert!(
            e.contains("no host matches the selector \"role=nothing\""),
            "{e}"
        );
    }
    // A malformed selector or time is refused before anything is read (clap's usage error).
    let out = run_hostledger(&env.scoped(&["uptime", "-l", "role in (a"])).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("a '(' without its ')'"),
        "{}",
        out.stderr
    );
    let out = run_hostledger(&env.scoped(&["uptime", "--as-of", "yesterday"])).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("neither an RFC 3339 time"),
        "{}",
        out.stderr
    );
    // An empty namespace says so.
    let empty = env.extra_namespace("empty").await;
    let e = run_hostledger(&["uptime", "--namespace", &empty])
        .await
        .failed();
    assert!(e.contains("the inventory is empty"), "{e}");
    // An unreachable API server: one line naming it, exit 1, no panic.
    let kubeconfig = hostledger_e2e::unreachable_kubeconfig(dir.path());
    let out = tokio::process::Command::new(hostledger_e2e::hostledger_binary())
        .args(["uptime", "--namespace", &env.namespace])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOSTLEDGER_LOG", "off")
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot read the inventory from the Kubernetes API server at https://127.0.0.1:1"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    env.cleanup().await;
}

//! The history API through kubectl: `hostledger history-server` (started by scripts/test with
//! `scripts/stack history-server`) folds the log a namespace's projection names and serves
//! `hosthistories.history.hostledger.dev` behind the real kube-apiserver's aggregation layer
//! (an APIService, a Service and its EndpointSlice at this machine's address). kubectl gets a
//! host's full history, the same entries `hostledger history --source log` prints; lists;
//! and a user without the permission is refused with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, bind, event, run_hostledger, user_kubeconfig};
use hostledger_schemas::Lifecycle;
use serde_json::Value;

async fn kubectl(kubeconfig: Option<&Path>, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new("kubectl");
    command.args(args);
    if let Some(k) = kubeconfig {
        command.env("KUBECONFIG", k);
    }
    let out = command.output().await.expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_reads_a_hosts_full_history_from_the_history_server() {
    let env = TestEnv::new("historyapi", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = ("test/r1/db-a", "test/r1/db-b");
    env.produce(&[
        event(a, 0, 0, Lifecycle::InService, "db"),
        event(b, 0, 0, Lifecycle::InService, "web"),
        event(a, 1, 5, Lifecycle::OutOfService, "db"),
        event(a, 2, 9, Lifecycle::InService, "db"),
    ])
    .await;

    // The shared history server (`scripts/stack history-server`, started by scripts/test)
    // reads this namespace's log once the projector names it.
    env.project_until_caught_up().await;

    // kubectl reaches the full history through the API server, as soon as it is indexed.
    let name = "test.r1.db-a";
    let started = Instant::now();
    let history: Value = loop {
        let (ok, out, err) = kubectl(
            None,
            &[
                "get",
                "hosthistories.history.hostledger.dev",
                name,
                "-n",
                &env.namespace,
                "-o",
                "json",
            ],
        )
        .await;
        if ok {
            let v: Value = serde_json::from_str(&out).expect("JSON");
            if v["spec"]["entries"].as_array().map(Vec::len) == Some(3) {
                break v;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kubectl get hosthistories: {out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(history["kind"], "HostHistory");
    assert_eq!(history["spec"]["hostId"], a);
    let from_log = run_hostledger(&env.scoped(&["history", a, "--source", "log", "-o", "json"]))
        .await
        .ok();
    let from_log: Value = serde_json::from_str(&from_log).expect("history JSON");
    assert_eq!(
        history["spec"]["entries"], from_log,
        "the API and the log agree"
    );

    // A list, and the table kubectl prints.
    let (ok, out, err) = kubectl(
        None,
        &[
            "get",
            "hosthistories.history.hostledger.dev",
            "-n",
            &env.namespace,
        ],
    )
    .await;
    assert!(
        ok && out.contains(name) && out.contains("test.r1.db-b"),
        "{out}{err}"
    );
    // The columns the server's Table gives kubectl.
    let header = out.lines().next().unwrap_or_default();
    for column in ["HOST-ID", "EVENTS", "PHASE", "FIRST-SEEN"] {
        assert!(header.contains(column), "{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default();
    assert!(
        row.contains(a) && row.contains(" 3 ") && row.contains("InService"),
        "{out}"
    );
    println!("$ kubectl get hosthistories.history.hostledger.dev -n NS\n{out}");

    // Someone without the permission is refused, with the reason (RBAC, checked by the API
    // server before it proxies, and by the history server again).
    let user = user_kubeconfig(dir.path(), "carol");
    let (ok, _, err) = kubectl(
        Some(&user),
        &[
            "get",
            "hosthistories.history.hostledger.dev",
            name,
            "-n",
            &env.namespace,
        ],
    )
    .await;
    assert!(!ok, "carol may not read histories");
    assert!(
        err.contains("User \"carol\" cannot get resource \"hosthistories\"")
            && err.contains("history.hostledger.dev"),
        "{err}"
    );
    // Granted the reader role, she may.
    bind(&env, "hostledger:history-reader", "carol").await;
    let started = Instant::now();
    loop {
        let (ok, out, err) = kubectl(
            Some(&user),
            &[
                "get",
                "hosthistories.history.hostledger.dev",
                name,
                "-n",
                &env.namespace,
                "-o",
                "name",
            ],
        )
        .await;
        if ok {
            assert!(out.contains(name), "{out}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    env.cleanup().await;
}

/// The hosts of an uptime JSON: host id → (phase, seconds in service).
fn uptime_rows(json: &str) -> Vec<(String, String, f64)> {
    let v: Value = serde_json::from_str(json).expect("uptime JSON");
    v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            (
                h["hostId"].as_str().unwrap_or_default().to_owned(),
                h["phase"].as_str().unwrap_or_default().to_owned(),
                h["inServiceSeconds"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

#[tokio::test]
async fn uptime_is_answered_by_the_history_server_as_fresh_as_the_log() {
    let env = TestEnv::new("uptimeview", 2).await;
    let (a, b) = ("test/r1/web-a", "test/r1/web-b");
    env.produce(&[
        event(a, 0, 0, Lifecycle::InService, "web"),
        event(b, 0, 0, Lifecycle::InService, "db"),
        event(a, 1, 60, Lifecycle::OutOfService, "web"),
    ])
    .await;
    env.project_until_caught_up().await;

    // As of a time, the history server's points and the log's fold agree to the microsecond.
    let at = "2026-01-01T00:30:00Z";
    let uptime = |extra: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut args = vec!["uptime", "--as-of", at, "-o", "json"];
            args.extend_from_slice(extra);
            run_hostledger(&env.scoped(&args)).await.ok()
        }
    };
    let from_index = uptime(&[]).await;
    let from_log = uptime(&["--source", "log"]).await;
    assert_eq!(from_index, from_log, "the points and the log agree");
    assert_eq!(
        uptime_rows(&from_index),
        [
            (a.to_owned(), "InService".to_owned(), 1800.0),
            (b.to_owned(), "InService".to_owned(), 1800.0),
        ]
    );

    // The API itself: a point per host.
    let path = format!(
        "/apis/history.hostledger.dev/v1alpha1/namespaces/{}/hosthistories?view=uptime",
        env.namespace
    );
    let (ok, out, err) = kubectl(None, &["get", "--raw", &path]).await;
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(list["kind"], "HostUptimeList");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{out}");
    let point = &items[0]["point"];
    assert_eq!(point["hostId"], a);
    assert_eq!(point["phase"], "OutOfService");
    assert_eq!(point["closedInServiceMicros"], 3_600_000_000_i64);
    let (ok, _, err) = kubectl(None, &["get", "--raw", &format!("{path}x")]).await;
    assert!(
        !ok && err.contains("view=uptimex is not a view of host histories"),
        "{err}"
    );

    // A change in the log that no projector has applied yet: `uptime` answers from the
    // index, which reads the log up to its end first, so it shows it at once; the Hosts
    // (selected by a label the projector does not derive) do not have it yet.
    env.produce(&[event(b, 1, 90, Lifecycle::OutOfService, "db")])
        .await;
    let phase_of_b = |json: &str| {
        uptime_rows(json)
            .into_iter()
            .find(|(id, _, _)| id == b)
            .map(|(_, phase, _)| phase)
    };
    let now = run_hostledger(&env.scoped(&["uptime", "-o", "json"]))
        .await
        .ok();
    assert_eq!(phase_of_b(&now).as_deref(), Some("OutOfService"), "{now}");
    let hosts = run_hostledger(&env.scoped(&["uptime", "-l", "!example.com/x", "-o", "json"]))
        .await
        .ok();
    assert_eq!(phase_of_b(&hosts).as_deref(), Some("InService"), "{hosts}");
    env.project_until_caught_up().await;
    let hosts = run_hostledger(&env.scoped(&["uptime", "-l", "!example.com/x", "-o", "json"]))
        .await
        .ok();
    assert_eq!(
        phase_of_b(&hosts).as_deref(),
        Some("OutOfService"),
        "{hosts}"
    );

    // Grouped and selected by the projector's labels, from the index too.
    let grouped = run_hostledger(&env.scoped(&[
        "uptime",
        "--as-of",
        at,
        "--group-by",
        "role",
        "-l",
        "phase=InService",
        "-o",
        "csv",
    ]))
    .await
    .ok();
    let from_log = run_hostledger(&env.scoped(&[
        "uptime",
        "--as-of",
        at,
        "--group-by",
        "role",
        "-l",
        "phase=InService",
        "-o",
        "csv",
        "--source",
        "log",
    ]))
    .await
    .ok();
    assert_eq!(grouped, from_log);
    assert!(
        grouped.contains("db,1,1,") && grouped.contains("web,1,1,"),
        "{grouped}"
    );

    env.cleanup().await;
}

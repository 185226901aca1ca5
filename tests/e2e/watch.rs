//! `hostledger watch` prints Host changes as they happen: a data-centre export goes through
//! the fetcher and the projector, and the watch shows the existing Hosts, then exactly the
//! host that changed, with what changed, as JSON and as lines.

use std::process::Stdio;
use std::time::Duration;

use hostledger_e2e::{TestEnv, hostledger_binary, run_hostledger, unreachable_kubeconfig};
use hostledger_model::names::object_name;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn export(log: &str) -> String {
    format!(
        "{HEADER}\
         PX100,log-pdx1-01,pdx1,hall-a,{log},log,observability,10.1.0.1,R650,A01\n\
         PX200,db-pdx1-01,pdx1,hall-a,maintenance,db,data,10.1.0.2,R750,A02\n\
         FR300,web-fra2-01,fra2,hall-1,active,web,storefront,10.2.0.1,R650,C07\n"
    )
}

/// `hostledger watch ARGS` with its stdout (and stderr, for the log) to read.
fn watch(
    args: &[&str],
) -> (
    Child,
    Lines<BufReader<ChildStdout>>,
    Lines<BufReader<ChildStderr>>,
) {
    let mut child = tokio::process::Command::new(hostledger_binary())
        .arg("watch")
        .args(args)
        .env("HOSTLEDGER_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger watch");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    (child, stdout, stderr)
}

/// The next line within `limit`, or `None` when none came.
async fn line_within<R>(lines: &mut Lines<R>, limit: Duration) -> Option<String>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    match tokio::time::timeout(limit, lines.next_line()).await {
        Ok(line) => Some(
            line.expect("read a line")
                .expect("the watch is still running"),
        ),
        Err(_) => None,
    }
}

async fn next_line<R>(lines: &mut Lines<R>) -> String
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    line_within(lines, Duration::from_secs(60))
        .await
        .expect("a line within a minute")
}

async fn next_json(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = next_line(lines).await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Waits until the watch says (in its log) that it has listed the Hosts.
async fn wait_until_watching(stderr: &mut Lines<BufReader<ChildStderr>>) {
    loop {
        if next_line(stderr).await.contains("watching Hosts") {
            return;
        }
    }
}

/// `2026-11-27T09:33:40Z`: an RFC 3339 time in UTC to the second.
fn is_time(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 20
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && word.ends_with('Z')
        && word.chars().filter(char::is_ascii_digit).count() == 14
}

#[tokio::test]
async fn watch_shows_the_hosts_then_exactly_what_changed() {
    let env = TestEnv::new("watch", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &csv, 0);
    std::fs::write(&csv, export("active")).expect("write export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    let ns = env.namespace.as_str();

    // Given three projected hosts, a watch prints them first, as ADDED, by host id;
    let (_json_child, mut json_out, _json_err) = watch(&["-o", "json", "--namespace", ns]);
    let mut added = Vec::new();
    for _ in 0..3 {
        let event = next_json(&mut json_out).await;
        assert_eq!(event["type"], "ADDED", "{event}");
        assert_eq!(event["previousPhase"], Value::Null, "{event}");
        assert_eq!(event["changes"], json!([]), "{event}");
        let host_id = event["hostId"].as_str().expect("hostId").to_owned();
        assert_eq!(event["name"], object_name(&host_id), "{event}");
        assert_eq!(event["labels"]["provider"], "dc", "{event}");
        assert!(event["resourceVersion"].as_str().is_some(), "{event}");
        assert!(
            event["observedAt"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{event}"
        );
        added.push((
            host_id,
            event["hostname"].as_str().expect("hostname").to_owned(),
            event["phase"].as_str().expect("phase").to_owned(),
        ));
    }
    let owned = |items: [(&str, &str, &str); 3]| -> Vec<(String, String, String)> {
        items
            .iter()
            .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
            .collect()
    };
    assert_eq!(
        added,
        owned([
            ("dc/fra2/FR300", "web-fra2-01", "InService"),
            ("dc/pdx1/PX100", "log-pdx1-01", "InService"),
            ("dc/pdx1/PX200", "db-pdx1-01", "OutOfService"),
        ])
    );

    // as lines too,
    let (mut line_child, mut line_out, _line_err) = watch(&["--namespace", ns]);
    let first = next_line(&mut line_out).await;
    let words: Vec<&str> = first.split(' ').collect();
    assert!(is_time(words[0]), "{first}");
    assert_eq!(
        words[1..],
        [
            "ADDED",
            object_name("dc/fra2/FR300").as_str(),
            "dc/fra2/FR300",
            "phase",
            "InService",
            "hostname",
            "web-fra2-01"
        ],
        "{first}"
    );
    next_line(&mut line_out).await;
    next_line(&mut line_out).await;

    // and with --changes-only, nothing until something changes.
    let (_changes_child, mut changes_out, mut changes_err) =
        watch(&["-o", "json", "--changes-only", "--namespace", ns]);
    wait_until_watching(&mut changes_err).await;

    // When one host goes into maintenance,
    std::fs::write(&csv, export("maintenance")).expect("edit export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;

    // the watch prints one MODIFIED event for exactly that host, with what changed,
    let event = next_json(&mut json_out).await;
    assert_eq!(event["type"], "MODIFIED", "{event}");
    assert_eq!(event["hostId"], "dc/pdx1/PX100", "{event}");
    assert_eq!(event["name"], object_name("dc/pdx1/PX100"), "{event}");
    assert_eq!(event["hostname"], "log-pdx1-01", "{event}");
    assert_eq!(event["previousPhase"], "InService", "{event}");
    assert_eq!(event["phase"], "OutOfService", "{event}");
    assert_eq!(
        event["changes"],
        json!([
            {"field": "phase", "old": "InService", "new": "OutOfService"},
            {"field": "provider_status", "old": "active", "new": "maintenance"},
        ]),
        "{event}"
    );
    assert_eq!(event["labels"]["phase"], "OutOfService", "{event}");
    assert_eq!(
        line_within(&mut json_out, Duration::from_secs(2)).await,
        None,
        "nothing else changed"
    );
    assert_eq!(
        next_json(&mut changes_out).await["changes"],
        event["changes"]
    );

    let line = next_line(&mut line_out).await;
    let (time, rest) = line.split_once(' ').expect("a time first");
    assert!(is_time(time), "{line}");
    assert_eq!(
        rest,
        format!(
            "MODIFIED {} dc/pdx1/PX100 phase InService→OutOfService provider_status active→maintenance",
            object_name("dc/pdx1/PX100")
        )
    );

    // A reader that goes away (`| head -1`) ends the watch with exit code 0 straight away.
    drop(line_out);
    let status = tokio::time::timeout(Duration::from_secs(10), line_child.wait())
        .await
        .expect("the watch ends when its stdout closes")
        .expect("wait for the watch");
    assert_eq!(status.code(), Some(0));

    // A person's label is a change too.
    env.hosts()
        .patch(
            &object_name("dc/pdx1/PX200"),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "owner": "alice" } } })),
        )
        .await
        .expect("label Host");
    let event = next_json(&mut json_out).await;
    assert_eq!(event["type"], "MODIFIED", "{event}");
    assert_eq!(event["hostId"], "dc/pdx1/PX200", "{event}");
    assert_eq!(event["previousPhase"], "OutOfService", "{event}");
    assert_eq!(event["phase"], "OutOfService", "{event}");
    assert_eq!(
        event["changes"],
        json!([{"field": "labels.owner", "old": null, "new": "alice"}]),
        "{event}"
    );
    assert_eq!(event["labels"]["owner"], "alice", "{event}");
    env.cleanup().await;
}

/// A kubeconfig for an API server that is not there.
#[tokio::test]
async fn bad_input_and_an_unreachable_api_server_get_clear_errors() {
    // A malformed selector is refused while the command line is read (clap: exit code 2).
    let out = run_hostledger(&["watch", "-l", "role in (a"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: invalid value 'role in (a' for '--selector <SELECTOR>'")
            && out.stderr.contains("a '(' without its ')'"),
        "{}",
        out.stderr
    );
    let out = run_hostledger(&["watch", "-o", "yaml"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);

    // An API server that cannot be reached at the start: one line naming it, exit 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(hostledger_binary())
        .args(["watch", "--namespace", "nowhere"])
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path()))
        .env("HOSTLEDGER_LOG", "off")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the watch gives up at once")
        .expect("run hostledger");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with(
            "error: cannot watch Hosts in namespace nowhere on the Kubernetes API server at https://127.0.0.1:1: "
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

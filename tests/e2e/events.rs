//! `hostledger events` on the real broker: the log's events as JSON lines and a table,
//! filtered by host, kind, time and labels, poison shown with its reason, and `--follow`
//! printing an event published after it started; `history --source log` by host id (read from
//! the host's partition alone) equals the same history found by host name (the whole log).

use std::time::Duration;

use hostledger_e2e::{Role, TestEnv, hostledger_as, run_hostledger};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn events_are_shown_filtered_and_followed() {
    let env = TestEnv::new("events", 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    let write =
        |rows: &str| std::fs::write(&export, format!("{HEADER}{rows}")).expect("write export");
    write(
        "PX100,log-pdx1-01,pdx1,hall-a,active,log,observability,10.1.0.1,R650,A01\n\
         PX200,db-pdx1-01,pdx1,hall-a,active,db,data,10.1.0.2,R750,A02\n\
         FR300,web-fra2-01,fra2,,active,web,,10.2.0.1,R650,C07\n",
    );
    env.fetch_once(&config).await;
    write(
        "PX100,log-pdx1-01,pdx1,hall-a,active,metrics,observability,10.1.0.1,R650,A01\n\
         PX200,db-pdx1-01,pdx1,hall-a,maintenance,db,data,10.1.0.2,R750,B09\n\
         FR300,web-fra2-01,fra2,,decommissioned,web,,10.2.0.1,R650,C07\n",
    );
    env.fetch_once(&config).await;
    let events = env.read_events();
    assert_eq!(events.len(), 6);
    env.produce_raw("dc/pdx1/PX999", b"not an event").await;
    let topic_prefix = env.topic_prefix.clone();
    let kafka = [
        "--topic-prefix",
        &topic_prefix,
        "--kafka-bootstrap",
        &env.bootstrap,
    ];
    let events_cmd = |extra: &[&str]| {
        let mut args = vec!["events"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&kafka);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let args = events_cmd(extra);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_hostledger(&args).await.ok()
        }
    };

    // Everything, as JSON lines: every event field for field, and the poison message.
    let all = lines(&run(&[]).await);
    assert_eq!(all.len(), 7);
    for e in &events {
        let line = all
            .iter()
            .find(|l| l["event"]["event_id"] == e.event_id.as_str())
            .unwrap_or_else(|| panic!("{} not shown", e.event_id));
        assert_eq!(line["event"]["host_id"], e.host_id.as_str());
        assert_eq!(line["event"]["kind"], e.kind.as_str());
        assert_eq!(
            line["event"]["observed_at"],
            e.observed_at.to_rfc3339().as_str()
        );
        assert_eq!(
            line["event"]["state"]["lifecycle"],
            e.state.lifecycle.as_str()
        );
        assert_eq!(
            line["event"]["changes"].as_array().map(Vec::len),
            Some(e.changes.len())
        );
    }
    let poison: Vec<&Value> = all.iter().filter(|l| l.get("poison").is_some()).collect();
    assert_eq!(poison.len(), 1);
    assert_eq!(poison[0]["key"], "dc/pdx1/PX999");
    assert!(
        poison[0]["poison"]
            .as_str()
            .is_some_and(|r| r.contains("single-object marker")),
        "{}",
        poison[0]
    );

    // One host by id, as a table.
    let table = run(&["--host", "dc/pdx1/PX200", "-o", "table"]).await;
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("OBSERVED AT (UTC)"), "{table}");
    assert_eq!(rows.len(), 4, "header, 2 events, summary: {table}");
    assert!(
        rows[1].contains("HostDiscovered") && rows[1].contains("hostname=db-pdx1-01"),
        "{table}"
    );
    assert!(
        rows[2].contains("lifecycle: InService → OutOfService"),
        "{table}"
    );
    assert!(
        rows[3].starts_with("2 events of dc/pdx1/PX200 shown"),
        "{table}"
    );

    // By kind, by time, by labels of the event's state.
    let retired = lines(&run(&["--kind", "retired"]).await);
    let kinds: Vec<&str> = retired
        .iter()
        .filter_map(|l| l["event"]["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["HostRetired"]);
    let second_pass = events.iter().map(|e| e.observed_at).max().expect("events");
    let since = lines(&run(&["--since", &second_pass.to_rfc3339()]).await);
    let ids: Vec<&str> = since
        .iter()
        .filter_map(|l| l["event"]["host_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "the second pass only: {since:?}");
    let metrics = lines(&run(&["-l", "role=metrics,provider=dc"]).await);
    let ids: Vec<&str> = metrics
        .iter()
        .filter_map(|l| l["event"]["host_id"].as_str())
        .collect();
    assert_eq!(ids, ["dc/pdx1/PX100"]);
    let err = run_hostledger(
        &events_cmd(&["--kind", "deleted"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(err.code, Some(2), "a usage error");
    assert!(
        err.stderr.contains("is not an event kind"),
        "{}",
        err.stderr
    );

    // One host's history from the log: by id (its partition only) as by name (every partition).
    let by_id = run_hostledger(&env.scoped(&["history", "--source", "log", "dc/pdx1/PX200"]))
        .await
        .ok();
    let by_name = run_hostledger(&env.scoped(&["history", "--source", "log", "db-pdx1-01"]))
        .await
        .ok();
    assert_eq!(by_id, by_name);
    assert!(by_id.contains("2 events"), "{by_id}");

    // --follow: the existing events, then one published after it started.
    let args = events_cmd(&["--follow"]);
    let mut child = hostledger_as(Role::Reader)
        .args(&args)
        .env("HOSTLEDGER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start events --follow");
    let mut out = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    for _ in 0..7 {
        tokio::time::timeout(Duration::from_secs(30), out.next_line())
            .await
            .expect("the existing events within 30 s")
            .expect("read")
            .expect("a line");
    }
    write(
        "PX100,log-pdx1-01,pdx1,hall-a,active,metrics,observability,10.1.0.1,R650,A01\n\
         PX200,db-pdx1-01,pdx1,hall-a,active,db,data,10.1.0.2,R750,B09\n\
         FR300,web-fra2-01,fra2,,decommissioned,web,,10.2.0.1,R650,C07\n",
    );
    env.fetch_once(&config).await;
    let line = tokio::time::timeout(Duration::from_secs(30), out.next_line())
        .await
        .expect("the new event within 30 s")
        .expect("read")
        .expect("a line");
    let new: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(new["event"]["host_id"], "dc/pdx1/PX200");
    assert_eq!(new["event"]["state"]["lifecycle"], "InService");
    child.start_kill().expect("kill");
    env.cleanup().await;
}

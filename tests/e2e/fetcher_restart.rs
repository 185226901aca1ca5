//! A fetcher killed with SIGKILL between polls and in the middle of publishing, then
//! restarted: the log holds every change exactly once, read back from the topic.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hostledger_e2e::{TestEnv, hostledger_binary};
use hostledger_schemas::{EventKind, HostState};

const HOSTS: usize = 20_000;

fn write_export(path: &Path, round: usize) {
    let mut text = String::from("serial,hostname,site,status,role,team\n");
    for i in 0..HOSTS {
        // Each round changes the role of a different slice of 500 hosts.
        let role = if i / 500 == round % (HOSTS / 500) {
            format!("role-r{round}")
        } else {
            "web".to_owned()
        };
        text.push_str(&format!("S{i:06},host-{i:06},pdx1,active,{role},sre\n"));
    }
    std::fs::write(path, text).expect("write export");
}

#[tokio::test]
async fn killed_fetcher_publishes_every_change_exactly_once() {
    let env = TestEnv::new("fetchkill", 6).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    let text = std::fs::read_to_string(&config).expect("config") + "interval_secs: 1\n";
    std::fs::write(&config, text).expect("config");

    let mut final_round = 0;
    for (round, kill_after_ms) in [700u64, 2500, 1200, 3100, 400].into_iter().enumerate() {
        write_export(&export, round);
        final_round = round;
        let mut child = tokio::process::Command::new(hostledger_binary())
            .args([
                "fetch",
                "--metrics-addr",
                "127.0.0.1:0",
                "--config",
                config.to_str().expect("utf-8"),
            ])
            .env("HOSTLEDGER_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start hostledger fetch");
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }
    // A last, clean pass catches up with the final export.
    env.fetch_once(&config).await;

    let events = env.read_events();
    let mut by_host: BTreeMap<String, Vec<(EventKind, HostState)>> = BTreeMap::new();
    for e in events {
        by_host
            .entry(e.host_id)
            .or_default()
            .push((e.kind, e.state));
    }
    assert_eq!(by_host.len(), HOSTS, "every host discovered");
    for (host, history) in &by_host {
        let discovered = history
            .iter()
            .filter(|(k, _)| *k == EventKind::HostDiscovered)
            .count();
        assert_eq!(discovered, 1, "{host} discovered {discovered} times");
        for pair in history.windows(2) {
            assert_ne!(
                pair[0].1, pair[1].1,
                "{host}: the same state published twice"
            );
        }
    }
    // The log ends where the export ends.
    for (i, (host, history)) in by_host.iter().enumerate() {
        let want = if i / 500 == final_round % (HOSTS / 500) {
            format!("role-r{final_round}")
        } else {
            "web".to_owned()
        };
        assert_eq!(
            history.last().expect("events").1.role.as_deref(),
            Some(want.as_str()),
            "{host}"
        );
    }
    env.cleanup().await;
}

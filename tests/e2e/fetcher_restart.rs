//! A fetcher killed with SIGKILL between polls and in the middle of publishing, then
//! restarted: the log holds every change exactly once, read back from the topic. And one
//! killed while a vanished host's grace period runs: the restarted fetcher still reports the
//! host missing when the grace since it was first seen absent is over.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hostledger_e2e::{Role, TestEnv, hostledger_as, read_topic_with_headers};
use hostledger_producers::{ABSENT_SINCE_HEADER, state_key};
use hostledger_schemas::{EventKind, HostState, Timestamp};

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
        let mut child = hostledger_as(Role::Fetcher)
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

const GRACE_SECS: i64 = 10;

fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    Timestamp(i64::try_from(since_epoch.as_micros()).expect("in range"))
}

fn start_fetcher(config: &Path) -> tokio::process::Child {
    hostledger_as(Role::Fetcher)
        .args(["fetch", "--metrics-addr", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("HOSTLEDGER_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger fetch")
}

/// The headers of the last fetcher-state entry of `key`, if there is one.
fn state_headers(env: &TestEnv, key: &str) -> Option<BTreeMap<String, String>> {
    let topic = &env.kafka.settings().topics.fetcher_state;
    read_topic_with_headers(&env.kafka, topic)
        .into_iter()
        .filter(|(k, _, _)| k == key.as_bytes())
        .map(|(_, _, headers)| headers)
        .next_back()
}

#[tokio::test]
async fn the_grace_clock_survives_a_sigkill() {
    let env = TestEnv::new("graceclock", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let header = "serial,hostname,site,status,role,team\n";
    let a = "PX1,web-01,pdx1,active,web,sre\n";
    let b = "PX2,web-02,pdx1,active,web,sre\n";
    std::fs::write(&export, format!("{header}{a}{b}")).expect("export");
    let config = env.dc_fetcher_config(dir.path(), &export, GRACE_SECS as u64);
    let text = std::fs::read_to_string(&config).expect("config") + "interval_secs: 1\n";
    std::fs::write(&config, text).expect("config");
    env.fetch_once(&config).await;
    let source = format!("dc-{}", env.id);
    let key = state_key(&source, "dc/pdx1/PX2");
    assert_eq!(
        state_headers(&env, &key).map(|h| h.contains_key(ABSENT_SINCE_HEADER)),
        Some(false),
        "a listed host has no absence clock"
    );

    // web-02 vanishes; a running fetcher notices and records since when.
    std::fs::write(&export, format!("{header}{a}")).expect("export");
    let mut first = start_fetcher(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    let absent_since = loop {
        let since = state_headers(&env, &key).and_then(|h| h.get(ABSENT_SINCE_HEADER).cloned());
        if let Some(since) = since {
            break Timestamp(since.parse().expect("microseconds"));
        }
        assert!(
            Instant::now() < deadline,
            "no absence clock written for web-02"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Killed a third into the grace period, restarted at once.
    let kill_at = absent_since.0 + GRACE_SECS * 1_000_000 / 3;
    let wait = kill_at - now().0;
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
    }
    first.start_kill().expect("SIGKILL");
    let _ = first.wait().await;
    let restarted_at = now();
    let mut second = start_fetcher(&config);

    let deadline = Instant::now() + Duration::from_secs(3 * GRACE_SECS as u64);
    let missing = loop {
        let missing = env
            .read_events()
            .into_iter()
            .find(|e| e.host_id == "dc/pdx1/PX2" && e.kind == EventKind::HostWentMissing);
        if let Some(event) = missing {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "web-02 was never reported missing"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    second.start_kill().expect("stop the fetcher");
    let _ = second.wait().await;

    let after_absence = missing.observed_at.micros_since(absent_since) as f64 / 1e6;
    let after_restart = missing.observed_at.micros_since(restarted_at) as f64 / 1e6;
    assert!(
        after_absence >= GRACE_SECS as f64,
        "reported missing {after_absence:.1} s after it vanished, before the {GRACE_SECS} s grace"
    );
    assert!(
        after_absence < GRACE_SECS as f64 + 3.0,
        "reported missing {after_absence:.1} s after it vanished: the grace ({GRACE_SECS} s) \
         started over at the restart ({after_restart:.1} s before the report)"
    );
    assert!(after_restart < GRACE_SECS as f64, "{after_restart}");
    assert_eq!(
        state_headers(&env, &key).map(|h| h.contains_key(ABSENT_SINCE_HEADER)),
        Some(false),
        "once reported missing, the clock is done"
    );

    // Back in the export: returned, and the next absence starts a new clock.
    std::fs::write(&export, format!("{header}{a}{b}")).expect("export");
    env.fetch_once(&config).await;
    let kinds: Vec<EventKind> = env
        .read_events()
        .into_iter()
        .filter(|e| e.host_id == "dc/pdx1/PX2")
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::HostDiscovered,
            EventKind::HostWentMissing,
            EventKind::HostReturned
        ]
    );
    env.cleanup().await;
}

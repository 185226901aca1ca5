//! The projector through failures of the things around it: a replica killed mid-stream, the
//! kube-apiserver killed and restarted, the Kafka broker killed and restarted. Nothing may be
//! lost and nothing applied twice.
//!
//! One test function on purpose: it stops shared services, so nothing else may run at the
//! same time (cargo runs test binaries one after another).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, event};
use hostledger_schemas::{HostEvent, Lifecycle};

const PHASES: [Lifecycle; 3] = [
    Lifecycle::InService,
    Lifecycle::OutOfService,
    Lifecycle::InService,
];

fn events(hosts: usize, from: u64, to: u64) -> Vec<HostEvent> {
    let mut out = Vec::new();
    for n in from..to {
        for h in 0..hosts {
            out.push(event(
                &format!("test/t1/node-{h:04}"),
                n,
                n as i64 * 5 + h as i64 % 5,
                PHASES[(n as usize + h) % 3],
                "node",
            ));
        }
    }
    out
}

fn expected_counts(events: &[HostEvent]) -> BTreeMap<String, usize> {
    events.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.host_id.clone()).or_default() += 1;
        m
    })
}

/// Waits until every host's history holds exactly the expected number of events.
async fn wait_for_history(env: &TestEnv, expected: &BTreeMap<String, usize>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let history = env.histories(&env.namespace).await;
        let counts: BTreeMap<String, usize> =
            history.iter().map(|(h, e)| (h.clone(), e.len())).collect();
        if &counts == expected {
            for (host, entries) in &history {
                let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
                let want: Vec<i64> = (1..=entries.len() as i64).collect();
                assert_eq!(seqs, want, "{host}: history has gaps or repeats");
            }
            let statuses = env.statuses(&env.namespace).await;
            for (host, n) in expected {
                assert_eq!(
                    statuses[host].event_count as usize, *n,
                    "{host}: Host status behind its history"
                );
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not converged within {within:?}: {} of {} hosts match",
            counts
                .iter()
                .filter(|(h, n)| expected.get(*h) == Some(n))
                .count(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn stack_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("HOSTLEDGER_STACK_DIR").expect("HOSTLEDGER_STACK_DIR from scripts/stack env"),
    )
}

fn kill(component: &str) {
    let pid =
        std::fs::read_to_string(stack_dir().join(format!("{component}.pid"))).expect("pid file");
    let status = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {component}");
}

fn restart_stack() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack");
    let status = std::process::Command::new(script)
        .arg("up")
        .status()
        .expect("scripts/stack up");
    assert!(status.success(), "scripts/stack up");
}

fn projector(env: &TestEnv) -> tokio::process::Child {
    env.spawn_projector(
        &[
            "--batch-size",
            "500",
            "--kafka-option",
            "session.timeout.ms=6000",
            "--kafka-option",
            "heartbeat.interval.ms=1000",
        ],
        false,
    )
}

#[tokio::test]
async fn nothing_is_lost_or_doubled_through_crashes_and_outages() {
    let env = TestEnv::new("disrupt", 6).await;
    let hosts = 150;
    let mut log = events(hosts, 0, 40);

    // Two replicas share the partitions; one is killed mid-stream; the other finishes.
    env.produce(&log).await;
    let mut a = projector(&env);
    let mut b = projector(&env);
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.start_kill().expect("SIGKILL replica a");
    let _ = a.wait().await;
    wait_for_history(&env, &expected_counts(&log), Duration::from_secs(120)).await;

    // The API server dies while events keep coming; it comes back; nothing is lost.
    kill("kube-apiserver");
    let more = events(hosts, 40, 50);
    env.produce(&more).await;
    log.extend(more);
    tokio::time::sleep(Duration::from_secs(3)).await;
    restart_stack();
    wait_for_history(&env, &expected_counts(&log), Duration::from_secs(120)).await;

    // The broker dies; it comes back; the projector resumes where it stopped.
    kill("kafka");
    tokio::time::sleep(Duration::from_secs(3)).await;
    restart_stack();
    let more = events(hosts, 50, 60);
    env.produce(&more).await;
    log.extend(more);
    wait_for_history(&env, &expected_counts(&log), Duration::from_secs(180)).await;

    assert!(
        b.try_wait().expect("status").is_none(),
        "the surviving replica is still running"
    );
    b.start_kill().expect("stop replica b");
    let _ = b.wait().await;
    env.cleanup().await;
}

//! Two projector replicas, each with its own `--instance-id`; one is killed with SIGKILL and
//! restarted at once under the same name. The replacement is given the dead process's
//! partitions straight away (Kafka static membership) and applies new events long before the
//! dead one's consumer-group session (45 s here) would have expired; the other replica is
//! not disturbed.

use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, event};
use hostledger_schemas::{HostEvent, Lifecycle};

const HOSTS: usize = 24;
const SESSION_TIMEOUT_SECS: u64 = 45;

fn projector(env: &TestEnv, instance: &str) -> tokio::process::Child {
    let session = format!("session.timeout.ms={}", SESSION_TIMEOUT_SECS * 1000);
    env.spawn_projector(
        &["--instance-id", instance, "--kafka-option", &session],
        true,
    )
}

/// One event per host: its `n`-th observation, with role `role-N`.
fn round(n: u64) -> Vec<HostEvent> {
    (0..HOSTS)
        .map(|h| {
            let role = format!("role-{n}");
            event(
                &format!("test/r1/host-{h:03}"),
                n,
                n as i64,
                Lifecycle::InService,
                &role,
            )
        })
        .collect()
}

/// Waits until every host's role is `role-N`; returns how long that took.
async fn wait_for_round(env: &TestEnv, n: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    let want = format!("role-{n}");
    loop {
        let statuses = env.statuses(&env.namespace).await;
        let done = statuses
            .values()
            .filter(|s| s.state.role.as_deref() == Some(want.as_str()))
            .count();
        if done == HOSTS {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "after {:.1} s only {done} of {HOSTS} hosts have {want}",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_projector_is_back_before_its_session_would_expire() {
    let env = TestEnv::new("projrestart", 6).await;
    let a_name = format!("{}-a", env.id);
    let b_name = format!("{}-b", env.id);
    env.produce(&round(0)).await;
    let mut a = projector(&env, &a_name);
    let mut b = projector(&env, &b_name);
    wait_for_round(&env, 0, Duration::from_secs(60)).await;
    // Both replicas own partitions (a group of two splits six partitions) once they are
    // both in: one more round through the settled group.
    env.produce(&round(1)).await;
    wait_for_round(&env, 1, Duration::from_secs(60)).await;

    a.start_kill().expect("SIGKILL replica a");
    let _ = a.wait().await;
    let restarted = Instant::now();
    let a = projector(&env, &a_name);
    env.produce(&round(2)).await;
    wait_for_round(&env, 2, Duration::from_secs(2 * SESSION_TIMEOUT_SECS)).await;
    let back_after = restarted.elapsed();
    eprintln!(
        "replacement applied every host's new event {:.2} s after it was started",
        back_after.as_secs_f64()
    );
    assert!(
        back_after < Duration::from_secs(SESSION_TIMEOUT_SECS / 3),
        "the replacement took {:.1} s: it waited for the dead replica's session ({SESSION_TIMEOUT_SECS} s)",
        back_after.as_secs_f64()
    );
    assert!(
        b.try_wait().expect("status").is_none(),
        "replica b kept running"
    );

    // A third process under a's name fences the replacement, which stops with a clear error.
    let mut twin = projector(&env, &a_name);
    let out = tokio::time::timeout(Duration::from_secs(60), a.wait_with_output())
        .await
        .expect("the fenced replica stops")
        .expect("its output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a fenced replica exits with an error"
    );
    assert!(
        stderr.contains("the same --instance-id") && stderr.contains(&a_name),
        "{stderr}"
    );
    env.produce(&round(3)).await;
    wait_for_round(&env, 3, Duration::from_secs(60)).await;

    for child in [&mut b, &mut twin] {
        child.start_kill().expect("stop");
        let _ = child.wait().await;
    }
    env.cleanup().await;
}

//! Host groups on the real stack: a HostGroup's status kept by the running projector and
//! following a host change within a second; locks refused by the group's budget with its
//! numbers (hosts already down count against it; `maxLocked` caps locks); two holders racing
//! for the last place in the budget, exactly one keeping it; and `uptime --group` as of a
//! past time equal from the Host objects and from the log.

use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, event, run_hostledger};
use hostledger_model::HostGroup;
use hostledger_schemas::{EventKind, Lifecycle};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Five db hosts and one web host, in service, projected.
async fn fleet(env: &TestEnv) {
    let mut events: Vec<_> = (0..5)
        .map(|i| event(&format!("test/r1/db-{i}"), 0, i, Lifecycle::InService, "db"))
        .collect();
    events.push(event("test/r1/web-0", 0, 0, Lifecycle::InService, "web"));
    env.produce(&events).await;
    env.project_until_caught_up().await;
}

fn groups(env: &TestEnv) -> Api<HostGroup> {
    Api::namespaced(env.kube.clone(), &env.namespace)
}

async fn create_group(env: &TestEnv, name: &str, spec: Value) {
    let group: HostGroup = serde_json::from_value(json!({
        "apiVersion": "hostledger.dev/v1alpha1", "kind": "HostGroup",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("a HostGroup");
    groups(env)
        .create(&PostParams::default(), &group)
        .await
        .expect("create HostGroup");
}

async fn set_spec(env: &TestEnv, name: &str, spec: Value) {
    groups(env)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch HostGroup");
}

/// Waits until the group's status satisfies `done`; returns how long that took.
async fn wait_status(
    env: &TestEnv,
    name: &str,
    what: &str,
    done: impl Fn(&hostledger_model::HostGroupStatus) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let group = groups(env).get(name).await.expect("group");
        if group.status.as_ref().is_some_and(&done) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: status is {:?}",
            group.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lock(env: &TestEnv, host: &str) -> hostledger_e2e::Output {
    run_hostledger(&[
        "lock",
        host,
        "--reason",
        "maintenance",
        "--namespace",
        &env.namespace,
    ])
    .await
}

#[tokio::test]
async fn group_status_budgets_and_group_uptime() {
    let env = TestEnv::new("groups", 1).await;
    fleet(&env).await;
    let _projector = env.spawn_projector(&[], false);
    create_group(
        &env,
        "db",
        json!({"selector": "role=db", "expectedSize": 5, "minInService": 3, "owner": "data"}),
    )
    .await;
    wait_status(&env, "db", "five members in service", |s| {
        (s.members, s.in_service, s.available, s.locked) == (5, 5, 5, 0)
    })
    .await;

    // A host goes out of service: the group follows within a second of the Host changing.
    let mut stopped = event("test/r1/db-4", 1, 10, Lifecycle::OutOfService, "db");
    stopped.kind = EventKind::HostLifecycleChanged;
    env.produce(&[stopped]).await;
    let started = Instant::now();
    loop {
        let host = env.hosts().get("test.r1.db-4").await.expect("db-4");
        if host
            .status
            .is_some_and(|s| s.state.lifecycle == Lifecycle::OutOfService)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "db-4 not projected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let followed = wait_status(&env, "db", "db-4 out of service", |s| s.in_service == 4).await;
    assert!(
        followed < Duration::from_secs(1),
        "the group status took {:.2} s after the Host changed",
        followed.as_secs_f64()
    );
    println!(
        "group status followed the Host in {:.0} ms",
        followed.as_secs_f64() * 1000.0
    );

    // Budget: 4 in service, minimum 3, so one lock fits and a second does not.
    let first = lock(&env, "test.r1.db-0").await;
    assert_eq!(first.code, Some(0), "{first:?}");
    let refused = lock(&env, "test.r1.db-1").await;
    assert_eq!(refused.code, Some(5), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "locking test.r1.db-1 would leave group db with 2 available (in service and not \
             locked), below its minimum of 3 (5 members: 4 in service, 1 locked, 3 available)"
        ),
        "{}",
        refused.stderr
    );
    // The host already down does not spend the budget.
    let down = lock(&env, "test.r1.db-4").await;
    assert_eq!(down.code, Some(0), "{down:?}");
    wait_status(&env, "db", "two locked", |s| {
        s.locked == 2 && s.available == 3
    })
    .await;

    // A minimum above what is in service: BelowMinimum, with the numbers.
    set_spec(&env, "db", json!({"minInService": 5})).await;
    wait_status(&env, "db", "BelowMinimum", |s| {
        s.conditions.iter().any(|c| {
            c.type_ == "BelowMinimum"
                && c.status == "True"
                && c.message == "4 of 5 members in service, minimum 5"
        })
    })
    .await;
    let table = run_hostledger(&["groups", "--namespace", &env.namespace])
        .await
        .ok();
    assert!(
        table.contains("BelowMinimum: 4 of 5 members in service, minimum 5"),
        "{table}"
    );

    // maxLocked: with two locked and a cap of 2, nothing more; two racing for the last
    // place once one is released: exactly one keeps it.
    set_spec(&env, "db", json!({"minInService": 0, "maxLocked": 2})).await;
    let capped = lock(&env, "test.r1.db-2").await;
    assert_eq!(capped.code, Some(5), "{capped:?}");
    assert!(
        capped.stderr.contains("more than its maxLocked of 2"),
        "{}",
        capped.stderr
    );
    run_hostledger(&["unlock", "test.r1.db-4", "--namespace", &env.namespace])
        .await
        .ok();
    let (a, b) = tokio::join!(lock(&env, "test.r1.db-2"), lock(&env, "test.r1.db-3"));
    let won = [&a, &b].iter().filter(|o| o.code == Some(0)).count();
    assert_eq!(
        won, 1,
        "exactly one of two racers keeps the last place: {a:?} {b:?}"
    );
    wait_status(&env, "db", "two locked again", |s| s.locked == 2).await;

    // uptime --group as of a past time: the same from the objects and from the log.
    let as_of = "2026-01-01T00:03:30Z";
    let uptime = |source: &'static str| {
        let ns = env.namespace.clone();
        let prefix = env.topic_prefix.clone();
        let bootstrap = env.bootstrap.clone();
        async move {
            let out = run_hostledger(&[
                "uptime",
                "--group",
                "db",
                "--as-of",
                as_of,
                "-o",
                "json",
                "--source",
                source,
                "--namespace",
                &ns,
                "--topic-prefix",
                &prefix,
                "--kafka-bootstrap",
                &bootstrap,
            ])
            .await
            .ok();
            let mut v: Value = serde_json::from_str(&out).expect("uptime JSON");
            v.as_object_mut().expect("object").remove("asOf");
            v
        }
    };
    let from_objects = uptime("objects").await;
    let from_log = uptime("log").await;
    assert_eq!(from_objects, from_log);
    // db-0..db-3 were discovered at minutes 0..3; db-4 only at minute 4.
    assert_eq!(from_objects["hosts"].as_array().map(Vec::len), Some(4));

    // Totals by any label: the lock label on two Hosts.
    env.wait_for_hosts("hostledger.dev/locked=true", 2, "two Hosts marked locked")
        .await;
    let by_label = run_hostledger(&[
        "uptime",
        "--group-by",
        "label:hostledger.dev/locked",
        "-o",
        "json",
        "--namespace",
        &env.namespace,
    ])
    .await
    .ok();
    let v: Value = serde_json::from_str(&by_label).expect("uptime JSON");
    let groups: Vec<(String, u64)> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap_or_default().to_owned(),
                g["hosts"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(groups, [("(none)".to_owned(), 4), ("true".to_owned(), 2)]);
    env.cleanup().await;
}

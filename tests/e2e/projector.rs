//! The projector against the real broker and API server: poison messages, people's fields,
//! replay, deletion, and crashes in the middle of a replay.

use std::collections::BTreeMap;
use std::time::Duration;

use hostledger_e2e::{TestEnv, event};
use hostledger_model::Host;
use hostledger_schemas::{Codec, Lifecycle};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

const PHASES: [Lifecycle; 3] = [
    Lifecycle::InService,
    Lifecycle::OutOfService,
    Lifecycle::InService,
];

/// `hosts` hosts with `per_host` events each, interleaved across hosts as a live log is.
fn log(hosts: usize, per_host: u64) -> Vec<hostledger_schemas::HostEvent> {
    let mut out = Vec::new();
    for n in 0..per_host {
        for h in 0..hosts {
            let host = format!("test/t1/host-{h:05}");
            let phase = PHASES[((n as usize) + h) % PHASES.len()];
            let role = if n % 5 == 4 { "db" } else { "web" };
            out.push(event(
                &host,
                n,
                (n as i64) * 10 + (h as i64 % 7),
                phase,
                role,
            ));
        }
    }
    out
}

#[tokio::test]
async fn poison_is_dead_lettered_and_good_events_behind_it_apply() {
    let env = TestEnv::new("poison", 1).await;
    let host = "test/t1/web-1";
    env.produce(&[event(host, 0, 0, Lifecycle::InService, "web")])
        .await;
    env.produce_raw(host, b"this is not avro").await;
    let mut unknown = Codec::new()
        .encode(&event(host, 1, 1, Lifecycle::InService, "web"))
        .expect("encodes");
    unknown[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    env.produce_raw(host, &unknown).await;
    let mut empty_id = event(host, 2, 2, Lifecycle::InService, "web");
    empty_id.host_id = String::new();
    env.produce_raw(host, &Codec::new().encode(&empty_id).expect("encodes"))
        .await;
    env.produce(&[event(host, 3, 3, Lifecycle::OutOfService, "db")])
        .await;

    env.project_until_caught_up().await;

    let statuses = env.statuses(&env.namespace).await;
    let status = &statuses[host];
    assert_eq!(status.event_count, 2, "both good events applied");
    assert_eq!(status.state.lifecycle, Lifecycle::OutOfService);
    assert_eq!(status.state.role.as_deref(), Some("db"));
    let dead = env.read_dead_letters();
    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<&str> = dead
        .iter()
        .map(|(_, _, h)| h["hostledger.reason"].as_str())
        .collect();
    assert!(reasons[0].contains("undecodable"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("unknown writer schema fingerprint 0102030405060708"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("host_id is empty"), "{}", reasons[2]);
    assert_eq!(
        dead[0].1, b"this is not avro",
        "the original bytes are kept"
    );
    assert_eq!(dead[1].2["hostledger.source.offset"], "2");
    // Running again re-applies nothing and dead-letters nothing twice.
    env.project_until_caught_up().await;
    assert_eq!(env.read_dead_letters().len(), 3);
    env.cleanup().await;
}

#[tokio::test]
async fn labels_and_annotations_of_people_survive_a_thousand_events() {
    let env = TestEnv::new("people", 2).await;
    let host = "test/t1/db-7";
    env.produce(&[event(host, 0, 0, Lifecycle::InService, "db")])
        .await;
    env.project_until_caught_up().await;
    let hosts: Api<Host> = env.hosts();
    let name = hostledger_model::names::object_name(host);
    let mine = serde_json::json!({
        "apiVersion": "hostledger.dev/v1alpha1",
        "kind": "Host",
        "metadata": {
            "name": name,
            "labels": { "oncall": "team-b" },
            "annotations": { "example.com/ticket": "OPS-1234" },
        },
        "spec": { "owner": "alice", "notes": "do not reboot on Fridays" },
    });
    hosts
        .patch(
            &name,
            &PatchParams::apply("alice-kubectl"),
            &Patch::Apply(&mine),
        )
        .await
        .expect("a person's server-side apply");

    let events: Vec<_> = (1..=1000)
        .map(|n| {
            let phase = PHASES[n as usize % PHASES.len()];
            event(
                host,
                n,
                n as i64,
                phase,
                if n % 2 == 0 { "db" } else { "db-replica" },
            )
        })
        .collect();
    env.produce(&events).await;
    env.project_until_caught_up().await;

    let h = hosts.get(&name).await.expect("Host exists");
    let labels = h.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("oncall").map(String::as_str), Some("team-b"));
    assert_eq!(
        labels.get("role").map(String::as_str),
        Some("db"),
        "projector labels follow the log"
    );
    let annotations = h.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/ticket").map(String::as_str),
        Some("OPS-1234")
    );
    assert_eq!(
        annotations
            .get("hostledger.dev/host-id")
            .map(String::as_str),
        Some(host)
    );
    assert_eq!(h.spec.owner.as_deref(), Some("alice"));
    assert_eq!(h.spec.notes.as_deref(), Some("do not reboot on Fridays"));
    let status = h.status.expect("status");
    assert_eq!(status.event_count, 1001);
    let size = serde_json::to_vec(&hosts.get(&name).await.expect("Host"))
        .expect("serializes")
        .len();
    assert!(
        size <= 10 * 1024,
        "Host object is {size} bytes after 1001 events"
    );
    let history = env.histories(&env.namespace).await;
    assert_eq!(
        history[host].len(),
        1001,
        "every event in HostHistory, once"
    );
    assert!(history[host].windows(2).all(|w| w[1].seq == w[0].seq + 1));
    env.cleanup().await;
}

#[tokio::test]
async fn replay_rebuilds_the_same_inventory_and_writes_nothing_the_second_time() {
    let env = TestEnv::new("replay", 3).await;
    let events = log(40, 25);
    env.produce(&events).await;
    env.project_until_caught_up().await;
    let live = env.statuses(&env.namespace).await;
    let live_history = env.histories(&env.namespace).await;
    assert_eq!(live.len(), 40);

    // A cold replay into an empty namespace builds the same Hosts and history.
    let rebuilt_ns = env.extra_namespace("rebuilt").await;
    env.replay_into(&rebuilt_ns, &[]).await;
    assert_eq!(env.statuses(&rebuilt_ns).await, live);
    assert_eq!(env.histories(&rebuilt_ns).await, live_history);

    // Replaying over an up-to-date namespace writes nothing: resource versions stay.
    let versions = |hosts: Vec<Host>| -> BTreeMap<String, Option<String>> {
        hosts
            .into_iter()
            .map(|h| {
                (
                    h.metadata.name.clone().unwrap_or_default(),
                    h.metadata.resource_version,
                )
            })
            .collect()
    };
    let api: Api<Host> = Api::namespaced(env.kube.clone(), &rebuilt_ns);
    let before = versions(api.list(&Default::default()).await.expect("list").items);
    env.replay_into(&rebuilt_ns, &[]).await;
    let after = versions(api.list(&Default::default()).await.expect("list").items);
    assert_eq!(before, after, "a second replay rewrote Hosts");

    // --until builds the inventory as it stood then: equal to folding the events up to then.
    let until_minutes = 120;
    let as_of_ns = env.extra_namespace("asof").await;
    env.replay_into(&as_of_ns, &["--until", "2026-01-01T02:00:00Z"])
        .await;
    let as_of = env.statuses(&as_of_ns).await;
    let expected_counts: BTreeMap<String, u64> = events
        .iter()
        .filter(|e| e.observed_at.0 <= 1_767_225_600_000_000 + until_minutes * 60_000_000)
        .fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.host_id.clone()).or_default() += 1;
            m
        });
    let counts: BTreeMap<String, u64> = as_of
        .iter()
        .map(|(h, s)| (h.clone(), s.event_count as u64))
        .collect();
    assert_eq!(counts, expected_counts);
    env.cleanup().await;
}

#[tokio::test]
async fn a_deleted_host_keeps_its_history_and_replay_brings_it_back() {
    let env = TestEnv::new("delete", 1).await;
    let host = "test/t1/cache-3";
    let events: Vec<_> = (0..5)
        .map(|n| event(host, n, n as i64, PHASES[n as usize % 3], "cache"))
        .collect();
    env.produce(&events).await;
    env.project_until_caught_up().await;
    let name = hostledger_model::names::object_name(host);
    let hosts = env.hosts();
    let before = hosts.get(&name).await.expect("Host exists");
    // The history is the log's: nothing holds the Host back when a person deletes it.
    assert_eq!(before.metadata.finalizers, None);
    assert_eq!(env.histories(&env.namespace).await[host].len(), 5);
    hosts
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        hosts.get_opt(&name).await.expect("get").is_none(),
        "deleted"
    );
    let from_api = hostledger_k8s::HistoryApi::new(env.kube.clone(), &env.namespace)
        .read(host)
        .await
        .expect("history API");
    assert_eq!(from_api.len(), 5, "history kept");

    // A replay brings the Host back as it was.
    env.replay_into(&env.namespace, &[]).await;
    let back = hosts.get(&name).await.expect("Host is back");
    assert_eq!(back.status, before.status);
    assert_eq!(
        env.histories(&env.namespace).await[host],
        from_api,
        "the same history, no entry twice"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn replay_killed_at_random_moments_ends_like_an_uninterrupted_one() {
    let env = TestEnv::new("kill9", 6).await;
    let events = log(1000, 100); // 100,000 events
    env.produce(&events).await;

    let reference_ns = env.extra_namespace("reference").await;
    env.replay_into(&reference_ns, &[]).await;

    let crashed_ns = env.extra_namespace("crashed").await;
    let args = |ns: &str| {
        vec![
            "replay".to_owned(),
            "--quiet".into(),
            "--batch-size".into(),
            "7000".into(),
            "--namespace".into(),
            ns.to_owned(),
            "--topic-prefix".into(),
            env.topic_prefix.clone(),
            "--kafka-bootstrap".into(),
            env.bootstrap.clone(),
        ]
    };
    // Kill at a different moment each time; each run resumes from what the last one wrote.
    let mut killed = 0;
    for delay_ms in [2500u64, 4100, 3300] {
        let mut child = hostledger_e2e::hostledger_as(hostledger_e2e::Role::Projector)
            .args(args(&crashed_ns))
            .env("HOSTLEDGER_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start hostledger replay");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().expect("child status").is_none() {
            child.start_kill().expect("SIGKILL");
            killed += 1;
        }
        let _ = child.wait().await;
    }
    assert!(
        killed >= 1,
        "the replay finished before it could be killed even once"
    );
    let status = hostledger_e2e::hostledger_as(hostledger_e2e::Role::Projector)
        .args(args(&crashed_ns))
        .env("HOSTLEDGER_LOG", "warn")
        .status()
        .await
        .expect("final replay");
    assert!(status.success());

    assert_eq!(
        env.statuses(&crashed_ns).await,
        env.statuses(&reference_ns).await
    );
    let crashed = env.histories(&crashed_ns).await;
    assert_eq!(crashed, env.histories(&reference_ns).await);
    assert_eq!(
        crashed.values().map(Vec::len).sum::<usize>(),
        events.len(),
        "no history entry twice"
    );
    env.cleanup().await;
}

/// The CRD schema generated from the typed status makes the API server itself refuse a status
/// that is not one: an unknown phase, or a time that is not a time.
#[tokio::test]
async fn the_api_server_refuses_a_status_the_schema_does_not_allow() {
    let env = TestEnv::new("schema", 1).await;
    let host = "test/t1/schema-1";
    env.produce(&[event(host, 0, 0, Lifecycle::InService, "web")])
        .await;
    env.project_until_caught_up().await;
    let name = hostledger_model::names::object_name(host);
    let api = env.hosts();
    let patch = |status: serde_json::Value| serde_json::json!({"apiVersion": "hostledger.dev/v1alpha1", "kind": "Host", "status": status});
    let params = PatchParams::apply("schema-test").force();
    for (field, value, why) in [
        ("phase", "Sleeping", "Unsupported value"),
        ("phaseSince", "yesterday", "phaseSince"),
    ] {
        let error = api
            .patch_status(
                &name,
                &params,
                &Patch::Apply(patch(serde_json::json!({ field: value }))),
            )
            .await
            .expect_err("the API server refuses it");
        let kube::Error::Api(status) = &error else {
            panic!("not an API error: {error}");
        };
        assert_eq!(status.code, 422, "{field}: {status:?}");
        assert!(status.message.contains(why), "{field}: {}", status.message);
    }
    let statuses = env.statuses(&env.namespace).await;
    assert_eq!(statuses[host].state.lifecycle, Lifecycle::InService);
    env.cleanup().await;
}

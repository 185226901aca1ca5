//! Upgrading a namespace written by the version that kept full history in etcd: HostHistory
//! chunks beside the Hosts, a history finalizer on each Host, and no record of the log it
//! projects. This version keeps answering from the chunks (and keeps writing them) until
//! `hostledger migrate history` has checked the history server's copy against them; then
//! the chunks and finalizers go, and every answer is the same from the history server.

use std::collections::BTreeMap;

use hostledger_e2e::{TestEnv, event, run_hostledger};
use hostledger_k8s::projection::{self, HistoryHome, PROJECTION_CONFIGMAP, Projection};
use hostledger_model::HostHistory;
use hostledger_model::names::{HISTORY_FINALIZER, object_name};
use hostledger_schemas::Lifecycle;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams};

async fn chunk_count(env: &TestEnv) -> usize {
    Api::<HostHistory>::namespaced(env.kube.clone(), &env.namespace)
        .list_metadata(&ListParams::default())
        .await
        .expect("list HostHistory")
        .items
        .len()
}

async fn finalized(env: &TestEnv) -> usize {
    env.hosts()
        .list_metadata(&ListParams::default())
        .await
        .expect("list Hosts")
        .items
        .iter()
        .filter(|h| {
            h.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == HISTORY_FINALIZER))
        })
        .count()
}

/// What the readers answer: one host's history, and uptime as of a past time, as JSON.
async fn answers(env: &TestEnv, source: &str) -> (String, String) {
    let history =
        run_hostledger(&env.scoped(&["history", "test/m1/db-a", "-o", "json", "--source", source]))
            .await
            .ok();
    let uptime = run_hostledger(&env.scoped(&[
        "uptime",
        "--as-of",
        "2026-01-01T00:07:00Z",
        "-o",
        "json",
        "--source",
        source,
    ]))
    .await
    .ok();
    (history, uptime)
}

#[tokio::test]
async fn migrate_history_moves_a_namespace_of_the_previous_version_out_of_etcd() {
    let env = TestEnv::new("migrate", 2).await;
    let hosts = ["test/m1/db-a", "test/m1/db-b", "test/m1/web-c"];
    let phases = [
        Lifecycle::InService,
        Lifecycle::OutOfService,
        Lifecycle::InService,
    ];
    let events: Vec<_> = (0..6u64)
        .flat_map(|n| {
            hosts.map(|h| {
                event(
                    h,
                    n,
                    n as i64 * 2,
                    phases[n as usize % 3],
                    if h.contains("web") { "web" } else { "db" },
                )
            })
        })
        .collect();
    env.produce(&events[..12]).await;

    // The previous version's namespace: projected with chunks, and nothing recorded.
    let topic = env.kafka.settings().topics.events.clone();
    let old = Projection {
        events_topic: topic.clone(),
        until: None,
        history: HistoryHome::Chunks,
    };
    projection::record(&env.kube, &env.namespace, &old)
        .await
        .expect("record");
    env.project_until_caught_up().await;
    Api::<ConfigMap>::namespaced(env.kube.clone(), &env.namespace)
        .delete(PROJECTION_CONFIGMAP, &DeleteParams::default())
        .await
        .expect("delete the record");
    assert_eq!(chunk_count(&env).await, 3);
    assert_eq!(finalized(&env).await, 3);

    // This version goes on where it left off: more events land in the chunks too.
    env.produce(&events[12..15]).await;
    env.project_until_caught_up().await;
    assert_eq!(
        projection::read(&env.kube, &env.namespace)
            .await
            .expect("read")
            .map(|p| p.history),
        Some(HistoryHome::Chunks),
        "a namespace with chunks keeps them until it is migrated"
    );
    let histories = env.histories(&env.namespace).await;
    assert_eq!(histories["test/m1/db-a"].len(), 5, "read from the chunks");
    let before = answers(&env, "objects").await;
    assert_eq!(before, answers(&env, "log").await, "chunks and log agree");

    // A dry run checks and says what it would do, and changes nothing.
    let out = run_hostledger(&env.scoped(&["migrate", "history", "--dry-run", "-q"]))
        .await
        .ok();
    assert!(
        out.contains("would record that its history is the log's, delete 3 HostHistory chunks and take the history finalizer off 3 Hosts"),
        "{out}"
    );
    assert_eq!(chunk_count(&env).await, 3);

    let out = run_hostledger(&env.scoped(&["migrate", "history", "-q"]))
        .await
        .ok();
    assert!(
        out.contains("migrated namespace")
            && out.contains("15 history entries of 3 hosts checked against the history server")
            && out.contains("deleted 3 HostHistory chunks")
            && out.contains("took the history finalizer off 3 Hosts"),
        "{out}"
    );
    println!("$ hostledger migrate history\n{out}");
    assert_eq!(chunk_count(&env).await, 0, "etcd holds no history");
    assert_eq!(finalized(&env).await, 0);
    assert_eq!(
        projection::read(&env.kube, &env.namespace)
            .await
            .expect("read")
            .map(|p| p.history),
        Some(HistoryHome::Log)
    );
    // The same answers, now from the history server.
    assert_eq!(answers(&env, "objects").await, before);
    let host = env
        .hosts()
        .get(&object_name("test/m1/db-a"))
        .await
        .expect("Host");
    assert_eq!(
        host.metadata.labels.unwrap_or_default().get("role"),
        Some(&"db".to_owned()),
        "the Host's labels stay"
    );

    // New events are history without a chunk.
    env.produce(&events[15..]).await;
    env.project_until_caught_up().await;
    assert_eq!(
        chunk_count(&env).await,
        0,
        "no chunk written after the migration"
    );
    let histories = env.histories(&env.namespace).await;
    let counts: BTreeMap<&str, usize> = histories
        .iter()
        .map(|(h, e)| (h.as_str(), e.len()))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("test/m1/db-a", 6),
            ("test/m1/db-b", 6),
            ("test/m1/web-c", 6)
        ])
    );
    assert_eq!(
        answers(&env, "objects").await,
        answers(&env, "log").await,
        "the history server and the log agree"
    );

    // Again: nothing to do.
    let out = run_hostledger(&env.scoped(&["migrate", "history"]))
        .await
        .ok();
    assert!(out.contains("nothing to do"), "{out}");
    env.cleanup().await;
}

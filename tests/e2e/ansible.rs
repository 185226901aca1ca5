//! The real `ansible-inventory` (PyPI ansible-core) reads hostledger's dynamic inventory
//! through deploy/hostledger-ansible-inventory, on Hosts that came through the fetcher, Kafka
//! and the projector: groups from labels, host variables from attributes and annotations,
//! out-of-service and retired hosts only on request.

use std::path::PathBuf;

use hostledger_e2e::{TestEnv, hostledger_binary};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn ansible_inventory() -> PathBuf {
    let dir = std::env::var("HOSTLEDGER_PYTHON_TOOLS").unwrap_or_else(|_| {
        panic!("HOSTLEDGER_PYTHON_TOOLS is not set: run the tests with scripts/test, which installs ansible-core")
    });
    PathBuf::from(dir).join("ansible-inventory")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/hostledger-ansible-inventory")
}

/// `ansible-inventory -i deploy/hostledger-ansible-inventory ARGS` with settings in `vars`.
async fn ansible(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut cmd = tokio::process::Command::new(ansible_inventory());
    cmd.arg("-i").arg(script()).args(args);
    cmd.env("HOSTLEDGER_BIN", hostledger_binary())
        .env("HOSTLEDGER_NAMESPACE", &env.namespace)
        .env("HOSTLEDGER_LOG", "warn")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_LOCAL_TEMP", std::env::temp_dir());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run ansible-inventory");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ansible-inventory {args:?} failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a data-centre export with `rows`, fetches it once and projects it; returns the
/// temporary directory holding the export and the fetcher config.
async fn export_and_project(env: &TestEnv, rows: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    std::fs::write(&export, format!("{HEADER}{rows}")).expect("write export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    dir
}

fn hosts_of(inventory: &Value, group: &str) -> Vec<String> {
    let mut v: Vec<String> = inventory[group]["hosts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| h.as_str().expect("name").to_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn ansible_inventory_lists_the_in_service_hosts_in_label_groups() {
    let env = TestEnv::new("ansible", 2).await;
    let _dir = export_and_project(
        &env,
        "PX1,log-1,pdx1,hall-a,active,log,observability,10.1.0.1,R650,A01\n\
         PX2,log-2,pdx1,hall-a,active,log,observability,10.1.0.2,R650,A02\n\
         PX3,db-1,pdx1,hall-b,active,db,data,10.1.0.3,R750,B01\n\
         FR1,web-1,fra2,hall-1,active,web,storefront,10.2.0.1,R650,C07\n\
         FR2,web-2,fra2,hall-1,maintenance,web,storefront,10.2.0.2,R650,C08\n\
         FR3,old-1,fra2,hall-1,decommissioned,web,storefront,10.2.0.3,R630,C09\n",
    )
    .await;

    // A person sets an Ansible variable on one Host with an annotation.
    let log1 = env
        .list_hosts(Some("role=log"))
        .await
        .into_iter()
        .find(|h| h.status.as_ref().is_some_and(|s| s.state.name == "log-1"))
        .expect("log-1");
    let name = log1.metadata.name.clone().expect("name");
    env.hosts()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "ansible.hostledger.dev/ansible_user": "deploy",
                "ansible.hostledger.dev/log_shards": "[1, 2]"
            }}})),
        )
        .await
        .expect("annotate");

    let list: Value = serde_json::from_str(&ansible(&env, &["--list"], &[]).await).expect("JSON");
    assert_eq!(hosts_of(&list, "role_log"), ["log-1", "log-2"]);
    assert_eq!(
        hosts_of(&list, "role_web"),
        ["web-1"],
        "out-of-service and retired left out"
    );
    assert_eq!(hosts_of(&list, "region_fra2"), ["web-1"]);
    assert_eq!(hosts_of(&list, "team_data"), ["db-1"]);
    assert_eq!(
        hosts_of(&list, "provider_dc"),
        ["db-1", "log-1", "log-2", "web-1"]
    );
    assert_eq!(
        hosts_of(&list, "in_service"),
        ["db-1", "log-1", "log-2", "web-1"]
    );
    assert!(list.get("retired").is_none());
    let vars = &list["_meta"]["hostvars"]["log-1"];
    assert_eq!(vars["ansible_host"], "10.1.0.1");
    assert_eq!(vars["ansible_user"], "deploy");
    assert_eq!(vars["log_shards"], json!([1, 2]));
    assert_eq!(vars["hostledger_attributes"]["rack"], "A01");
    assert_eq!(vars["hostledger_host_id"], "dc/pdx1/PX1");

    let graph = ansible(&env, &["--graph"], &[]).await;
    for line in ["@role_log:", "|  |--log-1", "@region_pdx1:", "@in_service:"] {
        assert!(graph.contains(line), "{line:?} not in the graph:\n{graph}");
    }
    assert!(
        !graph.contains("old-1") && !graph.contains("web-2"),
        "{graph}"
    );

    // On request: retired hosts in a group of their own, keyed groups, a selector.
    let retired: Value = serde_json::from_str(
        &ansible(
            &env,
            &["--list"],
            &[
                ("HOSTLEDGER_ANSIBLE_INCLUDE", "retired,out-of-service"),
                (
                    "HOSTLEDGER_ANSIBLE_GROUPS",
                    "role,attribute:rack,machine_type",
                ),
                ("HOSTLEDGER_ANSIBLE_SELECTOR", "region=fra2"),
            ],
        )
        .await,
    )
    .expect("JSON");
    assert_eq!(hosts_of(&retired, "retired"), ["old-1"]);
    assert_eq!(hosts_of(&retired, "out_of_service"), ["web-2"]);
    assert_eq!(hosts_of(&retired, "rack_c09"), ["old-1"]);
    assert_eq!(hosts_of(&retired, "machine_type_r650"), ["web-1", "web-2"]);
    assert!(
        retired.get("region_fra2").is_none(),
        "only the asked-for groups"
    );
    assert!(
        retired["_meta"]["hostvars"].get("log-1").is_none(),
        "selector applies"
    );

    // --host, as ansible calls it without _meta.
    let one: Value =
        serde_json::from_str(&ansible(&env, &["--host", "db-1"], &[]).await).expect("JSON");
    assert_eq!(one["hostledger_role"], "db");
    assert_eq!(one["ansible_host"], "10.1.0.3");

    // Bad settings fail loudly rather than yield an empty inventory.
    let out = tokio::process::Command::new(hostledger_binary())
        .args(["ansible", "--list", "--namespace", &env.namespace])
        .env("HOSTLEDGER_ANSIBLE_GROUPS", "colour")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"colour\" is not a group key"));
    let out = tokio::process::Command::new(hostledger_binary())
        .args(["ansible", "--host", "nobody", "--namespace", &env.namespace])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no host \"nobody\""));
    env.cleanup().await;
}

#[tokio::test]
async fn locked_hosts_are_a_group_with_lock_variables_and_a_prometheus_label() {
    let env = TestEnv::new("ansiblelock", 1).await;
    let dir = export_and_project(
        &env,
        "PX1,db-1,pdx1,hall-a,active,db,data,10.1.0.1,R650,A01\n\
         PX2,db-2,pdx1,hall-a,active,db,data,10.1.0.2,R650,A02\n",
    )
    .await;
    // The running projector's sweeper marks locked Hosts.
    let _projector = env.spawn_projector(&[], false);
    let group: hostledger_model::HostGroup = serde_json::from_value(json!({
        "apiVersion": "hostledger.dev/v1alpha1", "kind": "HostGroup",
        "metadata": {"name": "db-pdx1"}, "spec": {"hosts": ["dc/pdx1/PX2"]},
    }))
    .expect("HostGroup");
    kube::Api::<hostledger_model::HostGroup>::namespaced(env.kube.clone(), &env.namespace)
        .create(&Default::default(), &group)
        .await
        .expect("create HostGroup");
    let locked = hostledger_e2e::run_hostledger(&[
        "lock",
        "db-1",
        "--reason",
        "disk swap",
        "--holder",
        "ops@bastion",
        "--namespace",
        &env.namespace,
    ])
    .await
    .ok();
    assert!(locked.contains("locked dc.pdx1.px1"), "{locked}");
    env.wait_for_hosts(
        "hostledger.dev/locked=true",
        1,
        "db-1 marked locked on its Host",
    )
    .await;

    let inventory: Value =
        serde_json::from_str(&ansible(&env, &["--list"], &[]).await).expect("JSON");
    assert_eq!(hosts_of(&inventory, "locked"), ["db-1"]);
    assert_eq!(
        hosts_of(&inventory, "group_db_pdx1"),
        ["db-2"],
        "a HostGroup is a group"
    );
    assert_eq!(hosts_of(&inventory, "role_db"), ["db-1", "db-2"]);
    let vars = &inventory["_meta"]["hostvars"]["db-1"];
    assert_eq!(vars["hostledger_locked"], true);
    assert_eq!(vars["hostledger_lock_holder"], "ops@bastion");
    assert_eq!(vars["hostledger_lock_user"], "hostledger-operator");
    assert_eq!(vars["hostledger_lock_reason"], "disk swap");
    assert_eq!(
        inventory["_meta"]["hostvars"]["db-2"]["hostledger_locked"],
        false
    );
    let without: Value = serde_json::from_str(
        &ansible(
            &env,
            &["--list"],
            &[("HOSTLEDGER_ANSIBLE_EXCLUDE_LOCKED", "true")],
        )
        .await,
    )
    .expect("JSON");
    assert_eq!(hosts_of(&without, "role_db"), ["db-2"]);
    assert!(hosts_of(&without, "locked").is_empty());

    let targets = dir.path().join("targets.json");
    let targets_arg = targets.to_str().expect("utf-8");
    hostledger_e2e::run_hostledger(&[
        "prometheus-sd",
        "--output",
        targets_arg,
        "--namespace",
        &env.namespace,
    ])
    .await
    .ok();
    let groups: Value =
        serde_json::from_slice(&std::fs::read(&targets).expect("targets")).expect("JSON");
    let labels_of = |host: &str| {
        groups
            .as_array()
            .expect("array")
            .iter()
            .find(|g| g["labels"]["hostname"] == host)
            .map(|g| g["labels"].clone())
            .expect("listed")
    };
    assert_eq!(labels_of("db-1")["locked"], "true");
    assert_eq!(labels_of("db-1")["lock_holder"], "ops@bastion");
    assert_eq!(labels_of("db-2")["locked"], "false");
    assert_eq!(labels_of("db-2")["groups"], ",db-pdx1,");

    // Released: the mark goes.
    hostledger_e2e::run_hostledger(&[
        "unlock",
        "db-1",
        "--holder",
        "ops@bastion",
        "--namespace",
        &env.namespace,
    ])
    .await
    .ok();
    env.wait_for_hosts("hostledger.dev/locked", 0, "db-1's lock mark removed")
        .await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_cached_inventory_answers_until_its_timeout_and_only_for_the_same_settings() {
    let env = TestEnv::new("ansiblecache", 1).await;
    let _dir = export_and_project(
        &env,
        "PX1,log-1,pdx1,hall-a,active,log,observability,10.1.0.1,R650,A01\n\
         FR3,old-1,fra2,hall-1,decommissioned,web,storefront,10.2.0.3,R630,C09\n",
    )
    .await;
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_dir.path().join("inventory.json");
    let cache = cache.to_str().expect("utf-8 path");
    let user_of = |list: &Value| list["_meta"]["hostvars"]["log-1"]["ansible_user"].clone();
    let annotate = |user: &'static str| {
        let env = &env;
        async move {
            let host = env.list_hosts(Some("role=log")).await.remove(0);
            env.hosts()
                .patch(
                    &host.metadata.name.expect("name"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {
                        "ansible.hostledger.dev/ansible_user": user
                    }}})),
                )
                .await
                .expect("annotate");
        }
    };
    let list = async |vars: &[(&str, &str)]| -> Value {
        serde_json::from_str(&ansible(&env, &["--list"], vars).await).expect("JSON")
    };

    annotate("deploy").await;
    let cached = [("HOSTLEDGER_ANSIBLE_CACHE", cache)];
    let first = list(&cached).await;
    assert_eq!(user_of(&first), "deploy");
    assert!(
        std::path::Path::new(cache).is_file(),
        "the cache file is written"
    );

    // Within the timeout the cache answers: a change made since is not seen yet.
    annotate("ops").await;
    assert_eq!(list(&cached).await, first, "answered from the cache");
    let host: Value =
        serde_json::from_str(&ansible(&env, &["--host", "log-1"], &cached).await).expect("JSON");
    assert_eq!(
        host["ansible_user"], "deploy",
        "--host from the cached hostvars"
    );

    // Other settings are another answer, not the cached one.
    let retired = list(&[cached[0], ("HOSTLEDGER_ANSIBLE_INCLUDE", "retired")]).await;
    assert_eq!(hosts_of(&retired, "retired"), ["old-1"]);

    // Past the timeout (0 s: always) the API server answers, and the file is refreshed.
    let fresh = list(&[cached[0], ("HOSTLEDGER_ANSIBLE_CACHE_TIMEOUT", "0")]).await;
    assert_eq!(user_of(&fresh), "ops");

    // A file that is not a cache is replaced, not trusted.
    std::fs::write(cache, "not json").expect("spoil the cache");
    assert_eq!(user_of(&list(&cached).await), "ops");
    env.cleanup().await;
}

/// `hostledger ansible --list --namespace NS` with `args`.
async fn hostledger_list(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["ansible", "--list", "--namespace", env.namespace.as_str()];
    all.extend_from_slice(args);
    serde_json::from_str(&hostledger_e2e::run_hostledger(&all).await.ok()).expect("JSON")
}

#[tokio::test]
async fn the_history_server_answers_as_the_host_objects_do_and_as_fresh() {
    let env = TestEnv::new("ansiblehs", 2).await;
    let _dir = export_and_project(
        &env,
        "PX1,log-1,pdx1,hall-a,active,log,observability,10.1.0.1,R650,A01\n\
         PX2,log-2,pdx1,hall-a,active,log,observability,10.1.0.2,R650,A02\n\
         PX3,db-1,pdx1,hall-b,active,db,data,10.1.0.3,R750,B01\n\
         FR2,web-2,fra2,hall-1,maintenance,web,storefront,10.2.0.2,R650,C08\n\
         FR3,old-1,fra2,hall-1,decommissioned,web,storefront,10.2.0.3,R630,C09\n",
    )
    .await;
    // People's own label and annotations, which only the Host objects hold.
    let named = |host: &str| {
        let env = &env;
        let host = host.to_owned();
        async move {
            env.list_hosts(None)
                .await
                .into_iter()
                .find(|h| h.status.as_ref().is_some_and(|s| s.state.name == host))
                .and_then(|h| h.metadata.name)
                .expect("a Host of that host name")
        }
    };
    let patch = |name: String, metadata: Value| {
        let env = &env;
        async move {
            env.hosts()
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": metadata })),
                )
                .await
                .expect("patch the Host");
        }
    };
    let log1 = named("log-1").await;
    patch(
        log1.clone(),
        json!({"labels": {"rack": "a01"}, "annotations": {"ansible.hostledger.dev/ansible_user": "deploy"}}),
    )
    .await;
    patch(
        named("db-1").await,
        json!({"annotations": {"ansible.hostledger.dev/backup": "{\"daily\": true}"}}),
    )
    .await;

    // The same answer from both sources, for every setting that selects.
    for args in [
        &[][..],
        &[
            "--include",
            "all",
            "--groups",
            "role,label:rack,attribute:rack",
        ][..],
        &["--selector", "rack=a01"][..],
        &[
            "--selector",
            "role in (db,web)",
            "--include",
            "out-of-service",
        ][..],
    ] {
        let served = hostledger_list(&env, &[&["--source", "history-server"], args].concat()).await;
        let objects = hostledger_list(&env, &[&["--source", "objects"], args].concat()).await;
        assert_eq!(served, objects, "ansible {args:?}: the two sources differ");
        assert!(
            served["_meta"]["hostvars"]
                .as_object()
                .is_some_and(|v| !v.is_empty()),
            "ansible {args:?} lists hosts"
        );
    }
    let all = hostledger_list(&env, &["--source", "history-server", "--include", "all"]).await;
    assert_eq!(all["_meta"]["hostvars"]["log-1"]["ansible_user"], "deploy");
    assert_eq!(
        all["_meta"]["hostvars"]["db-1"]["backup"],
        json!({"daily": true})
    );
    assert_eq!(hosts_of(&all, "retired"), ["old-1"]);

    // The answer is the history server's own: its view of the Hosts, through the API server.
    let path = format!(
        "/apis/history.hostledger.dev/v1alpha1/namespaces/{}/hosthistories?view=hosts&labelSelector=rack%3Da01",
        env.namespace
    );
    let view: Value = env
        .kube
        .request(http::Request::get(&path).body(Vec::new()).expect("request"))
        .await
        .expect("view=hosts");
    assert_eq!(view["kind"], "HostList");
    let items = view["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{view}");
    assert_eq!(items[0]["metadata"]["name"], log1.as_str());
    assert_eq!(items[0]["metadata"]["labels"]["role"], "log");
    assert_eq!(items[0]["status"]["hostId"], "dc/pdx1/PX1");
    assert!(items[0]["metadata"].get("managedFields").is_none());
    let bad = env
        .kube
        .request::<Value>(
            http::Request::get(path.replace("rack%3Da01", "role+in+%28log"))
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .expect_err("a malformed selector is refused");
    assert!(bad.to_string().contains("labelSelector"), "{bad}");
    // What `ansible` reads: the same Host with the people's labels alone (the projector's
    // follow from its status) and without the history an inventory does not show.
    let inventory: Value = env
        .kube
        .request(
            http::Request::get(path.replace("view=hosts", "view=inventory"))
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .expect("view=inventory");
    assert_eq!(inventory["kind"], "HostInventoryList");
    let items = inventory["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{inventory}");
    assert_eq!(items[0]["metadata"]["labels"], json!({"rack": "a01"}));
    assert_eq!(items[0]["status"]["hostId"], "dc/pdx1/PX1");
    assert!(
        items[0]["status"].get("serviceIntervals").is_none(),
        "{inventory}"
    );

    // A change made a moment before is in the next answer (the server waits for its watch).
    for user in ["ops", "oncall", "deploy2"] {
        patch(
            log1.clone(),
            json!({"annotations": {"ansible.hostledger.dev/ansible_user": user}}),
        )
        .await;
        let list = hostledger_list(&env, &["--source", "history-server"]).await;
        assert_eq!(list["_meta"]["hostvars"]["log-1"]["ansible_user"], user);
    }
    env.cleanup().await;
}

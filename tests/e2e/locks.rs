//! Host locks on the real API server, through the `hostledger` binary: 20 processes racing
//! for one host (exactly one wins; the others are told who holds it and since when),
//! `with-lock` releasing on success, on failure and on SIGTERM, a SIGKILLed `with-lock`'s
//! host freed by the projector's sweeper once the TTL has passed, a lock released when its
//! host retires, and the admission policy refusing every write to a lock by anyone but its
//! holder, except a break by an identity granted the `break` verb.

use std::path::Path;
use std::time::{Duration, Instant};

use hostledger_e2e::{
    Output, TestEnv, bind, event, hostledger_binary, run_hostledger_as, user_kubeconfig,
};
use hostledger_model::HostLock;
use hostledger_schemas::{EventKind, Lifecycle};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Hosts `test/r1/web-0..n` in service, projected.
async fn hosts(env: &TestEnv, n: usize) -> Vec<String> {
    let events: Vec<_> = (0..n)
        .map(|i| {
            event(
                &format!("test/r1/web-{i}"),
                0,
                0,
                Lifecycle::InService,
                "web",
            )
        })
        .collect();
    env.produce(&events).await;
    env.project_until_caught_up().await;
    (0..n).map(|i| format!("test.r1.web-{i}")).collect()
}

fn locks(env: &TestEnv) -> Api<HostLock> {
    Api::namespaced(env.kube.clone(), &env.namespace)
}

/// Runs `hostledger COMMAND --namespace NS ARGS…` with an optional other kubeconfig.
async fn run(env: &TestEnv, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut all = vec![args[0], "--namespace", &env.namespace];
    all.extend_from_slice(&args[1..]);
    run_hostledger_as(kubeconfig, &all).await
}

/// Starts `hostledger with-lock --namespace NS ARGS…` (killed when dropped).
fn spawn_with_lock(env: &TestEnv, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(hostledger_binary())
        .args(["with-lock", "--namespace", &env.namespace])
        .args(args)
        .env("HOSTLEDGER_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start with-lock")
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < limit,
            "{what}: not after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn twenty_contenders_exactly_one_holder_and_every_other_told_who_holds_it() {
    let env = TestEnv::new("lockrace", 1).await;
    let name = hosts(&env, 1).await.remove(0);
    let mut racers = Vec::new();
    for i in 0..20 {
        let holder = format!("contender-{i:02}");
        let env = &env;
        let name = name.clone();
        racers.push(async move {
            let out = run(
                env,
                None,
                &["lock", &name, "--reason", "race", "--holder", &holder],
            )
            .await;
            (holder, out)
        });
    }
    let results = futures::future::join_all(racers).await;
    let winners: Vec<_> = results.iter().filter(|(_, o)| o.code == Some(0)).collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {results:#?}");
    let winner = &winners[0].0;
    let lock = locks(&env).get(&name).await.expect("the lock exists");
    assert_eq!(&lock.spec.holder, winner);
    assert_eq!(lock.spec.host_id, "test/r1/web-0");
    for (holder, out) in results.iter().filter(|(h, _)| h != winner) {
        assert_eq!(out.code, Some(3), "{holder}: {out:?}");
        assert!(
            out.stderr.contains(&format!(
                "{name} is held by {winner} (user hostledger-operator) since "
            )),
            "{holder} was not told who holds it: {}",
            out.stderr
        );
    }
    // The winner locking again renews; `locks` lists it.
    let again = run(
        &env,
        None,
        &["lock", &name, "--reason", "race", "--holder", winner],
    )
    .await;
    assert_eq!(again.code, Some(0), "{again:?}");
    let renewed = locks(&env).get(&name).await.expect("still there");
    assert_eq!(
        renewed.metadata.uid, lock.metadata.uid,
        "the same lock, renewed"
    );
    assert_ne!(
        renewed.metadata.resource_version,
        lock.metadata.resource_version
    );
    let listed = run(&env, None, &["locks"]).await.ok();
    assert!(
        listed.contains(&name) && listed.contains(winner),
        "{listed}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn with_lock_releases_on_success_failure_and_sigterm() {
    let env = TestEnv::new("withlock", 1).await;
    let name = hosts(&env, 1).await.remove(0);
    let gone = async |env: &TestEnv| locks(env).get_opt(&name).await.expect("read").is_none();

    // The command sees the locked host, its exit code is passed on, the lock released.
    let check = format!("test \"$HOSTLEDGER_LOCKED_HOSTS\" = {name} && exit 7");
    let out = run(&env, None, &["with-lock", &name, "--", "sh", "-c", &check]).await;
    assert_eq!(out.code, Some(7), "{out:?}");
    assert!(gone(&env).await, "released after the command failed");
    let out = run(&env, None, &["with-lock", &name, "--", "true"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(gone(&env).await, "released after the command succeeded");

    // SIGTERM: passed on to the command, then the lock is released.
    let mut child = spawn_with_lock(&env, &[&name, "--", "sleep", "30"]);
    wait_until(
        "with-lock took the lock",
        Duration::from_secs(20),
        async || !gone(&env).await,
    )
    .await;
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("with-lock ends soon after SIGTERM")
        .expect("status");
    assert_eq!(
        status.code(),
        Some(143),
        "the command died of SIGTERM: 128 + 15"
    );
    assert!(gone(&env).await, "released after SIGTERM");
    env.cleanup().await;
}

#[tokio::test]
async fn a_killed_holder_frees_the_host_after_the_ttl_and_a_retired_host_is_unlocked() {
    let env = TestEnv::new("lockttl", 1).await;
    let names = hosts(&env, 2).await;
    let _projector = env.spawn_projector(&[], false);
    let exists =
        async |env: &TestEnv, name: &str| locks(env).get_opt(name).await.expect("read").is_some();

    // SIGKILL leaves no chance to release: the sweeper frees it once it has gone a TTL
    // without a renewal, not before.
    let ttl = Duration::from_secs(6);
    let mut child = spawn_with_lock(&env, &[&names[0], "--ttl", "6s", "--", "sleep", "40"]);
    wait_until(
        "with-lock took the lock",
        Duration::from_secs(20),
        async || exists(&env, &names[0]).await,
    )
    .await;
    // Let it renew at least once, then kill it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = locks(&env).get(&names[0]).await.expect("lock");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let killed = Instant::now();
    let freed = wait_until(
        "the sweeper freed the host",
        Duration::from_secs(30),
        async || !exists(&env, &names[0]).await,
    )
    .await;
    let renewed_before_kill = last.spec.renewed_at;
    assert!(
        freed + Duration::from_secs(3) >= ttl,
        "freed {:.1} s after the kill: before a TTL ({} s) without renewal (last renewal at {})",
        freed.as_secs_f64(),
        ttl.as_secs(),
        renewed_before_kill
    );
    assert!(
        killed.elapsed() <= ttl + Duration::from_secs(8),
        "freed {:.1} s after the kill, TTL {} s",
        freed.as_secs_f64(),
        ttl.as_secs()
    );

    // A lock on a host that retires is released.
    run(
        &env,
        None,
        &["lock", &names[1], "--reason", "decommissioning"],
    )
    .await
    .ok();
    let mut retire = event("test/r1/web-1", 1, 5, Lifecycle::Retired, "web");
    retire.kind = EventKind::HostRetired;
    env.produce(&[retire]).await;
    wait_until(
        "the retired host's lock was released",
        Duration::from_secs(20),
        async || !exists(&env, &names[1]).await,
    )
    .await;
    let refused = run(&env, None, &["lock", &names[1], "--reason", "again"]).await;
    assert!(
        refused
            .stderr
            .contains("is retired; a retired host cannot be locked"),
        "{refused:?}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn only_the_holder_writes_a_lock_and_breaking_one_is_a_permission_of_its_own() {
    let env = TestEnv::new("lockauth", 1).await;
    let names = hosts(&env, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, bob, carol) = (
        user_kubeconfig(dir.path(), "alice"),
        user_kubeconfig(dir.path(), "bob"),
        user_kubeconfig(dir.path(), "carol"),
    );
    for user in ["alice", "bob", "carol"] {
        bind(&env, "hostledger:lock-operator", user).await;
    }
    bind(&env, "hostledger:lock-breaker", "carol").await;
    // RBAC changes reach the authorizer's cache within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let out = run(
        &env,
        Some(&alice),
        &[
            "lock",
            &names[0],
            "--reason",
            "disk swap",
            "--holder",
            "alice@laptop",
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lock = locks(&env).get(&names[0]).await.expect("lock");
    assert_eq!(
        lock.spec.user, "alice",
        "the authenticated identity, from the API server"
    );

    // bob cannot release it...
    let out = run(&env, Some(&bob), &["unlock", &names[0]]).await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr
            .contains("only its holder (alice@laptop) may release it"),
        "{}",
        out.stderr
    );
    // ... nor break it: the API server refuses, and says what is missing.
    let out = run(&env, Some(&bob), &["unlock", &names[0], "--force"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("bob may not break it")
            && out.stderr.contains("hostledger:lock-breaker"),
        "{}",
        out.stderr
    );
    // Writing the object directly is refused too: renewing someone else's lock, and taking
    // a lock in someone else's name.
    let bob_client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&bob).expect("read"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("bob's config"),
    )
    .expect("bob's client");
    let as_bob: Api<HostLock> = Api::namespaced(bob_client, &env.namespace);
    let err = as_bob
        .patch(
            &names[0],
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"reason": "mine now"}})),
        )
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("only that user may renew or change it"),
        "{err}"
    );
    let mut forged = lock.clone();
    forged.metadata = kube::api::ObjectMeta {
        name: Some(names[1].clone()),
        ..Default::default()
    };
    let err = as_bob
        .create(&PostParams::default(), &forged)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("spec.user must be bob, not alice"),
        "{err}"
    );
    assert_eq!(
        locks(&env)
            .get(&names[0])
            .await
            .expect("still alice's")
            .spec
            .user,
        "alice"
    );

    // carol may break it, and is told whose lock it was.
    let out = run(&env, Some(&carol), &["unlock", &names[0], "--force"]).await;
    let text = out.ok();
    assert!(
        text.contains(&format!(
            "broke the lock on {}: it was held by alice@laptop (user alice)",
            names[0]
        )),
        "{text}"
    );
    assert!(
        locks(&env)
            .get_opt(&names[0])
            .await
            .expect("read")
            .is_none()
    );
    env.cleanup().await;
}

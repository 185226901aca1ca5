//! `hostledger prometheus-sd` feeds the real Prometheus: a data-centre export goes through
//! the fetcher and the projector into Hosts, `prometheus-sd --watch` keeps a targets file
//! current, and Prometheus' file-based discovery lists exactly the in-service hosts, and
//! follows when hosts leave and enter service.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, hostledger_binary, run_hostledger, unreachable_kubeconfig};
use hostledger_model::names::object_name;
use hostledger_model::{Host, HostGroup};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

/// Loopback addresses, so that Prometheus' scrapes stay on this machine (and fail at once).
fn export(log: &str, cache: &str) -> String {
    format!(
        "{HEADER}\
         PX100,log-pdx1-01,pdx1,hall-a,{log},log,observability,127.0.1.1,R650,A01\n\
         PX200,db-pdx1-01,pdx1,hall-a,active,db,data,127.0.1.2,R750,A02\n\
         FR300,web-fra2-01,fra2,hall-1,active,web,storefront,127.0.2.1,R650,C07\n\
         FR400,cache-fra2-01,fra2,hall-1,{cache},cache,storefront,127.0.2.2,R450,C08\n\
         FR500,spare-fra2-01,fra2,hall-1,active,spare,storefront,,R450,C09\n"
    )
}

fn prometheus_binary() -> PathBuf {
    std::env::var_os("HOSTLEDGER_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "HOSTLEDGER_PROMETHEUS is not set: this test runs the real Prometheus. Run \
                 scripts/test, or export HOSTLEDGER_PROMETHEUS=$(scripts/lib/prometheus.sh)"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// `GET path` over HTTP/1.0 (the server closes the connection after the body).
async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status code in {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// (instance, role, phase) of each target Prometheus scrapes, or `None` while it cannot say.
async fn active_targets(port: u16) -> Option<BTreeSet<(String, String, String)>> {
    let (code, body) = http_get(port, "/api/v1/targets?state=active").await.ok()?;
    if code != 200 {
        return None;
    }
    let answer: Value = serde_json::from_str(&body).ok()?;
    let targets = answer["data"]["activeTargets"].as_array()?;
    Some(
        targets
            .iter()
            .map(|t| {
                let label = |k: &str| t["labels"][k].as_str().unwrap_or("-").to_owned();
                (label("instance"), label("role"), label("phase"))
            })
            .collect(),
    )
}

fn expected(targets: &[(&str, &str)]) -> BTreeSet<(String, String, String)> {
    targets
        .iter()
        .map(|(instance, role)| ((*instance).into(), (*role).into(), "InService".into()))
        .collect()
}

/// The targets listed in a targets file, or `None` while it is absent or unreadable.
fn file_targets(path: &Path) -> Option<BTreeSet<String>> {
    let groups: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(
        groups
            .as_array()?
            .iter()
            .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
    )
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Polls `check` every 10 ms until it returns `Some`, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP relay to the API server, which the test can take away (cutting every connection and
/// refusing new ones) and bring back on the same port.
struct ApiProxy {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiProxy {
    /// Relays a free loopback port to the API server of KUBECONFIG; returns it with a copy of
    /// that kubeconfig pointing at it.
    async fn start(dir: &Path) -> (ApiProxy, PathBuf) {
        let original = std::env::var("KUBECONFIG").expect("KUBECONFIG is set (scripts/test)");
        let text = std::fs::read_to_string(&original).expect("read KUBECONFIG");
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server in KUBECONFIG")
            .to_owned();
        let upstream = server
            .strip_prefix("https://")
            .expect("an https server")
            .trim_end_matches('/')
            .to_owned();
        let mut proxy = ApiProxy {
            port: free_port(),
            upstream,
            task: None,
        };
        proxy.resume().await;
        let path = dir.join("kubeconfig-via-proxy");
        std::fs::write(
            &path,
            text.replace(&server, &format!("https://127.0.0.1:{}", proxy.port)),
        )
        .expect("write kubeconfig");
        (proxy, path)
    }

    async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the proxy port");
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    /// Cuts every connection and stops listening.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_exactly_the_hosts_in_service_and_follows_changes() {
    let prometheus = prometheus_binary();
    let env = TestEnv::new("promsd", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &csv, 0);

    // Given four hosts with addresses, three in service, and one in service without one,
    std::fs::write(&csv, export("active", "maintenance")).expect("write export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    // and a person's port annotations on two Hosts (one of them not a port),
    for (host_id, port) in [("dc/pdx1/PX200", "9187"), ("dc/fra2/FR300", "http")] {
        env.hosts()
            .patch(
                &object_name(host_id),
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": { "annotations": { "prometheus.hostledger.dev/port": port } }
                })),
            )
            .await
            .expect("annotate Host");
    }

    // a single run writes one target group per in-service host with an address,
    let once = dir.path().join("once.json");
    let once_arg = once.to_str().expect("utf-8 path");
    let ns = env.namespace.as_str();
    let stdout = run_hostledger(&["prometheus-sd", "--output", once_arg, "--namespace", ns])
        .await
        .ok();
    assert_eq!(
        stdout,
        format!("wrote {once_arg}: 3 targets (1 host without an address skipped)\n")
    );
    let groups: Value = serde_json::from_slice(&std::fs::read(&once).expect("targets file"))
        .expect("the targets file is JSON");
    assert_eq!(
        groups[0],
        json!({
            "targets": ["127.0.2.1:9100"],
            "labels": {
                "hostname": "web-fra2-01",
                "host_id": "dc/fra2/FR300",
                "provider": "dc",
                "region": "fra2",
                "zone": "hall-1",
                "role": "web",
                "team": "storefront",
                "phase": "InService",
                "machine_type": "R650",
                "hostledger_namespace": ns,
                "locked": "false",
                "drifted": "false",
            }
        })
    );
    assert_eq!(
        file_targets(&once),
        Some(set(&["127.0.1.1:9100", "127.0.1.2:9187", "127.0.2.1:9100"]))
    );
    // an unchanged inventory writes the same bytes,
    let first_bytes = std::fs::read(&once).expect("targets file");
    run_hostledger(&["prometheus-sd", "--output", once_arg, "--namespace", ns])
        .await
        .ok();
    assert_eq!(std::fs::read(&once).expect("targets file"), first_bytes);
    // and --include and -l choose other hosts, selected by the API server.
    let other = dir.path().join("other.yaml");
    let other_arg = other.to_str().expect("utf-8 path");
    let stdout = run_hostledger(&[
        "prometheus-sd",
        "--output",
        other_arg,
        "--namespace",
        ns,
        "--include",
        "out-of-service,retired",
        "-l",
        "region=fra2",
        "--port",
        "9999",
    ])
    .await
    .ok();
    assert_eq!(
        stdout,
        format!("wrote {other_arg}: 2 targets (1 host without an address skipped)\n")
    );
    let yaml = std::fs::read_to_string(&other).expect("targets file");
    assert!(
        yaml.starts_with("- targets:\n  - 127.0.2.1:9999\n"),
        "{yaml}"
    );
    assert!(yaml.contains("- 127.0.2.2:9999\n"), "{yaml}");
    assert!(yaml.contains("phase: OutOfService\n"), "{yaml}");

    // When prometheus-sd --watch keeps a file current,
    let targets = dir.path().join("targets.json");
    let log_path = dir.path().join("prometheus-sd.log");
    // (through a relay, to take the API server away later)
    let (mut api, kubeconfig) = ApiProxy::start(dir.path()).await;
    let mut sd = tokio::process::Command::new(hostledger_binary())
        .args(["prometheus-sd", "--watch", "--namespace", ns, "--output"])
        .arg(&targets)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOSTLEDGER_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus-sd --watch");
    wait_for(
        "the first targets file",
        Duration::from_secs(30),
        || async { std::fs::read(&targets).ok() },
    )
    .await;
    assert_eq!(std::fs::read(&targets).expect("targets file"), first_bytes);

    // A HostGroup created while it watches puts its name in its members' `groups` label;
    // deleted, it goes again.
    let groups_api: kube::Api<HostGroup> = kube::Api::namespaced(env.kube.clone(), ns);
    let group: HostGroup = serde_json::from_value(json!({
        "apiVersion": "hostledger.dev/v1alpha1", "kind": "HostGroup",
        "metadata": {"name": "storefront"}, "spec": {"selector": "role=web"},
    }))
    .expect("a HostGroup");
    groups_api
        .create(&kube::api::PostParams::default(), &group)
        .await
        .expect("create the HostGroup");
    let web_groups = || {
        let groups: Value = serde_json::from_slice(&std::fs::read(&targets).unwrap_or_default())
            .unwrap_or_default();
        groups
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["labels"]["role"] == "web")
            .map(|g| {
                g["labels"]["groups"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
    };
    wait_for(
        "the new group in the targets file",
        Duration::from_secs(15),
        || async { web_groups().filter(|g| g == ",storefront,") },
    )
    .await;
    groups_api
        .delete("storefront", &Default::default())
        .await
        .expect("delete the HostGroup");
    wait_for(
        "the deleted group gone from the targets file",
        Duration::from_secs(15),
        || async { std::fs::read(&targets).ok().filter(|b| *b == first_bytes) },
    )
    .await;

    // and Prometheus discovers targets from it,
    let port = free_port();
    let prometheus_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_yml,
        format!(
            "global:\n  scrape_interval: 1h\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: hostledger\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            targets.display()
        ),
    )
    .expect("write prometheus.yml");
    let _prometheus = tokio::process::Command::new(&prometheus)
        .arg(format!("--config.file={}", prometheus_yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");

    // then it scrapes exactly the hosts in service (on their ports, with their labels).
    let started = Instant::now();
    let want = expected(&[
        ("127.0.1.1:9100", "log"),
        ("127.0.1.2:9187", "db"),
        ("127.0.2.1:9100", "web"),
    ]);
    wait_for(
        "Prometheus to list the targets",
        Duration::from_secs(60),
        || async { active_targets(port).await.filter(|t| *t == want) },
    )
    .await;
    println!(
        "Prometheus listed the 3 targets {:?} after it started",
        started.elapsed()
    );

    // When one host goes into maintenance and another comes back into service,
    std::fs::write(&csv, export("maintenance", "active")).expect("edit export");
    env.fetch_once(&config).await;
    let hosts = env.hosts();
    let phase = |h: Option<Host>| {
        h.and_then(|h| h.status)
            .map(|s| s.state.lifecycle.to_string())
    };
    let hosts_changed = wait_for("the Hosts to change", Duration::from_secs(60), || async {
        let log = hosts.get_opt(&object_name("dc/pdx1/PX100")).await.ok()?;
        let cache = hosts.get_opt(&object_name("dc/fra2/FR400")).await.ok()?;
        (phase(log).as_deref() == Some("OutOfService")
            && phase(cache).as_deref() == Some("InService"))
        .then(Instant::now)
    });
    let want_file = set(&["127.0.1.2:9187", "127.0.2.1:9100", "127.0.2.2:9100"]);
    let file_changed = wait_for(
        "the targets file to follow",
        Duration::from_secs(60),
        || async {
            file_targets(&targets)
                .filter(|t| *t == want_file)
                .map(|_| Instant::now())
        },
    );
    let projected = async {
        env.project_until_caught_up().await;
        Instant::now()
    };
    let (hosts_changed, file_changed, projected) =
        tokio::join!(hosts_changed, file_changed, projected);

    // the file follows within a second of the Hosts' change (and of the projection's end).
    let after_hosts = file_changed.saturating_duration_since(hosts_changed);
    let after_projection = file_changed.saturating_duration_since(projected);
    println!(
        "targets file rewritten {after_hosts:?} after both Hosts showed the change \
         (polled every 10 ms), {after_projection:?} after the projection ended"
    );
    assert!(
        after_hosts < Duration::from_secs(1) && after_projection < Duration::from_secs(1),
        "the targets file took {after_hosts:?} to follow the Hosts"
    );

    // and so does Prometheus.
    let want = expected(&[
        ("127.0.1.2:9187", "db"),
        ("127.0.2.1:9100", "web"),
        ("127.0.2.2:9100", "cache"),
    ]);
    wait_for("Prometheus to follow", Duration::from_secs(30), || async {
        active_targets(port).await.filter(|t| *t == want)
    })
    .await;
    println!(
        "Prometheus followed {:?} after the projection ended",
        projected.elapsed()
    );

    // When the API server goes away, the file keeps its content;
    let before = std::fs::read(&targets).expect("targets file");
    api.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(std::fs::read(&targets).expect("targets file"), before);
    // when it comes back, after hosts changed meanwhile, the watch resumes and the file follows.
    std::fs::write(&csv, export("active", "active")).expect("edit export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    assert_eq!(std::fs::read(&targets).expect("targets file"), before);
    api.resume().await;
    let back = Instant::now();
    let want_file = set(&[
        "127.0.1.1:9100",
        "127.0.1.2:9187",
        "127.0.2.1:9100",
        "127.0.2.2:9100",
    ]);
    wait_for(
        "the targets file after the outage",
        Duration::from_secs(60),
        || async { file_targets(&targets).filter(|t| *t == want_file) },
    )
    .await;
    println!(
        "targets file caught up {:?} after the API server came back",
        back.elapsed()
    );

    // SIGTERM ends the watch with exit code 0 and a complete file.
    let pid = sd.id().expect("prometheus-sd is running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), sd.wait())
        .await
        .expect("prometheus-sd ends on SIGTERM")
        .expect("wait for prometheus-sd");
    assert_eq!(status.code(), Some(0));
    assert_eq!(file_targets(&targets), Some(want_file));
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        log.contains("cannot watch Hosts on the Kubernetes API server"),
        "the outage is reported: {log}"
    );
    assert!(
        log.contains("is not a port") && log.contains("dc/fra2/FR300"),
        "the bad port annotation is reported: {log}"
    );
    assert!(
        log.contains("has no address") && log.contains("dc/fra2/FR500"),
        "the host without an address is reported: {log}"
    );
    assert!(
        log.contains(&format!("wrote {}: 3 targets", targets.display())),
        "each rewrite is logged: {log}"
    );
    env.cleanup().await;
}

/// A kubeconfig for an API server that is not there.
#[tokio::test]
async fn bad_input_and_an_unreachable_api_server_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("targets.json");
    let file_arg = file.to_str().expect("utf-8 path");

    // A malformed selector is refused while the command line is read (clap: exit code 2).
    let out = run_hostledger(&["prometheus-sd", "--output", file_arg, "-l", "role in (a"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: invalid value 'role in (a' for '--selector <SELECTOR>'")
            && out.stderr.contains("a '(' without its ')'"),
        "{}",
        out.stderr
    );
    let out = run_hostledger(&[
        "prometheus-sd",
        "--output",
        file_arg,
        "--include",
        "sleeping",
    ])
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid value 'sleeping'"),
        "{}",
        out.stderr
    );

    // An unreachable API server: one line naming it, exit 1, no panic, no file.
    let out = tokio::process::Command::new(hostledger_binary())
        .args([
            "prometheus-sd",
            "--output",
            file_arg,
            "--namespace",
            "nowhere",
        ])
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path()))
        .env("HOSTLEDGER_LOG", "off")
        .output()
        .await
        .expect("run hostledger");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with(
            "error: cannot list Hosts in namespace nowhere from the Kubernetes API server at https://127.0.0.1:1: "
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!file.exists());
}

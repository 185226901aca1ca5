//! The history API through kubectl: `hostledger history-server` folds the log and serves
//! `hosthistories.history.hostledger.dev` behind the real kube-apiserver's aggregation layer
//! (an APIService, a Service and its EndpointSlice at this machine's address). kubectl gets a
//! host's full history, the same entries `hostledger history --source log` prints; lists;
//! and a user without the permission is refused with the reason. One test registers the
//! APIService (it is cluster-wide), so this is the only test that does.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostledger_e2e::{TestEnv, bind, event, hostledger_binary, run_hostledger, user_kubeconfig};
use hostledger_schemas::Lifecycle;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// This machine's first non-loopback IPv4 address (Service endpoints may not be loopback),
/// the one `scripts/lib/certs.sh` puts in the history server's certificate.
fn host_ip() -> String {
    if let Ok(ip) = std::env::var("HOSTLEDGER_HOST_IP") {
        return ip;
    }
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .expect("a non-loopback IPv4 address (or set HOSTLEDGER_HOST_IP)")
        .to_owned()
}

async fn kubectl(kubeconfig: Option<&Path>, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new("kubectl");
    command.args(args);
    if let Some(k) = kubeconfig {
        command.env("KUBECONFIG", k);
    }
    let out = command.output().await.expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn apply(yaml: &str, dir: &Path) {
    let file = dir.join("objects.yaml");
    std::fs::write(&file, yaml).expect("write YAML");
    let (ok, out, err) = kubectl(None, &["apply", "-f", file.to_str().expect("utf-8")]).await;
    assert!(ok, "kubectl apply: {out}{err}");
}

#[tokio::test]
async fn kubectl_reads_a_hosts_full_history_from_the_history_server() {
    let env = TestEnv::new("historyapi", 2).await;
    let stack = std::env::var("HOSTLEDGER_STACK_DIR").expect("HOSTLEDGER_STACK_DIR");
    let certs = Path::new(&stack).join("certs");
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = ("test/r1/db-a", "test/r1/db-b");
    env.produce(&[
        event(a, 0, 0, Lifecycle::InService, "db"),
        event(b, 0, 0, Lifecycle::InService, "web"),
        event(a, 1, 5, Lifecycle::OutOfService, "db"),
        event(a, 2, 9, Lifecycle::InService, "db"),
    ])
    .await;

    let port = free_port();
    let cert = |f: &str| certs.join(f).to_str().expect("utf-8").to_owned();
    let listen = format!("0.0.0.0:{port}");
    let mut server = tokio::process::Command::new(hostledger_binary())
        .args([
            "history-server",
            "--listen",
            &listen,
            "--namespace",
            &env.namespace,
        ])
        .args([
            "--tls-cert",
            &cert("history-server.crt"),
            "--tls-key",
            &cert("history-server.key"),
        ])
        .args(["--client-ca", &cert("front-proxy-ca.crt")])
        .args([
            "--topic-prefix",
            &env.topic_prefix,
            "--kafka-bootstrap",
            &env.bootstrap,
        ])
        .env("HOSTLEDGER_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start history-server");

    let ca = std::process::Command::new("base64")
        .arg("-w0")
        .arg(certs.join("kube-ca.crt"))
        .output()
        .expect("base64");
    let ca = String::from_utf8_lossy(&ca.stdout).into_owned();
    let ip = host_ip();
    apply(
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: hostledger-system}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: hostledger-history, namespace: hostledger-system}}\n\
             spec:\n  ports: [{{port: 443, targetPort: {port}, protocol: TCP}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata:\n  name: hostledger-history\n  namespace: hostledger-system\n  labels: {{kubernetes.io/service-name: hostledger-history}}\n\
             addressType: IPv4\nports: [{{port: {port}, protocol: TCP}}]\n\
             endpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\n---\n\
             apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1alpha1.history.hostledger.dev}}\n\
             spec:\n  group: history.hostledger.dev\n  version: v1alpha1\n  groupPriorityMinimum: 1000\n  versionPriority: 15\n\
             \x20 service: {{name: hostledger-history, namespace: hostledger-system, port: 443}}\n  caBundle: {ca}\n"
        ),
        dir.path(),
    )
    .await;

    // kubectl reaches the full history through the API server, as soon as it is indexed.
    let name = "test.r1.db-a";
    let started = Instant::now();
    let history: Value = loop {
        let (ok, out, err) = kubectl(
            None,
            &[
                "get",
                "hosthistories.history.hostledger.dev",
                name,
                "-n",
                &env.namespace,
                "-o",
                "json",
            ],
        )
        .await;
        if ok {
            let v: Value = serde_json::from_str(&out).expect("JSON");
            if v["spec"]["entries"].as_array().map(Vec::len) == Some(3) {
                break v;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kubectl get hosthistories: {out}{err}"
        );
        if let Ok(Some(status)) = server.try_wait() {
            panic!("history-server exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(history["kind"], "HostHistory");
    assert_eq!(history["spec"]["hostId"], a);
    let from_log = run_hostledger(&env.scoped(&["history", a, "--source", "log", "-o", "json"]))
        .await
        .ok();
    let from_log: Value = serde_json::from_str(&from_log).expect("history JSON");
    assert_eq!(
        history["spec"]["entries"], from_log,
        "the API and the log agree"
    );

    // A list, and the table kubectl prints.
    let (ok, out, err) = kubectl(
        None,
        &[
            "get",
            "hosthistories.history.hostledger.dev",
            "-n",
            &env.namespace,
        ],
    )
    .await;
    assert!(
        ok && out.contains(name) && out.contains("test.r1.db-b"),
        "{out}{err}"
    );
    // The columns the server's Table gives kubectl.
    let header = out.lines().next().unwrap_or_default();
    for column in ["HOST-ID", "EVENTS", "PHASE", "FIRST-SEEN"] {
        assert!(header.contains(column), "{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default();
    assert!(
        row.contains(a) && row.contains(" 3 ") && row.contains("InService"),
        "{out}"
    );
    println!("$ kubectl get hosthistories.history.hostledger.dev -n NS\n{out}");

    // Someone without the permission is refused, with the reason (RBAC, checked by the API
    // server before it proxies, and by the history server again).
    let user = user_kubeconfig(dir.path(), "carol");
    let (ok, _, err) = kubectl(
        Some(&user),
        &[
            "get",
            "hosthistories.history.hostledger.dev",
            name,
            "-n",
            &env.namespace,
        ],
    )
    .await;
    assert!(!ok, "carol may not read histories");
    assert!(
        err.contains("User \"carol\" cannot get resource \"hosthistories\"")
            && err.contains("history.hostledger.dev"),
        "{err}"
    );
    // Granted the reader role, she may.
    bind(&env, "hostledger:history-reader", "carol").await;
    let started = Instant::now();
    loop {
        let (ok, out, err) = kubectl(
            Some(&user),
            &[
                "get",
                "hosthistories.history.hostledger.dev",
                name,
                "-n",
                &env.namespace,
                "-o",
                "name",
            ],
        )
        .await;
        if ok {
            assert!(out.contains(name), "{out}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (ok, out, err) = kubectl(
        None,
        &["delete", "apiservice", "v1alpha1.history.hostledger.dev"],
    )
    .await;
    assert!(ok, "{out}{err}");
    server.start_kill().expect("stop history-server");
    env.cleanup().await;
}

//! AWS EC2 against moto's EC2-compatible endpoint on loopback: instances launched, stopped,
//! started, terminated and re-tagged with boto3 (AWS's Python SDK, `ec2ctl.py`) become the
//! right events and Hosts when hostledger lists them with its own `DescribeInstances` client.

use std::time::{Duration, Instant};

use hostledger_e2e::TestEnv;
use hostledger_schemas::EventKind;

/// moto accepts any credentials; the fetcher's default chain reads them from the environment.
/// Set once per test binary, before any fetcher runs.
fn moto_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, first thing in each test, before anything reads the environment;
        // nothing in this binary writes these variables anywhere else.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
    });
}

/// moto's EC2 endpoint on a free loopback port, stopped when dropped.
struct Moto {
    url: String,
    _child: tokio::process::Child,
}

async fn start_moto() -> Moto {
    let tools = std::env::var("HOSTLEDGER_PYTHON_TOOLS")
        .expect("HOSTLEDGER_PYTHON_TOOLS is not set: run under scripts/test (it installs moto)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = tokio::process::Command::new(format!("{tools}/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Moto {
        url: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

/// One region of moto's EC2, driven with boto3.
struct Ec2 {
    url: String,
    region: String,
}

impl Ec2 {
    fn new(url: &str, region: &str) -> Self {
        Ec2 {
            url: url.to_owned(),
            region: region.to_owned(),
        }
    }

    /// Runs `ec2ctl.py URL REGION ARGS…` and returns what it printed.
    async fn ctl(&self, args: &[&str]) -> String {
        let tools = std::env::var("HOSTLEDGER_PYTHON_TOOLS").expect(
            "HOSTLEDGER_PYTHON_TOOLS is not set: run under scripts/test (it installs moto)",
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/ec2ctl.py");
        let out = tokio::process::Command::new(format!("{tools}/python"))
            .arg(script)
            .args([&self.url, &self.region])
            .args(args)
            .output()
            .await
            .expect("run ec2ctl.py");
        assert!(
            out.status.success(),
            "ec2ctl.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    async fn launch(&self, name: &str, role: &str) -> String {
        let id = self.ctl(&["launch", name, role]).await;
        assert!(id.starts_with("i-"), "not an instance id: {id:?}");
        id
    }

    async fn tag(&self, id: &str, key: &str, value: &str) {
        self.ctl(&["tag", id, key, value]).await;
    }
}

/// An HTTP proxy in front of moto that, once `fail_pages` is set, answers every request for
/// a page after the first (one with a NextToken) with 503, as a flaky endpoint would.
async fn flaky_proxy(
    upstream: String,
    fail_pages: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let upstream = upstream.clone();
            let fail_pages = fail_pages.clone();
            tokio::spawn(async move {
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let mut buf = Vec::new();
                    let mut byte = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        match client.read(&mut byte).await {
                            Ok(1) => buf.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if client.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let page_request = String::from_utf8_lossy(&body).contains("NextToken");
                    let response = if page_request
                        && fail_pages.load(std::sync::atomic::Ordering::SeqCst)
                    {
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()
                    } else {
                        let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                            return;
                        };
                        let head = head
                            .replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
                            .replace("Connection: keep-alive\r\n", "");
                        if up.write_all(head.as_bytes()).await.is_err()
                            || up.write_all(&body).await.is_err()
                        {
                            return;
                        }
                        let mut response = Vec::new();
                        if up.read_to_end(&mut response).await.is_err() {
                            return;
                        }
                        response
                    };
                    if client.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_listing_that_fails_mid_pagination_publishes_nothing() {
    moto_credentials();
    let env = TestEnv::new("awsflaky", 2).await;
    let moto = start_moto().await;
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = flaky_proxy(moto.url.clone(), fail.clone()).await;
    let east = Ec2::new(&moto.url, "us-east-1");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(east.launch(&format!("api-{i}"), "api").await);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let t = &env.kafka.settings().topics;
    let config = dir.path().join("fetcher.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap_servers: {}\n  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n\
             missing_grace_secs: 0\nproviders:\n  - kind: aws-ec2\n    name: aws-{}\n    account_id: '123456789012'\n    \
             regions: [us-east-1]\n    endpoint_url: {proxy}\n    page_size: 5\n",
            env.bootstrap, t.events, t.dead_letter, t.fetcher_state, env.id
        ),
    )
    .expect("write config");
    env.fetch_once(&config).await;
    assert_eq!(
        env.read_events().len(),
        7,
        "two pages read through the proxy"
    );

    // Page 2 now fails: the hosts on page 1 must not be reported changed, and the hosts on
    // page 2 must not be declared missing. Nothing at all is published.
    for id in &ids {
        east.tag(id, "role", "api-v2").await;
    }
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = env.fetch_once_err(&config).await;
    assert!(err.contains("DescribeInstances page 2 failed"), "{err}");
    assert_eq!(
        env.read_events().len(),
        7,
        "nothing published for a partial listing"
    );

    // The endpoint recovers: every change comes through, once.
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    env.fetch_once(&config).await;
    let events = env.read_events();
    assert_eq!(events.len(), 14);
    let count = |kind: EventKind| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count(EventKind::HostDiscovered), 7);
    assert_eq!(
        count(EventKind::HostChanged),
        7,
        "each re-tag once; nothing missing, nothing rediscovered"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn ec2_instances_flow_into_hosts() {
    moto_credentials();
    let env = TestEnv::new("aws", 3).await;
    let moto = start_moto().await;
    let east = Ec2::new(&moto.url, "us-east-1");
    let west = Ec2::new(&moto.url, "eu-west-1");
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(east.launch(&format!("web-{i}"), "web").await);
    }
    let db = west.launch("db-0", "db").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let t = &env.kafka.settings().topics;
    let config = dir.path().join("fetcher.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap_servers: {}\n  topics: {{events: {}, dead_letter: {}, fetcher_state: {}}}\n\
             missing_grace_secs: 0\nproviders:\n  - kind: aws-ec2\n    name: aws-{}\n    account_id: '123456789012'\n    \
             regions: [us-east-1, eu-west-1]\n    endpoint_url: {}\n    page_size: 5\n",
            env.bootstrap, t.events, t.dead_letter, t.fetcher_state, env.id, moto.url
        ),
    )
    .expect("write config");

    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    let statuses = env.statuses(&env.namespace).await;
    assert_eq!(
        statuses.len(),
        7,
        "six instances over two pages in us-east-1, one in eu-west-1"
    );
    let id = |region: &str, instance: &str| format!("aws/123456789012/{region}/{instance}");
    let web0 = &statuses[&id("us-east-1", &ids[0])];
    assert_eq!(web0.state.lifecycle.as_str(), "InService");
    assert_eq!(web0.state.name, "web-0");
    assert_eq!(web0.state.machine_type.as_deref(), Some("t3.micro"));
    assert_eq!(
        statuses[&id("eu-west-1", &db)].state.role.as_deref(),
        Some("db")
    );
    assert_eq!(
        env.list_hosts(Some("provider=aws,region=eu-west-1,role=db"))
            .await
            .len(),
        1
    );

    // Stop one, terminate one, re-tag one; stop and start another (no net change).
    east.ctl(&["stop", &ids[1]]).await;
    east.ctl(&["terminate", &ids[2]]).await;
    east.tag(&ids[3], "role", "cache").await;
    env.fetch_once(&config).await;
    east.ctl(&["start", &ids[1]]).await;
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;

    let statuses = env.statuses(&env.namespace).await;
    assert_eq!(
        statuses[&id("us-east-1", &ids[1])].state.lifecycle.as_str(),
        "InService",
        "stopped, then started again"
    );
    assert_eq!(
        statuses[&id("us-east-1", &ids[2])].state.lifecycle.as_str(),
        "Retired"
    );
    assert_eq!(
        statuses[&id("us-east-1", &ids[3])].state.role.as_deref(),
        Some("cache")
    );
    assert!(
        statuses[&id("us-east-1", &ids[1])].closed_in_service_micros > 0,
        "its first service interval closed"
    );

    let mut kinds: Vec<(String, EventKind)> = env
        .read_events()
        .into_iter()
        .filter(|e| {
            e.host_id.ends_with(&ids[1])
                || e.host_id.ends_with(&ids[2])
                || e.host_id.ends_with(&ids[3])
        })
        .map(|e| {
            (
                e.host_id.rsplit('/').next().unwrap_or_default().to_owned(),
                e.kind,
            )
        })
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    let mut expected = vec![
        (ids[1].clone(), EventKind::HostDiscovered),
        (ids[1].clone(), EventKind::HostLifecycleChanged),
        (ids[1].clone(), EventKind::HostLifecycleChanged),
        (ids[2].clone(), EventKind::HostDiscovered),
        (ids[2].clone(), EventKind::HostRetired),
        (ids[3].clone(), EventKind::HostChanged),
        (ids[3].clone(), EventKind::HostDiscovered),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    assert_eq!(kinds, expected);
    env.cleanup().await;
}

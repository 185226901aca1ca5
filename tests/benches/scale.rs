//! Scale benchmark on the real stack: synthetic fleets of N hosts with E events each
//! (default 10,000 × 100), produced straight to Kafka, projected by the real `hostledger
//! project` process, then read by the real readers. Per size it reports:
//!
//! - etcd's database size (`etcd_mvcc_db_total_size_in_bytes`) before and after, raw and
//!   after a compaction and defragmentation, and its growth per history entry; then its
//!   growth per 1,000,000 more events of the same hosts (`--more-rounds` more events each);
//! - the HostHistory chunks in etcd (none, where history is the log's);
//! - kube-apiserver's peak RSS during the run (its `VmHWM`, reset at the start), the
//!   projector's, and the history server's (`scripts/stack history-server`);
//! - projection time and API writes (`hostledger replay`, or with `--daemon` the live
//!   `hostledger project` working through the backlog);
//! - `kubectl get hosts`, `hostledger uptime`, `uptime --as-of T`, `history HOST` and
//!   `ansible --list` times, and `prometheus-sd --watch`'s time to its first targets file and
//!   its peak RSS (`--no-readers` skips them);
//! - with `--live-secs S`: the live `hostledger project` on the projected fleet, given
//!   `--live-rate R` (1,000) changes per second of existing hosts for S seconds: how fast it
//!   applies them, its largest backlog and how soon after the last one everything is applied.
//!   `--live-of ID` runs only this phase on a fleet that a `--keep` run left.
//!
//! A size that etcd refuses (its 2 GiB quota, say) is reported as far as it got.
//!
//! usage: scripts/stack up && eval "$(scripts/stack env)" &&
//!        cargo build --release -p hostledger-cli --bin hostledger &&
//!        scripts/stack history-server "$CARGO_TARGET_DIR/release/hostledger" &&
//!        cargo bench -p hostledger-e2e --bench scale -- [--sizes 10000,50000] [--events-per-host 100] [--more-rounds 10] [--keep] [--readers-of NAMESPACE] [--no-readers] [--live-secs 60 --live-rate 1000] [--live-of ID --live-round N]

use std::time::{Duration, Instant};

use hostledger_e2e::{Figure, TestEnv, bench_arg, bench_text_arg, hostledger_binary, stack_pid};
use hostledger_model::HostHistory;
use hostledger_model::time::exact_time;
use hostledger_schemas::{EventKind, FieldChange, HostEvent, HostState, Lifecycle, Timestamp};
use kube::api::{Api, ListParams};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000;
const MINUTE: i64 = 60_000_000;

/// Event `n` of host `h`, shaped like a data-centre fetcher's: the whole state (address,
/// rack, serial, model, a few tags), what changed, one observation per host a minute apart
/// per round. Rounds cycle in service → maintenance → in service, with a tag changed in
/// between, so every event is a real change.
fn fleet_event(h: usize, n: usize) -> HostEvent {
    let state = fleet_state(h, n);
    let changes = if n == 0 {
        Vec::new()
    } else {
        state.changes_from(&fleet_state(h, n - 1))
    };
    let site = state.region.clone().unwrap_or_default();
    HostEvent {
        event_id: format!("scale-{h}-{n}"),
        host_id: format!("dc/{site}/SN{h:08}"),
        kind: match n {
            0 => EventKind::HostDiscovered,
            _ if changes.iter().any(|c: &FieldChange| c.field == "lifecycle") => {
                EventKind::HostLifecycleChanged
            }
            _ => EventKind::HostChanged,
        },
        provider: "dc".into(),
        source: format!("dc-export-{site}"),
        observed_at: Timestamp(T0 + (n as i64) * MINUTE + (h as i64 % 60_000)),
        state,
        changes,
    }
}

/// The state of host `h` after its event `n`.
fn fleet_state(h: usize, n: usize) -> HostState {
    let lifecycle = match n % 4 {
        1 => Lifecycle::OutOfService,
        _ => Lifecycle::InService,
    };
    let status = if lifecycle == Lifecycle::InService {
        "active"
    } else {
        "maintenance"
    };
    let site = if h.is_multiple_of(2) { "pdx1" } else { "fra2" };
    let role = ["web", "db", "cache", "log", "kafka"][h % 5];
    let mut state = HostState::new(format!("{role}-{site}-{h:06}"), lifecycle, status);
    state.region = Some(site.into());
    state.zone = Some(format!("hall-{}", h % 3));
    state.role = Some(role.into());
    state.team = Some(["storefront", "data", "observability"][h % 3].into());
    state.addresses = vec![format!(
        "10.{}.{}.{}",
        h / 65536 % 256,
        h / 256 % 256,
        h % 256
    )];
    state.machine_type = Some("Dell R650".into());
    state
        .attributes
        .insert("rack".into(), format!("R{:03}", h % 400));
    state
        .attributes
        .insert("serial".into(), format!("SN{h:08}"));
    state
        .attributes
        .insert("firmware".into(), format!("2.{n}.0"));
    state
}

/// One plain HTTP/1.0 request to etcd (`http://127.0.0.1:PORT`); the response body.
async fn etcd_http(etcd: &str, method: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = etcd.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect to etcd at {address}: {e}"));
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send to etcd");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read from etcd");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "etcd {method} {path}: {head}"
    );
    body.to_owned()
}

/// etcd's database size and the part in use, in bytes, from its metrics.
async fn etcd_sizes(etcd: &str) -> (f64, f64) {
    let text = etcd_http(etcd, "GET", "/metrics", "").await;
    let metric = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (
        metric("etcd_mvcc_db_total_size_in_bytes"),
        metric("etcd_mvcc_db_total_size_in_use_in_bytes"),
    )
}

/// Compacts etcd to its current revision and defragments it (its JSON gateway), so the
/// database size counts live data only.
async fn etcd_compact(etcd: &str) {
    let range: serde_json::Value = serde_json::from_str(
        &etcd_http(etcd, "POST", "/v3/kv/range", r#"{"key":"AA==","limit":1}"#).await,
    )
    .expect("etcd range JSON");
    let revision = range["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse::<i64>().ok())
        .expect("etcd revision");
    etcd_http(
        etcd,
        "POST",
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}","physical":true}}"#),
    )
    .await;
    etcd_http(etcd, "POST", "/v3/maintenance/defragment", "{}").await;
}

/// A memory figure of a process from `/proc/PID/status` (`VmHWM`: its peak resident set,
/// `VmRSS`: its resident set now), in MiB.
fn status_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM")
}

fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS")
}

/// Starts a process's peak resident set over from its current size.
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Runs a command; its wall time, peak RSS (MiB, sampled) and output.
async fn measured(program: &std::path::Path, args: &[&str]) -> (f64, f64, std::process::Output) {
    let started = Instant::now();
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("HOSTLEDGER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let pid = child.id().unwrap_or(0);
    let mut peak = 0.0_f64;
    let wait = child.wait_with_output();
    tokio::pin!(wait);
    let output = loop {
        tokio::select! {
            out = &mut wait => break out.expect("wait for the command"),
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let now = peak_rss_mib(pid);
                if now.is_finite() {
                    peak = peak.max(now);
                }
            }
        }
    };
    (started.elapsed().as_secs_f64(), peak, output)
}

/// Median wall time of `runs` runs of a command that must succeed.
async fn timed(runs: usize, program: &std::path::Path, args: &[&str]) -> f64 {
    let mut times = Vec::new();
    for _ in 0..runs {
        let (secs, _, out) = measured(program, args).await;
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Produces event `n` of every host for each round `n`, round by round, in chunks (memory
/// stays small at any size).
async fn produce_rounds(env: &TestEnv, hosts: usize, rounds: std::ops::Range<usize>) {
    const CHUNK: usize = 50_000;
    let mut batch = Vec::with_capacity(CHUNK);
    for n in rounds {
        for h in 0..hosts {
            batch.push(fleet_event(h, n));
            if batch.len() == CHUNK {
                env.produce(&batch).await;
                batch.clear();
            }
        }
    }
    env.produce(&batch).await;
}

/// The readers' times on a projected fleet.
struct Readers {
    first_history_secs: f64,
    history_server_mib: f64,
    /// The history index's files on disk (every log's): entries, points.
    index_mib: (f64, f64),
    kubectl_secs: f64,
    uptime_secs: f64,
    as_of_secs: f64,
    uptime_hosts_secs: f64,
    as_of_hosts_secs: f64,
    history_secs: f64,
    ansible_secs: f64,
    /// `ansible --list --source objects`: every Host listed from kube-apiserver.
    ansible_objects_secs: f64,
    /// Hosts whose variables differ between the two sources (0: the same answer).
    ansible_differing: usize,
    /// `ansible --list --cache FILE` answered from its file.
    ansible_cached_secs: f64,
    /// `prometheus-sd --watch`: until its first targets file, and its peak RSS then.
    sd_first_file_secs: f64,
    sd_watch_mib: f64,
}

/// `hostledger prometheus-sd --watch` on namespace `ns`: the seconds until it has written its
/// first targets file (the whole list watched) and its peak resident memory by then, in MiB.
/// It keeps every Host it watches, so this is what the watch costs at the fleet's size.
async fn prometheus_watch(binary: &std::path::Path, ns: &str) -> (f64, f64) {
    let file = std::env::temp_dir().join(format!("hostledger-scale-sd-{ns}.json"));
    let _ = std::fs::remove_file(&file);
    let output = file.to_string_lossy().into_owned();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .args([
            "prometheus-sd",
            "--watch",
            "--namespace",
            ns,
            "--include",
            "out-of-service,retired",
            "--output",
            &output,
        ])
        .env("HOSTLEDGER_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger prometheus-sd --watch");
    let pid = child.id().unwrap_or(0);
    let mut peak = 0.0_f64;
    // The file is written by a rename: once it exists, it is complete.
    wait_for(
        &mut child,
        "prometheus-sd --watch writing its first targets file",
        Duration::from_secs(900),
        async || {
            let now = peak_rss_mib(pid);
            if now.is_finite() {
                peak = peak.max(now);
            }
            file.exists()
        },
    )
    .await;
    let first_file_secs = started.elapsed().as_secs_f64();
    peak = peak.max(peak_rss_mib(pid));
    let _ = child.start_kill();
    let _ = child.wait().await;
    let _ = std::fs::remove_file(&file);
    (first_file_secs, peak)
}

/// Calls `ready` every 100 ms until it holds; fails the bench if `child` exits first or
/// `limit` passes.
async fn wait_for(
    child: &mut tokio::process::Child,
    what: &str,
    limit: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !ready().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            limit.as_secs()
        );
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "{what}: the process exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Times the readers on the fleet of `hosts` hosts × `per_host` events in namespace `ns`.
/// The first `history` waits for the history server to have read the log.
async fn readers(
    binary: &std::path::Path,
    ns: &str,
    hosts: usize,
    per_host: usize,
    runs: usize,
    history_server: u32,
) -> Readers {
    let kubectl = std::path::PathBuf::from("kubectl");
    let host_id = fleet_event(hosts / 2, 0).host_id;
    let started = Instant::now();
    let (_, _, out) = measured(
        binary,
        &["history", &host_id, "--namespace", ns, "-o", "json"],
    )
    .await;
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first_history_secs = started.elapsed().as_secs_f64();
    let history_server_mib = peak_rss_mib(history_server);
    let index_mib = index_files_mib();
    let kubectl_secs = timed(runs, &kubectl, &["get", "hosts", "-n", ns]).await;
    let uptime_secs = timed(runs, binary, &["uptime", "--namespace", ns, "-o", "json"]).await;
    let mid = exact_time(Timestamp(T0 + (per_host as i64 / 2) * MINUTE));
    let as_of_secs = timed(
        runs,
        binary,
        &["uptime", "--namespace", ns, "--as-of", &mid, "-o", "json"],
    )
    .await;
    // Selecting by a label the projector does not derive (people's labels) takes the Hosts'
    // path: every Host listed, and the server's fold of every history as of T.
    let people = "!example.com/not-set";
    let uptime_hosts_secs = timed(
        runs,
        binary,
        &["uptime", "--namespace", ns, "-l", people, "-o", "json"],
    )
    .await;
    let as_of_hosts_secs = timed(
        runs,
        binary,
        &[
            "uptime",
            "--namespace",
            ns,
            "--as-of",
            &mid,
            "-l",
            people,
            "-o",
            "json",
        ],
    )
    .await;
    let history_secs = timed(
        runs,
        binary,
        &["history", &host_id, "--namespace", ns, "-o", "json"],
    )
    .await;
    let ansible = |more: &'static [&'static str]| {
        let mut args = vec!["ansible", "--list", "--namespace", ns];
        args.extend_from_slice(more);
        args
    };
    let ansible_secs = timed(runs, binary, &ansible(&[])).await;
    let (ansible_objects_secs, _, objects) =
        measured(binary, &ansible(&["--source", "objects"])).await;
    let (_, _, served) = measured(binary, &ansible(&["--source", "history-server"])).await;
    for (source, out) in [("objects", &objects), ("history-server", &served)] {
        assert!(
            out.status.success(),
            "ansible --list --source {source}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ansible_differing = differing_hosts(&objects.stdout, &served.stdout);
    let cache = std::env::temp_dir().join(format!("hostledger-scale-ansible-{ns}.json"));
    let cache_arg = cache.to_string_lossy().into_owned();
    let mut cached = ansible(&[]);
    cached.extend(["--cache", cache_arg.as_str()]);
    let _ = measured(binary, &cached).await;
    let ansible_cached_secs = timed(runs, binary, &cached).await;
    let _ = std::fs::remove_file(&cache);
    let (sd_first_file_secs, sd_watch_mib) = prometheus_watch(binary, ns).await;
    Readers {
        first_history_secs,
        history_server_mib,
        index_mib,
        kubectl_secs,
        uptime_secs,
        as_of_secs,
        uptime_hosts_secs,
        as_of_hosts_secs,
        history_secs,
        ansible_secs,
        ansible_objects_secs,
        ansible_differing,
        ansible_cached_secs,
        sd_first_file_secs,
        sd_watch_mib,
    }
}

/// How many hosts' variables differ between two `ansible --list` answers (or are in one only).
fn differing_hosts(a: &[u8], b: &[u8]) -> usize {
    let vars = |out: &[u8]| -> serde_json::Map<String, serde_json::Value> {
        let list: serde_json::Value =
            serde_json::from_slice(out).expect("ansible --list prints JSON");
        list["_meta"]["hostvars"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let (a, b) = (vars(a), vars(b));
    let mut names: std::collections::BTreeSet<&String> = a.keys().collect();
    names.extend(b.keys());
    names.into_iter().filter(|n| a.get(*n) != b.get(*n)).count()
}

/// Prints the readers' rows.
fn print_readers(hosts: usize, r: &Readers) {
    let row = |name: &str, value: String| println!("{name:<58} {value:>14}");
    row(
        &format!("kubectl get hosts ({hosts})"),
        format!("{:.2} s", r.kubectl_secs),
    );
    row(
        "hostledger uptime (history server's points)",
        format!("{:.2} s", r.uptime_secs),
    );
    row(
        "hostledger uptime --as-of (mid-history, points)",
        format!("{:.2} s", r.as_of_secs),
    );
    row(
        "hostledger uptime -l PEOPLE'S-LABEL (lists the Hosts)",
        format!("{:.2} s", r.uptime_hosts_secs),
    );
    row(
        "hostledger uptime --as-of -l PEOPLE'S-LABEL (Hosts + folds)",
        format!("{:.2} s", r.as_of_hosts_secs),
    );
    row(
        "hostledger history HOST, first (history server catching up)",
        format!("{:.2} s", r.first_history_secs),
    );
    row(
        "hostledger history HOST",
        format!("{:.3} s", r.history_secs),
    );
    row(
        "hostledger ansible --list (history server's view of the Hosts)",
        format!("{:.2} s", r.ansible_secs),
    );
    row(
        "hostledger ansible --list --source objects (lists the Hosts)",
        format!("{:.2} s", r.ansible_objects_secs),
    );
    row(
        "  hosts whose variables differ between the two",
        format!("{}", r.ansible_differing),
    );
    row(
        "hostledger ansible --list --cache FILE (from the file)",
        format!("{:.2} s", r.ansible_cached_secs),
    );
    row(
        "prometheus-sd --watch: first targets file",
        format!("{:.1} s", r.sd_first_file_secs),
    );
    row(
        "prometheus-sd --watch: peak RSS",
        format!("{:.0} MiB", r.sd_watch_mib),
    );
    row(
        "history server peak RSS",
        format!("{:.0} MiB", r.history_server_mib),
    );
    row(
        "history index on disk (every log): entries file(s)",
        format!("{:.0} MiB", r.index_mib.0),
    );
    row(
        "history index on disk (every log): points file(s)",
        format!("{:.0} MiB", r.index_mib.1),
    );
}

/// The sizes of the stack's history index files (`scripts/stack history-server` keeps them
/// in `$HOSTLEDGER_STACK_DIR/history-index`): the entries files and the points files, in MiB.
fn index_files_mib() -> (f64, f64) {
    let Ok(dir) = std::env::var("HOSTLEDGER_STACK_DIR") else {
        return (0.0, 0.0);
    };
    let mut sizes = (0u64, 0u64);
    for file in std::fs::read_dir(format!("{dir}/history-index"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = file.file_name().to_string_lossy().into_owned();
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if name.ends_with(".points.redb") {
            sizes.1 += len;
        } else if name.ends_with(".redb") {
            sizes.0 += len;
        }
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    (mib(sizes.0), mib(sizes.1))
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = bench_text_arg("--sizes")
        .unwrap_or_else(|| "10000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("--sizes takes numbers, not {s:?}"))
        })
        .collect();
    let per_host = bench_arg("--events-per-host", 100).max(1);
    let more_rounds = bench_arg("--more-rounds", 10);
    // Events `replay` folds between writes; by default all of them, so each host is written
    // once however large the fleet (the rebuild path).
    let replay_batch = bench_arg("--replay-batch", 0);
    let runs = bench_arg("--runs", 3).max(1);
    let partitions = bench_arg("--partitions", 6) as i32;
    let daemon = std::env::args().any(|a| a == "--daemon");
    // Leaves the last fleet's namespace and topics in place, to time readers on it again.
    let keep = std::env::args().any(|a| a == "--keep");
    // Skips the readers (and their figures).
    let no_readers = std::env::args().any(|a| a == "--no-readers");
    // After the projection: the live projector on the fleet, `--live-rate` changes/s for
    // `--live-secs` s (0: no live phase).
    let live_secs = bench_arg("--live-secs", 0) as u64;
    let live_rate = bench_arg("--live-rate", 1000).max(1);
    let etcd = std::env::var("HOSTLEDGER_ETCD_URL").unwrap_or_else(|_| {
        let port = std::env::var("HOSTLEDGER_STACK_DIR")
            .ok()
            .and_then(|d| std::fs::read_to_string(format!("{d}/ports")).ok())
            .and_then(|p| {
                p.lines()
                    .find_map(|l| l.strip_prefix("HOSTLEDGER_ETCD_PORT=").map(str::to_owned))
            })
            .unwrap_or_else(|| "12379".into());
        format!("http://127.0.0.1:{port}")
    });
    let binary = hostledger_binary();
    let apiserver =
        stack_pid("kube-apiserver").expect("kube-apiserver's pid in HOSTLEDGER_STACK_DIR");
    let history_server = stack_pid("history-server")
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a history server: scripts/stack history-server target/release/hostledger");
    // `--live-of ID`: only the live phase, on the fleet a `--keep` run left (`scale100000-…`,
    // its namespace without `e2e-`), starting at event `--live-round` (by default the one after
    // --events-per-host; a second run on the same fleet takes the next).
    if let Some(id) = bench_text_arg("--live-of") {
        let id = id.strip_prefix("e2e-").unwrap_or(&id).to_owned();
        let hosts = sizes.first().copied().unwrap_or(10_000);
        let round = bench_arg("--live-round", per_host);
        println!(
            "live phase on {id} ({hosts} hosts), from event {round}: {live_rate}/s for {} s",
            live_secs.max(1)
        );
        let env = TestEnv::existing(&id).await;
        reset_peak_rss(apiserver);
        let l = live(&env, &binary, hosts, round, live_rate, live_secs.max(1)).await;
        print_live(&l);
        println!(
            "kube-apiserver peak RSS during the live phase {:.0} MiB",
            peak_rss_mib(apiserver)
        );
        return;
    }
    // `--readers-of NAMESPACE`: only the readers, on a fleet a `--keep` run left (its first
    // size and --events-per-host say what it holds).
    if let Some(ns) = bench_text_arg("--readers-of") {
        let hosts = sizes.first().copied().unwrap_or(10_000);
        println!("readers on namespace {ns} ({hosts} hosts x {per_host} events), {runs} runs");
        reset_peak_rss(history_server);
        let r = readers(&binary, &ns, hosts, per_host, runs, history_server).await;
        print_readers(hosts, &r);
        return;
    }
    println!(
        "scale benchmark: sizes {sizes:?} hosts x {per_host} events; readers run {runs} times (median)"
    );
    println!(
        "(hostledger binary: {}; etcd {etcd}; kube-apiserver pid {apiserver})",
        binary.display()
    );

    // The generator makes real changes with the whole state, valid events.
    for n in 0..per_host.min(12) {
        let e = fleet_event(7, n);
        e.validate().expect("a valid event");
        assert!(
            n == 0 || !e.changes.is_empty(),
            "event {n} changes something"
        );
    }

    for hosts in sizes {
        let events = hosts * per_host;
        println!("\n== {hosts} hosts x {per_host} events = {events} events");
        let env = TestEnv::new(&format!("scale{hosts}"), partitions).await;
        etcd_compact(&etcd).await;
        let (before, _) = etcd_sizes(&etcd).await;

        let started = Instant::now();
        produce_rounds(&env, hosts, 0..per_host).await;
        println!(
            "produced {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        // Project with the real daemon until it has caught up.
        let apiserver_before = rss_mib(apiserver);
        reset_peak_rss(apiserver);
        reset_peak_rss(history_server);
        let ns = env.namespace.clone();
        let group = env.group.clone();
        let batch_size = if replay_batch > 0 {
            replay_batch
        } else {
            (hosts * (per_host + more_rounds)).max(1)
        }
        .to_string();
        // `hostledger replay` (the rebuild path: one flush per million events) by default;
        // `--daemon`: `hostledger project --until-caught-up` (batches of 5,000 events).
        let project: Vec<&str> = if daemon {
            vec![
                "project",
                "--namespace",
                &ns,
                "--group",
                &group,
                "--topic-prefix",
                &env.topic_prefix,
                "--kafka-bootstrap",
                &env.bootstrap,
                "--metrics-addr",
                "127.0.0.1:0",
                "--until-caught-up",
            ]
        } else {
            vec![
                "replay",
                "--batch-size",
                &batch_size,
                "--quiet",
                "--namespace",
                &ns,
                "--topic-prefix",
                &env.topic_prefix,
                "--kafka-bootstrap",
                &env.bootstrap,
            ]
        };
        let (projection_secs, projector_mib, out) = measured(&binary, &project).await;
        let apiserver_mib = peak_rss_mib(apiserver);
        let (raw_after, in_use_after) = etcd_sizes(&etcd).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let printed = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        let summary = printed
            .lines()
            .rev()
            .find(|l| l.contains("caught up") || l.contains("replayed"))
            .unwrap_or_default()
            .to_owned();
        println!(
            "projected in {projection_secs:.1} s (projector peak RSS {projector_mib:.0} MiB, kube-apiserver peak RSS {apiserver_mib:.0} MiB): {summary}"
        );
        if !out.status.success() {
            println!(
                "the projection did not finish: {}",
                stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            );
            println!(
                "etcd database {:.0} MiB ({:.0} MiB in use) when it stopped",
                raw_after / 1048576.0,
                in_use_after / 1048576.0
            );
            Figure::new(
                &format!("scale {hosts} hosts x {per_host}: projection"),
                f64::NAN,
                "s",
                "completes",
                Some(false),
            )
            .record();
            continue;
        }
        etcd_compact(&etcd).await;
        let (after, _) = etcd_sizes(&etcd).await;
        let growth = after - before;

        // History in etcd: the chunks, if any.
        let chunks = Api::<HostHistory>::namespaced(env.kube.clone(), &ns)
            .list_metadata(&ListParams::default())
            .await
            .map_or(0, |l| l.items.len());

        let r = if no_readers {
            None
        } else {
            Some(readers(&binary, &ns, hosts, per_host, runs, history_server).await)
        };

        // More events of the same hosts: what etcd holds must not grow with them.
        let more = hosts * more_rounds;
        let mut more_growth = f64::NAN;
        if more > 0 {
            produce_rounds(&env, hosts, per_host..per_host + more_rounds).await;
            let (secs, _, out) = measured(&binary, &project).await;
            assert!(out.status.success(), "the second projection failed");
            etcd_compact(&etcd).await;
            let (after_more, _) = etcd_sizes(&etcd).await;
            more_growth = (after_more - after) / more as f64 * 1_000_000.0;
            println!(
                "{more} more events projected in {secs:.1} s; etcd {:.1} MiB -> {:.1} MiB",
                after / 1048576.0,
                after_more / 1048576.0
            );
        }

        let mib = |b: f64| b / 1048576.0;
        println!();
        println!("{:<58} {:>14}", "figure", "value");
        let row = |name: &str, value: String| println!("{name:<58} {value:>14}");
        row(
            "etcd database before (compacted, defragmented)",
            format!("{:.0} MiB", mib(before)),
        );
        row(
            "etcd database after the projection, raw",
            format!("{:.0} MiB", mib(raw_after)),
        );
        row(
            "etcd database after (compacted, defragmented)",
            format!("{:.0} MiB", mib(after)),
        );
        row(
            "etcd growth per history entry (all objects / entries)",
            format!("{:.0} B", growth / events as f64),
        );
        row(
            "etcd growth per 1,000,000 more events (same hosts)",
            format!("{:.1} MiB", mib(more_growth)),
        );
        row("HostHistory chunks in etcd", format!("{chunks}"));
        row(
            "kube-apiserver RSS before the projection",
            format!("{apiserver_before:.0} MiB"),
        );
        row(
            "kube-apiserver peak RSS (from the projection on)",
            format!("{apiserver_mib:.0} MiB"),
        );
        row("projector peak RSS", format!("{projector_mib:.0} MiB"));

        row(
            "projection (until caught up)",
            format!("{projection_secs:.1} s"),
        );
        if let Some(r) = &r {
            print_readers(hosts, r);
        }
        let live = if live_secs > 0 {
            Some(
                live(
                    &env,
                    &binary,
                    hosts,
                    per_host + more_rounds,
                    live_rate,
                    live_secs,
                )
                .await,
            )
        } else {
            None
        };
        if let Some(l) = &live {
            print_live(l);
        }

        let figure = |name: &str| format!("scale {hosts} hosts x {per_host}: {name}");
        let gib = after / 1073741824.0;
        Figure::new(
            &figure("etcd database (compacted)"),
            gib,
            "GiB",
            "<= 1 GiB at 100,000 hosts",
            (hosts >= 100_000).then_some(gib <= 1.0),
        )
        .with_floor("before the run, GiB", before / 1073741824.0)
        .record();
        Figure::new(
            &figure("etcd bytes per history entry"),
            growth / events as f64,
            "B",
            "-",
            None,
        )
        .record();
        Figure::new(
            &figure("etcd growth per 1,000,000 more events"),
            mib(more_growth),
            "MiB",
            "history in etcd does not grow with events",
            more_growth.is_finite().then_some(mib(more_growth) < 1.0),
        )
        .record();
        Figure::new(
            &figure("kube-apiserver peak RSS"),
            apiserver_mib / 1024.0,
            "GiB",
            "<= 4 GiB at 100,000 hosts",
            (hosts >= 100_000).then_some(apiserver_mib <= 4096.0),
        )
        .record();
        Figure::new(&figure("projection"), projection_secs, "s", "-", None).record();
        if let Some(l) = &live {
            Figure::new(
                &figure("live projection, events/s applied"),
                l.applied_rate,
                "ev/s",
                &format!(
                    "keeps up with {live_rate}/s (all applied within {KEEP_UP_SECS} s of the last)"
                ),
                (hosts >= 100_000).then_some(l.keeps_up(live_rate)),
            )
            .with_floor("produced, ev/s", l.produced_rate)
            .record();
        }
        let Some(r) = r else {
            finish(env, keep).await;
            continue;
        };
        Figure::new(
            &figure("history server peak RSS"),
            r.history_server_mib / 1024.0,
            "GiB",
            "-",
            None,
        )
        .record();
        Figure::new(
            &figure("uptime"),
            r.uptime_secs,
            "s",
            "<= 3 s at 100,000 hosts",
            (hosts >= 100_000).then_some(r.uptime_secs <= 3.0),
        )
        .with_floor("from the Hosts, s", r.uptime_hosts_secs)
        .record();
        Figure::new(
            &figure("uptime --as-of"),
            r.as_of_secs,
            "s",
            "<= 10 s at 100,000 hosts",
            (hosts >= 100_000).then_some(r.as_of_secs <= 10.0),
        )
        .with_floor("from the Hosts and folds, s", r.as_of_hosts_secs)
        .record();
        Figure::new(
            &figure("history HOST"),
            r.history_secs,
            "s",
            "<= 100 ms at 100,000 hosts",
            (hosts >= 100_000).then_some(r.history_secs <= 0.1),
        )
        .record();
        Figure::new(
            &figure("ansible --list"),
            r.ansible_secs,
            "s",
            "<= 5 s cold at 100,000 hosts, the same answer as the Host objects",
            (hosts >= 100_000).then_some(r.ansible_secs <= 5.0 && r.ansible_differing == 0),
        )
        .with_floor("from the Host objects, s", r.ansible_objects_secs)
        .record();
        Figure::new(
            &figure("ansible --list, cached"),
            r.ansible_cached_secs,
            "s",
            "<= 1 s at 100,000 hosts",
            (hosts >= 100_000).then_some(r.ansible_cached_secs <= 1.0),
        )
        .record();
        Figure::new(
            &figure("prometheus-sd --watch peak RSS"),
            r.sd_watch_mib,
            "MiB",
            "bounded (what discovery reads of each Host)",
            None,
        )
        .record();
        finish(env, keep).await;
    }
}

/// Removes the fleet, or with `--keep` says where it is.
async fn finish(env: TestEnv, keep: bool) {
    if keep {
        println!(
            "kept namespace {} and topic prefix {} (--keep): readers can be timed again on it",
            env.namespace, env.topic_prefix
        );
    } else {
        env.cleanup().await;
    }
}

/// The live projector is keeping up if every event is applied this soon after the last was
/// produced.
const KEEP_UP_SECS: f64 = 10.0;

/// What the live phase measured.
struct Live {
    events: usize,
    produced_secs: f64,
    produced_rate: f64,
    applied_rate: f64,
    max_backlog: u64,
    catch_up_secs: f64,
    startup_secs: f64,
    projector_mib: f64,
}

impl Live {
    fn keeps_up(&self, rate: usize) -> bool {
        self.catch_up_secs <= KEEP_UP_SECS && self.produced_rate >= rate as f64 * 0.95
    }
}

/// One metric of a process's `/metrics` on `port`, if it answers.
async fn metric_of(port: u16, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// The live projector (`hostledger project`) on the projected fleet, starting where the log
/// ends: `rate` changes per second of existing hosts for `secs` seconds (event `round` of
/// host 0, 1, ..., then `round + 1`, ...), paced in tenths of a second. Measures how fast it
/// applies them and how far behind it falls.
async fn live(
    env: &TestEnv,
    binary: &std::path::Path,
    hosts: usize,
    round: usize,
    rate: usize,
    secs: u64,
) -> Live {
    use rdkafka::consumer::{CommitMode, Consumer as _};
    // The daemon's group starts where the log ends: what the replay built is the state.
    let topic = env.kafka.settings().topics.events.clone();
    let ends = env
        .kafka
        .watermarks_async(&topic, Duration::from_secs(30))
        .await
        .expect("watermarks");
    let mut offsets = rdkafka::TopicPartitionList::new();
    for (partition, (_, high)) in &ends {
        offsets
            .add_partition_offset(&topic, *partition, rdkafka::Offset::Offset(*high))
            .expect("offset");
    }
    // The broker refuses a commit from outside the group while the projector of a run just
    // before is still a member (until its session times out).
    let consumer = env
        .kafka
        .consumer(&env.group, None)
        .expect("a consumer of the group");
    let committing = Instant::now();
    while let Err(error) = consumer.commit(&offsets, CommitMode::Sync) {
        assert!(
            committing.elapsed() < Duration::from_secs(120),
            "commit the group's offsets at the end: {error}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .args([
            "project",
            "--namespace",
            &env.namespace,
            "--group",
            &env.group,
            "--topic-prefix",
            &env.topic_prefix,
            "--kafka-bootstrap",
            &env.bootstrap,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("HOSTLEDGER_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start hostledger project");
    let pid = child.id().unwrap_or(0);
    let applied = || metric_of(port, "hostledger_projector_events_applied_total");
    let event = |i: usize| fleet_event(i % hosts, round + i / hosts);
    // Started when it has applied a first event (it loads the Hosts, and again at its first
    // partition assignment).
    env.produce(&[event(0)]).await;
    wait_for(
        &mut child,
        "the live projector applying a first event",
        Duration::from_secs(900),
        async || applied().await.unwrap_or(0.0) >= 1.0,
    )
    .await;
    let startup_secs = started.elapsed().as_secs_f64();

    let total = rate * usize::try_from(secs).unwrap_or(usize::MAX);
    let per_tick = (rate / 10).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut sent = 1;
    let mut max_backlog = 0_u64;
    let mut projector_mib = 0.0_f64;
    let producing = Instant::now();
    // One producer for the whole phase (a new one per tick would spend the tick connecting).
    let producer = env.kafka.producer(None).expect("a producer");
    let codec = hostledger_schemas::Codec::new();
    let mut deliveries = Vec::new();
    while sent <= total {
        tick.tick().await;
        for d in deliveries.drain(..) {
            let d: rdkafka::producer::DeliveryFuture = d;
            d.await.expect("delivery future").expect("delivered");
        }
        let end = (sent + per_tick).min(total + 1);
        for i in sent..end {
            let e = event(i);
            let payload = codec.encode(&e).expect("encodes");
            let record = rdkafka::producer::FutureRecord::to(&topic)
                .key(e.host_id.as_str())
                .payload(&payload);
            deliveries.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queued"),
            );
        }
        sent = end;
        if let Some(a) = applied().await {
            max_backlog = max_backlog.max((sent as u64).saturating_sub(a as u64));
        }
        projector_mib = projector_mib.max(rss_mib(pid));
    }
    for d in deliveries {
        d.await.expect("delivery future").expect("delivered");
    }
    let produced_secs = producing.elapsed().as_secs_f64();
    let last_produced = Instant::now();
    let deadline = last_produced + Duration::from_secs(600);
    while applied().await.unwrap_or(0.0) < sent as f64 {
        assert!(
            Instant::now() < deadline,
            "the live projector did not apply every event within 600 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let catch_up_secs = last_produced.elapsed().as_secs_f64();
    let all_applied = producing.elapsed().as_secs_f64();
    let _ = child.start_kill();
    Live {
        events: total,
        produced_secs,
        produced_rate: total as f64 / produced_secs,
        applied_rate: total as f64 / all_applied,
        max_backlog,
        catch_up_secs,
        startup_secs,
        projector_mib,
    }
}

fn print_live(l: &Live) {
    println!(
        "live: {} changes produced in {:.1} s ({:.0}/s); all applied {:.2} s after the last ({:.0}/s overall); \
         largest backlog {} events; projector start-up {:.1} s (loading the Hosts), RSS {:.0} MiB",
        l.events,
        l.produced_secs,
        l.produced_rate,
        l.catch_up_secs,
        l.applied_rate,
        l.max_backlog,
        l.startup_secs,
        l.projector_mib
    );
}

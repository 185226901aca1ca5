//! `hostledger report --html` on Hosts that came through the fetcher, Kafka and the
//! projector, rendered by a real headless Chromium: the page runs its script, draws the fleet
//! chart and one timeline row per host with its service intervals, filters by label from the
//! URL, and can be screenshotted.

use std::path::{Path, PathBuf};

use hostledger_e2e::{TestEnv, run_hostledger};

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn chromium() -> PathBuf {
    std::env::var("HOSTLEDGER_CHROMIUM").map(PathBuf::from).unwrap_or_else(|_| {
        panic!("HOSTLEDGER_CHROMIUM is not set: run the tests with scripts/test, which installs Chromium")
    })
}

/// Runs headless Chromium on `url` with `args` (flags that keep it off the network and out of
/// the home directory), returning stdout.
async fn chromium_run(url: &str, args: &[&str], scratch: &Path) -> String {
    let profile = tempfile::tempdir_in(scratch).expect("profile dir");
    let out = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .env("XDG_CONFIG_HOME", profile.path())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `data-host-id`s of rows in `dom` that are not hidden.
fn visible_rows(dom: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in dom
        .split('<')
        .filter(|t| t.starts_with("g ") && t.contains("class=\"host-row\""))
    {
        if tag.contains("display: none") {
            continue;
        }
        let id = tag
            .split("data-host-id=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("row has a data-host-id");
        out.push(id.to_owned());
    }
    out
}

#[tokio::test]
async fn the_report_renders_in_chromium_with_a_row_per_host() {
    let env = TestEnv::new("report", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);
    // Three passes: log-1 in service, out, in again (two intervals); db-1 retired at the end.
    for (log_status, db_status) in [
        ("active", "active"),
        ("maintenance", "active"),
        ("active", "decommissioned"),
    ] {
        std::fs::write(
            &export,
            format!(
                "{HEADER}\
                 PX1,log-1,pdx1,hall-a,{log_status},log,observability,10.1.0.1,R650,A01\n\
                 PX2,log-2,pdx1,hall-a,active,log,observability,10.1.0.2,R650,A02\n\
                 PX3,db-1,pdx1,hall-b,{db_status},db,data,10.1.0.3,R750,B01\n"
            ),
        )
        .expect("write export");
        env.fetch_once(&config).await;
        env.project_until_caught_up().await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    }

    let page = dir.path().join("report.html");
    let page_arg = page.to_str().expect("utf-8 path");
    let printed = run_hostledger(&["report", "--html", page_arg, "--namespace", &env.namespace])
        .await
        .ok();
    assert!(printed.contains("3 hosts"), "{printed}");
    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );

    // Rendered with its script run: the chart, one row per host, intervals as bars.
    let url = format!("file://{}", page.display());
    let dom = chromium_run(&url, &["--dump-dom"], dir.path()).await;
    assert!(
        dom.contains("data-ready=\"true\""),
        "the page script ran to the end"
    );
    assert!(dom.contains("id=\"fleet-chart\"") && dom.contains("class=\"fleet-line\""));
    assert_eq!(
        visible_rows(&dom),
        ["dc/pdx1/PX1", "dc/pdx1/PX2", "dc/pdx1/PX3"]
    );
    let row_of = |id: &str| -> String {
        let start = dom.find(&format!("data-host-id=\"{id}\"")).expect("row");
        let end = dom[start..].find("</g>").expect("row end") + start;
        dom[start..end].to_owned()
    };
    assert_eq!(
        row_of("dc/pdx1/PX1").matches("class=\"interval\"").count(),
        2,
        "log-1 served twice"
    );
    assert_eq!(
        row_of("dc/pdx1/PX2").matches("class=\"interval\"").count(),
        1
    );
    assert!(row_of("dc/pdx1/PX3").contains("data-phase=\"Retired\""));

    // A filter in the URL hides the other rows.
    let filtered = chromium_run(
        &format!("{url}#filter=role%3Dlog"),
        &["--dump-dom"],
        dir.path(),
    )
    .await;
    assert_eq!(visible_rows(&filtered), ["dc/pdx1/PX1", "dc/pdx1/PX2"]);
    assert!(
        filtered.contains("<span id=\"shown-count\">2</span>"),
        "count follows the filter"
    );

    // And a screenshot: a real PNG of the rendered page.
    let shot = dir.path().join("report.png");
    chromium_run(
        &url,
        &[
            "--window-size=1280,900",
            &format!("--screenshot={}", shot.display()),
        ],
        dir.path(),
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().expect("4 bytes"));
    assert_eq!(width, 1280);
    assert!(
        png.len() > 20_000,
        "a drawn page, not a blank one ({} bytes)",
        png.len()
    );

    // A selector that matches nothing is refused, not an empty page.
    let out = run_hostledger(&[
        "report",
        "--html",
        page_arg,
        "--namespace",
        &env.namespace,
        "-l",
        "role=none",
    ])
    .await;
    assert!(out.failed().contains("no host matches the selector"));
    env.cleanup().await;
}

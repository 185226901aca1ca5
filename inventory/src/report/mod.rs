//! The HTML report: one self-contained page (inline CSS and JavaScript; no fonts, scripts
//! or images fetched) showing a fleet's time in service.
//!
//! - a header: title, as-of time, host count, hosts in service now, selector and source;
//! - `svg#fleet-chart`: hosts in service over time, a step chart computed here by
//!   [`fleet_in_service`];
//! - `svg#timeline`: one `g.host-row` per host on the same time axis, one `rect.interval` per
//!   service interval, colored by the host's current phase, with its total time in service;
//! - `input#filter`: hides rows not matching the typed text or `key=value` label terms, and
//!   reads an initial filter from the URL fragment (`#filter=role%3Dlog`).
//!
//! Rendering is pure: the same input gives the same page.
//!
//! Inside: `fleet` computes the figures (hosts in service over time, hosts per phase),
//! `axis` maps times and counts onto the page, `html` writes the page; the page's
//! stylesheet and script are `report.css` and `report.js`, included at compile time.

use std::collections::BTreeMap;

use hostledger_schemas::Timestamp;

mod axis;
mod fleet;
mod html;

pub use fleet::fleet_in_service;
pub use html::render;

/// One host on the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportHost {
    /// Kubernetes object name (unique), e.g. `dc.pdx1.sn-0001`.
    pub name: String,
    /// e.g. `dc/pdx1/SN-0001`.
    pub host_id: String,
    /// The name shown on the host's row; the object name when empty.
    pub hostname: String,
    /// The provider the host was discovered from, e.g. `dc`.
    pub provider: String,
    /// The host's region, when known.
    pub region: Option<String>,
    /// The host's role, when known.
    pub role: Option<String>,
    /// The team owning the host, when known.
    pub team: Option<String>,
    /// InService, OutOfService, Provisioning, Missing, Retired.
    pub phase: String,
    /// When the host was first seen; its row's dotted life line starts here.
    pub first_seen_at: Timestamp,
    /// Service intervals, oldest first; a `None` end means still in service at `as_of`.
    pub intervals: Vec<(Timestamp, Option<Timestamp>)>,
    /// Total time in service as of `as_of`.
    pub in_service_micros: i64,
    /// Time out of service while locked for an operation, as of `as_of`.
    pub planned_down_micros: i64,
    /// Time out of service without a lock, as of `as_of`.
    pub unplanned_down_micros: i64,
    /// The host's labels, matched by the page's `key=value` filter terms.
    pub labels: BTreeMap<String, String>,
}

impl ReportHost {
    /// The report's view of one host of a query answered as of `at`.
    pub fn from_view(h: &crate::HostView, at: Timestamp) -> Self {
        let r = &h.record;
        let (planned, unplanned) = r.downtime_micros_at(at);
        ReportHost {
            name: h.name.clone(),
            host_id: r.host_id.clone(),
            hostname: r.state.name.clone(),
            provider: r.provider.clone(),
            region: r.state.region.clone(),
            role: r.state.role.clone(),
            team: r.state.team.clone(),
            phase: r.phase.to_string(),
            first_seen_at: r.first_seen_at,
            intervals: h.intervals.iter().map(|i| (i.start, i.end)).collect(),
            in_service_micros: r.in_service_micros_at(at),
            planned_down_micros: planned,
            unplanned_down_micros: unplanned,
            labels: h.labels.clone(),
        }
    }
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    /// The page title, also its `<h1>`.
    pub title: String,
    /// Right edge of the time axis.
    pub as_of: Timestamp,
    /// Label selector used (`""` = all hosts), shown in the header.
    pub selector: String,
    /// Where the data came from, shown in the header.
    pub source: String,
    /// Sorted by host id already.
    pub hosts: Vec<ReportHost>,
}

#[cfg(test)]
mod tests {
    use super::axis::{DAY, HOUR, SECOND};
    use super::*;

    const H: i64 = HOUR;

    /// A host in `dc/pdx1` with role `log`, in service, with the given service intervals
    /// (micros).
    pub(super) fn host(id: &str, first_seen: i64, intervals: &[(i64, Option<i64>)]) -> ReportHost {
        let name = id.replace('/', ".").to_lowercase();
        ReportHost {
            name: name.clone(),
            host_id: id.to_owned(),
            hostname: format!("{name}.example"),
            provider: "dc".into(),
            region: Some("pdx1".into()),
            role: Some("log".into()),
            team: None,
            phase: "InService".into(),
            first_seen_at: Timestamp(first_seen),
            intervals: intervals
                .iter()
                .map(|&(s, e)| (Timestamp(s), e.map(Timestamp)))
                .collect(),
            in_service_micros: 0,
            planned_down_micros: 0,
            unplanned_down_micros: 0,
            labels: BTreeMap::from([
                ("provider".to_owned(), "dc".to_owned()),
                ("role".to_owned(), "log".to_owned()),
            ]),
        }
    }

    fn input(hosts: Vec<ReportHost>, as_of: i64) -> ReportInput {
        ReportInput {
            title: "Fleet".into(),
            as_of: Timestamp(as_of),
            selector: "role=log".into(),
            source: "Host objects in namespace hostledger".into(),
            hosts,
        }
    }

    #[test]
    fn render_has_one_row_per_host_and_one_rect_per_interval() {
        let mut a = host("dc/pdx1/SN-0001", 0, &[(0, Some(4 * H)), (6 * H, None)]);
        a.in_service_micros = 8 * H;
        let mut b = host("dc/pdx1/SN-0002", 2 * H, &[(3 * H, None)]);
        b.phase = "OutOfService".into();
        let c = host("dc/pdx1/SN-0003", H, &[]);
        let page = render(&input(vec![a, b, c], 10 * H));

        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("class=\"host-row\"").count(), 3);
        assert_eq!(page.matches("class=\"interval\"").count(), 3);
        for id in ["dc/pdx1/SN-0001", "dc/pdx1/SN-0002", "dc/pdx1/SN-0003"] {
            assert_eq!(page.matches(&format!("data-host-id=\"{id}\"")).count(), 1);
        }
        assert!(page.contains("data-phase=\"OutOfService\""));
        assert!(page.contains("data-labels=\"provider=dc,role=log\""));
        assert!(page.contains("data-start=\"1970-01-01T06:00:00Z\" data-end=\"\""));
        assert!(
            page.contains("data-start=\"1970-01-01T00:00:00Z\" data-end=\"1970-01-01T04:00:00Z\"")
        );
        assert!(
            page.contains(
                "<title>in service 1970-01-01 00:00 → 1970-01-01 04:00 UTC (4h 0m)</title>"
            )
        );
        assert!(page.contains(">8h 0m</text></g>"));
        for needle in [
            "<svg id=\"fleet-chart\"",
            "<path class=\"fleet-line\" d=\"M",
            "<path class=\"fleet-area\" d=\"M",
            "<svg id=\"timeline\"",
            "<input id=\"filter\"",
            "<span id=\"shown-count\">3</span>",
            "<b id=\"host-count\">3</b>",
            "<span id=\"in-service-count\">2</span>",
            "<time id=\"as-of\" datetime=\"1970-01-01T10:00:00Z\">1970-01-01 10:00 UTC</time>",
            "<code>role=log</code>",
            "Host objects in namespace hostledger",
            "[[0,1],[10800000,2],[14400000,1],[21600000,2],[36000000,2]]",
        ] {
            assert!(page.contains(needle), "missing {needle}");
        }
        assert!(!page.contains("no hosts match"));
        // Nothing fetched from anywhere.
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains(" src=") && !page.contains("<link"));
    }

    #[test]
    fn render_inlines_the_stylesheet_and_the_script() {
        let css = include_str!("report.css");
        let js = include_str!("report.js");
        assert!(css.contains(".host-row:hover") && js.contains("function setupFilter()"));
        for page in [
            render(&input(Vec::new(), H)),
            render(&input(vec![host("dc/pdx1/A", 0, &[(0, None)])], H)),
        ] {
            assert_eq!(
                page.matches(&format!("<style>\n{css}</style>\n")).count(),
                1
            );
            assert_eq!(
                page.matches(&format!("<script>\n{js}</script>\n")).count(),
                1
            );
        }
    }

    #[test]
    fn render_escapes_hostile_text_everywhere() {
        let evil = r#"<script>alert("x")</script>&"#;
        let mut h = host("dc/pdx1/<blink>", 0, &[(0, None)]);
        h.hostname = evil.to_owned();
        h.name = format!("n\"{evil}");
        h.phase = "In\"Service<".into();
        h.labels.insert("k<'>".into(), evil.into());
        let mut inp = input(vec![h], H);
        inp.title = evil.into();
        inp.selector = evil.into();
        inp.source = evil.into();
        let page = render(&inp);
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<blink>"));
        assert!(!page.contains("k<'>"));
        // The only scripts are the page's own two.
        assert_eq!(page.matches("<script").count(), 2);
        assert_eq!(page.matches("</script>").count(), 2);
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;"));
        assert!(page.contains("data-phase=\"In&quot;Service&lt;\""));
        assert_eq!(page.matches("class=\"host-row\"").count(), 1);
    }

    #[test]
    fn render_empty_input_says_no_hosts_match() {
        let page = render(&input(Vec::new(), 1_795_772_000 * SECOND));
        assert!(page.contains("no hosts match"));
        assert!(page.contains("<svg id=\"fleet-chart\""));
        assert!(page.contains("<svg id=\"timeline\""));
        assert!(page.contains("<span id=\"shown-count\">0</span>"));
        assert!(page.contains("<b id=\"host-count\">0</b>"));
        assert_eq!(page.matches("class=\"host-row\"").count(), 0);
        assert!(page.trim_end().ends_with("</html>"));
    }

    /// About `n` synthetic hosts over 90 days, deterministic.
    fn synthetic(n: usize) -> ReportInput {
        let as_of = 1_795_772_000 * SECOND;
        let start = as_of - 90 * DAY;
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = move |below: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below.max(1) as u64) as i64
        };
        let roles = ["log", "db", "web", "batch", "cache"];
        let teams = ["infra", "data", "search"];
        let mut hosts: Vec<ReportHost> = (0..n)
            .map(|i| {
                let id = format!("dc/pdx{}/SN-{:04}", 1 + i % 2, i + 1);
                let role = roles[rand(5) as usize];
                let team = teams[rand(3) as usize];
                let first = start + rand(60 * DAY);
                let mut t = first + rand(3 * DAY);
                let mut intervals = Vec::new();
                let mut total = 0;
                while t < as_of {
                    let len = 2 * H + rand(40 * DAY);
                    if t + len >= as_of || rand(6) == 0 && intervals.len() > 1 {
                        if rand(4) != 0 {
                            intervals.push((Timestamp(t), None));
                            total += as_of - t;
                        }
                        break;
                    }
                    intervals.push((Timestamp(t), Some(Timestamp(t + len))));
                    total += len;
                    t += len + H + rand(6 * DAY);
                }
                let open = intervals.last().is_some_and(|i| i.1.is_none());
                let phase = match (open, rand(4)) {
                    (true, _) => "InService",
                    (false, 0) => "Retired",
                    (false, 1) => "Missing",
                    (false, 2) if intervals.is_empty() => "Provisioning",
                    _ => "OutOfService",
                };
                let mut h = host(&id, first, &[]);
                h.hostname = format!("{role}-{:04}.pdx{}.example.net", i + 1, 1 + i % 2);
                h.role = Some(role.into());
                h.team = Some(team.into());
                h.phase = phase.into();
                h.intervals = intervals;
                h.in_service_micros = total;
                h.labels = BTreeMap::from([
                    ("provider".into(), "dc".into()),
                    ("region".into(), format!("pdx{}", 1 + i % 2)),
                    ("role".into(), role.into()),
                    ("team".into(), team.into()),
                    ("phase".into(), phase.into()),
                ]);
                h
            })
            .collect();
        hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        ReportInput {
            title: "hostledger: time in service".into(),
            as_of: Timestamp(as_of),
            selector: String::new(),
            source: "Host objects in namespace hostledger".into(),
            hosts,
        }
    }

    #[test]
    fn render_scales_to_ten_thousand_hosts() {
        let inp = synthetic(10_000);
        let intervals: usize = inp.hosts.iter().map(|h| h.intervals.len()).sum();
        let page = render(&inp);
        assert_eq!(page.matches("class=\"host-row\"").count(), 10_000);
        assert_eq!(page.matches("class=\"interval\"").count(), intervals);
        // About a kilobyte a row, a quarter of one an interval.
        let budget = 20_000 + 10_000 * 1_200 + intervals * 250;
        assert!(
            page.len() < budget,
            "{} bytes, {intervals} intervals",
            page.len()
        );
    }

    /// Writes a sample page to look at: `cargo test -p hostledger-inventory --lib
    /// report::tests::write_sample_page -- --ignored` (path: `$REPORT_SAMPLE` or the temp dir;
    /// `$REPORT_SAMPLE_HOSTS` hosts, 30 by default).
    #[test]
    #[ignore]
    fn write_sample_page() {
        let path = std::env::var_os("REPORT_SAMPLE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("report-sample.html"));
        let hosts = std::env::var("REPORT_SAMPLE_HOSTS").map_or(30, |n| n.parse().unwrap());
        std::fs::write(&path, render(&synthetic(hosts))).unwrap();
        eprintln!("wrote {}", path.display());
    }
}

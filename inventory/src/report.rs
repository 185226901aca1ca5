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

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Datelike, Months, NaiveDate};
use hostledger_schemas::Timestamp;

/// One host on the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportHost {
    /// Kubernetes object name (unique), e.g. `dc.pdx1.sn-0001`.
    pub name: String,
    /// e.g. `dc/pdx1/SN-0001`.
    pub host_id: String,
    pub hostname: String,
    pub provider: String,
    pub region: Option<String>,
    pub role: Option<String>,
    pub team: Option<String>,
    /// InService, OutOfService, Provisioning, Missing, Retired.
    pub phase: String,
    pub first_seen_at: Timestamp,
    /// Service intervals, oldest first; a `None` end means still in service at `as_of`.
    pub intervals: Vec<(Timestamp, Option<Timestamp>)>,
    /// Total time in service as of `as_of`.
    pub in_service_micros: i64,
    pub labels: BTreeMap<String, String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
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

/// Fleet size in service over time: step points `(time, hosts in service)` from all
/// intervals, starting at the earliest `first_seen_at` (or interval start), ending at `as_of`.
///
/// Each point holds from its time until the next point's. Intervals are half-open: a host whose
/// interval ends at `t` no longer counts at `t`. Interval ends after `as_of` count as open, and
/// intervals starting after `as_of` are ignored. Without hosts: `[(as_of, 0)]`.
pub fn fleet_in_service(hosts: &[ReportHost], as_of: Timestamp) -> Vec<(Timestamp, u64)> {
    let mut start = as_of.0;
    let mut deltas: BTreeMap<i64, i64> = BTreeMap::new();
    for host in hosts {
        start = start.min(host.first_seen_at.0);
        for &(from, to) in &host.intervals {
            let empty = to.is_some_and(|to| to.0 <= from.0);
            if from.0 > as_of.0 || empty {
                continue;
            }
            start = start.min(from.0);
            *deltas.entry(from.0).or_default() += 1;
            if let Some(to) = to
                && to.0 <= as_of.0
            {
                *deltas.entry(to.0).or_default() -= 1;
            }
        }
    }
    let mut points: Vec<(Timestamp, u64)> = vec![(Timestamp(start), 0)];
    let mut count: i64 = 0;
    for (t, delta) in deltas {
        if delta == 0 {
            continue;
        }
        count += delta;
        let n = count.max(0) as u64;
        match points.last_mut() {
            Some(last) if last.0.0 == t => last.1 = n,
            Some(last) if last.1 == n => {}
            _ => points.push((Timestamp(t), n)),
        }
    }
    if points.last().is_some_and(|p| p.0.0 < as_of.0) {
        let n = points.last().map_or(0, |p| p.1);
        points.push((as_of, n));
    }
    points
}

// ---------------------------------------------------------------------------------------
// Layout (SVG user units = CSS pixels).

const WIDTH: f64 = 1200.0;
/// Left edge of the time axis; the host names are left of it.
const PLOT_X0: f64 = 232.0;
/// Right edge of the time axis; the totals are right of it.
const PLOT_X1: f64 = 1108.0;
const ROW_H: f64 = 18.0;
const BAR_Y: f64 = 4.0;
const BAR_H: f64 = 10.0;
const CHART_H: f64 = 230.0;
const CHART_TOP: f64 = 16.0;
const CHART_ZERO: f64 = 200.0;
const AXIS_H: f64 = 24.0;
/// Host names longer than this many characters are cut with an ellipsis.
const LABEL_CHARS: usize = 30;

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The phases with a color, in legend order.
const PHASES: [&str; 5] = [
    "InService",
    "OutOfService",
    "Provisioning",
    "Missing",
    "Retired",
];

/// The time axis: micros `t0..=t1` onto x `PLOT_X0..=PLOT_X1`.
#[derive(Debug, Clone, Copy)]
struct Axis {
    t0: i64,
    t1: i64,
}

impl Axis {
    fn new(input: &ReportInput, fleet: &[(Timestamp, u64)]) -> Self {
        let t1 = input.as_of.0;
        let mut t0 = fleet.first().map_or(t1, |p| p.0.0);
        if input.hosts.is_empty() {
            t0 = t1.saturating_sub(30 * DAY);
        }
        // At least a minute, and a little room before the first point.
        if t1.saturating_sub(t0) < MINUTE {
            t0 = t1.saturating_sub(MINUTE);
        }
        t0 = t0.saturating_sub((t1 - t0) / 50);
        Axis { t0, t1 }
    }

    fn x(&self, t: i64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        let span = (self.t1 - self.t0) as f64;
        PLOT_X0 + (t - self.t0) as f64 / span * (PLOT_X1 - PLOT_X0)
    }

    /// Tick times with their labels: 4 to 10 of them, at round UTC times.
    fn ticks(&self) -> Vec<(i64, String)> {
        let span = self.t1 - self.t0;
        const FIXED: [i64; 18] = [
            5 * SECOND,
            10 * SECOND,
            15 * SECOND,
            30 * SECOND,
            MINUTE,
            5 * MINUTE,
            15 * MINUTE,
            30 * MINUTE,
            HOUR,
            2 * HOUR,
            3 * HOUR,
            6 * HOUR,
            12 * HOUR,
            DAY,
            2 * DAY,
            7 * DAY,
            14 * DAY,
            // Sentinel: longer spans use calendar months.
            i64::MAX,
        ];
        let step = FIXED
            .into_iter()
            .find(|s| span / s <= 10)
            .unwrap_or(i64::MAX);
        if step == i64::MAX {
            return self.month_ticks();
        }
        // Weeks start on Monday; the epoch was a Thursday.
        let offset = if step >= 7 * DAY { 4 * DAY } else { 0 };
        let format = if step >= DAY {
            "%Y-%m-%d"
        } else if step >= MINUTE {
            "%m-%d %H:%M"
        } else {
            "%H:%M:%S"
        };
        let mut t = (self.t0 - offset).div_euclid(step) * step + offset;
        if t < self.t0 {
            t += step;
        }
        let mut ticks = Vec::new();
        while t <= self.t1 {
            ticks.push((t, format_time(Timestamp(t), format)));
            t += step;
        }
        ticks
    }

    fn month_ticks(&self) -> Vec<(i64, String)> {
        let (Some(first), Some(last)) = (
            Timestamp(self.t0).to_datetime(),
            Timestamp(self.t1).to_datetime(),
        ) else {
            return Vec::new();
        };
        let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
        let span = months(last.date_naive()) - months(first.date_naive());
        let step = [1, 2, 3, 6, 12, 24, 60, 120, 600, 1200]
            .into_iter()
            .find(|s| span / s <= 9)
            .unwrap_or(12_000);
        let Some(mut day) = NaiveDate::from_ymd_opt(first.year(), first.month(), 1) else {
            return Vec::new();
        };
        let mut ticks = Vec::new();
        while ticks.len() < 100 {
            let t = day
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc().timestamp_micros());
            let Some(t) = t else { break };
            if t > self.t1 {
                break;
            }
            if t >= self.t0 && months(day) % step == 0 {
                ticks.push((t, day.format("%Y-%m-%d").to_string()));
            }
            let Some(next) = day.checked_add_months(Months::new(1)) else {
                break;
            };
            day = next;
        }
        ticks
    }
}

/// Y-axis for counts: `(top value, tick step)`, both round, with at most 5 steps.
fn count_axis(max: u64) -> (u64, u64) {
    let mut unit = 1u64;
    loop {
        for step in [unit, 2 * unit, 5 * unit] {
            if max.div_ceil(step) <= 5 {
                return ((max.div_ceil(step)).max(1) * step, step);
            }
        }
        unit = unit.saturating_mul(10);
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers.

/// Text safe in HTML text and in double- or single-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in microseconds as `3d 4h`, `5h 12m`, `7m 3s` or `42s`.
fn duration(micros: i64) -> String {
    let secs = micros.max(0) / SECOND;
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn format_time(t: Timestamp, format: &str) -> String {
    t.to_datetime()
        .map_or_else(|| format!("{}us", t.0), |d| d.format(format).to_string())
}

/// A time as `2026-11-27 09:30` (UTC).
fn short_time(t: Timestamp) -> String {
    format_time(t, "%Y-%m-%d %H:%M")
}

/// The text cut to `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn labels_attr(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

// `write!` to a String cannot fail.
macro_rules! w {
    ($($arg:tt)*) => {
        let _ = write!($($arg)*);
    };
}

// ---------------------------------------------------------------------------------------
// The page.

/// The whole report as one HTML document.
pub fn render(input: &ReportInput) -> String {
    let fleet = fleet_in_service(&input.hosts, input.as_of);
    let axis = Axis::new(input, &fleet);
    let ticks = axis.ticks();
    let in_service_now = fleet.last().map_or(0, |p| p.1);
    let total = input.hosts.len();

    let mut out = String::with_capacity(8_192 + total * 900);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"generator\" content=\"hostledger\">\n");
    w!(out, "<title>{}</title>\n", escape(&input.title));
    w!(out, "<style>{CSS}</style>\n</head>\n<body>\n<main>\n");

    header(&mut out, input, in_service_now);
    fleet_chart(&mut out, &fleet, axis, &ticks, input.hosts.is_empty());
    timeline(&mut out, input, axis, &ticks);

    out.push_str("</main>\n<div id=\"fleet-tip\" class=\"tip\" hidden></div>\n");
    w!(out, "<script>{JS}</script>\n</body>\n</html>\n");
    out
}

fn header(out: &mut String, input: &ReportInput, in_service_now: u64) {
    let total = input.hosts.len();
    out.push_str("<header id=\"report-header\">\n");
    w!(
        out,
        "<h1 id=\"report-title\">{}</h1>\n",
        escape(&input.title)
    );
    let selector = if input.selector.is_empty() {
        "<span class=\"none\">all hosts</span>".to_owned()
    } else {
        format!("<code>{}</code>", escape(&input.selector))
    };
    w!(
        out,
        "<p class=\"meta\">as of <time id=\"as-of\" datetime=\"{}\">{} UTC</time> \
         · selector <span id=\"selector\">{selector}</span> \
         · source <span id=\"source\">{}</span></p>\n",
        escape(&input.as_of.to_string()),
        escape(&short_time(input.as_of)),
        escape(&input.source),
    );
    let share = if total == 0 {
        String::new()
    } else {
        format!(
            " <small>{:.0}%</small>",
            in_service_now as f64 * 100.0 / total as f64
        )
    };
    out.push_str("<div class=\"stats\">\n");
    w!(
        out,
        "<div class=\"stat\"><b id=\"host-count\">{total}</b><span>hosts</span></div>\n"
    );
    w!(
        out,
        "<div class=\"stat\"><b><span id=\"in-service-count\">{in_service_now}</span>{share}</b>\
         <span>in service now</span></div>\n"
    );
    // Legend: every known phase, then any other phase found, with its count.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for host in &input.hosts {
        *counts.entry(host.phase.as_str()).or_default() += 1;
    }
    out.push_str("<ul id=\"legend\" class=\"legend\">\n");
    let others = counts.keys().copied().filter(|p| !PHASES.contains(p));
    for phase in PHASES.into_iter().chain(others) {
        let n = counts.get(phase).copied().unwrap_or(0);
        w!(
            out,
            "<li data-phase=\"{p}\"><i class=\"swatch\"></i>{p} <b>{n}</b></li>\n",
            p = escape(phase)
        );
    }
    out.push_str("</ul>\n</div>\n</header>\n");
}

fn fleet_chart(
    out: &mut String,
    fleet: &[(Timestamp, u64)],
    axis: Axis,
    ticks: &[(i64, String)],
    empty: bool,
) {
    let max = fleet.iter().map(|p| p.1).max().unwrap_or(0);
    let (top, step) = count_axis(max);
    let y = |n: u64| CHART_ZERO - n as f64 / top as f64 * (CHART_ZERO - CHART_TOP);

    out.push_str("<section class=\"panel\">\n<h2>Hosts in service</h2>\n");
    w!(
        out,
        "<svg id=\"fleet-chart\" width=\"{WIDTH}\" height=\"{CHART_H}\" \
         viewBox=\"0 0 {WIDTH} {CHART_H}\" role=\"img\" aria-label=\"hosts in service over time\" \
         data-t0=\"{}\" data-t1=\"{}\" data-x0=\"{PLOT_X0}\" data-x1=\"{PLOT_X1}\">\n",
        axis.t0 / 1000,
        axis.t1 / 1000,
    );
    out.push_str("<g class=\"grid\">\n");
    let mut n = 0;
    while n <= top {
        w!(
            out,
            "<line x1=\"{PLOT_X0}\" x2=\"{PLOT_X1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\n",
            y = y(n)
        );
        n += step;
    }
    for (t, _) in ticks {
        w!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{CHART_TOP}\" y2=\"{CHART_ZERO}\"/>\n",
            x = axis.x(*t)
        );
    }
    out.push_str("</g>\n<g class=\"y-axis\">\n");
    let mut n = 0;
    while n <= top {
        w!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{n}</text>\n",
            PLOT_X0 - 8.0,
            y(n) + 4.0
        );
        n += step;
    }
    out.push_str("</g>\n<g class=\"x-axis\">\n");
    for (t, label) in ticks {
        w!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            axis.x(*t),
            CHART_ZERO + 18.0,
            escape(label)
        );
    }
    out.push_str("</g>\n");

    // The step line, and the area under it.
    let mut line = String::new();
    if let Some(&(t, n)) = fleet.first() {
        w!(line, "M{:.1} {:.1}", axis.x(t.0), y(n));
        for &(t, n) in &fleet[1..] {
            w!(line, "H{:.1}V{:.1}", axis.x(t.0), y(n));
        }
    }
    let area = step_area(fleet, axis, y);
    w!(out, "<path class=\"fleet-area\" d=\"{area}\"/>\n");
    w!(out, "<path class=\"fleet-line\" d=\"{line}\"/>\n");
    w!(
        out,
        "<line class=\"baseline\" x1=\"{PLOT_X0}\" x2=\"{PLOT_X1}\" y1=\"{CHART_ZERO}\" y2=\"{CHART_ZERO}\"/>\n"
    );
    if let Some(&(_, n)) = fleet.last().filter(|_| !empty) {
        w!(
            out,
            "<text class=\"fleet-now\" x=\"{:.1}\" y=\"{:.1}\">{n}</text>\n",
            PLOT_X1 + 6.0,
            y(n) + 4.0
        );
    }
    if empty {
        w!(
            out,
            "<text class=\"empty-note\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no hosts match</text>\n",
            (PLOT_X0 + PLOT_X1) / 2.0,
            (CHART_TOP + CHART_ZERO) / 2.0
        );
    }
    w!(
        out,
        "<line class=\"hover-line\" x1=\"0\" x2=\"0\" y1=\"{CHART_TOP}\" y2=\"{CHART_ZERO}\" style=\"display:none\"/>\n"
    );
    out.push_str("</svg>\n");

    // The step points for the hover read-out: [unix millis, hosts in service].
    out.push_str("<script type=\"application/json\" id=\"fleet-data\">[");
    for (i, (t, n)) in fleet.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        w!(out, "[{},{n}]", t.0 / 1000);
    }
    out.push_str("]</script>\n</section>\n");
}

/// The area under the step line, closed along the zero line.
fn step_area(fleet: &[(Timestamp, u64)], axis: Axis, y: impl Fn(u64) -> f64) -> String {
    let mut d = String::new();
    let Some(&(t, _)) = fleet.first() else {
        return d;
    };
    w!(d, "M{:.1} {CHART_ZERO:.1}", axis.x(t.0));
    for (i, &(t, n)) in fleet.iter().enumerate() {
        if i > 0 {
            w!(d, "H{:.1}", axis.x(t.0));
        }
        w!(d, "V{:.1}", y(n));
    }
    w!(d, "V{CHART_ZERO:.1}Z");
    d
}

fn timeline(out: &mut String, input: &ReportInput, axis: Axis, ticks: &[(i64, String)]) {
    let total = input.hosts.len();
    out.push_str("<section class=\"panel\">\n<div class=\"sticky\">\n<div class=\"toolbar\">\n");
    out.push_str("<h2>Hosts</h2>\n");
    out.push_str(
        "<input id=\"filter\" type=\"search\" autocomplete=\"off\" spellcheck=\"false\" \
         placeholder=\"Filter: text, or key=value labels (role=log team=infra)\" \
         aria-label=\"filter hosts\">\n",
    );
    w!(
        out,
        "<span class=\"count\"><span id=\"shown-count\">{total}</span> of \
         <span id=\"total-count\">{total}</span> hosts shown</span>\n"
    );
    out.push_str("</div>\n");

    // The axis above the rows: column titles and tick labels.
    w!(
        out,
        "<svg id=\"timeline-axis\" width=\"{WIDTH}\" height=\"{AXIS_H}\" viewBox=\"0 0 {WIDTH} {AXIS_H}\">\n"
    );
    w!(
        out,
        "<text class=\"col\" x=\"22\" y=\"16\">hostname</text>\n\
         <text class=\"col\" x=\"{:.1}\" y=\"16\" text-anchor=\"end\">in service</text>\n",
        WIDTH - 8.0
    );
    for (t, label) in ticks {
        w!(
            out,
            "<text x=\"{:.1}\" y=\"16\" text-anchor=\"middle\">{}</text>\n",
            axis.x(*t),
            escape(label)
        );
    }
    out.push_str("</svg>\n</div>\n");

    if input.hosts.is_empty() {
        let why = if input.selector.is_empty() {
            String::new()
        } else {
            format!(" the selector <code>{}</code>", escape(&input.selector))
        };
        w!(
            out,
            "<p id=\"empty\" class=\"empty\">no hosts match{why}</p>\n"
        );
    }
    out.push_str("<p id=\"no-match\" class=\"empty\" hidden>No host matches the filter.</p>\n");

    let height = total as f64 * ROW_H;
    w!(
        out,
        "<svg id=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         data-row-height=\"{ROW_H}\">\n<g class=\"grid\">\n"
    );
    for (t, _) in ticks {
        w!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"100%\"/>\n",
            x = axis.x(*t)
        );
    }
    out.push_str("</g>\n<g id=\"rows\">\n");
    for (i, host) in input.hosts.iter().enumerate() {
        host_row(out, host, i, axis, input.as_of);
    }
    out.push_str("</g>\n</svg>\n</section>\n");
}

fn host_row(out: &mut String, host: &ReportHost, index: usize, axis: Axis, as_of: Timestamp) {
    let y = index as f64 * ROW_H;
    let shown_name = if host.hostname.is_empty() {
        &host.name
    } else {
        &host.hostname
    };
    w!(
        out,
        "<g class=\"host-row\" data-host-id=\"{}\" data-name=\"{}\" data-hostname=\"{}\" \
         data-labels=\"{}\" data-phase=\"{}\" transform=\"translate(0,{y})\">",
        escape(&host.host_id),
        escape(&host.name),
        escape(&host.hostname),
        escape(&labels_attr(&host.labels)),
        escape(&host.phase),
    );
    let odd = if index % 2 == 1 { " odd" } else { "" };
    w!(
        out,
        "<rect class=\"row-bg{odd}\" width=\"{WIDTH}\" height=\"{ROW_H}\"/>\
         <circle class=\"dot\" cx=\"12\" cy=\"9\" r=\"4\"/>"
    );

    // The label, with the host's details as its tooltip.
    let mut details = format!(
        "{}\n{} ({})\n{}",
        shown_name, host.host_id, host.name, host.phase
    );
    w!(
        details,
        ", first seen {} UTC\n",
        short_time(host.first_seen_at)
    );
    w!(details, "provider {}", host.provider);
    for (key, value) in [
        ("region", &host.region),
        ("role", &host.role),
        ("team", &host.team),
    ] {
        if let Some(value) = value {
            w!(details, ", {key} {value}");
        }
    }
    for (k, v) in &host.labels {
        w!(details, "\n{k}={v}");
    }
    w!(
        out,
        "<text class=\"host-label\" x=\"22\" y=\"13\">{}<title>{}</title></text>",
        escape(&truncate(shown_name, LABEL_CHARS)),
        escape(&details)
    );

    // The host's life on the axis, then its service intervals over it.
    w!(
        out,
        "<line class=\"life\" x1=\"{:.1}\" x2=\"{PLOT_X1}\" y1=\"9\" y2=\"9\"/>",
        axis.x(host.first_seen_at.0)
    );
    for &(start, end) in &host.intervals {
        let until = end.unwrap_or(as_of);
        let x0 = axis.x(start.0);
        let width = (axis.x(until.0) - x0).max(1.0);
        let ends = match end {
            Some(end) => format!("{} UTC", short_time(end)),
            None => format!("still in service at {} UTC", short_time(as_of)),
        };
        w!(
            out,
            "<rect class=\"interval\" x=\"{x0:.1}\" y=\"{BAR_Y}\" width=\"{width:.1}\" height=\"{BAR_H}\" \
             rx=\"2\" data-start=\"{}\" data-end=\"{}\"><title>in service {} → {} ({})</title></rect>",
            escape(&start.to_string()),
            end.map(|e| escape(&e.to_string())).unwrap_or_default(),
            short_time(start),
            ends,
            duration(until.0.saturating_sub(start.0)),
        );
    }
    w!(
        out,
        "<text class=\"total\" x=\"{:.1}\" y=\"13\" text-anchor=\"end\">{}</text></g>\n",
        WIDTH - 8.0,
        duration(host.in_service_micros)
    );
}

const CSS: &str = r#"
:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1f2328; --muted: #656d76; --line: #e4e7eb;
  --grid: #eceef1; --accent: #2f74d0;
  --InService: #2da44e; --OutOfService: #d9930d; --Provisioning: #2f74d0;
  --Missing: #9aa0a6; --Retired: #a4262c; --other: #6e7781;
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body {
  margin: 0; color: var(--ink);
  font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
main { width: 1200px; margin: 0 auto; padding: 24px 0 48px; }
h1 { font-size: 22px; font-weight: 600; margin: 0 0 2px; letter-spacing: -0.01em; }
h2 { font-size: 14px; font-weight: 600; margin: 0; padding: 12px 16px 4px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #eef1f4; padding: 1px 5px; border-radius: 4px; }
.meta { color: var(--muted); margin: 0 0 14px; }
.meta .none { font-style: italic; }
.stats { display: flex; align-items: stretch; gap: 12px; flex-wrap: wrap; }
.stat { background: var(--panel); border-radius: 8px; padding: 8px 16px;
  box-shadow: 0 0 0 1px var(--line), 0 1px 2px rgba(31,35,40,.04); min-width: 120px; }
.stat b { display: block; font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat b small { font-size: 13px; font-weight: 400; color: var(--muted); }
.stat > span { color: var(--muted); }
.legend { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 16px; list-style: none;
  margin: 0; padding: 8px 16px; background: var(--panel); border-radius: 8px;
  box-shadow: 0 0 0 1px var(--line), 0 1px 2px rgba(31,35,40,.04); flex: 1; }
.legend li { white-space: nowrap; color: var(--muted); }
.legend li b { color: var(--ink); font-weight: 600; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  margin-right: 6px; vertical-align: -1px; background: var(--other); }
.panel { background: var(--panel); border-radius: 8px; margin-top: 16px;
  box-shadow: 0 0 0 1px var(--line), 0 1px 2px rgba(31,35,40,.04); }
svg { display: block; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  fill: var(--muted); }
.grid line { stroke: var(--grid); stroke-width: 1; shape-rendering: crispEdges; }
.baseline { stroke: #c9ced4; shape-rendering: crispEdges; }
.fleet-line { fill: none; stroke: var(--InService); stroke-width: 1.75; stroke-linejoin: round; }
.fleet-area { fill: var(--InService); fill-opacity: .12; }
.hover-line { stroke: var(--ink); stroke-opacity: .35; stroke-dasharray: 3 3; }
.fleet-now { font-weight: 600; fill: var(--InService); font-size: 12px; }
.empty-note { font-size: 14px; fill: var(--muted); }
.tip { position: absolute; pointer-events: none; background: #1f2328; color: #fff; font-size: 12px;
  padding: 4px 8px; border-radius: 4px; white-space: nowrap; z-index: 10; }
.sticky { position: sticky; top: 0; z-index: 2; background: var(--panel);
  border-radius: 8px 8px 0 0; border-bottom: 1px solid var(--line); }
.toolbar { display: flex; align-items: center; gap: 14px; padding: 8px 16px 4px 0; }
.toolbar h2 { padding: 0 0 0 16px; }
#filter { flex: 0 0 420px; font: inherit; padding: 6px 10px; border: 1px solid #d0d7de;
  border-radius: 6px; background: #fff; color: var(--ink); outline: none; }
#filter:focus { border-color: var(--accent); box-shadow: 0 0 0 3px rgba(47,116,208,.15); }
.count { color: var(--muted); font-variant-numeric: tabular-nums; }
#timeline-axis .col { font-weight: 600; fill: var(--ink); }
.empty { margin: 0; padding: 18px 16px; color: var(--muted); font-size: 14px; }
#timeline { margin-bottom: 6px; }
.row-bg { fill: transparent; }
.row-bg.odd { fill: #fafbfc; }
.host-row:hover .row-bg { fill: #eef4fc; }
.host-label { font-size: 12px; fill: var(--ink); }
.total { font-size: 12px; fill: var(--ink); font-variant-numeric: tabular-nums; }
.life { stroke: #d3d8de; stroke-width: 1; stroke-dasharray: 2 3; }
.dot, .interval { fill: var(--other); }
.interval:hover { fill-opacity: .75; }
[data-phase="InService"] .dot, [data-phase="InService"] .interval, [data-phase="InService"] .swatch { fill: var(--InService); background: var(--InService); }
[data-phase="OutOfService"] .dot, [data-phase="OutOfService"] .interval, [data-phase="OutOfService"] .swatch { fill: var(--OutOfService); background: var(--OutOfService); }
[data-phase="Provisioning"] .dot, [data-phase="Provisioning"] .interval, [data-phase="Provisioning"] .swatch { fill: var(--Provisioning); background: var(--Provisioning); }
[data-phase="Missing"] .dot, [data-phase="Missing"] .interval, [data-phase="Missing"] .swatch { fill: var(--Missing); background: var(--Missing); }
[data-phase="Retired"] .dot, [data-phase="Retired"] .interval, [data-phase="Retired"] .swatch { fill: var(--Retired); background: var(--Retired); }
"#;

const JS: &str = r#"
(function () {
  'use strict';

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function fmt(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) +
      ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
  }

  // Filter terms: whitespace or comma separated; key=value (or key==value, key!=value)
  // terms match labels exactly, other terms match the name, hostname, host id or labels.
  function parse(query) {
    return query.toLowerCase().split(/[\s,]+/).filter(Boolean).map(function (t) {
      var i = t.indexOf('=');
      if (i <= 0) return { text: t };
      var not = t.charAt(i - 1) === '!';
      var key = t.slice(0, not ? i - 1 : i);
      var value = t.slice(i + 1);
      if (value.charAt(0) === '=') value = value.slice(1);
      if (!key) return { text: t };
      return { key: key, value: value, not: not };
    });
  }

  function matches(row, term) {
    if (term.text !== undefined) return row.hay.indexOf(term.text) >= 0;
    var has = Object.prototype.hasOwnProperty.call(row.labels, term.key) &&
      row.labels[term.key] === term.value;
    return term.not ? !has : has;
  }

  function setupFilter() {
    var input = document.getElementById('filter');
    var svg = document.getElementById('timeline');
    var shown = document.getElementById('shown-count');
    var noMatch = document.getElementById('no-match');
    if (!input || !svg) return;
    var rowHeight = Number(svg.getAttribute('data-row-height')) || 18;
    var width = svg.getAttribute('width');
    var rows = Array.prototype.map.call(svg.querySelectorAll('.host-row'), function (g) {
      var raw = g.getAttribute('data-labels') || '';
      var labels = Object.create(null);
      raw.split(',').forEach(function (kv) {
        if (!kv) return;
        var i = kv.indexOf('=');
        if (i < 0) labels[kv.toLowerCase()] = '';
        else labels[kv.slice(0, i).toLowerCase()] = kv.slice(i + 1).toLowerCase();
      });
      var hay = [g.getAttribute('data-name'), g.getAttribute('data-hostname'),
        g.getAttribute('data-host-id'), raw].join('\n').toLowerCase();
      return { g: g, bg: g.querySelector('.row-bg'), labels: labels, hay: hay, y: null, odd: null };
    });

    function apply(query) {
      var terms = parse(query || '');
      var n = 0;
      rows.forEach(function (row) {
        var ok = terms.every(function (t) { return matches(row, t); });
        if (!ok) {
          row.g.style.display = 'none';
          return;
        }
        row.g.style.display = '';
        var y = n * rowHeight;
        if (row.y !== y) {
          row.g.setAttribute('transform', 'translate(0,' + y + ')');
          row.y = y;
        }
        var odd = n % 2 === 1;
        if (row.bg && row.odd !== odd) {
          row.bg.setAttribute('class', odd ? 'row-bg odd' : 'row-bg');
          row.odd = odd;
        }
        n += 1;
      });
      var h = rows.length ? Math.max(n, 1) * rowHeight : 0;
      svg.setAttribute('height', h);
      svg.setAttribute('viewBox', '0 0 ' + width + ' ' + h);
      if (shown) shown.textContent = String(n);
      if (noMatch) noMatch.hidden = !(rows.length > 0 && n === 0);
    }

    function fromHash() {
      var h = location.hash.replace(/^#/, '');
      if (!h) return '';
      try {
        return new URLSearchParams(h).get('filter') || '';
      } catch (e) {
        return '';
      }
    }

    function toHash(value) {
      try {
        var base = location.href.split('#')[0];
        history.replaceState(null, '', value ? base + '#filter=' + encodeURIComponent(value) : base);
      } catch (e) { /* file: URLs may refuse; the filter still works */ }
    }

    var pending = false;
    input.addEventListener('input', function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () {
        pending = false;
        apply(input.value);
        toHash(input.value);
      });
    });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') { input.value = ''; apply(''); toHash(''); }
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === '/' && document.activeElement !== input) { e.preventDefault(); input.focus(); }
    });
    window.addEventListener('hashchange', function () {
      var q = fromHash();
      if (q !== input.value) { input.value = q; apply(q); }
    });

    var initial = fromHash();
    input.value = initial;
    if (initial) input.setAttribute('value', initial);
    apply(initial);
  }

  function setupChart() {
    var chart = document.getElementById('fleet-chart');
    var data = document.getElementById('fleet-data');
    var tip = document.getElementById('fleet-tip');
    if (!chart || !data || !tip) return;
    var points;
    try { points = JSON.parse(data.textContent); } catch (e) { return; }
    if (!points.length) return;
    var line = chart.querySelector('.hover-line');
    var t0 = Number(chart.getAttribute('data-t0')), t1 = Number(chart.getAttribute('data-t1'));
    var x0 = Number(chart.getAttribute('data-x0')), x1 = Number(chart.getAttribute('data-x1'));

    function hide() { tip.hidden = true; if (line) line.style.display = 'none'; }
    chart.addEventListener('mouseleave', hide);
    chart.addEventListener('mousemove', function (e) {
      var ctm = chart.getScreenCTM();
      if (!ctm) return;
      var pt = chart.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      var p = pt.matrixTransform(ctm.inverse());
      var t = t0 + (p.x - x0) / (x1 - x0) * (t1 - t0);
      if (p.x < x0 || p.x > x1 || t < points[0][0]) { hide(); return; }
      var lo = 0, hi = points.length - 1;
      while (lo < hi) {
        var mid = (lo + hi + 1) >> 1;
        if (points[mid][0] <= t) lo = mid; else hi = mid - 1;
      }
      if (line) {
        line.setAttribute('x1', p.x); line.setAttribute('x2', p.x); line.style.display = '';
      }
      tip.textContent = fmt(t) + ' UTC: ' + points[lo][1] + ' in service';
      tip.hidden = false;
      tip.style.left = (e.pageX + 12) + 'px';
      tip.style.top = (e.pageY - 30) + 'px';
    });
  }

  function init() {
    setupFilter();
    setupChart();
    document.body.setAttribute('data-ready', 'true');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR;

    fn host(id: &str, first_seen: i64, intervals: &[(i64, Option<i64>)]) -> ReportHost {
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

    fn steps(points: &[(Timestamp, u64)]) -> Vec<(i64, u64)> {
        points.iter().map(|&(t, n)| (t.0 / H, n)).collect()
    }

    #[test]
    fn fleet_steps_over_overlapping_intervals() {
        let a = host("dc/pdx1/A", 0, &[(0, Some(4 * H)), (6 * H, None)]);
        let b = host("dc/pdx1/B", 2 * H, &[(3 * H, None)]);
        let points = fleet_in_service(&[a, b], Timestamp(10 * H));
        assert_eq!(steps(&points), [(0, 1), (3, 2), (4, 1), (6, 2), (10, 2)]);
    }

    #[test]
    fn fleet_handles_hosts_without_intervals() {
        // Alone: zero from first seen to as of.
        let idle = host("dc/pdx1/C", -2 * H, &[]);
        let points = fleet_in_service(std::slice::from_ref(&idle), Timestamp(5 * H));
        assert_eq!(steps(&points), [(-2, 0), (5, 0)]);
        // With others: it only moves the start earlier.
        let a = host("dc/pdx1/A", 0, &[(H, Some(3 * H))]);
        let points = fleet_in_service(&[a, idle], Timestamp(5 * H));
        assert_eq!(steps(&points), [(-2, 0), (1, 1), (3, 0), (5, 0)]);
        // No hosts at all.
        assert_eq!(
            fleet_in_service(&[], Timestamp(5 * H)),
            [(Timestamp(5 * H), 0)]
        );
    }

    #[test]
    fn fleet_merges_simultaneous_changes_and_clips_to_as_of() {
        // A hands over to B at 2h (no step); C ends exactly at as of; D starts after as of.
        let a = host("a", 0, &[(0, Some(2 * H))]);
        let b = host("b", 0, &[(2 * H, None)]);
        let c = host("c", 0, &[(H, Some(4 * H))]);
        let d = host("d", 0, &[(5 * H, None)]);
        let points = fleet_in_service(&[a, b, c, d], Timestamp(4 * H));
        assert_eq!(steps(&points), [(0, 1), (1, 2), (4, 1)]);
    }

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(duration(42 * SECOND), "42s");
        assert_eq!(duration(7 * MINUTE + 3 * SECOND), "7m 3s");
        assert_eq!(duration(5 * H + 12 * MINUTE), "5h 12m");
        assert_eq!(duration(3 * DAY + 4 * H + 59 * MINUTE), "3d 4h");
        assert_eq!(duration(-5), "0s");
        assert_eq!(
            short_time(Timestamp(1_795_772_000 * SECOND)),
            "2026-11-27 09:33"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn escape_defuses_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(escape("plain.host-01"), "plain.host-01");
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

    #[test]
    fn time_ticks_are_round_and_inside_the_axis() {
        let t1 = 1_795_772_000 * SECOND; // 2026-11-27 09:33 UTC
        for span in [2 * H, 30 * H, 9 * DAY, 90 * DAY, 800 * DAY] {
            let axis = Axis { t0: t1 - span, t1 };
            let ticks = axis.ticks();
            assert!((3..=12).contains(&ticks.len()), "{span}: {ticks:?}");
            assert!(ticks.iter().all(|(t, _)| (axis.t0..=axis.t1).contains(t)));
        }
        let ninety = Axis {
            t0: t1 - 90 * DAY,
            t1,
        }
        .ticks();
        assert!(ninety.iter().all(|(_, l)| l.len() == 10), "{ninety:?}");
        assert_eq!(count_axis(0), (1, 1));
        assert_eq!(count_axis(4), (4, 1));
        assert_eq!(count_axis(27), (30, 10));
        assert_eq!(count_axis(10_000), (10_000, 2_000));
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

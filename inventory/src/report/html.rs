//! Writing the page: the document around the stylesheet and script, the header, the fleet
//! chart, the timeline with one row per host, and escaping everything from the input.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hostledger_schemas::Timestamp;

use super::axis::{Axis, CHART_TOP, CHART_ZERO, PLOT_X0, PLOT_X1, WIDTH, count_axis, format_time};
use super::fleet::{fleet_in_service, phase_counts};
use super::{ReportHost, ReportInput};
use hostledger_model::time::human_duration;

/// The page's stylesheet, inlined in `<style>`.
const CSS: &str = include_str!("report.css");
/// The page's script, inlined in `<script>`.
const JS: &str = include_str!("report.js");

// Layout (SVG user units = CSS pixels); the plot area is in `axis`.

/// Height of a host row in the timeline.
const ROW_H: f64 = 18.0;
/// Top of a service interval's bar in its row.
const BAR_Y: f64 = 4.0;
/// Height of a service interval's bar.
const BAR_H: f64 = 10.0;
/// Height of the fleet chart.
const CHART_H: f64 = 230.0;
/// Height of the timeline's axis (column titles and tick labels) above the rows.
const AXIS_H: f64 = 24.0;
/// Host names longer than this many characters are cut with an ellipsis.
const LABEL_CHARS: usize = 30;

/// The page's times: `2026-11-27 09:30` (UTC).
const SHORT_TIME: &str = "%Y-%m-%d %H:%M";

/// The phases with a color, in legend order.
const PHASES: [&str; 5] = [
    "InService",
    "OutOfService",
    "Provisioning",
    "Missing",
    "Retired",
];

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

/// The text cut to `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The labels as `k=v,k=v` (sorted by key), for the row's `data-labels`.
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
    w!(out, "<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n");

    header(&mut out, input, in_service_now);
    fleet_chart(&mut out, &fleet, axis, &ticks, input.hosts.is_empty());
    timeline(&mut out, input, axis, &ticks);

    out.push_str("</main>\n<div id=\"fleet-tip\" class=\"tip\" hidden></div>\n");
    w!(out, "<script>\n{JS}</script>\n</body>\n</html>\n");
    out
}

/// `header#report-header`: title, as-of time, selector, source, counts and the legend.
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
        escape(&format_time(input.as_of, SHORT_TIME)),
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
    let planned: i64 = input.hosts.iter().map(|h| h.planned_down_micros).sum();
    let unplanned: i64 = input.hosts.iter().map(|h| h.unplanned_down_micros).sum();
    w!(
        out,
        "<div class=\"stat\"><b id=\"planned-downtime\" data-micros=\"{planned}\">{}</b>\
         <span>planned downtime (locked)</span></div>\n",
        human_duration(planned)
    );
    w!(
        out,
        "<div class=\"stat\"><b id=\"unplanned-downtime\" data-micros=\"{unplanned}\">{}</b>\
         <span>unplanned downtime</span></div>\n",
        human_duration(unplanned)
    );
    // Legend: every known phase, then any other phase found, with its count.
    let counts = phase_counts(&input.hosts);
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

/// The `svg#fleet-chart` panel: hosts in service over time, with its step points as JSON
/// for the hover read-out.
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

/// The hosts panel: the filter toolbar, the axis, and `svg#timeline` with one row per host.
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

/// One `g.host-row`: the host's label with its details, its life line, its service
/// intervals and its total time in service.
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
        format_time(host.first_seen_at, SHORT_TIME)
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
    if host.planned_down_micros + host.unplanned_down_micros > 0 {
        w!(
            details,
            "\nout of service {} planned, {} unplanned",
            human_duration(host.planned_down_micros),
            human_duration(host.unplanned_down_micros)
        );
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
            Some(end) => format!("{} UTC", format_time(end, SHORT_TIME)),
            None => format!("still in service at {} UTC", format_time(as_of, SHORT_TIME)),
        };
        w!(
            out,
            "<rect class=\"interval\" x=\"{x0:.1}\" y=\"{BAR_Y}\" width=\"{width:.1}\" height=\"{BAR_H}\" \
             rx=\"2\" data-start=\"{}\" data-end=\"{}\"><title>in service {} → {} ({})</title></rect>",
            escape(&start.to_string()),
            end.map(|e| escape(&e.to_string())).unwrap_or_default(),
            format_time(start, SHORT_TIME),
            ends,
            human_duration(until.0.saturating_sub(start.0)),
        );
    }
    w!(
        out,
        "<text class=\"total\" x=\"{:.1}\" y=\"13\" text-anchor=\"end\">{}</text></g>\n",
        WIDTH - 8.0,
        human_duration(host.in_service_micros)
    );
}

#[cfg(test)]
mod tests {
    use super::super::axis::{DAY, MINUTE, SECOND};
    use super::*;

    const H: i64 = super::super::axis::HOUR;

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(human_duration(42 * SECOND), "42s");
        assert_eq!(human_duration(7 * MINUTE + 3 * SECOND), "7m 3s");
        assert_eq!(human_duration(5 * H + 12 * MINUTE), "5h 12m");
        assert_eq!(human_duration(3 * DAY + 4 * H + 59 * MINUTE), "3d 4h");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(
            format_time(Timestamp(1_795_772_000 * SECOND), SHORT_TIME),
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
}

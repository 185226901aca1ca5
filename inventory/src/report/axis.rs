//! Geometry: the time axis (micros onto x, round UTC ticks) and the count axis of the fleet
//! chart, with the plot area they map onto (SVG user units = CSS pixels).

use chrono::{Datelike, Months, NaiveDate};
use hostledger_schemas::Timestamp;

use super::ReportInput;

/// Page width; every SVG on the page is this wide.
pub(super) const WIDTH: f64 = 1200.0;
/// Left edge of the time axis; the host names are left of it.
pub(super) const PLOT_X0: f64 = 232.0;
/// Right edge of the time axis; the totals are right of it.
pub(super) const PLOT_X1: f64 = 1108.0;
/// Top of the fleet chart's plot area: the y of the count axis's top value.
pub(super) const CHART_TOP: f64 = 16.0;
/// The fleet chart's zero line: the y of a count of 0.
pub(super) const CHART_ZERO: f64 = 200.0;

/// A second in micros.
pub(super) const SECOND: i64 = 1_000_000;
/// A minute in micros.
pub(super) const MINUTE: i64 = 60 * SECOND;
/// An hour in micros.
pub(super) const HOUR: i64 = 60 * MINUTE;
/// A day in micros.
pub(super) const DAY: i64 = 24 * HOUR;

/// The time axis: micros `t0..=t1` onto x `PLOT_X0..=PLOT_X1`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Axis {
    /// Left edge, micros.
    pub(super) t0: i64,
    /// Right edge (the report's as-of time), micros.
    pub(super) t1: i64,
}

impl Axis {
    /// From the earliest fleet point (a little before it) to `as_of`, at least a minute; the
    /// 30 days before `as_of` without hosts.
    pub(super) fn new(input: &ReportInput, fleet: &[(Timestamp, u64)]) -> Self {
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

    /// The x of time `t` (micros), clamped to the axis.
    pub(super) fn x(&self, t: i64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        let span = (self.t1 - self.t0) as f64;
        PLOT_X0 + (t - self.t0) as f64 / span * (PLOT_X1 - PLOT_X0)
    }

    /// Tick times with their labels: 4 to 10 of them, at round UTC times.
    pub(super) fn ticks(&self) -> Vec<(i64, String)> {
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

    /// Ticks on the first of round months, for spans longer than ten fortnights.
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
pub(super) fn count_axis(max: u64) -> (u64, u64) {
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

pub(super) use hostledger_model::time::formatted as format_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_are_round_and_inside_the_axis() {
        let t1 = 1_795_772_000 * SECOND; // 2026-11-27 09:33 UTC
        for span in [2 * HOUR, 30 * HOUR, 9 * DAY, 90 * DAY, 800 * DAY] {
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

    #[test]
    fn times_chrono_cannot_represent_read_as_micros() {
        let t = Timestamp(1_795_772_000 * SECOND);
        assert_eq!(format_time(t, "%Y-%m-%d %H:%M"), "2026-11-27 09:33");
        assert_eq!(format_time(t, "%H:%M:%S"), "09:33:20");
        let far = Timestamp(i64::MAX);
        assert_eq!(format_time(far, "%Y-%m-%d %H:%M"), "9223372036854775807us");
        assert_eq!(format_time(far, "%Y"), far.to_string());
    }
}

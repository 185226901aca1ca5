//! Times and durations for people and scripts, one set for the whole workspace.

use hostledger_schemas::Timestamp;

/// A duration in microseconds as `3d 4h`, `5h 12m`, `7m 3s` or `42s`.
pub fn human_duration(micros: i64) -> String {
    let secs = micros.max(0) / 1_000_000;
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A time as `2026-11-27 09:30` (UTC), for tables.
pub fn short_time(t: Timestamp) -> String {
    formatted(t, "%Y-%m-%d %H:%M")
}

/// A time in a chrono `strftime` format (UTC). A time chrono cannot represent (beyond
/// ±262,000 years) reads `<micros>us`, as [`Timestamp`]'s `Display` writes it.
pub fn formatted(t: Timestamp, format: &str) -> String {
    t.to_datetime()
        .map_or_else(|| t.to_string(), |d| d.format(format).to_string())
}

/// A time as RFC 3339 with microseconds, for JSON and CSV (lossless): the form Host objects
/// carry.
pub fn exact_time(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// Parses a time given by a person: RFC 3339 (`2026-06-30T12:00:00Z`) or a date
/// (`2026-06-30`, meaning its start in UTC).
pub fn parse_time(value: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(value) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        return Ok(Timestamp::from(t));
    }
    Err(format!(
        "{value:?} is neither an RFC 3339 time (2026-06-30T12:00:00Z) nor a date (2026-06-30)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(42_000_000), "42s");
        assert_eq!(human_duration(423_000_000), "7m 3s");
        assert_eq!(human_duration((5 * 3600 + 12 * 60) * 1_000_000), "5h 12m");
        assert_eq!(
            human_duration((3 * 86_400 + 4 * 3600 + 59) * 1_000_000),
            "3d 4h"
        );
    }

    #[test]
    fn times_parse_and_print() {
        let t = parse_time("2026-06-30").expect("a date");
        assert_eq!(exact_time(t), "2026-06-30T00:00:00.000000Z");
        assert_eq!(short_time(t), "2026-06-30 00:00");
        assert_eq!(
            parse_time("2026-06-30T12:00:00.5+02:00").map(exact_time),
            Ok("2026-06-30T10:00:00.500000Z".into())
        );
        assert!(parse_time("yesterday").unwrap_err().contains("yesterday"));
        let far = Timestamp(i64::MAX);
        assert_eq!(formatted(far, "%Y-%m-%d %H:%M"), "9223372036854775807us");
        assert_eq!(short_time(far), far.to_string());
    }
}

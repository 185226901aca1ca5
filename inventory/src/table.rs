//! Output for people and for scripts: aligned text tables, CSV, human durations and times.

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
    t.to_datetime()
        .map_or_else(|| "-".into(), |d| d.format("%Y-%m-%d %H:%M").to_string())
}

/// A time as RFC 3339 with microseconds, for JSON and CSV (lossless).
pub fn exact_time(t: Timestamp) -> String {
    hostledger_projector::crd::format_time(t)
}

/// Columns aligned with two spaces between them; trailing spaces trimmed.
pub fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// RFC 4180 CSV with a header line.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    out.push_str(
        &header
            .iter()
            .map(|h| field(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
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
    fn tables_align_and_csv_quotes() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned()],
            vec!["bbbb".to_owned(), "x,\"y\"".to_owned()],
        ];
        assert_eq!(
            aligned(&["K", "V"], &rows),
            "K     V\na     long value\nbbbb  x,\"y\"\n"
        );
        assert_eq!(
            csv(&["K", "V"], &rows),
            "K,V\na,long value\nbbbb,\"x,\"\"y\"\"\"\n"
        );
    }
}

//! Output for people and for scripts: aligned text tables and CSV. Times and durations are
//! formatted by [`hostledger_model::time`].

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
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        writer.write_record(header)?;
        for row in rows {
            writer.write_record(row)?;
        }
        writer.flush()?;
        Ok(())
    };
    write().expect("writing CSV into memory cannot fail");
    let bytes = writer
        .into_inner()
        .expect("a flushed in-memory CSV writer has nothing left to write");
    String::from_utf8(bytes).expect("CSV made of strings is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

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

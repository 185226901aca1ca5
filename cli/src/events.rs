//! `hostledger events`: the log's events as they are, as JSON lines or a table, from the
//! beginning or on as they arrive.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hostledger_inventory::events::{EventFilter, json_line, table_header, table_row};
use hostledger_kafka::{KafkaClients, KafkaSettings, LogReader};
use hostledger_schemas::{EventKind, Timestamp};

use crate::KafkaArgs;
use crate::read::parse_selector;

/// Output formats of `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsOutput {
    /// One JSON object per line: {"partition", "offset", "event"} or, for a message that is not
    /// an event, {"partition", "offset", "key", "poison"}.
    Json,
    /// Aligned columns for people.
    Table,
}

/// `hostledger events`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  hostledger events                                   every event, from the beginning, as JSON lines
  hostledger events -o table --host dc/pdx1/PX100     one host's events (reads only its partition)
  hostledger events --since 2026-11-01 --kind retired,went-missing -o table
  hostledger events --follow -l provider=aws | jq .event.host_id

Messages that are not events (undecodable, unknown schema, invalid) are shown with their reason,
as {\"poison\": ...} lines or (poison) rows, and reading goes on.")]
pub struct EventsArgs {
    /// Only events observed at or after this time (RFC 3339, e.g. 2026-06-30T12:00:00Z, or a
    /// date, meaning its start in UTC). Default: from the beginning of the log.
    #[arg(long, value_parser = hostledger_model::time::parse_time)]
    pub since: Option<Timestamp>,

    /// Only events observed at or before this time.
    #[arg(long, value_parser = hostledger_model::time::parse_time)]
    pub until: Option<Timestamp>,

    /// After the end of the log, keep printing new events as they arrive (until Ctrl-C).
    #[arg(long, short)]
    pub follow: bool,

    /// Only this host's events: its id (dc/pdx1/SERIAL; then only its partition is read), its
    /// Host object name or its host name.
    #[arg(long, value_name = "ID|NAME")]
    pub host: Option<String>,

    /// Only events whose state has these labels, in kubectl's syntax (`role=log`,
    /// `provider in (aws,dc)`); labels as the projector sets them: provider, region, role,
    /// team, phase.
    #[arg(long, short = 'l', value_parser = parse_selector)]
    pub selector: Option<hostledger_inventory::LabelSelector>,

    /// Only events of these kinds (comma-separated or repeated): discovered, changed,
    /// lifecycle-changed, went-missing, returned, retired (or the schema's names,
    /// HostDiscovered, ...).
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    pub kind: Vec<EventKind>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = EventsOutput::Json)]
    pub output: EventsOutput,

    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Parses a `--kind` value: a schema symbol or its short form, any case.
fn parse_kind(value: &str) -> Result<EventKind, String> {
    let wanted: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    EventKind::ALL
        .into_iter()
        .find(|k| {
            let symbol = k.as_str().to_ascii_lowercase();
            symbol == wanted || symbol.strip_prefix("host") == Some(wanted.as_str())
        })
        .ok_or_else(|| {
            format!(
                "{value:?} is not an event kind; kinds: discovered, changed, lifecycle-changed, \
                 went-missing, returned, retired"
            )
        })
}

/// Streams the log's events through the filter to stdout.
pub async fn run(args: EventsArgs) -> Result<ExitCode> {
    let settings = args.kafka.apply(KafkaSettings::default());
    let topic = settings.topics.events.clone();
    let kafka = KafkaClients::new(settings)?;
    let filter = EventFilter {
        since: args.since,
        until: args.until,
        kinds: args.kind,
        host: args.host,
        selector: args.selector.unwrap_or_default(),
    };
    let mut log = LogReader::open_scoped(&kafka, filter.scope(args.follow))
        .await
        .with_context(|| format!("cannot read the events topic {topic}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let table = args.output == EventsOutput::Table;
    if table {
        out.write_all(table_header().as_bytes())?;
    }
    let (mut shown, mut poison) = (0u64, 0u64);
    while let Some(chunk) = log.next_chunk().await {
        for item in chunk.iter().filter(|i| filter.shows(i)) {
            if matches!(item, hostledger_kafka::Item::Poison { .. }) {
                poison += 1;
            } else {
                shown += 1;
            }
            let line = if table {
                table_row(item)
            } else {
                let mut line = json_line(item);
                line.push('\n');
                line
            };
            out.write_all(line.as_bytes())?;
        }
        out.flush()?;
    }
    let stats = log.finish().await?;
    if table {
        let of_host = filter
            .host
            .as_deref()
            .map(|h| format!(" of {h}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{shown} events{of_host} shown, {poison} messages that are not events; {} messages read",
            stats.messages
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_in_short_or_schema_form() {
        assert_eq!(parse_kind("retired"), Ok(EventKind::HostRetired));
        assert_eq!(parse_kind("went-missing"), Ok(EventKind::HostWentMissing));
        assert_eq!(
            parse_kind("HostLifecycleChanged"),
            Ok(EventKind::HostLifecycleChanged)
        );
        assert_eq!(
            parse_kind("lifecycle_changed"),
            Ok(EventKind::HostLifecycleChanged)
        );
        let err = parse_kind("deleted").expect_err("not a kind");
        assert!(err.contains("went-missing"), "{err}");
    }
}

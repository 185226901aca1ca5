//! `hostledger backfill`: an archive of dated snapshots of a provider published as the events
//! its fetcher would have published then.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hostledger_inventory::events::event_json;
use hostledger_kafka::{Item, KafkaClients, LogReader};
use hostledger_model::time::formatted;
use hostledger_producers::backfill::{Plan, Step, check_against_log, count_kinds, find_snapshots};
use hostledger_producers::{FetcherConfig, ProviderConfig, Publisher, restore_events};
use hostledger_schemas::Timestamp;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::kafka::KafkaArgs;
use crate::print_out;

/// What `--dry-run` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    /// One line per snapshot: when, how many hosts, the events by kind, whether published.
    Table,
    /// Every event still to publish, one JSON object per line (as `hostledger events` prints
    /// them).
    Json,
}

/// `hostledger backfill`.
#[derive(Debug, Args)]
#[command(after_help = "\
An archive is a directory (or one file) of dated snapshots of the provider:
  exports named by their date    pdx1-2025-12-01.csv, 2025-12-01T06:00:00Z.json, dump_20251201.yaml
                                 (data-centre records; for an exec provider, its {\"hosts\": [...]})
  listings files (.jsonl)        one {\"observed_at\": \"2025-12-01T06:00:00Z\", \"hosts\": [...]} a line

Each snapshot is diffed against the previous ones exactly as the fetcher diffs a listing, and its
events are published with the provider's name as their source, in one transaction per snapshot
(events and fetcher state together). Run it before the provider's fetcher first runs: the
fetcher then carries on from the last snapshot. Killed and run again, it resumes after the last
snapshot it committed. Snapshots older than events the log already holds for the same hosts are
refused, before anything is published (the log is folded in order).

Examples:
  hostledger backfill -c fetcher.yaml --dry-run archive/        what would be published
  hostledger backfill -c fetcher.yaml --provider dc-pdx1 archive/")]
pub struct BackfillArgs {
    /// The directory (or file) of dated snapshots.
    pub archive: PathBuf,

    /// Fetcher config file (YAML): the provider the snapshots are of, and Kafka.
    #[arg(long, short)]
    pub config: PathBuf,

    /// The provider (by name) the snapshots are of; may be left out when the config has one.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,

    /// Seconds a host must be absent from snapshots before it is published as missing
    /// (default: the config's missing_grace_secs). 0 declares it missing at the first snapshot
    /// without it.
    #[arg(long, value_name = "SECS")]
    pub missing_grace_secs: Option<u64>,

    /// Publish nothing; print what would be published.
    #[arg(long)]
    pub dry_run: bool,

    /// What --dry-run prints.
    #[arg(long, short, value_enum, default_value_t = PlanOutput::Table)]
    pub output: PlanOutput,

    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,

    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

fn bar(len: u64, unit: &str, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4))
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix:>9}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit}  {{per_sec}}  ETA {{eta}}  {{msg}}"
        ))
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    bar
}

fn pick_provider<'a>(config: &'a FetcherConfig, name: Option<&str>) -> Result<&'a ProviderConfig> {
    let names: Vec<&str> = config.providers.iter().map(ProviderConfig::name).collect();
    match name {
        Some(name) => config
            .providers
            .iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("the config has no provider {name:?} (it has {names:?})")),
        None => match config.providers.as_slice() {
            [only] => Ok(only),
            _ => bail!(
                "the config has several providers ({names:?}): say which one the snapshots are of with --provider NAME"
            ),
        },
    }
}

/// The latest observation of every host in the log.
async fn latest_observations(kafka: &KafkaClients) -> Result<HashMap<String, Timestamp>> {
    let mut latest: HashMap<String, Timestamp> = HashMap::new();
    let mut log = LogReader::open(kafka).await?;
    while let Some(chunk) = log.next_chunk().await {
        for item in chunk {
            if let Item::Event(e, _) = item {
                let t = latest.entry(e.host_id.clone()).or_insert(e.observed_at);
                *t = (*t).max(e.observed_at);
            }
        }
    }
    log.finish().await?;
    Ok(latest)
}

fn day(t: Timestamp) -> String {
    formatted(t, "%Y-%m-%d %H:%M")
}

fn kinds_text(step: &Step) -> String {
    step.counts()
        .iter()
        .map(|(k, n)| format!("{n} {}", k.trim_start_matches("Host")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan_table(plan: &Plan, start: usize) -> String {
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                day(s.observed_at),
                s.listed.to_string(),
                s.events.len().to_string(),
                if i < start { "published" } else { "to publish" }.to_owned(),
                kinds_text(s),
            ]
        })
        .collect();
    let mut out = hostledger_inventory::table::aligned(
        &["SNAPSHOT (UTC)", "HOSTS", "EVENTS", "STATUS", "BY KIND"],
        &rows,
    );
    let pending: usize = plan.steps[start..].iter().map(|s| s.events.len()).sum();
    let _ = writeln!(
        out,
        "{} snapshots, {} to publish: {pending} events as {}",
        plan.steps.len(),
        plan.steps.len() - start,
        plan.source
    );
    out
}

/// Runs a backfill (or, with --dry-run, shows it).
pub async fn run(args: BackfillArgs) -> Result<ExitCode> {
    let mut config = FetcherConfig::from_file(&args.config)?;
    config.kafka = args.kafka.apply(config.kafka);
    config.validate()?;
    let provider = pick_provider(&config, args.provider.as_deref())?;
    let grace_secs = args.missing_grace_secs.unwrap_or(config.missing_grace_secs);
    let grace = i64::try_from(grace_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);

    let snapshots = find_snapshots(&args.archive)?;
    let reading = bar(snapshots.len() as u64, "snapshots", args.quiet);
    reading.set_prefix("reading");
    let plan = Plan::build(provider, &snapshots, grace, |step| {
        reading.set_message(day(step.observed_at));
        reading.inc(1);
        for problem in &step.problems {
            tracing::warn!(snapshot = %step.origin, error = %problem, "bad entry in snapshot");
        }
    })?;
    reading.finish_and_clear();

    let kafka = KafkaClients::new(config.kafka.clone())?;
    kafka
        .check_connection_async(Duration::from_secs(15))
        .await?;
    let source = plan.source.clone();
    let committed = kafka
        .blocking(move |k| restore_events(k, &source, Duration::from_secs(120)))
        .await
        .context("cannot read the fetcher state (what earlier runs published)")?;
    let start = plan.resume_from(&committed)?;
    check_against_log(&plan.steps[start..], &latest_observations(&kafka).await?)?;

    if args.dry_run {
        let text = match args.output {
            PlanOutput::Table => plan_table(&plan, start),
            PlanOutput::Json => plan.steps[start..]
                .iter()
                .flat_map(|s| &s.events)
                .map(|e| format!("{}\n", event_json(e)))
                .collect(),
        };
        print_out(&text)?;
        return Ok(ExitCode::SUCCESS);
    }

    let pending = &plan.steps[start..];
    let total: usize = pending.iter().map(|s| s.events.len()).sum();
    let (first, last) = (
        plan.steps[0].observed_at,
        plan.steps[plan.steps.len() - 1].observed_at,
    );
    if pending.is_empty() {
        print_out(&format!(
            "nothing to publish: all {} snapshots of {} ({} to {}) were published by an earlier run\n",
            plan.steps.len(),
            plan.source,
            day(first),
            day(last)
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    if start > 0 {
        tracing::info!(
            source = %plan.source,
            done = start,
            left = pending.len(),
            "resuming: the first snapshots were published by an earlier run"
        );
    }
    let publisher = Publisher::new(&kafka, &plan.source).await?;
    let publishing = bar(total as u64, "events", args.quiet);
    publishing.set_prefix("backfill");
    let started = Instant::now();
    for step in pending.iter().filter(|s| !s.events.is_empty()) {
        publishing.set_message(day(step.observed_at));
        publisher
            .publish(&step.events)
            .await
            .with_context(|| format!("cannot publish the events of {}", step.origin))?;
        publishing.inc(step.events.len() as u64);
        tracing::info!(snapshot = %step.origin, events = step.events.len(), "snapshot published");
    }
    publishing.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let kinds: Vec<String> = count_kinds(pending.iter().flat_map(|s| &s.events))
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    let (first, last) = (
        plan.steps[0].observed_at,
        plan.steps[plan.steps.len() - 1].observed_at,
    );
    let mut text = format!(
        "backfilled {} from {} to {}: {} snapshots, {total} events published ({}) in {secs:.1} s ({:.0} events/s)\n",
        plan.source,
        day(first),
        day(last),
        pending.len(),
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        total as f64 / secs.max(1e-9),
    );
    if start > 0 {
        let _ = writeln!(
            text,
            "{start} earlier snapshots had been published by an earlier run"
        );
    }
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

//! Audit queries: `hostledger uptime`, `hostledger history HOST` and `hostledger hosts`, as of
//! now or any past time, from the Host objects or the log.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hostledger_inventory::source::check_as_of;
use hostledger_inventory::{
    GroupBy, HostList, Inventory, InventoryError, UptimeReport, UptimeRow, history,
};
use hostledger_k8s::Histories;
use hostledger_model::names::OWNED_LABELS;
use hostledger_model::time::{exact_time, short_time};
use hostledger_schemas::Timestamp;

use crate::read::{ReadArgs, SourceArg};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns with human durations, for people.
    Table,
    /// JSON, exact figures.
    Json,
    /// CSV with a header line, exact figures.
    Csv,
}

/// `hostledger uptime`.
#[derive(Debug, Args)]
pub struct UptimeArgs {
    /// Which hosts, as of when, from where.
    #[command(flatten)]
    pub read: ReadArgs,

    /// Totals per provider, region, role, team or label:KEY (any label of the Hosts, e.g.
    /// label:rack; from the log, the labels the projector derives) instead of one line per
    /// host.
    #[arg(long, value_name = "FIELD")]
    pub group_by: Option<GroupBy>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `hostledger hosts`.
#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Which hosts, as of when, from where.
    #[command(flatten)]
    pub read: ReadArgs,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `hostledger history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The host: its id (dc/pdx1/SN-0001), its Host object name (dc.pdx1.sn-0001) or its
    /// host name.
    pub host: String,

    /// Where to read, and the Kafka connection for --source log.
    #[command(flatten)]
    pub read: ReadArgs,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Refuses an empty answer with a message that says why it is empty.
fn require_hosts(inventory: &Inventory, read: &ReadArgs) -> Result<()> {
    if !inventory.hosts.is_empty() {
        return Ok(());
    }
    let when = read
        .as_of
        .map(|t| format!(" as of {}", exact_time(t)))
        .unwrap_or_default();
    match &read.scope.selector {
        Some(s) if !s.is_empty() => bail!(
            "no host matches the selector {:?}{when} in {}",
            s.as_str(),
            read.describe_source()
        ),
        _ => Err(InventoryError::Empty(format!(
            "no hosts{when} in {}; has the projector run (`hostledger project`)?",
            read.describe_source()
        ))
        .into()),
    }
}

/// Prints time in service per host or per group.
pub async fn uptime(args: UptimeArgs) -> Result<ExitCode> {
    let (rows, at) = match uptime_from_index(&args).await? {
        Some(found) => found,
        None => {
            let (inventory, at) = args.read.load(false).await?;
            require_hosts(&inventory, &args.read)?;
            let rows = inventory
                .hosts
                .iter()
                .map(|h| UptimeRow::new(&h.record, at).with_labels(h.labels.clone()))
                .collect();
            (rows, at)
        }
    };
    let report = UptimeReport::from_rows(rows, at, args.group_by.clone());
    let text = match args.output {
        Output::Table => report.table(),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        Output::Csv => report.csv(),
    };
    crate::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Uptime rows from the history server's index (`view=uptime`: a point per host, now or as
/// of a time, without listing a Host or reading a history), where that answers the question:
/// the namespace's history is the log's, and the selection and grouping use only the labels
/// the projector derives. `None` when it does not, or the history API cannot answer (then
/// the Host objects do, as before).
async fn uptime_from_index(args: &UptimeArgs) -> Result<Option<(Vec<UptimeRow>, Timestamp)>> {
    let derived = |key: &str| OWNED_LABELS.contains(&key);
    let read = &args.read;
    let selector = read.scope.selector.clone().unwrap_or_default();
    let grouping_derived = match &args.group_by {
        Some(GroupBy::Label(key)) => derived(key),
        _ => true,
    };
    if read.source != SourceArg::Objects
        || read.group.is_some()
        || !grouping_derived
        || !selector.keys().iter().all(|k| derived(k))
    {
        return Ok(None);
    }
    let now = Timestamp::from(chrono::Utc::now());
    if let Some(t) = read.as_of {
        check_as_of(t, None, now)?;
    }
    let client = crate::kube_client().await?;
    let namespace = &read.scope.namespace;
    // Only a quick look: an API server that does not answer is reported by the Hosts' path.
    let home = tokio::time::timeout(Duration::from_secs(5), Histories::of(&client, namespace));
    let api = match home.await {
        Ok(Ok(Histories::Api(api))) => api,
        Ok(Ok(Histories::Chunks(_))) => return Ok(None),
        Ok(Err(error)) => {
            tracing::debug!(%error, "cannot tell where the namespace keeps its history");
            return Ok(None);
        }
        Err(_) => return Ok(None),
    };
    let points = match api.uptime(read.as_of).await {
        Ok(points) if !points.is_empty() => points,
        Ok(_) => return Ok(None),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "the history API did not answer; reading the Host objects instead");
            return Ok(None);
        }
    };
    let at = read.as_of.unwrap_or(now);
    let rows: Vec<UptimeRow> = points
        .iter()
        .filter_map(|p| {
            let labels = p.labels();
            selector
                .matches(&labels)
                .then(|| UptimeRow::of_point(p, at).with_labels(labels))
        })
        .collect();
    if rows.is_empty() {
        // The Host objects say why (no match, nothing then).
        return Ok(None);
    }
    Ok(Some((rows, at)))
}

/// Prints the inventory as it stands (or stood).
pub async fn hosts(args: HostsArgs) -> Result<ExitCode> {
    let (inventory, at) = args.read.load(false).await?;
    require_hosts(&inventory, &args.read)?;
    let list = HostList {
        hosts: &inventory.hosts,
        at,
    };
    let text = match args.output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&list.json())?),
        Output::Csv => list.csv(),
        Output::Table => list.table(&format!(
            "{} hosts {} from {}",
            inventory.hosts.len(),
            match args.read.as_of {
                Some(t) => format!("as of {} UTC", short_time(t)),
                None => "now".into(),
            },
            args.read.describe_source()
        )),
    };
    crate::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every event of one host, with what changed.
pub async fn history(args: HistoryArgs) -> Result<ExitCode> {
    let view = match args.read.source {
        SourceArg::Objects => {
            let client = crate::kube_client().await?;
            history::from_objects(&client, &args.read.scope.namespace, &args.host)
                .await
                .with_context(|| {
                    format!(
                        "cannot read the history of {} from the Kubernetes API server{}",
                        args.host,
                        crate::read::client_url()
                    )
                })?
        }
        SourceArg::Log => {
            history::from_log(
                &args.read.kafka()?,
                &args.host,
                &args.read.describe_source(),
            )
            .await?
        }
    };
    let view = view.until(args.read.as_of);
    if view.entries.is_empty() {
        bail!(
            "{} has no events{}",
            view.host_id,
            args.read
                .as_of
                .map(|t| format!(" observed by {}", exact_time(t)))
                .unwrap_or_default()
        );
    }
    let text = match args.output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&view.entries)?),
        Output::Table => view.table(),
        Output::Csv => view.csv(),
    };
    crate::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `hostledger report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the page here (one self-contained HTML file).
    #[arg(long, value_name = "FILE")]
    pub html: std::path::PathBuf,

    /// Page title.
    #[arg(long, default_value = "hostledger: time in service")]
    pub title: String,

    /// Which hosts, as of when, from where.
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Writes the HTML report.
pub async fn report(args: ReportArgs) -> Result<ExitCode> {
    use hostledger_inventory::report::{ReportHost, ReportInput, render};
    let (inventory, at) = args.read.load(true).await?;
    require_hosts(&inventory, &args.read)?;
    let hosts = inventory
        .hosts
        .iter()
        .map(|h| ReportHost::from_view(h, at))
        .collect();
    let page = render(&ReportInput {
        title: args.title.clone(),
        as_of: at,
        selector: args
            .read
            .scope
            .selector
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        source: args.read.describe_source(),
        hosts,
    });
    hostledger_inventory::atomic::write(&args.html, page.as_bytes())?;
    crate::print_out(&format!(
        "wrote {} ({} hosts as of {} UTC, {} KiB)\n",
        args.html.display(),
        inventory.hosts.len(),
        short_time(at),
        page.len().div_ceil(1024)
    ))?;
    Ok(ExitCode::SUCCESS)
}

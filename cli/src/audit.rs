//! Audit queries: `hostledger uptime`, `hostledger history HOST` and `hostledger hosts`, as of
//! now or any past time, from the Host objects or the log.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hostledger_inventory::source::InventoryError;
use hostledger_inventory::table::{aligned, csv, exact_time, human_duration, short_time};
use hostledger_inventory::uptime::{GroupBy, UptimeReport};
use hostledger_inventory::{HostView, Inventory};
use hostledger_projector::Host;
use hostledger_projector::crd::object_name;
use hostledger_projector::fold::{HostRecord, Outcome};
use hostledger_projector::history::{HistoryEntry, HistoryStore, entry};
use hostledger_schemas::Timestamp;
use kube::api::{Api, ListParams};

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

/// Grouping for `uptime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupArg {
    /// By provider kind.
    Provider,
    /// By region or site.
    Region,
    /// By role.
    Role,
    /// By team.
    Team,
}

impl From<GroupArg> for GroupBy {
    fn from(g: GroupArg) -> Self {
        match g {
            GroupArg::Provider => GroupBy::Provider,
            GroupArg::Region => GroupBy::Region,
            GroupArg::Role => GroupBy::Role,
            GroupArg::Team => GroupBy::Team,
        }
    }
}

/// `hostledger uptime`.
#[derive(Debug, Args)]
pub struct UptimeArgs {
    /// Which hosts, as of when, from where.
    #[command(flatten)]
    pub read: ReadArgs,

    /// Totals per provider, region, role or team instead of one line per host.
    #[arg(long, value_enum)]
    pub group_by: Option<GroupArg>,

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
    let (inventory, at) = args.read.load(false).await?;
    require_hosts(&inventory, &args.read)?;
    let report = UptimeReport::new(
        inventory.hosts.iter().map(|h| &h.record),
        at,
        args.group_by.map(GroupBy::from),
    );
    let text = match args.output {
        Output::Table => report.table(),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        Output::Csv => report.csv(),
    };
    crate::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// One host as `hosts` shows it.
fn host_json(h: &HostView, at: Timestamp) -> serde_json::Value {
    let r = &h.record;
    serde_json::json!({
        "name": h.name,
        "hostId": r.host_id,
        "hostname": r.state.name,
        "provider": r.provider,
        "region": r.state.region,
        "zone": r.state.zone,
        "role": r.state.role,
        "team": r.state.team,
        "addresses": r.state.addresses,
        "machineType": r.state.machine_type,
        "attributes": r.state.attributes,
        "phase": r.phase.as_str(),
        "phaseSince": exact_time(r.phase_since),
        "firstSeenAt": exact_time(r.first_seen_at),
        "lastObservedAt": exact_time(r.last_observed_at),
        "inServiceSeconds": r.in_service_micros_at(at) as f64 / 1e6,
        "events": r.event_count,
    })
}

/// Prints the inventory as it stands (or stood).
pub async fn hosts(args: HostsArgs) -> Result<ExitCode> {
    let (inventory, at) = args.read.load(false).await?;
    require_hosts(&inventory, &args.read)?;
    let header = [
        "HOST ID",
        "HOSTNAME",
        "PROVIDER",
        "REGION",
        "ROLE",
        "TEAM",
        "PHASE",
        "ADDRESS",
        "IN SERVICE",
        "FIRST SEEN",
    ];
    let cells = |h: &HostView, human: bool| -> Vec<String> {
        let r = &h.record;
        let opt = |v: &Option<String>| {
            v.clone()
                .unwrap_or_else(|| if human { "-".into() } else { String::new() })
        };
        vec![
            r.host_id.clone(),
            r.state.name.clone(),
            r.provider.clone(),
            opt(&r.state.region),
            opt(&r.state.role),
            opt(&r.state.team),
            r.phase.to_string(),
            opt(&r.state.addresses.first().cloned()),
            if human {
                human_duration(r.in_service_micros_at(at))
            } else {
                format!("{:.6}", r.in_service_micros_at(at) as f64 / 1e6)
            },
            if human {
                short_time(r.first_seen_at)
            } else {
                exact_time(r.first_seen_at)
            },
        ]
    };
    let text = match args.output {
        Output::Json => {
            let items: Vec<_> = inventory.hosts.iter().map(|h| host_json(h, at)).collect();
            format!("{}\n", serde_json::to_string_pretty(&items)?)
        }
        Output::Csv => csv(
            &header
                .map(|h| h.to_lowercase().replace(' ', "_"))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &inventory
                .hosts
                .iter()
                .map(|h| cells(h, false))
                .collect::<Vec<_>>(),
        ),
        Output::Table => {
            let rows: Vec<_> = inventory.hosts.iter().map(|h| cells(h, true)).collect();
            let mut out = aligned(&header, &rows);
            out.push_str(&format!(
                "{} hosts {} from {}\n",
                rows.len(),
                match args.read.as_of {
                    Some(t) => format!("as of {} UTC", short_time(t)),
                    None => "now".into(),
                },
                args.read.describe_source()
            ));
            out
        }
    };
    crate::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every event of one host, with what changed.
pub async fn history(args: HistoryArgs) -> Result<ExitCode> {
    let (host_id, entries) = match args.read.source {
        SourceArg::Objects => history_from_objects(&args).await?,
        SourceArg::Log => history_from_log(&args).await?,
    };
    let entries: Vec<HistoryEntry> = match args.read.as_of {
        Some(t) => {
            let t = exact_time(t);
            // RFC 3339 with microseconds in UTC sorts as text.
            entries.into_iter().filter(|e| e.observed_at <= t).collect()
        }
        None => entries,
    };
    if entries.is_empty() {
        bail!(
            "{host_id} has no events{}",
            args.read
                .as_of
                .map(|t| format!(" observed by {}", exact_time(t)))
                .unwrap_or_default()
        );
    }
    let text = match args.output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&entries)?),
        Output::Table | Output::Csv => {
            let human = args.output == Output::Table;
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        if human {
                            e.observed_at.replace('T', " ").chars().take(19).collect()
                        } else {
                            e.observed_at.clone()
                        },
                        e.kind.clone(),
                        e.phase.clone(),
                        describe_changes(e),
                    ]
                })
                .collect();
            if human {
                let mut out = format!("{host_id}\n");
                out.push_str(&aligned(
                    &["SEQ", "OBSERVED AT (UTC)", "EVENT", "PHASE", "WHAT CHANGED"],
                    &rows,
                ));
                out.push_str(&format!("{} events\n", rows.len()));
                out
            } else {
                csv(&["seq", "observed_at", "event", "phase", "changes"], &rows)
            }
        }
    };
    crate::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `role: web → db; attributes.env: (none) → prod`, or the initial state of a first event.
fn describe_changes(e: &HistoryEntry) -> String {
    if let Some(s) = &e.state {
        let mut parts = vec![
            format!("hostname={}", s.hostname),
            format!("status={}", s.provider_status),
        ];
        for (k, v) in [
            ("region", &s.region),
            ("zone", &s.zone),
            ("role", &s.role),
            ("team", &s.team),
            ("type", &s.machine_type),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if !s.addresses.is_empty() {
            parts.push(format!("addresses={}", s.addresses.join(",")));
        }
        parts.extend(s.attributes.iter().map(|(k, v)| format!("{k}={v}")));
        return parts.join(" ");
    }
    if e.changes.is_empty() {
        return "(nothing; observed again)".into();
    }
    e.changes
        .iter()
        .map(|c| {
            format!(
                "{}: {} → {}",
                c.field,
                c.old.as_deref().unwrap_or("(none)"),
                c.new.as_deref().unwrap_or("(none)")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Finds a Host by id, object name or host name.
async fn find_host(api: &Api<Host>, wanted: &str, namespace: &str) -> Result<Host> {
    let by_name = if wanted.contains('/') {
        object_name(wanted)
    } else {
        wanted.to_owned()
    };
    if let Some(host) = api.get_opt(&by_name).await.with_context(|| {
        format!(
            "cannot read Host {by_name} in namespace {namespace}{}",
            crate::read::client_url()
        )
    })? {
        return Ok(host);
    }
    let all = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list Hosts in namespace {namespace}"))?;
    let mut matches: Vec<Host> = all
        .items
        .into_iter()
        .filter(|h| {
            h.status
                .as_ref()
                .is_some_and(|s| s.hostname == wanted || s.host_id == wanted)
        })
        .collect();
    match matches.len() {
        0 => Err(InventoryError::UnknownHost {
            host: wanted.to_owned(),
            place: format!("namespace {namespace}"),
        }
        .into()),
        1 => Ok(matches.remove(0)),
        n => bail!(
            "{n} hosts are named {wanted:?}; give a host id instead: {}",
            matches
                .iter()
                .filter_map(|h| h.status.as_ref().map(|s| s.host_id.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn history_from_objects(args: &HistoryArgs) -> Result<(String, Vec<HistoryEntry>)> {
    let client = crate::kube_client().await?;
    let ns = &args.read.scope.namespace;
    let api: Api<Host> = Api::namespaced(client.clone(), ns);
    let host = find_host(&api, &args.host, ns).await?;
    let status = host
        .status
        .with_context(|| format!("Host {} has no status yet", args.host))?;
    let mut entries = HistoryStore::new(client, ns).read(&status.host_id).await?;
    // Entries beyond the Host's count belong to a write still in progress.
    entries.truncate(usize::try_from(status.event_count).unwrap_or(0));
    Ok((status.host_id, entries))
}

async fn history_from_log(args: &HistoryArgs) -> Result<(String, Vec<HistoryEntry>)> {
    let kafka = args.read.kafka()?;
    // One host's events, folded the way the projector folds them to write its history.
    let wanted = args.host.clone();
    let mut record: Option<HostRecord> = None;
    let mut entries = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    hostledger_inventory::source::for_each_event(&kafka, |event, position| {
        let matches = event.host_id == wanted
            || object_name(&event.host_id) == wanted
            || event.state.name == wanted;
        if !matches {
            return;
        }
        ids.insert(event.host_id.clone());
        if record.as_ref().is_some_and(|r| r.host_id != event.host_id) {
            return;
        }
        let changes = record
            .as_ref()
            .filter(|r| !r.has_applied(position))
            .map(|r| event.state.changes_from(&r.state));
        let first = record.is_none();
        let outcome = hostledger_projector::fold::apply(&mut record, event, position);
        if outcome == Outcome::Applied {
            let r = record.as_ref().expect("just folded");
            entries.push(entry(
                event,
                position,
                r.event_count,
                r,
                if first { None } else { changes },
            ));
        }
    })
    .await?;
    if ids.len() > 1 {
        bail!(
            "{} hosts are named {wanted:?}; give a host id instead: {}",
            ids.len(),
            ids.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    match record {
        Some(r) => Ok((r.host_id, entries)),
        None => Err(InventoryError::UnknownHost {
            host: wanted,
            place: args.read.describe_source(),
        }
        .into()),
    }
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
    let hosts: Vec<ReportHost> = inventory
        .hosts
        .iter()
        .map(|h| {
            let r = &h.record;
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
                labels: h.labels.clone(),
            }
        })
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
    crate::write_atomically(&args.html, page.as_bytes())?;
    crate::print_out(&format!(
        "wrote {} ({} hosts as of {} UTC, {} KiB)\n",
        args.html.display(),
        inventory.hosts.len(),
        short_time(at),
        page.len().div_ceil(1024)
    ))?;
    Ok(ExitCode::SUCCESS)
}

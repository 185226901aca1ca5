//! `hostledger hosts`: the Hosts of a namespace with their time in service.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hostledger_projector::Host;
use hostledger_projector::fold::HostRecord;
use hostledger_schemas::Timestamp;
use kube::api::{Api, ListParams};

/// `hostledger hosts`.
#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Namespace of the Host objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = "hostledger"
    )]
    pub namespace: String,

    /// Label selector, e.g. `role=log,provider=dc`.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON array.
    Json,
}

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

/// Lists Hosts and prints them.
pub async fn run(args: HostsArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let api: Api<Host> = Api::namespaced(client, &args.namespace);
    let mut params = ListParams::default();
    if let Some(selector) = &args.selector {
        params = params.labels(selector);
    }
    let list = api
        .list(&params)
        .await
        .with_context(|| format!("cannot list Hosts in namespace {:?}", args.namespace))?;
    let now = Timestamp::from(chrono::Utc::now());
    let mut rows: Vec<(String, HostRecord)> = Vec::new();
    for host in list.items {
        let name = host.metadata.name.unwrap_or_default();
        let Some(status) = host.status else { continue };
        match status.to_record() {
            Ok(record) => rows.push((name, record)),
            Err(e) => eprintln!("warning: Host {name}: {e}"),
        }
    }
    rows.sort_by(|a, b| a.1.host_id.cmp(&b.1.host_id));
    match args.output {
        Output::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(name, r)| {
                    serde_json::json!({
                        "name": name,
                        "hostId": r.host_id,
                        "hostname": r.state.name,
                        "provider": r.provider,
                        "region": r.state.region,
                        "role": r.state.role,
                        "team": r.state.team,
                        "phase": r.phase.as_str(),
                        "firstSeenAt": r.first_seen_at.to_string(),
                        "inServiceSeconds": r.in_service_micros_at(now) / 1_000_000,
                    })
                })
                .collect();
            crate::print_out(&format!("{}\n", serde_json::to_string_pretty(&items)?))?;
        }
        Output::Table => {
            let header = [
                "HOST ID",
                "HOSTNAME",
                "PROVIDER",
                "REGION",
                "ROLE",
                "TEAM",
                "PHASE",
                "IN SERVICE",
                "FIRST SEEN",
            ];
            let table: Vec<[String; 9]> = rows
                .iter()
                .map(|(_, r)| {
                    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                    [
                        r.host_id.clone(),
                        r.state.name.clone(),
                        r.provider.clone(),
                        dash(&r.state.region),
                        dash(&r.state.role),
                        dash(&r.state.team),
                        r.phase.to_string(),
                        human_duration(r.in_service_micros_at(now)),
                        r.first_seen_at
                            .to_datetime()
                            .map_or_else(|| "-".into(), |d| d.format("%Y-%m-%d %H:%M").to_string()),
                    ]
                })
                .collect();
            let mut widths = header.map(str::len);
            for row in &table {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let mut out = String::new();
            let mut line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                out.push_str(padded.join("  ").trim_end());
                out.push('\n');
            };
            line(header.to_vec());
            for row in &table {
                line(row.iter().map(String::as_str).collect());
            }
            out.push_str(&format!(
                "{} hosts in namespace {}\n",
                table.len(),
                args.namespace
            ));
            crate::print_out(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::human_duration;

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
}

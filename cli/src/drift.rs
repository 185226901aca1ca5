//! `hostledger drift`: the hosts that are not what their `spec.expected` says.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use hostledger_model::Host;
use hostledger_model::drift::differences;
use kube::api::{Api, ListParams};

use crate::audit::Output;
use crate::print_out;
use crate::read::Scope;

/// `hostledger drift`.
#[derive(Debug, Args)]
#[command(
    after_help = "Declare what a host should be in its spec (the projector never writes the spec):

  kubectl -n hostledger patch host dc.pdx1.px04114-d9f2d683a7 --type merge \\
    -p '{\"spec\":{\"expected\":{\"role\":\"db\",\"phase\":\"InService\",\"labels\":{\"tier\":\"gold\"}}}}'

Compared: role, team, region, phase, and labels of the Host. The projector keeps the result in
status.drift (kubectl get hosts -o wide shows a Drifted column); this command compares the
spec with the status itself, so it is right also while no projector runs. Exit status 0 when
nothing drifted, 1 on errors, 6 when some host drifted (for scripts and CI)."
)]
pub struct DriftArgs {
    /// Which Hosts.
    #[command(flatten)]
    pub scope: Scope,
    /// Also list the hosts that are what they should be.
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Exit code when a host drifted.
pub const EXIT_DRIFTED: u8 = 6;

/// `hostledger drift`.
pub async fn run(args: DriftArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let api: Api<Host> = Api::namespaced(client, &args.scope.namespace);
    let mut params = ListParams::default();
    if let Some(s) = args.scope.selector.as_ref().filter(|s| !s.is_empty()) {
        params = params.labels(s.as_str());
    }
    let mut hosts = hostledger_k8s::list_all(&api, params, "Hosts").await?;
    hosts.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // (host, hostname, host id, field, expected, actual); a host without differences is
    // one row with empty field when --all.
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut declared = 0;
    let mut drifted = 0;
    for host in &hosts {
        let Some(expected) = host.spec.expected.as_ref() else {
            continue;
        };
        declared += 1;
        let name = host.metadata.name.clone().unwrap_or_default();
        let (hostname, host_id) = host
            .status
            .as_ref()
            .map(|s| (s.state.name.clone(), s.host_id.clone()))
            .unwrap_or_default();
        let diffs = differences(expected, host);
        if !diffs.is_empty() {
            drifted += 1;
        } else if args.all {
            rows.push([
                name.clone(),
                hostname.clone(),
                host_id.clone(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for d in diffs {
            rows.push([
                name.clone(),
                hostname.clone(),
                host_id.clone(),
                d.field,
                d.expected,
                d.actual,
            ]);
        }
    }
    let header = ["HOST", "HOSTNAME", "HOST-ID", "FIELD", "EXPECTED", "ACTUAL"];
    let text = match args.output {
        Output::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "host": r[0], "hostname": r[1], "hostId": r[2],
                        "field": r[3], "expected": r[4], "actual": r[5],
                    })
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&items)?)
        }
        Output::Csv => {
            let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
            hostledger_inventory::table::csv(&header, &rows)
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut r = r.to_vec();
                    if r[3].is_empty() {
                        r[3] = "(as expected)".into();
                    }
                    r
                })
                .collect();
            let mut out = if rows.is_empty() {
                String::new()
            } else {
                hostledger_inventory::table::aligned(&header, &rows)
            };
            out.push_str(&format!(
                "{drifted} of {declared} hosts with spec.expected drifted ({} Hosts in namespace {})\n",
                hosts.len(),
                args.scope.namespace
            ));
            out
        }
    };
    print_out(&text)?;
    Ok(if drifted > 0 {
        ExitCode::from(EXIT_DRIFTED)
    } else {
        ExitCode::SUCCESS
    })
}

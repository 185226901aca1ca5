//! `hostledger groups`, and the HostGroup lookups of `--group` and the lock budgets.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hostledger_inventory::HostView;
use hostledger_model::defaults::defaults;
use hostledger_model::group::{HostGroup, Member};
use hostledger_model::names::{OWNED_LABELS, labels};
use kube::api::{Api, ListParams};

use crate::print_out;

/// Output of `groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupsOutput {
    /// Aligned columns.
    Table,
    /// The groups' specs and statuses as a JSON array.
    Json,
}

/// `hostledger groups`.
#[derive(Debug, Args)]
#[command(
    after_help = "A HostGroup names its members with a label selector and/or a list of hosts:

  apiVersion: hostledger.dev/v1alpha1
  kind: HostGroup
  metadata: {name: db-pdx1, namespace: hostledger}
  spec:
    selector: role=db,region=pdx1
    owner: data-team
    expectedSize: 3
    minInService: 2     # a lock that would leave fewer available is refused
    maxLocked: 1        # at most one member locked at a time

The projector keeps its status current (members, in service, locked, available, by phase,
conditions BelowMinimum and Undersized); `uptime --group NAME`, `hosts --group NAME` and
`report --group NAME` read its members, as of any time."
)]
pub struct GroupsArgs {
    /// Namespace of the HostGroup objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = defaults().namespace.as_str()
    )]
    pub namespace: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = GroupsOutput::Table)]
    pub output: GroupsOutput,
}

/// The HostGroup `name` in `namespace`, with an error that says how to list them.
pub async fn get(namespace: &str, name: &str) -> Result<HostGroup> {
    let client = crate::kube_client().await?;
    let api: Api<HostGroup> = Api::namespaced(client, namespace);
    api.get_opt(name)
        .await
        .with_context(|| format!("cannot read HostGroup {name} in namespace {namespace}"))?
        .with_context(|| {
            format!(
                "no HostGroup {name:?} in namespace {namespace}; `hostledger groups` lists them"
            )
        })
}

/// Every HostGroup in `namespace`; `None` when the HostGroup CRD is not installed.
pub async fn list(client: &kube::Client, namespace: &str) -> Result<Option<Vec<HostGroup>>> {
    let api: Api<HostGroup> = Api::namespaced(client.clone(), namespace);
    match hostledger_k8s::list_all(&api, ListParams::default(), "HostGroups").await {
        Ok(groups) => Ok(Some(groups)),
        Err(hostledger_k8s::K8sError::Api {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a host is to a group as of the view's time: the labels the projector derives from
/// the host's state then, over the object's other labels.
pub fn member_as_of(view: &HostView) -> Member {
    let mut all = view.labels.clone();
    all.retain(|k, _| !OWNED_LABELS.contains(&k.as_str()));
    all.extend(labels(&view.record));
    Member {
        name: view.name.clone(),
        host_id: view.record.host_id.clone(),
        labels: all,
        phase: Some(view.record.phase),
        locked: false,
        drifted: false,
    }
}

/// `hostledger groups`.
pub async fn run(args: GroupsArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let Some(mut groups) = list(&client, &args.namespace).await? else {
        bail!("the HostGroup CRD is not installed: kubectl apply --server-side -k deploy/crds/");
    };
    groups.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let text = match args.output {
        GroupsOutput::Json => format!("{}\n", serde_json::to_string_pretty(&groups)?),
        GroupsOutput::Table if groups.is_empty() => {
            format!("no host groups in namespace {}\n", args.namespace)
        }
        GroupsOutput::Table => {
            let opt = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    let s = g.status.clone().unwrap_or_default();
                    let conditions: Vec<String> = s
                        .conditions
                        .iter()
                        .filter(|c| c.status == "True")
                        .map(|c| format!("{}: {}", c.type_, c.message))
                        .collect();
                    vec![
                        g.metadata.name.clone().unwrap_or_default(),
                        g.spec.selector.clone().unwrap_or_default(),
                        s.members.to_string(),
                        s.in_service.to_string(),
                        s.locked.to_string(),
                        s.available.to_string(),
                        opt(g.spec.min_in_service),
                        opt(g.spec.expected_size),
                        if conditions.is_empty() {
                            "-".to_owned()
                        } else {
                            conditions.join("; ")
                        },
                    ]
                })
                .collect();
            hostledger_inventory::table::aligned(
                &[
                    "GROUP",
                    "SELECTOR",
                    "MEMBERS",
                    "IN-SERVICE",
                    "LOCKED",
                    "AVAILABLE",
                    "MIN",
                    "EXPECTED",
                    "CONDITIONS",
                ],
                &rows,
            )
        }
    };
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

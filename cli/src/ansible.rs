//! `hostledger ansible --list | --host NAME`: the Ansible dynamic inventory protocol, from
//! the Host objects. Ansible passes no other arguments to an inventory script, so every
//! setting also comes from an environment variable (see deploy/hostledger-ansible-inventory).

use hostledger_model::defaults::defaults;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use hostledger_inventory::ansible::{self, AnsibleSettings, GroupKey};
use hostledger_inventory::source::{self, InventoryError};
use hostledger_inventory::{LabelSelector, Query};

use crate::read::{PhaseArg, included_phases, parse_selector};

/// `hostledger ansible`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["list", "host"])))]
pub struct AnsibleArgs {
    /// Print every group and host, with all host variables under `_meta.hostvars`.
    #[arg(long)]
    pub list: bool,

    /// Print the variables of one host (inventory name, Host object name or host id).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Namespace of the Host objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = defaults().namespace.as_str()
    )]
    pub namespace: String,

    /// Only hosts whose labels match (kubectl syntax), e.g. `provider=aws,role in (log,db)`.
    #[arg(long, short = 'l', env = "HOSTLEDGER_ANSIBLE_SELECTOR", value_parser = parse_selector)]
    pub selector: Option<LabelSelector>,

    /// Fields whose values make groups (comma-separated): provider, region, zone, role, team,
    /// machine_type, label:KEY, attribute:KEY. Groups are named FIELD_VALUE (role_log).
    /// Phase groups (in_service, retired, ...) are always made.
    #[arg(
        long,
        env = "HOSTLEDGER_ANSIBLE_GROUPS",
        value_delimiter = ',',
        default_value = "provider,region,role,team"
    )]
    pub groups: Vec<GroupKey>,

    /// Also list hosts in these phases (comma-separated); only in-service hosts by default.
    /// `--include retired` makes a `retired` group for decommissioning playbooks.
    #[arg(
        long,
        env = "HOSTLEDGER_ANSIBLE_INCLUDE",
        value_delimiter = ',',
        value_enum
    )]
    pub include: Vec<PhaseArg>,

    /// Leave out hosts someone holds a lock on (`hostledger locks`). Without it, locked hosts
    /// are listed and also form the group `locked` (`--limit '!locked'` skips them per run).
    #[arg(long, env = "HOSTLEDGER_ANSIBLE_EXCLUDE_LOCKED")]
    pub exclude_locked: bool,
}

impl AnsibleArgs {
    fn settings(&self) -> AnsibleSettings {
        let phases = included_phases(&self.include);
        AnsibleSettings {
            group_keys: self.groups.clone(),
            phases,
            exclude_locked: self.exclude_locked,
            host_groups: Vec::new(),
        }
    }
}

/// Prints the inventory or one host's variables.
pub async fn run(args: AnsibleArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let query = Query {
        selector: args.selector.clone().unwrap_or_default(),
        as_of: None,
        full_intervals: false,
    };
    let inventory = source::from_objects(client, &args.namespace, &query)
        .await
        .with_context(|| {
            format!(
                "cannot read the inventory from the Kubernetes API server{}",
                crate::read::client_url()
            )
        })?;
    let mut settings = args.settings();
    settings.host_groups = crate::groups::list(&crate::kube_client().await?, &args.namespace)
        .await?
        .unwrap_or_default();
    let value = match &args.host {
        Some(name) => match ansible::host(&inventory.hosts, &settings, name) {
            Some(vars) => vars,
            None => {
                if inventory.hosts.iter().any(|h| {
                    h.record.state.name == *name || h.name == *name || h.record.host_id == *name
                }) {
                    bail!(
                        "host {name:?} is not in a listed phase; add --include (HOSTLEDGER_ANSIBLE_INCLUDE) to list it"
                    );
                }
                return Err(InventoryError::UnknownHost {
                    host: name.clone(),
                    place: format!("namespace {}", args.namespace),
                }
                .into());
            }
        },
        None => ansible::list(&inventory.hosts, &settings),
    };
    crate::print_out(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    Ok(ExitCode::SUCCESS)
}

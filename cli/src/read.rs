//! Flags and plumbing shared by the commands that read the inventory (`hosts`, `uptime`,
//! `history`, `ansible`, `prometheus-sd`, `report`): where to read from, which hosts, as of
//! when.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hostledger_inventory::source::{self, check_as_of};
use hostledger_inventory::{Inventory, LabelSelector, Query};
use hostledger_kafka::{KafkaClients, KafkaSettings};
use hostledger_model::defaults::defaults;
use hostledger_schemas::Timestamp;

use crate::KafkaArgs;

/// Where answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// The Host and HostHistory objects in the API server (fast).
    Objects,
    /// The events topic in Kafka, folded in memory (the source of truth; slower).
    Log,
}

/// The Hosts a command reads: a namespace and a label selector.
#[derive(Debug, Clone, Args)]
pub struct Scope {
    /// Namespace of the Host objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = defaults().namespace.as_str()
    )]
    pub namespace: String,

    /// Only hosts whose labels match this selector, in kubectl's syntax: `role=log`,
    /// `provider in (aws,dc)`, `team!=infra`, `!team`. Projector labels: provider, region,
    /// role, team, phase.
    #[arg(long, short = 'l', value_parser = parse_selector)]
    pub selector: Option<LabelSelector>,
}

/// Which hosts, as of when, from where.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// Which Hosts.
    #[command(flatten)]
    pub scope: Scope,

    /// The inventory as it stood at this time (RFC 3339, e.g. 2026-06-30T12:00:00Z, or a date,
    /// 2026-06-30, meaning its start in UTC): events observed up to then. Default: now.
    #[arg(long, value_parser = hostledger_model::time::parse_time)]
    pub as_of: Option<Timestamp>,

    /// Where to read: the Host/HostHistory objects, or the log itself.
    #[arg(long, value_enum, default_value_t = SourceArg::Objects)]
    pub source: SourceArg,

    /// Only the members of this HostGroup (`hostledger groups`): its named hosts, and the
    /// hosts its selector matches with their labels as of --as-of (the same from both
    /// sources).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,

    /// Kafka connection (for --source log).
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Parses a `--selector` value (clap value parser): a malformed selector is a usage error.
pub fn parse_selector(text: &str) -> Result<LabelSelector, String> {
    LabelSelector::parse(text).map_err(|e| e.reason)
}

/// A phase whose hosts are listed besides those in service (`--include`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    /// Being set up.
    Provisioning,
    /// Stopped or in maintenance.
    OutOfService,
    /// Gone from the provider's listing.
    Missing,
    /// Terminated or decommissioned.
    Retired,
    /// Every phase.
    All,
}

/// In service, plus the phases of `--include`.
pub fn included_phases(
    include: &[PhaseArg],
) -> std::collections::BTreeSet<hostledger_schemas::Lifecycle> {
    use hostledger_schemas::Lifecycle;
    let mut phases = std::collections::BTreeSet::from([Lifecycle::InService]);
    for p in include {
        match p {
            PhaseArg::Provisioning => phases.insert(Lifecycle::Provisioning),
            PhaseArg::OutOfService => phases.insert(Lifecycle::OutOfService),
            PhaseArg::Missing => phases.insert(Lifecycle::Missing),
            PhaseArg::Retired => phases.insert(Lifecycle::Retired),
            PhaseArg::All => {
                phases.extend(Lifecycle::ALL);
                true
            }
        };
    }
    phases
}

impl ReadArgs {
    /// The query these flags describe.
    pub fn query(&self, full_intervals: bool) -> Query {
        Query {
            selector: self.scope.selector.clone().unwrap_or_default(),
            as_of: self.as_of,
            full_intervals,
        }
    }

    /// Kafka clients from the flags.
    pub fn kafka(&self) -> Result<KafkaClients> {
        Ok(KafkaClients::new(
            self.kafka.apply(KafkaSettings::default()),
        )?)
    }

    /// Describes the source for people.
    pub fn describe_source(&self) -> String {
        match self.source {
            SourceArg::Objects => format!("Host objects in namespace {}", self.scope.namespace),
            SourceArg::Log => {
                let settings = self.kafka.apply(KafkaSettings::default());
                format!("the log (topic {})", settings.topics.events)
            }
        }
    }

    /// Reads the inventory; refuses as-of times in the future or before the first event.
    /// Returns it with the time its figures are computed at.
    pub async fn load(&self, full_intervals: bool) -> Result<(Inventory, Timestamp)> {
        let now = Timestamp::from(chrono::Utc::now());
        if let Some(t) = self.as_of {
            check_as_of(t, None, now)?;
        }
        let query = self.query(full_intervals);
        let inventory = match self.source {
            SourceArg::Objects => {
                let client = crate::kube_client().await?;
                let url = client_url();
                source::from_objects(client, &self.scope.namespace, &query)
                    .await
                    .with_context(|| {
                        format!("cannot read the inventory from the Kubernetes API server{url}")
                    })?
            }
            SourceArg::Log => source::from_log(&self.kafka()?, &query).await?,
        };
        if let Some(t) = self.as_of {
            check_as_of(t, inventory.first_event_at, now)?;
        }
        let mut inventory = inventory;
        if let Some(name) = &self.group {
            let group = crate::groups::get(&self.scope.namespace, name).await?;
            inventory
                .hosts
                .retain(|view| group.contains(&crate::groups::member_as_of(view)));
            if inventory.hosts.is_empty() {
                anyhow::bail!(
                    "group {name} has no members{} in {}",
                    self.as_of
                        .map(|t| format!(" as of {}", hostledger_model::time::exact_time(t)))
                        .unwrap_or_default(),
                    self.describe_source()
                );
            }
        }
        Ok((inventory, self.as_of.unwrap_or(now)))
    }
}

/// ` at URL` of the API server from KUBECONFIG, for error messages.
pub fn client_url() -> String {
    kube::config::Kubeconfig::read()
        .ok()
        .and_then(|c| {
            let context = c.current_context.clone()?;
            let cluster = c
                .contexts
                .iter()
                .find(|n| n.name == context)?
                .context
                .as_ref()?
                .cluster
                .clone();
            c.clusters
                .iter()
                .find(|n| n.name == cluster)?
                .cluster
                .as_ref()?
                .server
                .clone()
        })
        .map(|s| format!(" at {s}"))
        .unwrap_or_default()
}

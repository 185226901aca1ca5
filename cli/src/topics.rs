//! `hostledger topics`: create hostledger's Kafka topics.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use hostledger_kafka::acl::KafkaIdentity;
use hostledger_kafka::{KafkaClients, KafkaSettings};
use hostledger_model::defaults::defaults;

use crate::kafka::KafkaArgs;
use crate::print_out;

/// `hostledger topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// What to do with the topics.
    #[command(subcommand)]
    pub action: TopicsAction,
}

/// Topic actions.
#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// Create the events, dead-letter and fetcher-state topics if they do not exist.
    Create {
        /// Partitions of the keyed topics (fixed once created).
        #[arg(long, default_value_t = defaults().topic_partitions, value_parser = clap::value_parser!(i32).range(1..=1000))]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10))]
        replication: i32,
        /// Kafka connection.
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// List the ACLs on the brokers (the allow rules of topics, groups and transactional ids),
    /// one per line as `grant` prints them.
    Acls(AclsArgs),
    /// Allow an identity what its role needs on the topics, and nothing else (creates Kafka
    /// ACLs; run as an administrator of the brokers). Prints each ACL.
    ///
    /// Roles: `fetcher` writes the events topic (no reading), reads and writes the
    /// fetcher-state topic, and publishes only as sources whose names start with --scope;
    /// `projector` reads the events topic, records lock facts on it, writes the dead-letter
    /// topic and consumes in --group; `reader` reads the events and dead-letter topics and may
    /// consume in groups named hostledger-reader-...; `backfill` is a fetcher that may also
    /// read the events topic (an archive is checked against what the log holds).
    #[command(after_help = "Examples:\n  \
        hostledger topics grant fetcher --scope aws-eu-west-1 --principal User:fetcher-aws-eu-west-1\n  \
        hostledger topics grant projector --principal User:hostledger-projector\n  \
        hostledger topics grant reader --principal User:hostledger-reader --dry-run")]
    Grant {
        /// The role: fetcher, projector, reader or backfill.
        role: Role,
        /// Who: `User:` and the common name of the identity's client certificate.
        #[arg(long, value_parser = parse_principal)]
        principal: String,
        /// A fetcher's region or provider scope: it may publish only as sources named
        /// SCOPE... (required for fetcher).
        #[arg(long, required_if_eq_any([("role", "fetcher"), ("role", "backfill")]))]
        scope: Option<String>,
        /// The projector's consumer group.
        #[arg(long, default_value_t = defaults().projector_group.clone())]
        group: String,
        /// Print the ACLs without creating them.
        #[arg(long)]
        dry_run: bool,
        /// Kafka connection (an administrator's identity).
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

/// `topics acls`: who may do what.
#[derive(Debug, Args)]
pub struct AclsArgs {
    /// Only this principal's (User:NAME).
    #[arg(long, value_parser = parse_principal)]
    pub principal: Option<String>,
    /// Kafka connection (an identity allowed to describe the cluster's ACLs, e.g. an
    /// administrator).
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// A role on the Kafka side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Publishes host events and its own state.
    Fetcher,
    /// Consumes the events into the API server.
    Projector,
    /// Reads the log.
    Reader,
    /// Imports archives (`hostledger backfill`): a fetcher that also reads the events.
    Backfill,
}

/// `User:NAME`, as the brokers name principals.
fn parse_principal(s: &str) -> Result<String, String> {
    match s.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(format!(
            "{s:?} is not a principal: write User:NAME, NAME being the common name of the identity's client certificate"
        )),
    }
}

/// Creates the topics that do not exist, or grants a role on them.
pub async fn run(args: TopicsArgs) -> Result<ExitCode> {
    let (partitions, replication, kafka) = match args.action {
        TopicsAction::Create {
            partitions,
            replication,
            kafka,
        } => (partitions, replication, kafka),
        TopicsAction::Acls(args) => return list_acls(&args).await,
        TopicsAction::Grant {
            role,
            principal,
            scope,
            group,
            dry_run,
            kafka,
        } => {
            let identity = match role {
                Role::Fetcher => KafkaIdentity::Fetcher {
                    scope: scope.unwrap_or_default(),
                },
                Role::Projector => KafkaIdentity::Projector { group },
                Role::Reader => KafkaIdentity::Reader,
                Role::Backfill => KafkaIdentity::Backfill {
                    scope: scope.unwrap_or_default(),
                },
            };
            return grant(&identity, &principal, dry_run, &kafka).await;
        }
    };
    let clients = KafkaClients::new(kafka.apply(KafkaSettings::default()))?;
    clients
        .ensure_topics(&clients.standard_topics(partitions), replication)
        .await?;
    let t = &clients.settings().topics;
    print_out(&format!(
        "topics ready: {}, {}, {}\n",
        t.events, t.dead_letter, t.fetcher_state
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints and (unless `dry_run`) creates the ACLs of `identity` for `principal`.
async fn grant(
    identity: &KafkaIdentity,
    principal: &str,
    dry_run: bool,
    kafka: &KafkaArgs,
) -> Result<ExitCode> {
    let clients = KafkaClients::new(kafka.apply(KafkaSettings::default()))?;
    let acls = identity.acls(principal, &clients.settings().topics);
    let mut text: String = acls.iter().map(|a| format!("{a}\n")).collect();
    if dry_run {
        text.push_str("(dry run: nothing created)\n");
    } else {
        clients.create_acls_async(acls.clone()).await?;
        text.push_str(&format!("created {} ACLs\n", acls.len()));
    }
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the ACLs on the brokers, one per line.
async fn list_acls(args: &AclsArgs) -> Result<ExitCode> {
    let clients = KafkaClients::new(args.kafka.apply(KafkaSettings::default()))?;
    let acls = clients.describe_acls_async().await?;
    let text: String = acls
        .iter()
        .filter(|a| args.principal.as_ref().is_none_or(|p| &a.principal == p))
        .map(|a| format!("{a}\n"))
        .collect();
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

//! `hostledger topics`: create hostledger's Kafka topics.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
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
}

/// Creates the topics that do not exist.
pub async fn run(args: TopicsArgs) -> Result<ExitCode> {
    let TopicsAction::Create {
        partitions,
        replication,
        kafka,
    } = args.action;
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

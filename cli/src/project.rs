//! `hostledger project` and `hostledger replay`: the projector, live or from offset 0.

use hostledger_model::defaults::defaults;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use hostledger_k8s::HostStore;
use hostledger_kafka::renewal::RenewalConfig;
use hostledger_kafka::{KafkaClients, KafkaSettings};
use hostledger_projector::{Projector, ProjectorSettings, ReplaySettings};

use crate::kafka::KafkaArgs;
use crate::{kube_client, print_out};

/// `hostledger project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Namespace of the Host objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = defaults().namespace.as_str()
    )]
    pub namespace: String,

    /// Kafka consumer group; replicas sharing it split the partitions.
    #[arg(long, default_value = defaults().projector_group.as_str())]
    pub group: String,

    /// This replica's stable name in the group (Kafka static membership). A replica restarted
    /// under the same name (a StatefulSet's pod name, say) gets its partitions back at once;
    /// without one, a crashed replica's partitions wait until its consumer-group session times
    /// out (session.timeout.ms, 45 s by default). Every replica needs its own name: one that
    /// joins under a name in use takes over the partitions and the older process stops.
    /// Letters, digits, '.', '_' and '-', at most 249.
    #[arg(long, env = "HOSTLEDGER_INSTANCE_ID", value_parser = parse_instance_id)]
    pub instance_id: Option<String>,

    /// Exit 0 once every partition has been applied up to the end of the log.
    #[arg(long)]
    pub until_caught_up: bool,

    /// Most events per batch (each touched host is written once per batch).
    #[arg(long, default_value_t = defaults().projector_batch_events, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Most Host writes in flight at once.
    #[arg(long, default_value_t = defaults().max_in_flight, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_in_flight: u32,

    /// Where to serve /metrics, /healthz and /readyz (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: std::net::SocketAddr,

    /// Renew the Kafka client certificate before it expires at this endpoint of
    /// `hostledger approver --renew-listen` (https://HOST:PORT), authenticating with the
    /// current one; the new key and certificate replace the files of --kafka-cert and
    /// --kafka-key, and the projector reconnects with them between two batches.
    #[arg(long, value_name = "URL", env = "HOSTLEDGER_RENEWAL_URL")]
    pub renewal_url: Option<String>,

    /// The renewal endpoint's CA (PEM). Default: the brokers' CA (--kafka-ca).
    #[arg(long, value_name = "FILE", requires = "renewal_url")]
    pub renewal_ca: Option<std::path::PathBuf>,

    /// Renew this many seconds before expiry. Default: when a third of the certificate's
    /// lifetime is left.
    #[arg(long, value_name = "SECS", requires = "renewal_url")]
    pub renew_before_secs: Option<u64>,

    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `hostledger replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Namespace to build the Hosts in (it must exist). Replaying into the live namespace
    /// writes only what is missing; another namespace gives an isolated rebuild.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = defaults().namespace.as_str()
    )]
    pub namespace: String,

    /// Only events observed at or before this time (RFC 3339, e.g. 2026-06-30T00:00:00Z, or a
    /// date, 2026-06-30, meaning its start in UTC): the inventory as it stood then. Use a
    /// fresh namespace for it.
    #[arg(long, value_parser = hostledger_model::time::parse_time)]
    pub until: Option<hostledger_schemas::Timestamp>,

    /// Events folded in memory between writes; each touched host is written once per batch.
    #[arg(long, default_value_t = defaults().replay_batch_events, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Most writes in flight at once.
    #[arg(long, default_value_t = defaults().max_in_flight, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_in_flight: u32,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// A Kafka `group.instance.id` as hostledger accepts it: the characters of a topic name, so it
/// reads the same in logs, metrics and `kafka-consumer-groups --describe`.
fn parse_instance_id(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 249 {
        return Err("must be 1 to 249 characters".into());
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        Some(c) => Err(format!(
            "{c:?} is not allowed: use letters, digits, '.', '_' and '-' (e.g. projector-0)"
        )),
        None => Ok(value.to_owned()),
    }
}

/// Runs the projector daemon.
pub async fn project(args: ProjectArgs) -> Result<ExitCode> {
    let kafka = KafkaClients::new(args.kafka.apply(KafkaSettings::default()))?;
    let renewal = match args.renewal_url {
        Some(url) => {
            let config = RenewalConfig {
                url,
                ca_file: args.renewal_ca,
                before_expiry_secs: args.renew_before_secs,
            };
            let identity = config
                .identity(kafka.settings())
                .context("--renewal-url: renewing needs a client certificate and a CA")?;
            Some((identity, config))
        }
        None => None,
    };
    let client = kube_client().await?;
    let store = HostStore::new(client, &args.namespace);
    let metrics = std::sync::Arc::new(hostledger_projector::metrics::Metrics::default());
    let listener = hostledger_telemetry::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(hostledger_telemetry::serve(listener, metrics.clone()));
    let settings = ProjectorSettings {
        group_id: args.group,
        instance_id: args.instance_id,
        batch_max_events: args.batch_size as usize,
        batch_max_wait: Duration::from_millis(50),
        max_in_flight: args.max_in_flight as usize,
        until_caught_up: args.until_caught_up,
        renewal,
    };
    let stats = Projector::new(kafka, store, settings)
        .with_metrics(metrics)
        .run(crate::shutdown_signal())
        .await;
    server.abort();
    let stats = stats?;
    if args.until_caught_up {
        print_out(&format!(
            "caught up: {} events consumed, {} applied, {} already applied, {} dead-lettered; {} host writes, {} API requests\n",
            stats.consumed,
            stats.applied,
            stats.skipped,
            stats.dead_lettered,
            stats.hosts_written,
            stats.api_writes
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Rebuilds Hosts from the log.
pub async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let kafka = KafkaClients::new(args.kafka.apply(KafkaSettings::default()))?;
    let client = kube_client().await?;
    let settings = ReplaySettings {
        until: args.until,
        batch_max_events: args.batch_size as usize,
        max_in_flight: args.max_in_flight as usize,
        progress: !args.quiet,
    };
    let started = std::time::Instant::now();
    let stats =
        hostledger_projector::replay(&kafka, HostStore::new(client, &args.namespace), &settings)
            .await?;
    let a = &stats.apply;
    print_out(&format!(
        "replayed {} events in {:.1} s into namespace {}: {} applied, {} already applied or after --until, {} unusable; {} hosts written with {} API writes ({} Host, {} HostHistory)\n",
        stats.events,
        started.elapsed().as_secs_f64(),
        args.namespace,
        a.applied,
        a.skipped,
        stats.poison,
        a.hosts_written,
        a.api_writes(),
        a.host_requests,
        a.history_requests,
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_instance_id;

    #[test]
    fn instance_ids_are_checked() {
        assert_eq!(parse_instance_id("projector-0"), Ok("projector-0".into()));
        assert_eq!(parse_instance_id("a.b_c-9"), Ok("a.b_c-9".into()));
        let err = parse_instance_id("projector 0").expect_err("space");
        assert!(err.contains("' '") && err.contains("projector-0"), "{err}");
        assert!(parse_instance_id("").is_err());
        assert!(parse_instance_id(&"x".repeat(250)).is_err());
    }
}

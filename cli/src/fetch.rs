//! `hostledger fetch`: run the fetchers of a config file, once or as a daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use hostledger_producers::FetcherConfig;

use crate::kafka::KafkaArgs;
use crate::print_out;

/// `hostledger fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetcher config file (YAML); see deploy/examples/fetcher-dc.yaml.
    #[arg(long, short)]
    pub config: PathBuf,

    /// Do one pass of every provider, print what was published, and exit.
    #[arg(long)]
    pub once: bool,

    /// Where to serve /metrics, /healthz and /readyz while running (not with --once; port 0
    /// picks a free port).
    #[arg(long, default_value = "127.0.0.1:9465")]
    pub metrics_addr: std::net::SocketAddr,

    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Runs the fetchers.
pub async fn run(args: FetchArgs) -> Result<ExitCode> {
    let mut config = FetcherConfig::from_file(&args.config)?;
    config.kafka = args.kafka.apply(config.kafka);
    config.validate()?;
    let metrics = std::sync::Arc::new(hostledger_producers::FetcherMetrics::default());
    let server = if args.once {
        None
    } else {
        let listener = hostledger_telemetry::bind(args.metrics_addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
        Some(tokio::spawn(hostledger_telemetry::serve(
            listener,
            metrics.clone(),
        )))
    };
    let reports =
        hostledger_producers::run(&config, args.once, metrics, crate::shutdown_signal()).await;
    if let Some(server) = server {
        server.abort();
    }
    let reports = reports?;
    let mut text = String::new();
    for r in &reports {
        let kinds: Vec<String> = r
            .published
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        text.push_str(&format!(
            "{}: listed {} hosts, published {} events{}{}\n",
            r.provider,
            r.listed,
            r.total_published(),
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            },
            if r.problems.is_empty() {
                String::new()
            } else {
                format!(", {} bad entries:", r.problems.len())
            },
        ));
        for p in &r.problems {
            text.push_str(&format!("  {p}\n"));
        }
    }
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

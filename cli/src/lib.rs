//! The `hostledger` command line.
//!
//! - [`Cli`]: flags and subcommands.
//! - [`run`]: dispatches a parsed command line; the binary and the end-to-end tests both
//!   call it.
//! - [`read`]: flags shared by the commands that read the inventory (selector, as-of, source).
//! - [`audit`]: `uptime`, `history`, `hosts`, `report`.
//! - [`ansible`]: the Ansible dynamic inventory.
//! - [`prometheus`]: Prometheus file-based service discovery, kept current from a watch.
//! - [`watch`]: Host changes as they happen.

pub mod ansible;
pub mod audit;
pub mod prometheus;
pub mod read;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hostledger_kafka::{KafkaClients, KafkaSettings, Topics};
use hostledger_producers::FetcherConfig;
use hostledger_projector::{HistoryStore, HostStore, Projector, ProjectorSettings, ReplaySettings};

/// hostledger: an event-sourced inventory of machines.
///
/// Fetchers publish host-change events to Kafka; the projector folds them into `Host`
/// objects in a Kubernetes API server, where kubectl, Ansible and monitoring read them.
/// Kafka is found through --kafka-bootstrap (or HOSTLEDGER_KAFKA_BOOTSTRAP), the API server
/// through KUBECONFIG. `eval "$(scripts/stack env)"` sets both for the local stack.
#[derive(Debug, Parser)]
#[command(
    name = "hostledger",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HOSTLEDGER_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List providers, publish what changed to Kafka (one transaction per pass), repeat.
    Fetch(FetchArgs),
    /// Consume host events and maintain Host objects in the Kubernetes API server.
    Project(ProjectArgs),
    /// Rebuild Hosts and their history from offset 0 (optionally as of a time, into any
    /// namespace), with the live projector's fold and writes.
    Replay(ReplayArgs),
    /// The inventory now or as it stood at a past time: one line per host.
    Hosts(audit::HostsArgs),
    /// Time in service per host (first seen, in service since, total, share of its life), or
    /// per provider/region/role/team with totals; now or as of a past time.
    Uptime(audit::UptimeArgs),
    /// Every event of one host, with what changed.
    History(audit::HistoryArgs),
    /// One self-contained HTML page: hosts in service over time and a service timeline per
    /// host, filterable in the browser.
    Report(audit::ReportArgs),
    /// Ansible dynamic inventory (`ansible-inventory -i deploy/hostledger-ansible-inventory`
    /// calls it with --list or --host NAME).
    Ansible(ansible::AnsibleArgs),
    /// Prometheus file-based service discovery: write the targets file, and with --watch keep
    /// it current.
    PrometheusSd(prometheus::PrometheusSdArgs),
    /// Print Host changes as they happen, as lines or JSON.
    Watch(watch::WatchArgs),
    /// Print the CustomResourceDefinitions (Host, HostHistory) as YAML, or write them.
    Crd {
        /// Write one file per CRD into this directory (deploy/crds/ in the repository).
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Manage hostledger's Kafka topics.
    Topics(TopicsArgs),
}

/// Kafka connection flags shared by subcommands.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...). Overrides the config file, which overrides
    /// $HOSTLEDGER_KAFKA_BOOTSTRAP, which overrides 127.0.0.1:19092.
    #[arg(long)]
    pub kafka_bootstrap: Option<String>,

    /// Use topics PREFIX.host-events, PREFIX.host-events.dlq and PREFIX.fetcher-state
    /// instead of the hostledger.* defaults. Overrides the config file.
    #[arg(long, value_name = "PREFIX")]
    pub topic_prefix: Option<String>,

    /// Extra librdkafka option, passed through (repeatable), e.g.
    /// --kafka-option session.timeout.ms=10000. Overrides the config file.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
}

/// Parses `KEY=VALUE`.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

impl KafkaArgs {
    /// Applies the flags on top of `settings`.
    pub fn apply(&self, mut settings: KafkaSettings) -> KafkaSettings {
        if let Some(b) = &self.kafka_bootstrap {
            settings.bootstrap_servers.clone_from(b);
        }
        if let Some(prefix) = &self.topic_prefix {
            settings.topics = Topics::with_prefix(prefix);
        }
        settings.options.extend(self.kafka_options.iter().cloned());
        settings
    }
}

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

/// `hostledger project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Namespace of the Host objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = "hostledger"
    )]
    pub namespace: String,

    /// Kafka consumer group; replicas sharing it split the partitions.
    #[arg(long, default_value = "hostledger-projector")]
    pub group: String,

    /// Exit 0 once every partition has been applied up to the end of the log.
    #[arg(long)]
    pub until_caught_up: bool,

    /// Most events per batch (each touched host is written once per batch).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Most Host writes in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_in_flight: u32,

    /// Where to serve /metrics, /healthz and /readyz (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: std::net::SocketAddr,

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
        default_value = "hostledger"
    )]
    pub namespace: String,

    /// Only events observed at or before this time (RFC 3339, e.g. 2026-06-30T00:00:00Z, or a
    /// date, 2026-06-30, meaning its start in UTC): the inventory as it stood then. Use a
    /// fresh namespace for it.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<hostledger_schemas::Timestamp>,

    /// Events folded in memory between writes; each touched host is written once per batch.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Most writes in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_in_flight: u32,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Parses an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time(value: &str) -> Result<hostledger_schemas::Timestamp, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(hostledger_schemas::Timestamp(t.timestamp_micros()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        return Ok(hostledger_schemas::Timestamp(t.timestamp_micros()));
    }
    Err(format!(
        "{value:?} is neither an RFC 3339 time (2026-06-30T12:00:00Z) nor a date (2026-06-30)"
    ))
}

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
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1000))]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10))]
        replication: i32,
        /// Kafka connection.
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

/// Sets up logging on stderr. `HOSTLEDGER_LOG` (or `RUST_LOG`) filters, default `info`.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HOSTLEDGER_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        // The Kubernetes client logs a failed connection as an error of its own before
        // hostledger's one-line error says the same with context; keep the one line.
        .unwrap_or_else(|_| EnvFilter::new("info,kube_client::client::builder=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Writes `text` to stdout. A closed pipe (`hostledger hosts | head`) is an
/// [`std::io::ErrorKind::BrokenPipe`] error, which the binary treats as a normal end.
pub fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether an error is only a closed stdout pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Picks the TLS crypto provider for the process. Two TLS stacks meet in hostledger (the
/// Kubernetes client's and the AWS SDK's), so rustls cannot choose by itself; call this before
/// building either client. Calling it again does nothing.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The Kubernetes client from KUBECONFIG (or the in-cluster config), with an error that says
/// what to set.
pub async fn kube_client() -> Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client: set KUBECONFIG (eval \"$(scripts/stack env)\" for the local stack)")
}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    init_tls();
    match cli.command {
        Command::Fetch(args) => fetch(args).await,
        Command::Project(args) => project(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Hosts(args) => audit::hosts(args).await,
        Command::Uptime(args) => audit::uptime(args).await,
        Command::History(args) => audit::history(args).await,
        Command::Report(args) => audit::report(args).await,
        Command::Ansible(args) => ansible::run(args).await,
        Command::PrometheusSd(args) => prometheus::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Crd { write: None } => {
            print_out(&hostledger_projector::crd::crd_yaml())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { write: Some(dir) } => {
            for (file, yaml) in hostledger_projector::crd::crd_documents() {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics(TopicsArgs {
            action:
                TopicsAction::Create {
                    partitions,
                    replication,
                    kafka,
                },
        }) => {
            let clients = KafkaClients::new(kafka.apply(KafkaSettings::default()))?;
            clients
                .ensure_topics(&clients.standard_topics(partitions), replication)
                .await?;
            let t = &clients.settings().topics;
            println!(
                "topics ready: {}, {}, {}",
                t.events, t.dead_letter, t.fetcher_state
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn fetch(args: FetchArgs) -> Result<ExitCode> {
    let mut config = FetcherConfig::from_file(&args.config)?;
    config.kafka = args.kafka.apply(config.kafka);
    config.validate()?;
    let metrics = std::sync::Arc::new(hostledger_producers::metrics::FetcherMetrics::default());
    let server = if args.once {
        None
    } else {
        let listener = hostledger_projector::metrics::bind(args.metrics_addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
        Some(tokio::spawn(hostledger_projector::metrics::serve(
            listener,
            metrics.clone(),
        )))
    };
    let reports = hostledger_producers::run(&config, args.once, metrics, shutdown_signal()).await;
    if let Some(server) = server {
        server.abort();
    }
    let reports = reports?;
    for r in &reports {
        let kinds: Vec<String> = r
            .published
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "{}: listed {} hosts, published {} events{}{}",
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
        );
        for p in &r.problems {
            println!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn project(args: ProjectArgs) -> Result<ExitCode> {
    let kafka = KafkaClients::new(args.kafka.apply(KafkaSettings::default()))?;
    let client = kube_client().await?;
    let store = HostStore::new(client.clone(), &args.namespace);
    let history = HistoryStore::new(client, &args.namespace);
    let metrics = std::sync::Arc::new(hostledger_projector::metrics::Metrics::default());
    let listener = hostledger_projector::metrics::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(hostledger_projector::metrics::serve(
        listener,
        metrics.clone(),
    ));
    let settings = ProjectorSettings {
        group_id: args.group,
        batch_max_events: args.batch_size as usize,
        batch_max_wait: Duration::from_millis(50),
        max_in_flight: args.max_in_flight as usize,
        until_caught_up: args.until_caught_up,
    };
    let stats = Projector::new(kafka, store, history, settings)
        .with_metrics(metrics)
        .run(shutdown_signal())
        .await;
    server.abort();
    let stats = stats?;
    if args.until_caught_up {
        println!(
            "caught up: {} events consumed, {} applied, {} already applied, {} dead-lettered; {} host writes, {} API requests",
            stats.consumed,
            stats.applied,
            stats.skipped,
            stats.dead_lettered,
            stats.hosts_written,
            stats.api_writes
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let kafka = KafkaClients::new(args.kafka.apply(KafkaSettings::default()))?;
    let client = kube_client().await?;
    let settings = ReplaySettings {
        until: args.until,
        batch_max_events: args.batch_size as usize,
        max_in_flight: args.max_in_flight as usize,
        progress: !args.quiet,
    };
    let started = std::time::Instant::now();
    let stats = hostledger_projector::replay(
        &kafka,
        HostStore::new(client.clone(), &args.namespace),
        HistoryStore::new(client, &args.namespace),
        &settings,
    )
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

/// Writes `bytes` to `path` so that readers see the old content or the new, never a part:
/// a temporary file in the same directory, flushed, then renamed over `path`.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

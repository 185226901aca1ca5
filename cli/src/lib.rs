//! The `hostledger` command line.
//!
//! - [`Cli`]: flags and subcommands.
//! - [`run`]: dispatches a parsed command line; the binary and the end-to-end tests both
//!   call it.
//! - [`fetch`], [`backfill`], [`project`], [`topics`]: the commands that write: fetchers,
//!   backfills from archives, the projector and replay, Kafka topics.
//! - [`kafka`]: the Kafka connection flags.
//! - [`read`]: flags shared by the commands that read the inventory (selector, as-of, source).
//! - [`audit`]: `uptime`, `history`, `hosts`, `report`.
//! - [`events`]: the log's events themselves.
//! - [`ansible`]: the Ansible dynamic inventory.
//! - [`prometheus`]: Prometheus file-based service discovery, kept current from a watch.
//! - [`watch`]: Host changes as they happen.
//! - [`migrate`]: `migrate history`, full history out of etcd.
//! - [`history_server`]: the history API, served from the log.
//! - [`locks`]: host locks: `lock`, `unlock`, `locks`, `with-lock`.
//! - [`drift`]: intent against reality: `drift`.
//! - [`enroll`]: enrollment of new fetchers: `token create`, `enroll`, `approver`.
//! - [`tls`]: TLS with client certificates for hostledger's own servers.
//! - [`groups`]: host groups: `groups`, and `--group` for the commands that read.

pub mod ansible;
pub mod audit;
pub mod backfill;
pub mod drift;
pub mod enroll;
pub mod events;
pub mod fetch;
pub mod groups;
pub mod history_index;
pub mod history_server;
pub mod kafka;
pub mod locks;
pub mod migrate;
pub mod project;
pub mod prometheus;
pub mod read;
pub mod tls;
pub mod topics;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

pub use kafka::KafkaArgs;

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

    /// The kubeconfig to reach the API server with, instead of $KUBECONFIG (or the in-cluster
    /// service account).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

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
    Fetch(fetch::FetchArgs),
    /// Publish the history in an archive of dated snapshots of a provider (exports, listings)
    /// as the events its fetcher would have published then; resumable, checked against the log.
    Backfill(backfill::BackfillArgs),
    /// Consume host events and maintain Host objects in the Kubernetes API server.
    Project(project::ProjectArgs),
    /// Move an installation written by an earlier version to this one (`migrate history`:
    /// full history out of etcd, to the history server).
    Migrate(migrate::MigrateArgs),
    /// Rebuild Hosts and their history from offset 0 (optionally as of a time, into any
    /// namespace), with the live projector's fold and writes.
    Replay(project::ReplayArgs),
    /// The inventory now or as it stood at a past time: one line per host.
    Hosts(audit::HostsArgs),
    /// Time in service per host (first seen, in service since, total, share of its life), or
    /// per provider/region/role/team with totals; now or as of a past time.
    ///
    /// Selected and grouped by the labels the projector derives (provider, region, role,
    /// team, phase), it is answered by the history server's index through the API server,
    /// as fresh as the log when asked, without listing the Hosts; by other labels, or a
    /// --group, from the Host objects.
    Uptime(audit::UptimeArgs),
    /// Every event of one host, with what changed.
    History(audit::HistoryArgs),
    /// Serve every host's full history, read from the log, as the Kubernetes API
    /// hosthistories.history.hostledger.dev (behind kube-apiserver's aggregation layer).
    HistoryServer(history_server::HistoryServerArgs),
    /// The events in the log as they are (JSON lines or a table), filtered by time, host,
    /// kind and labels; from the beginning, or on as they arrive with --follow.
    Events(events::EventsArgs),
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
    /// Hosts that are not what their spec.expected says (role, team, region, phase, labels).
    Drift(drift::DriftArgs),
    /// Host groups (clusters, pools): members, in service, locked, available, budgets, and
    /// their conditions.
    Groups(groups::GroupsArgs),
    /// Lock hosts for maintenance or automation: one holder per host, with a reason and a
    /// TTL; everyone else is told who holds it.
    Lock(locks::LockArgs),
    /// Release host locks you hold (or, with --force and the permission, break others').
    Unlock(locks::UnlockArgs),
    /// List host locks: who holds which host, since when, why.
    Locks(locks::LocksArgs),
    /// Run a command while holding host locks: renewed while it runs, released when it ends.
    WithLock(locks::WithLockArgs),
    /// Print the CustomResourceDefinitions (Host, HostHistory, HostLock) as YAML, or write them.
    Crd {
        /// Write one file per CRD into this directory (deploy/crds/ in the repository).
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Manage hostledger's Kafka topics: create them, grant identities what their roles need.
    Topics(topics::TopicsArgs),
    /// Bootstrap tokens with which new fetchers enroll (`token create`).
    Token(enroll::TokenArgs),
    /// Enroll a new fetcher: make its key here, and get its Kafka client certificate through
    /// the API server's CertificateSigningRequests with a one-time token.
    Enroll(enroll::EnrollArgs),
    /// Approve and sign enrollment CSRs whose tokens allow them, deny the rest (runs until
    /// stopped).
    Approver(enroll::ApproverArgs),
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
    if let Some(path) = KUBECONFIG_FLAG.try_with(Clone::clone).ok().flatten() {
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .with_context(|| format!("cannot use --kubeconfig {}", path.display()))?;
        return kube::Client::try_from(config)
            .with_context(|| format!("cannot build a Kubernetes client from {}", path.display()));
    }
    kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client: set KUBECONFIG (eval \"$(scripts/stack env)\" for the local stack)")
}

tokio::task_local! {
    /// `--kubeconfig`, for the command being run.
    static KUBECONFIG_FLAG: Option<PathBuf>;
}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    init_tls();
    KUBECONFIG_FLAG
        .scope(cli.kubeconfig, dispatch(cli.command))
        .await
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Fetch(args) => fetch::run(args).await,
        Command::Backfill(args) => backfill::run(args).await,
        Command::Project(args) => project::project(args).await,
        Command::Replay(args) => project::replay(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Hosts(args) => audit::hosts(args).await,
        Command::Uptime(args) => audit::uptime(args).await,
        Command::History(args) => audit::history(args).await,
        Command::HistoryServer(args) => history_server::run(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Report(args) => audit::report(args).await,
        Command::Ansible(args) => ansible::run(args).await,
        Command::PrometheusSd(args) => prometheus::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Groups(args) => groups::run(args).await,
        Command::Drift(args) => drift::run(args).await,
        Command::Lock(args) => locks::lock(args).await,
        Command::Unlock(args) => locks::unlock(args).await,
        Command::Locks(args) => locks::locks(args).await,
        Command::WithLock(args) => locks::with_lock(args).await,
        Command::Crd { write: None } => {
            print_out(&hostledger_model::crd::crd_yaml())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { write: Some(dir) } => {
            for (file, yaml) in hostledger_model::crd::crd_documents() {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                print_out(&format!("wrote {}\n", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics(args) => topics::run(args).await,
        Command::Token(args) => enroll::token(args).await,
        Command::Enroll(args) => enroll::enroll(args).await,
        Command::Approver(args) => enroll::approver(args).await,
    }
}

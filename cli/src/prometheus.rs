//! `hostledger prometheus-sd`: the targets file of Prometheus' file-based service discovery,
//! written once or, with `--watch`, kept current from a watch of the Hosts. What goes into
//! the file is decided in [`hostledger_inventory::prometheus`]; this module reads the Hosts
//! and writes the file (atomically, and only when its content changes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use hostledger_inventory::LabelSelector;
use hostledger_inventory::prometheus::{
    Discovery, PORT_ANNOTATION, SdSettings, TargetGroup, discover, to_json,
};
use hostledger_projector::Host;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::Event;
use tokio::time::Instant;

use crate::read::{PhaseArg, Scope, included_phases};
use crate::watch::{error_text, host_watch, name_of, next};

/// How long a burst of changes is collected before the file is written.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// How long to wait before trying again after a failed write (`--watch`).
const WRITE_RETRY: Duration = Duration::from_secs(5);

/// `hostledger prometheus-sd`.
#[derive(Debug, Args)]
#[command(after_help = "\
One target group per host: the target is the host's first address with the port of its \
annotation prometheus.hostledger.dev/port, or --port; labels hostname, host_id, provider, \
region, zone, role, team, phase, machine_type (those the host has) and hostledger_namespace. \
Hosts without an address are skipped (a warning, and counted in the summary). Groups are \
sorted by host id, so an unchanged inventory writes the same bytes.

Point a scrape job at the file:

  scrape_configs:
    - job_name: hosts
      file_sd_configs:
        - files: [/etc/prometheus/hostledger/targets.json]

With --watch the file is rewritten within a second of a Host change (only when its content \
changes); if the API server goes away, the watch resumes with backoff and the file keeps its \
last content. Ctrl-C or SIGTERM ends it with exit code 0.")]
pub struct PrometheusSdArgs {
    /// The targets file to write (replaced atomically): JSON, or YAML when the name ends in
    /// .yml or .yaml.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,

    /// Which Hosts.
    #[command(flatten)]
    pub scope: Scope,

    /// Port of the targets whose Host has no prometheus.hostledger.dev/port annotation.
    #[arg(long, default_value_t = 9100, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Also list hosts in these phases (comma-separated); only in-service hosts by default.
    #[arg(long, value_delimiter = ',', value_enum, value_name = "PHASES")]
    pub include: Vec<PhaseArg>,

    /// Keep running: watch the Hosts and rewrite the file when its content changes.
    #[arg(long)]
    pub watch: bool,
}

/// The file's format, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

impl Format {
    fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml") => {
                Format::Yaml
            }
            _ => Format::Json,
        }
    }

    fn render(self, groups: &[TargetGroup]) -> Result<Vec<u8>> {
        Ok(match self {
            Format::Json => to_json(groups),
            Format::Yaml => {
                if groups.is_empty() {
                    b"[]\n".to_vec()
                } else {
                    serde_yaml::to_string(groups)
                        .context("cannot render the targets as YAML")?
                        .into_bytes()
                }
            }
        })
    }
}

impl PrometheusSdArgs {
    fn settings(&self) -> SdSettings {
        let phases = included_phases(&self.include);
        SdSettings {
            port: self.port,
            phases,
            namespace: self.scope.namespace.clone(),
        }
    }
}

/// Writes the targets file, once or (`--watch`) whenever it would change.
pub async fn run(args: PrometheusSdArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let api: Api<Host> = Api::namespaced(client, &args.scope.namespace);
    if args.watch {
        return watch(args, api).await;
    }
    let hosts = list_hosts(&api, args.scope.selector.as_ref(), &args.scope.namespace).await?;
    let mut targets = Targets::new(&args);
    let discovery = discover(&hosts, &targets.settings);
    targets.warn(&discovery);
    targets.write(&discovery)?;
    crate::print_out(&format!("{}\n", summary(&args.output, &discovery)))?;
    Ok(ExitCode::SUCCESS)
}

/// `wrote FILE: N targets (M hosts without an address skipped)`.
fn summary(path: &Path, discovery: &Discovery) -> String {
    let n = discovery.groups.len();
    let m = discovery.without_address.len();
    format!(
        "wrote {}: {n} target{} ({m} host{} without an address skipped)",
        path.display(),
        if n == 1 { "" } else { "s" },
        if m == 1 { "" } else { "s" },
    )
}

/// Every Host of the namespace matching the selector, page by page, selected by the API server.
async fn list_hosts(
    api: &Api<Host>,
    selector: Option<&LabelSelector>,
    namespace: &str,
) -> Result<Vec<Host>> {
    let mut params = ListParams::default().limit(500);
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        params = params.labels(s.as_str());
    }
    let mut hosts = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(|error| {
            let place = format!(
                "Hosts in namespace {namespace} from the Kubernetes API server{}",
                crate::read::client_url()
            );
            match error {
                kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!(
                    "cannot list {place}: {} (is the Host CRD installed? `hostledger crd | kubectl apply -f -`)",
                    status.message
                ),
                other => anyhow::anyhow!("cannot list {place}: {}", error_text(&other)),
            }
        })?;
        hosts.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(hosts),
        }
    }
}

/// The file and what was last written to it.
struct Targets {
    path: PathBuf,
    format: Format,
    settings: SdSettings,
    /// The file's content as last written (or found at start).
    written: Option<Vec<u8>>,
    /// The problems last warned about, so that a watch does not repeat them on every change.
    warned: Option<Discovery>,
}

impl Targets {
    fn new(args: &PrometheusSdArgs) -> Self {
        Targets {
            path: args.output.clone(),
            format: Format::of(&args.output),
            settings: args.settings(),
            written: None,
            warned: None,
        }
    }

    /// Logs what could not be listed, once per distinct set of problems.
    fn warn(&mut self, d: &Discovery) {
        // Hosts without a status are only between the projector's two writes: not a problem.
        let problems = Discovery {
            groups: Vec::new(),
            without_status: 0,
            ..d.clone()
        };
        if self.warned.as_ref() == Some(&problems) {
            return;
        }
        for host_id in &d.without_address {
            tracing::warn!(%host_id, "host has no address; not listed");
        }
        for b in &d.bad_ports {
            tracing::warn!(host_id = %b.host_id, value = %b.value, default_port = self.settings.port, "annotation {PORT_ANNOTATION} is not a port (1-65535); using the default port");
        }
        for (host, phase) in &d.unreadable {
            tracing::warn!(%host, %phase, "Host status has no known phase; not listed");
        }
        self.warned = Some(problems);
    }

    /// Writes the file if its content differs from what it holds. Returns whether it wrote.
    fn write(&mut self, d: &Discovery) -> Result<bool> {
        let bytes = self.format.render(&d.groups)?;
        if self.written.is_none() {
            self.written = std::fs::read(&self.path).ok();
        }
        if self.written.as_ref() == Some(&bytes) {
            return Ok(false);
        }
        crate::write_atomically(&self.path, &bytes)?;
        self.written = Some(bytes);
        Ok(true)
    }
}

/// Keeps the file current from a watch until Ctrl-C or SIGTERM.
async fn watch(args: PrometheusSdArgs, api: Api<Host>) -> Result<ExitCode> {
    let mut stream = host_watch(api, args.scope.selector.as_ref());
    let mut targets = Targets::new(&args);
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Host>> = None;
    let mut synced = false;
    let mut written_once = false;
    let mut due: Option<Instant> = None;
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    tracing::info!(namespace = %args.scope.namespace, file = %args.output.display(), "watching Hosts");
    loop {
        let timer = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("stopping");
                return Ok(ExitCode::SUCCESS);
            }
            () = timer => {
                due = None;
                let discovery = discover(hosts.values(), &targets.settings);
                targets.warn(&discovery);
                let first = !written_once;
                written_once = true;
                match targets.write(&discovery) {
                    Ok(true) => tracing::info!("{}", summary(&args.output, &discovery)),
                    Ok(false) if first => tracing::info!(file = %args.output.display(), targets = discovery.groups.len(), "targets file already up to date"),
                    Ok(false) => tracing::debug!(file = %args.output.display(), "targets unchanged"),
                    Err(error) => {
                        tracing::error!(error = format!("{error:#}"), "cannot write the targets file; retrying in {WRITE_RETRY:?}");
                        due = Some(Instant::now() + WRITE_RETRY);
                    }
                }
            }
            item = next(&mut stream) => {
                let changed = match item {
                    None => bail!("the watch of Hosts ended"),
                    Some(Err(error)) => {
                        let error = error_text(&error);
                        tracing::warn!(%error, namespace = %args.scope.namespace, "cannot watch Hosts on the Kubernetes API server{}; retrying with backoff (the file keeps its content)", crate::read::client_url());
                        false
                    }
                    Some(Ok(Event::Init)) => {
                        listing = Some(BTreeMap::new());
                        false
                    }
                    Some(Ok(Event::InitApply(host))) => {
                        listing.get_or_insert_default().insert(name_of(&host), host);
                        false
                    }
                    Some(Ok(Event::InitDone)) => {
                        hosts = listing.take().unwrap_or_default();
                        synced = true;
                        true
                    }
                    Some(Ok(Event::Apply(host))) => {
                        hosts.insert(name_of(&host), host);
                        true
                    }
                    Some(Ok(Event::Delete(host))) => {
                        hosts.remove(&name_of(&host));
                        true
                    }
                };
                // A burst of changes makes one write, at most DEBOUNCE after its first.
                if changed && synced && due.is_none() {
                    due = Some(Instant::now() + DEBOUNCE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_schemas::Lifecycle;
    use std::collections::BTreeSet;

    #[test]
    fn format_follows_the_file_name() {
        assert_eq!(Format::of(Path::new("/x/targets.json")), Format::Json);
        assert_eq!(Format::of(Path::new("targets.yml")), Format::Yaml);
        assert_eq!(Format::of(Path::new("targets.YAML")), Format::Yaml);
        assert_eq!(Format::of(Path::new("targets")), Format::Json);
        let group = TargetGroup {
            targets: vec!["10.0.0.1:9100".into()],
            labels: BTreeMap::from([("role".to_owned(), "log".to_owned())]),
        };
        let yaml = Format::Yaml.render(&[group]).expect("renders");
        assert_eq!(
            String::from_utf8(yaml).expect("utf-8"),
            "- targets:\n  - 10.0.0.1:9100\n  labels:\n    role: log\n"
        );
        assert_eq!(Format::Yaml.render(&[]).expect("renders"), b"[]\n");
    }

    #[test]
    fn summary_counts_targets_and_skipped_hosts() {
        let mut d = Discovery::default();
        assert_eq!(
            summary(Path::new("t.json"), &d),
            "wrote t.json: 0 targets (0 hosts without an address skipped)"
        );
        d.groups.push(TargetGroup {
            targets: vec!["a:1".into()],
            labels: BTreeMap::new(),
        });
        d.without_address.push("dc/x".into());
        assert_eq!(
            summary(Path::new("t.json"), &d),
            "wrote t.json: 1 target (1 host without an address skipped)"
        );
    }

    #[test]
    fn include_adds_phases() {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from([
            "hostledger",
            "prometheus-sd",
            "--output",
            "t.json",
            "--include",
            "out-of-service,retired",
        ])
        .expect("parses");
        let crate::Command::PrometheusSd(args) = cli.command else {
            panic!("prometheus-sd");
        };
        assert_eq!(
            args.settings().phases,
            BTreeSet::from([
                Lifecycle::InService,
                Lifecycle::OutOfService,
                Lifecycle::Retired
            ])
        );
    }
}

//! `hostledger prometheus-sd`: the targets file of Prometheus' file-based service discovery,
//! written once or, with `--watch`, kept current from a watch of the Hosts. What goes into
//! the file is decided in [`hostledger_inventory::prometheus`]; this module reads the Hosts
//! and writes the file (atomically, and only when its content changes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use hostledger_inventory::LabelSelector;
use hostledger_inventory::prometheus::{SdSettings, Targets, discover, for_discovery, summary};
use hostledger_inventory::watch::{Tracker, error_text, host_watch, next};
use hostledger_k8s::{K8sError, list_all};
use hostledger_model::{Host, HostGroup};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::Event;
use tokio::time::Instant;

use crate::read::{PhaseArg, Scope, included_phases};

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

impl PrometheusSdArgs {
    fn settings(&self) -> SdSettings {
        let phases = included_phases(&self.include);
        SdSettings {
            port: self.port,
            phases,
            namespace: self.scope.namespace.clone(),
            host_groups: Vec::new(),
        }
    }
}

/// Writes the targets file, once or (`--watch`) whenever it would change.
pub async fn run(args: PrometheusSdArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let api: Api<Host> = Api::namespaced(client.clone(), &args.scope.namespace);
    if args.watch {
        // The watch rides out an API server that is not there yet; so does the group list.
        let groups = match crate::groups::list(&client, &args.scope.namespace).await {
            Ok(groups) => groups.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(%error, "cannot list HostGroups; targets get no groups label");
                Vec::new()
            }
        };
        let group_api = Api::namespaced(client.clone(), &args.scope.namespace);
        return watch(args, api, group_api, groups).await;
    }
    let hosts = list_hosts(&api, args.scope.selector.as_ref(), &args.scope.namespace).await?;
    let groups = crate::groups::list(&client, &args.scope.namespace)
        .await?
        .unwrap_or_default();
    let mut settings = args.settings();
    settings.host_groups = groups;
    let mut targets = Targets::new(&args.output, settings);
    let discovery = discover(&hosts, &targets.settings);
    targets.warn(&discovery);
    targets.write(&discovery)?;
    crate::print_out(&format!("{}\n", summary(&args.output, &discovery)))?;
    Ok(ExitCode::SUCCESS)
}

/// Every Host of the namespace matching the selector, selected by the API server.
async fn list_hosts(
    api: &Api<Host>,
    selector: Option<&LabelSelector>,
    namespace: &str,
) -> Result<Vec<Host>> {
    let mut params = ListParams::default();
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        params = params.labels(s.as_str());
    }
    let place = || {
        format!(
            "Hosts in namespace {namespace} from the Kubernetes API server{}",
            crate::read::client_url()
        )
    };
    list_all(api, params, "Hosts")
        .await
        .map_err(|error| match error {
            K8sError::Api { source, .. } => {
                anyhow::anyhow!("cannot list {}: {}", place(), error_text(&source))
            }
            other => anyhow::Error::new(other).context(format!("cannot list {}", place())),
        })
}

/// HostGroups by name, kept from a watch: a relist (`Init` … `InitDone`) replaces them all.
#[derive(Default)]
struct GroupSet {
    current: BTreeMap<String, HostGroup>,
    relisting: Option<BTreeMap<String, HostGroup>>,
}

impl GroupSet {
    /// Applies one watch event; returns the groups when they changed.
    fn handle(&mut self, event: Event<HostGroup>) -> Option<Vec<HostGroup>> {
        let name = |g: &HostGroup| g.metadata.name.clone().unwrap_or_default();
        let changed = match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(g) => {
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&g), g);
                false
            }
            Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let changed = listed != self.current;
                self.current = listed;
                changed
            }
            Event::Apply(g) => {
                self.current.get(&name(&g)) != Some(&g) && {
                    self.current.insert(name(&g), g);
                    true
                }
            }
            Event::Delete(g) => self.current.remove(&name(&g)).is_some(),
        };
        changed.then(|| self.current.values().cloned().collect())
    }
}

/// Keeps the file current from watches of the Hosts and the HostGroups until Ctrl-C or
/// SIGTERM.
async fn watch(
    args: PrometheusSdArgs,
    api: Api<Host>,
    group_api: Api<HostGroup>,
    groups: Vec<HostGroup>,
) -> Result<ExitCode> {
    let mut stream = host_watch(api, args.scope.selector.as_ref());
    let mut group_stream = Box::pin(
        kube::runtime::watcher(group_api, kube::runtime::watcher::Config::default())
            .default_backoff(),
    );
    let mut group_set = GroupSet {
        current: groups
            .iter()
            .map(|g| (g.metadata.name.clone().unwrap_or_default(), g.clone()))
            .collect(),
        relisting: None,
    };
    let mut group_warned = false;
    let mut settings = args.settings();
    settings.host_groups = groups;
    let mut targets = Targets::new(&args.output, settings);
    let mut tracker = Tracker::new(false, true);
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
                let discovery = discover(tracker.hosts(), &targets.settings);
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
            item = next(&mut group_stream) => {
                match item {
                    None => bail!("the watch of HostGroups ended"),
                    Some(Err(error)) => {
                        if !group_warned {
                            group_warned = true;
                            tracing::warn!(error = %error_text(&error), "cannot watch HostGroups; the groups label keeps what it had; retrying");
                        }
                    }
                    Some(Ok(event)) => {
                        group_warned = false;
                        if let Some(groups) = group_set.handle(event) {
                            targets.settings.host_groups = groups;
                            if tracker.synced() && due.is_none() {
                                due = Some(Instant::now() + DEBOUNCE);
                            }
                        }
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
                    Some(Ok(event)) => {
                        let was_synced = tracker.synced();
                        // A (re)list ends with the whole inventory: write it even when no
                        // change shows (the file may be older than the inventory).
                        !tracker.handle(kept(event)).is_empty() || (!was_synced && tracker.synced())
                    }
                };
                // A burst of changes makes one write, at most DEBOUNCE after its first.
                if changed && tracker.synced() && due.is_none() {
                    due = Some(Instant::now() + DEBOUNCE);
                }
            }
        }
    }
}

/// A watch event with its Host cut down to what the targets are made of: the watch keeps every
/// Host in memory, and memory stays proportional to the targets, not to the Hosts' history.
fn kept(event: Event<Host>) -> Event<Host> {
    match event {
        Event::InitApply(host) => Event::InitApply(for_discovery(host)),
        Event::Apply(host) => Event::Apply(for_discovery(host)),
        Event::Delete(host) => Event::Delete(for_discovery(host)),
        marker @ (Event::Init | Event::InitDone) => marker,
    }
}

#[cfg(test)]
mod tests {
    use hostledger_schemas::Lifecycle;
    use std::collections::BTreeSet;

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

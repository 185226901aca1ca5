//! `hostledger ansible --list | --host NAME`: the Ansible dynamic inventory protocol, from
//! the Host objects. Ansible passes no other arguments to an inventory script, so every
//! setting also comes from an environment variable (see deploy/hostledger-ansible-inventory).

use hostledger_model::defaults::defaults;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use hostledger_inventory::ansible::{self, AnsibleSettings, GroupKey};
use hostledger_inventory::source::{self, HostView, InventoryError};
use hostledger_inventory::{LabelSelector, Query};
use hostledger_k8s::Histories;

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

    /// Where the Hosts come from. `auto`: from the history server where it serves the
    /// namespace (a watched copy of the Host objects' labels and annotations with each
    /// status folded from the log, answered without kube-apiserver encoding every Host:
    /// seconds at 100,000 Hosts), from the Host objects otherwise or when it cannot answer.
    /// `history-server`: only from it (an error says why it cannot). `objects`: list the
    /// Host objects.
    #[arg(
        long,
        value_enum,
        env = "HOSTLEDGER_ANSIBLE_SOURCE",
        default_value_t = HostSource::Auto
    )]
    pub source: HostSource,

    /// Keep the answer of `--list` in this file and answer from it (`--list`, and `--host`
    /// from its `_meta.hostvars`) while it is younger than `--cache-timeout` and was made
    /// with the same settings, as Ansible's own inventory plugins do with `cache: true`.
    /// A file that cannot be read is replaced, with a warning.
    #[arg(long, value_name = "FILE", env = "HOSTLEDGER_ANSIBLE_CACHE")]
    pub cache: Option<std::path::PathBuf>,

    /// How long a cached answer is used, in seconds (0: always ask the API server, and
    /// refresh the file).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "HOSTLEDGER_ANSIBLE_CACHE_TIMEOUT",
        default_value_t = 300
    )]
    pub cache_timeout: u64,
}

/// Where `hostledger ansible` reads the Hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostSource {
    /// The history server where it serves the namespace, the Host objects otherwise.
    Auto,
    /// The history server (`hosthistories?view=inventory`).
    HistoryServer,
    /// The Host objects in the API server.
    Objects,
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
    let cache = args.cache.as_deref().map(|path| (path, cache_key(&args)));
    let cached = cache
        .as_ref()
        .and_then(|(path, key)| cache::read(path, key, Duration::from_secs(args.cache_timeout)));
    match (&args.host, cached) {
        // `--list` prints the cached answer as it was printed.
        (None, Some(text)) => return print_text(&text),
        // `--host` answers from a fresh cache when the name is an inventory name in it.
        (Some(name), Some(text)) => {
            let list: serde_json::Value = serde_json::from_str(&text)?;
            if let Some(vars) = list["_meta"]["hostvars"].get(name) {
                return print(vars);
            }
        }
        (_, None) => {}
    }
    let started = std::time::Instant::now();
    let (hosts, settings) = live_inventory(&args).await?;
    tracing::debug!(
        hosts = hosts.len(),
        seconds = started.elapsed().as_secs_f64(),
        "read the Hosts"
    );
    if args.host.is_none() || cache.is_some() {
        let text = to_text(&ansible::Listing::new(&hosts, &settings))?;
        tracing::debug!(
            bytes = text.len(),
            seconds = started.elapsed().as_secs_f64(),
            "made the listing"
        );
        if let Some((path, key)) = &cache {
            cache::write(path, key, &text)?;
        }
        if args.host.is_none() {
            let printed = print_text(&text);
            tracing::debug!(
                seconds = started.elapsed().as_secs_f64(),
                "printed the listing"
            );
            return printed;
        }
    }
    let name = args.host.as_deref().unwrap_or_default();
    print(&host_vars(&hosts, &settings, name, &args.namespace)?)
}

/// The JSON as printed: indented for a person at a terminal, compact for a program (Ansible
/// reads a listing of 100,000 hosts faster without the indentation's bytes).
fn to_text(value: &impl serde::Serialize) -> Result<String> {
    use std::io::IsTerminal as _;
    let mut text = if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    text.push('\n');
    Ok(text)
}

fn print(value: &serde_json::Value) -> Result<ExitCode> {
    print_text(&to_text(value)?)
}

fn print_text(text: &str) -> Result<ExitCode> {
    crate::print_out(text)?;
    Ok(ExitCode::SUCCESS)
}

/// What a cached answer must have been made with: the API server, the namespace and every
/// setting that changes the answer.
fn cache_key(args: &AnsibleArgs) -> serde_json::Value {
    serde_json::json!({
        "server": crate::read::client_url(),
        "namespace": args.namespace,
        "version": env!("CARGO_PKG_VERSION"),
        "selector": args.selector.as_ref().map(|s| format!("{s:?}")),
        "groups": args.groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>(),
        "include": args.include.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
        "exclude_locked": args.exclude_locked,
    })
}

/// The hosts and the settings (with the namespace's HostGroups) from the API server.
async fn live_inventory(args: &AnsibleArgs) -> Result<(Vec<HostView>, AnsibleSettings)> {
    let client = crate::kube_client().await?;
    let hosts = match from_history_server(args, &client).await? {
        Some(hosts) => hosts,
        None => {
            let query = Query {
                selector: args.selector.clone().unwrap_or_default(),
                as_of: None,
                full_intervals: false,
            };
            source::from_objects(client.clone(), &args.namespace, &query)
                .await
                .with_context(|| {
                    format!(
                        "cannot read the inventory from the Kubernetes API server{}",
                        crate::read::client_url()
                    )
                })?
                .hosts
        }
    };
    let mut settings = args.settings();
    settings.host_groups = crate::groups::list(&client, &args.namespace)
        .await?
        .unwrap_or_default();
    Ok((hosts, settings))
}

/// The Hosts from the history server, per `--source`: `None` when the Host objects are to
/// be read instead (`objects`, or `auto` where the namespace's history is not the log's or
/// the server cannot answer).
async fn from_history_server(
    args: &AnsibleArgs,
    client: &kube::Client,
) -> Result<Option<Vec<HostView>>> {
    let forced = match args.source {
        HostSource::Objects => return Ok(None),
        HostSource::HistoryServer => true,
        HostSource::Auto => false,
    };
    let api = match Histories::of(client, &args.namespace).await {
        Ok(Histories::Api(api)) => api,
        Ok(Histories::Chunks(_)) if forced => bail!(
            "namespace {} keeps its history in HostHistory objects, so no history server serves its Hosts; use --source objects, or migrate it (`hostledger migrate`)",
            args.namespace
        ),
        Ok(Histories::Chunks(_)) => return Ok(None),
        Err(error) if forced => return Err(error.into()),
        Err(error) => {
            tracing::debug!(%error, "cannot tell where the namespace keeps its history");
            return Ok(None);
        }
    };
    let selector = args.selector.as_ref().map(LabelSelector::as_str);
    match api.inventory(selector).await {
        Ok(listed) => Ok(Some(source::views_now(listed))),
        Err(error) if forced => Err(error.into()),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "the history server did not answer; listing the Host objects instead");
            Ok(None)
        }
    }
}

/// One host's variables, by inventory name, Host object name or host id.
fn host_vars(
    hosts: &[HostView],
    settings: &AnsibleSettings,
    name: &str,
    namespace: &str,
) -> Result<serde_json::Value> {
    if let Some(vars) = ansible::host(hosts, settings, name) {
        return Ok(vars);
    }
    if hosts
        .iter()
        .any(|h| h.record.state.name == name || h.name == name || h.record.host_id == name)
    {
        bail!(
            "host {name:?} is not in a listed phase; add --include (HOSTLEDGER_ANSIBLE_INCLUDE) to list it"
        );
    }
    Err(InventoryError::UnknownHost {
        host: name.to_owned(),
        place: format!("namespace {namespace}"),
    }
    .into())
}

/// The cache file: a first line `{"key": …, "written_unix": SECONDS}`, then the `--list`
/// answer as it was printed (given again without being parsed).
mod cache {
    use std::path::Path;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use anyhow::{Context, Result};
    use serde_json::{Value, json};

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// The cached listing, if the file holds one made with `key` less than `timeout` ago.
    pub fn read(path: &Path, key: &Value, timeout: Duration) -> Option<String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the Ansible cache; asking the API server");
                return None;
            }
        };
        let mut text = text;
        let header = text.find('\n').and_then(|end| {
            serde_json::from_str::<Value>(&text[..end])
                .ok()
                .map(|h| (h, end))
        });
        let Some((header, end)) =
            header.filter(|(h, end)| h["key"].is_object() && text[end + 1..].starts_with('{'))
        else {
            tracing::warn!(path = %path.display(), "the Ansible cache is not hostledger's; replacing it");
            return None;
        };
        let written = header["written_unix"].as_u64()?;
        let fresh = now().saturating_sub(written) < timeout.as_secs();
        (fresh && header["key"] == *key).then(|| text.split_off(end + 1))
    }

    /// Writes the listing as printed (atomically: a reader never sees half a file).
    pub fn write(path: &Path, key: &Value, list: &str) -> Result<()> {
        let mut body = serde_json::to_vec(&json!({"key": key, "written_unix": now()}))?;
        body.push(b'\n');
        body.extend_from_slice(list.as_bytes());
        hostledger_inventory::atomic::write(path, &body).with_context(|| {
            format!(
                "cannot write the Ansible cache {} (set --cache / HOSTLEDGER_ANSIBLE_CACHE to a writable file)",
                path.display()
            )
        })
    }
}

//! Host locks from the command line: `lock`, `unlock`, `locks` and `with-lock`.
//!
//! A lock is a HostLock object named after its Host (`hostledger_model::lock`). Taking one
//! is a create, so of many holders racing for a host exactly one wins and the others are
//! told who holds it. `with-lock` renews its locks while the command runs and releases them
//! when it ends, however it ends; a `with-lock` that is killed outright leaves locks that
//! expire after their TTL (the projector's sweeper releases them).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hostledger_k8s::locks::{Acquired, LockStore, Lost, whoami};
use hostledger_model::Host;
use hostledger_model::group::{HostGroup, Member};
use hostledger_model::lock::{self, HostLock, check_ttl, renew_every};
use hostledger_model::names::object_name;
use hostledger_model::time::human_duration;
use hostledger_schemas::{Lifecycle, Timestamp};
use kube::api::{Api, ListParams};

use crate::print_out;
use crate::read::Scope;

/// Exit code when a host is locked by someone else.
pub const EXIT_HELD: u8 = 3;
/// Exit code of `with-lock` when a lock was lost while the command ran.
pub const EXIT_LOST: u8 = 4;
/// Exit code when a host group's disruption budget refuses the lock.
pub const EXIT_BUDGET: u8 = 5;

/// Which hosts: one by id, object name or host name, or every Host matching a selector.
#[derive(Debug, Clone, Args)]
pub struct Targets {
    /// The host: its id (dc/pdx1/SN-0001), its Host object name (dc.pdx1.sn-0001) or its
    /// host name.
    #[arg(required_unless_present = "selector", conflicts_with = "selector")]
    pub host: Option<String>,

    /// The namespace, or every Host matching `-l` instead of one host.
    #[command(flatten)]
    pub scope: Scope,
}

/// Who holds the lock.
#[derive(Debug, Clone, Args)]
pub struct HolderArgs {
    /// Holder name, for people (default: `$USER@HOSTNAME`). One identity may hold locks under
    /// several names; only the same name (and identity) renews or releases them.
    #[arg(long, env = "HOSTLEDGER_LOCK_HOLDER")]
    pub holder: Option<String>,
}

impl HolderArgs {
    fn name(&self) -> String {
        self.holder.clone().unwrap_or_else(|| {
            let host = hostname::get().ok().and_then(|h| h.into_string().ok());
            let login = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok();
            lock::default_holder(login.as_deref(), host.as_deref())
        })
    }
}

/// `hostledger lock`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  hostledger lock web-1 --reason 'kernel upgrade' --ttl 2h
  hostledger lock -l role=db,region=pdx1 --reason 'failover test'

Locking a host you already hold renews it. A host held by someone else is not touched: the
command says who holds it and since when, and exits 3. A lock that would take a host group
below its minInService (counting members already down) or above its maxLocked is refused with
the group's numbers, exit 5. With -l, either every matching host is locked or none is.")]
pub struct LockArgs {
    /// Which hosts.
    #[command(flatten)]
    pub targets: Targets,
    /// Why (shown to everyone who finds the host locked).
    #[arg(long)]
    pub reason: String,
    /// Expire the lock after this long without a renewal (5s to 7d). Run `lock` again to
    /// renew it.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Who holds it.
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Wait this long for hosts held by others to be released (default: do not wait).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// `hostledger unlock`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  hostledger unlock web-1
  hostledger unlock web-1 --force    # break someone else's lock (needs the break permission)")]
pub struct UnlockArgs {
    /// Which hosts.
    #[command(flatten)]
    pub targets: Targets,
    /// Whose locks.
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Break locks held by anyone else too. The API server allows it only to identities
    /// granted the `break` verb on hostlocks.hostledger.dev.
    #[arg(long)]
    pub force: bool,
}

/// Output of `locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocksOutput {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// `hostledger locks`.
#[derive(Debug, Args)]
pub struct LocksArgs {
    /// The namespace, and only the locks of hosts matching `-l`.
    #[command(flatten)]
    pub scope: Scope,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = LocksOutput::Table)]
    pub output: LocksOutput,
}

/// `hostledger with-lock`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  hostledger with-lock web-1 --reason reboot -- ssh web-1 sudo reboot
  for h in $(kubectl get hosts -l role=db -o name); do
    hostledger with-lock ${h#*/} --reason 'rolling reboot' --wait 10m -- ansible-playbook reboot.yml -l ${h#*/}
  done

The command runs with HOSTLEDGER_LOCKED_HOSTS set to the locked Host names (comma-separated).
Exit status: the command's (128+N if it died of signal N); 3 if a host is held by someone
else; 5 if a host group's budget does not allow it; 4 if a lock was lost while the command
ran (the command is then sent SIGTERM).
SIGINT and SIGTERM are passed on to the command; the locks are released when it exits.")]
pub struct WithLockArgs {
    /// Which hosts.
    #[command(flatten)]
    pub targets: Targets,
    /// Why.
    #[arg(long, default_value = "hostledger with-lock")]
    pub reason: String,
    /// Expire after this long without a renewal; renewed every third of it while the command
    /// runs, so a killed `with-lock` frees its hosts after at most this long.
    #[arg(long, default_value = "60s", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Who holds it.
    #[command(flatten)]
    pub holder: HolderArgs,
    /// Wait this long for hosts held by others to be released (default: do not wait).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    check_ttl(humantime::parse_duration(text).map_err(|e| e.to_string())?)
}

/// A Host to lock.
#[derive(Debug, Clone)]
struct Target {
    /// The labels copied onto its lock: the projector's, but the phase.
    labels: BTreeMap<String, String>,
    /// Its name, id and phase, as host groups see it.
    member: Member,
}

impl Target {
    fn from_host(host: Host) -> Target {
        let labels = hostledger_model::names::owned_labels(host.metadata.labels.as_ref())
            .into_iter()
            .filter(|(k, _)| k != "phase")
            .collect();
        Target {
            labels,
            member: Member::of(&host, false),
        }
    }

    fn name(&self) -> &str {
        &self.member.name
    }
}

/// A host group with a budget, its members as they are now (locks included), and every
/// lock in the namespace, oldest first: by creation time, then by resourceVersion (within a
/// second, the order in which they were created; a lock renewed since is older than that).
struct Budget {
    group: HostGroup,
    members: Vec<Member>,
    order: Vec<String>,
}

/// The host groups with a budget (`minInService`, `maxLocked`) that contain any of
/// `targets`. None when the HostGroup CRD is not installed.
async fn budget_groups(
    client: &kube::Client,
    namespace: &str,
    targets: &[Target],
) -> Result<Vec<Budget>> {
    let groups = crate::groups::list(client, namespace)
        .await?
        .unwrap_or_default();
    let relevant: Vec<HostGroup> = groups
        .into_iter()
        .filter(|g| g.spec.min_in_service.is_some() || g.spec.max_locked.is_some())
        .filter(|g| targets.iter().any(|t| g.contains(&t.member)))
        .collect();
    if relevant.is_empty() {
        return Ok(Vec::new());
    }
    let mut locks = LockStore::new(client.clone(), namespace).list("").await?;
    locks.sort_by_key(|l| {
        let rv = l.metadata.resource_version.as_deref().unwrap_or_default();
        (
            l.acquired_at(),
            rv.parse::<u64>().unwrap_or(u64::MAX),
            rv.to_owned(),
        )
    });
    let order: Vec<String> = locks.into_iter().filter_map(|l| l.metadata.name).collect();
    let locked: std::collections::HashSet<&String> = order.iter().collect();
    let hosts_api: Api<Host> = Api::namespaced(client.clone(), namespace);
    let mut out = Vec::new();
    for group in relevant {
        let mut hosts = match group.selector() {
            Ok(Some(selector)) => {
                hostledger_k8s::list_all(
                    &hosts_api,
                    ListParams::default().labels(selector.as_str()),
                    "Hosts",
                )
                .await?
            }
            _ => Vec::new(),
        };
        for named in &group.spec.hosts {
            let name = if named.contains('/') {
                object_name(named)
            } else {
                named.clone()
            };
            if !hosts
                .iter()
                .any(|h| h.metadata.name.as_deref() == Some(&name))
                && let Some(h) = hosts_api
                    .get_opt(&name)
                    .await
                    .with_context(|| format!("cannot read Host {name}"))?
            {
                hosts.push(h);
            }
        }
        let members = hosts
            .iter()
            .map(|h| {
                let locked = h.metadata.name.as_ref().is_some_and(|n| locked.contains(n));
                Member::of(h, locked)
            })
            .collect();
        out.push(Budget {
            group,
            members,
            order: order.clone(),
        });
    }
    Ok(out)
}

/// The Hosts `targets` names, sorted by name; refuses an empty selection.
async fn resolve(client: &kube::Client, targets: &Targets) -> Result<Vec<Target>> {
    let ns = &targets.scope.namespace;
    let api: Api<Host> = Api::namespaced(client.clone(), ns);
    let mut found = match (&targets.host, &targets.scope.selector) {
        (Some(host), _) => {
            let (host_id, _) = hostledger_inventory::history::find_host(client, ns, host).await?;
            let name = object_name(&host_id);
            let host = api
                .get(&name)
                .await
                .with_context(|| format!("cannot read Host {name} in namespace {ns}"))?;
            vec![Target::from_host(host)]
        }
        (None, Some(selector)) => {
            let hosts = hostledger_k8s::list_all(
                &api,
                ListParams::default().labels(selector.as_str()),
                "Hosts",
            )
            .await?;
            if hosts.is_empty() {
                bail!(
                    "no Hosts in namespace {ns} match -l {}; nothing locked",
                    selector.as_str()
                );
            }
            hosts.into_iter().map(Target::from_host).collect()
        }
        (None, None) => bail!("name a host or give -l SELECTOR"),
    };
    found.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(found)
}

/// Locks held by others, as a refusal.
fn held_error(held: &[HostLock], now: Timestamp) -> String {
    held.iter()
        .map(|l| {
            format!(
                "{} is {}",
                l.metadata.name.as_deref().unwrap_or("?"),
                l.describe_holder(now)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Who asks for the locks, why, for how long.
#[derive(Debug, Clone, Copy)]
struct Ask<'a> {
    holder: &'a str,
    user: &'a str,
    reason: &'a str,
    ttl: Duration,
}

/// What an attempt to lock every target came to.
enum Attempt {
    /// Every target is ours.
    All(Vec<HostLock>),
    /// Some are held by others; the ones this attempt took were released again.
    Held(Vec<HostLock>),
    /// A host group's budget does not allow it now: why.
    Budget(String),
}

/// Tries once to lock every target, all or nothing: on a refusal the locks taken by this
/// attempt are released (those already held before are kept). Host groups' budgets are
/// checked before, and again after: if someone took a lock in the same group at the same
/// moment and the two together break its budget, this attempt backs off.
async fn lock_all(
    client: &kube::Client,
    store: &LockStore,
    targets: &[Target],
    ask: &Ask<'_>,
) -> Result<Attempt> {
    let Ask {
        holder,
        user,
        reason,
        ttl,
    } = *ask;
    let names: Vec<String> = targets.iter().map(|t| t.name().to_owned()).collect();
    for b in budget_groups(client, store.namespace(), targets).await? {
        if let Err(why) = b.group.check_budget(&b.members, &names) {
            return Ok(Attempt::Budget(why));
        }
    }
    let mut ours = Vec::new();
    let mut taken_now = Vec::new();
    let mut held = Vec::new();
    for t in targets {
        let request = HostLock::request(
            t.name(),
            &t.member.host_id,
            t.labels.clone(),
            holder,
            user,
            reason,
            ttl,
        );
        match store.acquire(&request).await {
            Ok(Acquired::New(l)) => {
                taken_now.push(l.clone());
                ours.push(l);
            }
            Ok(Acquired::Renewed(l)) => ours.push(l),
            Ok(Acquired::HeldBy(l)) => held.push(l),
            Err(e) => {
                release_quietly(store, &taken_now).await;
                return Err(refusal(e, "take host locks"));
            }
        }
        if !held.is_empty() {
            break;
        }
    }
    if !held.is_empty() {
        release_quietly(store, &taken_now).await;
        return Ok(Attempt::Held(held));
    }
    if !taken_now.is_empty() {
        for b in budget_groups(client, store.namespace(), targets).await? {
            let late = b.group.late_locks(&b.members, &b.order);
            if taken_now
                .iter()
                .any(|l| l.metadata.name.as_ref().is_some_and(|n| late.contains(n)))
            {
                release_quietly(store, &taken_now).await;
                let why = b
                    .group
                    .over_budget(&b.members)
                    .unwrap_or_else(|| "its budget is spent".to_owned());
                return Ok(Attempt::Budget(format!(
                    "another lock in the same group was taken at the same moment, and first: {why}"
                )));
            }
        }
    }
    Ok(Attempt::All(ours))
}

async fn release_quietly(store: &LockStore, locks: &[HostLock]) {
    for l in locks {
        if let Err(e) = store.release(l).await {
            tracing::warn!(error = %e, lock = ?l.metadata.name, "could not release a lock; it expires after its TTL");
        }
    }
}

/// A refused request (HTTP 403) explained: which identity, what is missing, how to grant it.
fn refusal(error: hostledger_k8s::K8sError, doing: &str) -> anyhow::Error {
    let message = match &error {
        hostledger_k8s::K8sError::Refused { message, .. } => Some(message.as_str()),
        hostledger_k8s::K8sError::Api {
            source: kube::Error::Api(status),
            ..
        } if status.code == 403 => Some(status.message.as_str()),
        _ => None,
    };
    if let Some(message) = message {
        return anyhow::anyhow!(
            "the API server refused to {doing}: {message}\nA person or tool that locks hosts \
             needs the ClusterRole hostledger:lock-operator (deploy/policies/host-locks.yaml) \
             in this namespace; breaking others' locks needs hostledger:lock-breaker too."
        );
    }
    anyhow::Error::new(error)
}

/// Why a lock was not taken.
enum Refused {
    /// Held by others.
    Held(Vec<HostLock>),
    /// A group's budget.
    Budget(String),
}

impl Refused {
    fn report(&self, what_then: &str) -> ExitCode {
        match self {
            Refused::Held(held) => {
                eprintln!(
                    "error: {}\n{what_then} Wait for it (--wait 10m), or break it with \
                     `hostledger unlock HOST --force` (needs the break permission).",
                    held_error(held, Timestamp::from(chrono::Utc::now()))
                );
                ExitCode::from(EXIT_HELD)
            }
            Refused::Budget(why) => {
                eprintln!(
                    "error: {why}\n{what_then} Wait for other members to come back (--wait 30m), \
                     or change the group's minInService/maxLocked."
                );
                ExitCode::from(EXIT_BUDGET)
            }
        }
    }
}

/// Locks every target, waiting up to `wait` for others' locks to go and budgets to allow
/// it.
async fn acquire(
    client: &kube::Client,
    store: &LockStore,
    targets: &[Target],
    ask: &Ask<'_>,
    wait: Option<Duration>,
) -> Result<std::result::Result<Vec<HostLock>, Refused>> {
    let deadline = wait.map(|w| Instant::now() + w);
    let mut announced = false;
    loop {
        let refused = match lock_all(client, store, targets, ask).await? {
            Attempt::All(locks) => return Ok(Ok(locks)),
            Attempt::Held(held) => Refused::Held(held),
            Attempt::Budget(why) => Refused::Budget(why),
        };
        match deadline {
            Some(d) if Instant::now() < d => {
                if !announced {
                    let why = match &refused {
                        Refused::Held(held) => {
                            held_error(held, Timestamp::from(chrono::Utc::now()))
                        }
                        Refused::Budget(why) => why.clone(),
                    };
                    eprintln!("waiting: {why}");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return Ok(Err(refused)),
        }
    }
}

/// What taking locks came to, with who took them and where.
struct Taken {
    store: LockStore,
    holder: String,
    user: String,
    locks: std::result::Result<Vec<HostLock>, Refused>,
}

/// Resolves `targets`, learns who this is, and takes the locks (waiting up to `wait`).
async fn take(
    targets: &Targets,
    holder: &HolderArgs,
    reason: &str,
    ttl: Duration,
    wait: Option<Duration>,
) -> Result<Taken> {
    let client = crate::kube_client().await?;
    let user = whoami(&client).await?;
    let targets_now = lockable(resolve(&client, targets).await?)?;
    let store = LockStore::new(client.clone(), &targets.scope.namespace);
    let holder = holder.name();
    let ask = Ask {
        holder: &holder,
        user: &user,
        reason,
        ttl,
    };
    let locks = acquire(&client, &store, &targets_now, &ask, wait).await?;
    Ok(Taken {
        store,
        holder,
        user,
        locks,
    })
}

/// `hostledger lock`.
pub async fn lock(args: LockArgs) -> Result<ExitCode> {
    let Taken {
        holder,
        user,
        locks,
        ..
    } = take(
        &args.targets,
        &args.holder,
        &args.reason,
        args.ttl,
        args.wait,
    )
    .await?;
    match locks {
        Ok(locks) => {
            let mut out = String::new();
            for l in &locks {
                out.push_str(&format!(
                    "locked {} ({}) as {holder} (user {user}) for {} without renewal: {}\n",
                    l.metadata.name.as_deref().unwrap_or("?"),
                    l.spec.host_id,
                    human_duration(i64::try_from(args.ttl.as_micros()).unwrap_or(i64::MAX)),
                    l.spec.reason
                ));
            }
            print_out(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(refused) => Ok(refused.report("Nothing was locked.")),
    }
}

/// Drops retired hosts (they are not in service, and their locks are released anyway);
/// refuses a selection of retired hosts only.
fn lockable(targets: Vec<Target>) -> Result<Vec<Target>> {
    let (retired, live): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|t| t.member.phase == Some(Lifecycle::Retired));
    if live.is_empty() {
        let names: Vec<_> = retired.iter().map(Target::name).collect();
        bail!(
            "{} retired; a retired host cannot be locked",
            if names.len() == 1 {
                format!("{} is", names[0])
            } else {
                format!("every selected host ({}) is", names.join(", "))
            }
        );
    }
    if !retired.is_empty() {
        eprintln!("skipping {} retired host(s)", retired.len());
    }
    Ok(live)
}

/// `hostledger unlock`.
pub async fn unlock(args: UnlockArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let user = whoami(&client).await?;
    let targets = resolve(&client, &args.targets).await?;
    let store = LockStore::new(client, &args.targets.scope.namespace);
    let holder = args.holder.name();
    let now = Timestamp::from(chrono::Utc::now());
    let mut out = String::new();
    let mut refused = Vec::new();
    for t in &targets {
        let Some(existing) = store.get(t.name()).await? else {
            out.push_str(&format!("{} was not locked\n", t.name()));
            continue;
        };
        if existing.is_held_by(&holder, &user) {
            if store
                .release(&existing)
                .await
                .map_err(|e| refusal(e, "release the lock"))?
            {
                out.push_str(&format!("released {}\n", t.name()));
            } else {
                out.push_str(&format!("{} was released meanwhile\n", t.name()));
            }
        } else if args.force {
            match store
                .break_lock(t.name())
                .await
                .map_err(|e| refusal(e, "break the lock"))?
            {
                Some(l) => out.push_str(&format!(
                    "broke the lock on {}: it was {}\n",
                    t.name(),
                    l.describe_holder(now)
                )),
                None => out.push_str(&format!("{} was released meanwhile\n", t.name())),
            }
        } else {
            refused.push(existing);
        }
    }
    print_out(&out)?;
    if refused.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {}\nonly its holder ({}) may release it; you are {holder} (user {user}). \
             --holder NAME releases a lock you took under another name; --force breaks it \
             (needs the break permission).",
            held_error(&refused, now),
            refused
                .iter()
                .map(|l| l.spec.holder.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ExitCode::from(EXIT_HELD))
    }
}

/// `hostledger locks`.
pub async fn locks(args: LocksArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let store = LockStore::new(client, &args.scope.namespace);
    let selector = args
        .scope
        .selector
        .as_ref()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let mut locks = store.list(&selector).await?;
    locks.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let now = Timestamp::from(chrono::Utc::now());
    let text = match args.output {
        LocksOutput::Json => {
            let rows: Vec<_> = locks
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "host": l.metadata.name,
                        "hostId": l.spec.host_id,
                        "holder": l.spec.holder,
                        "user": l.spec.user,
                        "reason": l.spec.reason,
                        "ttlSeconds": l.spec.ttl_seconds,
                        "acquiredAt": l.acquired_at(),
                        "renewedAt": l.spec.renewed_at,
                    })
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&rows)?)
        }
        LocksOutput::Table if locks.is_empty() => {
            format!("no host locks in namespace {}\n", args.scope.namespace)
        }
        LocksOutput::Table => {
            let rows: Vec<Vec<String>> = locks
                .iter()
                .map(|l| {
                    vec![
                        l.metadata.name.clone().unwrap_or_default(),
                        l.spec.holder.clone(),
                        l.spec.user.clone(),
                        l.acquired_at()
                            .map(|t| format!("{} ago", human_duration(now.micros_since(t))))
                            .unwrap_or_default(),
                        human_duration(l.spec.ttl_seconds.saturating_mul(1_000_000)),
                        l.spec.reason.clone(),
                    ]
                })
                .collect();
            hostledger_inventory::table::aligned(
                &["HOST", "HOLDER", "USER", "ACQUIRED", "TTL", "REASON"],
                &rows,
            )
        }
    };
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `hostledger with-lock`.
pub async fn with_lock(args: WithLockArgs) -> Result<ExitCode> {
    use futures::FutureExt as _;
    use tokio::signal::unix::{SignalKind, signal};
    // Signals are caught from the start: one that arrives while the locks are being taken
    // releases them instead of killing this process with the locks held.
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let Taken {
        store,
        holder,
        locks,
        ..
    } = take(
        &args.targets,
        &args.holder,
        &args.reason,
        args.ttl,
        args.wait,
    )
    .await?;
    let mut locks = match locks {
        Ok(locks) => locks,
        Err(refused) => return Ok(refused.report("The command was not run.")),
    };
    for (stream, code) in [(&mut term, 143), (&mut int, 130)] {
        if stream.recv().now_or_never().is_some() {
            eprintln!("with-lock: signal received before the command started; releasing the locks");
            release_quietly(&store, &locks).await;
            return Ok(ExitCode::from(code));
        }
    }
    let names: Vec<String> = locks
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    eprintln!(
        "with-lock: locked {} as {holder}; running {}",
        names.join(", "),
        args.command[0]
    );

    let mut child = match tokio::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .env("HOSTLEDGER_LOCKED_HOSTS", names.join(","))
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            release_quietly(&store, &locks).await;
            bail!("cannot run {:?}: {e}", args.command[0]);
        }
    };
    let ttl_seconds = i64::try_from(args.ttl.as_secs()).unwrap_or(i64::MAX);
    let mut renew = tokio::time::interval(renew_every(args.ttl));
    renew.tick().await;
    let mut last_renewed = Instant::now();
    let mut signalled = false;
    let mut lost: Option<String> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the command")?,
            _ = term.recv(), if !signalled => {
                signalled = true;
                eprintln!("with-lock: SIGTERM; stopping the command, then releasing the locks");
                terminate(&child);
            }
            _ = int.recv(), if !signalled => {
                signalled = true;
                eprintln!("with-lock: SIGINT; stopping the command, then releasing the locks");
                terminate(&child);
            }
            _ = renew.tick(), if lost.is_none() => {
                match renew_all(&store, &mut locks, &args.reason, ttl_seconds).await {
                    Ok(()) => last_renewed = Instant::now(),
                    Err(RenewFailure::Lost(why)) => {
                        eprintln!("with-lock: {why}; stopping the command");
                        lost = Some(why);
                        terminate(&child);
                    }
                    Err(RenewFailure::Unreachable(why)) => {
                        if last_renewed.elapsed() + renew_every(args.ttl) >= args.ttl {
                            let why = format!("could not renew for nearly the whole TTL ({why}); the locks may have expired");
                            eprintln!("with-lock: {why}; stopping the command");
                            lost = Some(why);
                            terminate(&child);
                        } else {
                            tracing::warn!(error = %why, "could not renew the locks; trying again");
                        }
                    }
                }
            }
        }
    };
    release_quietly(&store, &locks).await;
    if let Some(why) = lost {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(EXIT_LOST));
    }
    Ok(exit_code(status))
}

enum RenewFailure {
    Lost(String),
    Unreachable(String),
}

async fn renew_all(
    store: &LockStore,
    locks: &mut [HostLock],
    reason: &str,
    ttl_seconds: i64,
) -> std::result::Result<(), RenewFailure> {
    let now = Timestamp::from(chrono::Utc::now());
    for l in locks.iter_mut() {
        let name = l.metadata.name.clone().unwrap_or_default();
        match store.renew(l, reason, ttl_seconds).await {
            Ok(renewed) => *l = renewed,
            Err(Lost::Gone) => {
                return Err(RenewFailure::Lost(format!(
                    "lost the lock on {name}: it was released, broken or expired"
                )));
            }
            Err(Lost::Changed(now_held)) => {
                return Err(RenewFailure::Lost(match now_held {
                    Some(other) => format!(
                        "lost the lock on {name}: it was broken; it is now {}",
                        other.describe_holder(now)
                    ),
                    None => format!("lost the lock on {name}: it was broken"),
                }));
            }
            Err(Lost::Api(e)) => return Err(RenewFailure::Unreachable(e.to_string())),
        }
    }
    Ok(())
}

/// Sends SIGTERM to the command.
fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// The command's exit status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
        }
    }
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_checked_when_parsed() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_ttl("1s").unwrap_err().contains("at least 5 s"));
        assert!(parse_ttl("30d").unwrap_err().contains("at most 7 days"));
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn retired_hosts_are_skipped_and_a_selection_of_only_retired_ones_refused() {
        let t = |name: &str, phase| Target {
            labels: BTreeMap::new(),
            member: Member {
                name: name.into(),
                host_id: format!("dc/x/{name}"),
                labels: BTreeMap::new(),
                phase: Some(phase),
                locked: false,
                drifted: false,
            },
        };
        let kept = lockable(vec![
            t("a", Lifecycle::InService),
            t("b", Lifecycle::Retired),
        ])
        .expect("one left");
        assert_eq!(kept.len(), 1);
        let err = lockable(vec![t("b", Lifecycle::Retired)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "b is retired; a retired host cannot be locked"
        );
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_follow_the_command() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            exit_code(std::process::ExitStatus::from_raw(7 << 8)),
            ExitCode::from(7)
        );
        // Killed by SIGTERM (15): 143, as a shell reports it.
        assert_eq!(
            exit_code(std::process::ExitStatus::from_raw(15)),
            ExitCode::from(143)
        );
    }
}

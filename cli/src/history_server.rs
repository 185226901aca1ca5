//! `hostledger history-server`: serves every host's full history, read from the log, as the
//! API `hosthistories.history.hostledger.dev` behind kube-apiserver's aggregation layer, so
//! `kubectl get hosthistories.history.hostledger.dev HOST -o yaml` reaches it with the
//! caller's own credentials and RBAC. See docs/design/history.md.
//!
//! kube-apiserver connects with its front-proxy client certificate (verified against
//! `--client-ca`) and names the caller in `X-Remote-User` / `X-Remote-Group`; every request
//! for histories is checked with a SubjectAccessReview for that caller.
//!
//! A namespace's histories are those of the log its ConfigMap `hostledger-projection` names
//! (written by the projector), so one server serves every installation of the cluster whose
//! topic it is allowed to read (`--topic`). It folds each log, when a namespace first names
//! it, into an index on local disk (`history_index`), and follows it
//! (docs/design/history.md).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use hostledger_inventory::history_api::{
    GROUP, HostsListItem, Page, RESOURCE, Route, View, api_group, api_resources, history_list,
    history_object, history_table, hosts_list, states_list, status, uptime_list,
};
use hostledger_k8s::projection::{PROJECTION_CONFIGMAP, Projection};
use hostledger_kafka::{Item, KafkaClients, KafkaSettings, LogReader, ReadProgress, ReadScope};
use hostledger_model::selector::LabelSelector;
use hostledger_model::{Host, Position};
use hostledger_schemas::{Fact, Timestamp};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PartialObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use crate::KafkaArgs;
use crate::history_index::{DiskIndex, index_path};

/// `hostledger history-server`.
#[derive(Args, Debug)]
pub struct HistoryServerArgs {
    /// Address to serve on. kube-apiserver reaches it through the Service of the APIService
    /// `v1alpha1.history.hostledger.dev`.
    #[arg(long, default_value = "0.0.0.0:18443")]
    pub listen: SocketAddr,

    /// Serving certificate (PEM); its CA goes into the APIService's caBundle.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,

    /// Key of the serving certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,

    /// CA of kube-apiserver's front-proxy client certificate (its
    /// --requestheader-client-ca-file). Connections without a certificate it signed are
    /// refused.
    #[arg(long, value_name = "FILE")]
    pub client_ca: PathBuf,

    /// An events topic whose histories it serves (repeatable; a trailing `*` matches any
    /// rest, e.g. `team-a.*`). A namespace's histories are those of the topic its
    /// ConfigMap `hostledger-projection` names (written by `hostledger project` and
    /// `replay`). Default: the configured events topic only.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Directory of the indexes (one file per log). A restart goes on where they end; a lost
    /// one is rebuilt from the log. About 1.3 KB per event.
    #[arg(
        long,
        value_name = "DIR",
        env = "HOSTLEDGER_HISTORY_DIR",
        default_value = "history-index"
    )]
    pub data_dir: PathBuf,

    /// Where the log is.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

fn tls_config(args: &HistoryServerArgs) -> Result<rustls::ServerConfig> {
    let client_ca = std::fs::read(&args.client_ca)
        .with_context(|| format!("cannot read the client CA {}", args.client_ca.display()))?;
    crate::tls::mutual_tls_server(
        &args.tls_cert,
        &args.tls_key,
        &client_ca,
        &args.client_ca.display().to_string(),
    )
}

/// One log's index, followed from its start.
#[derive(Default)]
struct Log {
    index: RwLock<Option<DiskIndex>>,
    /// Whether the log has been read to where it ended when the server started reading it.
    ready: AtomicBool,
    /// Why it could not be read, when it could not.
    failed: Mutex<Option<String>>,
    /// The clients reading it, and how far the reading has gone.
    reading: OnceLock<(KafkaClients, Arc<ReadProgress>)>,
    /// Chunks of the log folded into the index.
    applied: AtomicU64,
}

/// How often the first reading of a log says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Most messages folded into the index in one transaction.
const BATCH: usize = 50_000;

/// Long enough for a reader at a partition's end to have fetched anything below the end
/// asked for (its fetches wait at most 20 ms), when its position is not known.
const QUIET: Duration = Duration::from_millis(300);

/// How long the Hosts' watch must have delivered nothing newer before it is taken to hold
/// every change up to the version asked for: kube-apiserver hands a change to its watchers
/// within milliseconds of writing it, and any other change of a Host ends the wait at once.
const HOSTS_QUIET: Duration = Duration::from_millis(100);

/// How long an answer that must hold the whole log waits for the index to reach its end.
const LOG_END_WAIT: Duration = Duration::from_secs(20);

impl Log {
    /// Waits until the index holds every message the log holds now (up to its last stable
    /// offset): an answer given then is as fresh as the log at the time it was asked for.
    async fn reach_end(&self) -> Result<(), String> {
        let Some((kafka, progress)) = self.reading.get() else {
            return Err("the history server is not reading the log yet".to_owned());
        };
        let topic = kafka.settings().topics.events.as_str();
        let ends = kafka
            .watermarks_async(topic, Duration::from_secs(10))
            .await
            .map_err(|e| format!("cannot ask where topic {topic} ends: {e}"))?;
        let started = std::time::Instant::now();
        loop {
            let quiet = started.elapsed() >= QUIET;
            match progress.covers(&ends, self.applied.load(Ordering::SeqCst), quiet) {
                Ok(()) => return Ok(()),
                Err(behind) if started.elapsed() > LOG_END_WAIT => {
                    return Err(format!(
                        "the history server has not read topic {topic} up to its end within {} s ({behind} partitions behind); ask again in a moment",
                        LOG_END_WAIT.as_secs()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// Every namespace's Hosts, their metadata only (without managedFields), watched: the labels
/// and annotations of `view=hosts`.
struct WatchedHosts {
    store: reflector::Store<PartialObjectMeta<Host>>,
    /// The newest resourceVersion the watch has delivered.
    seen: AtomicU64,
    /// Why the Hosts cannot be watched, while they cannot.
    failed: Mutex<Option<String>>,
}

impl WatchedHosts {
    /// Waits until the watch holds every Host of `namespace` as the API server has it now:
    /// it has listed them, and delivered every change up to the resourceVersion of a list
    /// asked for now, or has been quiet for [`HOSTS_QUIET`] (the version also counts writes
    /// to other objects, which this watch never sees).
    async fn reach_now(&self, client: &kube::Client, namespace: &str) -> Result<(), String> {
        if tokio::time::timeout(LOG_END_WAIT, self.store.wait_until_ready())
            .await
            .is_err()
        {
            let why = self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| "their first list has not finished".to_owned());
            return Err(format!(
                "the history server has not listed the Hosts within {} s: {why}",
                LOG_END_WAIT.as_secs()
            ));
        }
        let api: Api<Host> = Api::namespaced(client.clone(), namespace);
        let now = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map_err(|e| {
                format!("cannot ask the API server for the Hosts of namespace {namespace}: {e}")
            })?;
        let wanted = now
            .metadata
            .resource_version
            .and_then(|v| v.parse::<u64>().ok());
        let started = std::time::Instant::now();
        while wanted.is_some_and(|w| self.seen.load(Ordering::SeqCst) < w)
            && started.elapsed() < HOSTS_QUIET
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The Hosts of `namespace` named after `after`, by name.
    fn of(&self, namespace: &str, after: Option<&str>) -> Vec<Arc<PartialObjectMeta<Host>>> {
        let mut hosts: Vec<_> = self
            .store
            .state()
            .into_iter()
            .filter(|h| h.metadata.namespace.as_deref() == Some(namespace))
            .filter(|h| after.is_none_or(|a| h.metadata.name.as_deref() > Some(a)))
            .collect();
        hosts.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        hosts
    }
}

/// Follows every namespace's Hosts into `hosts`.
async fn watch_hosts(
    client: kube::Client,
    hosts: Arc<WatchedHosts>,
    writer: reflector::store::Writer<PartialObjectMeta<Host>>,
) {
    let stream = watcher(
        Api::<PartialObjectMeta<Host>>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(|h| h.metadata.managed_fields = None)
    .reflect(writer);
    futures::pin_mut!(stream);
    while let Some(next) = stream.next().await {
        match next {
            Ok(event) => {
                let version = match &event {
                    watcher::Event::Apply(h)
                    | watcher::Event::Delete(h)
                    | watcher::Event::InitApply(h) => h.metadata.resource_version.as_deref(),
                    watcher::Event::Init | watcher::Event::InitDone => None,
                };
                if let Some(v) = version.and_then(|v| v.parse::<u64>().ok()) {
                    hosts.seen.fetch_max(v, Ordering::SeqCst);
                }
                *hosts.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(error) => {
                tracing::warn!(%error, "watching the Hosts failed; retrying");
                *hosts.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "{error} (the history server needs to list and watch hosts.hostledger.dev in every namespace: deploy/policies/history-server.yaml)"
                ));
            }
        }
    }
}

/// A log: its topic, and the time a replay `--until` stopped at.
type LogKey = (String, Option<i64>);

/// What the server serves: a log per projected topic (and time), found through the
/// namespaces' ConfigMaps `hostledger-projection`.
struct Served {
    settings: KafkaSettings,
    data_dir: PathBuf,
    topics: Vec<String>,
    logs: Mutex<HashMap<LogKey, Arc<Log>>>,
    projections: reflector::Store<ConfigMap>,
    hosts: Arc<WatchedHosts>,
}

impl Served {
    fn allows(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => t == topic,
        })
    }

    /// What `namespace` is the projection of, if anything.
    fn projection(&self, namespace: &str) -> Option<Result<Projection, String>> {
        let key = ObjectRef::new(PROJECTION_CONFIGMAP).within(namespace);
        self.projections.get(&key).map(|map| {
            hostledger_k8s::projection::Projection::parse(namespace, &map)
                .map_err(|e| e.to_string())
        })
    }

    /// The index of `projection`'s log, read from its start and followed from the first call.
    fn log(&self, projection: &Projection) -> Arc<Log> {
        let key = (
            projection.events_topic.clone(),
            projection.until.map(|t| t.0),
        );
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = logs.get(&key)
            && log
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        {
            return log.clone();
        }
        let log = Arc::new(Log::default());
        let mut settings = self.settings.clone();
        settings.topics.events.clone_from(&projection.events_topic);
        let path = index_path(&self.data_dir, &projection.events_topic, projection.until);
        tokio::spawn(follow(settings, path, projection.until, log.clone()));
        logs.insert(key, log.clone());
        log
    }
}

/// Reads a log into `log`'s index at `path` (from where the index ends) and follows it; a
/// failure is recorded for the requests.
async fn follow(settings: KafkaSettings, path: PathBuf, until: Option<Timestamp>, log: Arc<Log>) {
    let topic = settings.topics.events.clone();
    let opened = async {
        let index = tokio::task::spawn_blocking(move || DiskIndex::open(&path, until))
            .await
            .map_err(|e| anyhow::anyhow!("the index thread failed: {e}"))??;
        let start = index.offsets().clone();
        let kafka = KafkaClients::new(settings)?;
        let reader = LogReader::open_scoped(
            &kafka,
            ReadScope {
                key: None,
                follow: true,
                start,
            },
        )
        .await?;
        let _ = log.reading.set((kafka, reader.progress()));
        *log.index.write().unwrap_or_else(|e| e.into_inner()) = Some(index);
        Ok::<_, anyhow::Error>(reader)
    }
    .await;
    let mut reader = match opened {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%topic, error = %format!("{error:#}"), "cannot read the log");
            *log.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("cannot read topic {topic}: {error:#}"));
            return;
        }
    };
    tracing::info!(%topic, messages = reader.total, "indexing a log");
    let started = std::time::Instant::now();
    let mut reported = started;
    while let Some(mut chunk) = reader.next_chunk().await {
        // What has been read already goes into the index together (one transaction rewrites
        // each touched page once), up to a bound.
        let mut taken = u64::from(!chunk.is_empty());
        while chunk.len() < BATCH
            && let Some(more) = reader.ready_chunk()
        {
            taken += u64::from(!more.is_empty());
            chunk.extend(more);
        }
        let read: Vec<Position> = chunk.iter().map(Item::position).collect();
        let facts: Vec<(Fact, Position)> = chunk
            .into_iter()
            .filter_map(|item| match item {
                Item::Event(event, position) => Some((Fact::Host(*event), position)),
                Item::Lock(event, position) => Some((Fact::Lock(*event), position)),
                Item::Poison { .. } => None,
            })
            .collect();
        let mut guard = log.index.write().unwrap_or_else(|e| e.into_inner());
        let Some(index) = guard.as_mut() else { break };
        if let Err(error) = index.apply(&facts, &read) {
            *log.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("cannot index topic {topic}: {error:#}"));
            return;
        }
        log.applied.fetch_add(taken, Ordering::SeqCst);
        if reader.caught_up() && !log.ready.swap(true, Ordering::SeqCst) {
            tracing::info!(%topic, hosts = index.len(), facts = index.facts, seconds = started.elapsed().as_secs(), "indexed the log up to its end; following it");
        } else if !log.ready.load(Ordering::SeqCst) && reported.elapsed() >= PROGRESS_EVERY {
            reported = std::time::Instant::now();
            tracing::info!(%topic, read = reader.stats.messages, of = reader.total, hosts = index.len(), "indexing");
        }
    }
    let reason = match reader.finish().await {
        Ok(_) => format!("stopped following topic {topic}"),
        Err(error) => format!("cannot follow topic {topic}: {error}"),
    };
    tracing::info!(%topic, %reason, "no longer serving this log");
    *log.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(args: HistoryServerArgs) -> Result<ExitCode> {
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&args)?));
    let settings = args.kafka.apply(KafkaSettings::default());
    let topics = if args.topics.is_empty() {
        vec![settings.topics.events.clone()]
    } else {
        args.topics.clone()
    };
    let client = crate::kube_client().await?;

    // The namespaces' projections, watched; a log is read as soon as a namespace names it.
    let (projections, writer) = reflector::store();
    let (host_store, host_writer) = reflector::store();
    let hosts = Arc::new(WatchedHosts {
        store: host_store,
        seen: AtomicU64::new(0),
        failed: Mutex::new(None),
    });
    let host_watch = tokio::spawn(watch_hosts(client.clone(), hosts.clone(), host_writer));
    let served = Arc::new(Served {
        settings,
        data_dir: args.data_dir.clone(),
        topics,
        logs: Mutex::new(HashMap::new()),
        projections,
        hosts,
    });
    let watched = watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={PROJECTION_CONFIGMAP}")),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects();
    let starter = served.clone();
    let watch = tokio::spawn(async move {
        futures::pin_mut!(watched);
        while let Some(next) = watched.next().await {
            match next {
                Ok(map) => {
                    let namespace = map.metadata.namespace.clone().unwrap_or_default();
                    match hostledger_k8s::projection::Projection::parse(&namespace, &map) {
                        Ok(p) if starter.allows(&p.events_topic) => {
                            starter.log(&p);
                        }
                        Ok(p) => {
                            tracing::debug!(%namespace, topic = %p.events_topic, "not a topic this server serves")
                        }
                        Err(error) => {
                            tracing::warn!(%namespace, %error, "unusable projection record")
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "watching the namespaces' projections failed; retrying")
                }
            }
        }
    });
    if tokio::time::timeout(
        Duration::from_secs(30),
        served.projections.wait_until_ready(),
    )
    .await
    .is_err()
    {
        anyhow::bail!(
            "could not list the ConfigMaps {PROJECTION_CONFIGMAP} within 30 s; the history server needs to list and watch ConfigMaps in every namespace (deploy/policies/history-server.yaml)"
        );
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, topics = ?served.topics, "serving {RESOURCE}.{GROUP}");
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    continue;
                }
            },
        };
        let (tls, served, client) = (tls.clone(), served.clone(), client.clone());
        tokio::spawn(async move {
            let stream = match tls.accept(socket).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::debug!(%peer, %error, "refused a TLS connection");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let (served, client) = (served.clone(), client.clone());
                async move { Ok::<_, Infallible>(answer(&request, &served, &client).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended");
            }
        });
    }
    watch.abort();
    host_watch.abort();
    Ok(ExitCode::SUCCESS)
}

fn json_response(code: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize a response");
        b"{}".to_vec()
    });
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The caller kube-apiserver names in the front-proxy headers.
fn caller(request: &Request<Incoming>) -> (String, Vec<String>) {
    let headers = request.headers();
    let user = headers
        .get("X-Remote-User")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let groups = headers
        .get_all("X-Remote-Group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    (user, groups)
}

/// Whether the caller may `verb` histories in `namespace` (every namespace: `None`), by a
/// SubjectAccessReview.
async fn allowed(
    client: &kube::Client,
    user: &str,
    groups: &[String],
    verb: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<bool, String> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups.to_vec()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.to_owned()),
                resource: Some(RESOURCE.to_owned()),
                verb: Some(verb.to_owned()),
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            format!("cannot ask the API server whether {user} may {verb} {RESOURCE}: {e}")
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

fn failure(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(code, &status(code.as_u16(), reason, message))
}

/// A page of `view=hosts` or `view=inventory`: the watched Hosts of `namespace`, each with
/// its status from the index. A Host the log does not hold (made by hand, or by another
/// projection) cannot be answered here: the answer says so, and readers list the Host
/// objects instead.
fn hosts_page(
    served: &Served,
    index: &DiskIndex,
    namespace: &str,
    page: &Page,
) -> Response<Full<Bytes>> {
    let selector = match page.label_selector.as_deref().map(LabelSelector::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return failure(StatusCode::BAD_REQUEST, "BadRequest", &e.reason),
        None => None,
    };
    let limit = page.limit.unwrap_or(usize::MAX);
    let watched = served.hosts.of(namespace, page.after.as_deref());
    let mut items = Vec::new();
    let mut next = None;
    for host in &watched {
        let name = host.metadata.name.as_deref().unwrap_or_default();
        let Some(record) = index.record(name) else {
            return failure(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Host {name} of namespace {namespace} is not in the log this namespace is the projection of; read the Host objects"
                ),
            );
        };
        let item = HostsListItem::new(name, namespace, &host.metadata, record, page.view);
        if selector.as_ref().is_some_and(|s| !s.matches(item.labels())) {
            continue;
        }
        if items.len() == limit {
            next = items
                .last()
                .map(|i: &HostsListItem<'_>| i.name().to_owned());
            break;
        }
        items.push(item);
    }
    json_response(
        StatusCode::OK,
        &hosts_list(items, next.as_deref(), page.view),
    )
}

/// The ready index of `namespace`'s log, or the answer that says why there is none.
fn ready_log(
    served: &Served,
    namespace: &str,
) -> Result<Option<Arc<Log>>, Box<Response<Full<Bytes>>>> {
    let projection = match served.projection(namespace) {
        None => return Ok(None),
        Some(Err(message)) => {
            return Err(Box::new(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &message,
            )));
        }
        Some(Ok(p)) => p,
    };
    if !served.allows(&projection.events_topic) {
        return Err(Box::new(failure(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "namespace {namespace} is the projection of topic {}, which this history server does not serve (its --topic: {}); run one with --topic {}",
                projection.events_topic,
                served.topics.join(", "),
                projection.events_topic
            ),
        )));
    }
    let log = served.log(&projection);
    if let Some(reason) = log.failed.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return Err(Box::new(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &reason,
        )));
    }
    if !log.ready.load(Ordering::SeqCst) {
        return Err(Box::new(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!(
                "the history server is still reading topic {}; it serves histories once it has read it to the end",
                projection.events_topic
            ),
        )));
    }
    Ok(Some(log))
}

async fn answer(
    request: &Request<Incoming>,
    served: &Served,
    client: &kube::Client,
) -> Response<Full<Bytes>> {
    let route = Route::parse(request.uri().path());
    let (verb, namespace, name) = match &route {
        Route::Group => return json_response(StatusCode::OK, &api_group()),
        Route::Resources => return json_response(StatusCode::OK, &api_resources()),
        Route::NotFound => {
            return failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} is not served here", request.uri().path()),
            );
        }
        Route::Get { namespace, name } => ("get", Some(namespace.as_str()), Some(name.as_str())),
        Route::List { namespace } => ("list", namespace.as_deref(), None),
    };
    if request.method() != hyper::Method::GET {
        return failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "host histories are read-only: they are the log's",
        );
    }
    let page = match Page::parse(request.uri().query()) {
        Ok(p) => p,
        Err(message) => return failure(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    let (user, groups) = caller(request);
    match allowed(client, &user, &groups, verb, namespace, name).await {
        Ok(true) => {}
        Ok(false) => {
            let what = name.map_or_else(|| RESOURCE.to_owned(), |n| format!("{RESOURCE} {n}"));
            let place = namespace.map_or_else(
                || "every namespace".to_owned(),
                |n| format!("namespace {n}"),
            );
            return failure(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "{user} may not {verb} {what} in {place}: grant the verb {verb} on {RESOURCE}.{GROUP} (ClusterRole hostledger:history-reader)"
                ),
            );
        }
        Err(message) => {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &message,
            );
        }
    }
    // kubectl asks for a Table to print columns.
    let table = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let internal = |error: anyhow::Error| {
        failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("{error:#}"),
        )
    };
    if page.view != View::Entries && (namespace.is_none() || name.is_some()) {
        let view = page.view.name();
        return failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "view={view} lists the hosts of one namespace: GET /apis/history.hostledger.dev/v1alpha1/namespaces/NAMESPACE/hosthistories?view={view}"
            ),
        );
    }
    let Some(namespace) = namespace else {
        // Every namespace: the ready logs of those this server serves.
        let mut names: Vec<String> = served
            .projections
            .state()
            .iter()
            .filter_map(|m| m.metadata.namespace.clone())
            .collect();
        names.sort();
        let mut items = Vec::new();
        let mut rows = Vec::new();
        for ns in names {
            let Ok(Some(log)) = ready_log(served, &ns) else {
                continue;
            };
            let guard = log.index.read().unwrap_or_else(|e| e.into_inner());
            let Some(index) = guard.as_ref() else {
                continue;
            };
            let hosts = match index.page(&Page::default()) {
                Ok((hosts, _)) => hosts,
                Err(error) => return internal(error),
            };
            if table {
                let t = history_table(&ns, hosts.iter().map(|(n, h)| (n, h)));
                rows.extend(t["rows"].as_array().cloned().unwrap_or_default());
            } else {
                let list = history_list(&ns, &hosts, None);
                items.extend(list["items"].as_array().cloned().unwrap_or_default());
            }
        }
        return if table {
            let mut t = history_table("", std::iter::empty());
            t["rows"] = Value::Array(rows);
            json_response(StatusCode::OK, &t)
        } else {
            let mut list = history_list("", &[], None);
            list["items"] = Value::Array(items);
            json_response(StatusCode::OK, &list)
        };
    };
    let log = match ready_log(served, namespace) {
        Ok(log) => log,
        Err(response) => return *response,
    };
    // Uptime and Hosts are answered from the index (and the watched Hosts) alone: first as
    // fresh as the log (and the API server) are now.
    if page.view != View::Entries && page.after.is_none() {
        let log_end = async {
            match &log {
                Some(log) => log.reach_end().await,
                None => Ok(()),
            }
        };
        let hosts_now = async {
            match page.view {
                v if v.lists_hosts() => served.hosts.reach_now(client, namespace).await,
                _ => Ok(()),
            }
        };
        // Both waits at once: each may sit out its quiet moment.
        let waiting = std::time::Instant::now();
        let (log_end, hosts_now) = tokio::join!(log_end, hosts_now);
        tracing::debug!(view = ?page.view, seconds = waiting.elapsed().as_secs_f64(), "caught up before answering");
        if let Err(message) = log_end.and(hosts_now) {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &message,
            );
        }
    }
    let guard = log
        .as_ref()
        .map(|l| l.index.read().unwrap_or_else(|e| e.into_inner()));
    let index = guard.as_ref().and_then(|g| g.as_ref());
    match name {
        Some(n) => match index.map(|i| i.get(n)).transpose() {
            Err(error) => internal(error),
            Ok(Some(Some(host))) if table => json_response(
                StatusCode::OK,
                &history_table(namespace, [(&n.to_owned(), &host)]),
            ),
            Ok(Some(Some(host))) => {
                json_response(StatusCode::OK, &history_object(namespace, n, &host))
            }
            Ok(_) => failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!(
                    "{RESOURCE}.{GROUP} \"{n}\" not found: no host of that name in the log of namespace {namespace}"
                ),
            ),
        },
        None if page.view.lists_hosts() => {
            let Some(index) = index else {
                return failure(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!(
                        "namespace {namespace} is not the projection of a log (no ConfigMap {PROJECTION_CONFIGMAP}); read its Host objects"
                    ),
                );
            };
            hosts_page(served, index, namespace, &page)
        }
        None if page.view == View::Uptime && !table => {
            let (items, next) = match index.map(|i| i.uptime_page(&page)).transpose() {
                Ok(found) => found.unwrap_or_default(),
                Err(error) => return internal(error),
            };
            json_response(
                StatusCode::OK,
                &uptime_list(namespace, &items, next.as_deref()),
            )
        }
        None => {
            let (hosts, next) = match index.map(|i| i.page(&page)).transpose() {
                Ok(found) => found.unwrap_or_default(),
                Err(error) => return internal(error),
            };
            if table {
                return json_response(
                    StatusCode::OK,
                    &history_table(namespace, hosts.iter().map(|(n, h)| (n, h))),
                );
            }
            match page.as_of {
                Some(at) => match states_list(namespace, &hosts, next.as_deref(), at) {
                    Ok(list) => json_response(StatusCode::OK, &list),
                    Err(error) => internal(error.into()),
                },
                None => json_response(
                    StatusCode::OK,
                    &history_list(namespace, &hosts, next.as_deref()),
                ),
            }
        }
    }
}

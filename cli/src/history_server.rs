//! `hostledger history-server`: serves every host's full history, read from the log, as the
//! API `hosthistories.history.hostledger.dev` behind kube-apiserver's aggregation layer, so
//! `kubectl get hosthistories.history.hostledger.dev HOST -o yaml` reaches it with the
//! caller's own credentials and RBAC. See docs/design/history.md.
//!
//! kube-apiserver connects with its front-proxy client certificate (verified against
//! `--client-ca`) and names the caller in `X-Remote-User` / `X-Remote-Group`; every request
//! for histories is checked with a SubjectAccessReview for that caller.
//!
//! This first version folds the log into memory on start and follows it; the index on disk
//! comes next (docs/design/history.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use clap::Args;
use hostledger_inventory::history_api::{
    GROUP, HistoryIndex, RESOURCE, Route, api_group, api_resources, history_list, history_object,
    history_table, status,
};
use hostledger_kafka::{Item, KafkaClients, KafkaSettings, LogReader, ReadScope};
use hostledger_schemas::Fact;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use crate::KafkaArgs;

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

    /// Namespace the histories are served in (that of the Hosts of this log).
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = hostledger_model::defaults::defaults().namespace.as_str()
    )]
    pub namespace: String,

    /// Where the log is.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

fn tls_config(args: &HistoryServerArgs) -> Result<rustls::ServerConfig> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&args.tls_cert, "serving certificate")?)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate", args.tls_cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&args.tls_key, "serving key")?)
        .with_context(|| format!("{} is not a PEM private key", args.tls_key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&args.client_ca, "client CA")?) {
        let ca =
            ca.with_context(|| format!("{} is not a PEM certificate", args.client_ca.display()))?;
        roots
            .add(ca)
            .with_context(|| format!("{} is not a usable CA", args.client_ca.display()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .context("cannot build the client certificate verifier")?;
    rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the serving certificate and key do not go together")
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(args: HistoryServerArgs) -> Result<ExitCode> {
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&args)?));
    let kafka = KafkaClients::new(args.kafka.apply(KafkaSettings::default()))?;
    let client = crate::kube_client().await?;
    let index = Arc::new(RwLock::new(HistoryIndex::default()));

    // Fold the log and follow it.
    let mut log = LogReader::open_scoped(
        &kafka,
        ReadScope {
            key: None,
            follow: true,
        },
    )
    .await?;
    let total = log.total;
    let folding = index.clone();
    // Histories are served once the log has been read to where it ended at the start, so
    // nobody is ever given part of a host's history.
    let ready = Arc::new(AtomicBool::new(total == 0));
    let caught_up = ready.clone();
    let follower = tokio::spawn(async move {
        let mut read = 0u64;
        let mut announced = false;
        while let Some(chunk) = log.next_chunk().await {
            let mut index = folding.write().unwrap_or_else(|e| e.into_inner());
            for item in chunk {
                read += 1;
                match item {
                    Item::Event(event, position) => index.push(&Fact::Host(*event), position),
                    Item::Lock(event, position) => index.push(&Fact::Lock(*event), position),
                    Item::Poison { .. } => {}
                }
            }
            if !announced && read >= total {
                announced = true;
                caught_up.store(true, Ordering::SeqCst);
                tracing::info!(
                    hosts = index.len(),
                    facts = index.facts,
                    "indexed the log up to its end; following it"
                );
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, namespace = %args.namespace, "serving {RESOURCE}.{GROUP}");
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
        let (tls, index, client, namespace, ready) = (
            tls.clone(),
            index.clone(),
            client.clone(),
            args.namespace.clone(),
            ready.clone(),
        );
        tokio::spawn(async move {
            let stream = match tls.accept(socket).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::debug!(%peer, %error, "refused a TLS connection");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let (index, client, namespace) = (index.clone(), client.clone(), namespace.clone());
                let ready = ready.load(Ordering::SeqCst);
                async move {
                    Ok::<_, Infallible>(answer(&request, &index, &client, &namespace, ready).await)
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended");
            }
        });
    }
    follower.abort();
    Ok(ExitCode::SUCCESS)
}

fn json_response(code: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
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

/// Whether the caller may `verb` histories in `namespace` (a SubjectAccessReview).
async fn allowed(
    client: &kube::Client,
    user: &str,
    groups: &[String],
    verb: &str,
    namespace: &str,
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
                namespace: Some(namespace.to_owned()),
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

async fn answer(
    request: &Request<Incoming>,
    index: &RwLock<HistoryIndex>,
    client: &kube::Client,
    namespace: &str,
    ready: bool,
) -> Response<Full<Bytes>> {
    let route = Route::parse(request.uri().path());
    let (verb, ns, name) = match &route {
        Route::Group => return json_response(StatusCode::OK, &api_group()),
        Route::Resources => return json_response(StatusCode::OK, &api_resources()),
        Route::NotFound => {
            return json_response(
                StatusCode::NOT_FOUND,
                &status(
                    404,
                    "NotFound",
                    &format!("{} is not served here", request.uri().path()),
                ),
            );
        }
        Route::Get { namespace, name } => ("get", Some(namespace.as_str()), Some(name.as_str())),
        Route::List { namespace } => ("list", namespace.as_deref(), None),
    };
    if request.method() != hyper::Method::GET {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &status(
                405,
                "MethodNotAllowed",
                "host histories are read-only: they are the log's",
            ),
        );
    }
    if !ready {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &status(
                503,
                "ServiceUnavailable",
                "the history server is still reading the log; it serves histories once it has read it to the end",
            ),
        );
    }
    let (user, groups) = caller(request);
    let checked_ns = ns.unwrap_or(namespace);
    match allowed(client, &user, &groups, verb, checked_ns, name).await {
        Ok(true) => {}
        Ok(false) => {
            let what = name.map_or_else(|| RESOURCE.to_owned(), |n| format!("{RESOURCE} {n}"));
            return json_response(
                StatusCode::FORBIDDEN,
                &status(
                    403,
                    "Forbidden",
                    &format!(
                        "{user} may not {verb} {what} in namespace {checked_ns}: grant the verb {verb} on {RESOURCE}.{GROUP} (ClusterRole hostledger:history-reader)"
                    ),
                ),
            );
        }
        Err(message) => {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &status(503, "ServiceUnavailable", &message),
            );
        }
    }
    // Only the namespace this server serves holds histories; others are empty.
    if ns.is_some_and(|n| n != namespace) {
        return match name {
            Some(n) => json_response(
                StatusCode::NOT_FOUND,
                &status(
                    404,
                    "NotFound",
                    &format!("no history of {n} in namespace {}", ns.unwrap_or_default()),
                ),
            ),
            None => json_response(
                StatusCode::OK,
                &history_list(namespace, &HistoryIndex::default()),
            ),
        };
    }
    let index = index.read().unwrap_or_else(|e| e.into_inner());
    // kubectl asks for a Table to print columns.
    let table = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    match name {
        Some(n) => match index.get(n) {
            Some(host) if table => json_response(
                StatusCode::OK,
                &history_table(namespace, [(&n.to_owned(), host)]),
            ),
            Some(host) => json_response(StatusCode::OK, &history_object(namespace, n, host)),
            None => json_response(
                StatusCode::NOT_FOUND,
                &status(
                    404,
                    "NotFound",
                    &format!(
                        "{RESOURCE}.{GROUP} \"{n}\" not found: no host of that name in the log"
                    ),
                ),
            ),
        },
        None if table => json_response(StatusCode::OK, &history_table(namespace, index.iter())),
        None => json_response(StatusCode::OK, &history_list(namespace, &index)),
    }
}

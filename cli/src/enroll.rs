//! Enrollment of new fetchers and people without copying keys: `token create` (an
//! administrator), `enroll` (the new fetcher or person, with nothing but the token and the CA
//! bundle) and `approver` (the process that approves and signs). The protocol is in
//! `hostledger_k8s::enrollment`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use hostledger_k8s::enrollment::{
    self, Decision, Identity, KUBE_CLIENT_SIGNER, SIGNER_NAME, Signer, Signers, TOKEN_NAMESPACE,
    Token,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::{kube_client, print_out};

/// `hostledger token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TokenAction,
}

/// Token actions.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a one-time bootstrap token with which a new fetcher of SCOPE enrolls
    /// (`hostledger enroll`) and gets the Kafka certificate of `hostledger-fetcher-SCOPE`, or a
    /// person NAME (`--role operator|reader --name NAME`) gets an API server certificate of
    /// user NAME in group `hostledger-operators` or `hostledger-readers`.
    ///
    /// Run it as an administrator (it writes a Secret in kube-system). Grant a fetcher its
    /// Kafka ACLs too: `hostledger topics grant fetcher --scope SCOPE --principal
    /// User:hostledger-fetcher-SCOPE`; people's groups are bound to their roles by
    /// deploy/base/identities.yaml.
    Create {
        /// The identity's role: fetcher, or a person's (operator, reader).
        #[arg(long, default_value = "fetcher", value_parser = ["fetcher", "operator", "reader"])]
        role: String,
        /// A fetcher's region or provider scope (a-z 0-9 -): it will publish as sources named
        /// SCOPE...
        #[arg(long, required_if_eq("role", "fetcher"), conflicts_with = "name")]
        scope: Option<String>,
        /// A person's user name (a-z 0-9 - . @), for --role operator or reader.
        #[arg(long)]
        name: Option<String>,
        /// How long the token may be used, e.g. 30m, 24h.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// `hostledger enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The API server, e.g. https://kube.example.net:6443.
    #[arg(long)]
    pub server: String,
    /// PEM bundle of the CAs to trust: the API server's and the Kafka brokers' (written to
    /// OUT/ca.crt for the Kafka client).
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// The bootstrap token (ID.SECRET) from `hostledger token create`; also read from
    /// $HOSTLEDGER_ENROLL_TOKEN.
    #[arg(long, env = "HOSTLEDGER_ENROLL_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The role the token was made for: fetcher, or a person's (operator, reader).
    #[arg(long, default_value = "fetcher", value_parser = ["fetcher", "operator", "reader"])]
    pub role: String,
    /// The scope the token was made for (a fetcher).
    #[arg(long, required_if_eq("role", "fetcher"), conflicts_with = "name")]
    pub scope: Option<String>,
    /// The user name the token was made for (a person).
    #[arg(long)]
    pub name: Option<String>,
    /// Directory for tls.key (made here, never sent), tls.crt, ca.crt and kafka.yaml (a
    /// fetcher) or kubeconfig (a person).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How long the certificate is to be valid (the approver may give less; at least 10m).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,
    /// How long to wait for the approver.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `hostledger approver`.
#[derive(Debug, Args)]
pub struct ApproverArgs {
    /// PEM certificate of the CA the Kafka brokers trust for clients.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// Its private key.
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
    /// Sign people's API server certificates (signer kubernetes.io/kube-apiserver-client)
    /// with this CA, the one kube-apiserver's --client-ca-file trusts. Only where no
    /// kube-controller-manager signs them (a cluster's does, once this approver approved).
    #[arg(long, value_name = "FILE", requires = "kube_ca_key")]
    pub kube_ca_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, value_name = "FILE", requires = "kube_ca_cert")]
    pub kube_ca_key: Option<PathBuf>,
    /// The longest lifetime it gives a certificate (enrolled or renewed).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_lifetime: Duration,
    /// Serve renewals here (HTTPS, POST /v1/renew with a PEM request): an enrolled fetcher
    /// authenticates with its current certificate (signed by --ca-cert) and gets a new one of
    /// the same name.
    #[arg(long, value_name = "ADDR", requires_all = ["renew_tls_cert", "renew_tls_key"])]
    pub renew_listen: Option<std::net::SocketAddr>,
    /// The renewal endpoint's serving certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub renew_tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub renew_tls_key: Option<PathBuf>,
}

/// Creates a token.
pub async fn token(args: TokenArgs) -> Result<ExitCode> {
    let TokenAction::Create {
        role,
        scope,
        name,
        ttl,
    } = args.action;
    let identity = identity_of(&role, scope.as_deref(), name.as_deref())?;
    let ttl_chrono = chrono::Duration::from_std(ttl).context("--ttl is too long")?;
    let expires_at = chrono::Utc::now() + ttl_chrono;
    let token = Token::generate();
    let client = kube_client().await?;
    let secrets: Api<Secret> = Api::namespaced(client, TOKEN_NAMESPACE);
    secrets
        .create(
            &PostParams::default(),
            &token.to_secret(&identity, expires_at),
        )
        .await
        .map_err(|e| hostledger_k8s::K8sError::api("create the bootstrap token", e))?;
    print_out(&format!(
        "{}\n# one-time token for {}, valid until {} (Secret {TOKEN_NAMESPACE}/{}).\n\
         # On the new {}: hostledger enroll --server URL --ca CA-BUNDLE --role {} {} --out DIR --token <the token>\n",
        token.bearer(),
        identity.common_name(),
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        token.secret_name(),
        if identity.is_person() {
            "machine"
        } else {
            "fetcher"
        },
        identity.role,
        identity_flag(&identity),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The identity of `--role` with `--scope` (a fetcher) or `--name` (a person).
fn identity_of(role: &str, scope: Option<&str>, name: Option<&str>) -> Result<Identity> {
    let identity = match (role, scope, name) {
        ("fetcher", Some(scope), _) => Identity::fetcher(scope),
        ("fetcher", None, _) => Err("--role fetcher needs --scope".to_owned()),
        (role, _, Some(name)) => Identity::person(role, name),
        (role, _, None) => Err(format!(
            "--role {role} is a person's: give their user name with --name"
        )),
    };
    identity.map_err(anyhow::Error::msg)
}

/// `--scope SCOPE` or `--name NAME`, as `enroll` takes it for `identity`.
fn identity_flag(identity: &Identity) -> String {
    if identity.is_person() {
        format!("--name {}", identity.scope)
    } else {
        format!("--scope {}", identity.scope)
    }
}

/// A client of `server` trusting `ca`, authenticating with `token` only.
async fn token_client(server: &str, ca: &Path, token: &Token) -> Result<kube::Client> {
    let ca = ca
        .canonicalize()
        .with_context(|| format!("cannot read --ca {}", ca.display()))?;
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "enroll", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "bootstrap", "user": {"token": token.bearer()}}],
        "contexts": [{"name": "enroll", "context": {"cluster": "enroll", "user": "bootstrap"}}],
        "current-context": "enroll",
    });
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig.to_string())
        .context("build the enrollment client")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("cannot use --server {server} with --ca {}", ca.display()))?;
    kube::Client::try_from(config).context("build the enrollment client")
}

/// Enrolls: a key made here, a CSR for the token's identity, the signed certificate.
pub async fn enroll(args: EnrollArgs) -> Result<ExitCode> {
    let token = Token::parse(&args.token).map_err(anyhow::Error::msg)?;
    let identity = identity_of(&args.role, args.scope.as_deref(), args.name.as_deref())?;
    if args.lifetime < enrollment::MIN_LIFETIME {
        bail!("--lifetime must be at least 10m (the CSR API's minimum)");
    }
    let bundle = std::fs::read(&args.ca)
        .with_context(|| format!("cannot read --ca {}", args.ca.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create --out {}", args.out.display()))?;
    let client = token_client(&args.server, &args.ca, &token).await?;
    let (key, request) = hostledger_kafka::identity::new_key_and_request_in(
        &identity.common_name(),
        identity.group().as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let name = format!(
        "{}-{}-{}",
        identity.common_name(),
        token.id,
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let csr = enrollment::csr_object_of(identity.signer_name(), &name, &request, args.lifetime);
    let answer = match enrollment::request_certificate(&client, &csr, args.timeout).await {
        Ok(answer) => answer,
        Err(hostledger_k8s::K8sError::Unauthenticated { .. }) => bail!(
            "the API server did not accept the token {}: it is unknown, expired or already used (a token enrolls \
             once); ask an administrator for a new one (hostledger token create --role {} {})",
            token.id,
            identity.role,
            identity_flag(&identity)
        ),
        Err(e) => return Err(e.into()),
    };
    let certificate = match answer {
        Ok(certificate) => certificate,
        Err(reason) => bail!("enrollment of {} refused: {reason}", identity.common_name()),
    };
    let write = |file: &str, text: &[u8], private: bool| -> Result<PathBuf> {
        let path = args.out.join(file);
        hostledger_inventory::atomic::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if private {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private", path.display()))?;
        }
        // Absolute: a kubeconfig's relative paths are taken from its own directory, a fetcher
        // config's from where the fetcher runs.
        path.canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))
    };
    let key_path = write("tls.key", key.as_bytes(), true)?;
    let cert_path = write("tls.crt", certificate.as_bytes(), false)?;
    let ca_path = write("ca.crt", &bundle, false)?;
    if identity.is_person() {
        let kubeconfig =
            person_kubeconfig(&args.server, &identity, &ca_path, &cert_path, &key_path);
        let config_path = write("kubeconfig", kubeconfig.as_bytes(), true)?;
        print_out(&format!(
            "enrolled as user {} in group {} (CSR {name}): {} and {}; use it with: export KUBECONFIG={}\n",
            identity.common_name(),
            identity.group().unwrap_or_default(),
            cert_path.display(),
            key_path.display(),
            config_path.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let snippet = format!(
        "# Kafka identity {} (enrolled with token {}); paste under a fetcher config's kafka:\n\
         security_protocol: ssl\nca_file: {}\ncert_file: {}\nkey_file: {}\n",
        identity.common_name(),
        token.id,
        ca_path.display(),
        cert_path.display(),
        key_path.display()
    );
    let config_path = write("kafka.yaml", snippet.as_bytes(), false)?;
    print_out(&format!(
        "enrolled as {} (CSR {name}): {} and {} ({})\n",
        identity.common_name(),
        cert_path.display(),
        key_path.display(),
        config_path.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// A kubeconfig for `identity` at `server` with the enrolled files.
fn person_kubeconfig(
    server: &str,
    identity: &Identity,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> String {
    let user = identity.common_name();
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "hostledger", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [{"name": "hostledger", "context": {"cluster": "hostledger", "user": user, "namespace": hostledger_model::defaults::defaults().namespace}}],
        "current-context": "hostledger",
    });
    format!(
        "# {user} (group {}), enrolled with hostledger enroll\n{}\n",
        identity.group().unwrap_or_default(),
        serde_json::to_string_pretty(&config).unwrap_or_default()
    )
}

/// Approves and signs the CSRs of [`SIGNER_NAME`] whose tokens allow them; denies the rest.
pub async fn approver(args: ApproverArgs) -> Result<ExitCode> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let ca_pem = read(&args.ca_cert)?;
    let signer = Signer::from_pem(&ca_pem, &read(&args.ca_key)?)
        .map_err(anyhow::Error::msg)
        .context("the signing CA (--ca-cert, --ca-key)")?;
    let kube_signer = match (&args.kube_ca_cert, &args.kube_ca_key) {
        (Some(cert), Some(key)) => Some(
            Signer::from_pem(&read(cert)?, &read(key)?)
                .map_err(anyhow::Error::msg)
                .context("the API server's client CA (--kube-ca-cert, --kube-ca-key)")?,
        ),
        _ => None,
    };
    let signer = std::sync::Arc::new(signer);
    let _renewals = match (
        &args.renew_listen,
        &args.renew_tls_cert,
        &args.renew_tls_key,
    ) {
        (Some(listen), Some(cert), Some(key)) => {
            let tls = renewal_tls(&ca_pem, cert, key)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(listen = %listener.local_addr()?, "serving renewals");
            Some(AbortOnDrop(tokio::spawn(serve_renewals(
                listener,
                tls,
                signer.clone(),
                args.max_lifetime,
            ))))
        }
        _ => None,
    };
    let client = kube_client().await?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let signers = Signers {
        kafka: signer.clone(),
        kube: kube_signer,
    };
    tracing::info!(
        signer = SIGNER_NAME,
        people = if signers.kube.is_some() {
            "approved and signed"
        } else {
            "approved for kube-controller-manager to sign"
        },
        "approving CSRs"
    );
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let shutdown = crate::shutdown_signal();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return Ok(ExitCode::SUCCESS),
            event = stream.next() => event,
        };
        let Some(event) = event else {
            return Ok(ExitCode::SUCCESS);
        };
        let csrs = match event {
            Ok(watcher::Event::Apply(csr) | watcher::Event::InitApply(csr)) => vec![csr],
            Ok(_) => Vec::new(),
            Err(error) => {
                tracing::warn!(%error, "watching CSRs");
                Vec::new()
            }
        };
        for csr in csrs {
            if csr.spec.signer_name != SIGNER_NAME && csr.spec.signer_name != KUBE_CLIENT_SIGNER {
                continue;
            }
            let token = match enrollment::requester_token(&client, &csr).await {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%error, "reading a requester's token");
                    continue;
                }
            };
            let decision =
                enrollment::review(&csr, token.as_ref(), chrono::Utc::now(), args.max_lifetime);
            if decision == Decision::Ignore {
                continue;
            }
            match enrollment::decide(&client, &csr, &decision, &signers).await {
                Ok(Some(done)) => tracing::info!("{done}"),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "deciding a CSR"),
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TLS for the renewal endpoint: its serving certificate, and client certificates of the
/// signing CA required.
fn renewal_tls(ca_pem: &str, cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let config = crate::tls::mutual_tls_server(cert, key, ca_pem.as_bytes(), "--ca-cert")
        .context("the renewal endpoint's TLS (--renew-tls-cert, --renew-tls-key)")?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Answers renewals until aborted.
async fn serve_renewals(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    signer: std::sync::Arc<Signer>,
    lifetime: Duration,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                continue;
            }
        };
        let (tls, signer) = (tls.clone(), signer.clone());
        tokio::spawn(async move {
            let stream = match tls.accept(socket).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::info!(%peer, %error, "refused a renewal connection (no valid client certificate)");
                    return;
                }
            };
            let presented = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| hostledger_kafka::identity::common_name(c))
                .unwrap_or_default();
            let service = hyper::service::service_fn(move |request| {
                let (signer, presented) = (signer.clone(), presented.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        renewal_answer(request, &presented, &signer, lifetime).await,
                    )
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "renewal connection ended");
            }
        });
    }
}

/// One renewal: a PEM request for the presented certificate's own name, signed; or why not.
async fn renewal_answer(
    request: hyper::Request<hyper::body::Incoming>,
    presented: &str,
    signer: &Signer,
    lifetime: Duration,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    use http_body_util::BodyExt as _;
    let reply = |status: hyper::StatusCode, text: String| {
        let mut response = hyper::Response::new(http_body_util::Full::new(
            hyper::body::Bytes::from(text.into_bytes()),
        ));
        *response.status_mut() = status;
        response
    };
    if request.method() != hyper::Method::POST || request.uri().path() != "/v1/renew" {
        return reply(
            hyper::StatusCode::NOT_FOUND,
            "POST a PEM certificate request to /v1/renew\n".into(),
        );
    }
    let body = match http_body_util::Limited::new(request.into_body(), 16 * 1024)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return reply(
                hyper::StatusCode::BAD_REQUEST,
                format!("cannot read the request (at most 16 KiB): {error}\n"),
            );
        }
    };
    if let Err(reason) = enrollment::review_renewal(presented, &body) {
        tracing::info!(identity = %presented, %reason, "refused a renewal");
        return reply(hyper::StatusCode::FORBIDDEN, format!("{reason}\n"));
    }
    match signer.sign(&body, lifetime) {
        Ok(certificate) => {
            tracing::info!(identity = %presented, valid_secs = lifetime.as_secs(), "renewed a certificate");
            reply(hyper::StatusCode::OK, certificate)
        }
        Err(reason) => reply(
            hyper::StatusCode::BAD_REQUEST,
            format!("cannot sign the request: {reason}\n"),
        ),
    }
}

//! Enrollment of new fetchers without copying keys: `token create` (an administrator),
//! `enroll` (the new fetcher, with nothing but the token and the CA bundle) and `approver`
//! (the process that approves and signs). The protocol is in `hostledger_k8s::enrollment`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use hostledger_k8s::enrollment::{
    self, Decision, Identity, SIGNER_NAME, Signer, TOKEN_NAMESPACE, Token,
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
    /// (`hostledger enroll`) and gets the certificate of `hostledger-fetcher-SCOPE`.
    ///
    /// Run it as an administrator (it writes a Secret in kube-system). Grant the identity
    /// its Kafka ACLs too: `hostledger topics grant fetcher --scope SCOPE --principal
    /// User:hostledger-fetcher-SCOPE`.
    Create {
        /// The identity's role (only fetchers enroll so far).
        #[arg(long, default_value = "fetcher", value_parser = ["fetcher"])]
        role: String,
        /// The fetcher's region or provider scope (a-z 0-9 -): it will publish as sources named
        /// SCOPE...
        #[arg(long)]
        scope: String,
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
    /// The scope the token was made for.
    #[arg(long)]
    pub scope: String,
    /// Directory for tls.key (made here, never sent), tls.crt, ca.crt and kafka.yaml.
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
    /// The longest lifetime it gives a certificate.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_lifetime: Duration,
}

/// Creates a token.
pub async fn token(args: TokenArgs) -> Result<ExitCode> {
    let TokenAction::Create {
        role: _,
        scope,
        ttl,
    } = args.action;
    let identity = Identity::fetcher(&scope).map_err(anyhow::Error::msg)?;
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
         # On the new fetcher: hostledger enroll --server URL --ca CA-BUNDLE --scope {} --out DIR --token <the token>\n",
        token.bearer(),
        identity.common_name(),
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        token.secret_name(),
        identity.scope,
    ))?;
    Ok(ExitCode::SUCCESS)
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
    let identity = Identity::fetcher(&args.scope).map_err(anyhow::Error::msg)?;
    if args.lifetime < enrollment::MIN_LIFETIME {
        bail!("--lifetime must be at least 10m (the CSR API's minimum)");
    }
    let bundle = std::fs::read(&args.ca)
        .with_context(|| format!("cannot read --ca {}", args.ca.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create --out {}", args.out.display()))?;
    let client = token_client(&args.server, &args.ca, &token).await?;
    let (key, request) = enrollment::new_key_and_request(&identity).map_err(anyhow::Error::msg)?;
    let name = format!(
        "{}-{}-{}",
        identity.common_name(),
        token.id,
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let csr = enrollment::csr_object(&name, &request, args.lifetime);
    let answer = match enrollment::request_certificate(&client, &csr, args.timeout).await {
        Ok(answer) => answer,
        Err(hostledger_k8s::K8sError::Unauthenticated { .. }) => bail!(
            "the API server did not accept the token {}: it is unknown, expired or already used (a token enrolls \
             once); ask an administrator for a new one (hostledger token create --scope {})",
            token.id,
            identity.scope
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
        Ok(path)
    };
    let key_path = write("tls.key", key.as_bytes(), true)?;
    let cert_path = write("tls.crt", certificate.as_bytes(), false)?;
    let ca_path = write("ca.crt", &bundle, false)?;
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

/// Approves and signs the CSRs of [`SIGNER_NAME`] whose tokens allow them; denies the rest.
pub async fn approver(args: ApproverArgs) -> Result<ExitCode> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let signer = Signer::from_pem(&read(&args.ca_cert)?, &read(&args.ca_key)?)
        .map_err(anyhow::Error::msg)
        .context("the signing CA (--ca-cert, --ca-key)")?;
    let client = kube_client().await?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    tracing::info!(signer = SIGNER_NAME, "approving CSRs");
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
            if csr.spec.signer_name != SIGNER_NAME {
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
            match enrollment::decide(&client, &csr, &decision, &signer).await {
                Ok(Some(done)) => tracing::info!("{done}"),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "deciding a CSR"),
            }
        }
    }
}

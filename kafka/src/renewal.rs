//! Renewing a Kafka client certificate before it expires (fetchers and the projector).
//!
//! A certificate the approver issues is short-lived (`hostledger approver --max-lifetime`).
//! Before it expires, the process makes a new key, asks the approver's renewal endpoint for a
//! new certificate of the same name, authenticating with the current one, and writes both
//! files; its clients then reconnect with them at a point where nothing is in flight (a
//! fetcher between two passes, the projector between two batches), since librdkafka reads the
//! files only when a client is created.
//!
//! The files are replaced so that a crash at any moment leaves a matching pair: the new key
//! and certificate are written beside the old ones (`*.next`), then moved into place key
//! first; [`finish_interrupted`] completes a move that a crash cut short.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::error::KafkaError;
use crate::settings::KafkaSettings;

/// The `renewal:` section of a fetcher config; the projector's `--renewal-*` flags.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// The approver's renewal endpoint, e.g. `https://hostledger-approver:8443`.
    pub url: String,
    /// PEM CA of the endpoint's serving certificate. Default: `kafka.ca_file`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Renew this many seconds before the certificate expires. Default: when a third of its
    /// lifetime is left.
    #[serde(default)]
    pub before_expiry_secs: Option<u64>,
}

/// The files of the identity being renewed.
#[derive(Debug, Clone)]
pub struct Identity {
    /// PEM client certificate (`kafka.cert_file`).
    pub cert_file: PathBuf,
    /// Its PEM private key (`kafka.key_file`).
    pub key_file: PathBuf,
    /// PEM CA of the renewal endpoint.
    pub ca_file: PathBuf,
}

pub use crate::identity::{Validity, validity};

fn config_error(what: String) -> KafkaError {
    KafkaError::Config(what)
}

impl RenewalConfig {
    /// The identity to renew under these Kafka settings: their certificate and key, and the
    /// endpoint's CA (`ca_file`, else the brokers' CA). Refused with what is missing.
    pub fn identity(&self, kafka: &KafkaSettings) -> Result<Identity, KafkaError> {
        let (Some(cert_file), Some(key_file)) = (&kafka.cert_file, &kafka.key_file) else {
            return Err(config_error(
                "renewal needs kafka.cert_file and kafka.key_file: the certificate to renew".into(),
            ));
        };
        let Some(ca_file) = self.ca_file.clone().or_else(|| kafka.ca_file.clone()) else {
            return Err(config_error(
                "renewal.ca_file (or kafka.ca_file): the CA of the renewal endpoint".into(),
            ));
        };
        if !self.url.starts_with("https://") {
            return Err(config_error(format!(
                "renewal.url {:?} must be https:// (the current certificate authenticates)",
                self.url
            )));
        }
        Ok(Identity {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            ca_file,
        })
    }
}

/// Whether a certificate of `validity` is to be renewed at `now` (seconds since the epoch).
pub fn due(validity: &Validity, before_expiry_secs: Option<u64>, now: i64) -> bool {
    let lifetime = (validity.not_after - validity.not_before).max(0);
    let before = before_expiry_secs.map_or(lifetime / 3, |s| i64::try_from(s).unwrap_or(i64::MAX));
    now >= validity.not_after.saturating_sub(before)
}

fn next_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

/// Completes a replacement of the key and certificate that a crash interrupted (the pair in
/// `*.next` always matches). Returns whether there was one.
pub fn finish_interrupted(identity: &Identity) -> Result<bool, KafkaError> {
    let (key_next, cert_next) = (next_of(&identity.key_file), next_of(&identity.cert_file));
    if !cert_next.exists() {
        // Either nothing was under way, or only the key was written: the old pair still matches.
        let _ = std::fs::remove_file(&key_next);
        return Ok(false);
    }
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            config_error(format!(
                "cannot move {} to {}: {e}",
                from.display(),
                to.display()
            ))
        })
    };
    if key_next.exists() {
        rename(&key_next, &identity.key_file)?;
    }
    rename(&cert_next, &identity.cert_file)?;
    Ok(true)
}

/// Asks `url` for a new certificate of the same name, authenticating with the current one;
/// writes the new key and certificate in place. Returns the new validity.
pub async fn renew(identity: &Identity, url: &str) -> Result<Validity, KafkaError> {
    let current = validity(&identity.cert_file)?;
    let (key, request) =
        crate::identity::new_key_and_request(&current.common_name).map_err(KafkaError::Renewal)?;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| config_error(format!("cannot read {}: {e}", p.display())))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&identity.ca_file)?) {
        let ca = ca.map_err(|e| {
            config_error(format!(
                "{} is not a PEM certificate: {e}",
                identity.ca_file.display()
            ))
        })?;
        roots.add(ca).map_err(|e| {
            config_error(format!(
                "{} is not a usable CA: {e}",
                identity.ca_file.display()
            ))
        })?;
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&identity.cert_file)?)
            .collect::<Result<_, _>>()
            .map_err(|e| config_error(format!("{}: {e}", identity.cert_file.display())))?;
    let current_key = PrivateKeyDer::from_pem_slice(&read(&identity.key_file)?)
        .map_err(|e| config_error(format!("{}: {e}", identity.key_file.display())))?;
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| KafkaError::Renewal(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, current_key)
    .map_err(|e| {
        config_error(format!(
            "the current certificate and key do not go together: {e}"
        ))
    })?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let endpoint = format!("{}/v1/renew", url.trim_end_matches('/'));
    let body = Full::new(Bytes::from(request.into_bytes()));
    let http_request = http::Request::post(&endpoint)
        .header("content-type", "application/pkcs10")
        .body(body)
        .map_err(|e| config_error(format!("renewal.url {url:?}: {e}")))?;
    let answer = tokio::time::timeout(Duration::from_secs(30), client.request(http_request))
        .await
        .map_err(|_| KafkaError::Renewal(format!("no answer from {endpoint} within 30 s")))?
        .map_err(|e| KafkaError::Renewal(format!("cannot reach {endpoint}: {e}")))?;
    let status = answer.status();
    let text = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| KafkaError::Renewal(format!("reading the answer of {endpoint}: {e}")))?
        .to_bytes();
    let text = String::from_utf8_lossy(&text).into_owned();
    if !status.is_success() {
        return Err(KafkaError::Renewal(format!(
            "{endpoint} refused to renew {}: {status} {}",
            current.common_name,
            text.trim()
        )));
    }
    let (key_next, cert_next) = (next_of(&identity.key_file), next_of(&identity.cert_file));
    write_private(&key_next, key.as_bytes())?;
    std::fs::write(&cert_next, text.as_bytes())
        .map_err(|e| config_error(format!("cannot write {}: {e}", cert_next.display())))?;
    let renewed = validity(&cert_next)?;
    if renewed.common_name != current.common_name {
        let _ = std::fs::remove_file(&cert_next);
        let _ = std::fs::remove_file(&key_next);
        return Err(KafkaError::Renewal(format!(
            "{endpoint} answered with a certificate for {}, not {}",
            renewed.common_name, current.common_name
        )));
    }
    finish_interrupted(identity)?;
    Ok(renewed)
}

/// Renews the certificate of `identity` at `url` whenever it is due, for ever, bumping
/// `renewed` after each renewal; a failed renewal is retried every 10 s (the current
/// certificate goes on working until it expires).
pub async fn keep_renewed(
    identity: Identity,
    config: RenewalConfig,
    renewed: tokio::sync::watch::Sender<u64>,
) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let wait = match validity(&identity.cert_file) {
            Ok(v) if due(&v, config.before_expiry_secs, now) => {
                match renew(&identity, &config.url).await {
                    Ok(new) => {
                        tracing::info!(
                            identity = %new.common_name,
                            expires_at = new.not_after,
                            "renewed the Kafka client certificate"
                        );
                        renewed.send_modify(|g| *g += 1);
                        Duration::from_secs(1)
                    }
                    Err(error) => {
                        tracing::error!(%error, expires_at = v.not_after, "could not renew the Kafka client certificate; retrying in 10 s");
                        Duration::from_secs(10)
                    }
                }
            }
            Ok(_) => Duration::from_secs(1),
            Err(error) => {
                tracing::error!(%error, "cannot read the Kafka client certificate; retrying in 10 s");
                Duration::from_secs(10)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Bumps `changed` whenever the certificate in `cert_file` is replaced by another valid one
/// (checked every `every`): a certificate manager rotating a mounted Secret, say. Clients made
/// after that use the new files.
pub async fn keep_watched(
    cert_file: PathBuf,
    every: Duration,
    changed: tokio::sync::watch::Sender<u64>,
) {
    let mut current = validity(&cert_file)
        .ok()
        .zip(std::fs::read(&cert_file).ok());
    loop {
        tokio::time::sleep(every).await;
        let Ok(bytes) = std::fs::read(&cert_file) else {
            continue;
        };
        if current.as_ref().is_some_and(|(_, b)| *b == bytes) {
            continue;
        }
        // A file being written, or not a certificate: wait for a whole one.
        let Ok(new) = validity(&cert_file) else {
            continue;
        };
        tracing::info!(
            identity = %new.common_name,
            expires_at = new.not_after,
            cert = %cert_file.display(),
            "the Kafka client certificate was replaced"
        );
        current = Some((new, bytes));
        changed.send_modify(|g| *g += 1);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KafkaError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| config_error(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| config_error(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_due_when_a_third_of_its_life_or_the_given_margin_is_left() {
        let v = Validity {
            not_before: 0,
            not_after: 300,
            common_name: "x".into(),
        };
        assert!(!due(&v, None, 199));
        assert!(due(&v, None, 200));
        assert!(!due(&v, Some(50), 249));
        assert!(due(&v, Some(50), 250));
        assert!(due(&v, None, 400), "an expired one");
    }

    #[test]
    fn an_identity_needs_a_certificate_a_ca_and_an_https_endpoint() {
        let config = |url: &str| RenewalConfig {
            url: url.into(),
            ca_file: None,
            before_expiry_secs: None,
        };
        let mut kafka = KafkaSettings::plaintext("127.0.0.1:9093");
        let err = config("https://a:8443").identity(&kafka).unwrap_err();
        assert!(err.to_string().contains("kafka.cert_file"), "{err}");
        kafka.cert_file = Some("tls.crt".into());
        kafka.key_file = Some("tls.key".into());
        let err = config("https://a:8443").identity(&kafka).unwrap_err();
        assert!(err.to_string().contains("renewal.ca_file"), "{err}");
        kafka.ca_file = Some("ca.crt".into());
        let err = config("http://a:8443").identity(&kafka).unwrap_err();
        assert!(err.to_string().contains("must be https://"), "{err}");
        let identity = config("https://a:8443").identity(&kafka).expect("complete");
        assert_eq!(identity.ca_file, PathBuf::from("ca.crt"));
        let own_ca = RenewalConfig {
            ca_file: Some("endpoint-ca.crt".into()),
            ..config("https://a:8443")
        };
        let identity = own_ca.identity(&kafka).expect("complete");
        assert_eq!(identity.ca_file, PathBuf::from("endpoint-ca.crt"));
    }

    fn self_signed(name: &str) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.self_signed(&key).expect("certificate").pem()
    }

    #[tokio::test]
    async fn a_replaced_certificate_is_noticed_and_a_half_written_one_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let cert = dir.path().join("tls.crt");
        std::fs::write(&cert, self_signed("hostledger-projector")).expect("write");
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        let watcher = tokio::spawn(keep_watched(cert.clone(), Duration::from_millis(10), tx));
        let settle = Duration::from_millis(100);
        tokio::time::sleep(settle).await;
        assert!(!rx.has_changed().expect("open"), "unchanged file");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nhalf").expect("write");
        tokio::time::sleep(settle).await;
        assert!(!rx.has_changed().expect("open"), "not a certificate yet");
        std::fs::write(&cert, self_signed("hostledger-projector")).expect("write");
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("noticed")
            .expect("open");
        assert_eq!(*rx.borrow_and_update(), 1);
        tokio::time::sleep(settle).await;
        assert!(!rx.has_changed().expect("open"), "once per replacement");
        watcher.abort();
    }

    #[test]
    fn an_interrupted_replacement_is_finished_and_a_half_written_one_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let identity = Identity {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
            ca_file: dir.path().join("ca.crt"),
        };
        std::fs::write(&identity.cert_file, "old cert").expect("write");
        std::fs::write(&identity.key_file, "old key").expect("write");
        // Only the new key was written: the old pair stays.
        std::fs::write(next_of(&identity.key_file), "new key").expect("write");
        assert!(!finish_interrupted(&identity).expect("finish"));
        assert_eq!(
            std::fs::read_to_string(&identity.key_file).expect("read"),
            "old key"
        );
        // Both written, the key already moved: the certificate follows.
        std::fs::write(&identity.key_file, "new key").expect("write");
        std::fs::write(next_of(&identity.cert_file), "new cert").expect("write");
        assert!(finish_interrupted(&identity).expect("finish"));
        assert_eq!(
            std::fs::read_to_string(&identity.cert_file).expect("read"),
            "new cert"
        );
        assert!(!next_of(&identity.cert_file).exists());
    }
}

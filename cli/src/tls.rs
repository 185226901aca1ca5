//! TLS for hostledger's own servers (the history API, the approver's renewals): a serving
//! certificate, and client certificates of one CA required.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A server config serving `cert`/`key` (PEM files) to clients whose certificates the CAs of
/// `client_ca` (PEM, read from `client_ca_name`) signed.
pub fn mutual_tls_server(
    cert: &Path,
    key: &Path,
    client_ca: &[u8],
    client_ca_name: &str,
) -> Result<rustls::ServerConfig> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(cert, "serving certificate")?)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate", cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(key, "serving key")?)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca) {
        let ca = ca.with_context(|| format!("{client_ca_name} is not a PEM certificate"))?;
        roots
            .add(ca)
            .with_context(|| format!("{client_ca_name} is not a usable CA"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .context("cannot build the client certificate verifier")?;
    rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the serving certificate and key do not go together")
}

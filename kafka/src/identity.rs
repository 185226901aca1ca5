//! A Kafka client identity's certificate: its name and validity, and a new key with a request
//! for a certificate of a name. Enrollment (`hostledger enroll`), the approver and a fetcher
//! renewing its certificate all use these.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::error::KafkaError;

/// When a certificate was issued and expires, and its common name (the brokers' principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// Not before, seconds since the epoch.
    pub not_before: i64,
    /// Not after, seconds since the epoch.
    pub not_after: i64,
    /// The subject's common name.
    pub common_name: String,
}

fn subject_common_name(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// The common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    subject_common_name(&cert)
}

/// Reads a PEM certificate's validity and common name.
pub fn validity(cert_file: &Path) -> Result<Validity, KafkaError> {
    let bad = |what: String| KafkaError::Config(format!("{}: {what}", cert_file.display()));
    let pem = std::fs::read(cert_file).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    Ok(Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        common_name: subject_common_name(&cert).unwrap_or_default(),
    })
}

/// A new private key (ECDSA P-256, PKCS#8 PEM) and a request (PEM) for a certificate of
/// `common_name` and nothing else.
pub fn new_key_and_request(common_name: &str) -> Result<(String, String), String> {
    new_key_and_request_in(common_name, None)
}

/// [`new_key_and_request`] with an organization too (`O=`, which kube-apiserver takes as a
/// group of the user `common_name`).
pub fn new_key_and_request_in(
    common_name: &str,
    organization: Option<&str>,
) -> Result<(String, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("generate a key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| format!("{e}"))?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(rcgen::DnType::OrganizationName, organization);
    }
    params.distinguished_name = name;
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| format!("make the certificate request: {e}"))?;
    Ok((key.serialize_pem(), request))
}

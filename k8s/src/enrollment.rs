//! Enrollment: a new fetcher gets its Kafka client certificate, and a person their API
//! server client certificate, from a one-time bootstrap token, through the API server's
//! CertificateSigningRequest API, without anyone copying keys.
//!
//! 1. An administrator creates a token for a role and scope (`hostledger token create`): a
//!    Kubernetes bootstrap token (Secret `bootstrap-token-ID` in `kube-system`, which
//!    kube-apiserver authenticates as user `system:bootstrap:ID` in group
//!    [`BOOTSTRAP_GROUP`]), labelled with the identity it may enroll.
//! 2. The new fetcher makes a key that never leaves it and a CSR for exactly that identity
//!    (`hostledger enroll`), authenticating with the token; signer [`SIGNER_NAME`].
//! 3. The approver (`hostledger approver`) approves a CSR only if its requester's token
//!    still exists, has not expired and names the identity the CSR asks for, with client
//!    authentication and nothing else; it deletes the token (one use) and signs the
//!    certificate with the CA the brokers trust, valid for the CSR's `expirationSeconds` up to
//!    a maximum. Anything else is denied with the reason.
//!
//! A person's token (role `operator` or `reader`) enrolls the same way for a certificate of
//! `CN=NAME, O=hostledger-ROLEs` from signer [`KUBE_CLIENT_SIGNER`], which kube-apiserver
//! takes as user NAME in group `hostledger-ROLEs` (bound to the role's ClusterRole). In a
//! cluster kube-controller-manager signs what the approver approved; on a stack without one,
//! the approver signs with the API server's client CA.
//!
//! [`review`] is the approver's decision, without I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::error::K8sError;

/// The signer of hostledger's Kafka client certificates.
pub const SIGNER_NAME: &str = "hostledger.dev/kafka-client";
/// The group every hostledger bootstrap token authenticates in (bound to
/// `hostledger:enrollee`, which may create and read CSRs).
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:hostledger";
/// Where bootstrap tokens live (kube-apiserver reads them there).
pub const TOKEN_NAMESPACE: &str = "kube-system";
/// The label of a token's role.
pub const ROLE_LABEL: &str = "hostledger.dev/role";
/// The label of a token's scope.
pub const SCOPE_LABEL: &str = "hostledger.dev/scope";
/// The reason of the approver's Approved condition.
pub const APPROVED_REASON: &str = "HostledgerTokenMatched";
/// The shortest certificate lifetime the CSR API accepts.
pub const MIN_LIFETIME: Duration = Duration::from_secs(600);

/// The signer of API server client certificates (kube-controller-manager's in a cluster):
/// people's, who enroll as users of the API server.
pub const KUBE_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The roles people enroll in, each a group `hostledger-ROLEs` bound to ClusterRole
/// `hostledger:ROLE`.
pub const PERSON_ROLES: [&str; 2] = ["operator", "reader"];

/// What an enrollment asks for: a fetcher of a scope (a Kafka certificate of
/// `CN=hostledger-fetcher-SCOPE`), or a person of a role (an API server certificate of
/// `CN=NAME, O=hostledger-ROLEs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `fetcher`, or a person's role ([`PERSON_ROLES`]).
    pub role: String,
    /// A fetcher's region or provider scope (e.g. `eu-west-1`), or a person's user name.
    pub scope: String,
}

impl Identity {
    /// A person `name` (1-63 of a-z 0-9 - . @, starting with a letter or digit) in `role`.
    pub fn person(role: &str, name: &str) -> Result<Self, String> {
        if !PERSON_ROLES.contains(&role) {
            return Err(format!(
                "role {role:?} is not one people enroll in ({})",
                PERSON_ROLES.join(", ")
            ));
        }
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '@')
            })
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !name.starts_with("hostledger-")
            && !name.starts_with("system:");
        if !valid {
            return Err(format!(
                "name {name:?} is not 1-63 of a-z 0-9 - . @ starting with a letter or digit \
                 (and not hostledger-..., the components' names)"
            ));
        }
        Ok(Identity {
            role: role.to_owned(),
            scope: name.to_owned(),
        })
    }

    /// Whether this is a person's identity (an API server user), not a fetcher's.
    pub fn is_person(&self) -> bool {
        PERSON_ROLES.contains(&self.role.as_str())
    }

    /// The group a person's certificate puts them in: `hostledger-ROLEs`.
    pub fn group(&self) -> Option<String> {
        self.is_person()
            .then(|| format!("hostledger-{}s", self.role))
    }

    /// The signer that issues this identity's certificate.
    pub fn signer_name(&self) -> &'static str {
        if self.is_person() {
            KUBE_CLIENT_SIGNER
        } else {
            SIGNER_NAME
        }
    }

    /// The subject its certificate has, as [`requested_subject`] lists it (sorted).
    pub fn subject(&self) -> Vec<String> {
        let mut subject = vec![format!("CN={}", self.common_name())];
        if let Some(group) = self.group() {
            subject.push(format!("OrganizationName={group}"));
        }
        subject.sort();
        subject
    }

    /// A fetcher of `scope`; checks that the scope is a DNS label.
    pub fn fetcher(scope: &str) -> Result<Self, String> {
        let valid = !scope.is_empty()
            && scope.len() <= 40
            && scope
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !scope.starts_with('-')
            && !scope.ends_with('-');
        if !valid {
            return Err(format!(
                "scope {scope:?} is not 1-40 of a-z 0-9 - (not starting or ending with -)"
            ));
        }
        Ok(Identity {
            role: "fetcher".into(),
            scope: scope.to_owned(),
        })
    }

    /// The certificate's common name: the principal Kafka's brokers see
    /// (`hostledger-fetcher-SCOPE`), or the person's user name.
    pub fn common_name(&self) -> String {
        if self.is_person() {
            self.scope.clone()
        } else {
            format!("hostledger-{}-{}", self.role, self.scope)
        }
    }
}

/// A bootstrap token: `ID.SECRET`, 6 and 16 characters of a-z 0-9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The public part, also the Secret's name suffix.
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl Token {
    /// A new random token.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let bytes: Vec<u8> = uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect();
        let text: String = bytes
            .iter()
            .take(22)
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        Token {
            id: text[..6].to_owned(),
            secret: text[6..].to_owned(),
        }
    }

    /// Parses `ID.SECRET`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = |s: &str, n: usize| {
            s.len() == n
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        match text.trim().split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(Token {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err("a bootstrap token is ID.SECRET: 6 and 16 characters of a-z 0-9 (from `hostledger token create`)".into()),
        }
    }

    /// The bearer token as the API server takes it.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The name of its Secret in [`TOKEN_NAMESPACE`].
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The Secret that makes this token valid until `expires_at` for enrolling `identity`.
    pub fn to_secret(
        &self,
        identity: &Identity,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Secret {
        let data = BTreeMap::from([
            ("token-id".to_owned(), self.id.clone()),
            ("token-secret".to_owned(), self.secret.clone()),
            (
                "expiration".to_owned(),
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            (
                "usage-bootstrap-authentication".to_owned(),
                "true".to_owned(),
            ),
            ("auth-extra-groups".to_owned(), BOOTSTRAP_GROUP.to_owned()),
            (
                "description".to_owned(),
                format!("hostledger enrollment of {}", identity.common_name()),
            ),
        ]);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some(TOKEN_NAMESPACE.to_owned()),
                labels: Some(BTreeMap::from([
                    (ROLE_LABEL.to_owned(), identity.role.clone()),
                    (SCOPE_LABEL.to_owned(), identity.scope.clone()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("bootstrap.kubernetes.io/token".to_owned()),
            string_data: Some(data),
            ..Secret::default()
        }
    }
}

/// What the approver decided about one CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sign it, for this long, and delete the token.
    Approve {
        /// The token to delete (one use).
        token_id: String,
        /// The certificate's lifetime.
        lifetime: Duration,
    },
    /// Sign a CSR this approver approved before but did not get to sign (it stopped in
    /// between): the decision stands, the certificate is still owed.
    Sign {
        /// The certificate's lifetime.
        lifetime: Duration,
    },
    /// Refuse it, saying why.
    Deny(String),
    /// Not ours (another signer) or already decided.
    Ignore,
}

/// The approver's decision about `csr`, given its requester's token Secret (`None`: there is
/// none, e.g. used or expired and removed) and the longest lifetime it gives.
pub fn review(
    csr: &CertificateSigningRequest,
    token: Option<&Secret>,
    now: chrono::DateTime<chrono::Utc>,
    max_lifetime: Duration,
) -> Decision {
    // Ours: every request to hostledger's signer, and API server client certificates asked
    // for with a hostledger token (other such requests are someone else's to decide).
    let by_our_token = csr
        .spec
        .groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == BOOTSTRAP_GROUP));
    if csr.spec.signer_name != SIGNER_NAME
        && !(csr.spec.signer_name == KUBE_CLIENT_SIGNER && by_our_token)
    {
        return Decision::Ignore;
    }
    let lifetime = csr
        .spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(max_lifetime, Duration::from_secs)
        // The API asks requests for at least MIN_LIFETIME; a signer may give less.
        .min(max_lifetime);
    let status = csr.status.as_ref();
    let approved_by_us = status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == "Approved" && c.reason.as_deref() == Some(APPROVED_REASON))
    });
    if approved_by_us && status.and_then(|s| s.certificate.as_ref()).is_none() {
        return Decision::Sign { lifetime };
    }
    let decided = status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == "Approved" || c.type_ == "Denied")
    });
    if decided {
        return Decision::Ignore;
    }
    let user = csr.spec.username.as_deref().unwrap_or_default();
    let Some(token_id) = user.strip_prefix("system:bootstrap:") else {
        return Decision::Deny(format!(
            "requested by {user:?}, not with a hostledger bootstrap token (system:bootstrap:ID)"
        ));
    };
    let in_group = csr
        .spec
        .groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == BOOTSTRAP_GROUP));
    if !in_group {
        return Decision::Deny(format!(
            "the token {token_id} is not a hostledger token (its groups do not include {BOOTSTRAP_GROUP})"
        ));
    }
    let Some(token) = token else {
        return Decision::Deny(format!(
            "the token {token_id} no longer exists: a token enrolls once (create another with hostledger token create)"
        ));
    };
    let field = |name: &str| {
        token
            .data
            .as_ref()
            .and_then(|d| d.get(name))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    if let Some(expiration) = field("expiration") {
        match chrono::DateTime::parse_from_rfc3339(&expiration) {
            Ok(t) if t < now => {
                return Decision::Deny(format!("the token {token_id} expired at {expiration}"));
            }
            Ok(_) => {}
            Err(_) => {
                return Decision::Deny(format!(
                    "the token {token_id}'s expiration {expiration:?} is not a time"
                ));
            }
        }
    }
    let label = |name: &str| {
        token
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(name))
            .cloned()
            .unwrap_or_default()
    };
    let allowed = Identity {
        role: label(ROLE_LABEL),
        scope: label(SCOPE_LABEL),
    };
    if allowed.role.is_empty() || allowed.scope.is_empty() {
        return Decision::Deny(format!(
            "the token {token_id} names no role and scope (labels {ROLE_LABEL}, {SCOPE_LABEL})"
        ));
    }
    if csr.spec.signer_name != allowed.signer_name() {
        return Decision::Deny(format!(
            "the CSR asks signer {} but the token {token_id} enrolls {} ({}), whose certificate comes from {}",
            csr.spec.signer_name,
            allowed.common_name(),
            allowed.role,
            allowed.signer_name()
        ));
    }
    let wanted = allowed.subject();
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let extra: Vec<&String> = usages
        .iter()
        .filter(|u| !matches!(u.as_str(), "client auth" | "digital signature"))
        .collect();
    if !usages.iter().any(|u| u == "client auth") || !extra.is_empty() {
        return Decision::Deny(format!(
            "the CSR asks for usages {usages:?}; a token allows [\"client auth\", \"digital signature\"] only"
        ));
    }
    match requested_subject(&csr.spec.request.0) {
        Err(e) => Decision::Deny(format!(
            "the CSR's request is not a certificate request: {e}"
        )),
        Ok(subject) if sorted(subject.clone()) != wanted => Decision::Deny(format!(
            "the CSR asks for {} but the token {token_id} allows only {} and no other name",
            subject.join(", "),
            wanted.join(", ")
        )),
        Ok(_) => Decision::Approve {
            token_id: token_id.to_owned(),
            lifetime,
        },
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// The subject (as `CN=...` entries) and alternative names (`SAN=...`) a PEM request asks for.
pub fn requested_subject(pem: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not UTF-8 PEM".to_owned())?;
    let request =
        rcgen::CertificateSigningRequestParams::from_pem(text).map_err(|e| format!("{e}"))?;
    let mut names: Vec<String> = request
        .params
        .distinguished_name
        .iter()
        .map(|(kind, value)| {
            let value = dn_text(value);
            match kind {
                rcgen::DnType::CommonName => format!("CN={value}"),
                other => format!("{other:?}={value}"),
            }
        })
        .collect();
    names.extend(
        request
            .params
            .subject_alt_names
            .iter()
            .map(|san| format!("SAN={san:?}")),
    );
    Ok(names)
}

fn dn_text(value: &rcgen::DnValue) -> String {
    match value {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_owned(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

/// The Kafka identity of the projector, which renews its certificate like an enrolled fetcher.
pub const PROJECTOR_IDENTITY: &str = "hostledger-projector";

/// Whether the holder of a certificate for `presented` (its common name) may renew it with
/// `request` (PEM): the request must ask for exactly that name, which must be an enrolled
/// fetcher's (`hostledger-fetcher-SCOPE`) or the projector's. Administrators and readers do
/// not renew here: their certificates come from whoever runs the cluster.
pub fn review_renewal(presented: &str, request: &[u8]) -> Result<(), String> {
    if !presented.starts_with("hostledger-fetcher-") && presented != PROJECTOR_IDENTITY {
        return Err(format!(
            "{presented} is neither an enrolled identity (hostledger-fetcher-SCOPE) nor \
             {PROJECTOR_IDENTITY}: it cannot renew here"
        ));
    }
    let subject = requested_subject(request)
        .map_err(|e| format!("the request is not a certificate request: {e}"))?;
    if subject != [format!("CN={presented}")] {
        return Err(format!(
            "the request asks for {} but the certificate presented is CN={presented}: a renewal keeps the name",
            subject.join(", ")
        ));
    }
    Ok(())
}

/// A CA that signs the certificates of approved CSRs.
pub struct Signer {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Signer {
    /// The CA of `cert_pem` with its private key `key_pem`.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("the CA key: {e}"))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| format!("the CA certificate: {e}"))?;
        Ok(Signer { issuer })
    }

    /// A client certificate for `request` (PEM), valid from a minute ago for `lifetime`.
    pub fn sign(&self, request: &[u8], lifetime: Duration) -> Result<String, String> {
        let text = std::str::from_utf8(request).map_err(|_| "not UTF-8 PEM".to_owned())?;
        let mut csr =
            rcgen::CertificateSigningRequestParams::from_pem(text).map_err(|e| format!("{e}"))?;
        let now = time::OffsetDateTime::now_utc();
        let params = &mut csr.params;
        params.not_before = now - time::Duration::minutes(1);
        params.not_after =
            now + time::Duration::try_from(lifetime).map_err(|e| format!("lifetime: {e}"))?;
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names.clear();
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(
            uuid::Uuid::new_v4().as_bytes(),
        ));
        let certificate = csr.signed_by(&self.issuer).map_err(|e| format!("{e}"))?;
        Ok(certificate.pem())
    }
}

/// The CSR object for `request`, asking [`SIGNER_NAME`] for a client certificate.
pub fn csr_object(name: &str, request: &str, lifetime: Duration) -> CertificateSigningRequest {
    csr_object_of(SIGNER_NAME, name, request, lifetime)
}

/// The CSR object for `request`, asking `signer` for a client certificate.
pub fn csr_object_of(
    signer: &str,
    name: &str,
    request: &str,
    lifetime: Duration,
) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.as_bytes().to_vec()),
            signer_name: signer.to_owned(),
            usages: Some(vec!["client auth".into(), "digital signature".into()]),
            expiration_seconds: i32::try_from(lifetime.as_secs()).ok(),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

fn condition(type_: &str, reason: &str, message: &str) -> CertificateSigningRequestCondition {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    CertificateSigningRequestCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// The CAs an approver signs with: the Kafka client CA for [`SIGNER_NAME`], and, where no
/// kube-controller-manager signs [`KUBE_CLIENT_SIGNER`]'s requests, the API server's client CA.
pub struct Signers {
    /// Signs [`SIGNER_NAME`]'s certificates (shared with the renewal endpoint).
    pub kafka: std::sync::Arc<Signer>,
    /// Signs [`KUBE_CLIENT_SIGNER`]'s, if this approver does.
    pub kube: Option<Signer>,
}

impl Signers {
    /// The CA for `signer_name`'s requests, if this approver signs them.
    pub fn of(&self, signer_name: &str) -> Option<&Signer> {
        match signer_name {
            SIGNER_NAME => Some(self.kafka.as_ref()),
            KUBE_CLIENT_SIGNER => self.kube.as_ref(),
            _ => None,
        }
    }
}

/// Applies `decision` to `csr`: approves and signs it (and deletes its token), or denies it.
/// A request to [`KUBE_CLIENT_SIGNER`] without its CA in `signers` is approved only, for
/// kube-controller-manager to sign. Returns what was done, for the log.
pub async fn decide(
    client: &kube::Client,
    csr: &CertificateSigningRequest,
    decision: &Decision,
    signers: &Signers,
) -> Result<Option<String>, K8sError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let signer = signers.of(&csr.spec.signer_name);
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let status_patch =
        |c: CertificateSigningRequestCondition| serde_json::json!({"status": {"conditions": [c]}});
    match decision {
        Decision::Ignore => Ok(None),
        Decision::Deny(reason) => {
            let patch = status_patch(condition("Denied", "HostledgerTokenMismatch", reason));
            api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| K8sError::api(format!("deny CSR {name}"), e))?;
            Ok(Some(format!("denied CSR {name}: {reason}")))
        }
        Decision::Sign { lifetime } => {
            let Some(signer) = signer else {
                return Ok(None);
            };
            if !write_certificate(&api, csr, signer, *lifetime).await? {
                return Ok(None);
            }
            Ok(Some(format!(
                "signed CSR {name}, approved before (valid {}s)",
                lifetime.as_secs()
            )))
        }
        Decision::Approve { token_id, lifetime } => {
            let message = format!("token {token_id} names this identity");
            let patch = status_patch(condition("Approved", APPROVED_REASON, &message));
            api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| K8sError::api(format!("approve CSR {name}"), e))?;
            // One use: the token goes before the certificate is handed out.
            let secrets: Api<Secret> = Api::namespaced(client.clone(), TOKEN_NAMESPACE);
            match secrets
                .delete(&format!("bootstrap-token-{token_id}"), &Default::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(K8sError::api(format!("delete token {token_id}"), e)),
            }
            let Some(signer) = signer else {
                return Ok(Some(format!(
                    "approved CSR {name} (token {token_id}) for {} to sign",
                    csr.spec.signer_name
                )));
            };
            write_certificate(&api, csr, signer, *lifetime).await?;
            Ok(Some(format!(
                "approved and signed CSR {name} (token {token_id}, valid {}s)",
                lifetime.as_secs()
            )))
        }
    }
}

/// Signs `csr`'s request and writes the certificate into its status. Returns false if the
/// request had been signed meanwhile: the approval itself is an update the watch delivers, and
/// the certificate written right after it may not be in the object that update carried.
async fn write_certificate(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    signer: &Signer,
    lifetime: Duration,
) -> Result<bool, K8sError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let certificate = signer
        .sign(&csr.spec.request.0, lifetime)
        .map_err(|reason| K8sError::Unreadable {
            action: format!("sign CSR {name}"),
            reason,
        })?;
    let status = CertificateSigningRequestStatus {
        certificate: Some(ByteString(certificate.into_bytes())),
        ..CertificateSigningRequestStatus::default()
    };
    let patch = serde_json::json!({"status": {"certificate": status.certificate}});
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        // The API server keeps the first certificate written: the request was signed already.
        Err(kube::Error::Api(s))
            if s.code == 422 && s.message.contains("may not modify existing certificate") =>
        {
            Ok(false)
        }
        Err(e) => Err(K8sError::api(
            format!("write the certificate of CSR {name}"),
            e,
        )),
    }
}

/// The token Secret of the CSR's requester, if it still exists.
pub async fn requester_token(
    client: &kube::Client,
    csr: &CertificateSigningRequest,
) -> Result<Option<Secret>, K8sError> {
    let Some(id) = csr
        .spec
        .username
        .as_deref()
        .and_then(|u| u.strip_prefix("system:bootstrap:"))
    else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), TOKEN_NAMESPACE);
    secrets
        .get_opt(&format!("bootstrap-token-{id}"))
        .await
        .map_err(|e| K8sError::api(format!("read token {id}"), e))
}

/// Creates the CSR and waits until it is signed (the certificate, PEM) or denied (the reason,
/// as an error), at most `timeout`.
pub async fn request_certificate(
    client: &kube::Client,
    csr: &CertificateSigningRequest,
    timeout: Duration,
) -> Result<Result<String, String>, K8sError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    api.create(&PostParams::default(), csr)
        .await
        .map_err(|e| K8sError::api(format!("create CSR {name}"), e))?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = api
            .get(&name)
            .await
            .map_err(|e| K8sError::api(format!("read CSR {name}"), e))?;
        let status = current.status.unwrap_or_default();
        if let Some(denied) = status.conditions.as_ref().and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "Denied" || c.type_ == "Failed")
        }) {
            return Ok(Err(denied
                .message
                .clone()
                .unwrap_or_else(|| denied.type_.clone())));
        }
        if let Some(certificate) = status.certificate {
            return Ok(Ok(String::from_utf8_lossy(&certificate.0).into_owned()));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Err(format!(
                "no answer within {}s: is `hostledger approver` running for signer {}?",
                timeout.as_secs(),
                csr.spec.signer_name
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_kafka::identity::new_key_and_request;

    fn csr_for(identity: &Identity, user: &str, groups: &[&str]) -> CertificateSigningRequest {
        let (_, request) = new_key_and_request(&identity.common_name()).expect("request");
        let mut csr = csr_object("c", &request, Duration::from_secs(3600));
        csr.spec.username = Some(user.to_owned());
        csr.spec.groups = Some(groups.iter().map(|g| (*g).to_owned()).collect());
        csr
    }

    fn token_secret(identity: &Identity, expires_in: chrono::Duration) -> Secret {
        let mut s = Token::generate().to_secret(identity, chrono::Utc::now() + expires_in);
        // As the API server stores it: data, not stringData.
        s.data = s.string_data.take().map(|d| {
            d.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect()
        });
        s
    }

    fn eu() -> Identity {
        Identity::fetcher("eu").expect("scope")
    }

    const GROUPS: [&str; 2] = ["system:bootstrappers", BOOTSTRAP_GROUP];

    fn person_csr(cn: &str, group: Option<&str>, signer: &str) -> CertificateSigningRequest {
        let (_, request) =
            hostledger_kafka::identity::new_key_and_request_in(cn, group).expect("request");
        let mut csr = csr_object_of(signer, "p", &request, Duration::from_secs(3600));
        csr.spec.username = Some("system:bootstrap:abcdef".to_owned());
        csr.spec.groups = Some(GROUPS.iter().map(|g| (*g).to_owned()).collect());
        csr
    }

    #[test]
    fn a_person_enrolls_as_a_user_in_the_group_of_the_tokens_role_and_nothing_else() {
        let alice = Identity::person("operator", "alice").expect("person");
        assert_eq!(alice.common_name(), "alice");
        assert_eq!(alice.signer_name(), KUBE_CLIENT_SIGNER);
        let token = token_secret(&alice, chrono::Duration::hours(1));
        let max = Duration::from_secs(86_400);
        let now = chrono::Utc::now();
        let csr = person_csr("alice", Some("hostledger-operators"), KUBE_CLIENT_SIGNER);
        assert!(matches!(
            review(&csr, Some(&token), now, max),
            Decision::Approve { .. }
        ));
        // Another group, or none: not what the token allows.
        for group in [Some("hostledger-admins"), None] {
            let csr = person_csr("alice", group, KUBE_CLIENT_SIGNER);
            let Decision::Deny(reason) = review(&csr, Some(&token), now, max) else {
                panic!("{group:?} allowed");
            };
            assert!(
                reason.contains("allows only CN=alice, OrganizationName=hostledger-operators"),
                "{reason}"
            );
        }
        // A person's token does not give a Kafka certificate, nor a fetcher's an API one.
        let csr = person_csr("alice", Some("hostledger-operators"), SIGNER_NAME);
        let Decision::Deny(reason) = review(&csr, Some(&token), now, max) else {
            panic!("a Kafka certificate for a person");
        };
        assert!(
            reason.contains("asks signer hostledger.dev/kafka-client"),
            "{reason}"
        );
        let fetcher_token = token_secret(&eu(), chrono::Duration::hours(1));
        let csr = person_csr("hostledger-fetcher-eu", None, KUBE_CLIENT_SIGNER);
        let Decision::Deny(reason) = review(&csr, Some(&fetcher_token), now, max) else {
            panic!("an API certificate for a fetcher");
        };
        assert!(
            reason.contains("comes from hostledger.dev/kafka-client"),
            "{reason}"
        );
        // API server client certificates asked for without a hostledger token are not ours.
        let mut theirs = person_csr("bob", Some("dev"), KUBE_CLIENT_SIGNER);
        theirs.spec.username = Some("bob".into());
        theirs.spec.groups = Some(vec!["system:authenticated".into()]);
        assert_eq!(review(&theirs, None, now, max), Decision::Ignore);
    }

    #[test]
    fn people_have_roles_and_names_of_their_own() {
        assert!(Identity::person("operator", "alice@example.com").is_ok());
        assert!(Identity::person("reader", "ops.bot-1").is_ok());
        assert!(Identity::person("admin", "alice").is_err(), "no such role");
        assert!(
            Identity::person("fetcher", "alice").is_err(),
            "fetchers have scopes"
        );
        for bad in [
            "",
            "Alice",
            "-a",
            "hostledger-projector",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(Identity::person("operator", bad).is_err(), "{bad:?}");
        }
        let reader = Identity::person("reader", "rita").expect("person");
        assert_eq!(reader.group().as_deref(), Some("hostledger-readers"));
        assert_eq!(eu().group(), None);
    }

    #[test]
    fn a_csr_for_the_tokens_identity_is_approved_for_what_it_asked_up_to_the_maximum() {
        let csr = csr_for(&eu(), "system:bootstrap:abcdef", &GROUPS);
        let token = token_secret(&eu(), chrono::Duration::hours(1));
        let d = review(
            &csr,
            Some(&token),
            chrono::Utc::now(),
            Duration::from_secs(1800),
        );
        assert_eq!(
            d,
            Decision::Approve {
                token_id: "abcdef".into(),
                lifetime: Duration::from_secs(1800)
            }
        );
    }

    #[test]
    fn a_csr_for_another_identity_or_with_an_expired_or_used_token_is_denied_with_why() {
        let now = chrono::Utc::now();
        let max = Duration::from_secs(3600);
        let us = Identity::fetcher("us").expect("scope");
        let other = csr_for(&us, "system:bootstrap:abcdef", &GROUPS);
        let token = token_secret(&eu(), chrono::Duration::hours(1));
        let Decision::Deny(why) = review(&other, Some(&token), now, max) else {
            panic!("approved a CSR for another identity")
        };
        assert!(
            why.contains("CN=hostledger-fetcher-us")
                && why.contains("only CN=hostledger-fetcher-eu"),
            "{why}"
        );

        let mine = csr_for(&eu(), "system:bootstrap:abcdef", &GROUPS);
        let expired = token_secret(&eu(), chrono::Duration::seconds(-5));
        let Decision::Deny(why) = review(&mine, Some(&expired), now, max) else {
            panic!("approved with an expired token")
        };
        assert!(why.contains("expired"), "{why}");
        let Decision::Deny(why) = review(&mine, None, now, max) else {
            panic!("approved without a token")
        };
        assert!(why.contains("enrolls once"), "{why}");

        let person = csr_for(&eu(), "alice", &["system:authenticated"]);
        assert!(matches!(
            review(&person, Some(&token), now, max),
            Decision::Deny(_)
        ));
        let mut server = csr_for(&eu(), "system:bootstrap:abcdef", &GROUPS);
        server.spec.usages = Some(vec!["server auth".into()]);
        let Decision::Deny(why) = review(&server, Some(&token), now, max) else {
            panic!("approved server auth")
        };
        assert!(why.contains("usages"), "{why}");
    }

    #[test]
    fn a_csr_approved_but_not_signed_is_signed_and_one_signed_is_left_alone() {
        let mut csr = csr_for(&eu(), "system:bootstrap:abcdef", &GROUPS);
        let max = Duration::from_secs(3600);
        csr.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![condition("Approved", APPROVED_REASON, "m")]),
            ..CertificateSigningRequestStatus::default()
        });
        // The token is gone by then (deleted at approval).
        assert_eq!(
            review(&csr, None, chrono::Utc::now(), max),
            Decision::Sign { lifetime: max }
        );
        if let Some(status) = csr.status.as_mut() {
            status.certificate = Some(ByteString(b"PEM".to_vec()));
        }
        assert_eq!(
            review(&csr, None, chrono::Utc::now(), max),
            Decision::Ignore
        );
        if let Some(status) = csr.status.as_mut() {
            status.certificate = None;
            status.conditions = Some(vec![condition("Approved", "SomeoneElse", "m")]);
        }
        assert_eq!(
            review(&csr, None, chrono::Utc::now(), max),
            Decision::Ignore
        );
    }

    #[test]
    fn a_renewal_keeps_the_name_of_the_certificate_presented() {
        let (_, request) = new_key_and_request(&eu().common_name()).expect("request");
        assert_eq!(
            review_renewal("hostledger-fetcher-eu", request.as_bytes()),
            Ok(())
        );
        let other = review_renewal("hostledger-fetcher-us", request.as_bytes()).unwrap_err();
        assert!(other.contains("keeps the name"), "{other}");
        let admin = review_renewal("hostledger-admin", request.as_bytes()).unwrap_err();
        assert!(admin.contains("neither an enrolled identity"), "{admin}");
        let (_, projector) = new_key_and_request(PROJECTOR_IDENTITY).expect("request");
        assert_eq!(
            review_renewal(PROJECTOR_IDENTITY, projector.as_bytes()),
            Ok(())
        );
        let as_projector = review_renewal("hostledger-fetcher-eu", projector.as_bytes());
        assert!(as_projector.unwrap_err().contains("keeps the name"));
    }

    #[test]
    fn tokens_parse_and_reject_what_is_not_one() {
        let t = Token::generate();
        assert_eq!(Token::parse(&t.bearer()), Ok(t.clone()));
        assert!(Token::parse("abc.def").is_err());
        assert!(Token::parse("ABCDEF.0123456789abcdef").is_err());
        assert!(Identity::fetcher("EU").is_err());
        assert!(Identity::fetcher("-eu").is_err());
    }

    #[test]
    fn the_signer_issues_a_client_certificate_for_the_requested_name() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca = params.self_signed(&ca_key).expect("CA");
        let signer = Signer::from_pem(&ca.pem(), &ca_key.serialize_pem()).expect("signer");
        let (_, request) = new_key_and_request(&eu().common_name()).expect("request");
        let pem = signer
            .sign(request.as_bytes(), Duration::from_secs(900))
            .expect("signed");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert_eq!(
            requested_subject(request.as_bytes()).expect("subject"),
            ["CN=hostledger-fetcher-eu"]
        );
    }
}

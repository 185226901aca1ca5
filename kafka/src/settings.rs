//! Kafka settings as read from config files and flags.

use hostledger_model::defaults::defaults;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::KafkaError;

/// Environment variable naming the bootstrap servers when a config file or flag does not
/// (`scripts/stack env` sets it for the local stack).
pub const BOOTSTRAP_ENV: &str = "HOSTLEDGER_KAFKA_BOOTSTRAP";

/// Default bootstrap servers: `$HOSTLEDGER_KAFKA_BOOTSTRAP`, else the local stack's
/// plaintext listener. A value in a config file or on the command line wins over both.
pub fn default_bootstrap_servers() -> String {
    std::env::var(BOOTSTRAP_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:19092".to_owned())
}

/// Environment variables naming this process's TLS files when a config file does not
/// (`scripts/stack env` sets them for the local stack's mutual-TLS listener): the CA that
/// signed the brokers' certificates, and the client certificate and key of the identity.
/// Any of them set makes `ssl` the default security protocol.
pub const CA_FILE_ENV: &str = "HOSTLEDGER_KAFKA_CA_FILE";
/// See [`CA_FILE_ENV`].
pub const CERT_FILE_ENV: &str = "HOSTLEDGER_KAFKA_CERT_FILE";
/// See [`CA_FILE_ENV`].
pub const KEY_FILE_ENV: &str = "HOSTLEDGER_KAFKA_KEY_FILE";

fn path_from_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn default_ca_file() -> Option<PathBuf> {
    path_from_env(CA_FILE_ENV)
}

fn default_cert_file() -> Option<PathBuf> {
    path_from_env(CERT_FILE_ENV)
}

fn default_key_file() -> Option<PathBuf> {
    path_from_env(KEY_FILE_ENV)
}

fn default_security_protocol() -> SecurityProtocol {
    let tls = [CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV]
        .iter()
        .any(|v| path_from_env(v).is_some());
    if tls {
        SecurityProtocol::Ssl
    } else {
        SecurityProtocol::Plaintext
    }
}

/// How clients talk to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication (local development only).
    #[default]
    Plaintext,
    /// TLS; with `cert_file` and `key_file`, mutual TLS.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn librdkafka_name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub(crate) fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub(crate) fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// A secret string that never reaches logs or `Debug` output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to the client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The topics hostledger uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Host events, the source of truth. Key = host id.
    #[serde(default = "default_events_topic")]
    pub events: String,
    /// Messages the projector could not use, with the reason in headers.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter: String,
    /// Compacted: each fetcher's last published state per host.
    #[serde(default = "default_fetcher_state_topic")]
    pub fetcher_state: String,
}

fn default_events_topic() -> String {
    defaults().events_topic.clone()
}
fn default_dead_letter_topic() -> String {
    defaults().dead_letter_topic.clone()
}
fn default_fetcher_state_topic() -> String {
    defaults().fetcher_state_topic.clone()
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            events: default_events_topic(),
            dead_letter: default_dead_letter_topic(),
            fetcher_state: default_fetcher_state_topic(),
        }
    }
}

impl Topics {
    /// Topics named after a prefix: `PREFIX.host-events`, `PREFIX.host-events.dlq`,
    /// `PREFIX.fetcher-state`. Tests use this to get topics of their own.
    pub fn with_prefix(prefix: &str) -> Self {
        Topics {
            events: format!("{prefix}.host-events"),
            dead_letter: format!("{prefix}.host-events.dlq"),
            fetcher_state: format!("{prefix}.fetcher-state"),
        }
    }
}

/// Kafka connection settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list of brokers.
    #[serde(default = "default_bootstrap_servers")]
    pub bootstrap_servers: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`. Default: `ssl` when
    /// `$HOSTLEDGER_KAFKA_CA_FILE`, `_CERT_FILE` or `_KEY_FILE` is set, else `plaintext`.
    #[serde(default = "default_security_protocol")]
    pub security_protocol: SecurityProtocol,
    /// PEM file of the CA that signed the brokers' certificates. Default:
    /// `$HOSTLEDGER_KAFKA_CA_FILE`, else the system's CAs.
    #[serde(default = "default_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS: the identity the brokers authorize (its
    /// common name is the principal). Default: `$HOSTLEDGER_KAFKA_CERT_FILE`.
    #[serde(default = "default_cert_file")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate. Default: `$HOSTLEDGER_KAFKA_KEY_FILE`.
    #[serde(default = "default_key_file")]
    pub key_file: Option<PathBuf>,
    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password. Never logged.
    #[serde(default)]
    pub sasl_password: Option<Secret>,
    /// Topic names.
    #[serde(default)]
    pub topics: Topics,
    /// Extra librdkafka options, passed through as they are (e.g. `socket.timeout.ms`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            bootstrap_servers: default_bootstrap_servers(),
            security_protocol: default_security_protocol(),
            ca_file: default_ca_file(),
            cert_file: default_cert_file(),
            key_file: default_key_file(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            topics: Topics::default(),
            options: BTreeMap::new(),
        }
    }
}

const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaSettings {
    /// Plaintext settings for the given bootstrap servers (no TLS, whatever the environment
    /// says).
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: SecurityProtocol::Plaintext,
            ca_file: None,
            cert_file: None,
            key_file: None,
            ..KafkaSettings::default()
        }
    }

    /// The same settings with mutual TLS as the identity whose certificate and key these
    /// are, trusting `ca_file` for the brokers.
    pub fn with_identity(
        mut self,
        ca_file: PathBuf,
        cert_file: PathBuf,
        key_file: PathBuf,
    ) -> Self {
        self.use_tls_files(Some(ca_file), Some((cert_file, key_file)));
        self
    }

    /// Uses these TLS files (each given one replaces the settings'), which means TLS:
    /// `ssl`, or `sasl_ssl` if SASL is configured. With neither, nothing changes.
    pub fn use_tls_files(
        &mut self,
        ca_file: Option<PathBuf>,
        cert_and_key: Option<(PathBuf, PathBuf)>,
    ) {
        if ca_file.is_none() && cert_and_key.is_none() {
            return;
        }
        if self.security_protocol != SecurityProtocol::SaslSsl {
            self.security_protocol = SecurityProtocol::Ssl;
        }
        if let Some(ca) = ca_file {
            self.ca_file = Some(ca);
        }
        if let Some((cert, key)) = cert_and_key {
            self.cert_file = Some(cert);
            self.key_file = Some(key);
        }
    }

    /// Checks the settings once, at start-up, so that nothing fails later for a reason that
    /// was visible in the config.
    pub fn validate(&self) -> Result<(), KafkaError> {
        let bad = |msg: String| Err(KafkaError::Config(msg));
        if self.bootstrap_servers.trim().is_empty() {
            return bad("kafka.bootstrap_servers is empty".into());
        }
        for server in self.bootstrap_servers.split(',') {
            let server = server.trim();
            let port = server.rsplit_once(':').map(|(_, p)| p);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return bad(format!(
                    "kafka.bootstrap_servers: {server:?} is not host:port"
                ));
            }
        }
        if let Some(option) = self.options.keys().find(|k| k.starts_with("partitioner")) {
            return bad(format!(
                "kafka.options.{option} cannot be set: the partitioner is part of the event contract \
                 (all events of a host share the partition that CRC-32 of its id picks, and readers \
                 of one host rely on it); remove the option"
            ));
        }
        for (name, topic) in [
            ("events", &self.topics.events),
            ("dead_letter", &self.topics.dead_letter),
            ("fetcher_state", &self.topics.fetcher_state),
        ] {
            let valid = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid {
                return bad(format!(
                    "kafka.topics.{name}: {topic:?} is not a valid topic name (1-249 of a-z A-Z 0-9 . _ -)"
                ));
            }
        }
        let tls = self.security_protocol.uses_tls();
        for (name, file) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if let Some(path) = file {
                if !tls {
                    return bad(format!(
                        "kafka.{name} is set (in the config, a flag or $HOSTLEDGER_KAFKA_*_FILE) but \
                         security_protocol is {}; use ssl or sasl_ssl",
                        self.security_protocol.librdkafka_name()
                    ));
                }
                if !path.is_file() {
                    return bad(format!(
                        "kafka.{name}: {} does not exist or is not a file",
                        path.display()
                    ));
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return bad("kafka.cert_file and kafka.key_file go together: set both for mutual TLS, or neither".into());
        }
        if self.security_protocol.uses_sasl() {
            match &self.sasl_mechanism {
                Some(m) if SASL_MECHANISMS.contains(&m.as_str()) => {}
                Some(m) => {
                    return bad(format!(
                        "kafka.sasl_mechanism: {m:?} is not one of {SASL_MECHANISMS:?}"
                    ));
                }
                None => return bad("kafka.sasl_mechanism is required with SASL".into()),
            }
            if self.sasl_username.is_none() || self.sasl_password.is_none() {
                return bad(
                    "kafka.sasl_username and kafka.sasl_password are required with SASL".into(),
                );
            }
        } else if self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some()
        {
            return bad(format!(
                "SASL settings are set but security_protocol is {}; use sasl_plaintext or sasl_ssl",
                self.security_protocol.librdkafka_name()
            ));
        }
        Ok(())
    }

    /// The librdkafka properties these settings stand for (before role-specific ones).
    pub fn librdkafka_properties(&self) -> BTreeMap<String, String> {
        let mut props = BTreeMap::new();
        props.insert(
            "bootstrap.servers".to_owned(),
            self.bootstrap_servers.clone(),
        );
        props.insert(
            "security.protocol".to_owned(),
            self.security_protocol.librdkafka_name().to_owned(),
        );
        let path = |p: &PathBuf| p.display().to_string();
        if let Some(ca) = &self.ca_file {
            props.insert("ssl.ca.location".to_owned(), path(ca));
        }
        if let Some(cert) = &self.cert_file {
            props.insert("ssl.certificate.location".to_owned(), path(cert));
        }
        if let Some(key) = &self.key_file {
            props.insert("ssl.key.location".to_owned(), path(key));
        }
        if let Some(m) = &self.sasl_mechanism {
            props.insert("sasl.mechanisms".to_owned(), m.clone());
        }
        if let Some(u) = &self.sasl_username {
            props.insert("sasl.username".to_owned(), u.clone());
        }
        if let Some(p) = &self.sasl_password {
            props.insert("sasl.password".to_owned(), p.expose().to_owned());
        }
        for (k, v) in &self.options {
            props.insert(k.clone(), v.clone());
        }
        props
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<KafkaSettings, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    #[test]
    fn the_partitioner_cannot_be_changed() {
        let s = parse("options: {partitioner: murmur2_random}").expect("parses");
        let err = s
            .validate()
            .expect_err("the partitioner is pinned")
            .to_string();
        assert!(err.contains("kafka.options.partitioner"), "{err}");
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let s = parse("{}").expect("empty config parses");
        assert_eq!(s.bootstrap_servers, default_bootstrap_servers());
        assert_eq!(s.topics.events, "hostledger.host-events");
        s.validate().expect("defaults are valid");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse("bootstrap_server: x:1").unwrap_err().to_string();
        assert!(err.contains("unknown field `bootstrap_server`"), "{err}");
    }

    #[test]
    fn bad_bootstrap_is_named() {
        let err = KafkaSettings::plaintext("broker-without-port")
            .validate()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"broker-without-port\" is not host:port"),
            "{err}"
        );
    }

    #[test]
    fn tls_files_need_tls() {
        let s = parse("security_protocol: plaintext\nca_file: /etc/hostname").expect("parses");
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("kafka.ca_file is set") && err.contains("security_protocol is plaintext"),
            "{err}"
        );
    }

    #[test]
    fn missing_cert_file_is_named() {
        let s = parse(
            "security_protocol: ssl\ncert_file: /nonexistent/c.pem\nkey_file: /nonexistent/k.pem",
        )
        .expect("parses");
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/c.pem does not exist"), "{err}");
    }

    #[test]
    fn sasl_needs_credentials_and_password_is_hidden() {
        let s = parse("security_protocol: sasl_ssl\nsasl_mechanism: PLAIN\nsasl_username: u\nsasl_password: hunter2")
            .expect("parses");
        s.validate().expect("valid");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.librdkafka_properties()["sasl.password"], "hunter2");
        let s = parse("security_protocol: sasl_ssl\nsasl_mechanism: GSSAPI\nsasl_username: u\nsasl_password: p")
            .expect("parses");
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("\"GSSAPI\" is not one of")
        );
    }

    #[test]
    fn passthrough_options_win() {
        let s = parse("options: {socket.timeout.ms: '1000', bootstrap.servers: 'x:1'}")
            .expect("parses");
        let props = s.librdkafka_properties();
        assert_eq!(props["socket.timeout.ms"], "1000");
        assert_eq!(props["bootstrap.servers"], "x:1");
    }

    #[test]
    fn topic_names_are_checked() {
        let s = parse("topics: {events: 'bad topic'}").expect("parses");
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("kafka.topics.events")
        );
    }
}

//! The Kafka connection flags every command that talks to Kafka takes.

use std::path::PathBuf;

use clap::Args;
use hostledger_kafka::{KafkaSettings, Topics};

/// Kafka connection flags shared by subcommands.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...). Overrides the config file, which overrides
    /// $HOSTLEDGER_KAFKA_BOOTSTRAP, which overrides 127.0.0.1:19092.
    #[arg(long)]
    pub kafka_bootstrap: Option<String>,

    /// Use topics PREFIX.host-events, PREFIX.host-events.dlq and PREFIX.fetcher-state
    /// instead of the hostledger.* defaults. Overrides the config file.
    #[arg(long, value_name = "PREFIX")]
    pub topic_prefix: Option<String>,

    /// PEM file of the CA that signed the brokers' certificates; implies TLS. Overrides the
    /// config file, which overrides $HOSTLEDGER_KAFKA_CA_FILE.
    #[arg(long, value_name = "FILE")]
    pub kafka_ca: Option<PathBuf>,

    /// PEM client certificate to authenticate with (mutual TLS; the brokers authorize its
    /// common name), with --kafka-key. Overrides the config file, which overrides
    /// $HOSTLEDGER_KAFKA_CERT_FILE.
    #[arg(long, value_name = "FILE", requires = "kafka_key")]
    pub kafka_cert: Option<PathBuf>,

    /// PEM private key of --kafka-cert. Overrides the config file, which overrides
    /// $HOSTLEDGER_KAFKA_KEY_FILE.
    #[arg(long, value_name = "FILE", requires = "kafka_cert")]
    pub kafka_key: Option<PathBuf>,

    /// Extra librdkafka option, passed through (repeatable), e.g.
    /// --kafka-option session.timeout.ms=10000. Overrides the config file.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
}

/// Parses `KEY=VALUE`.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

impl KafkaArgs {
    /// Applies the flags on top of `settings`.
    pub fn apply(&self, mut settings: KafkaSettings) -> KafkaSettings {
        if let Some(b) = &self.kafka_bootstrap {
            settings.bootstrap_servers.clone_from(b);
        }
        if let Some(prefix) = &self.topic_prefix {
            settings.topics = Topics::with_prefix(prefix);
        }
        let cert_and_key = self.kafka_cert.clone().zip(self.kafka_key.clone());
        settings.use_tls_files(self.kafka_ca.clone(), cert_and_key);
        settings.options.extend(self.kafka_options.iter().cloned());
        settings
    }
}

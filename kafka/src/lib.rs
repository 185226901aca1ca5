//! The Kafka adapter of hostledger: every Kafka client is built here.
//!
//! - `settings` ([`KafkaSettings`]): the typed, validated Kafka configuration (bootstrap
//!   servers, TLS/mTLS, SASL, topic names, a passthrough map of librdkafka options).
//! - `client` ([`KafkaClients`]): the one place where Kafka clients are built from those
//!   settings, topic administration, metadata look-ups, and async wrappers of the blocking
//!   calls.
//! - [`log`]: decoding messages of the events topic, and the one reader of the whole log.
//! - [`acl`]: the ACLs each identity needs (least privilege), and creating them.
//! - [`identity`]: a client identity's certificate: name, validity, a new key and request.
//! - [`renewal`]: renewing a short-lived client certificate before it expires.
//! - `error` ([`KafkaError`], [`classify`]): errors classified as transient, poison or fatal, so
//!   callers know whether to retry, dead-letter or stop.

pub mod acl;
mod client;
mod error;
pub mod identity;
pub mod log;
pub mod renewal;
mod settings;

pub use client::{
    ClientRole, DeliveryContext, GroupConsumer, KafkaClients, KafkaContext, Producer, Reader,
    TopicSpec, TransactionalProducer,
};
pub use error::{ErrorClass, KafkaError, Refusal, classify};
pub use log::{Item, LogReader, LogStats, ReadProgress, ReadScope, partition_for_key};
pub use settings::{
    BOOTSTRAP_ENV, CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV, KafkaSettings, Secret,
    SecurityProtocol, Topics, default_bootstrap_servers,
};

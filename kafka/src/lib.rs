//! Kafka plumbing shared by every hostledger role.
//!
//! - [`settings`]: the typed, validated Kafka configuration (bootstrap servers, TLS/mTLS,
//!   SASL, topic names, a passthrough map of librdkafka options).
//! - [`client`]: the one place where Kafka clients are built from those settings, plus topic
//!   administration and metadata look-ups.
//! - [`log`]: decoding messages of the events topic, and the one reader of the whole log.
//! - [`error`]: errors classified as transient, poison or fatal, so callers know whether to
//!   retry, dead-letter or stop.

pub mod client;
pub mod error;
pub mod log;
pub mod settings;

pub use client::{ClientRole, GroupConsumer, KafkaClients, KafkaContext, Producer, Reader};
pub use error::{ErrorClass, KafkaError};
pub use log::{Item, LogReader, LogStats};
pub use settings::{KafkaSettings, SecurityProtocol, Topics};

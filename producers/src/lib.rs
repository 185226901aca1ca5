//! hostledger fetchers: how the world gets into the log.
//!
//! - [`provider`]: the provider interface and the providers (`dcexport`: data-centre
//!   inventory exports).
//! - [`diff`]: pure code turning last known state + a listing into events, with the grace
//!   period for missing hosts.
//! - [`publish`]: transactional publishing of events together with the fetcher's state.
//! - [`state`]: restoring that state from the compacted fetcher-state topic.
//! - [`fetcher`]: the list → diff → publish → advance loop.
//! - [`config`]: the fetcher's YAML configuration.
//! - [`metrics`]: the fetcher's Prometheus metrics.
//! - [`error`]: fetcher errors.

pub mod config;
pub mod diff;
pub mod error;
pub mod fetcher;
pub mod metrics;
pub mod provider;
pub mod publish;
pub mod state;

pub use config::FetcherConfig;
pub use error::FetchError;
pub use fetcher::{Fetcher, PassReport, run};

//! hostledger fetchers: how the world gets into the log.
//!
//! - [`provider`]: the provider interface and the providers (`dcexport`: data-centre
//!   inventory exports).
//! - [`diff`]: pure code turning last known state + a listing into events, with the grace
//!   period for missing hosts.
//! - `publish` ([`Publisher`]): transactional publishing of events together with the fetcher's state.
//! - `state` ([`restore`]): restoring that state (last events, absence clocks) from the
//!   compacted fetcher-state topic.
//! - `fetcher` ([`run`], [`Fetcher`]): the list → diff → publish → advance loop.
//! - [`backfill`]: dated snapshots of a provider → the events its fetcher would have
//!   published then, checked against the log and resumable.
//! - `config` ([`FetcherConfig`]): the fetcher's YAML configuration.
//! - `metrics` ([`FetcherMetrics`]): the fetcher's Prometheus metrics.
//! - `error` ([`FetchError`]): fetcher errors.

pub mod backfill;
mod config;
pub mod diff;
mod error;
mod fetcher;
mod metrics;
pub mod provider;
mod publish;
mod state;

pub use config::{FetcherConfig, ProviderConfig};
pub use error::FetchError;
pub use fetcher::{Fetcher, PassReport, events_of, run};
pub use metrics::FetcherMetrics;
pub use publish::{Publisher, state_key};
pub use state::{
    ABSENT_SINCE_HEADER, Restored, StateEntry, restore, restore_entries, restore_events,
};

//! The hostledger projector: folds the host event log into `Host` objects in a Kubernetes
//! API server.
//!
//! - [`fold`]: the pure fold `(HostRecord, HostEvent) -> HostRecord` — lifecycle, service
//!   intervals, time in service, duplicate detection by log position. No I/O.
//! - [`crd`]: the `Host` custom resource, its status, labels and object names, and the
//!   mapping between a status and a [`fold::HostRecord`].
//! - [`history`]: the `HostHistory` custom resource: every event of a host, in append-only
//!   chunks written idempotently.
//! - [`k8s`]: server-side apply of Hosts with one field manager, with retries.
//! - [`apply`]: folding events into cached records and writing each touched host once.
//! - [`daemon`]: the live consume → fold → write → commit loop, with dead-lettering.
//! - [`replay`]: rebuilding from offset 0, optionally up to a time, into any namespace.
//! - [`metrics`]: Prometheus counters and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! - [`error`]: what can stop the projector.

pub mod apply;
pub mod crd;
pub mod daemon;
pub mod error;
pub mod fold;
pub mod history;
pub mod k8s;
pub mod metrics;
pub mod replay;

pub use crd::{Host, HostSpec, HostStatus};
pub use daemon::{Projector, ProjectorSettings, ProjectorStats};
pub use error::ProjectorError;
pub use history::{HistoryStore, HostHistory};
pub use k8s::HostStore;
pub use replay::{ReplaySettings, ReplayStats, replay};

/// Runs a short blocking call (a Kafka metadata request) from async code: off the worker
/// thread on a multi-threaded runtime, in place on a current-thread one (where nothing else
/// can be starved for longer than the call's own timeout).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

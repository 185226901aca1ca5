//! The hostledger projector: folds the host event log into `Host` objects in a Kubernetes
//! API server, with the fold of [`hostledger_model`] and the stores of [`hostledger_k8s`].
//!
//! - `apply`: folding events into cached records and writing each touched host once.
//! - `daemon`: the live consume → fold → write → commit loop, with dead-lettering.
//! - `lockfacts`: recording host locks taken and ended as lock facts in the log.
//! - `replay`: rebuilding from offset 0, optionally up to a time, into any namespace.
//! - [`metrics`]: Prometheus counters and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! - [`groups`]: keeping every HostGroup's status and every Host's drift status current
//!   from watches.
//! - `error`: what can stop the projector.

mod apply;
mod daemon;
mod error;
pub mod groups;
mod lockfacts;
pub mod metrics;
mod replay;

pub use apply::{Applier, ApplyStats};
pub use daemon::{Projector, ProjectorSettings, ProjectorStats};
pub use error::ProjectorError;
pub use replay::{ReplaySettings, ReplayStats, replay};

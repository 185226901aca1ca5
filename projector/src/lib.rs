//! The hostledger projector: folds the host event log into `Host` objects in a Kubernetes
//! API server.
//!
//! - [`fold`]: the pure fold `(HostRecord, HostEvent) -> HostRecord` — lifecycle, service
//!   intervals, time in service, duplicate detection by log position. No I/O.
//! - [`crd`]: the `Host` custom resource, its status, labels and object names, and the
//!   mapping between a status and a [`fold::HostRecord`].
//! - [`k8s`]: server-side apply of Hosts with one field manager, with retries.
//! - [`daemon`]: the consume → fold → write → commit loop.
//! - [`error`]: what can stop the projector.

pub mod crd;
pub mod daemon;
pub mod error;
pub mod fold;
pub mod k8s;

pub use crd::{Host, HostSpec, HostStatus};
pub use daemon::{Projector, ProjectorSettings, ProjectorStats};
pub use error::ProjectorError;
pub use k8s::HostStore;

//! The Kubernetes API-server adapter of hostledger: the one place that lists, reads and
//! writes Host and HostHistory objects.
//!
//! - `hosts`: Hosts listed as records, and written with server-side apply under one field
//!   manager (status through the status subresource).
//! - `history`: HostHistory chunks: a host's history read back, entries appended
//!   idempotently.
//! - [`locks`]: HostLocks: acquire, renew, release, break, and the sweeper's pass.
//! - [`history_api`]: host histories from the history API (`hostledger history-server`).
//! - [`enrollment`]: bootstrap tokens, certificate requests, the approver's decision and
//!   signature (`hostledger token`, `enroll`, `approver`).
//! - [`projection`]: what a namespace is the projection of (topic, time, where history lives).
//! - `pager`: the one loop over `continue` tokens.
//! - `retry`: which failures pass, and retrying them with the one backoff.
//! - `error`: [`K8sError`], with the one "CRDs not installed" remedy.

pub mod enrollment;
mod error;
mod history;
pub mod history_api;
mod hosts;
pub mod locks;
mod pager;
pub mod projection;
mod retry;

pub use error::K8sError;
pub use history::HistoryStore;
pub use history_api::{Histories, HistoryApi};
pub use hosts::{
    FIELD_MANAGER, HostStore, ListedHost, StatusWrite, StoredHost, WriteReport, list_hosts,
};
pub use pager::{PAGE_SIZE, list_all, list_names, paged};
pub use retry::{is_transient, retry};

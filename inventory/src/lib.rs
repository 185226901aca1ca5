//! Reading the inventory: the answers people and tools come to hostledger for.
//!
//! - [`selector`]: Kubernetes label selectors, parsed and matched locally.
//! - [`timeline`]: a host folded up to any time, with every phase change; rebuilding a
//!   host's events from its HostHistory. Pure.
//! - [`source`]: reading the inventory from the Host/HostHistory objects or from the log,
//!   as of now or a past time.
//! - [`uptime`]: time in service per host and per group.
//! - [`table`]: aligned tables, CSV, human durations.
//! - [`ansible`]: the Ansible dynamic inventory (`--list`, `--host`).
//! - [`prometheus`]: Prometheus file-based service discovery: Hosts to target groups. Pure.
//! - [`report`]: the self-contained HTML page: fleet in service over time, per-host timelines.

pub mod ansible;
pub mod prometheus;
pub mod report;
pub mod selector;
pub mod source;
pub mod table;
pub mod timeline;
pub mod uptime;

pub use selector::LabelSelector;
pub use source::{HostView, Inventory, InventoryError, Query, Source};

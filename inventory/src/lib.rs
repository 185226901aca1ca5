//! Reading the inventory: the answers people and tools come to hostledger for. Everything
//! here reads; nothing writes Hosts (that is the projector's).
//!
//! - [`source`]: the inventory now or as of a past time, from the Host/HostHistory objects or
//!   from the log, folded by the same code either way.
//! - [`history`]: one host's events with what changed.
//! - [`history_api`]: the history API `hosthistories.history.hostledger.dev` (routes, the
//!   documents it serves, the index of the log it serves from).
//! - [`events`]: the log's events as they are, filtered, as JSON lines or a table.
//! - [`HostList`], [`UptimeReport`]: hosts and their time in service, as tables, CSV, JSON.
//! - [`ansible`]: the Ansible dynamic inventory (`--list`, `--host`).
//! - [`prometheus`]: Prometheus file-based service discovery and its targets file.
//! - [`watch`]: Host changes from a Kubernetes watch (shared by `watch` and
//!   `prometheus-sd --watch`).
//! - [`report`]: the self-contained HTML page: fleet in service over time, per-host timelines.
//! - [`LabelSelector`]: Kubernetes label selectors, parsed and matched locally (from the model).
//! - [`atomic`]: writing output files so readers never see half of one.

pub mod ansible;
pub mod atomic;
pub mod events;
pub mod history;
pub mod history_api;
mod hosts;
pub mod prometheus;
pub mod report;
pub mod source;
pub mod table;
mod uptime;
pub mod watch;

pub use hostledger_model::selector::{LabelSelector, SelectorError};
pub use hosts::HostList;
pub use source::{HostView, Inventory, InventoryError, Query, Source};
pub use uptime::{GroupBy, GroupRow, UptimeReport, UptimeRow};

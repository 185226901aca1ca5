//! The pure core of hostledger: what the log means, with no I/O. The projector, the
//! inventory readers and the CLI all build on it, so they cannot disagree.
//!
//! - [`fold`]: `(HostRecord, HostEvent) -> HostRecord` — lifecycle, service intervals, time
//!   in service, duplicate detection by log position.
//! - [`host`]: the `Host` custom resource and the mapping between its status and a record.
//! - [`history`]: the `HostHistory` custom resource, history entries, and folding an event
//!   into its entry.
//! - [`lock`]: the `HostLock` custom resource and the rules of host locks (who holds one,
//!   when one expires).
//! - [`timeline`]: a host as of any time, with every phase change; events rebuilt from a
//!   stored history.
//! - [`selector`]: Kubernetes label selectors, parsed once and matched locally.
//! - [`drift`]: intent (`spec.expected`) against what the log says, and the drift status.
//! - [`group`]: the `HostGroup` custom resource: membership, status, disruption budgets.
//! - [`names`]: object names, labels, annotations and finalizers.
//! - [`crd`]: the CustomResourceDefinitions generated from these types.
//! - [`time`]: times and durations for people and scripts.
//! - [`backoff`]: the delays between retries.
//! - `fixtures` (feature `fixtures`): builders of events, records and Host objects for tests.
//! - [`defaults`]: defaults shared with `scripts/stack` (`deploy/defaults.env`).

pub mod backoff;
pub mod clock;
pub mod crd;
pub mod defaults;
pub mod drift;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod fold;
pub mod group;
pub mod history;
pub mod host;
pub mod lock;
pub mod names;
pub mod selector;
pub mod time;
pub mod timeline;

pub use clock::{HostNames, ServiceClock, ServicePoint};
pub use fold::{AppliedEvent, Downtime, HeldLock, HostRecord, Outcome, Position, ServiceInterval};
pub use group::{HostGroup, HostGroupSpec, HostGroupStatus};
pub use history::{EntryKind, HistoryEntry, HostHistory, HostHistorySpec, LockEntry};
pub use host::{Host, HostSpec, HostStatus, StatusError};
pub use lock::{HostLock, HostLockSpec};
pub use timeline::{HistoryError, Timeline, Timelines};

//! Host locks: the `HostLock` custom resource (one per host, named after its Host) and the
//! rules every client and the lock sweeper follow. No I/O.
//!
//! - Acquiring is creating the object: the API server lets exactly one create of a name
//!   succeed, so two holders racing for a host cannot both win (no read-then-write).
//! - `spec.user` is the authenticated identity that took the lock; an admission policy
//!   (`deploy/policies/host-locks.yaml`) refuses a create that names someone else, and an
//!   update or delete by anyone but that user, unless they may `break` host locks.
//! - Expiry needs no client's clock: a lock that has not changed (same resourceVersion) for
//!   `ttlSeconds`, as measured by the sweeper's own monotonic clock from when it first saw
//!   that version, is expired ([`ExpiryTracker`]). A sweeper that restarts waits a full TTL
//!   again, so it may release late but never early.
//!
//! See docs/locks.md and docs/design/locks.md.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hostledger_schemas::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Shortest TTL a lock may have: renewals every third of it must reach the API server.
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// Longest TTL a lock may have (a week): a forgotten lock must end some day.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Label on a HostLock naming the Host object it locks.
pub const LOCK_HOST_LABEL: &str = "hostledger.dev/host";
/// Label the sweeper puts on a locked Host (`kubectl get hosts -l hostledger.dev/locked`,
/// `-L hostledger.dev/locked`; `-l '!hostledger.dev/locked'` leaves locked hosts out).
pub const LOCKED_LABEL: &str = "hostledger.dev/locked";
/// Annotation the sweeper puts on a locked Host: its [`LockMark`] as JSON.
pub const LOCK_ANNOTATION: &str = "hostledger.dev/lock";
/// Field manager of the lock marks on Hosts.
pub const MARK_MANAGER: &str = "hostledger-locks";

/// What a locked Host shows of its lock (annotation [`LOCK_ANNOTATION`]), for readers of
/// Hosts (Ansible, Prometheus discovery, kubectl) that do not read HostLocks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LockMark {
    /// Who holds it.
    pub holder: String,
    /// The identity that took it.
    pub user: String,
    /// Why.
    pub reason: String,
    /// When it was taken (the API server's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Its TTL.
    pub ttl_seconds: i64,
}

impl LockMark {
    /// The mark of `lock`.
    pub fn of(lock: &HostLock) -> Self {
        LockMark {
            holder: lock.spec.holder.clone(),
            user: lock.spec.user.clone(),
            reason: lock.spec.reason.clone(),
            since: lock.acquired_at(),
            ttl_seconds: lock.spec.ttl_seconds,
        }
    }

    /// The mark on a Host with these labels and annotations, if it is locked.
    pub fn on(
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Option<Self> {
        if labels.get(LOCKED_LABEL).map(String::as_str) != Some("true") {
            return None;
        }
        annotations
            .get(LOCK_ANNOTATION)
            .and_then(|a| serde_json::from_str(a).ok())
            .or(Some(LockMark {
                holder: String::new(),
                user: String::new(),
                reason: String::new(),
                since: None,
                ttl_seconds: 0,
            }))
    }
}

/// A lock on one host, held by one identity. Named after the Host object it locks.
// One `printcolumn(...)` per column is kube-derive's syntax; clippy mistakes the repeated
// keys for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "hostledger.dev",
    version = "v1alpha1",
    kind = "HostLock",
    plural = "hostlocks",
    shortname = "hlock",
    category = "hostledger",
    namespaced,
    derive = "PartialEq",
    doc = "A lock on one Host, held by one identity until released, broken, expired (no renewal for ttlSeconds) or the host retires. Acquire by creating it; the name is the Host's.",
    printcolumn(name = "Host-ID", type_ = "string", json_path = ".spec.hostId"),
    printcolumn(name = "Holder", type_ = "string", json_path = ".spec.holder"),
    printcolumn(name = "User", type_ = "string", json_path = ".spec.user"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".spec.reason"),
    printcolumn(name = "TTL", type_ = "integer", json_path = ".spec.ttlSeconds"),
    printcolumn(name = "Renewed", type_ = "date", json_path = ".spec.renewedAt"),
    printcolumn(
        name = "Acquired",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HostLockSpec {
    /// The locked host's id (`dc/pdx1/SN-0001`).
    pub host_id: String,
    /// Who holds it, for people: a run, a person at a machine (`alice@laptop`,
    /// `ansible-reboot-42`). One identity may hold locks as several holders.
    #[schemars(length(min = 1, max = 253))]
    pub holder: String,
    /// The authenticated identity that took the lock (the API server's user name). The
    /// admission policy refuses any other value.
    #[schemars(length(min = 1))]
    pub user: String,
    /// Why the host is locked.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Seconds without a renewal after which the lock expires.
    #[schemars(range(min = 5, max = 604800))]
    pub ttl_seconds: i64,
    /// When the holder last renewed it, by the holder's clock (for people; expiry does not
    /// read it). Each renewal changes it, and so the object's resourceVersion.
    pub renewed_at: Timestamp,
}

impl HostLock {
    /// The lock `holder` (authenticated as `user`) asks for on the Host `host_name`.
    pub fn request(
        host_name: &str,
        host_id: &str,
        labels: BTreeMap<String, String>,
        holder: &str,
        user: &str,
        reason: &str,
        ttl: Duration,
    ) -> Self {
        let mut lock = HostLock::new(
            host_name,
            HostLockSpec {
                host_id: host_id.to_owned(),
                holder: holder.to_owned(),
                user: user.to_owned(),
                reason: reason.to_owned(),
                ttl_seconds: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
                renewed_at: Timestamp::from(chrono::Utc::now()),
            },
        );
        let mut labels = labels;
        labels.insert(LOCK_HOST_LABEL.to_owned(), host_label_value(host_name));
        lock.metadata.labels = Some(labels);
        lock
    }

    /// Whether `holder`, authenticated as `user`, holds this lock.
    pub fn is_held_by(&self, holder: &str, user: &str) -> bool {
        self.spec.holder == holder && self.spec.user == user
    }

    /// The TTL as a duration (never below [`MIN_TTL`], whatever the object says).
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.spec.ttl_seconds).unwrap_or(0)).max(MIN_TTL)
    }

    /// When it was acquired, by the API server's clock.
    pub fn acquired_at(&self) -> Option<Timestamp> {
        self.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| Timestamp::from_unix_micros(t.0.as_microsecond()))
    }

    /// `held by HOLDER (user USER) since T (AGE ago): REASON`, for refusals.
    pub fn describe_holder(&self, now: Timestamp) -> String {
        let since = match self.acquired_at() {
            Some(t) => format!(
                " since {} ({} ago)",
                crate::time::formatted(t, "%Y-%m-%dT%H:%M:%SZ"),
                crate::time::human_duration(now.micros_since(t))
            ),
            None => String::new(),
        };
        format!(
            "held by {} (user {}){since}: {}",
            self.spec.holder, self.spec.user, self.spec.reason
        )
    }
}

/// A label value for a Host object name (object names may be longer than label values).
fn host_label_value(host_name: &str) -> String {
    if host_name.len() <= 63 {
        host_name.to_owned()
    } else {
        crate::names::label_value(host_name).unwrap_or_default()
    }
}

/// Checks a requested TTL: at least [`MIN_TTL`], at most [`MAX_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<Duration, String> {
    if ttl < MIN_TTL {
        Err(format!(
            "a lock's TTL must be at least {} s (it is renewed every third of it); got {} s",
            MIN_TTL.as_secs(),
            ttl.as_secs_f64()
        ))
    } else if ttl > MAX_TTL {
        Err(format!(
            "a lock's TTL must be at most 7 days (604800 s); got {} s. Renew a long lock \
             instead (`hostledger with-lock` does)",
            ttl.as_secs()
        ))
    } else {
        Ok(ttl)
    }
}

/// How often a holder renews a lock of `ttl`: three times per TTL, so two renewals may fail
/// before it expires.
pub fn renew_every(ttl: Duration) -> Duration {
    ttl / 3
}

/// The holder name used when none is given: `USER@HOSTNAME` of the local machine.
pub fn default_holder(login: Option<&str>, hostname: Option<&str>) -> String {
    format!(
        "{}@{}",
        login.filter(|s| !s.is_empty()).unwrap_or("unknown"),
        hostname.filter(|s| !s.is_empty()).unwrap_or("localhost")
    )
}

/// What the sweeper knows of one lock: which version it saw and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    since: Instant,
    ttl: Duration,
}

/// Decides which locks expired, by the observer's monotonic clock only: a lock expires once
/// the same (uid, resourceVersion) has been observed for its TTL. A renewal is a new
/// resourceVersion and starts the wait over.
#[derive(Debug, Default)]
pub struct ExpiryTracker {
    seen: HashMap<(String, String, String), Seen>,
}

/// A lock found expired: delete it only if it is still this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Object name.
    pub name: String,
    /// Its uid (delete precondition).
    pub uid: String,
    /// Its resourceVersion (delete precondition).
    pub resource_version: String,
    /// How long it went without a change.
    pub unchanged_for: Duration,
}

impl ExpiryTracker {
    /// Feeds one observation of every lock that exists at `now`; returns those expired.
    /// Locks no longer present are forgotten.
    pub fn observe<'a>(
        &mut self,
        locks: impl IntoIterator<Item = &'a HostLock>,
        now: Instant,
    ) -> Vec<Expired> {
        let mut current = HashMap::new();
        let mut expired = Vec::new();
        for lock in locks {
            let meta = &lock.metadata;
            let (Some(name), Some(uid), Some(rv)) = (
                meta.name.clone(),
                meta.uid.clone(),
                meta.resource_version.clone(),
            ) else {
                continue;
            };
            let key = (name.clone(), uid.clone(), rv.clone());
            let seen = self.seen.get(&key).copied().unwrap_or(Seen {
                since: now,
                ttl: lock.ttl(),
            });
            let unchanged_for = now.saturating_duration_since(seen.since);
            if unchanged_for >= seen.ttl {
                expired.push(Expired {
                    name,
                    uid,
                    resource_version: rv,
                    unchanged_for,
                });
            }
            current.insert(key, seen);
        }
        self.seen = current;
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(name: &str, rv: &str, ttl: i64) -> HostLock {
        let mut l = HostLock::request(
            name,
            "dc/pdx1/x",
            BTreeMap::new(),
            "alice@laptop",
            "alice",
            "kernel",
            Duration::from_secs(60),
        );
        l.spec.ttl_seconds = ttl;
        l.metadata.uid = Some(format!("uid-{name}"));
        l.metadata.resource_version = Some(rv.into());
        l
    }

    #[test]
    fn a_lock_expires_after_its_ttl_without_a_change_and_a_renewal_restarts_the_wait() {
        let t0 = Instant::now();
        let mut tracker = ExpiryTracker::default();
        let a = lock("a", "1", 10);
        assert!(tracker.observe([&a], t0).is_empty());
        assert!(
            tracker
                .observe([&a], t0 + Duration::from_secs(9))
                .is_empty()
        );
        // Renewed at 9 s: a new version, the wait starts over.
        let renewed = lock("a", "2", 10);
        assert!(
            tracker
                .observe([&renewed], t0 + Duration::from_secs(9))
                .is_empty()
        );
        assert!(
            tracker
                .observe([&renewed], t0 + Duration::from_secs(18))
                .is_empty()
        );
        let expired = tracker.observe([&renewed], t0 + Duration::from_secs(19));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].resource_version, "2");
        assert_eq!(expired[0].unchanged_for, Duration::from_secs(10));
    }

    #[test]
    fn a_fresh_tracker_waits_a_full_ttl_and_forgets_released_locks() {
        let t0 = Instant::now();
        let mut tracker = ExpiryTracker::default();
        let a = lock("a", "7", 5);
        // However old the lock is, a tracker that just started has seen it for 0 s.
        assert!(tracker.observe([&a], t0).is_empty());
        assert!(tracker.observe([], t0 + Duration::from_secs(1)).is_empty());
        // Released and taken again with the same version number: seen anew.
        assert!(
            tracker
                .observe([&a], t0 + Duration::from_secs(6))
                .is_empty()
        );
        assert_eq!(tracker.observe([&a], t0 + Duration::from_secs(11)).len(), 1);
    }

    #[test]
    fn a_mark_round_trips_through_the_hosts_metadata() {
        let l = lock("a", "1", 60);
        let mark = LockMark::of(&l);
        let labels = BTreeMap::from([(LOCKED_LABEL.to_owned(), "true".to_owned())]);
        let annotations = BTreeMap::from([(
            LOCK_ANNOTATION.to_owned(),
            serde_json::to_string(&mark).expect("json"),
        )]);
        assert_eq!(LockMark::on(&labels, &annotations), Some(mark));
        assert_eq!(LockMark::on(&BTreeMap::new(), &annotations), None);
        let bare = LockMark::on(&labels, &BTreeMap::new()).expect("locked, details unknown");
        assert!(bare.holder.is_empty());
    }

    #[test]
    fn ttls_are_bounded() {
        assert!(check_ttl(Duration::from_secs(4)).is_err());
        assert!(check_ttl(Duration::from_secs(5)).is_ok());
        assert!(check_ttl(MAX_TTL).is_ok());
        let err = check_ttl(MAX_TTL + Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("with-lock"), "{err}");
        assert_eq!(
            renew_every(Duration::from_secs(60)),
            Duration::from_secs(20)
        );
        // An object edited by hand below the minimum still waits the minimum.
        assert_eq!(lock("a", "1", 1).ttl(), MIN_TTL);
    }

    #[test]
    fn a_request_carries_the_host_label_and_describes_its_holder() {
        let mut l = HostLock::request(
            "dc.pdx1.sn-1",
            "dc/pdx1/SN-1",
            BTreeMap::from([("role".to_owned(), "db".to_owned())]),
            "ansible-42",
            "bob",
            "reboot",
            Duration::from_secs(3600),
        );
        let labels = l.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["role"], "db");
        assert_eq!(labels[LOCK_HOST_LABEL], "dc.pdx1.sn-1");
        assert_eq!(l.spec.ttl_seconds, 3600);
        assert!(l.is_held_by("ansible-42", "bob"));
        assert!(!l.is_held_by("ansible-42", "alice"));
        let t = Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").expect("time");
        l.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_microsecond(t.unix_micros()).expect("in range"),
        ));
        assert_eq!(
            l.describe_holder(Timestamp::from_unix_micros(t.unix_micros() + 240_000_000)),
            "held by ansible-42 (user bob) since 2026-12-01T10:00:00Z (4m 0s ago): reboot"
        );
        assert_eq!(
            default_holder(Some("alice"), Some("laptop")),
            "alice@laptop"
        );
        assert_eq!(default_holder(None, None), "unknown@localhost");
    }
}

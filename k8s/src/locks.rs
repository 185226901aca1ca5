//! HostLocks in the API server: acquiring (create: one winner), renewing (an update that
//! fails if anyone else changed the lock), releasing (a delete that only removes the lock it
//! took, by uid), breaking, listing, and the sweeper that releases expired locks and locks of
//! retired hosts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hostledger_model::lock::{
    Expired, ExpiryTracker, LOCK_ANNOTATION, LOCKED_LABEL, LockMark, MARK_MANAGER,
};
use hostledger_model::{Host, HostLock};
use hostledger_schemas::{Lifecycle, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, Error as KubeError};
use serde_json::json;

use crate::error::K8sError;
use crate::pager::list_all;

/// The outcome of asking for a lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    /// Taken now.
    New(HostLock),
    /// Already held by the same holder and user: renewed, with the new reason and TTL.
    Renewed(HostLock),
    /// Held by someone else: this is their lock.
    HeldBy(HostLock),
}

/// Why a renewal failed.
#[derive(Debug)]
pub enum Lost {
    /// The lock is gone: released by someone else, broken, expired or its host retired.
    Gone,
    /// The lock was changed by someone else (broken and taken again).
    Changed(Option<Box<HostLock>>),
    /// The API server could not be reached or refused; the lock may still be ours.
    Api(K8sError),
}

/// Why something was released by the sweeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepReason {
    /// Not renewed for its TTL.
    Expired(Duration),
    /// Its Host is retired.
    HostRetired,
    /// Its Host no longer exists.
    HostGone,
}

/// What one sweep did and found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sweep {
    /// Locks released, and why.
    pub released: Vec<(HostLock, SweepReason)>,
    /// Locks still held.
    pub held: Vec<HostLock>,
}

/// Host object name → the lock mark it carries, as last written or read.
pub type Marks = HashMap<String, LockMark>;

/// HostLocks in one namespace.
#[derive(Clone)]
pub struct LockStore {
    api: Api<HostLock>,
    hosts: Api<Host>,
    namespace: String,
}

fn is_status(error: &KubeError, code: u16) -> bool {
    matches!(error, KubeError::Api(s) if s.code == code)
}

impl LockStore {
    /// HostLocks in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        LockStore {
            api: Api::namespaced(client.clone(), namespace),
            hosts: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn error(&self, action: String, error: KubeError) -> K8sError {
        K8sError::in_namespace(action, &self.namespace, error)
    }

    /// Creates `request`; if the name is taken, returns the holder's lock, or renews it when
    /// it is already ours (same holder and user). A lock released between the create and the
    /// read is asked for again.
    pub async fn acquire(&self, request: &HostLock) -> Result<Acquired, K8sError> {
        let name = request.metadata.name.clone().unwrap_or_default();
        for _ in 0..5 {
            match self.api.create(&PostParams::default(), request).await {
                Ok(lock) => return Ok(Acquired::New(lock)),
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(self.error(format!("create HostLock {name}"), e)),
            }
            let existing = self
                .api
                .get_opt(&name)
                .await
                .map_err(|e| self.error(format!("read HostLock {name}"), e))?;
            let Some(existing) = existing else { continue };
            if existing.is_held_by(&request.spec.holder, &request.spec.user) {
                return match self
                    .renew(&existing, &request.spec.reason, request.spec.ttl_seconds)
                    .await
                {
                    Ok(lock) => Ok(Acquired::Renewed(lock)),
                    Err(Lost::Api(e)) => Err(e),
                    Err(Lost::Gone | Lost::Changed(_)) => continue,
                };
            }
            return Ok(Acquired::HeldBy(existing));
        }
        Err(K8sError::Unreadable {
            action: format!("acquire HostLock {name}"),
            reason: "it was taken and released five times while asking; try again".into(),
        })
    }

    /// Renews `lock`: a merge patch that carries its resourceVersion, so it fails if anyone
    /// else changed the lock since. Returns the renewed lock (with its new resourceVersion).
    pub async fn renew(
        &self,
        lock: &HostLock,
        reason: &str,
        ttl_seconds: i64,
    ) -> Result<HostLock, Lost> {
        let name = lock.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {
                "uid": lock.metadata.uid,
                "resourceVersion": lock.metadata.resource_version,
            },
            "spec": {
                "reason": reason,
                "ttlSeconds": ttl_seconds,
                "renewedAt": Timestamp::from(chrono::Utc::now()),
            },
        });
        match self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(lock) => Ok(lock),
            Err(e) if is_status(&e, 404) => Err(Lost::Gone),
            Err(e) if is_status(&e, 409) || is_status(&e, 422) => Err(Lost::Changed(
                self.api.get_opt(&name).await.ok().flatten().map(Box::new),
            )),
            Err(e) => Err(Lost::Api(self.error(format!("renew HostLock {name}"), e))),
        }
    }

    /// Deletes `lock` if it is still the one taken (same uid). Returns whether it was
    /// deleted; `false` when it was already gone or is someone else's now.
    pub async fn release(&self, lock: &HostLock) -> Result<bool, K8sError> {
        let name = lock.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lock.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(false),
            Err(e) => Err(self.error(format!("release HostLock {name}"), e)),
        }
    }

    /// Deletes the lock on `name` whoever holds it (needs the `break` permission, which the
    /// admission policy checks). Returns the lock that was broken, `None` if there was none.
    pub async fn break_lock(&self, name: &str) -> Result<Option<HostLock>, K8sError> {
        let Some(lock) = self.get(name).await? else {
            return Ok(None);
        };
        Ok(self.release(&lock).await?.then_some(lock))
    }

    /// The lock on the Host `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<HostLock>, K8sError> {
        self.api
            .get_opt(name)
            .await
            .map_err(|e| self.error(format!("read HostLock {name}"), e))
    }

    /// Every lock matching the label `selector` (kubectl syntax; empty for all).
    pub async fn list(&self, selector: &str) -> Result<Vec<HostLock>, K8sError> {
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        list_all(&self.api, params, "HostLocks")
            .await
            .map_err(|e| match e {
                K8sError::Api { source, .. } if is_status(&source, 404) => K8sError::NotInstalled {
                    action: "list HostLocks".into(),
                    namespace: self.namespace.clone(),
                    detail: "the hostlocks.hostledger.dev CRD is not installed".into(),
                },
                other => other,
            })
    }

    /// One pass of the sweeper: releases the locks `tracker` finds expired (only if still
    /// unchanged) and the locks of Hosts that are retired or gone. Returns what it released.
    pub async fn sweep(
        &self,
        tracker: &mut ExpiryTracker,
        now: Instant,
    ) -> Result<Sweep, K8sError> {
        let locks = self.list("").await?;
        let expired = tracker.observe(&locks, now);
        let mut released = Vec::new();
        for Expired {
            name,
            uid,
            resource_version,
            unchanged_for,
        } in expired
        {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: Some(resource_version),
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&name, &params).await {
                Ok(_) => {
                    if let Some(lock) = locks
                        .iter()
                        .find(|l| l.metadata.name.as_ref() == Some(&name))
                    {
                        released.push((lock.clone(), SweepReason::Expired(unchanged_for)));
                    }
                }
                // Renewed or released in the meantime.
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => return Err(self.error(format!("release expired HostLock {name}"), e)),
            }
        }
        for lock in &locks {
            let name = lock.metadata.name.clone().unwrap_or_default();
            if released
                .iter()
                .any(|(l, _)| l.metadata.name.as_ref() == Some(&name))
            {
                continue;
            }
            let host = self
                .hosts
                .get_opt(&name)
                .await
                .map_err(|e| self.error(format!("read Host {name}"), e))?;
            let reason = match host {
                None => SweepReason::HostGone,
                Some(h)
                    if h.status
                        .as_ref()
                        .is_some_and(|s| s.state.lifecycle == Lifecycle::Retired) =>
                {
                    SweepReason::HostRetired
                }
                Some(_) => continue,
            };
            if self.release(lock).await? {
                released.push((lock.clone(), reason));
            }
        }
        let held = locks
            .into_iter()
            .filter(|l| {
                !released
                    .iter()
                    .any(|(r, _)| r.metadata.name == l.metadata.name)
            })
            .collect();
        Ok(Sweep { released, held })
    }

    /// The Hosts that carry a lock mark now.
    pub async fn marked_hosts(&self) -> Result<Marks, K8sError> {
        let hosts = list_all(
            &self.hosts,
            ListParams::default().labels(LOCKED_LABEL),
            "locked Hosts",
        )
        .await?;
        Ok(hosts
            .into_iter()
            .filter_map(|h| {
                let mark = LockMark::on(
                    h.metadata.labels.as_ref()?,
                    h.metadata
                        .annotations
                        .as_ref()
                        .unwrap_or(&Default::default()),
                )?;
                Some((h.metadata.name?, mark))
            })
            .collect())
    }

    /// Brings the marks on Hosts in line with the locks `held`: marks newly locked Hosts,
    /// updates changed marks, clears the marks of Hosts no longer locked. Returns how many
    /// Hosts it wrote. A Host that does not exist is left alone (never created).
    pub async fn reconcile_marks(
        &self,
        held: &[HostLock],
        marks: &mut Marks,
    ) -> Result<usize, K8sError> {
        let desired: Marks = held
            .iter()
            .filter_map(|l| Some((l.metadata.name.clone()?, LockMark::of(l))))
            .collect();
        let params = PatchParams {
            field_manager: Some(MARK_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let mut writes = 0;
        for (name, mark) in &desired {
            if marks.get(name) == Some(mark) {
                continue;
            }
            let text = serde_json::to_string(mark).unwrap_or_default();
            let patch = json!({"metadata": {
                "labels": {LOCKED_LABEL: "true"},
                "annotations": {LOCK_ANNOTATION: text},
            }});
            match self.hosts.patch(name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(self.error(format!("mark Host {name} locked"), e)),
            }
            writes += 1;
            marks.insert(name.clone(), mark.clone());
        }
        let stale: Vec<String> = marks
            .keys()
            .filter(|n| !desired.contains_key(*n))
            .cloned()
            .collect();
        for name in stale {
            let patch = json!({"metadata": {
                "labels": {LOCKED_LABEL: null},
                "annotations": {LOCK_ANNOTATION: null},
            }});
            match self
                .hosts
                .patch(&name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(self.error(format!("clear the lock mark of Host {name}"), e)),
            }
            writes += 1;
            marks.remove(&name);
        }
        Ok(writes)
    }
}

/// The authenticated user name of `client`, as the API server sees it (a SelfSubjectReview).
pub async fn whoami(client: &Client) -> Result<String, K8sError> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| K8sError::api("ask the API server who this is (SelfSubjectReview)", e))?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| K8sError::Unreadable {
            action: "ask the API server who this is (SelfSubjectReview)".into(),
            reason: "the answer has no user name (an anonymous request?)".into(),
        })
}

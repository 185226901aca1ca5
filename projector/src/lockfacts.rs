//! Lock facts: the projector records every host lock that begins and ends as a
//! `HostLockEvent` on the host events topic (key: the host id), so the log knows when each
//! host was locked, and the fold can tell planned downtime (out of service while locked)
//! from unplanned.
//!
//! The recorder rides on the lock sweeper's pass (once a second): the locks it lists are the
//! locks held now. A lock seen for the first time is published as `HostLocked` (dated by the
//! API server's creation time); a lock no longer there as `HostUnlocked` (dated when it was
//! found gone, with `Expired`/`HostRetired` when this replica's sweeper released it).
//!
//! On start, the recorder takes the locks the log says are held (each Host's `status.lock`)
//! as already recorded; those gone meanwhile are recorded as ended `Unobserved`. Several
//! replicas record the same facts under the same event ids; the fold keeps the first (a
//! lock already held, or an unlock of a lock not held, changes nothing). A fact is marked
//! recorded only once the broker has acknowledged it, so a broker outage delays facts and
//! loses none of those it saw.

use std::collections::HashMap;
use std::time::Duration;

use hostledger_k8s::locks::{Sweep, SweepReason};
use hostledger_kafka::{ErrorClass, KafkaError, Producer};
use hostledger_model::{Host, HostLock};
use hostledger_schemas::{LockEnd, LockEvent, LockEventKind, Timestamp, encode_lock};
use kube::api::{Api, ListParams};
use rdkafka::producer::FutureRecord;

/// What the recorder knows of one lock whose `HostLocked` is in the log.
#[derive(Debug, Clone)]
struct Recorded {
    host_id: String,
    holder: String,
    user: String,
    reason: String,
    ttl_seconds: i64,
    /// Seen held by this process (not only read from a Host's status at start).
    seen: bool,
}

impl Recorded {
    fn of(lock: &HostLock) -> Self {
        Recorded {
            host_id: lock.spec.host_id.clone(),
            holder: lock.spec.holder.clone(),
            user: lock.spec.user.clone(),
            reason: lock.spec.reason.clone(),
            ttl_seconds: lock.spec.ttl_seconds,
            seen: true,
        }
    }
}

/// Records lock facts from the sweeper's passes.
pub struct LockRecorder {
    producer: Producer,
    topic: String,
    source: String,
    /// Lock id (HostLock uid) → what was recorded; `None` until the first pass loaded it.
    recorded: Option<HashMap<String, Recorded>>,
}

impl LockRecorder {
    /// A recorder publishing to `topic` as `source`.
    pub fn new(producer: Producer, topic: String, source: String) -> Self {
        LockRecorder {
            producer,
            topic,
            source,
            recorded: None,
        }
    }

    /// Publishes the facts of one sweeper pass. `hosts` reads the Hosts' `status.lock` on
    /// the first pass. Facts that cannot be published now are tried again on the next pass.
    pub async fn record(&mut self, hosts: &Api<Host>, sweep: &Sweep) -> Result<(), String> {
        if self.recorded.is_none() {
            self.recorded = Some(held_in_log(hosts).await?);
        }
        let now = Timestamp::from(chrono::Utc::now());
        let mut facts: Vec<(String, LockEvent)> = Vec::new();
        let recorded = self.recorded.as_ref().expect("loaded above");
        let held: HashMap<&str, &HostLock> = sweep
            .held
            .iter()
            .filter_map(|l| Some((l.metadata.uid.as_deref()?, l)))
            .collect();
        for (uid, lock) in &held {
            if !recorded.contains_key(*uid) {
                let at = lock.acquired_at().unwrap_or(now);
                facts.push((
                    uid.to_string(),
                    self.fact(
                        uid,
                        &Recorded::of(lock),
                        LockEventKind::HostLocked,
                        at,
                        None,
                    ),
                ));
            }
        }
        for (uid, r) in recorded {
            if held.contains_key(uid.as_str()) {
                continue;
            }
            let swept = sweep
                .released
                .iter()
                .find(|(l, _)| l.metadata.uid.as_deref() == Some(uid.as_str()));
            let ended = match swept.map(|(_, why)| why) {
                Some(SweepReason::Expired(_)) => LockEnd::Expired,
                Some(SweepReason::HostRetired | SweepReason::HostGone) => LockEnd::HostRetired,
                None if r.seen => LockEnd::Released,
                None => LockEnd::Unobserved,
            };
            facts.push((
                uid.clone(),
                self.fact(uid, r, LockEventKind::HostUnlocked, now, Some(ended)),
            ));
        }
        for (uid, fact) in facts {
            self.publish(&fact).await.map_err(|e| e.to_string())?;
            let recorded = self.recorded.as_mut().expect("loaded above");
            match fact.kind {
                LockEventKind::HostLocked => {
                    if let Some(lock) = held.get(uid.as_str()) {
                        recorded.insert(uid, Recorded::of(lock));
                    }
                }
                LockEventKind::HostUnlocked => {
                    recorded.remove(&uid);
                }
            }
            tracing::info!(host_id = %fact.host_id, lock = %fact.lock_id, holder = %fact.holder, "recorded {} in the log", fact.kind);
        }
        // Locks held since before this process, already in the log: seen now.
        if let Some(recorded) = self.recorded.as_mut() {
            for (uid, r) in recorded.iter_mut() {
                if held.contains_key(uid.as_str()) {
                    r.seen = true;
                }
            }
        }
        Ok(())
    }

    fn fact(
        &self,
        uid: &str,
        r: &Recorded,
        kind: LockEventKind,
        at: Timestamp,
        ended: Option<LockEnd>,
    ) -> LockEvent {
        LockEvent {
            event_id: LockEvent::id_for(uid, kind),
            host_id: r.host_id.clone(),
            kind,
            lock_id: uid.to_owned(),
            at,
            holder: r.holder.clone(),
            user: r.user.clone(),
            reason: r.reason.clone(),
            ttl_seconds: r.ttl_seconds,
            ended,
            source: self.source.clone(),
        }
    }

    async fn publish(&self, fact: &LockEvent) -> Result<(), KafkaError> {
        let payload = encode_lock(fact).map_err(|e| KafkaError::Config(e.to_string()))?;
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.topic)
            .key(fact.host_id.as_str())
            .payload(payload.as_slice());
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => Ok(()),
            Err((error, _)) => {
                if hostledger_kafka::classify(&error) == ErrorClass::Transient {
                    tracing::debug!(%error, "a lock fact waits for the broker");
                }
                Err(KafkaError::client(
                    format!("record {} of {} in {}", fact.kind, fact.host_id, self.topic),
                    error,
                ))
            }
        }
    }
}

/// The locks the log says are held: each Host's `status.lock`, by lock id.
async fn held_in_log(hosts: &Api<Host>) -> Result<HashMap<String, Recorded>, String> {
    // Paged: the namespace may hold a whole fleet.
    let list = hostledger_k8s::list_all(hosts, ListParams::default(), "Hosts")
        .await
        .map_err(|e| format!("list Hosts to find the locks the log holds: {e}"))?;
    Ok(list
        .into_iter()
        .filter_map(|h| {
            let status = h.status?;
            let lock = status.lock?;
            Some((
                lock.id,
                Recorded {
                    host_id: status.host_id,
                    holder: lock.holder,
                    user: lock.user,
                    reason: lock.reason,
                    ttl_seconds: 0,
                    seen: false,
                },
            ))
        })
        .collect())
}

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

/// Longest wait for the broker to confirm one fact.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);

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
    /// Lock id → how it ended, for locks this replica's sweeper released.
    ended: HashMap<String, LockEnd>,
}

impl LockRecorder {
    /// A recorder publishing to `topic` as `source`.
    pub fn new(producer: Producer, topic: String, source: String) -> Self {
        LockRecorder {
            producer,
            topic,
            source,
            recorded: None,
            ended: HashMap::new(),
        }
    }

    /// Publishes through `producer` from now on (made with a renewed certificate).
    pub fn reconnect(&mut self, producer: Producer) {
        self.producer = producer;
    }

    /// Publishes the facts of one sweeper pass. `hosts` reads the Hosts' `status.lock` on
    /// the first pass. Facts that cannot be published now are tried again on the next pass.
    pub async fn record(&mut self, hosts: &Api<Host>, sweep: &Sweep) -> Result<(), String> {
        if self.recorded.is_none() {
            self.recorded = Some(held_in_log(hosts).await?);
        }
        // Why the sweeper released what it did, kept until the fact is in the log.
        for (lock, why) in &sweep.released {
            if let Some(uid) = &lock.metadata.uid {
                let end = match why {
                    SweepReason::Expired(_) => LockEnd::Expired,
                    SweepReason::HostRetired | SweepReason::HostGone => LockEnd::HostRetired,
                };
                self.ended.insert(uid.clone(), end);
            }
        }
        let now = Timestamp::from(chrono::Utc::now());
        let facts = self.plan(&sweep.held, now);
        for fact in facts {
            self.publish(&fact).await.map_err(|e| e.to_string())?;
            let recorded = self.recorded.as_mut().expect("loaded above");
            match fact.kind {
                LockEventKind::HostLocked => {
                    if let Some(lock) = sweep
                        .held
                        .iter()
                        .find(|l| l.metadata.uid.as_deref() == Some(fact.lock_id.as_str()))
                    {
                        recorded.insert(fact.lock_id.clone(), Recorded::of(lock));
                    }
                }
                LockEventKind::HostUnlocked => {
                    recorded.remove(&fact.lock_id);
                    self.ended.remove(&fact.lock_id);
                }
            }
            tracing::info!(host_id = %fact.host_id, lock = %fact.lock_id, holder = %fact.holder, "recorded {} in the log", fact.kind);
        }
        // Locks held since before this process, already in the log: seen now.
        if let Some(recorded) = self.recorded.as_mut() {
            for (uid, r) in recorded.iter_mut() {
                if sweep
                    .held
                    .iter()
                    .any(|l| l.metadata.uid.as_deref() == Some(uid.as_str()))
                {
                    r.seen = true;
                }
            }
        }
        Ok(())
    }

    /// The facts that bring the log in line with the locks `held` now, in the order to
    /// publish them: the locks that ended first, then those taken, so that a host released
    /// and locked again between two passes ends its old lock in the log before it takes the
    /// new one. Pure.
    fn plan(&self, held: &[HostLock], now: Timestamp) -> Vec<LockEvent> {
        let empty = HashMap::new();
        let recorded = self.recorded.as_ref().unwrap_or(&empty);
        let held: HashMap<&str, &HostLock> = held
            .iter()
            .filter_map(|l| Some((l.metadata.uid.as_deref()?, l)))
            .collect();
        let mut facts = Vec::new();
        for (uid, r) in recorded {
            if held.contains_key(uid.as_str()) {
                continue;
            }
            let ended = match self.ended.get(uid) {
                Some(end) => *end,
                None if r.seen => LockEnd::Released,
                None => LockEnd::Unobserved,
            };
            facts.push(self.fact(uid, r, LockEventKind::HostUnlocked, now, Some(ended)));
        }
        for (uid, lock) in &held {
            if !recorded.contains_key(*uid) {
                let at = lock.acquired_at().unwrap_or(now);
                facts.push(self.fact(
                    uid,
                    &Recorded::of(lock),
                    LockEventKind::HostLocked,
                    at,
                    None,
                ));
            }
        }
        facts
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
        // Bounded, so that a broker outage does not hold up the sweeper (expiry, marks). A
        // fact not confirmed in time is sent again on the next pass; a copy that arrives
        // late is the same fact under the same event id, which the fold folds once.
        let sent = tokio::time::timeout(
            PUBLISH_WAIT,
            self.producer.send(record, Duration::from_secs(0)),
        )
        .await
        .map_err(|_| {
            KafkaError::Config(format!(
                "the broker did not confirm {} of {} within {PUBLISH_WAIT:?}",
                fact.kind, fact.host_id
            ))
        })?;
        match sent {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn lock(name: &str, uid: &str) -> HostLock {
        let mut l = HostLock::request(
            name,
            &format!("dc/pdx1/{name}"),
            BTreeMap::new(),
            "ansible-42",
            "bob",
            "reboot",
            Duration::from_secs(60),
        );
        l.metadata.uid = Some(uid.to_owned());
        l
    }

    fn recorder() -> LockRecorder {
        let producer = hostledger_kafka::KafkaClients::new(
            hostledger_kafka::KafkaSettings::plaintext("127.0.0.1:1"),
        )
        .expect("settings")
        .producer(None)
        .expect("a producer (it connects lazily)");
        LockRecorder::new(producer, "events".into(), "projector/test".into())
    }

    #[test]
    fn a_host_released_and_locked_again_ends_its_old_lock_first() {
        let mut r = recorder();
        let now = Timestamp::from(chrono::Utc::now());
        r.recorded = Some(HashMap::from([(
            "old".to_owned(),
            Recorded::of(&lock("a", "old")),
        )]));
        let facts = r.plan(&[lock("a", "new")], now);
        let order: Vec<_> = facts.iter().map(|f| (f.kind, f.lock_id.as_str())).collect();
        assert_eq!(
            order,
            [
                (LockEventKind::HostUnlocked, "old"),
                (LockEventKind::HostLocked, "new")
            ]
        );
        assert_eq!(facts[0].ended, Some(LockEnd::Released));
        assert_eq!(facts[1].event_id, "lock/new/locked");
    }

    #[test]
    fn how_a_lock_ended_is_kept_until_it_is_recorded() {
        let mut r = recorder();
        let now = Timestamp::from(chrono::Utc::now());
        let mut from_log = Recorded::of(&lock("a", "l1"));
        from_log.seen = false;
        r.recorded = Some(HashMap::from([
            ("l1".to_owned(), from_log),
            ("l2".to_owned(), Recorded::of(&lock("b", "l2"))),
        ]));
        r.ended.insert("l2".into(), LockEnd::Expired);
        let mut facts = r.plan(&[], now);
        facts.sort_by(|a, b| a.lock_id.cmp(&b.lock_id));
        // Known only from the log and gone: it ended while nobody watched.
        assert_eq!(facts[0].ended, Some(LockEnd::Unobserved));
        assert_eq!(facts[1].ended, Some(LockEnd::Expired));
        // Nothing to do when the log and the locks agree.
        r.recorded = Some(HashMap::from([(
            "l3".to_owned(),
            Recorded::of(&lock("c", "l3")),
        )]));
        assert!(r.plan(&[lock("c", "l3")], now).is_empty());
    }
}

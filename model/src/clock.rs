//! Time in service without the rest of the record: what a host's uptime and downtime at any
//! time follow from, between two of its facts. The history server keeps one per entry, so
//! the fleet's uptime as of a past time is a lookup per host instead of a fold of its
//! history (docs/design/history.md).

use std::collections::BTreeMap;

use hostledger_schemas::{Lifecycle, Timestamp};
use serde::{Deserialize, Serialize};

use crate::fold::{Downtime, HostRecord};

/// A record's clock: its phase, when it was first seen, its closed time in service and
/// downtime, and the open stretch, counted up to any later time until its next fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceClock {
    /// Lifecycle phase.
    pub phase: Lifecycle,
    /// First time any event was observed.
    pub first_seen_at: Timestamp,
    /// Start of the current service interval, if in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_service_since: Option<Timestamp>,
    /// Sum of all closed service intervals, in microseconds.
    pub closed_in_service_micros: i64,
    /// Downtime up to `downtime.since`.
    pub downtime: Downtime,
    /// Whether a lock is held (downtime while locked is planned).
    #[serde(default)]
    pub locked: bool,
}

impl ServiceClock {
    /// Total time in service up to `now`, in microseconds: closed intervals plus the open one
    /// (counted up to `now`, never negative).
    pub fn in_service_micros_at(&self, now: Timestamp) -> i64 {
        self.closed_in_service_micros
            + self
                .in_service_since
                .map_or(0, |since| now.micros_since(since))
    }

    /// Planned and unplanned downtime up to `now`, in microseconds: closed stretches plus the
    /// current one (counted up to `now`, never negative).
    pub fn downtime_micros_at(&self, now: Timestamp) -> (i64, i64) {
        let d = self.downtime;
        let open = now.micros_since(d.since);
        let down = matches!(self.phase, Lifecycle::OutOfService | Lifecycle::Missing);
        match (down, self.locked) {
            (true, true) => (d.planned_micros + open, d.unplanned_micros),
            (true, false) => (d.planned_micros, d.unplanned_micros + open),
            (false, _) => (d.planned_micros, d.unplanned_micros),
        }
    }
}

/// What uptime reports a host as, groups and selects it by (besides its phase): its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostNames {
    /// Stable host id.
    pub host_id: String,
    /// Host name as the provider knows it.
    pub hostname: String,
    /// Provider kind.
    pub provider: String,
    /// Region or site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl HostNames {
    /// The names of `record`.
    pub fn of(record: &HostRecord) -> Self {
        HostNames {
            host_id: record.host_id.clone(),
            hostname: record.state.name.clone(),
            provider: record.provider.clone(),
            region: record.state.region.clone(),
            role: record.state.role.clone(),
            team: record.state.team.clone(),
        }
    }

    /// Whether `record` has these names.
    pub fn are_of(&self, record: &HostRecord) -> bool {
        self.host_id == record.host_id
            && self.hostname == record.state.name
            && self.provider == record.provider
            && self.region == record.state.region
            && self.role == record.state.role
            && self.team == record.state.team
    }
}

/// One host's names and clock: its time-in-service state after one fact, in a few hundred
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePoint {
    /// The names.
    #[serde(flatten)]
    pub names: HostNames,
    /// The clock.
    #[serde(flatten)]
    pub clock: ServiceClock,
}

impl ServicePoint {
    /// The point of `record`.
    pub fn of(record: &HostRecord) -> Self {
        ServicePoint {
            names: HostNames::of(record),
            clock: record.clock(),
        }
    }

    /// The labels the projector would give the host in this state.
    pub fn labels(&self) -> BTreeMap<String, String> {
        crate::names::derived_labels(
            &self.names.provider,
            self.clock.phase,
            self.names.region.as_deref(),
            self.names.role.as_deref(),
            self.names.team.as_deref(),
        )
    }
}

/// Bytes of [`ServiceClock::to_bytes`].
pub const CLOCK_BYTES: usize = 50;

impl ServiceClock {
    /// A fixed-size binary form (50 bytes, little-endian), for indexes that keep one per
    /// event.
    pub fn to_bytes(&self) -> [u8; CLOCK_BYTES] {
        let mut out = [0u8; CLOCK_BYTES];
        out[0] = Lifecycle::ALL
            .iter()
            .position(|p| *p == self.phase)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(u8::MAX);
        out[1] = u8::from(self.locked);
        let numbers = [
            self.first_seen_at.0,
            self.in_service_since.map_or(i64::MIN, |t| t.0),
            self.closed_in_service_micros,
            self.downtime.planned_micros,
            self.downtime.unplanned_micros,
            self.downtime.since.0,
        ];
        for (i, n) in numbers.iter().enumerate() {
            out[2 + i * 8..10 + i * 8].copy_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// Reads [`ServiceClock::to_bytes`]; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != CLOCK_BYTES || bytes[1] > 1 {
            return None;
        }
        let phase = *Lifecycle::ALL.get(usize::from(bytes[0]))?;
        let n = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[2 + i * 8..10 + i * 8]);
            i64::from_le_bytes(b)
        };
        Some(ServiceClock {
            phase,
            first_seen_at: Timestamp(n(0)),
            in_service_since: (n(1) != i64::MIN).then(|| Timestamp(n(1))),
            closed_in_service_micros: n(2),
            downtime: Downtime {
                planned_micros: n(3),
                unplanned_micros: n(4),
                since: Timestamp(n(5)),
            },
            locked: bytes[1] == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::EventBuilder;
    use crate::fold::{Position, apply};
    use crate::names::labels;

    #[test]
    fn a_point_counts_like_its_record_and_has_its_labels() {
        let mut record = None;
        let hour = 3_600_000_000;
        let phases = [
            Lifecycle::InService,
            Lifecycle::OutOfService,
            Lifecycle::InService,
        ];
        for (i, phase) in phases.into_iter().enumerate() {
            let event = EventBuilder::new("dc/pdx1/A1")
                .id(format!("e{i}"))
                .name("web-1")
                .lifecycle(phase)
                .at(Timestamp(i as i64 * hour))
                .build();
            apply(
                &mut record,
                &event,
                Position {
                    partition: 0,
                    offset: i as i64,
                },
            );
            let r = record.as_ref().expect("folded");
            let point = ServicePoint::of(r);
            // Through the JSON the history server answers with.
            let point: ServicePoint =
                serde_json::from_value(serde_json::to_value(&point).expect("serializes"))
                    .expect("parses");
            for later in [0, 1, 5] {
                let at = Timestamp(i as i64 * hour + later * hour);
                assert_eq!(
                    point.clock.in_service_micros_at(at),
                    r.in_service_micros_at(at)
                );
                assert_eq!(point.clock.downtime_micros_at(at), r.downtime_micros_at(at));
            }
            assert_eq!(point.labels(), labels(r));
            assert!(point.names.are_of(r));
            assert_eq!(
                ServiceClock::from_bytes(&point.clock.to_bytes()),
                Some(point.clock)
            );
        }
    }

    #[test]
    fn clock_bytes_round_trip_and_refuse_other_bytes() {
        for phase in Lifecycle::ALL {
            for (since, locked) in [(None, false), (Some(Timestamp(-5)), true)] {
                let clock = ServiceClock {
                    phase,
                    first_seen_at: Timestamp(1_767_225_600_000_000),
                    in_service_since: since,
                    closed_in_service_micros: i64::MAX,
                    downtime: Downtime {
                        planned_micros: 1,
                        unplanned_micros: 2,
                        since: Timestamp(3),
                    },
                    locked,
                };
                assert_eq!(ServiceClock::from_bytes(&clock.to_bytes()), Some(clock));
            }
        }
        assert_eq!(ServiceClock::from_bytes(&[0; 49]), None);
        let mut bad = [0u8; CLOCK_BYTES];
        bad[0] = 200;
        assert_eq!(ServiceClock::from_bytes(&bad), None);
    }
}

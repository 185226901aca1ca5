//! Time in service: per host (first seen, in service since, total, share of its life) and
//! per group (provider, region, role, team) with totals. Pure: given host records and a time.

use std::collections::BTreeMap;

use hostledger_model::{HostRecord, ServicePoint};
use hostledger_schemas::{Lifecycle, Timestamp};
use serde::Serialize;

use crate::table::{aligned, csv};
use hostledger_model::time::{exact_time, human_duration, short_time};

/// One host's time in service as of some time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UptimeRow {
    /// Stable host id.
    pub host_id: String,
    /// Host name as the provider knows it.
    pub hostname: String,
    /// Provider kind.
    pub provider: String,
    /// Region or site.
    pub region: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Owning team.
    pub team: Option<String>,
    /// Lifecycle phase at that time.
    pub phase: String,
    /// First observation (RFC 3339).
    pub first_seen_at: String,
    /// Start of the current service interval, if in service (RFC 3339).
    pub in_service_since: Option<String>,
    /// Total time in service, in seconds (microsecond precision).
    pub in_service_seconds: f64,
    /// Time since first seen, in seconds.
    pub lifetime_seconds: f64,
    /// Share of its lifetime spent in service, 0–1.
    pub in_service_share: f64,
    /// Time out of service (OutOfService or Missing) while locked for an operation, in
    /// seconds.
    pub planned_downtime_seconds: f64,
    /// Time out of service without a lock, in seconds.
    pub unplanned_downtime_seconds: f64,
    #[serde(skip)]
    in_service_micros: i64,
    #[serde(skip)]
    lifetime_micros: i64,
    #[serde(skip)]
    planned_micros: i64,
    #[serde(skip)]
    unplanned_micros: i64,
    #[serde(skip)]
    first_seen: Timestamp,
    #[serde(skip)]
    since: Option<Timestamp>,
    #[serde(skip)]
    labels: BTreeMap<String, String>,
}

/// A downtime for the table: `-` when there was none.
fn down(micros: i64) -> String {
    if micros > 0 {
        human_duration(micros)
    } else {
        "-".into()
    }
}

fn share(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

impl UptimeRow {
    /// The row of `record` as of `at`.
    pub fn new(record: &HostRecord, at: Timestamp) -> Self {
        Self::of_point(&ServicePoint::of(record), at)
    }

    /// The row of a host whose last fact up to `at` left it at `point`.
    pub fn of_point(point: &ServicePoint, at: Timestamp) -> Self {
        let clock = &point.clock;
        let in_service = clock.in_service_micros_at(at);
        let lifetime = at.micros_since(clock.first_seen_at);
        let (planned, unplanned) = clock.downtime_micros_at(at);
        UptimeRow {
            host_id: point.names.host_id.clone(),
            hostname: point.names.hostname.clone(),
            provider: point.names.provider.clone(),
            region: point.names.region.clone(),
            role: point.names.role.clone(),
            team: point.names.team.clone(),
            phase: clock.phase.to_string(),
            first_seen_at: exact_time(clock.first_seen_at),
            in_service_since: clock.in_service_since.map(exact_time),
            in_service_seconds: in_service as f64 / 1e6,
            lifetime_seconds: lifetime as f64 / 1e6,
            in_service_share: share(in_service, lifetime),
            planned_downtime_seconds: planned as f64 / 1e6,
            unplanned_downtime_seconds: unplanned as f64 / 1e6,
            in_service_micros: in_service,
            lifetime_micros: lifetime,
            planned_micros: planned,
            unplanned_micros: unplanned,
            first_seen: clock.first_seen_at,
            since: clock.in_service_since,
            labels: BTreeMap::new(),
        }
    }

    /// The same row, with the host's labels (for grouping by `label:KEY`).
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    fn group_value(&self, by: &GroupBy) -> String {
        match by {
            GroupBy::Provider => Some(self.provider.clone()),
            GroupBy::Region => self.region.clone(),
            GroupBy::Role => self.role.clone(),
            GroupBy::Team => self.team.clone(),
            GroupBy::Label(k) => self.labels.get(k).cloned(),
        }
        .unwrap_or_else(|| "(none)".into())
    }
}

/// What to group by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Provider kind.
    Provider,
    /// Region or site.
    Region,
    /// Role.
    Role,
    /// Team.
    Team,
    /// The value of a label of the host (`label:rack`): any label of the Host object, or,
    /// read from the log, the labels the projector derives.
    Label(String),
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "provider" => GroupBy::Provider,
            "region" => GroupBy::Region,
            "role" => GroupBy::Role,
            "team" => GroupBy::Team,
            other => match other.split_once(':') {
                Some(("label", key)) if !key.is_empty() => GroupBy::Label(key.to_owned()),
                _ => {
                    return Err(format!(
                        "{other:?} is not a grouping: use provider, region, role, team or label:KEY"
                    ));
                }
            },
        })
    }
}

impl GroupBy {
    fn header(&self) -> String {
        match self {
            GroupBy::Provider => "PROVIDER".into(),
            GroupBy::Region => "REGION".into(),
            GroupBy::Role => "ROLE".into(),
            GroupBy::Team => "TEAM".into(),
            GroupBy::Label(k) => k.to_uppercase(),
        }
    }

    fn key(&self) -> String {
        match self {
            GroupBy::Provider => "provider".into(),
            GroupBy::Region => "region".into(),
            GroupBy::Role => "role".into(),
            GroupBy::Team => "team".into(),
            GroupBy::Label(k) => format!("label:{k}"),
        }
    }
}

/// Totals of a group of hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRow {
    /// The group's value (`(none)` for hosts without one); `TOTAL` for all.
    pub group: String,
    /// Hosts in the group.
    pub hosts: u64,
    /// Of those, in service at the time.
    pub in_service: u64,
    /// Sum of their time in service, in seconds.
    pub in_service_seconds: f64,
    /// Sum of their lifetimes, in seconds.
    pub lifetime_seconds: f64,
    /// Time in service over lifetime, 0–1.
    pub in_service_share: f64,
    /// Sum of their planned downtime (out of service while locked), in seconds.
    pub planned_downtime_seconds: f64,
    /// Sum of their unplanned downtime, in seconds.
    pub unplanned_downtime_seconds: f64,
    #[serde(skip)]
    in_service_micros: i64,
    #[serde(skip)]
    lifetime_micros: i64,
    #[serde(skip)]
    planned_micros: i64,
    #[serde(skip)]
    unplanned_micros: i64,
}

impl GroupRow {
    fn new(group: String) -> Self {
        GroupRow {
            group,
            hosts: 0,
            in_service: 0,
            in_service_seconds: 0.0,
            lifetime_seconds: 0.0,
            in_service_share: 0.0,
            planned_downtime_seconds: 0.0,
            unplanned_downtime_seconds: 0.0,
            in_service_micros: 0,
            lifetime_micros: 0,
            planned_micros: 0,
            unplanned_micros: 0,
        }
    }

    fn add(&mut self, row: &UptimeRow) {
        self.hosts += 1;
        self.in_service += u64::from(row.phase == Lifecycle::InService.as_str());
        self.in_service_micros += row.in_service_micros;
        self.lifetime_micros += row.lifetime_micros;
        self.in_service_seconds = self.in_service_micros as f64 / 1e6;
        self.lifetime_seconds = self.lifetime_micros as f64 / 1e6;
        self.in_service_share = share(self.in_service_micros, self.lifetime_micros);
        self.planned_micros += row.planned_micros;
        self.unplanned_micros += row.unplanned_micros;
        self.planned_downtime_seconds = self.planned_micros as f64 / 1e6;
        self.unplanned_downtime_seconds = self.unplanned_micros as f64 / 1e6;
    }
}

/// The uptime report: rows per host, optionally grouped, as of one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UptimeReport {
    /// The time the figures are computed at (RFC 3339).
    pub as_of: String,
    /// One row per host, by host id.
    pub hosts: Vec<UptimeRow>,
    /// The grouping, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Per group, by group value, when grouped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRow>,
    /// All hosts together.
    pub total: GroupRow,
    #[serde(skip)]
    group: Option<GroupBy>,
    #[serde(skip)]
    at: Timestamp,
}

impl UptimeReport {
    /// The report over `records` as of `at`.
    pub fn new<'a>(
        records: impl IntoIterator<Item = &'a HostRecord>,
        at: Timestamp,
        group: Option<GroupBy>,
    ) -> Self {
        Self::from_rows(
            records.into_iter().map(|r| UptimeRow::new(r, at)).collect(),
            at,
            group,
        )
    }

    /// The report over `hosts` (rows made with [`UptimeRow::new`], with labels where the
    /// grouping needs them) as of `at`.
    pub fn from_rows(mut hosts: Vec<UptimeRow>, at: Timestamp, group: Option<GroupBy>) -> Self {
        hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        let mut total = GroupRow::new("TOTAL".into());
        let mut groups: BTreeMap<String, GroupRow> = BTreeMap::new();
        for row in &hosts {
            total.add(row);
            if let Some(by) = &group {
                let value = row.group_value(by);
                groups
                    .entry(value.clone())
                    .or_insert_with(|| GroupRow::new(value))
                    .add(row);
            }
        }
        UptimeReport {
            as_of: exact_time(at),
            hosts,
            group_by: group.as_ref().map(GroupBy::key),
            groups: groups.into_values().collect(),
            total,
            group,
            at,
        }
    }

    fn host_cells(&self) -> Vec<Vec<String>> {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        self.hosts
            .iter()
            .map(|r| {
                vec![
                    r.host_id.clone(),
                    r.hostname.clone(),
                    r.provider.clone(),
                    dash(&r.region),
                    dash(&r.role),
                    dash(&r.team),
                    r.phase.clone(),
                    short_time(r.first_seen),
                    r.since.map_or_else(|| "-".into(), short_time),
                    human_duration(r.in_service_micros),
                    format!("{:.1}%", r.in_service_share * 100.0),
                    down(r.planned_micros),
                    down(r.unplanned_micros),
                ]
            })
            .collect()
    }

    fn group_cells(&self, human: bool) -> Vec<Vec<String>> {
        self.groups
            .iter()
            .chain(std::iter::once(&self.total))
            .map(|g| {
                vec![
                    g.group.clone(),
                    g.hosts.to_string(),
                    g.in_service.to_string(),
                    if human {
                        human_duration(g.in_service_micros)
                    } else {
                        format!("{:.6}", g.in_service_seconds)
                    },
                    if human {
                        format!("{:.1}%", g.in_service_share * 100.0)
                    } else {
                        format!("{:.6}", g.in_service_share)
                    },
                    if human {
                        down(g.planned_micros)
                    } else {
                        format!("{:.6}", g.planned_downtime_seconds)
                    },
                    if human {
                        down(g.unplanned_micros)
                    } else {
                        format!("{:.6}", g.unplanned_downtime_seconds)
                    },
                ]
            })
            .collect()
    }

    /// Aligned columns with human durations, and a summary line.
    pub fn table(&self) -> String {
        let mut out = match &self.group {
            None => aligned(
                &[
                    "HOST ID",
                    "HOSTNAME",
                    "PROVIDER",
                    "REGION",
                    "ROLE",
                    "TEAM",
                    "PHASE",
                    "FIRST SEEN",
                    "IN SERVICE SINCE",
                    "IN SERVICE",
                    "SHARE",
                    "PLANNED DOWN",
                    "UNPLANNED DOWN",
                ],
                &self.host_cells(),
            ),
            Some(by) => aligned(
                &[
                    &by.header(),
                    "HOSTS",
                    "IN SERVICE NOW",
                    "TIME IN SERVICE",
                    "SHARE",
                    "PLANNED DOWN",
                    "UNPLANNED DOWN",
                ],
                &self.group_cells(true),
            ),
        };
        out.push_str(&format!(
            "{} hosts as of {} UTC, {} in service; {} in service in all ({:.1}% of their lifetime)\n",
            self.total.hosts,
            short_time(self.at),
            self.total.in_service,
            human_duration(self.total.in_service_micros),
            self.total.in_service_share * 100.0
        ));
        if self.total.planned_micros + self.total.unplanned_micros > 0 {
            out.push_str(&format!(
                "out of service: {} planned (locked for an operation), {} unplanned\n",
                human_duration(self.total.planned_micros),
                human_duration(self.total.unplanned_micros)
            ));
        }
        out
    }

    /// CSV: one line per host, or per group plus a TOTAL line; exact figures.
    pub fn csv(&self) -> String {
        match &self.group {
            None => {
                let rows: Vec<Vec<String>> = self
                    .hosts
                    .iter()
                    .map(|r| {
                        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                        vec![
                            r.host_id.clone(),
                            r.hostname.clone(),
                            r.provider.clone(),
                            opt(&r.region),
                            opt(&r.role),
                            opt(&r.team),
                            r.phase.clone(),
                            r.first_seen_at.clone(),
                            opt(&r.in_service_since),
                            format!("{:.6}", r.in_service_seconds),
                            format!("{:.6}", r.lifetime_seconds),
                            format!("{:.6}", r.in_service_share),
                            format!("{:.6}", r.planned_downtime_seconds),
                            format!("{:.6}", r.unplanned_downtime_seconds),
                        ]
                    })
                    .collect();
                csv(
                    &[
                        "host_id",
                        "hostname",
                        "provider",
                        "region",
                        "role",
                        "team",
                        "phase",
                        "first_seen_at",
                        "in_service_since",
                        "in_service_seconds",
                        "lifetime_seconds",
                        "in_service_share",
                        "planned_downtime_seconds",
                        "unplanned_downtime_seconds",
                    ],
                    &rows,
                )
            }
            Some(by) => csv(
                &[
                    &by.key(),
                    "hosts",
                    "in_service",
                    "in_service_seconds",
                    "in_service_share",
                    "planned_downtime_seconds",
                    "unplanned_downtime_seconds",
                ],
                &self.group_cells(false),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::fixtures::{EventBuilder, HOUR, fold_events};

    fn record(id: &str, role: Option<&str>, life: &[(i64, Lifecycle)]) -> HostRecord {
        let events: Vec<_> = life
            .iter()
            .enumerate()
            .map(|(i, (hour, lifecycle))| {
                EventBuilder::new(id)
                    .id(format!("{id}-{i}"))
                    .name(id)
                    .lifecycle(*lifecycle)
                    .provider_status("x")
                    .at(Timestamp(hour * HOUR))
                    .role(role)
                    .build()
            })
            .collect();
        fold_events(&events)
    }

    #[test]
    fn downtime_is_split_into_planned_and_unplanned_in_every_format() {
        use hostledger_model::Position;
        use hostledger_model::fixtures::lock_event;
        use hostledger_schemas::LockEventKind;
        // Out 2–4 h and 6–7 h; locked 1–5 h: 2 h planned, 1 h unplanned.
        let lock = |kind: LockEventKind, h: i64| lock_event("a", kind, "L", Timestamp(h * HOUR));
        let events = [
            (0, Lifecycle::InService),
            (2, Lifecycle::OutOfService),
            (4, Lifecycle::InService),
            (6, Lifecycle::OutOfService),
            (7, Lifecycle::InService),
        ];
        let mut rec: Option<HostRecord> = None;
        let mut offset = 0;
        let mut pos = || {
            offset += 1;
            Position {
                partition: 0,
                offset,
            }
        };
        for (i, (h, l)) in events.iter().enumerate() {
            if i == 1 {
                hostledger_model::fold::apply_lock(
                    rec.as_mut().expect("record"),
                    &lock(LockEventKind::HostLocked, 1),
                    pos(),
                );
            }
            if i == 3 {
                hostledger_model::fold::apply_lock(
                    rec.as_mut().expect("record"),
                    &lock(LockEventKind::HostUnlocked, 5),
                    pos(),
                );
            }
            let e = EventBuilder::new("a")
                .id(format!("a-{i}"))
                .name("a")
                .lifecycle(*l)
                .provider_status("x")
                .at(Timestamp(h * HOUR))
                .role(Some("db"))
                .build();
            hostledger_model::fold::apply(&mut rec, &e, pos());
        }
        let r = rec.expect("record");
        let report = UptimeReport::new([&r], Timestamp(8 * HOUR), None);
        let row = &report.hosts[0];
        assert_eq!(row.planned_downtime_seconds, 7200.0);
        assert_eq!(row.unplanned_downtime_seconds, 3600.0);
        let table = report.table();
        assert!(table.contains("PLANNED DOWN"), "{table}");
        assert!(
            table.contains(
                "out of service: 2h 0m planned (locked for an operation), 1h 0m unplanned"
            ),
            "{table}"
        );
        let csv = report.csv();
        assert!(
            csv.lines()
                .next()
                .expect("header")
                .ends_with(",planned_downtime_seconds,unplanned_downtime_seconds"),
            "{csv}"
        );
        assert!(
            csv.lines()
                .nth(1)
                .expect("row")
                .ends_with(",7200.000000,3600.000000"),
            "{csv}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["hosts"][0]["plannedDowntimeSeconds"], 7200.0);
        assert_eq!(json["total"]["unplannedDowntimeSeconds"], 3600.0);
        let grouped = UptimeReport::new([&r], Timestamp(8 * HOUR), Some(GroupBy::Role));
        assert!(
            grouped.csv().contains(",7200.000000,3600.000000"),
            "{}",
            grouped.csv()
        );
    }

    #[test]
    fn per_host_and_per_group_figures() {
        let a = record(
            "a",
            Some("log"),
            &[
                (0, Lifecycle::InService),
                (4, Lifecycle::OutOfService),
                (6, Lifecycle::InService),
            ],
        );
        let b = record(
            "b",
            Some("log"),
            &[(2, Lifecycle::Provisioning), (3, Lifecycle::InService)],
        );
        let c = record("c", None, &[(5, Lifecycle::Retired)]);
        let report = UptimeReport::new([&c, &a, &b], Timestamp(10 * HOUR), Some(GroupBy::Role));
        let ids: Vec<_> = report.hosts.iter().map(|r| r.host_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        // a: 4 h + 4 h of 10 h; b: 7 h of 8 h; c: 0 of 5 h.
        assert_eq!(report.hosts[0].in_service_seconds, 8.0 * 3600.0);
        assert_eq!(report.hosts[0].in_service_share, 0.8);
        assert_eq!(report.hosts[1].in_service_seconds, 7.0 * 3600.0);
        assert_eq!(report.hosts[2].in_service_share, 0.0);
        let groups: Vec<_> = report
            .groups
            .iter()
            .map(|g| {
                (
                    g.group.as_str(),
                    g.hosts,
                    g.in_service,
                    g.in_service_seconds,
                )
            })
            .collect();
        assert_eq!(
            groups,
            [("(none)", 1, 0, 0.0), ("log", 2, 2, 15.0 * 3600.0)]
        );
        assert_eq!(report.total.hosts, 3);
        assert_eq!(report.total.in_service_share, 15.0 / 23.0);
        let table = report.table();
        assert!(table.starts_with("ROLE"), "{table}");
        assert!(table.contains("TOTAL   3"), "{table}");
        assert!(
            table.contains("3 hosts as of 1970-01-01 10:00 UTC, 2 in service"),
            "{table}"
        );
        let csv = report.csv();
        assert!(csv.starts_with("role,hosts,in_service,"), "{csv}");
        assert!(csv.contains("log,2,2,54000.000000,"), "{csv}");
    }

    #[test]
    fn hosts_group_by_any_label() {
        let a = record("a", Some("log"), &[(0, Lifecycle::InService)]);
        let b = record("b", Some("log"), &[(0, Lifecycle::InService)]);
        let c = record("c", Some("db"), &[(5, Lifecycle::InService)]);
        let rack = |r: &str| BTreeMap::from([("rack".to_owned(), r.to_owned())]);
        let rows = vec![
            UptimeRow::new(&a, Timestamp(10 * HOUR)).with_labels(rack("A01")),
            UptimeRow::new(&b, Timestamp(10 * HOUR)).with_labels(rack("A01")),
            UptimeRow::new(&c, Timestamp(10 * HOUR)),
        ];
        let by: GroupBy = "label:rack".parse().expect("a grouping");
        let report = UptimeReport::from_rows(rows, Timestamp(10 * HOUR), Some(by));
        let groups: Vec<_> = report
            .groups
            .iter()
            .map(|g| (g.group.as_str(), g.hosts))
            .collect();
        assert_eq!(groups, [("(none)", 1), ("A01", 2)]);
        assert_eq!(report.group_by.as_deref(), Some("label:rack"));
        assert!(report.table().starts_with("RACK"), "{}", report.table());
        assert!(report.csv().starts_with("label:rack,"), "{}", report.csv());
        assert!("colour".parse::<GroupBy>().is_err());
        assert!("label:".parse::<GroupBy>().is_err());
    }

    #[test]
    fn ungrouped_outputs_list_every_host() {
        let a = record("a", Some("log"), &[(0, Lifecycle::InService)]);
        let report = UptimeReport::new([&a], Timestamp(25 * HOUR), None);
        let table = report.table();
        assert!(table.contains("a        a         dc"), "{table}");
        assert!(table.contains("1d 1h"), "{table}");
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["hosts"][0]["inServiceSeconds"], 25.0 * 3600.0);
        assert_eq!(
            json["hosts"][0]["inServiceSince"],
            "1970-01-01T00:00:00.000000Z"
        );
        assert!(json.get("groups").is_none());
        assert_eq!(report.csv().lines().count(), 2);
    }
}

//! Host groups: the `HostGroup` custom resource (a cluster, a pool, "the log hosts of pdx1"),
//! which Hosts belong to one, the status hostledger keeps for it, and its disruption budget.
//! No I/O.
//!
//! - Members: every Host matching `spec.selector` (kubectl syntax), and every Host named in
//!   `spec.hosts` (object name or host id).
//! - Status: member count, in service, locked, available (in service and not locked), count
//!   by phase, and conditions `BelowMinimum` (fewer in service than `minInService`) and
//!   `Undersized` (fewer members than `expectedSize`), each with its last transition time.
//! - Budget: a lock that would leave fewer than `minInService` members available, or more
//!   than `maxLocked` locked, is refused, with the group's numbers. Hosts already down count
//!   against the budget: they are not available.

use std::collections::BTreeMap;

use hostledger_schemas::{Lifecycle, Timestamp};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::LabelSelector;

/// A group of hosts that matter together, with what is expected of it.
// One `printcolumn(...)` per column is kube-derive's syntax; clippy mistakes the repeated
// keys for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "hostledger.dev",
    version = "v1alpha1",
    kind = "HostGroup",
    plural = "hostgroups",
    shortname = "hg",
    category = "hostledger",
    namespaced,
    status = "HostGroupStatus",
    derive = "PartialEq",
    doc = "A group of Hosts (a cluster, a pool): members by label selector and/or by name, what is expected of it, and a status kept by hostledger.",
    printcolumn(name = "Selector", type_ = "string", json_path = ".spec.selector"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(
        name = "In-Service",
        type_ = "integer",
        json_path = ".status.inService"
    ),
    printcolumn(name = "Locked", type_ = "integer", json_path = ".status.locked"),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minInService"),
    printcolumn(
        name = "Below-Min",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"BelowMinimum\")].status"
    ),
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".spec.owner",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HostGroupSpec {
    /// Members by label, in kubectl's syntax (`role=db,region=pdx1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Members by name: Host object names or host ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The group's region, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// What the group does (`log`, `db`), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who to talk to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How many members it should have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub expected_size: Option<i64>,
    /// Fewest members that must be in service and not locked; a lock that would go below is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_in_service: Option<i64>,
    /// Most members locked at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_locked: Option<i64>,
}

/// A condition in the style of Cluster API's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupCondition {
    /// `BelowMinimum`, `Undersized`, `InvalidSelector`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// Why, in one word.
    pub reason: String,
    /// The numbers behind it.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: Timestamp,
}

/// What hostledger observed of the group. Written by the projector only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostGroupStatus {
    /// Member Hosts.
    pub members: i64,
    /// Members in service.
    pub in_service: i64,
    /// Members someone holds a lock on.
    pub locked: i64,
    /// Members in service and not locked.
    pub available: i64,
    /// Members that are not what their `spec.expected` says.
    #[serde(default)]
    pub drifted: i64,
    /// Members per phase.
    #[serde(default)]
    pub by_phase: BTreeMap<String, i64>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<GroupCondition>,
    /// The spec generation these figures are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What the group logic needs of one Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Host object name.
    pub name: String,
    /// Host id.
    pub host_id: String,
    /// The Host's labels.
    pub labels: BTreeMap<String, String>,
    /// Its phase (`None` before it has a status).
    pub phase: Option<Lifecycle>,
    /// Whether someone holds a lock on it.
    pub locked: bool,
    /// Whether it is not what its `spec.expected` says.
    pub drifted: bool,
}

impl Member {
    /// What `host` is to a group, locked or not.
    pub fn of(host: &crate::Host, locked: bool) -> Self {
        Member {
            name: host.metadata.name.clone().unwrap_or_default(),
            host_id: host
                .status
                .as_ref()
                .map(|s| s.host_id.clone())
                .unwrap_or_default(),
            labels: host.metadata.labels.clone().unwrap_or_default(),
            phase: host.status.as_ref().map(|s| s.state.lifecycle),
            locked,
            drifted: host
                .status
                .as_ref()
                .and_then(|s| s.drift.as_ref())
                .is_some_and(|d| d.drifted),
        }
    }

    fn available(&self) -> bool {
        self.phase == Some(Lifecycle::InService) && !self.locked
    }
}

impl HostGroup {
    /// The parsed selector; `Ok(None)` when the group has none.
    pub fn selector(&self) -> Result<Option<LabelSelector>, String> {
        match self.spec.selector.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => LabelSelector::parse(text)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }

    fn named(&self, host: &Member) -> bool {
        self.spec
            .hosts
            .iter()
            .any(|n| *n == host.name || *n == host.host_id)
    }

    /// Whether `host` belongs to the group (an unparsable selector matches nothing).
    pub fn contains(&self, host: &Member) -> bool {
        let selector = self.selector().ok().flatten();
        self.named(host) || selector.is_some_and(|s| s.matches(&host.labels))
    }

    /// The members among `hosts`.
    pub fn members<'a>(&self, hosts: &'a [Member]) -> Vec<&'a Member> {
        let selector = self.selector().ok().flatten();
        hosts
            .iter()
            .filter(|h| self.named(h) || selector.as_ref().is_some_and(|s| s.matches(&h.labels)))
            .collect()
    }

    /// The status `hosts` give it at `now`; conditions keep their transition time from
    /// `previous` while their status does not change.
    pub fn observe(&self, hosts: &[Member], now: Timestamp) -> HostGroupStatus {
        let members = self.members(hosts);
        let count = |f: &dyn Fn(&Member) -> bool| members.iter().filter(|m| f(m)).count() as i64;
        let in_service = count(&|m| m.phase == Some(Lifecycle::InService));
        let locked = count(&|m| m.locked);
        let available = count(&|m| m.available());
        let drifted = count(&|m| m.drifted);
        let mut by_phase = BTreeMap::new();
        for m in &members {
            let phase = m.phase.map_or("Unknown", |p| p.as_str());
            *by_phase.entry(phase.to_owned()).or_insert(0) += 1;
        }
        let previous = self.status.as_ref();
        let condition = |type_: &str, on: bool, reason: &str, message: String| {
            let status = if on { "True" } else { "False" }.to_owned();
            let since = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .map_or(now, |c| c.last_transition_time);
            GroupCondition {
                type_: type_.to_owned(),
                status,
                reason: reason.to_owned(),
                message,
                last_transition_time: since,
            }
        };
        let mut conditions = Vec::new();
        if let Err(e) = self.selector() {
            conditions.push(condition("InvalidSelector", true, "Unparsable", e));
        }
        if let Some(min) = self.spec.min_in_service {
            let below = in_service < min;
            conditions.push(condition(
                "BelowMinimum",
                below,
                if below {
                    "TooFewInService"
                } else {
                    "AtOrAboveMinimum"
                },
                format!(
                    "{in_service} of {} members in service, minimum {min}",
                    members.len()
                ),
            ));
        }
        if let Some(expected) = self.spec.expected_size {
            let under = (members.len() as i64) < expected;
            conditions.push(condition(
                "Undersized",
                under,
                if under {
                    "TooFewMembers"
                } else {
                    "AtOrAboveExpectedSize"
                },
                format!("{} members, expected {expected}", members.len()),
            ));
        }
        HostGroupStatus {
            members: members.len() as i64,
            in_service,
            locked,
            available,
            drifted,
            by_phase,
            conditions,
            observed_generation: self.metadata.generation,
        }
    }

    /// Which of the locks on members, taken in the order `order` (oldest first, object
    /// names), do not fit the budget: each lock is admitted if the group, with the locks
    /// before it, allows it. A holder that finds its own new lock among them after taking it
    /// backs off: another lock in the group was taken at the same moment, and was first.
    /// Every holder computes the same order, so of two racing for the last place exactly one
    /// keeps it.
    pub fn late_locks(&self, hosts: &[Member], order: &[String]) -> Vec<String> {
        let mut sim: Vec<Member> = self
            .members(hosts)
            .into_iter()
            .map(|m| Member {
                locked: false,
                ..m.clone()
            })
            .collect();
        let mut late = Vec::new();
        for name in order {
            let Some(i) = sim.iter().position(|m| m.name == *name) else {
                continue;
            };
            if self.check_budget(&sim, std::slice::from_ref(name)).is_err() {
                late.push(name.clone());
            }
            sim[i].locked = true;
        }
        late
    }

    /// Whether the members as they are now (locks included) break the budget.
    pub fn over_budget(&self, hosts: &[Member]) -> Option<String> {
        let members = self.members(hosts);
        let name = self.metadata.name.as_deref().unwrap_or("?");
        let locked = members.iter().filter(|m| m.locked).count() as i64;
        let available = members.iter().filter(|m| m.available()).count() as i64;
        if let Some(min) = self.spec.min_in_service
            && available < min
        {
            return Some(format!(
                "group {name} has {available} available, below its minimum of {min}"
            ));
        }
        if let Some(max) = self.spec.max_locked
            && locked > max
        {
            return Some(format!(
                "group {name} has {locked} locked, more than its maxLocked of {max}"
            ));
        }
        None
    }

    /// Whether locking the hosts named `locking` (object names) keeps within the budget,
    /// given the members `hosts` as they are now; the refusal has the group's numbers.
    pub fn check_budget(&self, hosts: &[Member], locking: &[String]) -> Result<(), String> {
        let members = self.members(hosts);
        let name = self.metadata.name.as_deref().unwrap_or("?");
        let newly: Vec<&&Member> = members
            .iter()
            .filter(|m| !m.locked && locking.contains(&m.name))
            .collect();
        if newly.is_empty() {
            return Ok(());
        }
        let locked = members.iter().filter(|m| m.locked).count() as i64;
        let available = members.iter().filter(|m| m.available()).count() as i64;
        let in_service = members
            .iter()
            .filter(|m| m.phase == Some(Lifecycle::InService))
            .count() as i64;
        let taking = newly.iter().filter(|m| m.available()).count() as i64;
        let numbers = format!(
            "{} members: {in_service} in service, {locked} locked, {available} available",
            members.len()
        );
        if let Some(min) = self.spec.min_in_service
            && available - taking < min
        {
            return Err(format!(
                "locking {} would leave group {name} with {} available (in service and not \
                 locked), below its minimum of {min} ({numbers})",
                newly
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                available - taking
            ));
        }
        if let Some(max) = self.spec.max_locked
            && locked + newly.len() as i64 > max
        {
            return Err(format!(
                "locking {} would make {} locked in group {name}, more than its maxLocked of \
                 {max} ({numbers})",
                newly
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                locked + newly.len() as i64
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, phase: Lifecycle, locked: bool) -> Member {
        Member {
            name: name.into(),
            host_id: format!("dc/x/{name}"),
            labels: BTreeMap::from([("role".to_owned(), role.to_owned())]),
            phase: Some(phase),
            locked,
            drifted: false,
        }
    }

    fn group(selector: &str, min: Option<i64>, max_locked: Option<i64>) -> HostGroup {
        let mut g = HostGroup::new(
            "db",
            HostGroupSpec {
                selector: Some(selector.into()),
                min_in_service: min,
                max_locked,
                expected_size: Some(5),
                ..HostGroupSpec::default()
            },
        );
        g.metadata.generation = Some(2);
        g
    }

    fn fleet() -> Vec<Member> {
        vec![
            member("db-0", "db", Lifecycle::InService, false),
            member("db-1", "db", Lifecycle::InService, true),
            member("db-2", "db", Lifecycle::InService, false),
            member("db-3", "db", Lifecycle::InService, false),
            member("db-4", "db", Lifecycle::OutOfService, false),
            member("web-0", "web", Lifecycle::InService, false),
        ]
    }

    #[test]
    fn status_counts_members_by_phase_and_lock() {
        let g = group("role=db", Some(3), None);
        let t = Timestamp(1_000);
        let s = g.observe(&fleet(), t);
        assert_eq!(
            (s.members, s.in_service, s.locked, s.available),
            (5, 4, 1, 3)
        );
        assert_eq!(s.by_phase["InService"], 4);
        assert_eq!(s.by_phase["OutOfService"], 1);
        assert_eq!(s.observed_generation, Some(2));
        let below = &s.conditions[0];
        assert_eq!(
            (below.type_.as_str(), below.status.as_str()),
            ("BelowMinimum", "False")
        );
        assert_eq!(below.message, "4 of 5 members in service, minimum 3");
        assert_eq!(s.conditions[1].status, "False", "5 members, as expected");
    }

    #[test]
    fn conditions_keep_their_transition_time_until_they_change() {
        let mut g = group("role=db", Some(5), None);
        let first = g.observe(&fleet(), Timestamp(1_000));
        assert_eq!(
            first.conditions[0].status, "True",
            "4 in service, minimum 5"
        );
        g.status = Some(first);
        let again = g.observe(&fleet(), Timestamp(2_000));
        assert_eq!(again.conditions[0].last_transition_time, Timestamp(1_000));
        g.status = Some(again);
        let mut healed = fleet();
        healed[4].phase = Some(Lifecycle::InService);
        let now = g.observe(&healed, Timestamp(3_000));
        assert_eq!(now.conditions[0].status, "False");
        assert_eq!(now.conditions[0].last_transition_time, Timestamp(3_000));
    }

    #[test]
    fn members_by_name_and_selector_and_a_bad_selector_selects_nothing() {
        let mut g = group("role=web", None, None);
        g.spec.hosts = vec!["db-4".into(), "dc/x/db-0".into()];
        let names: Vec<_> = g.members(&fleet()).iter().map(|m| m.name.clone()).collect();
        assert_eq!(names, ["db-0", "db-4", "web-0"]);
        let bad = group("role in (db", None, None);
        assert!(bad.members(&fleet()).is_empty());
        let s = bad.observe(&fleet(), Timestamp(0));
        assert_eq!(s.conditions[0].type_, "InvalidSelector");
        assert!(!bad.contains(&fleet()[0]));
    }

    #[test]
    fn a_lock_that_would_break_the_budget_is_refused_with_the_numbers() {
        let g = group("role=db", Some(2), None);
        // 3 available (db-0, db-2, db-3); one may go.
        assert_eq!(g.check_budget(&fleet(), &["db-0".into()]), Ok(()));
        let err = g
            .check_budget(&fleet(), &["db-0".into(), "db-2".into()])
            .unwrap_err();
        assert_eq!(
            err,
            "locking db-0, db-2 would leave group db with 1 available (in service and not \
             locked), below its minimum of 2 (5 members: 4 in service, 1 locked, 3 available)"
        );
        // The host already down does not spend the budget, and counts as unavailable.
        assert_eq!(g.check_budget(&fleet(), &["db-4".into()]), Ok(()));
        // Hosts outside the group, or already locked, do not count.
        assert_eq!(
            g.check_budget(&fleet(), &["web-0".into(), "db-1".into()]),
            Ok(())
        );
        let mut after = fleet();
        after[0].locked = true;
        after[2].locked = true;
        assert_eq!(
            g.over_budget(&after).as_deref(),
            Some("group db has 1 available, below its minimum of 2")
        );
        assert_eq!(g.over_budget(&fleet()), None);
        // db-1 was locked first; of db-0 and db-2, taken together, db-2 came second: late.
        let order = ["db-1".to_owned(), "db-0".to_owned(), "db-2".to_owned()];
        assert_eq!(g.late_locks(&after, &order), ["db-2"]);
        let order = ["db-1".to_owned(), "db-2".to_owned(), "db-0".to_owned()];
        assert_eq!(g.late_locks(&after, &order), ["db-0"]);
        let capped = group("role=db", None, Some(1));
        let err = capped.check_budget(&fleet(), &["db-4".into()]).unwrap_err();
        assert!(
            err.contains("would make 2 locked in group db, more than its maxLocked of 1"),
            "{err}"
        );
    }
}

//! Ansible dynamic inventory: the JSON that `ansible-inventory`/`ansible-playbook -i SCRIPT`
//! read from `SCRIPT --list` and `SCRIPT --host NAME`. Pure: hosts in, JSON out.
//!
//! - Inventory host names are the provider's host names (the Host object's name where two
//!   hosts share one); `ansible_host` is the primary address.
//! - Groups come from keyed fields: `role_log`, `region_pdx1`, `provider_aws`, ... and one
//!   group per lifecycle phase (`in_service`, `out_of_service`, `missing`, `retired`,
//!   `provisioning`), so a retirement playbook can target `retired`.
//! - Members of a HostGroup are in the group `group_NAME`.
//! - Locked hosts (`hostledger lock`) are in the group `locked` and have the variables
//!   `hostledger_lock_holder`, `_user`, `_reason`, `_since`; `exclude_locked` leaves them out.
//! - Host variables: `hostledger_*` facts from the status, and any annotation
//!   `ansible.hostledger.dev/VAR: VALUE` as variable `VAR` (VALUE parsed as JSON when it is
//!   JSON, a string otherwise).

use std::collections::{BTreeMap, BTreeSet};

use hostledger_schemas::Lifecycle;
use serde::Serialize;
use serde::ser::SerializeMap as _;
use serde_json::{Map, Value, json};

use crate::source::HostView;
use hostledger_model::lock::LockMark;
use hostledger_model::time::exact_time;

/// Annotation prefix for host variables.
pub const VAR_ANNOTATION_PREFIX: &str = "ansible.hostledger.dev/";

/// A field whose values make groups.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKey {
    /// `provider_<kind>`.
    Provider,
    /// `region_<region>`.
    Region,
    /// `zone_<zone>`.
    Zone,
    /// `role_<role>`.
    Role,
    /// `team_<team>`.
    Team,
    /// `machine_type_<type>`.
    MachineType,
    /// `<key>_<value>` of a label of the Host object.
    Label(String),
    /// `<key>_<value>` of a provider attribute.
    Attribute(String),
}

impl std::str::FromStr for GroupKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s {
            "provider" => GroupKey::Provider,
            "region" => GroupKey::Region,
            "zone" => GroupKey::Zone,
            "role" => GroupKey::Role,
            "team" => GroupKey::Team,
            "machine_type" => GroupKey::MachineType,
            _ => match s.split_once(':') {
                Some(("label", key)) if !key.is_empty() => GroupKey::Label(key.to_owned()),
                Some(("attribute", key)) if !key.is_empty() => GroupKey::Attribute(key.to_owned()),
                _ => {
                    return Err(format!(
                        "{s:?} is not a group key: use provider, region, zone, role, team, machine_type, label:KEY or attribute:KEY"
                    ));
                }
            },
        })
    }
}

impl GroupKey {
    fn prefix(&self) -> String {
        match self {
            GroupKey::Provider => "provider".into(),
            GroupKey::Region => "region".into(),
            GroupKey::Zone => "zone".into(),
            GroupKey::Role => "role".into(),
            GroupKey::Team => "team".into(),
            GroupKey::MachineType => "machine_type".into(),
            GroupKey::Label(k) | GroupKey::Attribute(k) => k.clone(),
        }
    }

    fn value(&self, host: &HostView) -> Option<String> {
        let s = &host.record.state;
        match self {
            GroupKey::Provider => Some(host.record.provider.clone()),
            GroupKey::Region => s.region.clone(),
            GroupKey::Zone => s.zone.clone(),
            GroupKey::Role => s.role.clone(),
            GroupKey::Team => s.team.clone(),
            GroupKey::MachineType => s.machine_type.clone(),
            GroupKey::Label(k) => host.labels.get(k).cloned(),
            GroupKey::Attribute(k) => s.attributes.get(k).cloned(),
        }
    }
}

/// The default groups: provider, region, role and team (phase groups are always made).
pub fn default_group_keys() -> Vec<GroupKey> {
    vec![
        GroupKey::Provider,
        GroupKey::Region,
        GroupKey::Role,
        GroupKey::Team,
    ]
}

/// What goes into the inventory.
#[derive(Debug, Clone)]
pub struct AnsibleSettings {
    /// Fields that make groups.
    pub group_keys: Vec<GroupKey>,
    /// Phases whose hosts are listed (InService alone by default).
    pub phases: BTreeSet<Lifecycle>,
    /// Leave locked hosts out (a playbook that must not touch hosts someone is working on).
    pub exclude_locked: bool,
    /// Host groups: each one becomes the Ansible group `group_NAME` of its members.
    pub host_groups: Vec<hostledger_model::HostGroup>,
}

impl Default for AnsibleSettings {
    fn default() -> Self {
        AnsibleSettings {
            group_keys: default_group_keys(),
            phases: BTreeSet::from([Lifecycle::InService]),
            exclude_locked: false,
            host_groups: Vec::new(),
        }
    }
}

/// A valid Ansible group or variable name from any text: lower case, runs of other
/// characters as `_`, never starting with a digit.
pub fn safe_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    match trimmed.chars().next() {
        None => "_".into(),
        Some(c) if c.is_ascii_digit() => format!("_{trimmed}"),
        Some(_) => trimmed.to_owned(),
    }
}

/// The group of hosts in a phase: `in_service`, `out_of_service`, `missing`, `retired`,
/// `provisioning`.
pub fn phase_group(phase: Lifecycle) -> &'static str {
    match phase {
        Lifecycle::Provisioning => "provisioning",
        Lifecycle::InService => "in_service",
        Lifecycle::OutOfService => "out_of_service",
        Lifecycle::Missing => "missing",
        Lifecycle::Retired => "retired",
    }
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The host variables of one host.
pub fn host_vars(host: &HostView) -> Map<String, Value> {
    let r = &host.record;
    let s = &r.state;
    let mut vars = Map::new();
    if let Some(address) = s.addresses.first() {
        vars.insert("ansible_host".into(), json!(address));
    }
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            vars.insert(format!("hostledger_{k}"), v);
        }
    };
    put("host_id", json!(r.host_id));
    put("name", json!(host.name));
    put("hostname", json!(s.name));
    put("provider", json!(r.provider));
    put("region", json!(s.region));
    put("zone", json!(s.zone));
    put("role", json!(s.role));
    put("team", json!(s.team));
    put("phase", json!(r.phase.as_str()));
    put("provider_status", json!(s.provider_status));
    put("machine_type", json!(s.machine_type));
    put("addresses", json!(s.addresses));
    put("attributes", json!(s.attributes));
    put("labels", json!(host.labels));
    put("first_seen_at", json!(exact_time(r.first_seen_at)));
    put(
        "in_service_since",
        json!(r.in_service_since.map(exact_time)),
    );
    let lock = LockMark::on(&host.labels, &host.annotations);
    put("locked", json!(lock.is_some()));
    if let Some(lock) = lock {
        put("lock_holder", json!(lock.holder));
        put("lock_user", json!(lock.user));
        put("lock_reason", json!(lock.reason));
        put("lock_since", json!(lock.since.map(exact_time)));
    }
    for (key, value) in &host.annotations {
        let Some(var) = key.strip_prefix(VAR_ANNOTATION_PREFIX) else {
            continue;
        };
        if !is_identifier(var) {
            tracing::warn!(host = %host.name, annotation = %key, "not a valid Ansible variable name; ignored");
            continue;
        }
        let parsed = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        vars.insert(var.to_owned(), parsed);
    }
    vars
}

/// Which name a host goes by in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// Its host name.
    Host,
    /// Its Host object's name (its host name is empty or another host's too).
    Object,
}

/// Inventory host names: the host name, or the Host object's name where host names clash.
pub fn inventory_names(hosts: &[&HostView]) -> Vec<Name> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for h in hosts {
        *count.entry(h.record.state.name.as_str()).or_default() += 1;
    }
    hosts
        .iter()
        .map(|h| {
            let name = h.record.state.name.as_str();
            if count[name] > 1 || name.is_empty() {
                Name::Object
            } else {
                Name::Host
            }
        })
        .collect()
}

/// The hosts of the phases wanted.
pub fn included<'a>(hosts: &'a [HostView], settings: &AnsibleSettings) -> Vec<&'a HostView> {
    hosts
        .iter()
        .filter(|h| settings.phases.contains(&h.record.phase))
        .filter(|h| !settings.exclude_locked || LockMark::on(&h.labels, &h.annotations).is_none())
        .collect()
}

/// `--list`: groups, their hosts, and `_meta.hostvars` for every host, as a JSON tree.
pub fn list(hosts: &[HostView], settings: &AnsibleSettings) -> Value {
    serde_json::to_value(Listing::new(hosts, settings)).unwrap_or_default()
}

/// `--list`, serialized as it is written: each host's variables are made, written and let go
/// in turn, so a listing of 100,000 hosts is never a tree in memory. Keys come in the order
/// of [`list`]'s tree (sorted).
pub struct Listing<'a> {
    /// Inventory name → host, sorted (a later host of the same name wins, as in a map).
    hostvars: BTreeMap<&'a str, &'a HostView>,
    /// Group → its hosts' inventory names.
    groups: BTreeMap<String, BTreeSet<&'a str>>,
    ungrouped: BTreeSet<&'a str>,
}

impl<'a> Listing<'a> {
    /// The listing of `hosts` with `settings`.
    pub fn new(hosts: &'a [HostView], settings: &AnsibleSettings) -> Self {
        let hosts = included(hosts, settings);
        let names = inventory_names(&hosts);
        let mut listing = Listing {
            hostvars: BTreeMap::new(),
            groups: BTreeMap::new(),
            ungrouped: BTreeSet::new(),
        };
        for (host, name) in hosts.iter().zip(names) {
            // The names live as long as the hosts: kept once, in the host's view.
            let name: &'a str = match name {
                Name::Host => host.record.state.name.as_str(),
                Name::Object => host.name.as_str(),
            };
            let mut member = false;
            for key in &settings.group_keys {
                if let Some(value) = key.value(host) {
                    let group = safe_name(&format!("{}_{}", key.prefix(), value));
                    listing.groups.entry(group).or_default().insert(name);
                    member = true;
                }
            }
            listing
                .groups
                .entry(phase_group(host.record.phase).to_owned())
                .or_default()
                .insert(name);
            if LockMark::on(&host.labels, &host.annotations).is_some() {
                listing
                    .groups
                    .entry("locked".to_owned())
                    .or_default()
                    .insert(name);
            }
            if !settings.host_groups.is_empty() {
                let as_member = hostledger_model::group::Member {
                    name: host.name.clone(),
                    host_id: host.record.host_id.clone(),
                    labels: host.labels.clone(),
                    phase: Some(host.record.phase),
                    locked: false,
                    drifted: false,
                };
                for g in settings
                    .host_groups
                    .iter()
                    .filter(|g| g.contains(&as_member))
                {
                    let group = safe_name(&format!(
                        "group_{}",
                        g.metadata.name.as_deref().unwrap_or("")
                    ));
                    listing.groups.entry(group).or_default().insert(name);
                    member = true;
                }
            }
            if !member {
                listing.ungrouped.insert(name);
            }
            listing.hostvars.insert(name, host);
        }
        listing
    }
}

/// `{"hosts": [...]}`.
struct Members<'b, 'a>(&'b BTreeSet<&'a str>);

impl Serialize for Members<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("hosts", self.0)?;
        map.end()
    }
}

/// `{"hostvars": {NAME: VARS, ...}}`, each host's variables made as they are written.
struct Meta<'b, 'a>(&'b BTreeMap<&'a str, &'a HostView>);

impl Serialize for Meta<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct HostVars<'b, 'a>(&'b BTreeMap<&'a str, &'a HostView>);
        impl Serialize for HostVars<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, host) in self.0 {
                    map.serialize_entry(name, &host_vars(host))?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("hostvars", &HostVars(self.0))?;
        map.end()
    }
}

impl Serialize for Listing<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut children: Vec<&str> = self.groups.keys().map(String::as_str).collect();
        children.push("ungrouped");
        let mut map = serializer.serialize_map(Some(self.groups.len() + 3))?;
        map.serialize_entry("_meta", &Meta(&self.hostvars))?;
        map.serialize_entry("all", &json!({ "children": children }))?;
        // The groups and `ungrouped`, in sorted order.
        let mut ungrouped = Some(Members(&self.ungrouped));
        for (group, members) in &self.groups {
            if group.as_str() > "ungrouped"
                && let Some(u) = ungrouped.take()
            {
                map.serialize_entry("ungrouped", &u)?;
            }
            map.serialize_entry(group, &Members(members))?;
        }
        if let Some(u) = ungrouped {
            map.serialize_entry("ungrouped", &u)?;
        }
        map.end()
    }
}

/// `--host NAME`: the variables of one host, by inventory name, Host object name or host id.
pub fn host(hosts: &[HostView], settings: &AnsibleSettings, wanted: &str) -> Option<Value> {
    let hosts = included(hosts, settings);
    let names = inventory_names(&hosts);
    hosts
        .iter()
        .zip(names)
        .find(|(h, n)| {
            let name = match n {
                Name::Host => &h.record.state.name,
                Name::Object => &h.name,
            };
            name == wanted || h.name == wanted || h.record.host_id == wanted
        })
        .map(|(h, _)| Value::Object(host_vars(h)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::{HostRecord, Position};
    use hostledger_schemas::{EventKind, HostEvent, HostState, Timestamp};

    fn view(id: &str, name: &str, role: Option<&str>, phase: Lifecycle) -> HostView {
        let mut state = HostState::new(name, phase, "x");
        state.role = role.map(str::to_owned);
        state.region = Some("pdx1".into());
        state.addresses = vec![format!("10.0.0.{}", id.len())];
        state.attributes.insert("rack".into(), "A-01".into());
        let e = HostEvent {
            event_id: id.into(),
            host_id: id.into(),
            kind: EventKind::HostDiscovered,
            provider: "dc".into(),
            source: "s".into(),
            observed_at: Timestamp(0),
            state,
            changes: Vec::new(),
        };
        let record = HostRecord::first(
            &e,
            Position {
                partition: 0,
                offset: 0,
            },
        );
        HostView {
            name: id.replace('/', "."),
            labels: hostledger_model::names::labels(&record),
            record,
            annotations: BTreeMap::new(),
            intervals: Vec::new(),
        }
    }

    #[test]
    fn groups_hosts_and_vars_follow_the_protocol() {
        let mut web = view("dc/a", "web-1", Some("web"), Lifecycle::InService);
        web.annotations.insert(
            "ansible.hostledger.dev/ansible_user".into(),
            "deploy".into(),
        );
        web.annotations
            .insert("ansible.hostledger.dev/ports".into(), "[80, 443]".into());
        web.annotations
            .insert("ansible.hostledger.dev/bad-name".into(), "x".into());
        let hosts = vec![
            web,
            view("dc/b", "db-1", Some("db"), Lifecycle::InService),
            view("dc/c", "old-1", Some("db"), Lifecycle::Retired),
            view("dc/d", "spare-1", None, Lifecycle::OutOfService),
        ];
        let inv = list(&hosts, &AnsibleSettings::default());
        assert_eq!(inv["role_web"]["hosts"], json!(["web-1"]));
        assert_eq!(inv["role_db"]["hosts"], json!(["db-1"]));
        assert_eq!(inv["region_pdx1"]["hosts"], json!(["db-1", "web-1"]));
        assert_eq!(inv["in_service"]["hosts"], json!(["db-1", "web-1"]));
        assert!(
            inv.get("retired").is_none(),
            "retired hosts are left out by default"
        );
        assert!(inv["_meta"]["hostvars"].get("old-1").is_none());
        let vars = &inv["_meta"]["hostvars"]["web-1"];
        assert_eq!(vars["ansible_host"], "10.0.0.4");
        assert_eq!(vars["ansible_user"], "deploy");
        assert_eq!(vars["ports"], json!([80, 443]));
        assert!(vars.get("bad-name").is_none());
        assert_eq!(vars["hostledger_attributes"]["rack"], "A-01");
        assert_eq!(vars["hostledger_phase"], "InService");
        let children = inv["all"]["children"].as_array().expect("children");
        assert!(children.contains(&json!("ungrouped")));

        // Retired on request, with a group of their own and a keyed attribute group.
        let settings = AnsibleSettings {
            group_keys: vec![GroupKey::Role, "attribute:rack".parse().expect("key")],
            phases: BTreeSet::from([Lifecycle::InService, Lifecycle::Retired]),
            ..AnsibleSettings::default()
        };
        let inv = list(&hosts, &settings);
        assert_eq!(inv["retired"]["hosts"], json!(["old-1"]));
        assert_eq!(inv["rack_a_01"]["hosts"], json!(["db-1", "old-1", "web-1"]));
        assert!(inv.get("region_pdx1").is_none());

        assert_eq!(
            host(&hosts, &AnsibleSettings::default(), "dc/b").expect("found")["hostledger_hostname"],
            "db-1"
        );
        assert!(host(&hosts, &AnsibleSettings::default(), "old-1").is_none());
    }

    #[test]
    fn locked_hosts_are_a_group_with_lock_variables_or_left_out() {
        use hostledger_model::lock::{LOCK_ANNOTATION, LOCKED_LABEL};
        let mut web = view("dc/a", "web-1", Some("web"), Lifecycle::InService);
        web.labels.insert(LOCKED_LABEL.into(), "true".into());
        web.annotations.insert(
            LOCK_ANNOTATION.into(),
            r#"{"holder":"alice@laptop","user":"alice","reason":"disk swap","since":"2026-12-01T10:00:00Z","ttlSeconds":3600}"#.into(),
        );
        let hosts = vec![web, view("dc/b", "db-1", Some("db"), Lifecycle::InService)];
        let inv = list(&hosts, &AnsibleSettings::default());
        assert_eq!(inv["locked"]["hosts"], json!(["web-1"]));
        let vars = &inv["_meta"]["hostvars"]["web-1"];
        assert_eq!(vars["hostledger_locked"], true);
        assert_eq!(vars["hostledger_lock_holder"], "alice@laptop");
        assert_eq!(vars["hostledger_lock_reason"], "disk swap");
        assert_eq!(vars["hostledger_lock_since"], "2026-12-01T10:00:00.000000Z");
        assert_eq!(inv["_meta"]["hostvars"]["db-1"]["hostledger_locked"], false);
        let settings = AnsibleSettings {
            exclude_locked: true,
            ..AnsibleSettings::default()
        };
        let inv = list(&hosts, &settings);
        assert!(inv.get("locked").is_none());
        assert!(inv["_meta"]["hostvars"].get("web-1").is_none());
        assert_eq!(inv["in_service"]["hosts"], json!(["db-1"]));
    }

    #[test]
    fn host_groups_become_ansible_groups() {
        use hostledger_model::{HostGroup, HostGroupSpec};
        let hosts = vec![
            view("dc/a", "web-1", Some("web"), Lifecycle::InService),
            view("dc/b", "db-1", Some("db"), Lifecycle::InService),
        ];
        let settings = AnsibleSettings {
            host_groups: vec![HostGroup::new(
                "DB-pdx1",
                HostGroupSpec {
                    selector: Some("role=db".into()),
                    hosts: vec!["dc.a".into()],
                    ..HostGroupSpec::default()
                },
            )],
            ..AnsibleSettings::default()
        };
        let inv = list(&hosts, &settings);
        assert_eq!(inv["group_db_pdx1"]["hosts"], json!(["db-1", "web-1"]));
    }

    #[test]
    fn clashing_host_names_fall_back_to_object_names() {
        let hosts = [
            view("dc/a", "web", None, Lifecycle::InService),
            view("dc/b", "web", None, Lifecycle::InService),
            view("dc/c", "db", None, Lifecycle::InService),
        ];
        let refs: Vec<&HostView> = hosts.iter().collect();
        assert_eq!(
            inventory_names(&refs),
            [Name::Object, Name::Object, Name::Host]
        );
        let inv = list(&hosts, &AnsibleSettings::default());
        let names: Vec<&String> = inv["_meta"]["hostvars"]
            .as_object()
            .expect("hostvars")
            .keys()
            .collect();
        assert_eq!(names, ["db", "dc.a", "dc.b"]);
    }

    #[test]
    fn the_listing_is_written_in_the_order_of_its_tree() {
        let mut zoned = view("dc/a", "web-1", Some("web"), Lifecycle::InService);
        zoned.record.state.zone = Some("hall-a".into());
        let hosts = [
            zoned,
            view("dc/b", "db-1", None, Lifecycle::InService),
            view("dc/c", "old-1", None, Lifecycle::Retired),
        ];
        // `zone_hall_a` sorts after `ungrouped`, `in_service` before it; db-1 is in no keyed
        // group.
        let settings = AnsibleSettings {
            group_keys: vec![GroupKey::Zone, GroupKey::Role],
            phases: BTreeSet::from([Lifecycle::InService, Lifecycle::Retired]),
            ..AnsibleSettings::default()
        };
        let written = serde_json::to_string(&Listing::new(&hosts, &settings)).expect("JSON");
        let tree = list(&hosts, &settings);
        assert_eq!(written, serde_json::to_string(&tree).expect("JSON"));
        assert_eq!(tree["ungrouped"]["hosts"], json!(["db-1", "old-1"]));
        assert_eq!(tree["zone_hall_a"]["hosts"], json!(["web-1"]));
        let keys: Vec<&String> = tree.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            [
                "_meta",
                "all",
                "in_service",
                "retired",
                "role_web",
                "ungrouped",
                "zone_hall_a"
            ]
        );
    }

    #[test]
    fn names_are_safe_for_ansible() {
        assert_eq!(safe_name("role_log"), "role_log");
        assert_eq!(safe_name("region_us-east-1"), "region_us_east_1");
        assert_eq!(safe_name("rack_A-01"), "rack_a_01");
        assert_eq!(safe_name("9lives"), "_9lives");
        assert_eq!(safe_name("--"), "_");
        assert!("colour".parse::<GroupKey>().is_err());
    }
}

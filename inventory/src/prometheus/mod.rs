//! Prometheus file-based service discovery: the targets file that a scrape job's
//! `file_sd_configs` reads. Host objects in, target groups and bytes out (pure); [`Targets`] writes the file.
//!
//! - One target group per host in a listed phase (only `InService` by default), sorted by
//!   host id, so an unchanged inventory always gives the same bytes.
//! - The target is `ADDRESS:PORT`: the first of the host's addresses (IPv6 in brackets) and
//!   the port from the Host's annotation `prometheus.hostledger.dev/port`, else the default.
//! - Labels: `hostname`, `host_id`, `provider`, `region`, `zone`, `role`, `team`, `phase`,
//!   `machine_type` (those the host has), `hostledger_namespace`, and `locked` (`true` while
//!   someone holds a host lock, with `lock_holder`; alert rules can hold off on hosts under
//!   planned maintenance), and `groups` (`,db-pdx1,backups,`: the HostGroups it is in, in
//!   Prometheus' convention for lists, so `groups=~".*,db-pdx1,.*"` selects one), and
//!   `drifted` (`true` when the host is not what its `spec.expected` says).
//! - What cannot be listed is reported, not dropped silently: hosts without an address, port
//!   annotations that are not ports. (A status with an unknown phase cannot exist: the CRD
//!   schema and the typed status refuse it.)

mod file;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use hostledger_model::Host;
use hostledger_model::lock::LockMark;
use hostledger_schemas::Lifecycle;
use serde::Serialize;

pub use file::{Format, Targets, summary};

/// Annotation with a host's own scrape port (`"9187"`).
pub const PORT_ANNOTATION: &str = "prometheus.hostledger.dev/port";

/// Label naming the namespace the Host objects were read from.
pub const NAMESPACE_LABEL: &str = "hostledger_namespace";

/// What goes into the targets file.
#[derive(Debug, Clone, PartialEq)]
pub struct SdSettings {
    /// Port of every target without a port annotation.
    pub port: u16,
    /// Phases whose hosts are listed (InService alone by default).
    pub phases: BTreeSet<Lifecycle>,
    /// The Hosts' namespace, for the `hostledger_namespace` label.
    pub namespace: String,
    /// Host groups, for the `groups` label (`,db-pdx1,backups,`).
    pub host_groups: Vec<hostledger_model::HostGroup>,
}

impl SdSettings {
    /// In-service hosts of `namespace` on port 9100 (node_exporter's).
    pub fn new(namespace: impl Into<String>) -> Self {
        SdSettings {
            port: 9100,
            phases: BTreeSet::from([Lifecycle::InService]),
            namespace: namespace.into(),
            host_groups: Vec::new(),
        }
    }
}

/// One entry of the targets file, as Prometheus reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    /// `ADDRESS:PORT` (one: one group per host).
    pub targets: Vec<String>,
    /// Labels attached to the target.
    pub labels: BTreeMap<String, String>,
}

/// A port annotation that is not a port; the default port is used instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPort {
    /// The host.
    pub host_id: String,
    /// The annotation's value.
    pub value: String,
}

/// The targets, and what could not be turned into one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Target groups, by host id.
    pub groups: Vec<TargetGroup>,
    /// Hosts in a listed phase that have no address (not listed), by host id.
    pub without_address: Vec<String>,
    /// Listed hosts whose port annotation is unusable (listed on the default port).
    pub bad_ports: Vec<BadPort>,
    /// Host objects without a status yet (created, not yet projected; not listed).
    pub without_status: usize,
}

/// Reads a port annotation: a number from 1 to 65535.
pub fn parse_port(value: &str) -> Option<u16> {
    value.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

/// `ADDRESS:PORT`, with an IPv6 address in brackets. `None` for a blank address.
pub fn target(address: &str, port: u16) -> Option<String> {
    let address = address.trim();
    if address.is_empty() {
        return None;
    }
    let bare = address.trim_start_matches('[').trim_end_matches(']');
    Some(if bare.parse::<Ipv6Addr>().is_ok() {
        format!("[{bare}]:{port}")
    } else {
        format!("{address}:{port}")
    })
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The target groups of `hosts` (in any order), with what was left out and why.
pub fn discover<'a>(hosts: impl IntoIterator<Item = &'a Host>, settings: &SdSettings) -> Discovery {
    let mut out = Discovery::default();
    let mut groups: Vec<(String, String, TargetGroup)> = Vec::new();
    for host in hosts {
        let name = host.metadata.name.clone().unwrap_or_default();
        let Some(status) = &host.status else {
            out.without_status += 1;
            continue;
        };
        let state = &status.state;
        if !settings.phases.contains(&state.lifecycle) {
            continue;
        }
        let port = match host
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PORT_ANNOTATION))
        {
            None => settings.port,
            Some(value) => parse_port(value).unwrap_or_else(|| {
                out.bad_ports.push(BadPort {
                    host_id: status.host_id.clone(),
                    value: value.clone(),
                });
                settings.port
            }),
        };
        let Some(address) = state.addresses.first().and_then(|a| target(a, port)) else {
            out.without_address.push(status.host_id.clone());
            continue;
        };
        let mut labels = BTreeMap::new();
        let fields = [
            ("hostname", Some(state.name.as_str())),
            ("host_id", Some(status.host_id.as_str())),
            ("provider", Some(status.provider.as_str())),
            ("region", state.region.as_deref()),
            ("zone", state.zone.as_deref()),
            ("role", state.role.as_deref()),
            ("team", state.team.as_deref()),
            ("phase", Some(state.lifecycle.as_str())),
            ("machine_type", state.machine_type.as_deref()),
            (NAMESPACE_LABEL, Some(settings.namespace.as_str())),
        ];
        for (key, value) in fields {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                labels.insert(key.to_owned(), v.to_owned());
            }
        }
        let empty = BTreeMap::new();
        let lock = LockMark::on(
            host.metadata.labels.as_ref().unwrap_or(&empty),
            host.metadata.annotations.as_ref().unwrap_or(&empty),
        );
        labels.insert("locked".to_owned(), lock.is_some().to_string());
        let member = hostledger_model::group::Member::of(host, lock.is_some());
        let member_of: Vec<&str> = settings
            .host_groups
            .iter()
            .filter(|g| g.contains(&member))
            .filter_map(|g| g.metadata.name.as_deref())
            .collect();
        if !member_of.is_empty() {
            labels.insert("groups".to_owned(), format!(",{},", member_of.join(",")));
        }
        labels.insert("drifted".to_owned(), member.drifted.to_string());
        if let Some(lock) = lock.filter(|l| !l.holder.is_empty()) {
            labels.insert("lock_holder".to_owned(), lock.holder);
        }
        groups.push((
            status.host_id.clone(),
            name,
            TargetGroup {
                targets: vec![address],
                labels,
            },
        ));
    }
    groups.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out.groups = groups.into_iter().map(|(_, _, g)| g).collect();
    out.without_address.sort();
    out.bad_ports.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    out
}

/// What [`discover`] reads of a Host, the rest dropped: the name, labels, annotations and
/// resource version, and of the status the host id, provider, drift flag and the state's
/// hostname, phase, addresses, region, zone, role, team and machine type.
///
/// `prometheus-sd --watch` keeps every Host it watches in memory; this is what it keeps. At
/// 100,000 Hosts the full objects made 2 GiB of resident memory (docs/benchmarks.md,
/// "Scale"); the service intervals, conditions, managed fields and provider attributes that
/// make up most of a Host are never part of a target.
pub fn for_discovery(host: Host) -> Host {
    let Host {
        metadata, status, ..
    } = host;
    let mut kept = Host::new("", hostledger_model::HostSpec::default());
    kept.metadata = kube::api::ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        labels: metadata.labels,
        annotations: metadata.annotations,
        resource_version: metadata.resource_version,
        ..Default::default()
    };
    kept.status = status.map(|mut status| {
        status.source = String::new();
        status.state.provider_status = String::new();
        status.state.attributes = BTreeMap::new();
        status.service_intervals = Vec::new();
        status.conditions = Vec::new();
        status.lock = None;
        status.downtime = None;
        status.last_lock_event = None;
        status.last_event.id = String::new();
        if let Some(drift) = status.drift.as_mut() {
            drift.differences = Vec::new();
        }
        status
    });
    kept
}

/// The targets file in JSON: an array of groups, two-space indented, ending in a newline.
pub fn to_json(groups: &[TargetGroup]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(groups).expect("strings always serialize");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::HostSpec;
    use hostledger_model::fixtures::{EventBuilder, fold_events, host_object};
    use hostledger_schemas::{EventKind, Timestamp};
    use serde_json::json;

    fn host(id: &str, hostname: &str, phase: Lifecycle, addresses: &[&str]) -> Host {
        let event = EventBuilder::new(id)
            .kind(EventKind::HostDiscovered)
            .name(hostname)
            .lifecycle(phase)
            .provider_status("x")
            .at(Timestamp(0))
            .region("pdx1")
            .role(Some("web"))
            .addresses(addresses)
            .build();
        let mut host = host_object(&fold_events(&[event]));
        host.metadata.name = Some(id.replace('/', "."));
        host.metadata.labels = None;
        host
    }

    fn annotate(mut host: Host, port: &str) -> Host {
        host.metadata
            .annotations
            .get_or_insert_default()
            .insert(PORT_ANNOTATION.into(), port.into());
        host
    }

    fn targets(d: &Discovery) -> Vec<&str> {
        d.groups.iter().map(|g| g.targets[0].as_str()).collect()
    }

    #[test]
    fn in_service_hosts_become_sorted_target_groups_with_their_labels() {
        let mut full = host(
            "dc/b",
            "web-b",
            Lifecycle::InService,
            &["10.0.0.2", "10.9.9.9"],
        );
        let status = &mut full.status.as_mut().expect("status").state;
        status.zone = Some("hall-a".into());
        status.team = Some("storefront".into());
        status.machine_type = Some("R650".into());
        let hosts = [
            full,
            host("dc/a", "web-a", Lifecycle::InService, &["10.0.0.1"]),
            host("dc/c", "web-c", Lifecycle::OutOfService, &["10.0.0.3"]),
            host("dc/d", "web-d", Lifecycle::Retired, &["10.0.0.4"]),
        ];
        let d = discover(&hosts, &SdSettings::new("hostledger"));
        assert_eq!(targets(&d), ["10.0.0.1:9100", "10.0.0.2:9100"]);
        assert_eq!(
            serde_json::to_value(&d.groups[1]).expect("serializes"),
            json!({
                "targets": ["10.0.0.2:9100"],
                "labels": {
                    "hostname": "web-b",
                    "host_id": "dc/b",
                    "provider": "dc",
                    "region": "pdx1",
                    "zone": "hall-a",
                    "role": "web",
                    "team": "storefront",
                    "phase": "InService",
                    "machine_type": "R650",
                    "hostledger_namespace": "hostledger",
                    "locked": "false",
                    "drifted": "false",
                }
            })
        );
        // Absent fields make no label.
        assert!(!d.groups[0].labels.contains_key("zone"));
        assert_eq!(
            d,
            Discovery {
                groups: d.groups.clone(),
                ..Discovery::default()
            }
        );
    }

    #[test]
    fn included_phases_are_listed_too() {
        let hosts = [
            host("dc/a", "a", Lifecycle::InService, &["10.0.0.1"]),
            host("dc/b", "b", Lifecycle::OutOfService, &["10.0.0.2"]),
            host("dc/c", "c", Lifecycle::Retired, &["10.0.0.3"]),
            host("dc/d", "d", Lifecycle::Provisioning, &["10.0.0.4"]),
        ];
        let mut settings = SdSettings::new("ns");
        settings.phases.insert(Lifecycle::OutOfService);
        settings.phases.insert(Lifecycle::Retired);
        let d = discover(&hosts, &settings);
        assert_eq!(
            targets(&d),
            ["10.0.0.1:9100", "10.0.0.2:9100", "10.0.0.3:9100"]
        );
        assert_eq!(d.groups[1].labels["phase"], "OutOfService");
    }

    #[test]
    fn ports_come_from_the_annotation_or_the_default() {
        let hosts = [
            annotate(
                host("dc/a", "a", Lifecycle::InService, &["10.0.0.1"]),
                "9187",
            ),
            annotate(
                host("dc/b", "b", Lifecycle::InService, &["10.0.0.2"]),
                "http",
            ),
            annotate(host("dc/c", "c", Lifecycle::InService, &["10.0.0.3"]), "0"),
            annotate(
                host("dc/d", "d", Lifecycle::InService, &["10.0.0.4"]),
                "70000",
            ),
            host("dc/e", "e", Lifecycle::InService, &["10.0.0.5"]),
        ];
        let mut settings = SdSettings::new("ns");
        settings.port = 8080;
        let d = discover(&hosts, &settings);
        assert_eq!(
            targets(&d),
            [
                "10.0.0.1:9187",
                "10.0.0.2:8080",
                "10.0.0.3:8080",
                "10.0.0.4:8080",
                "10.0.0.5:8080"
            ]
        );
        let bad: Vec<(&str, &str)> = d
            .bad_ports
            .iter()
            .map(|b| (b.host_id.as_str(), b.value.as_str()))
            .collect();
        assert_eq!(bad, [("dc/b", "http"), ("dc/c", "0"), ("dc/d", "70000")]);
        assert_eq!(parse_port(" 443 "), Some(443));
    }

    #[test]
    fn hosts_without_an_address_or_a_status_are_reported() {
        let hosts = [
            host("dc/a", "a", Lifecycle::InService, &[]),
            host("dc/b", "b", Lifecycle::InService, &["  "]),
            host("dc/c", "c", Lifecycle::OutOfService, &[]),
            Host::new("dc.e", HostSpec::default()),
            host("dc/f", "f", Lifecycle::InService, &["10.0.0.6"]),
        ];
        let d = discover(&hosts, &SdSettings::new("ns"));
        assert_eq!(targets(&d), ["10.0.0.6:9100"]);
        // Only hosts that would have been listed count as skipped for lack of an address.
        assert_eq!(d.without_address, ["dc/a", "dc/b"]);
        assert_eq!(d.without_status, 1);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        assert_eq!(
            target("2001:db8::1", 9100).as_deref(),
            Some("[2001:db8::1]:9100")
        );
        assert_eq!(
            target("[2001:db8::1]", 80).as_deref(),
            Some("[2001:db8::1]:80")
        );
        assert_eq!(target("10.0.0.1", 80).as_deref(), Some("10.0.0.1:80"));
        assert_eq!(
            target("web-1.example.com", 80).as_deref(),
            Some("web-1.example.com:80")
        );
        assert_eq!(target("", 80), None);
    }

    #[test]
    fn label_names_are_valid_for_prometheus() {
        let mut h = host("dc/a", "a", Lifecycle::InService, &["10.0.0.1"]);
        let status = &mut h.status.as_mut().expect("status").state;
        status.zone = Some("z".into());
        status.team = Some("t".into());
        status.machine_type = Some("m".into());
        use hostledger_model::lock::{LOCK_ANNOTATION, LOCKED_LABEL};
        h.metadata.labels = Some(BTreeMap::from([(LOCKED_LABEL.into(), "true".into())]));
        h.metadata.annotations = Some(BTreeMap::from([(
            LOCK_ANNOTATION.into(),
            r#"{"holder":"ops@bastion","user":"ops","reason":"r","ttlSeconds":60}"#.into(),
        )]));
        let d = discover([&h], &SdSettings::new("ns"));
        assert_eq!(d.groups[0].labels.len(), 13);
        assert_eq!(d.groups[0].labels["locked"], "true");
        assert_eq!(d.groups[0].labels["lock_holder"], "ops@bastion");
        for name in d.groups[0].labels.keys() {
            assert!(is_label_name(name), "{name}");
            assert!(!name.starts_with("__"), "{name} is reserved");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
        assert!(is_label_name("_a1"));
    }

    #[test]
    fn a_host_kept_for_discovery_gives_the_same_targets_and_is_smaller() {
        use hostledger_model::HostGroupSpec;
        use hostledger_model::drift::DriftStatus;
        use hostledger_model::lock::{LOCK_ANNOTATION, LOCKED_LABEL};
        let events: Vec<_> = (0..12)
            .map(|n| {
                let phase = if n % 2 == 0 {
                    Lifecycle::InService
                } else {
                    Lifecycle::OutOfService
                };
                EventBuilder::new("aws/i-1")
                    .id(format!("e{n}"))
                    .kind(if n == 0 {
                        EventKind::HostDiscovered
                    } else {
                        EventKind::HostLifecycleChanged
                    })
                    .name("db-1")
                    .lifecycle(phase)
                    .provider_status("running")
                    .region("us-east-1")
                    .role(Some("db"))
                    .addresses(&["10.1.0.1", "10.1.0.2"])
                    .attribute("ami", "ami-0123456789abcdef0")
                    .attribute("vpc", "vpc-0123")
                    .hours(n * 24)
                    .build()
            })
            .collect();
        let mut full = host_object(&fold_events(&events));
        full.metadata.namespace = Some("ns".into());
        full.metadata.resource_version = Some("42".into());
        full.metadata
            .labels
            .get_or_insert_default()
            .insert(LOCKED_LABEL.into(), "true".into());
        let annotations = full.metadata.annotations.get_or_insert_default();
        annotations.insert(
            LOCK_ANNOTATION.into(),
            r#"{"holder":"ops@bastion","user":"ops","reason":"r","ttlSeconds":60}"#.into(),
        );
        annotations.insert(PORT_ANNOTATION.into(), "9187".into());
        let status = full.status.as_mut().expect("status");
        status.drift = Some(DriftStatus {
            drifted: true,
            differences: Vec::new(),
            since: Timestamp(0),
        });
        assert!(
            !status.service_intervals.is_empty(),
            "the fixture has intervals"
        );
        let mut settings = SdSettings::new("ns");
        settings.phases.insert(Lifecycle::OutOfService);
        settings.host_groups = vec![hostledger_model::HostGroup::new(
            "dbs",
            HostGroupSpec {
                selector: Some("role=db".into()),
                ..HostGroupSpec::default()
            },
        )];

        let kept = for_discovery(full.clone());
        let before = discover([&full], &settings);
        assert_eq!(before.groups.len(), 1);
        assert_eq!(discover([&kept], &settings), before);
        for label in [
            "locked",
            "lock_holder",
            "groups",
            "drifted",
            "region",
            "role",
        ] {
            assert!(before.groups[0].labels.contains_key(label), "{label}");
        }
        assert_eq!(before.groups[0].targets, ["10.1.0.1:9187"]);
        assert_eq!(kept.metadata.resource_version.as_deref(), Some("42"));
        let status = kept.status.as_ref().expect("status");
        assert!(status.service_intervals.is_empty() && status.state.attributes.is_empty());
        assert!(status.conditions.is_empty() && status.downtime.is_none());
        let size = |h: &Host| serde_json::to_vec(h).expect("serializes").len();
        assert!(
            size(&kept) * 3 < size(&full) * 2,
            "kept {} bytes of {}",
            size(&kept),
            size(&full)
        );
        // A Host without a status stays one (counted, not listed).
        let mut bare = full;
        bare.status = None;
        assert_eq!(
            discover([&for_discovery(bare)], &settings).without_status,
            1
        );
    }

    #[test]
    fn the_same_inventory_in_any_order_gives_the_same_bytes() {
        let hosts: Vec<Host> = (0..20)
            .map(|n| {
                host(
                    &format!("dc/{n:02}"),
                    &format!("h{n}"),
                    Lifecycle::InService,
                    &[&format!("10.0.0.{n}")],
                )
            })
            .collect();
        let settings = SdSettings::new("ns");
        let forward = to_json(&discover(&hosts, &settings).groups);
        let backward = to_json(&discover(hosts.iter().rev(), &settings).groups);
        let shuffled =
            to_json(&discover(hosts.iter().skip(7).chain(hosts.iter().take(7)), &settings).groups);
        assert_eq!(forward, backward);
        assert_eq!(forward, shuffled);
        assert!(forward.ends_with(b"]\n"));
        let parsed: serde_json::Value = serde_json::from_slice(&forward).expect("valid JSON");
        assert_eq!(parsed.as_array().map(Vec::len), Some(20));
        assert_eq!(parsed[0]["targets"], json!(["10.0.0.0:9100"]));
        assert_eq!(to_json(&[]), b"[]\n");
    }
}

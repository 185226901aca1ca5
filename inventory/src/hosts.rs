//! The inventory as a list of hosts: one line per host for people, CSV, or JSON.

use hostledger_model::time::{exact_time, human_duration, short_time};
use hostledger_schemas::Timestamp;

use crate::source::HostView;
use crate::table::{aligned, csv};

const HEADER: [&str; 10] = [
    "HOST ID",
    "HOSTNAME",
    "PROVIDER",
    "REGION",
    "ROLE",
    "TEAM",
    "PHASE",
    "ADDRESS",
    "IN SERVICE",
    "FIRST SEEN",
];

/// Hosts with time in service computed as of one time.
#[derive(Debug, Clone, Copy)]
pub struct HostList<'a> {
    /// The hosts.
    pub hosts: &'a [HostView],
    /// The time their time in service is computed at.
    pub at: Timestamp,
}

impl HostList<'_> {
    fn cells(&self, h: &HostView, human: bool) -> Vec<String> {
        let r = &h.record;
        let opt = |v: Option<&String>| {
            v.cloned()
                .unwrap_or_else(|| if human { "-".into() } else { String::new() })
        };
        let in_service = r.in_service_micros_at(self.at);
        vec![
            r.host_id.clone(),
            r.state.name.clone(),
            r.provider.clone(),
            opt(r.state.region.as_ref()),
            opt(r.state.role.as_ref()),
            opt(r.state.team.as_ref()),
            r.phase.to_string(),
            opt(r.state.addresses.first()),
            if human {
                human_duration(in_service)
            } else {
                format!("{:.6}", in_service as f64 / 1e6)
            },
            if human {
                short_time(r.first_seen_at)
            } else {
                exact_time(r.first_seen_at)
            },
        ]
    }

    /// Aligned columns, then `footer` on a line of its own.
    pub fn table(&self, footer: &str) -> String {
        let rows: Vec<_> = self.hosts.iter().map(|h| self.cells(h, true)).collect();
        let mut out = aligned(&HEADER, &rows);
        out.push_str(footer);
        out.push('\n');
        out
    }

    /// CSV with exact figures; the header is the table's, in snake case.
    pub fn csv(&self) -> String {
        let header = HEADER.map(|h| h.to_lowercase().replace(' ', "_"));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let rows: Vec<_> = self.hosts.iter().map(|h| self.cells(h, false)).collect();
        csv(&header, &rows)
    }

    /// One JSON object per host.
    pub fn json(&self) -> serde_json::Value {
        self.hosts
            .iter()
            .map(|h| {
                let r = &h.record;
                serde_json::json!({
                    "name": h.name,
                    "hostId": r.host_id,
                    "hostname": r.state.name,
                    "provider": r.provider,
                    "region": r.state.region,
                    "zone": r.state.zone,
                    "role": r.state.role,
                    "team": r.state.team,
                    "addresses": r.state.addresses,
                    "machineType": r.state.machine_type,
                    "attributes": r.state.attributes,
                    "phase": r.phase.as_str(),
                    "phaseSince": exact_time(r.phase_since),
                    "firstSeenAt": exact_time(r.first_seen_at),
                    "lastObservedAt": exact_time(r.last_observed_at),
                    "inServiceSeconds": r.in_service_micros_at(self.at) as f64 / 1e6,
                    "events": r.event_count,
                })
            })
            .collect()
    }
}

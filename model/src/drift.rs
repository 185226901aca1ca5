//! Intent and drift: what people (or Terraform, Ansible) declare a host should be, in the
//! Host's `spec.expected`, against what the log says it is. No I/O.
//!
//! The projector never writes the spec. A host drifts when any declared field differs from
//! the status (role, team, region, phase) or from the Host's labels; the differences are kept
//! in `status.drift` (its own field manager, beside the projector's status), with the time
//! the host started to drift.

use std::collections::BTreeMap;

use hostledger_schemas::{Lifecycle, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Host;

/// What a host should be. Every field is optional: only declared fields are compared.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedHost {
    /// The role it should have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The team it should belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The region or site it should be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The phase it should be in (usually `InService`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Lifecycle>,
    /// Labels it should carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One declared field that differs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// `role`, `team`, `region`, `phase` or `label:KEY`.
    pub field: String,
    /// What `spec.expected` says.
    pub expected: String,
    /// What the host is (empty when it has none).
    pub actual: String,
}

/// Whether a host is what its spec says, kept in `status.drift`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// Whether any declared field differs.
    pub drifted: bool,
    /// The fields that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// Since when `drifted` has had its value.
    pub since: Timestamp,
}

/// Field manager of `status.drift`.
pub const DRIFT_MANAGER: &str = "hostledger-drift";

/// The declared fields of `expected` that `host` does not match.
pub fn differences(expected: &ExpectedHost, host: &Host) -> Vec<Difference> {
    let Some(status) = &host.status else {
        return Vec::new();
    };
    let state = &status.state;
    let mut out = Vec::new();
    let mut compare = |field: &str, want: Option<&str>, have: Option<&str>| {
        if let Some(want) = want
            && Some(want) != have
        {
            out.push(Difference {
                field: field.to_owned(),
                expected: want.to_owned(),
                actual: have.unwrap_or_default().to_owned(),
            });
        }
    };
    compare("role", expected.role.as_deref(), state.role.as_deref());
    compare("team", expected.team.as_deref(), state.team.as_deref());
    compare(
        "region",
        expected.region.as_deref(),
        state.region.as_deref(),
    );
    compare(
        "phase",
        expected.phase.map(|p| p.as_str()),
        Some(state.lifecycle.as_str()),
    );
    let labels = host.metadata.labels.clone().unwrap_or_default();
    for (key, want) in &expected.labels {
        compare(
            &format!("label:{key}"),
            Some(want),
            labels.get(key).map(String::as_str),
        );
    }
    out
}

/// The drift status `host` should carry at `now`: `None` when it declares nothing; the
/// time of the last change kept while `drifted` does not change.
pub fn observe(host: &Host, now: Timestamp) -> Option<DriftStatus> {
    let previous = host.status.as_ref().and_then(|s| s.drift.as_ref());
    let expected = host.spec.expected.as_ref()?;
    let differences = differences(expected, host);
    let drifted = !differences.is_empty();
    let since = previous
        .filter(|p| p.drifted == drifted)
        .map_or(now, |p| p.since);
    Some(DriftStatus {
        drifted,
        differences,
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{EventBuilder, fold_events, host_object};

    fn host(role: &str, phase: Lifecycle) -> Host {
        let event = EventBuilder::new("dc/pdx1/SN-1")
            .name("db-1")
            .role(Some(role))
            .lifecycle(phase)
            .provider_status("x")
            .at(Timestamp(0))
            .build();
        host_object(&fold_events(&[event]))
    }

    #[test]
    fn only_declared_fields_are_compared() {
        let mut h = host("web", Lifecycle::OutOfService);
        assert_eq!(
            observe(&h, Timestamp(5)),
            None,
            "nothing declared, nothing to clear"
        );
        h.spec.expected = Some(ExpectedHost {
            role: Some("db".into()),
            phase: Some(Lifecycle::InService),
            labels: BTreeMap::from([("tier".to_owned(), "gold".to_owned())]),
            ..ExpectedHost::default()
        });
        let d = observe(&h, Timestamp(5)).expect("declared");
        assert!(d.drifted);
        let fields: Vec<_> = d
            .differences
            .iter()
            .map(|x| (x.field.as_str(), x.expected.as_str(), x.actual.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("role", "db", "web"),
                ("phase", "InService", "OutOfService"),
                ("label:tier", "gold", ""),
            ]
        );
        assert_eq!(d.since, Timestamp(5));
    }

    #[test]
    fn since_holds_until_drifted_changes_and_an_undeclared_host_has_none() {
        let mut h = host("db", Lifecycle::InService);
        h.spec.expected = Some(ExpectedHost {
            role: Some("db".into()),
            ..ExpectedHost::default()
        });
        let ok = observe(&h, Timestamp(5)).expect("declared");
        assert!(!ok.drifted);
        h.status.as_mut().expect("status").drift = Some(ok);
        assert_eq!(
            observe(&h, Timestamp(9)).map(|d| d.since),
            Some(Timestamp(5))
        );
        h.spec.expected = None;
        assert_eq!(
            observe(&h, Timestamp(10)),
            None,
            "nothing declared: no drift status"
        );
    }
}

//! Names of hostledger's objects and the labels it sets: object names derived from host ids,
//! valid label values, the projector's own labels, and the label linking history to a host.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use hostledger_schemas::{HostState, Lifecycle};

use crate::fold::HostRecord;

/// API group of hostledger's resources.
pub const GROUP: &str = "hostledger.dev";
/// Annotation holding the full host id (object names are derived from it, lossily).
pub const HOST_ID_ANNOTATION: &str = "hostledger.dev/host-id";
/// Finalizer the projector puts on every Host, so that a Host deleted by a person is only
/// removed once the projector has seen the deletion (its HostHistory stays in any case).
pub const HISTORY_FINALIZER: &str = "hostledger.dev/history";
/// Label keys the projector owns.
pub const OWNED_LABELS: [&str; 5] = ["provider", "region", "role", "team", "phase"];
/// Label carrying the Host's object name (or a hash of it when longer than a label value) on
/// its HostHistory chunks.
pub const HOST_LABEL: &str = "hostledger.dev/host";

/// The Kubernetes object name of a host: the host id lower-cased with `/` turned into `.`,
/// and, when that loses information (upper case, other characters, length), a hash of the
/// full id appended so that distinct ids never share a name.
pub fn object_name(host_id: &str) -> String {
    let mut name: String = host_id
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            '/' => '.',
            _ => '-',
        })
        .collect();
    let lossless = host_id
        .chars()
        .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '.' | '/'));
    let valid_edges = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if lossless && name.len() <= 253 && valid_edges(&name) && !name.contains("..") {
        return name;
    }
    let digest = Sha256::digest(host_id.as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    name.truncate(240);
    let trimmed = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .replace("..", ".-");
    if trimmed.is_empty() {
        format!("h-{hash}")
    } else {
        format!("{trimmed}-{hash}")
    }
}

/// A label value made valid: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
/// alphanumeric. `None` when nothing usable is left.
pub fn label_value(value: &str) -> Option<String> {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The labels the projector sets on a Host, for selection with `-l`.
pub fn labels(record: &HostRecord) -> BTreeMap<String, String> {
    state_labels(&record.provider, record.phase, &record.state)
}

/// The labels of a host of `provider` in `phase` with `state`: those of [`labels`], for an
/// event's state as for a Host.
pub fn state_labels(provider: &str, phase: Lifecycle, s: &HostState) -> BTreeMap<String, String> {
    derived_labels(
        provider,
        phase,
        s.region.as_deref(),
        s.role.as_deref(),
        s.team.as_deref(),
    )
}

/// The labels of [`labels`] from the fields they come from.
pub fn derived_labels(
    provider: &str,
    phase: Lifecycle,
    region: Option<&str>,
    role: Option<&str>,
    team: Option<&str>,
) -> BTreeMap<String, String> {
    let values = [
        ("provider", Some(provider)),
        ("region", region),
        ("role", role),
        ("team", team),
        ("phase", Some(phase.as_str())),
    ];
    values
        .into_iter()
        .filter_map(|(k, v)| v.and_then(label_value).map(|v| (k.to_owned(), v)))
        .collect()
}

/// The projector-owned subset of an object's labels.
pub fn owned_labels(labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .map(|l| {
            l.iter()
                .filter(|(k, _)| OWNED_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The label value naming a host's object (see [`HOST_LABEL`]).
pub fn host_label(host_id: &str) -> String {
    let name = object_name(host_id);
    if name.len() <= 63 && !name.ends_with('.') {
        return name;
    }
    let digest = Sha256::digest(host_id.as_bytes());
    format!(
        "h-{}",
        digest
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Name of chunk `chunk` of a host's history.
pub fn chunk_name(host_id: &str, chunk: u64) -> String {
    let mut base = object_name(host_id);
    base.truncate(240);
    format!("{}.h{chunk:05}", base.trim_end_matches(['.', '-']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_valid_and_distinct() {
        let cases = [
            (
                "aws/123456789012/us-east-1/i-0abc",
                "aws.123456789012.us-east-1.i-0abc",
            ),
            ("dc/pdx1/srv-1", "dc.pdx1.srv-1"),
        ];
        for (id, want) in cases {
            assert_eq!(object_name(id), want);
        }
        let upper = object_name("dc/pdx1/SRV1");
        let lower = object_name("dc/pdx1/srv1");
        assert_ne!(upper, lower);
        assert!(upper.starts_with("dc.pdx1.srv1-"), "{upper}");
        for id in ["dc//x", "/lead", "x/", "weird id!", "Ω", &"a".repeat(300)] {
            let name = object_name(id);
            assert!(name.len() <= 253, "{id}: {name}");
            assert!(!name.contains(".."), "{id}: {name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c)),
                "{name}"
            );
            assert!(
                name.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
    }

    #[test]
    fn label_values_are_made_valid() {
        assert_eq!(label_value("log"), Some("log".into()));
        assert_eq!(
            label_value("Site Reliability"),
            Some("Site-Reliability".into())
        );
        assert_eq!(label_value("--x--"), Some("x".into()));
        assert_eq!(label_value("   "), None);
        assert_eq!(label_value(&"a".repeat(100)).map(|v| v.len()), Some(63));
    }

    #[test]
    fn labels_fit() {
        assert_eq!(host_label("dc/pdx1/s-1"), "dc.pdx1.s-1");
        let long = format!("dc/pdx1/{}", "x".repeat(100));
        let label = host_label(&long);
        assert!(label.len() <= 63 && label.starts_with("h-"), "{label}");
        assert!(chunk_name(&"y".repeat(300), 1).len() <= 253);
        assert_eq!(chunk_name("dc/pdx1/s-1", 3), "dc.pdx1.s-1.h00003");
    }
}

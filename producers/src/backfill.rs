//! Backfill: an archive of dated snapshots of a provider becomes the events its fetcher would
//! have published at those dates, through the same diff, in time order, published the same
//! way (one transaction per snapshot, events and fetcher state together).
//!
//! An archive is a file or a directory holding
//! - exports of the provider, one snapshot a file, dated by the date in the file name
//!   (`pdx1-2025-12-01.csv`, `2025-12-01T06:00:00Z.json`, `export_20251201.yaml`): CSV, YAML
//!   or JSON records as the data-centre export reads them, or `{"hosts": [...]}` as an exec
//!   plugin prints it;
//! - listings files (`.jsonl`, `.ndjson`): one snapshot a line,
//!   `{"observed_at": "2025-12-01T06:00:00Z", "hosts": [...]}`, the hosts in the same form,
//!   which any script can write from AWS Config history, CMDB dumps or old Terraform states.
//!
//! The log is folded in log order, so an observation may only be appended after the newer
//! ones of its host: a plan is checked against the log before anything is published
//! ([`check_against_log`]), and one whose events would land before a later observation of the
//! same host is refused. A backfill killed and run again resumes after the last snapshot it
//! committed ([`Plan::resume_from`]), so each event is published once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hostledger_schemas::{EventKind, HostEvent, HostState, Timestamp};

use crate::config::ProviderConfig;
use crate::diff::{KnownHost, Listing, advance, diff};
use crate::fetcher::events_of;
use crate::provider::dcexport::{DcExport, DcExportConfig};
use crate::provider::exec::ExecProvider;

/// Why a backfill cannot go ahead. Nothing has been published when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The archive cannot be read or makes no sense.
    #[error("{0}")]
    Archive(String),
    /// The provider kind has no archive form.
    #[error(
        "provider {name} is {kind}: backfill reads data-centre exports and exec plugin output; \
         write the history as exec plugin listings and backfill it with an exec provider"
    )]
    Unsupported {
        /// Provider instance name.
        name: String,
        /// Its kind.
        kind: &'static str,
    },
    /// The fetcher state of the source is not what this archive's earlier snapshots produce.
    #[error(
        "the fetcher state of {provider} does not come from this archive: {reason}. A backfill \
         resumes only its own runs over the same snapshots; to add history to a source that has \
         already published, backfill into a provider of another name"
    )]
    StateMismatch {
        /// The provider instance (the source of its events).
        provider: String,
        /// The first difference found.
        reason: String,
    },
    /// The log already holds later observations of hosts the plan would publish events for.
    #[error("{}", describe_conflicts(.0))]
    Conflicts(Vec<Conflict>),
}

/// A plan's event that would be appended after a later observation of its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The host.
    pub host_id: String,
    /// When the backfilled event was observed.
    pub backfilled_at: Timestamp,
    /// The latest observation of the host already in the log.
    pub logged_at: Timestamp,
}

fn describe_conflicts(conflicts: &[Conflict]) -> String {
    let mut text = format!(
        "the log already holds later observations of {} host(s) than this archive's, and the \
         log is folded in order, so appending older ones would rewrite their history wrongly \
         (nothing was published):",
        conflicts.len()
    );
    for c in conflicts.iter().take(5) {
        text.push_str(&format!(
            "\n  {}: archive {}, log already at {}",
            c.host_id,
            c.backfilled_at.to_rfc3339(),
            c.logged_at.to_rfc3339()
        ));
    }
    if conflicts.len() > 5 {
        text.push_str(&format!("\n  … and {} more", conflicts.len() - 5));
    }
    text.push_str(
        "\nBackfill before the fetcher first runs, only snapshots older than what the log holds \
         for those hosts, or into an empty topic (then replay).",
    );
    text
}

/// Where a snapshot's hosts are.
#[derive(Debug, Clone, PartialEq)]
enum Content {
    /// A whole file (an export or a plugin's output).
    File(PathBuf),
    /// The `hosts` of one line of a listings file.
    Hosts(serde_json::Value),
}

/// One dated snapshot of the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the provider was in this state.
    pub observed_at: Timestamp,
    /// Where it came from (`file` or `file:line`), for people.
    pub origin: String,
    content: Content,
}

/// Finds every snapshot of an archive (a file or a directory), oldest first. Two snapshots of
/// the same time, a file without a date in its name, or a listings line that is not a
/// listing is an error that names it.
pub fn find_snapshots(path: &Path) -> Result<Vec<Snapshot>, BackfillError> {
    let archive = |reason: String| BackfillError::Archive(reason);
    let meta = std::fs::metadata(path).map_err(|e| archive(format!("{}: {e}", path.display())))?;
    let files = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| archive(format!("{}: {e}", path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && extension(p).is_some_and(|e| SNAPSHOT_EXTENSIONS.contains(&e.as_str()))
            })
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut snapshots = Vec::new();
    for file in files {
        if is_listings_file(&file) {
            snapshots.extend(listings(&file)?);
        } else {
            let observed_at = date_in_name(&file).ok_or_else(|| {
                archive(format!(
                    "{}: no date in the file name; name snapshots by their date \
                     (pdx1-2025-12-01.csv, 2025-12-01T06:00:00Z.json, export_20251201.yaml) \
                     or put them in a .jsonl listings file with observed_at",
                    file.display()
                ))
            })?;
            snapshots.push(Snapshot {
                observed_at,
                origin: file.display().to_string(),
                content: Content::File(file),
            });
        }
    }
    if snapshots.is_empty() {
        return Err(archive(format!(
            "{}: no snapshots (.csv, .yaml, .yml, .json exports or .jsonl listings)",
            path.display()
        )));
    }
    snapshots.sort_by_key(|s| s.observed_at);
    if let Some(pair) = snapshots
        .windows(2)
        .find(|w| w[0].observed_at == w[1].observed_at)
    {
        return Err(archive(format!(
            "{} and {} are both snapshots of {}: their order is unknown; keep one",
            pair[0].origin,
            pair[1].origin,
            pair[0].observed_at.to_rfc3339()
        )));
    }
    Ok(snapshots)
}

const SNAPSHOT_EXTENSIONS: [&str; 6] = ["csv", "yaml", "yml", "json", "jsonl", "ndjson"];

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn is_listings_file(path: &Path) -> bool {
    matches!(extension(path).as_deref(), Some("jsonl" | "ndjson"))
}

/// The snapshots of a listings file: one `{"observed_at", "hosts"}` object a line.
fn listings(file: &Path) -> Result<Vec<Snapshot>, BackfillError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        observed_at: String,
        hosts: serde_json::Value,
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| BackfillError::Archive(format!("{}: {e}", file.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{}:{}", file.display(), i + 1);
        let bad = |reason: String| {
            BackfillError::Archive(format!(
                "{origin}: {reason}; each line is {{\"observed_at\": \"2025-12-01T06:00:00Z\", \"hosts\": [...]}}"
            ))
        };
        let parsed: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let observed_at = Timestamp::parse_rfc3339(&parsed.observed_at).map_err(|_| {
            bad(format!(
                "observed_at {:?} is not an RFC 3339 time",
                parsed.observed_at
            ))
        })?;
        out.push(Snapshot {
            observed_at,
            origin,
            content: Content::Hosts(parsed.hosts),
        });
    }
    Ok(out)
}

/// The date (and time, if any) in a file name: `YYYY-MM-DD` or `YYYYMMDD`, optionally followed
/// by `THH:MM:SS`, `THHMMSS` or `_HH-MM-SS`, in UTC. Midnight when there is no time.
pub fn date_in_name(path: &Path) -> Option<Timestamp> {
    let name = path.file_stem()?.to_str()?;
    let bytes = name.as_bytes();
    (0..bytes.len()).find_map(|start| {
        // A date starts at a digit that does not continue a longer number.
        if start > 0 && bytes[start - 1].is_ascii_digit() {
            return None;
        }
        date_at(&name[start..])
    })
}

fn date_at(text: &str) -> Option<Timestamp> {
    let digits = |s: &str, n: usize| -> Option<u32> {
        let part = s.get(..n)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day, rest) = if text.get(4..5) == Some("-") && text.get(7..8) == Some("-") {
        (
            digits(text, 4)?,
            digits(&text[5..], 2)?,
            digits(&text[8..], 2)?,
            &text[10..],
        )
    } else {
        (
            digits(text, 4)?,
            digits(&text[4..], 2)?,
            digits(&text[6..], 2)?,
            text.get(8..)?,
        )
    };
    if rest.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return None; // part of a longer number
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = time_at(rest).unwrap_or_default();
    Some(Timestamp::from(date.and_time(time).and_utc()))
}

fn time_at(rest: &str) -> Option<chrono::NaiveTime> {
    let rest = rest.strip_prefix(['T', 't', '_', ' '])?;
    let compact: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ':' || *c == '-')
        .filter(char::is_ascii_digit)
        .collect();
    let field = |i: usize| compact.get(i..i + 2).and_then(|s| s.parse().ok());
    let (h, m, s) = (field(0)?, field(2)?, field(4).unwrap_or(0));
    chrono::NaiveTime::from_hms_opt(h, m, s)
}

/// Reads one snapshot as the provider would have listed it then.
pub fn read_listing(
    provider: &ProviderConfig,
    snapshot: &Snapshot,
) -> Result<Listing, BackfillError> {
    let at = snapshot.observed_at;
    let rejected = |e: crate::provider::ProviderError| BackfillError::Archive(e.to_string());
    match (provider, &snapshot.content) {
        (ProviderConfig::DcExport(c), Content::File(file)) => {
            let config = DcExportConfig {
                path: file.clone(),
                ..c.clone()
            };
            DcExport::new(config).read(at).map_err(rejected)
        }
        (ProviderConfig::DcExport(c), Content::Hosts(hosts)) => DcExport::new(c.clone())
            .listing_from_json(hosts.clone(), &snapshot.origin, at)
            .map_err(rejected),
        (ProviderConfig::Exec(c), content) => {
            let hosts = match content {
                Content::Hosts(hosts) => hosts.clone(),
                Content::File(file) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| BackfillError::Archive(format!("{}: {e}", file.display())))?;
                    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                        BackfillError::Archive(format!("{}: invalid JSON: {e}", file.display()))
                    })?;
                    value.get("hosts").cloned().ok_or_else(|| {
                        BackfillError::Archive(format!(
                            "{}: expected {{\"hosts\": [...]}} as the plugin prints it",
                            file.display()
                        ))
                    })?
                }
            };
            let serde_json::Value::Array(hosts) = hosts else {
                return Err(BackfillError::Archive(format!(
                    "{}: \"hosts\" is not a list",
                    snapshot.origin
                )));
            };
            Ok(ExecProvider::new(c.clone()).listing_from_json(hosts, at))
        }
        (ProviderConfig::AwsEc2(c), _) => Err(BackfillError::Unsupported {
            name: c.name.clone(),
            kind: "aws-ec2",
        }),
    }
}

/// What one snapshot adds to the log.
#[derive(Debug, Clone)]
pub struct Step {
    /// When the snapshot was taken.
    pub observed_at: Timestamp,
    /// Where it came from.
    pub origin: String,
    /// Hosts it lists.
    pub listed: usize,
    /// Bad entries (reported; while there are any, no host is declared missing).
    pub problems: Vec<String>,
    /// The events the fetcher would have published for it.
    pub events: Vec<HostEvent>,
}

impl Step {
    /// Events by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.events {
            *counts.entry(e.kind.as_str()).or_default() += 1;
        }
        counts
    }
}

/// Every snapshot of an archive turned into events, as one provider instance (`source`) would
/// have published them, starting from nothing.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The provider instance the events are published as.
    pub source: String,
    /// The steps, oldest first.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Reads every snapshot and diffs each against the state the previous ones left, with the
    /// fetcher's diff and grace for missing hosts. `progress` is called after each snapshot.
    pub fn build(
        provider: &ProviderConfig,
        snapshots: &[Snapshot],
        missing_grace_micros: i64,
        mut progress: impl FnMut(&Step),
    ) -> Result<Plan, BackfillError> {
        let fetcher = crate::fetcher::build_provider(provider);
        let (source, kind) = (fetcher.name().to_owned(), fetcher.kind().to_owned());
        let mut known: HashMap<String, KnownHost> = HashMap::new();
        let mut steps = Vec::with_capacity(snapshots.len());
        for snapshot in snapshots {
            let listing = read_listing(provider, snapshot)?;
            let d = diff(&known, &listing, missing_grace_micros);
            let step = Step {
                observed_at: snapshot.observed_at,
                origin: snapshot.origin.clone(),
                listed: listing.hosts.len(),
                problems: listing.problems,
                events: events_of(&d, &kind, &source, snapshot.observed_at),
            };
            advance(&mut known, &d);
            progress(&step);
            steps.push(step);
        }
        Ok(Plan { source, steps })
    }

    /// All events of the plan.
    pub fn events(&self) -> impl Iterator<Item = &HostEvent> {
        self.steps.iter().flat_map(|s| &s.events)
    }

    /// The index of the first step still to publish, given what the source's fetcher state
    /// holds (the last event it published for each host): 0 for a source that has published
    /// nothing; after the last step it committed when the state is exactly what this plan's
    /// steps up to then leave. Anything else is a [`BackfillError::StateMismatch`].
    pub fn resume_from(
        &self,
        committed: &HashMap<String, HostEvent>,
    ) -> Result<usize, BackfillError> {
        let Some(last) = committed.values().map(|e| e.observed_at).max() else {
            return Ok(0);
        };
        let next = self.steps.partition_point(|s| s.observed_at <= last);
        let mut expected: HashMap<&str, (&HostState, Timestamp)> = HashMap::new();
        for e in self.steps[..next].iter().flat_map(|s| &s.events) {
            expected.insert(&e.host_id, (&e.state, e.observed_at));
        }
        let mismatch = |reason: String| BackfillError::StateMismatch {
            provider: self.source.clone(),
            reason,
        };
        for (host_id, event) in committed {
            match expected.remove(host_id.as_str()) {
                None => {
                    return Err(mismatch(format!(
                        "it has {host_id} (observed {}), which these snapshots never list by then",
                        event.observed_at.to_rfc3339()
                    )));
                }
                Some((state, at)) if *state != event.state || at != event.observed_at => {
                    return Err(mismatch(format!(
                        "its last event of {host_id} (observed {}) is not the one these snapshots give",
                        event.observed_at.to_rfc3339()
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(host_id) = expected.keys().min() {
            return Err(mismatch(format!(
                "it lacks {host_id}, which these snapshots list by {}",
                last.to_rfc3339()
            )));
        }
        Ok(next)
    }
}

/// Refuses steps whose events would be appended after a later (or equal) observation of the
/// same host: `latest` is the latest observation of each host the log already holds.
pub fn check_against_log(
    steps: &[Step],
    latest: &HashMap<String, Timestamp>,
) -> Result<(), BackfillError> {
    let mut conflicts: BTreeMap<&str, Conflict> = BTreeMap::new();
    for event in steps.iter().flat_map(|s| &s.events) {
        if let Some(&logged_at) = latest.get(&event.host_id)
            && logged_at >= event.observed_at
        {
            conflicts.entry(&event.host_id).or_insert_with(|| Conflict {
                host_id: event.host_id.clone(),
                backfilled_at: event.observed_at,
                logged_at,
            });
        }
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(BackfillError::Conflicts(conflicts.into_values().collect()))
    }
}

/// Events of each kind, in the schema's order of kinds, for summaries.
pub fn count_kinds<'a>(events: impl Iterator<Item = &'a HostEvent>) -> Vec<(EventKind, usize)> {
    let mut counts: Vec<(EventKind, usize)> = EventKind::ALL.iter().map(|k| (*k, 0)).collect();
    for e in events {
        if let Some(c) = counts.iter_mut().find(|(k, _)| *k == e.kind) {
            c.1 += 1;
        }
    }
    counts.retain(|(_, n)| *n > 0);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_schemas::Lifecycle;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("a time")
    }

    #[test]
    fn dates_are_read_from_file_names() {
        let d = |name: &str| date_in_name(Path::new(name));
        assert_eq!(d("pdx1-2025-12-01.csv"), Some(at("2025-12-01T00:00:00Z")));
        assert_eq!(d("export_20251201.yaml"), Some(at("2025-12-01T00:00:00Z")));
        assert_eq!(
            d("2025-12-01T06:30:00Z.json"),
            Some(at("2025-12-01T06:30:00Z"))
        );
        assert_eq!(
            d("dump-20251201T063000Z.csv"),
            Some(at("2025-12-01T06:30:00Z"))
        );
        assert_eq!(
            d("dump-2025-12-01_06-30.csv"),
            Some(at("2025-12-01T06:30:00Z"))
        );
        assert_eq!(d("inventory.csv"), None);
        assert_eq!(d("rack-123456789.csv"), None, "not a date: a longer number");
        assert_eq!(d("2025-13-01.csv"), None, "no 13th month");
        assert_eq!(d("v2-2025-02-30.csv"), None, "no 30 February");
    }

    fn dc_provider() -> ProviderConfig {
        ProviderConfig::DcExport(DcExportConfig {
            name: "dc-pdx1".into(),
            path: PathBuf::from("unused"),
            format: Default::default(),
            allow_empty: false,
        })
    }

    const HEADER: &str = "serial,hostname,site,status,role\n";

    fn archive(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, rows) in files {
            std::fs::write(dir.path().join(name), format!("{HEADER}{rows}")).expect("write");
        }
        dir
    }

    fn plan(dir: &Path) -> Plan {
        let snapshots = find_snapshots(dir).expect("snapshots");
        Plan::build(&dc_provider(), &snapshots, 0, |_| {}).expect("plan")
    }

    #[test]
    fn snapshots_become_the_fetchers_events_in_time_order() {
        // Written out of order: the dates, not the names' order, decide.
        let dir = archive(&[
            (
                "b-2025-01-15.csv",
                "A1,web-1,pdx1,maintenance,web\nB2,db-1,pdx1,active,db\n",
            ),
            (
                "a-2025-01-08.csv",
                "A1,web-1,pdx1,active,web\nB2,db-1,pdx1,active,db\n",
            ),
            ("c-2025-01-22.csv", "A1,web-1,pdx1,active,web\n"),
        ]);
        let p = plan(dir.path());
        let kinds: Vec<Vec<(&str, EventKind)>> = p
            .steps
            .iter()
            .map(|s| {
                s.events
                    .iter()
                    .map(|e| (e.host_id.as_str(), e.kind))
                    .collect()
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                vec![
                    ("dc/pdx1/A1", EventKind::HostDiscovered),
                    ("dc/pdx1/B2", EventKind::HostDiscovered)
                ],
                vec![("dc/pdx1/A1", EventKind::HostLifecycleChanged)],
                vec![
                    ("dc/pdx1/A1", EventKind::HostLifecycleChanged),
                    ("dc/pdx1/B2", EventKind::HostWentMissing)
                ],
            ]
        );
        assert!(
            p.events()
                .all(|e| e.source == "dc-pdx1" && e.provider == "dc")
        );
        assert_eq!(p.steps[1].events[0].observed_at, at("2025-01-15T00:00:00Z"));
        assert_eq!(p.steps[2].events[1].state.lifecycle, Lifecycle::Missing);
    }

    #[test]
    fn listings_files_hold_one_snapshot_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = |status: &str| serde_json::json!({"serial": "A1", "hostname": "web-1", "site": "pdx1", "status": status});
        let lines = [
            serde_json::json!({"observed_at": "2025-02-01T00:00:00Z", "hosts": [host("maintenance")]}),
            serde_json::json!({"observed_at": "2025-01-01T00:00:00Z", "hosts": [host("active")]}),
        ];
        let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
        std::fs::write(dir.path().join("history.jsonl"), text.join("\n")).expect("write");
        let p = plan(dir.path());
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[0].events[0].kind, EventKind::HostDiscovered);
        assert_eq!(
            p.steps[1].events[0].state.lifecycle,
            Lifecycle::OutOfService
        );
        assert!(
            p.steps[1].origin.ends_with("history.jsonl:1"),
            "{}",
            p.steps[1].origin
        );
    }

    #[test]
    fn bad_archives_are_refused_with_what_to_do() {
        let undated = archive(&[("inventory.csv", "A1,web-1,pdx1,active,web\n")]);
        let err = find_snapshots(undated.path())
            .expect_err("no date")
            .to_string();
        assert!(
            err.contains("inventory.csv: no date in the file name"),
            "{err}"
        );
        let twice = archive(&[
            ("a-2025-01-08.csv", "A1,web-1,pdx1,active,web\n"),
            ("b-20250108.csv", "A1,web-1,pdx1,active,web\n"),
        ]);
        let err = find_snapshots(twice.path())
            .expect_err("same time")
            .to_string();
        assert!(err.contains("order is unknown"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("h.jsonl"),
            "{\"observed_at\": \"yesterday\", \"hosts\": []}\n",
        )
        .expect("write");
        let err = find_snapshots(dir.path())
            .expect_err("bad time")
            .to_string();
        assert!(
            err.contains("h.jsonl:1") && err.contains("not an RFC 3339 time"),
            "{err}"
        );
        let empty = tempfile::tempdir().expect("tempdir");
        let err = find_snapshots(empty.path()).expect_err("empty").to_string();
        assert!(err.contains("no snapshots"), "{err}");
    }

    fn committed(p: &Plan, steps: usize) -> HashMap<String, HostEvent> {
        let mut state = HashMap::new();
        for e in p.steps[..steps].iter().flat_map(|s| &s.events) {
            state.insert(e.host_id.clone(), e.clone());
        }
        state
    }

    #[test]
    fn a_rerun_resumes_after_the_last_committed_snapshot() {
        let dir = archive(&[
            ("2025-01-01.csv", "A1,web-1,pdx1,active,web\n"),
            ("2025-01-08.csv", "A1,web-1,pdx1,active,db\n"),
            ("2025-01-15.csv", "A1,web-1,pdx1,active,db\n"),
            ("2025-01-22.csv", "A1,web-1,pdx1,active,web\n"),
        ]);
        let p = plan(dir.path());
        assert_eq!(p.resume_from(&HashMap::new()).expect("fresh"), 0);
        assert_eq!(p.resume_from(&committed(&p, 1)).expect("one done"), 1);
        // The third snapshot changed nothing: after the second, the next to do is the third
        // (publishing nothing again is harmless), and the state of 22 January, equal in
        // content to 1 January's, is told apart by its time.
        assert_eq!(p.resume_from(&committed(&p, 2)).expect("two done"), 2);
        assert_eq!(p.resume_from(&committed(&p, 4)).expect("all done"), 4);

        let mut other = committed(&p, 2);
        other.get_mut("dc/pdx1/A1").expect("A1").state.role = Some("cache".into());
        let err = p
            .resume_from(&other)
            .expect_err("not this archive's")
            .to_string();
        assert!(err.contains("not the one these snapshots give"), "{err}");
        let mut stranger = committed(&p, 2);
        let mut e = stranger["dc/pdx1/A1"].clone();
        e.host_id = "dc/pdx1/Z9".into();
        stranger.insert(e.host_id.clone(), e);
        let err = p
            .resume_from(&stranger)
            .expect_err("unknown host")
            .to_string();
        assert!(err.contains("dc/pdx1/Z9"), "{err}");
    }

    #[test]
    fn events_older_than_the_log_are_refused() {
        let dir = archive(&[
            (
                "2025-01-01.csv",
                "A1,web-1,pdx1,active,web\nB2,db-1,pdx1,active,db\n",
            ),
            (
                "2025-01-08.csv",
                "A1,web-1,pdx1,active,db\nB2,db-1,pdx1,active,db\n",
            ),
        ]);
        let p = plan(dir.path());
        check_against_log(&p.steps, &HashMap::new()).expect("an empty log");
        let older = HashMap::from([("dc/pdx1/A1".to_owned(), at("2024-12-01T00:00:00Z"))]);
        check_against_log(&p.steps, &older).expect("the log is older");
        let newer = HashMap::from([("dc/pdx1/A1".to_owned(), at("2025-01-08T00:00:00Z"))]);
        match check_against_log(&p.steps, &newer) {
            Err(BackfillError::Conflicts(c)) => {
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].backfilled_at, at("2025-01-01T00:00:00Z"));
                let text = BackfillError::Conflicts(c).to_string();
                assert!(text.contains("dc/pdx1/A1: archive 2025-01-01"), "{text}");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Only the steps still to publish are checked.
        check_against_log(&p.steps[2..], &newer).expect("nothing left");
    }
}

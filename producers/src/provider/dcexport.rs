//! Data-centre inventory export: a CSV, YAML or JSON file, or a directory of them.
//!
//! Columns (CSV header names; the same keys in YAML/JSON records):
//!
//! | column   | required | meaning                                                     |
//! |----------|----------|-------------------------------------------------------------|
//! | serial   | yes      | chassis serial; with `site` it forms the host id            |
//! | hostname | yes      | host name                                                   |
//! | site     | yes      | data-centre site, e.g. `pdx1` (becomes the region)          |
//! | status   | yes      | lifecycle word, see [`map_status`]                          |
//! | zone     | no       | room, hall or row                                           |
//! | role     | no       | what the host does                                          |
//! | team     | no       | owning team                                                 |
//! | ips      | no       | addresses, separated by `;` or spaces (a list in YAML/JSON) |
//! | model    | no       | hardware model                                              |
//! | *other*  | no       | any other column becomes an attribute (empty cells skipped) |
//!
//! Host ids are `dc/SITE/SERIAL`. A bad row is reported with file, line and reason and
//! makes the listing partial: the good rows count, but no host is declared missing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use hostledger_schemas::{HostState, Lifecycle, Timestamp};
use serde::Deserialize;

use super::{ListingFuture, Provider, ProviderError};
use crate::diff::{ListedHost, Listing};

/// File format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// By file extension: `.csv`, `.yaml`/`.yml`, `.json`.
    #[default]
    Auto,
    /// Comma-separated with a header row.
    Csv,
    /// A YAML list of records (or `hosts:` with a list).
    Yaml,
    /// A JSON array of records (or `{"hosts": [...]}`).
    Json,
}

/// Settings of one data-centre export provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcExportConfig {
    /// Instance name; the `source` of its events.
    pub name: String,
    /// A file, or a directory whose `.csv`, `.yaml`, `.yml` and `.json` files are read.
    pub path: PathBuf,
    /// File format; `auto` picks by extension.
    #[serde(default)]
    pub format: ExportFormat,
    /// Accept a listing with no hosts at all. Off by default: an empty export is far more
    /// often a truncated file than an empty data centre, and would mark every host missing.
    #[serde(default)]
    pub allow_empty: bool,
}

/// Maps a data-centre status word onto the lifecycle (case-insensitive).
///
/// - `provisioning`, `staged`, `racked`, `build`, `planned` → Provisioning
/// - `active`, `in-service`, `in_service`, `production`, `live` → InService
/// - `maintenance`, `offline`, `failed`, `stopped`, `repair` → OutOfService
/// - `decommissioned`, `retired`, `disposed` → Retired
pub fn map_status(status: &str) -> Option<Lifecycle> {
    let lifecycle = match status.trim().to_ascii_lowercase().as_str() {
        "provisioning" | "staged" | "racked" | "build" | "planned" => Lifecycle::Provisioning,
        "active" | "in-service" | "in_service" | "production" | "live" => Lifecycle::InService,
        "maintenance" | "offline" | "failed" | "stopped" | "repair" => Lifecycle::OutOfService,
        "decommissioned" | "retired" | "disposed" => Lifecycle::Retired,
        _ => return None,
    };
    Some(lifecycle)
}

/// A data-centre export provider.
#[derive(Debug, Clone)]
pub struct DcExport {
    config: DcExportConfig,
}

impl DcExport {
    /// A provider reading `config.path`.
    pub fn new(config: DcExportConfig) -> Self {
        DcExport { config }
    }

    /// Reads the export now. Public so tools and tests can list without a fetcher.
    pub fn read(&self, observed_at: Timestamp) -> Result<Listing, ProviderError> {
        let unavailable = |reason: String| ProviderError::Unavailable {
            provider: self.config.name.clone(),
            reason,
        };
        let files = export_files(&self.config.path).map_err(unavailable)?;
        let mut listing = Listing {
            hosts: Vec::new(),
            observed_at,
            problems: Vec::new(),
        };
        let mut seen: HashSet<String> = HashSet::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| unavailable(format!("{}: {e}", file.display())))?;
            let format = match self.config.format {
                ExportFormat::Auto => format_of(file),
                f => f,
            };
            let records = match format {
                ExportFormat::Csv | ExportFormat::Auto => csv_records(&text),
                ExportFormat::Yaml => yaml_records(&text),
                ExportFormat::Json => json_records(&text),
            }
            .map_err(|reason| ProviderError::Rejected {
                provider: self.config.name.clone(),
                reason: format!("{}: {reason}", file.display()),
            })?;
            add_records(
                &mut listing,
                &mut seen,
                &file.display().to_string(),
                records,
            );
        }
        self.refuse_empty(&listing, &self.config.path.display().to_string())?;
        Ok(listing)
    }

    /// A listing from export records given as JSON (a list of records, or `{"hosts": [...]}`),
    /// as a JSON export file holds them; `place` names where they came from in problems.
    pub fn listing_from_json(
        &self,
        records: serde_json::Value,
        place: &str,
        observed_at: Timestamp,
    ) -> Result<Listing, ProviderError> {
        let records = value_records(records).map_err(|reason| ProviderError::Rejected {
            provider: self.config.name.clone(),
            reason: format!("{place}: {reason}"),
        })?;
        let mut listing = Listing {
            hosts: Vec::new(),
            observed_at,
            problems: Vec::new(),
        };
        add_records(&mut listing, &mut HashSet::new(), place, records);
        self.refuse_empty(&listing, place)?;
        Ok(listing)
    }

    fn refuse_empty(&self, listing: &Listing, place: &str) -> Result<(), ProviderError> {
        if listing.hosts.is_empty() && listing.problems.is_empty() && !self.config.allow_empty {
            return Err(ProviderError::Rejected {
                provider: self.config.name.clone(),
                reason: format!(
                    "{place} lists no hosts; refusing to treat that as an empty data centre (set allow_empty: true if it is one)"
                ),
            });
        }
        Ok(())
    }
}

/// Adds the hosts of `records` (from `file`) to `listing`; bad and duplicate records become
/// its problems.
fn add_records(listing: &mut Listing, seen: &mut HashSet<String>, file: &str, records: Records) {
    for (place, record) in records {
        match record.and_then(to_host) {
            Ok(host) if !seen.insert(host.host_id.clone()) => listing
                .problems
                .push(format!("{file}: {place}: duplicate host {}", host.host_id)),
            Ok(host) => listing.hosts.push(host),
            Err(reason) => listing.problems.push(format!("{file}: {place}: {reason}")),
        }
    }
}

impl Provider for DcExport {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &str {
        "dc"
    }

    fn list(&mut self) -> ListingFuture<'_> {
        let now = Timestamp::from(chrono::Utc::now());
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.read(now))
                .await
                .map_err(|e| ProviderError::Unavailable {
                    provider: self.config.name.clone(),
                    reason: format!("reader task failed: {e}"),
                })?
        })
    }
}

fn format_of(path: &Path) -> ExportFormat {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yaml" | "yml") => ExportFormat::Yaml,
        Some("json") => ExportFormat::Json,
        _ => ExportFormat::Csv,
    }
}

fn export_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension()
                        .and_then(|e| e.to_str())
                        .map(str::to_ascii_lowercase)
                        .as_deref(),
                    Some("csv" | "yaml" | "yml" | "json")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: no .csv, .yaml, .yml or .json files in this directory",
            path.display()
        ));
    }
    Ok(files)
}

/// One record as read, keyed by lower-case column name, with where it came from.
type Record = BTreeMap<String, Vec<String>>;
type Records = Vec<(String, Result<Record, String>)>;

fn csv_records(text: &str) -> Result<Records, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for required in ["serial", "hostname", "site", "status"] {
        if !headers.iter().any(|h| h == required) {
            return Err(format!(
                "the header row has no {required:?} column (it has {headers:?})"
            ));
        }
    }
    let mut out = Vec::new();
    for row in reader.records() {
        match row {
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line());
                let record = headers
                    .iter()
                    .zip(row.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| {
                        let values = if h == "ips" {
                            v.split([';', ' ', ','])
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        } else {
                            vec![v.to_owned()]
                        };
                        (h.clone(), values)
                    })
                    .collect();
                out.push((format!("line {line}"), Ok(record)));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.push((format!("line {line}"), Err(format!("malformed CSV: {e}"))));
            }
        }
    }
    Ok(out)
}

fn value_records(value: serde_json::Value) -> Result<Records, String> {
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut map) => match map.remove("hosts") {
            Some(serde_json::Value::Array(items)) => items,
            _ => return Err("expected a list of hosts, or an object with a \"hosts\" list".into()),
        },
        serde_json::Value::Null => Vec::new(),
        _ => return Err("expected a list of hosts, or an object with a \"hosts\" list".into()),
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let place = format!("record {}", i + 1);
            let serde_json::Value::Object(map) = item else {
                return (place, Err("not a mapping of column to value".into()));
            };
            let mut record = Record::new();
            let mut error = None;
            for (key, value) in map {
                let key = key.to_ascii_lowercase();
                let values = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) if s.trim().is_empty() => continue,
                    serde_json::Value::String(s) => vec![s.trim().to_owned()],
                    serde_json::Value::Number(n) => vec![n.to_string()],
                    serde_json::Value::Bool(b) => vec![b.to_string()],
                    serde_json::Value::Array(list) if key == "ips" => list
                        .into_iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect(),
                    other => {
                        error = Some(format!(
                            "column {key:?} has a nested value {other}; only scalars are allowed"
                        ));
                        break;
                    }
                };
                record.insert(key, values);
            }
            (place, error.map_or(Ok(record), Err))
        })
        .collect())
}

fn yaml_records(text: &str) -> Result<Records, String> {
    let value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    value_records(value)
}

fn json_records(text: &str) -> Result<Records, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    value_records(value)
}

fn to_host(mut record: Record) -> Result<ListedHost, String> {
    let mut take = |key: &str| {
        record
            .remove(key)
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
    };
    let serial = take("serial").ok_or("missing serial")?;
    let hostname = take("hostname").ok_or("missing hostname")?;
    let site = take("site").ok_or("missing site")?;
    let status = take("status").ok_or("missing status")?;
    if site.contains('/') || serial.contains('/') {
        return Err(format!(
            "site {site:?} and serial {serial:?} may not contain '/'"
        ));
    }
    let lifecycle = map_status(&status).ok_or_else(|| {
        format!("unknown status {status:?} (expected one of provisioning, active, maintenance, decommissioned, ...)")
    })?;
    let mut state = HostState::new(hostname, lifecycle, status);
    state.region = Some(site.clone());
    state.zone = take("zone");
    state.role = take("role");
    state.team = take("team");
    state.machine_type = take("model");
    state.addresses = record.remove("ips").unwrap_or_default();
    state.attributes = record
        .into_iter()
        .map(|(k, mut v)| (k, v.remove(0)))
        .collect();
    Ok(ListedHost {
        host_id: format!("dc/{site}/{serial}"),
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(path: &Path) -> DcExport {
        DcExport::new(DcExportConfig {
            name: "test".into(),
            path: path.to_owned(),
            format: ExportFormat::Auto,
            allow_empty: false,
        })
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    const CSV: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n\
        SRV1,log-1,pdx1,hall-a,active,log,obs,10.0.0.1;10.0.1.1,R650,A1\n\
        SRV2,db-1,pdx1,,maintenance,db,data,,R750,\n";

    #[test]
    fn reads_csv_rows_into_hosts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listing = provider(&write(dir.path(), "x.csv", CSV))
            .read(Timestamp(1))
            .expect("listing");
        assert!(listing.problems.is_empty(), "{:?}", listing.problems);
        assert_eq!(listing.hosts.len(), 2);
        let h = &listing.hosts[0];
        assert_eq!(h.host_id, "dc/pdx1/SRV1");
        assert_eq!(h.state.lifecycle, Lifecycle::InService);
        assert_eq!(h.state.addresses, ["10.0.0.1", "10.0.1.1"]);
        assert_eq!(
            h.state.attributes.get("rack").map(String::as_str),
            Some("A1")
        );
        assert_eq!(h.state.zone.as_deref(), Some("hall-a"));
        assert_eq!(listing.hosts[1].state.lifecycle, Lifecycle::OutOfService);
        assert!(listing.hosts[1].state.attributes.is_empty());
    }

    #[test]
    fn bad_rows_are_reported_with_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{CSV}SRV3,x-1,pdx1,,zombie,web,t,,,\nSRV1,dup,pdx1,,active,web,t,,,\n,nameless,pdx1,,active,,,,,\n"
        );
        let listing = provider(&write(dir.path(), "inv.csv", &text))
            .read(Timestamp(1))
            .expect("listing");
        assert_eq!(listing.hosts.len(), 2, "good rows still listed");
        assert_eq!(listing.problems.len(), 3, "{:?}", listing.problems);
        assert!(
            listing.problems[0].contains("inv.csv: line 4: unknown status \"zombie\""),
            "{}",
            listing.problems[0]
        );
        assert!(
            listing.problems[1].contains("line 5: duplicate host dc/pdx1/SRV1"),
            "{}",
            listing.problems[1]
        );
        assert!(
            listing.problems[2].contains("line 6: missing serial"),
            "{}",
            listing.problems[2]
        );
    }

    #[test]
    fn missing_required_column_rejects_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = provider(&write(
            dir.path(),
            "x.csv",
            "serial,hostname,status\nA,b,active\n",
        ))
        .read(Timestamp(1))
        .unwrap_err();
        assert!(err.to_string().contains("no \"site\" column"), "{err}");
    }

    #[test]
    fn empty_export_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "x.csv", "serial,hostname,site,status\n");
        let err = provider(&path).read(Timestamp(1)).unwrap_err();
        assert!(err.to_string().contains("lists no hosts"), "{err}");
        let mut p = provider(&path);
        p.config.allow_empty = true;
        assert!(p.read(Timestamp(1)).expect("allowed").hosts.is_empty());
    }

    #[test]
    fn missing_file_is_unavailable_not_empty() {
        let err = provider(Path::new("/nonexistent/inventory.csv"))
            .read(Timestamp(1))
            .unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable { .. }));
        assert!(
            err.to_string().contains("/nonexistent/inventory.csv"),
            "{err}"
        );
    }

    #[test]
    fn yaml_and_json_in_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "a.yaml",
            "hosts:\n  - {serial: Y1, hostname: y-1, site: fra2, status: Active, ips: [10.1.0.1], rack: B2, u: 12}\n",
        );
        write(
            dir.path(),
            "b.json",
            r#"[{"serial":"J1","hostname":"j-1","site":"fra2","status":"staged"}, "oops"]"#,
        );
        write(dir.path(), "notes.txt", "ignored");
        let listing = provider(dir.path()).read(Timestamp(1)).expect("listing");
        let ids: Vec<_> = listing.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(ids, ["dc/fra2/Y1", "dc/fra2/J1"]);
        assert_eq!(
            listing.hosts[0]
                .state
                .attributes
                .get("u")
                .map(String::as_str),
            Some("12")
        );
        assert_eq!(listing.hosts[1].state.lifecycle, Lifecycle::Provisioning);
        assert_eq!(listing.problems.len(), 1);
        assert!(
            listing.problems[0].contains("b.json: record 2: not a mapping"),
            "{}",
            listing.problems[0]
        );
    }

    #[test]
    fn invalid_yaml_rejects_the_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = provider(&write(dir.path(), "x.yaml", "hosts: [unclosed"))
            .read(Timestamp(1))
            .unwrap_err();
        assert!(matches!(err, ProviderError::Rejected { .. }));
        assert!(err.to_string().contains("invalid YAML"), "{err}");
    }
}

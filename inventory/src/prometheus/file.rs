//! The targets file: its format from its name, written atomically and only when its content
//! changes, with what could not be listed logged once per distinct set of problems.

use std::path::{Path, PathBuf};

use super::{Discovery, PORT_ANNOTATION, SdSettings, TargetGroup, to_json};
use crate::atomic;

/// The file's format, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of groups.
    Json,
    /// A YAML list of groups (`.yml`, `.yaml`).
    Yaml,
}

impl Format {
    /// The format a file of this name is written in.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml") => {
                Format::Yaml
            }
            _ => Format::Json,
        }
    }

    /// The file's bytes.
    pub fn render(self, groups: &[TargetGroup]) -> Result<Vec<u8>, std::io::Error> {
        Ok(match self {
            Format::Json => to_json(groups),
            Format::Yaml => {
                if groups.is_empty() {
                    b"[]\n".to_vec()
                } else {
                    serde_yaml::to_string(groups)
                        .map_err(|e| {
                            std::io::Error::other(format!("cannot render the targets as YAML: {e}"))
                        })?
                        .into_bytes()
                }
            }
        })
    }
}

/// `wrote FILE: N targets (M hosts without an address skipped)`.
pub fn summary(path: &Path, discovery: &Discovery) -> String {
    let n = discovery.groups.len();
    let m = discovery.without_address.len();
    format!(
        "wrote {}: {n} target{} ({m} host{} without an address skipped)",
        path.display(),
        if n == 1 { "" } else { "s" },
        if m == 1 { "" } else { "s" },
    )
}

/// The file and what was last written to it.
pub struct Targets {
    path: PathBuf,
    format: Format,
    /// What goes into the file.
    pub settings: SdSettings,
    /// The file's content as last written (or found at start).
    written: Option<Vec<u8>>,
    /// The problems last warned about, so that a watch does not repeat them on every change.
    warned: Option<Discovery>,
}

impl Targets {
    /// The file at `path`, written with `settings`.
    pub fn new(path: &Path, settings: SdSettings) -> Self {
        Targets {
            path: path.to_owned(),
            format: Format::of(path),
            settings,
            written: None,
            warned: None,
        }
    }

    /// Logs what could not be listed, once per distinct set of problems.
    pub fn warn(&mut self, d: &Discovery) {
        // Hosts without a status are only between the projector's two writes: not a problem.
        let problems = Discovery {
            groups: Vec::new(),
            without_status: 0,
            ..d.clone()
        };
        if self.warned.as_ref() == Some(&problems) {
            return;
        }
        for host_id in &d.without_address {
            tracing::warn!(%host_id, "host has no address; not listed");
        }
        for b in &d.bad_ports {
            tracing::warn!(host_id = %b.host_id, value = %b.value, default_port = self.settings.port, "annotation {PORT_ANNOTATION} is not a port (1-65535); using the default port");
        }
        self.warned = Some(problems);
    }

    /// Writes the file if its content differs from what it holds. Returns whether it wrote.
    pub fn write(&mut self, d: &Discovery) -> Result<bool, std::io::Error> {
        let bytes = self.format.render(&d.groups)?;
        if self.written.is_none() {
            self.written = std::fs::read(&self.path).ok();
        }
        if self.written.as_ref() == Some(&bytes) {
            return Ok(false);
        }
        atomic::write(&self.path, &bytes)?;
        self.written = Some(bytes);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn format_follows_the_file_name() {
        assert_eq!(Format::of(Path::new("/x/targets.json")), Format::Json);
        assert_eq!(Format::of(Path::new("targets.yml")), Format::Yaml);
        assert_eq!(Format::of(Path::new("targets.YAML")), Format::Yaml);
        assert_eq!(Format::of(Path::new("targets")), Format::Json);
        let group = TargetGroup {
            targets: vec!["10.0.0.1:9100".into()],
            labels: BTreeMap::from([("role".to_owned(), "log".to_owned())]),
        };
        let yaml = Format::Yaml.render(&[group]).expect("renders");
        assert_eq!(
            String::from_utf8(yaml).expect("utf-8"),
            "- targets:\n  - 10.0.0.1:9100\n  labels:\n    role: log\n"
        );
        assert_eq!(Format::Yaml.render(&[]).expect("renders"), b"[]\n");
    }

    #[test]
    fn summary_counts_targets_and_skipped_hosts() {
        let mut d = Discovery::default();
        assert_eq!(
            summary(Path::new("t.json"), &d),
            "wrote t.json: 0 targets (0 hosts without an address skipped)"
        );
        d.groups.push(TargetGroup {
            targets: vec!["a:1".into()],
            labels: BTreeMap::new(),
        });
        d.without_address.push("dc/x".into());
        assert_eq!(
            summary(Path::new("t.json"), &d),
            "wrote t.json: 1 target (1 host without an address skipped)"
        );
    }
}

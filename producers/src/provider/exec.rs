//! Exec plugin: any program that prints hosts as JSON becomes a provider, without
//! recompiling hostledger.
//!
//! The program is run with the configured arguments and environment, no standard input, and
//! a timeout. It prints one JSON object on standard output:
//!
//! ```json
//! {"hosts": [
//!   {"id": "eu-west/vm-1842", "name": "web-1", "lifecycle": "InService", "status": "running",
//!    "region": "eu-west", "zone": "eu-west-b", "role": "web", "team": "storefront",
//!    "addresses": ["10.3.0.12"], "machine_type": "m.large", "attributes": {"image": "deb-12"}}
//! ]}
//! ```
//!
//! `id` (unique within the plugin), `name` and `lifecycle` (`Provisioning`, `InService`,
//! `OutOfService`, `Retired`) are required; the rest is optional. Host ids become
//! `PROVIDER/ID`, events carry provider `exec:PROVIDER`. A non-zero exit, a timeout, or output
//! that is not such an object is a failed listing (nothing is published), reported with the
//! program's stderr. An entry that is wrong is reported and makes the listing partial: the
//! other hosts count, but none is declared missing.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hostledger_schemas::{HostState, Lifecycle, Timestamp};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{ListingFuture, Provider, ProviderError};
use crate::diff::{ListedHost, Listing};

fn default_timeout_secs() -> u64 {
    60
}

/// Settings of one exec plugin provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Instance name; the `source` of its events.
    pub name: String,
    /// Provider name used in host ids (`PROVIDER/ID`) and events (`exec:PROVIDER`).
    pub provider: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Seconds the program may run.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Extra environment variables for the program.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the program (default: the fetcher's).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    hosts: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    lifecycle: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    machine_type: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// Longest stderr excerpt kept in an error.
const STDERR_EXCERPT: usize = 2048;

/// An exec plugin provider.
#[derive(Debug, Clone)]
pub struct ExecProvider {
    config: ExecConfig,
    kind: String,
}

impl ExecProvider {
    /// A provider running `config.command`.
    pub fn new(config: ExecConfig) -> Self {
        let kind = format!("exec:{}", config.provider);
        ExecProvider { config, kind }
    }

    /// Runs the program once and parses its output.
    pub async fn read(&self, observed_at: Timestamp) -> Result<Listing, ProviderError> {
        let fail = |reason: String| ProviderError::Unavailable {
            provider: self.config.name.clone(),
            reason,
        };
        let (program, args) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| fail("command is empty".into()))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .envs(&self.config.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.config.workdir {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run {program:?}: {e}")))?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (o, e, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait()
            );
            o.and(e).and(status).map(|status| (status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(timeout, run).await {
            Err(_) => {
                return Err(fail(format!(
                    "{program:?} did not finish within {} s and was killed",
                    self.config.timeout_secs
                )));
            }
            Ok(Err(e)) => return Err(fail(format!("{program:?}: {e}"))),
            Ok(Ok(r)) => r,
        };
        let stderr_excerpt = || {
            let text = String::from_utf8_lossy(&err);
            let text = text.trim();
            if text.is_empty() {
                "(no stderr)".to_owned()
            } else if text.len() > STDERR_EXCERPT {
                let cut = (0..=STDERR_EXCERPT)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                format!("stderr: {}…", &text[..cut])
            } else {
                format!("stderr: {text}")
            }
        };
        if !status.success() {
            return Err(fail(format!(
                "{program:?} exited with {status}; {}",
                stderr_excerpt()
            )));
        }
        let output: Output = serde_json::from_slice(&out).map_err(|e| ProviderError::Rejected {
            provider: self.config.name.clone(),
            reason: format!(
                "{program:?} printed something that is not {{\"hosts\": [...]}}: {e}; {}",
                stderr_excerpt()
            ),
        })?;
        Ok(self.listing_from_json(output.hosts, observed_at))
    }

    /// A listing from host entries as the program prints them (the `hosts` list); wrong and
    /// duplicate entries become its problems.
    pub fn listing_from_json(
        &self,
        hosts: Vec<serde_json::Value>,
        observed_at: Timestamp,
    ) -> Listing {
        let mut listing = Listing {
            hosts: Vec::new(),
            observed_at,
            problems: Vec::new(),
        };
        let mut seen = HashSet::new();
        for (i, value) in hosts.into_iter().enumerate() {
            let place = format!("host {}", i + 1);
            match serde_json::from_value::<Entry>(value)
                .map_err(|e| e.to_string())
                .and_then(|e| self.to_host(e))
            {
                Ok(host) if !seen.insert(host.host_id.clone()) => {
                    listing
                        .problems
                        .push(format!("{place}: duplicate id {}", host.host_id));
                }
                Ok(host) => listing.hosts.push(host),
                Err(reason) => listing.problems.push(format!("{place}: {reason}")),
            }
        }
        listing
    }

    fn to_host(&self, e: Entry) -> Result<ListedHost, String> {
        if e.id.trim().is_empty() {
            return Err("id is empty".into());
        }
        if e.name.trim().is_empty() {
            return Err(format!("{}: name is empty", e.id));
        }
        let lifecycle = Lifecycle::from_symbol(&e.lifecycle)
            .filter(|l| *l != Lifecycle::Missing)
            .ok_or_else(|| {
                format!("{}: lifecycle {:?} is not one of Provisioning, InService, OutOfService, Retired", e.id, e.lifecycle)
            })?;
        let mut state = HostState::new(
            e.name,
            lifecycle,
            e.status.unwrap_or_else(|| e.lifecycle.clone()),
        );
        state.region = e.region;
        state.zone = e.zone;
        state.role = e.role;
        state.team = e.team;
        state.addresses = e.addresses;
        state.machine_type = e.machine_type;
        state.attributes = e.attributes;
        Ok(ListedHost {
            host_id: format!("{}/{}", self.config.provider, e.id),
            state,
        })
    }
}

impl Provider for ExecProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &str {
        &self.kind
    }

    fn list(&mut self) -> ListingFuture<'_> {
        let now = Timestamp::from(chrono::Utc::now());
        Box::pin(self.read(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(script: &str, timeout_secs: u64) -> ExecProvider {
        ExecProvider::new(ExecConfig {
            name: "acme-test".into(),
            provider: "acme".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout_secs,
            env: BTreeMap::from([("GREETING".into(), "hello".into())]),
            workdir: None,
        })
    }

    #[tokio::test]
    async fn reads_hosts_from_stdout() {
        let script = r#"echo '{"hosts": [{"id": "eu/vm-1", "name": "web-1", "lifecycle": "InService", "status": "running", "region": "eu", "addresses": ["10.0.0.1"], "attributes": {"greeting": "'$GREETING'"}}, {"id": "eu/vm-2", "name": "db-1", "lifecycle": "Retired"}]}'"#;
        let listing = provider(script, 10)
            .read(Timestamp(1))
            .await
            .expect("listing");
        assert!(listing.problems.is_empty(), "{:?}", listing.problems);
        assert_eq!(listing.hosts.len(), 2);
        assert_eq!(listing.hosts[0].host_id, "acme/eu/vm-1");
        assert_eq!(listing.hosts[0].state.provider_status, "running");
        assert_eq!(listing.hosts[0].state.attributes["greeting"], "hello");
        assert_eq!(listing.hosts[1].state.lifecycle, Lifecycle::Retired);
        assert_eq!(provider(script, 10).kind(), "exec:acme");
    }

    #[tokio::test]
    async fn nonzero_exit_is_a_failed_listing_with_stderr() {
        let err = provider("echo 'token expired' >&2; exit 3", 10)
            .read(Timestamp(1))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("stderr: token expired"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_hanging_program_is_killed() {
        let started = std::time::Instant::now();
        let err = provider("sleep 30", 1)
            .read(Timestamp(1))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("did not finish within 1 s"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn invalid_json_is_rejected() {
        for script in [
            "echo 'not json'",
            "echo '[1, 2]'",
            "echo '{\"hosts\": [], \"extra\": 1}'",
        ] {
            let err = provider(script, 10).read(Timestamp(1)).await.unwrap_err();
            assert!(
                matches!(err, ProviderError::Rejected { .. }),
                "{script}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn bad_entries_are_problems_not_failures() {
        let script = r#"echo '{"hosts": [{"id": "a", "name": "x", "lifecycle": "InService"}, {"id": "b", "name": "y", "lifecycle": "Sleeping"}, {"name": "z", "lifecycle": "InService"}, {"id": "a", "name": "x2", "lifecycle": "InService"}]}'"#;
        let listing = provider(script, 10)
            .read(Timestamp(1))
            .await
            .expect("listing");
        assert_eq!(listing.hosts.len(), 1);
        assert_eq!(listing.problems.len(), 3, "{:?}", listing.problems);
        assert!(
            listing.problems[0].contains("host 2: b: lifecycle \"Sleeping\""),
            "{}",
            listing.problems[0]
        );
        assert!(
            listing.problems[1].contains("host 3: missing field `id`"),
            "{}",
            listing.problems[1]
        );
        assert!(
            listing.problems[2].contains("host 4: duplicate id acme/a"),
            "{}",
            listing.problems[2]
        );
    }

    #[tokio::test]
    async fn missing_program_is_unavailable() {
        let mut p = provider("", 10);
        p.config.command = vec!["/nonexistent/plugin".into()];
        let err = p.read(Timestamp(1)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot run \"/nonexistent/plugin\""),
            "{err}"
        );
    }
}

//! Fetcher configuration file (YAML).

use std::collections::HashSet;
use std::path::Path;

use hostledger_kafka::KafkaSettings;
use serde::Deserialize;

use crate::error::FetchError;
use crate::provider::aws::AwsEc2Config;
use crate::provider::dcexport::DcExportConfig;
use crate::provider::exec::ExecConfig;

fn default_interval_secs() -> u64 {
    60
}

fn default_missing_grace_secs() -> u64 {
    600
}

/// One provider instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProviderConfig {
    /// A data-centre inventory export (CSV, YAML or JSON file or directory).
    DcExport(DcExportConfig),
    /// Any program printing hosts as JSON.
    Exec(ExecConfig),
    /// AWS EC2 instances of one account, in one or more regions.
    AwsEc2(AwsEc2Config),
}

impl ProviderConfig {
    /// The instance name.
    pub fn name(&self) -> &str {
        match self {
            ProviderConfig::DcExport(c) => &c.name,
            ProviderConfig::Exec(c) => &c.name,
            ProviderConfig::AwsEc2(c) => &c.name,
        }
    }
}

/// What `hostledger fetch --config FILE` reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetcherConfig {
    /// Kafka connection and topics. An empty `kafka:` (every key commented out) means the
    /// defaults.
    #[serde(default, deserialize_with = "null_is_default")]
    pub kafka: KafkaSettings,
    /// Seconds between two listings of a provider.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Seconds a host must be absent from complete listings before it is published as
    /// missing. 0 declares it missing at the first complete listing without it.
    #[serde(default = "default_missing_grace_secs")]
    pub missing_grace_secs: u64,
    /// The providers to list; each name must be unique and is the `source` of its events.
    pub providers: Vec<ProviderConfig>,
    /// Renew the Kafka client certificate (`kafka.cert_file`, from `hostledger enroll`)
    /// before it expires, at the approver's renewal endpoint.
    #[serde(default)]
    pub renewal: Option<hostledger_kafka::renewal::RenewalConfig>,
}

impl FetcherConfig {
    /// Reads and validates a YAML config file.
    pub fn from_file(path: &Path) -> Result<Self, FetchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FetchError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_yaml(&text).map_err(|e| match e {
            FetchError::Config(msg) => FetchError::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses and validates YAML text. Relative provider paths stay relative to the current
    /// directory.
    pub fn from_yaml(text: &str) -> Result<Self, FetchError> {
        let config: FetcherConfig =
            serde_yaml::from_str(text).map_err(|e| FetchError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The identity to renew and how, if renewal is configured.
    pub fn renewal_identity(
        &self,
    ) -> Result<
        Option<(
            hostledger_kafka::renewal::Identity,
            &hostledger_kafka::renewal::RenewalConfig,
        )>,
        FetchError,
    > {
        match &self.renewal {
            Some(r) => Ok(Some((r.identity(&self.kafka)?, r))),
            None => Ok(None),
        }
    }

    /// Checks what can be checked before anything runs.
    pub fn validate(&self) -> Result<(), FetchError> {
        self.kafka.validate()?;
        if self.providers.is_empty() {
            return Err(FetchError::Config("no providers configured".into()));
        }
        self.renewal_identity()?;
        if self.interval_secs == 0 {
            return Err(FetchError::Config(
                "interval_secs must be at least 1".into(),
            ));
        }
        let mut names = HashSet::new();
        for p in &self.providers {
            let name = p.name();
            let valid = !name.is_empty()
                && name.len() <= 100
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid {
                return Err(FetchError::Config(format!(
                    "provider name {name:?} must be 1-100 characters of a-z A-Z 0-9 . _ -"
                )));
            }
            if !names.insert(name) {
                return Err(FetchError::Config(format!(
                    "provider name {name:?} is used twice"
                )));
            }
        }
        Ok(())
    }
}

/// Deserializes a field whose YAML value may be empty (`key:` alone) as its default.
fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_config() {
        let c = FetcherConfig::from_yaml(
            "providers:\n  - kind: dc-export\n    name: pdx1\n    path: inv.csv\n",
        )
        .expect("valid");
        assert_eq!(c.interval_secs, 60);
        assert_eq!(c.providers[0].name(), "pdx1");
    }

    #[test]
    fn rejects_unknown_fields_everywhere() {
        let top = FetcherConfig::from_yaml("providers: []\nintervall_secs: 5\n")
            .unwrap_err()
            .to_string();
        assert!(top.contains("unknown field `intervall_secs`"), "{top}");
        let inner = FetcherConfig::from_yaml(
            "providers:\n  - kind: dc-export\n    name: a\n    path: x\n    pth: y\n",
        )
        .unwrap_err()
        .to_string();
        assert!(inner.contains("unknown field `pth`"), "{inner}");
        let kind = FetcherConfig::from_yaml("providers:\n  - kind: ftp\n    name: a\n")
            .unwrap_err()
            .to_string();
        assert!(kind.contains("unknown variant `ftp`"), "{kind}");
    }

    #[test]
    fn rejects_duplicate_and_bad_names() {
        let dup = "providers:\n  - {kind: dc-export, name: a, path: x}\n  - {kind: dc-export, name: a, path: y}\n";
        assert!(
            FetcherConfig::from_yaml(dup)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
        let bad = "providers:\n  - {kind: dc-export, name: 'a b', path: x}\n";
        assert!(
            FetcherConfig::from_yaml(bad)
                .unwrap_err()
                .to_string()
                .contains("\"a b\"")
        );
        assert!(
            FetcherConfig::from_yaml("providers: []\n")
                .unwrap_err()
                .to_string()
                .contains("no providers")
        );
    }
}

//! AWS EC2 through the official SDK: every configured region of one account (credentials from
//! the default chain, a named profile, or an assumed role), paginated `DescribeInstances`,
//! EC2 states mapped onto the lifecycle.
//!
//! Host ids are `aws/ACCOUNT/REGION/INSTANCE-ID`. A listing is all or nothing: an error on any
//! page of any region fails the whole listing, so a half-read account never makes hosts
//! missing. Which tags become the role and team is configurable; the other tags become
//! attributes `tag:KEY`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{Instance, InstanceStateName};
use hostledger_schemas::{HostState, Lifecycle, Timestamp};
use serde::Deserialize;

use super::{ListingFuture, Provider, ProviderError};
use crate::diff::{ListedHost, Listing};

fn default_role_tag() -> String {
    "role".into()
}
fn default_team_tag() -> String {
    "team".into()
}
fn default_page_size() -> i32 {
    1000
}
fn default_timeout_secs() -> u64 {
    120
}

/// Settings of one AWS account's EC2 provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsEc2Config {
    /// Instance name; the `source` of its events.
    pub name: String,
    /// The 12-digit account id, used in host ids.
    pub account_id: String,
    /// Regions to list.
    pub regions: Vec<String>,
    /// Named profile from the shared AWS config files (default: the default chain).
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume for listing (cross-account access).
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    /// Endpoint override (an EC2-compatible test endpoint such as moto).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Tag whose value is the host's role.
    #[serde(default = "default_role_tag")]
    pub role_tag: String,
    /// Tag whose value is the host's team.
    #[serde(default = "default_team_tag")]
    pub team_tag: String,
    /// Instances per `DescribeInstances` page (5 to 1000).
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// Seconds one whole listing may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// Maps an EC2 instance state onto the lifecycle.
pub fn map_state(state: &InstanceStateName) -> Option<Lifecycle> {
    match state {
        InstanceStateName::Pending => Some(Lifecycle::Provisioning),
        InstanceStateName::Running => Some(Lifecycle::InService),
        InstanceStateName::Stopping | InstanceStateName::Stopped => Some(Lifecycle::OutOfService),
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated => Some(Lifecycle::Retired),
        _ => None,
    }
}

/// The host an instance is, or why it cannot be one.
pub fn to_host(
    config: &AwsEc2Config,
    region: &str,
    instance: &Instance,
) -> Result<ListedHost, String> {
    let id = instance.instance_id().ok_or("an instance without an id")?;
    let state = instance
        .state()
        .and_then(|s| s.name())
        .ok_or_else(|| format!("{id}: no state"))?;
    let lifecycle =
        map_state(state).ok_or_else(|| format!("{id}: unknown state {:?}", state.as_str()))?;
    let mut tags: BTreeMap<String, String> = instance
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    let name = tags
        .get("Name")
        .cloned()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.to_owned());
    let mut host = HostState::new(name, lifecycle, state.as_str());
    host.region = Some(region.to_owned());
    host.zone = instance
        .placement()
        .and_then(|p| p.availability_zone())
        .map(str::to_owned);
    host.role = tags.remove(&config.role_tag);
    host.team = tags.remove(&config.team_tag);
    host.machine_type = instance.instance_type().map(|t| t.as_str().to_owned());
    host.addresses = [instance.private_ip_address(), instance.public_ip_address()]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let mut attributes: BTreeMap<String, String> = tags
        .into_iter()
        .filter(|(k, _)| k != "Name")
        .map(|(k, v)| (format!("tag:{k}"), v))
        .collect();
    if let Some(t) = instance.launch_time() {
        attributes.insert("launch_time".into(), t.to_string());
    }
    if let Some(image) = instance.image_id() {
        attributes.insert("image_id".into(), image.to_owned());
    }
    if let Some(vpc) = instance.vpc_id() {
        attributes.insert("vpc_id".into(), vpc.to_owned());
    }
    host.attributes = attributes;
    Ok(ListedHost {
        host_id: format!("aws/{}/{region}/{id}", config.account_id),
        state: host,
    })
}

/// Drains a stream of pages; the first error fails everything (no partial listing) and
/// says which page (from 1) failed.
pub async fn collect_pages<P, E>(
    pages: impl futures::Stream<Item = Result<P, E>>,
) -> Result<Vec<P>, (usize, E)> {
    use futures::StreamExt as _;
    futures::pin_mut!(pages);
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => out.push(p),
            Err(e) => return Err((out.len() + 1, e)),
        }
    }
    Ok(out)
}

/// An AWS EC2 provider for one account.
#[derive(Debug, Clone)]
pub struct AwsEc2 {
    config: AwsEc2Config,
}

/// The HTTPS client of every AWS call hostledger makes (EC2, STS, SSO): rustls on ring, with
/// the system's trusted roots. Built once per process and shared.
pub fn http_client() -> aws_sdk_ec2::config::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_sdk_ec2::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

impl AwsEc2 {
    /// A provider listing `config.regions` of `config.account_id`.
    pub fn new(config: AwsEc2Config) -> Self {
        AwsEc2 { config }
    }

    async fn client(&self, region: &str) -> aws_sdk_ec2::Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .region(aws_config::Region::new(region.to_owned()));
        if let Some(profile) = &self.config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_ec2::config::Builder::from(&shared);
        if let Some(role) = &self.config.assume_role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name(format!("hostledger-{}", self.config.name))
                .configure(&shared)
                .build()
                .await;
            config = config.credentials_provider(provider);
        }
        aws_sdk_ec2::Client::from_conf(config.build())
    }

    async fn list_region(&self, region: &str) -> Result<Vec<Instance>, String> {
        let client = self.client(region).await;
        let paginator = client
            .describe_instances()
            .max_results(self.config.page_size)
            .into_paginator()
            .send();
        let pages = futures::stream::unfold(paginator, |mut p| async move {
            p.next().await.map(|page| (page, p))
        });
        let pages = collect_pages(pages).await.map_err(|(n, e)| {
            format!(
                "{region}: DescribeInstances page {n} failed: {}",
                aws_sdk_ec2::error::DisplayErrorContext(&e)
            )
        })?;
        Ok(pages
            .iter()
            .flat_map(|page| page.reservations())
            .flat_map(|reservation| reservation.instances().iter().cloned())
            .collect())
    }

    /// Lists every region; any failure fails the whole listing.
    pub async fn read(&self, observed_at: Timestamp) -> Result<Listing, ProviderError> {
        let fail = |reason: String| ProviderError::Unavailable {
            provider: self.config.name.clone(),
            reason,
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let mut listing = Listing {
            hosts: Vec::new(),
            observed_at,
            problems: Vec::new(),
        };
        for region in &self.config.regions {
            let instances = tokio::time::timeout(timeout, self.list_region(region))
                .await
                .map_err(|_| {
                    fail(format!(
                        "{region}: listing took longer than {} s",
                        self.config.timeout_secs
                    ))
                })?
                .map_err(fail)?;
            for instance in &instances {
                match to_host(&self.config, region, instance) {
                    Ok(host) => listing.hosts.push(host),
                    Err(problem) => listing.problems.push(format!("{region}: {problem}")),
                }
            }
        }
        Ok(listing)
    }
}

impl Provider for AwsEc2 {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &str {
        "aws"
    }

    fn list(&mut self) -> ListingFuture<'_> {
        let now = Timestamp::from(chrono::Utc::now());
        Box::pin(self.read(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{InstanceState, InstanceType, Placement, Tag};

    fn config() -> AwsEc2Config {
        serde_yaml::from_str(
            "name: prod\naccount_id: '123456789012'\nregions: [eu-west-1]\nrole_tag: Role",
        )
        .expect("valid")
    }

    fn instance(id: &str, state: InstanceStateName, tags: &[(&str, &str)]) -> Instance {
        let mut b = Instance::builder()
            .instance_id(id)
            .state(InstanceState::builder().name(state).build())
            .instance_type(InstanceType::T3Micro)
            .placement(Placement::builder().availability_zone("eu-west-1b").build())
            .private_ip_address("10.0.0.5")
            .image_id("ami-123");
        for (k, v) in tags {
            b = b.tags(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn states_map_onto_the_lifecycle() {
        use InstanceStateName as S;
        let cases = [
            (S::Pending, Lifecycle::Provisioning),
            (S::Running, Lifecycle::InService),
            (S::Stopping, Lifecycle::OutOfService),
            (S::Stopped, Lifecycle::OutOfService),
            (S::ShuttingDown, Lifecycle::Retired),
            (S::Terminated, Lifecycle::Retired),
        ];
        for (state, lifecycle) in cases {
            assert_eq!(map_state(&state), Some(lifecycle), "{state:?}");
        }
    }

    #[test]
    fn instances_become_hosts_with_configured_tags() {
        let i = instance(
            "i-0abc",
            InstanceStateName::Running,
            &[
                ("Name", "web-1"),
                ("Role", "web"),
                ("team", "shop"),
                ("env", "prod"),
            ],
        );
        let host = to_host(&config(), "eu-west-1", &i).expect("host");
        assert_eq!(host.host_id, "aws/123456789012/eu-west-1/i-0abc");
        assert_eq!(host.state.name, "web-1");
        assert_eq!(host.state.role.as_deref(), Some("web"));
        assert_eq!(host.state.team.as_deref(), Some("shop"));
        assert_eq!(host.state.zone.as_deref(), Some("eu-west-1b"));
        assert_eq!(host.state.machine_type.as_deref(), Some("t3.micro"));
        assert_eq!(host.state.provider_status, "running");
        assert_eq!(
            host.state.attributes.get("tag:env").map(String::as_str),
            Some("prod")
        );
        assert!(!host.state.attributes.contains_key("tag:Name"));
        let unnamed = to_host(
            &config(),
            "eu-west-1",
            &instance("i-9", InstanceStateName::Stopped, &[]),
        )
        .expect("host");
        assert_eq!(unnamed.state.name, "i-9");
        assert_eq!(unnamed.state.lifecycle, Lifecycle::OutOfService);
    }

    #[tokio::test]
    async fn an_error_on_any_page_fails_the_whole_listing() {
        let pages =
            futures::stream::iter(vec![Ok(1), Ok(2), Err("503 Service Unavailable"), Ok(4)]);
        assert_eq!(
            collect_pages(pages).await,
            Err((3, "503 Service Unavailable"))
        );
        let pages = futures::stream::iter(vec![Ok::<_, &str>(1), Ok(2)]);
        assert_eq!(collect_pages(pages).await, Ok(vec![1, 2]));
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let err = serde_yaml::from_str::<AwsEc2Config>(
            "name: a\naccount_id: '1'\nregions: [x]\nregion: y",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `region`"), "{err}");
    }
}

//! AWS EC2: every configured region of one account (credentials from the default chain, a
//! named profile, or an assumed role), paginated `DescribeInstances`, EC2 states mapped onto
//! the lifecycle.
//!
//! Host ids are `aws/ACCOUNT/REGION/INSTANCE-ID`. A listing is all or nothing: an error on any
//! page of any region fails the whole listing, so a half-read account never makes hosts
//! missing. Which tags become the role and team is configurable; the other tags become
//! attributes `tag:KEY`. The API call itself is in [`ec2`].

pub mod ec2;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use hostledger_schemas::{HostState, Lifecycle, Timestamp};
use serde::Deserialize;

pub use ec2::{Ec2Error, Instance, Page};

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
    /// Endpoint override (an EC2-compatible test endpoint such as moto). Without it:
    /// `AWS_ENDPOINT_URL_EC2`, then `AWS_ENDPOINT_URL` / the profile's `endpoint_url`, then
    /// the regional endpoint.
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

/// Maps an EC2 instance state name onto the lifecycle.
pub fn map_state(state: &str) -> Option<Lifecycle> {
    match state {
        "pending" => Some(Lifecycle::Provisioning),
        "running" => Some(Lifecycle::InService),
        "stopping" | "stopped" => Some(Lifecycle::OutOfService),
        "shutting-down" | "terminated" => Some(Lifecycle::Retired),
        _ => None,
    }
}

/// The host an instance is, or why it cannot be one.
pub fn to_host(
    config: &AwsEc2Config,
    region: &str,
    instance: &Instance,
) -> Result<ListedHost, String> {
    let id = instance
        .instance_id
        .as_deref()
        .ok_or("an instance without an id")?;
    let state = instance
        .state
        .as_deref()
        .ok_or_else(|| format!("{id}: no state"))?;
    let lifecycle = map_state(state).ok_or_else(|| format!("{id}: unknown state {state:?}"))?;
    let mut tags: BTreeMap<String, String> = instance.tags.iter().cloned().collect();
    let name = tags
        .get("Name")
        .cloned()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.to_owned());
    let mut host = HostState::new(name, lifecycle, state);
    host.region = Some(region.to_owned());
    host.zone = instance.availability_zone.clone();
    host.role = tags.remove(&config.role_tag);
    host.team = tags.remove(&config.team_tag);
    host.machine_type = instance.instance_type.clone();
    host.addresses = [&instance.private_ip_address, &instance.public_ip_address]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let mut attributes: BTreeMap<String, String> = tags
        .into_iter()
        .filter(|(k, _)| k != "Name")
        .map(|(k, v)| (format!("tag:{k}"), v))
        .collect();
    if let Some(t) = &instance.launch_time {
        attributes.insert("launch_time".into(), ec2::normalize_launch_time(t));
    }
    if let Some(image) = &instance.image_id {
        attributes.insert("image_id".into(), image.clone());
    }
    if let Some(vpc) = &instance.vpc_id {
        attributes.insert("vpc_id".into(), vpc.clone());
    }
    host.attributes = attributes;
    Ok(ListedHost {
        host_id: format!("aws/{}/{region}/{id}", config.account_id),
        state: host,
    })
}

/// Reads every page, following `nextToken`; the first error fails everything (no partial
/// listing) and says which page (from 1) failed. A token that comes back twice is an error
/// too, not an endless listing.
pub async fn paginate<F, Fut>(mut fetch: F) -> Result<Vec<Instance>, (usize, Ec2Error)>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page, Ec2Error>>,
{
    let mut instances = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut token = None;
    for number in 1.. {
        let page = fetch(token.take()).await.map_err(|e| (number, e))?;
        instances.extend(page.instances);
        match page.next_token {
            Some(next) if !seen.insert(next.clone()) => {
                return Err((
                    number,
                    Ec2Error::Transport(format!("the endpoint returned page token {next:?} twice")),
                ));
            }
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(instances)
}

/// The HTTPS client of the calls `aws-config` makes (STS, SSO, instance metadata): rustls on
/// ring, with the system's trusted roots. Built once per process and shared.
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient> =
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

/// Credentials in use, refreshed 5 minutes before they expire (15 minutes for credentials
/// without an expiry, such as static keys, so rotated keys are picked up).
#[derive(Debug, Default)]
struct Session {
    provider: Option<(SharedCredentialsProvider, Option<String>)>,
    current: Option<(Credentials, SystemTime)>,
}

/// An AWS EC2 provider for one account.
#[derive(Debug, Clone)]
pub struct AwsEc2 {
    config: AwsEc2Config,
    session: Arc<tokio::sync::Mutex<Session>>,
}

impl AwsEc2 {
    /// A provider listing `config.regions` of `config.account_id`.
    pub fn new(config: AwsEc2Config) -> Self {
        AwsEc2 {
            config,
            session: Arc::default(),
        }
    }

    /// The credentials provider and the endpoint override, from the shared AWS config
    /// (environment, profile files, instance metadata; loaded once).
    async fn provider(&self) -> Result<(SharedCredentialsProvider, Option<String>), String> {
        let region = self.config.regions.first().ok_or("no regions configured")?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .region(aws_config::Region::new(region.clone()));
        if let Some(profile) = &self.config.profile {
            loader = loader.profile_name(profile);
        }
        let shared = loader.load().await;
        let provider = match &self.config.assume_role_arn {
            Some(role) => SharedCredentialsProvider::new(
                aws_config::sts::AssumeRoleProvider::builder(role)
                    .session_name(format!("hostledger-{}", self.config.name))
                    .configure(&shared)
                    .build()
                    .await,
            ),
            None => shared.credentials_provider().ok_or(
                "no AWS credentials provider: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
                 a profile, or run where instance metadata is available",
            )?,
        };
        let endpoint = self
            .config
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok())
            .or_else(|| shared.endpoint_url().map(str::to_owned))
            .filter(|e| !e.is_empty());
        Ok((provider, endpoint))
    }

    /// Credentials to sign with and the endpoint override, refreshed when due.
    async fn session(&self) -> Result<(Credentials, Option<String>), String> {
        let mut session = self.session.lock().await;
        if session.provider.is_none() {
            session.provider = Some(self.provider().await?);
        }
        let (provider, endpoint) = session.provider.clone().ok_or("no provider")?;
        let now = SystemTime::now();
        if let Some((credentials, refresh_at)) = &session.current
            && *refresh_at > now
        {
            return Ok((credentials.clone(), endpoint));
        }
        let credentials = provider.provide_credentials().await.map_err(|e| {
            format!(
                "no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a \
                     `profile:`, or run with an instance or container role): {}",
                ec2::error_chain(&e)
            )
        })?;
        let refresh_at = match credentials.expiry() {
            Some(expiry) => expiry
                .checked_sub(Duration::from_secs(300))
                .unwrap_or(now)
                .max(now),
            None => now + Duration::from_secs(900),
        };
        session.current = Some((credentials.clone(), refresh_at));
        Ok((credentials, endpoint))
    }

    async fn list_region(
        &self,
        region: &str,
        credentials: &Credentials,
        endpoint: Option<&str>,
    ) -> Result<Vec<Instance>, String> {
        let endpoint = match endpoint {
            Some(url) => ec2::with_path(url),
            None => ec2::regional_endpoint(region),
        };
        let page_size = self.config.page_size;
        paginate(|token| {
            let endpoint = &endpoint;
            async move {
                ec2::describe_instances(endpoint, region, credentials, page_size, token.as_deref())
                    .await
            }
        })
        .await
        .map_err(|(n, e)| format!("{region}: DescribeInstances page {n} failed: {e}"))
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
        let (credentials, endpoint) = self.session().await.map_err(fail)?;
        for region in &self.config.regions {
            let instances = tokio::time::timeout(
                timeout,
                self.list_region(region, &credentials, endpoint.as_deref()),
            )
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

    fn config() -> AwsEc2Config {
        serde_yaml::from_str(
            "name: prod\naccount_id: '123456789012'\nregions: [eu-west-1]\nrole_tag: Role",
        )
        .expect("valid")
    }

    fn instance(id: &str, state: &str, tags: &[(&str, &str)]) -> Instance {
        Instance {
            instance_id: Some(id.into()),
            state: Some(state.into()),
            instance_type: Some("t3.micro".into()),
            availability_zone: Some("eu-west-1b".into()),
            private_ip_address: Some("10.0.0.5".into()),
            image_id: Some("ami-123".into()),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Instance::default()
        }
    }

    #[test]
    fn states_map_onto_the_lifecycle() {
        let cases = [
            ("pending", Lifecycle::Provisioning),
            ("running", Lifecycle::InService),
            ("stopping", Lifecycle::OutOfService),
            ("stopped", Lifecycle::OutOfService),
            ("shutting-down", Lifecycle::Retired),
            ("terminated", Lifecycle::Retired),
        ];
        for (state, lifecycle) in cases {
            assert_eq!(map_state(state), Some(lifecycle), "{state:?}");
        }
        assert_eq!(map_state("Running"), None, "EC2 state names are lower case");
        let err = to_host(&config(), "eu-west-1", &instance("i-1", "hibernating", &[]))
            .expect_err("unknown state");
        assert_eq!(err, "i-1: unknown state \"hibernating\"");
    }

    #[test]
    fn instances_become_hosts_with_configured_tags() {
        let mut i = instance(
            "i-0abc",
            "running",
            &[
                ("Name", "web-1"),
                ("Role", "web"),
                ("team", "shop"),
                ("env", "prod"),
            ],
        );
        i.launch_time = Some("2026-11-30T08:15:00.000Z".into());
        let host = to_host(&config(), "eu-west-1", &i).expect("host");
        assert_eq!(host.host_id, "aws/123456789012/eu-west-1/i-0abc");
        assert_eq!(host.state.name, "web-1");
        assert_eq!(host.state.role.as_deref(), Some("web"));
        assert_eq!(host.state.team.as_deref(), Some("shop"));
        assert_eq!(host.state.zone.as_deref(), Some("eu-west-1b"));
        assert_eq!(host.state.machine_type.as_deref(), Some("t3.micro"));
        assert_eq!(host.state.provider_status, "running");
        assert_eq!(host.state.addresses, ["10.0.0.5"]);
        assert_eq!(
            host.state.attributes.get("tag:env").map(String::as_str),
            Some("prod")
        );
        assert_eq!(
            host.state.attributes.get("launch_time").map(String::as_str),
            Some("2026-11-30T08:15:00Z")
        );
        assert!(!host.state.attributes.contains_key("tag:Name"));
        let unnamed =
            to_host(&config(), "eu-west-1", &instance("i-9", "stopped", &[])).expect("host");
        assert_eq!(unnamed.state.name, "i-9");
        assert_eq!(unnamed.state.lifecycle, Lifecycle::OutOfService);
    }

    fn page(ids: &[&str], next: Option<&str>) -> Page {
        Page {
            instances: ids.iter().map(|id| instance(id, "running", &[])).collect(),
            next_token: next.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn pages_are_followed_and_an_error_on_any_fails_the_whole_listing() {
        let answers = |fail_at: Option<usize>| {
            let mut calls = 0;
            move |token: Option<String>| {
                calls += 1;
                let expected = [None, Some("t2"), Some("t3")][calls - 1];
                assert_eq!(token.as_deref(), expected, "call {calls}");
                let result = if Some(calls) == fail_at {
                    Err(Ec2Error::Transport("503 Service Unavailable".into()))
                } else {
                    Ok(match calls {
                        1 => page(&["i-1", "i-2"], Some("t2")),
                        2 => page(&["i-3"], Some("t3")),
                        _ => page(&["i-4"], None),
                    })
                };
                std::future::ready(result)
            }
        };
        let all = paginate(answers(None)).await.expect("three pages");
        let ids: Vec<_> = all
            .iter()
            .filter_map(|i| i.instance_id.as_deref())
            .collect();
        assert_eq!(ids, ["i-1", "i-2", "i-3", "i-4"]);
        let (number, error) = paginate(answers(Some(3))).await.expect_err("page 3 fails");
        assert_eq!(number, 3);
        assert_eq!(error.to_string(), "503 Service Unavailable");
    }

    #[tokio::test]
    async fn a_token_that_comes_back_twice_ends_the_listing_with_an_error() {
        let (number, error) = paginate(|_| std::future::ready(Ok(page(&["i-1"], Some("same")))))
            .await
            .expect_err("a loop");
        assert_eq!(number, 2);
        assert!(error.to_string().contains("twice"), "{error}");
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

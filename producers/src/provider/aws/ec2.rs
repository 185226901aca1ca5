//! The one EC2 operation hostledger calls, `DescribeInstances`, over the EC2 Query API:
//! a form-encoded POST signed with Signature Version 4, answered in XML.
//!
//! hostledger reads six fields of an instance and one page token. The generated SDK crate
//! for the whole EC2 API was the largest unit of a cold build (docs/design/cold-start.md);
//! this module uses the SDK's building blocks instead: `aws-config` for credentials,
//! `aws-sigv4` for signing and `aws-smithy-xml` for reading the response. Retries follow the
//! SDK's standard mode: up to three attempts, with jittered exponential backoff, for
//! throttling, server errors and transport failures.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;

/// The EC2 API version whose response shape this module reads.
pub const API_VERSION: &str = "2016-11-15";

/// Attempts per request, as in the SDK's standard retry mode.
const MAX_ATTEMPTS: u32 = 3;

/// How long to wait for a TCP connection, as the SDK does by default.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The fields of an EC2 instance that become a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// `instanceId`, e.g. `i-0abc…`.
    pub instance_id: Option<String>,
    /// `instanceState/name`: pending, running, shutting-down, terminated, stopping, stopped.
    pub state: Option<String>,
    /// `instanceType`, e.g. `t3.micro`.
    pub instance_type: Option<String>,
    /// `placement/availabilityZone`.
    pub availability_zone: Option<String>,
    /// `privateIpAddress`.
    pub private_ip_address: Option<String>,
    /// `ipAddress`: the public address, if any.
    pub public_ip_address: Option<String>,
    /// `launchTime`, as the API wrote it (ISO 8601).
    pub launch_time: Option<String>,
    /// `imageId`.
    pub image_id: Option<String>,
    /// `vpcId`.
    pub vpc_id: Option<String>,
    /// `tagSet`, in the order the API listed them.
    pub tags: Vec<(String, String)>,
}

/// One page of `DescribeInstances`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The instances of every reservation on the page.
    pub instances: Vec<Instance>,
    /// The token of the next page; `None` on the last.
    pub next_token: Option<String>,
}

/// Why a request failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ec2Error {
    /// EC2 answered with an error (`Response/Errors/Error`).
    Service {
        /// The HTTP status.
        status: u16,
        /// The error code, e.g. `UnauthorizedOperation`, `AuthFailure`.
        code: String,
        /// The error message.
        message: String,
        /// EC2's request id, for AWS support.
        request_id: Option<String>,
    },
    /// No usable answer: connection refused, TLS, timeout, or a body that is not EC2's XML.
    Transport(String),
    /// No credentials, or credentials that cannot sign.
    Credentials(String),
}

impl Ec2Error {
    fn retryable(&self) -> bool {
        match self {
            Ec2Error::Service { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "RequestLimitExceeded"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestThrottled"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "Unavailable"
                    )
            }
            Ec2Error::Transport(_) => true,
            Ec2Error::Credentials(_) => false,
        }
    }
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ec2Error::Service {
                status,
                code,
                message,
                request_id,
            } => {
                write!(f, "{code}: {message} (HTTP {status}")?;
                if let Some(id) = request_id {
                    write!(f, ", request id {id}")?;
                }
                write!(f, ")")?;
                if matches!(
                    code.as_str(),
                    "UnauthorizedOperation" | "AuthFailure" | "AccessDenied"
                ) {
                    write!(
                        f,
                        "; the identity needs ec2:DescribeInstances in this region \
                         (deploy/examples/fetcher-aws.yaml has the policy)"
                    )?;
                }
                Ok(())
            }
            Ec2Error::Transport(reason) => write!(f, "{reason}"),
            Ec2Error::Credentials(reason) => write!(f, "credentials: {reason}"),
        }
    }
}

impl std::error::Error for Ec2Error {}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The HTTPS client of the EC2 calls: rustls on ring with the system's trusted roots, built
/// once per process.
fn https() -> Result<HttpsClient, Ec2Error> {
    static CLIENT: std::sync::OnceLock<Result<HttpsClient, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(CONNECT_TIMEOUT));
            let tls = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
                .map_err(|e| format!("no trusted root certificates on this system: {e}"))?
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Ok(
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(tls),
            )
        })
        .clone()
        .map_err(Ec2Error::Transport)
}

/// The regional endpoint of EC2, e.g. `https://ec2.eu-west-1.amazonaws.com/`.
pub fn regional_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://ec2.{region}.{suffix}/")
}

/// An endpoint override as a request URL: `http://127.0.0.1:5000` becomes
/// `http://127.0.0.1:5000/` (the Query API is served at the root).
pub fn with_path(endpoint: &str) -> String {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    if after_scheme.contains('/') {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/")
    }
}

/// `application/x-www-form-urlencoded` value encoding: unreserved characters stay, the rest
/// is percent-encoded (as the Query protocol and SigV4 expect).
fn form_encode(value: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, KEEP).to_string()
}

/// The request body of one page.
pub fn request_body(max_results: i32, next_token: Option<&str>) -> String {
    let mut body =
        format!("Action=DescribeInstances&Version={API_VERSION}&MaxResults={max_results}");
    if let Some(token) = next_token {
        body.push_str("&NextToken=");
        body.push_str(&form_encode(token));
    }
    body
}

/// One `DescribeInstances` page from `endpoint` in `region`, signed with `credentials`,
/// retried as the SDK's standard mode would.
pub async fn describe_instances(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    max_results: i32,
    next_token: Option<&str>,
) -> Result<Page, Ec2Error> {
    let body = request_body(max_results, next_token);
    let mut attempt = 1;
    loop {
        match send(endpoint, region, credentials, &body).await {
            Err(e) if e.retryable() && attempt < MAX_ATTEMPTS => {
                let delay = backoff(attempt);
                tracing::debug!(attempt, ?delay, error = %e, "DescribeInstances: retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Full jitter over an exponential base of 1 s, capped at 20 s (the SDK's standard mode).
fn backoff(attempt: u32) -> Duration {
    let ceiling =
        Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(20));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    ceiling.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

async fn send(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    body: &str,
) -> Result<Page, Ec2Error> {
    const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("ec2")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Ec2Error::Credentials(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        endpoint,
        [("content-type", CONTENT_TYPE)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| Ec2Error::Transport(format!("endpoint {endpoint:?}: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| Ec2Error::Credentials(format!("signing failed: {e}")))?
        .into_parts();
    let mut request = http::Request::post(endpoint)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| Ec2Error::Transport(format!("endpoint {endpoint:?}: {e}")))?;
    instructions.apply_to_request_http1x(&mut request);

    let response = https()?
        .request(request)
        .await
        .map_err(|e| Ec2Error::Transport(format!("{endpoint}: {}", error_chain(&e))))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Ec2Error::Transport(format!("{endpoint}: reading the response: {e}")))?
        .to_bytes();
    if status.is_success() {
        parse_page(&bytes).map_err(|e| {
            Ec2Error::Transport(format!(
                "{endpoint} answered HTTP {status} with a body that is not a \
                 DescribeInstancesResponse ({e}): {}",
                preview(&bytes)
            ))
        })
    } else {
        Err(
            parse_error(status.as_u16(), &bytes).unwrap_or_else(|| Ec2Error::Service {
                status: status.as_u16(),
                code: status
                    .canonical_reason()
                    .unwrap_or("UnknownError")
                    .replace(' ', ""),
                message: if bytes.is_empty() {
                    "(empty body)".into()
                } else {
                    preview(&bytes)
                },
                request_id: None,
            }),
        )
    }
}

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

fn text(tag: &mut ScopedDecoder<'_, '_>) -> Result<String, String> {
    try_data(tag)
        .map(Cow::into_owned)
        .map_err(|e| e.to_string())
}

/// Reads a `DescribeInstancesResponse`.
pub fn parse_page(xml: &[u8]) -> Result<Page, String> {
    let mut doc = Document::try_from(xml).map_err(|e| e.to_string())?;
    let mut root = doc.root_element().map_err(|e| e.to_string())?;
    if !root.start_el().matches("DescribeInstancesResponse") {
        return Err(format!("the root element is <{}>", root.start_el().local()));
    }
    let mut page = Page::default();
    while let Some(mut tag) = root.next_tag() {
        if tag.start_el().matches("nextToken") {
            page.next_token = Some(text(&mut tag)?).filter(|t| !t.is_empty());
        } else if tag.start_el().matches("reservationSet") {
            while let Some(mut reservation) = tag.next_tag() {
                while let Some(mut field) = reservation.next_tag() {
                    if field.start_el().matches("instancesSet") {
                        while let Some(mut item) = field.next_tag() {
                            page.instances.push(parse_instance(&mut item)?);
                        }
                    }
                }
            }
        }
    }
    Ok(page)
}

fn parse_instance(item: &mut ScopedDecoder<'_, '_>) -> Result<Instance, String> {
    let mut instance = Instance::default();
    while let Some(mut field) = item.next_tag() {
        let name = field.start_el().local().to_owned();
        match name.as_str() {
            "instanceId" => instance.instance_id = Some(text(&mut field)?),
            "instanceType" => instance.instance_type = Some(text(&mut field)?),
            "privateIpAddress" => instance.private_ip_address = Some(text(&mut field)?),
            "ipAddress" => instance.public_ip_address = Some(text(&mut field)?),
            "launchTime" => instance.launch_time = Some(text(&mut field)?),
            "imageId" => instance.image_id = Some(text(&mut field)?),
            "vpcId" => instance.vpc_id = Some(text(&mut field)?),
            "instanceState" => {
                while let Some(mut state) = field.next_tag() {
                    if state.start_el().matches("name") {
                        instance.state = Some(text(&mut state)?);
                    }
                }
            }
            "placement" => {
                while let Some(mut placement) = field.next_tag() {
                    if placement.start_el().matches("availabilityZone") {
                        instance.availability_zone = Some(text(&mut placement)?);
                    }
                }
            }
            "tagSet" => {
                while let Some(mut tag) = field.next_tag() {
                    let (mut key, mut value) = (None, String::new());
                    while let Some(mut part) = tag.next_tag() {
                        if part.start_el().matches("key") {
                            key = Some(text(&mut part)?);
                        } else if part.start_el().matches("value") {
                            value = text(&mut part)?;
                        }
                    }
                    if let Some(key) = key {
                        instance.tags.push((key, value));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(instance)
}

/// Reads EC2's error document (`<Response><Errors><Error><Code>…`), if the body is one.
pub fn parse_error(status: u16, xml: &[u8]) -> Option<Ec2Error> {
    let mut doc = Document::try_from(xml).ok()?;
    let mut root = doc.root_element().ok()?;
    let (mut code, mut message, mut request_id) = (None, None, None);
    while let Some(mut tag) = root.next_tag() {
        if tag.start_el().matches("Errors") {
            while let Some(mut error) = tag.next_tag() {
                while let Some(mut part) = error.next_tag() {
                    if part.start_el().matches("Code") && code.is_none() {
                        code = text(&mut part).ok();
                    } else if part.start_el().matches("Message") && message.is_none() {
                        message = text(&mut part).ok();
                    }
                }
            }
        } else if tag.start_el().matches("RequestID") || tag.start_el().matches("RequestId") {
            request_id = text(&mut tag).ok();
        }
    }
    Some(Ec2Error::Service {
        status,
        code: code?,
        message: message.unwrap_or_default(),
        request_id,
    })
}

/// `launchTime` in the form the attributes have always had: RFC 3339 in UTC, seconds, and a
/// fraction only when there is one, without trailing zeros (`2026-11-30T08:15:00Z`,
/// `2026-11-30T08:15:00.5Z`). Unparsable values are kept as they came.
pub fn normalize_launch_time(raw: &str) -> String {
    use chrono::{DateTime, Timelike as _, Utc};
    let Ok(t) = DateTime::parse_from_rfc3339(raw) else {
        return raw.to_owned();
    };
    let t = t.with_timezone(&Utc);
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = t.nanosecond() / 1000 % 1_000_000;
    if micros > 0 {
        let fraction = format!("{micros:06}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as EC2 answers (API version 2016-11-15), with the nested elements that carry
    /// the same names as the fields read (network interfaces have their own
    /// `privateIpAddress`, groups their own `item`s).
    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
    <reservationSet>
        <item>
            <reservationId>r-1234567890abcdef0</reservationId>
            <ownerId>123456789012</ownerId>
            <groupSet/>
            <instancesSet>
                <item>
                    <instanceId>i-0abc</instanceId>
                    <imageId>ami-123</imageId>
                    <instanceState><code>16</code><name>running</name></instanceState>
                    <privateDnsName>ip-10-0-0-5.ec2.internal</privateDnsName>
                    <instanceType>t3.micro</instanceType>
                    <launchTime>2026-11-30T08:15:00.000Z</launchTime>
                    <placement><availabilityZone>eu-west-1b</availabilityZone><tenancy>default</tenancy></placement>
                    <vpcId>vpc-1</vpcId>
                    <privateIpAddress>10.0.0.5</privateIpAddress>
                    <ipAddress>54.0.0.9</ipAddress>
                    <groupSet><item><groupId>sg-1</groupId><groupName>web</groupName></item></groupSet>
                    <tagSet>
                        <item><key>Name</key><value>web-1</value></item>
                        <item><key>Role</key><value>web</value></item>
                        <item><key>empty</key><value/></item>
                        <item><key>a&amp;b</key><value>&lt;x&gt;</value></item>
                    </tagSet>
                    <networkInterfaceSet>
                        <item><privateIpAddress>10.9.9.9</privateIpAddress></item>
                    </networkInterfaceSet>
                </item>
                <item>
                    <instanceId>i-9</instanceId>
                    <instanceState><code>80</code><name>stopped</name></instanceState>
                    <instanceType>m5.large</instanceType>
                </item>
            </instancesSet>
        </item>
        <item>
            <reservationId>r-2</reservationId>
            <instancesSet>
                <item><instanceId>i-7</instanceId><instanceState><name>pending</name></instanceState></item>
            </instancesSet>
        </item>
    </reservationSet>
    <nextToken>eyJ2IjoiMiIsImMiOiJ+/+=</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn a_page_reads_every_reservation_and_only_the_instances_own_fields() {
        let page = parse_page(PAGE.as_bytes()).expect("page");
        assert_eq!(page.next_token.as_deref(), Some("eyJ2IjoiMiIsImMiOiJ+/+="));
        let ids: Vec<_> = page
            .instances
            .iter()
            .map(|i| i.instance_id.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["i-0abc", "i-9", "i-7"]);
        let first = &page.instances[0];
        assert_eq!(
            first,
            &Instance {
                instance_id: Some("i-0abc".into()),
                state: Some("running".into()),
                instance_type: Some("t3.micro".into()),
                availability_zone: Some("eu-west-1b".into()),
                private_ip_address: Some("10.0.0.5".into()),
                public_ip_address: Some("54.0.0.9".into()),
                launch_time: Some("2026-11-30T08:15:00.000Z".into()),
                image_id: Some("ami-123".into()),
                vpc_id: Some("vpc-1".into()),
                tags: vec![
                    ("Name".into(), "web-1".into()),
                    ("Role".into(), "web".into()),
                    ("empty".into(), String::new()),
                    ("a&b".into(), "<x>".into()),
                ],
            }
        );
        assert_eq!(page.instances[1].state.as_deref(), Some("stopped"));
        assert_eq!(page.instances[1].private_ip_address, None);
    }

    #[test]
    fn the_last_page_has_no_token_and_an_empty_account_no_instances() {
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>x</requestId><reservationSet/></DescribeInstancesResponse>"#;
        assert_eq!(parse_page(xml.as_bytes()), Ok(Page::default()));
    }

    #[test]
    fn bodies_that_are_not_a_page_are_refused() {
        assert!(parse_page(b"<html><body>proxy error</body></html>").is_err());
        assert!(parse_page(b"not xml at all").is_err());
        assert!(parse_page(b"").is_err());
    }

    #[test]
    fn ec2_errors_keep_code_message_and_request_id() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>req-1</RequestID></Response>"#;
        let e = parse_error(403, xml).expect("an EC2 error");
        assert_eq!(
            e,
            Ec2Error::Service {
                status: 403,
                code: "UnauthorizedOperation".into(),
                message: "You are not authorized to perform this operation.".into(),
                request_id: Some("req-1".into()),
            }
        );
        assert!(!e.retryable());
        let text = e.to_string();
        assert!(text.contains("ec2:DescribeInstances"), "{text}");
        assert!(text.contains("request id req-1"), "{text}");
        assert_eq!(parse_error(502, b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn throttling_server_errors_and_transport_failures_are_retried() {
        let service = |status, code: &str| Ec2Error::Service {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
        };
        assert!(service(400, "RequestLimitExceeded").retryable());
        assert!(service(503, "Unavailable").retryable());
        assert!(service(500, "InternalError").retryable());
        assert!(!service(400, "InvalidParameterValue").retryable());
        assert!(!service(401, "AuthFailure").retryable());
        assert!(Ec2Error::Transport("connection refused".into()).retryable());
        assert!(!Ec2Error::Credentials("none".into()).retryable());
        for attempt in 1..MAX_ATTEMPTS {
            assert!(backoff(attempt) <= Duration::from_secs(1 << (attempt - 1)));
        }
    }

    #[test]
    fn request_bodies_encode_the_token() {
        assert_eq!(
            request_body(5, None),
            "Action=DescribeInstances&Version=2016-11-15&MaxResults=5"
        );
        assert_eq!(
            request_body(1000, Some("a+b/c=d e~")),
            "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000&NextToken=a%2Bb%2Fc%3Dd%20e~"
        );
    }

    #[test]
    fn endpoint_overrides_get_a_path() {
        assert_eq!(with_path("http://127.0.0.1:5000"), "http://127.0.0.1:5000/");
        assert_eq!(with_path("https://ec2.example/"), "https://ec2.example/");
        assert_eq!(
            with_path("https://proxy.example/ec2"),
            "https://proxy.example/ec2"
        );
    }

    #[test]
    fn endpoints_follow_the_partition() {
        assert_eq!(
            regional_endpoint("eu-west-1"),
            "https://ec2.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            regional_endpoint("cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn launch_times_keep_the_form_they_had() {
        assert_eq!(
            normalize_launch_time("2026-11-30T08:15:00.000Z"),
            "2026-11-30T08:15:00Z"
        );
        assert_eq!(
            normalize_launch_time("2026-11-30T08:15:00.500Z"),
            "2026-11-30T08:15:00.5Z"
        );
        assert_eq!(
            normalize_launch_time("2026-11-30T09:15:00.123456789+01:00"),
            "2026-11-30T08:15:00.123456Z"
        );
        assert_eq!(normalize_launch_time("yesterday"), "yesterday");
    }
}

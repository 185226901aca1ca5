//! The fetcher loop: list → diff → publish (one transaction) → advance known state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use hostledger_kafka::KafkaClients;
use hostledger_schemas::{EventKind, HostEvent, Timestamp};

use crate::config::{FetcherConfig, ProviderConfig};
use crate::diff::{Diff, KnownHost, advance, diff};
use crate::error::FetchError;
use crate::provider::Provider;
use crate::provider::aws::AwsEc2;
use crate::provider::dcexport::DcExport;
use crate::provider::exec::ExecProvider;
use crate::publish::Publisher;
use crate::state::restore;

/// What one pass of one provider did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Provider instance name.
    pub provider: String,
    /// Hosts in the listing.
    pub listed: usize,
    /// Events published, by kind.
    pub published: BTreeMap<&'static str, usize>,
    /// Problems with individual entries (reported, not fatal).
    pub problems: Vec<String>,
}

impl PassReport {
    /// Total events published.
    pub fn total_published(&self) -> usize {
        self.published.values().sum()
    }
}

/// A grace period in microseconds, saturating instead of overflowing.
fn grace_micros(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// One provider, its publisher and what it has published so far.
pub struct Fetcher {
    provider: Box<dyn Provider>,
    publisher: Publisher,
    known: HashMap<String, KnownHost>,
    /// The last event published for each known host: its state entry's value.
    last: HashMap<String, HostEvent>,
    missing_grace_micros: i64,
}

impl Fetcher {
    /// Fences any earlier instance of this provider, then restores what it published.
    pub async fn start(
        kafka: &KafkaClients,
        provider: Box<dyn Provider>,
        missing_grace_secs: u64,
    ) -> Result<Self, FetchError> {
        let source = provider.name().to_owned();
        let publisher = Publisher::new(kafka, &source).await?;
        let state_source = source.clone();
        let crate::state::Restored { known, last } = kafka
            .blocking(move |k| restore(k, &state_source, Duration::from_secs(120)))
            .await?;
        let absent = known.values().filter(|k| k.absent_since.is_some()).count();
        tracing::info!(provider = %source, hosts = known.len(), absent, "fetcher state restored");
        Ok(Fetcher {
            provider,
            publisher,
            known,
            last,
            missing_grace_micros: grace_micros(missing_grace_secs),
        })
    }

    /// Publishes through new connections from now on (after the client certificate was
    /// renewed): a new producer with the same transactional id, which fences the old one.
    /// Called between passes, so no transaction is open.
    pub async fn reconnect(&mut self, kafka: &KafkaClients) -> Result<(), FetchError> {
        let source = self.provider.name().to_owned();
        self.publisher = Publisher::new(kafka, &source).await?;
        Ok(())
    }

    /// Hosts the fetcher knows about.
    pub fn known(&self) -> &HashMap<String, KnownHost> {
        &self.known
    }

    /// Lists, diffs and publishes once. A failed listing publishes nothing; a failed
    /// publish leaves the known state where it was, so the next pass tries again. Absence
    /// clocks that start or stop are written to the fetcher state with the events, so a
    /// restarted fetcher declares a host missing when the grace since it was first seen
    /// absent is over, not a grace after the restart.
    pub async fn pass(&mut self) -> Result<PassReport, FetchError> {
        let listing = self.provider.list().await?;
        let d = diff(&self.known, &listing, self.missing_grace_micros);
        let source = self.provider.name().to_owned();
        let events = events_of(&d, self.provider.kind(), &source, listing.observed_at);
        for problem in &listing.problems {
            tracing::warn!(provider = %source, error = %problem, "bad entry in listing");
        }
        let with_event: HashSet<&str> = events.iter().map(|e| e.host_id.as_str()).collect();
        let clocks: Vec<(&HostEvent, Option<Timestamp>)> = d
            .absence
            .iter()
            .filter(|(host_id, _)| !with_event.contains(host_id.as_str()))
            .filter_map(|(host_id, since)| Some((self.last.get(host_id)?, *since)))
            .collect();
        self.publisher.publish_pass(&events, &clocks).await?;
        advance(&mut self.known, &d);
        for event in &events {
            self.last.insert(event.host_id.clone(), event.clone());
        }
        let mut published: BTreeMap<&'static str, usize> = BTreeMap::new();
        for e in &events {
            *published.entry(kind_name(e.kind)).or_default() += 1;
        }
        Ok(PassReport {
            provider: source,
            listed: listing.hosts.len(),
            published,
            problems: listing.problems,
        })
    }
}

/// The events of a diff, as the provider `kind`'s instance `source` publishes them: each with a
/// new id, observed at the listing's time.
pub fn events_of(d: &Diff, kind: &str, source: &str, observed_at: Timestamp) -> Vec<HostEvent> {
    d.changes
        .iter()
        .map(|c| HostEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            host_id: c.host_id.clone(),
            kind: c.kind,
            provider: kind.to_owned(),
            source: source.to_owned(),
            observed_at,
            state: c.state.clone(),
            changes: c.changes.clone(),
        })
        .collect()
}

fn kind_name(kind: EventKind) -> &'static str {
    kind.as_str()
}

pub(crate) fn build_provider(config: &ProviderConfig) -> Box<dyn Provider> {
    match config {
        ProviderConfig::DcExport(c) => Box::new(DcExport::new(c.clone())),
        ProviderConfig::Exec(c) => Box::new(ExecProvider::new(c.clone())),
        ProviderConfig::AwsEc2(c) => Box::new(AwsEc2::new(c.clone())),
    }
}

/// Runs every configured provider. With `once`, one pass each, then returns the reports (an
/// error if any provider failed). Otherwise passes repeat every `interval_secs` until
/// `shutdown` resolves; a failed pass is logged and retried at the next interval.
pub async fn run(
    config: &FetcherConfig,
    once: bool,
    metrics: std::sync::Arc<crate::metrics::FetcherMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<Vec<PassReport>, FetchError> {
    let renewal = config.renewal_identity()?;
    if let Some((identity, _)) = &renewal
        && hostledger_kafka::renewal::finish_interrupted(identity)?
    {
        tracing::info!(cert = %identity.cert_file.display(), "finished replacing a renewed certificate");
    }
    let kafka = KafkaClients::new(config.kafka.clone())?;
    kafka
        .check_connection_async(Duration::from_secs(15))
        .await?;
    let mut fetchers = Vec::new();
    for p in &config.providers {
        fetchers.push(Fetcher::start(&kafka, build_provider(p), config.missing_grace_secs).await?);
    }
    if once {
        let mut reports = Vec::new();
        for fetcher in &mut fetchers {
            let started = std::time::Instant::now();
            let report = fetcher.pass().await?;
            metrics.pass_ok(
                report.listed,
                report.total_published(),
                report.problems.len(),
                started.elapsed(),
            );
            reports.push(report);
        }
        return Ok(reports);
    }
    let interval = Duration::from_secs(config.interval_secs);
    metrics.set_ready(true);
    // A renewed certificate bumps the generation; each loop reconnects before its next pass.
    let (renewed, generation) = tokio::sync::watch::channel(0u64);
    let renewer = async move {
        match renewal {
            Some((identity, settings)) => {
                hostledger_kafka::renewal::keep_renewed(identity, settings.clone(), renewed).await;
            }
            None => std::future::pending().await,
        }
    };
    let loops = fetchers.into_iter().map(|fetcher| {
        run_every(
            fetcher,
            interval,
            metrics.clone(),
            config.kafka.clone(),
            generation.clone(),
        )
    });
    tokio::select! {
        _ = futures::future::join_all(loops) => {}
        () = renewer => {}
        () = shutdown => tracing::info!("shutdown requested"),
    }
    Ok(Vec::new())
}

/// Runs a fetcher's passes every `interval`, for ever; a failed pass is logged, counted and
/// retried at the next tick.
async fn run_every(
    mut fetcher: Fetcher,
    interval: Duration,
    metrics: std::sync::Arc<crate::metrics::FetcherMetrics>,
    kafka_settings: hostledger_kafka::KafkaSettings,
    mut generation: tokio::sync::watch::Receiver<u64>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if generation.has_changed().unwrap_or(false) {
            generation.mark_unchanged();
            let reconnected = match KafkaClients::new(kafka_settings.clone()) {
                Ok(kafka) => fetcher.reconnect(&kafka).await,
                Err(e) => Err(e.into()),
            };
            match reconnected {
                Ok(()) => {
                    tracing::info!(provider = %fetcher.provider.name(), "reconnected with the renewed certificate")
                }
                Err(error) => {
                    // The old producer stays; the next pass tries again.
                    generation.mark_changed();
                    tracing::error!(provider = %fetcher.provider.name(), %error, "could not reconnect with the renewed certificate");
                }
            }
        }
        let started = std::time::Instant::now();
        match fetcher.pass().await {
            Ok(report) => {
                let problems = report.problems.len();
                let published = report.total_published();
                metrics.pass_ok(report.listed, published, problems, started.elapsed());
                tracing::info!(
                    provider = %report.provider,
                    listed = report.listed,
                    published,
                    problems,
                    "pass done"
                );
            }
            Err(error) => {
                metrics.passes_failed.add(1);
                let provider = fetcher.provider.name();
                tracing::error!(%provider, %error, "pass failed; will retry");
            }
        }
    }
}

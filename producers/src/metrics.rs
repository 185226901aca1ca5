//! The fetcher's metrics, served by [`hostledger_telemetry::serve`].

use std::time::Duration;

use hostledger_telemetry::{
    Counter, Exposition, Gauge, Histogram, Ready, render_counter, render_gauge,
};

/// Everything the fetcher counts (all providers together; per-provider detail is in logs).
#[derive(Debug, Default)]
pub struct FetcherMetrics {
    /// Passes that listed, diffed and published.
    pub passes: Counter,
    /// Passes that failed (listing or publishing); nothing was published for them.
    pub passes_failed: Counter,
    /// Events published.
    pub events_published: Counter,
    /// Bad entries reported by providers.
    pub listing_problems: Counter,
    /// Hosts in the last listings.
    pub hosts_listed: Gauge,
    /// Unix time of the last successful pass.
    pub last_success_unix_seconds: Gauge,
    /// Time of one pass.
    pub pass_seconds: Histogram,
    ready: Ready,
}

impl FetcherMetrics {
    /// Marks the fetcher ready (its providers started) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(ready);
    }

    /// Records a successful pass.
    pub fn pass_ok(&self, listed: usize, published: usize, problems: usize, took: Duration) {
        self.passes.add(1);
        self.events_published.add(published as u64);
        self.listing_problems.add(problems as u64);
        self.hosts_listed.set(listed as u64);
        self.pass_seconds.observe(took);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_success_unix_seconds.set(now.as_secs());
    }
}

impl Exposition for FetcherMetrics {
    fn render(&self) -> String {
        let mut out = String::new();
        render_counter(
            &mut out,
            "hostledger_fetcher_passes_total",
            "Passes that published their changes.",
            self.passes.get(),
        );
        render_counter(
            &mut out,
            "hostledger_fetcher_passes_failed_total",
            "Passes that failed and published nothing.",
            self.passes_failed.get(),
        );
        render_counter(
            &mut out,
            "hostledger_fetcher_events_published_total",
            "Events published.",
            self.events_published.get(),
        );
        render_counter(
            &mut out,
            "hostledger_fetcher_listing_problems_total",
            "Bad entries reported by providers.",
            self.listing_problems.get(),
        );
        render_gauge(
            &mut out,
            "hostledger_fetcher_hosts_listed",
            "Hosts in the last listing.",
            self.hosts_listed.get(),
        );
        render_gauge(
            &mut out,
            "hostledger_fetcher_last_success_unix_seconds",
            "Unix time of the last successful pass.",
            self.last_success_unix_seconds.get(),
        );
        self.pass_seconds.render(
            &mut out,
            "hostledger_fetcher_pass_duration_seconds",
            "Time of one list, diff and publish pass.",
        );
        render_gauge(
            &mut out,
            "hostledger_fetcher_ready",
            "Whether the fetcher's providers are running.",
            u64::from(self.ready.get()),
        );
        out
    }

    fn is_ready(&self) -> bool {
        self.ready.get()
    }
}

//! The projector's metrics, served by [`hostledger_telemetry::serve`].

use hostledger_telemetry::{
    Counter, Exposition, Gauge, Histogram, Ready, render_counter, render_gauge,
};

pub use hostledger_telemetry::{bind, serve};

/// Everything the projector counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages read from the events topic.
    pub consumed: Counter,
    /// Events folded into a Host.
    pub applied: Counter,
    /// Events skipped as already applied.
    pub skipped: Counter,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Hosts written.
    pub hosts_written: Counter,
    /// API write requests (Hosts and HostHistory).
    pub api_writes: Counter,
    /// Events behind the end of the log, summed over assigned partitions.
    pub lag_events: Gauge,
    /// Time to fold, write and commit one batch.
    pub batch_seconds: Histogram,
    ready: Ready,
}

impl Metrics {
    /// Marks the projector ready (consuming) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(ready);
    }
}

impl Exposition for Metrics {
    fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "hostledger_projector_events_consumed_total",
                "Messages read from the events topic.",
                &self.consumed,
            ),
            (
                "hostledger_projector_events_applied_total",
                "Events folded into a Host.",
                &self.applied,
            ),
            (
                "hostledger_projector_events_skipped_total",
                "Events skipped as already applied.",
                &self.skipped,
            ),
            (
                "hostledger_projector_events_dead_lettered_total",
                "Messages sent to the dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "hostledger_projector_hosts_written_total",
                "Hosts written (once per touched host per batch).",
                &self.hosts_written,
            ),
            (
                "hostledger_projector_api_writes_total",
                "Kubernetes API write requests.",
                &self.api_writes,
            ),
        ];
        for (name, help, counter) in counters {
            render_counter(&mut out, name, help, counter.get());
        }
        render_gauge(
            &mut out,
            "hostledger_projector_lag_events",
            "Events behind the end of the log.",
            self.lag_events.get(),
        );
        self.batch_seconds.render(
            &mut out,
            "hostledger_projector_batch_duration_seconds",
            "Time to fold, write and commit one batch.",
        );
        render_gauge(
            &mut out,
            "hostledger_projector_ready",
            "Whether the projector is consuming.",
            u64::from(self.ready.get()),
        );
        out
    }

    fn is_ready(&self) -> bool {
        self.ready.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let m = Metrics::default();
        m.applied.add(3);
        m.lag_events.set(12);
        let text = m.render();
        assert!(
            text.contains("hostledger_projector_events_applied_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("hostledger_projector_lag_events 12\n"),
            "{text}"
        );
        assert!(text.contains("hostledger_projector_ready 0\n"), "{text}");
        assert!(
            text.contains("hostledger_projector_batch_duration_seconds_count 0\n"),
            "{text}"
        );
    }
}

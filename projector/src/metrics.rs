//! Prometheus metrics and health endpoints of the projector: `/metrics` (text format),
//! `/healthz` (the process is up) and `/readyz` (it is consuming).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

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
    pub lag_events: AtomicU64,
    /// Time to fold and write one batch and commit it.
    pub batch_seconds: Histogram,
    ready: AtomicBool,
}

impl Metrics {
    /// Marks the projector ready (consuming) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the projector is consuming.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
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
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP hostledger_projector_lag_events Events behind the end of the log.\n# TYPE hostledger_projector_lag_events gauge\nhostledger_projector_lag_events {}",
            self.lag_events.load(Ordering::Relaxed)
        );
        self.batch_seconds.render(
            &mut out,
            "hostledger_projector_batch_duration_seconds",
            "Time to fold, write and commit one batch.",
        );
        let _ = writeln!(
            out,
            "# HELP hostledger_projector_ready Whether the projector is consuming.\n# TYPE hostledger_projector_ready gauge\nhostledger_projector_ready {}",
            u8::from(self.is_ready())
        );
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                "/readyz" if metrics.is_ready() => ("200 OK", "text/plain", "ok\n".to_owned()),
                "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "not consuming\n".to_owned(),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "try /metrics, /healthz or /readyz\n".to_owned(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Binds `addr` for [`serve`], with an error that names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for /metrics: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.applied.add(3);
        m.batch_seconds.observe(Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("hostledger_projector_events_applied_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("hostledger_projector_batch_duration_seconds_bucket{le=\"0.05\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hostledger_projector_batch_duration_seconds_bucket{le=\"0.025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("hostledger_projector_batch_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(text.contains("hostledger_projector_ready 0\n"), "{text}");
    }
}

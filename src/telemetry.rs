//! Logs (tracing) and the Prometheus counters behind `/metrics`: callbacks by channel and
//! outcome, handler latency, and how long the group commits take. Plain atomics, no registry
//! crate.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Starts the global subscriber. `YUNYING_LOG` overrides the configured level.
pub fn init(log: &LogConfig) {
    let filter = std::env::var("YUNYING_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// How a callback ended, for the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Verified,
    Rejected,
    Unavailable,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Self::Accepted,
        Self::Duplicate,
        Self::Verified,
        Self::Rejected,
        Self::Unavailable,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
            Self::Unavailable => "unavailable",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 4.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int conversion; durations are never negative.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

type Counters = [AtomicU64; 5];

/// Process-wide counters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

#[derive(Default)]
struct MetricsInner {
    /// Known channels get a fixed slot so the hot path never allocates or locks.
    callbacks: HashMap<String, Counters>,
    unknown_channel: Counters,
    handler_latency: Histogram,
    handler_timeouts: AtomicU64,
    dead_events: AtomicU64,
    duplicate_waits: AtomicU64,
    /// One observation per group commit: its statements and the commit, disk flush included.
    group_commits: Histogram,
    group_commit_rows: AtomicU64,
}

impl Metrics {
    pub fn new<'a>(channel_ids: impl IntoIterator<Item = &'a str>) -> Self {
        let callbacks = channel_ids
            .into_iter()
            .map(|id| (id.to_owned(), Counters::default()))
            .collect();
        Self {
            inner: Arc::new(MetricsInner {
                callbacks,
                ..MetricsInner::default()
            }),
        }
    }

    pub fn callback(&self, channel_id: &str, outcome: Outcome) {
        let counters = self
            .inner
            .callbacks
            .get(channel_id)
            .unwrap_or(&self.inner.unknown_channel);
        counters[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn handler_latency(&self, seconds: f64) {
        self.inner.handler_latency.observe(seconds);
    }

    /// A group commit that wrote `rows` deliveries took `seconds`.
    pub fn group_commit(&self, seconds: f64, rows: usize) {
        self.inner.group_commits.observe(seconds);
        self.inner
            .group_commit_rows
            .fetch_add(u64::try_from(rows).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn handler_timeout(&self) {
        self.inner.handler_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A duplicate delivery waited for the first copy's answer.
    pub fn duplicate_wait(&self) {
        self.inner.duplicate_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn duplicate_waits(&self) -> u64 {
        self.inner.duplicate_waits.load(Ordering::Relaxed)
    }

    /// An event set aside as dead after its handlers failed too often.
    pub fn inbox_dead(&self) {
        self.inner.dead_events.fetch_add(1, Ordering::Relaxed);
    }

    pub fn callbacks_total(&self, channel_id: &str, outcome: Outcome) -> u64 {
        self.inner
            .callbacks
            .get(channel_id)
            .map_or(0, |c| c[outcome.index()].load(Ordering::Relaxed))
    }

    /// Prometheus text exposition format: this process's counters and histograms, then the
    /// shared gauges read from the database.
    pub fn render(&self, gauges: &Gauges) -> String {
        let inbox_depth = gauges.inbox_depth;
        let mut out = String::new();
        out.push_str(
            "# HELP yunying_callbacks_total Callbacks received, by channel and outcome.\n",
        );
        out.push_str("# TYPE yunying_callbacks_total counter\n");
        let mut ids: Vec<&String> = self.inner.callbacks.keys().collect();
        ids.sort();
        let rows = ids
            .into_iter()
            .map(|id| (id.as_str(), &self.inner.callbacks[id]))
            .chain(std::iter::once(("_unknown", &self.inner.unknown_channel)));
        for (id, counters) in rows {
            for outcome in Outcome::ALL {
                let _ = writeln!(
                    out,
                    "yunying_callbacks_total{{channel=\"{id}\",outcome=\"{}\"}} {}",
                    outcome.label(),
                    counters[outcome.index()].load(Ordering::Relaxed)
                );
            }
        }
        self.inner.handler_latency.render(
            &mut out,
            "yunying_handler_duration_seconds",
            "Time spent in handlers per accepted event.",
        );
        out.push_str("# HELP yunying_handler_timeouts_total Events whose handlers missed the reply budget.\n");
        out.push_str("# TYPE yunying_handler_timeouts_total counter\n");
        let _ = writeln!(
            out,
            "yunying_handler_timeouts_total {}",
            self.inner.handler_timeouts.load(Ordering::Relaxed)
        );
        out.push_str("# HELP yunying_duplicate_waits_total Duplicate deliveries that waited for the first copy's answer.\n");
        out.push_str("# TYPE yunying_duplicate_waits_total counter\n");
        let _ = writeln!(
            out,
            "yunying_duplicate_waits_total {}",
            self.inner.duplicate_waits.load(Ordering::Relaxed)
        );
        out.push_str("# HELP yunying_inbox_dead_total Events set aside as dead by this process after repeated handler failures.\n");
        out.push_str("# TYPE yunying_inbox_dead_total counter\n");
        let _ = writeln!(
            out,
            "yunying_inbox_dead_total {}",
            self.inner.dead_events.load(Ordering::Relaxed)
        );
        self.inner.group_commits.render(
            &mut out,
            "yunying_group_commit_duration_seconds",
            "Time per group commit of accepted deliveries, the database's disk flush included.",
        );
        out.push_str(
            "# HELP yunying_group_commit_rows_total Deliveries written by group commits.\n",
        );
        out.push_str("# TYPE yunying_group_commit_rows_total counter\n");
        let _ = writeln!(
            out,
            "yunying_group_commit_rows_total {}",
            self.inner.group_commit_rows.load(Ordering::Relaxed)
        );
        if let Some(depth) = inbox_depth {
            out.push_str("# HELP yunying_inbox_depth Accepted deliveries not yet processed.\n");
            out.push_str("# TYPE yunying_inbox_depth gauge\n");
            let _ = writeln!(out, "yunying_inbox_depth {depth}");
        }
        gauges.render(&mut out);
        out
    }
}

/// What `/metrics` reads from the database (every replica reports the same) and the outbox's
/// counters of this process.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub inbox_depth: Option<i64>,
    pub inbox_dead: Option<i64>,
    /// Outbox rows by state.
    pub outbox_rows: Option<Vec<(String, i64)>>,
    /// This process's send attempts by result.
    pub outbox_sends: [(&'static str, u64); 4],
}

impl Gauges {
    fn render(&self, out: &mut String) {
        if let Some(dead) = self.inbox_dead {
            out.push_str("# HELP yunying_inbox_dead Events set aside as dead, waiting for ops to re-drive or discard them.\n# TYPE yunying_inbox_dead gauge\n");
            let _ = writeln!(out, "yunying_inbox_dead {dead}");
        }
        if let Some(rows) = &self.outbox_rows {
            out.push_str(
                "# HELP yunying_outbox_rows Outbox rows by state.\n# TYPE yunying_outbox_rows gauge\n",
            );
            for (state, n) in rows {
                let _ = writeln!(out, "yunying_outbox_rows{{state=\"{state}\"}} {n}");
            }
        }
        out.push_str("# HELP yunying_outbox_sends_total Send attempts of this process by result.\n# TYPE yunying_outbox_sends_total counter\n");
        for (label, n) in self.outbox_sends {
            let _ = writeln!(out, "yunying_outbox_sends_total{{result=\"{label}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new(["a"]);
        m.callback("a", Outcome::Accepted);
        m.callback("a", Outcome::Accepted);
        m.callback("zzz", Outcome::Rejected);
        m.handler_latency(0.002);
        let text = m.render(&Gauges {
            inbox_depth: Some(3),
            outbox_rows: Some(vec![("sent".into(), 2)]),
            ..Gauges::default()
        });
        assert!(text.contains("yunying_outbox_rows{state=\"sent\"} 2"));
        assert!(text.contains("yunying_callbacks_total{channel=\"a\",outcome=\"accepted\"} 2"));
        assert!(
            text.contains("yunying_callbacks_total{channel=\"_unknown\",outcome=\"rejected\"} 1")
        );
        assert!(text.contains("yunying_handler_duration_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("yunying_handler_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("yunying_inbox_depth 3"));
    }

    #[test]
    fn group_commits_render_as_a_histogram_and_a_row_count() {
        let m = Metrics::new(["a"]);
        m.group_commit(0.004, 12);
        m.group_commit(0.2, 3);
        let text = m.render(&Gauges::default());
        assert!(text.contains("# TYPE yunying_group_commit_duration_seconds histogram"));
        assert!(text.contains("yunying_group_commit_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("yunying_group_commit_duration_seconds_bucket{le=\"0.25\"} 2"));
        assert!(text.contains("yunying_group_commit_duration_seconds_count 2"));
        assert!(text.contains("yunying_group_commit_duration_seconds_sum 0.204"));
        assert!(text.contains("yunying_group_commit_rows_total 15"));
        assert!(!text.contains("yunying_inbox_depth"));
    }
}

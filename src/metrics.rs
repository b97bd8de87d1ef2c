//! Counters for `/metrics` (Prometheus text format, served on the admin listener only).

use hashbrown::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

type Decisions = HashMap<String, HashMap<String, HashMap<String, u64>>>;

/// What the proxy counts as it works. Decisions are counted by action and category when
/// they are journaled; the rest are gauges read when scraped.
#[derive(Debug, Default)]
pub struct Metrics {
    /// action → category → outcome → count; nested so that counting allocates nothing
    /// once a combination has been seen.
    decisions: Mutex<Decisions>,
    pub open_connections: AtomicI64,
    /// Keep-alive connections waiting for their next request without an HTTP server on them.
    pub parked_connections: AtomicI64,
}

impl Metrics {
    pub fn count_decision(&self, action: Option<&str>, category: Option<&str>, outcome: &str) {
        let mut map = self
            .decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry_ref(action.unwrap_or("none"))
            .or_default()
            .entry_ref(category.unwrap_or("none"))
            .or_default()
            .entry_ref(outcome)
            .or_default() += 1;
    }

    /// Decisions counted so far, sorted: ((action, category, outcome), count).
    pub fn decisions(&self) -> Vec<((String, String, String), u64)> {
        let map = self
            .decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        for (action, by_category) in map.iter() {
            for (category, by_outcome) in by_category {
                for (outcome, n) in by_outcome {
                    out.push(((action.clone(), category.clone(), outcome.clone()), *n));
                }
            }
        }
        out.sort_unstable();
        out
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gauges and counters read from elsewhere when scraped.
pub struct Snapshot {
    pub journal_queue_depth: i64,
    pub journal_dropped: u64,
    pub journal_lost: u64,
    pub journal_written: u64,
    pub reloads: u64,
    pub reloads_failed: u64,
}

/// Renders everything in the Prometheus text exposition format.
pub fn render(metrics: &Metrics, snap: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP signpost_decisions_total Decisions journaled, by action, category and outcome."
    );
    let _ = writeln!(o, "# TYPE signpost_decisions_total counter");
    for ((action, category, outcome), n) in metrics.decisions() {
        let _ = writeln!(
            o,
            "signpost_decisions_total{{action=\"{}\",category=\"{}\",outcome=\"{}\"}} {n}",
            label(&action),
            label(&category),
            label(&outcome)
        );
    }
    let gauges: [(&str, &str, &str, String); 8] = [
        (
            "signpost_open_connections",
            "gauge",
            "Client connections open now.",
            metrics.open_connections.load(Ordering::Relaxed).to_string(),
        ),
        (
            "signpost_parked_connections",
            "gauge",
            "Idle keep-alive client connections parked (holding no HTTP buffers).",
            metrics
                .parked_connections
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        (
            "signpost_journal_queue_depth",
            "gauge",
            "Decision records waiting for the writer.",
            snap.journal_queue_depth.to_string(),
        ),
        (
            "signpost_journal_dropped_total",
            "counter",
            "Decision records dropped because the queue was full.",
            snap.journal_dropped.to_string(),
        ),
        (
            "signpost_journal_lost_total",
            "counter",
            "Decision records lost because the store could not be written.",
            snap.journal_lost.to_string(),
        ),
        (
            "signpost_journal_written_total",
            "counter",
            "Decision records stored.",
            snap.journal_written.to_string(),
        ),
        (
            "signpost_reloads_total",
            "counter",
            "Policy reloads that succeeded.",
            snap.reloads.to_string(),
        ),
        (
            "signpost_reloads_failed_total",
            "counter",
            "Policy reloads refused (the old policy was kept).",
            snap.reloads_failed.to_string(),
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        let _ = writeln!(o, "{name} {value}");
    }
    o
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_per_combination_and_listed_sorted() {
        let m = Metrics::default();
        m.count_decision(Some("coach"), Some("social"), "acknowledged");
        m.count_decision(None, None, "forwarded");
        m.count_decision(Some("coach"), Some("social"), "acknowledged");
        m.count_decision(Some("coach"), Some("social"), "coached");
        let key = |a: &str, c: &str, o: &str| (a.to_string(), c.to_string(), o.to_string());
        assert_eq!(
            m.decisions(),
            [
                (key("coach", "social", "acknowledged"), 2),
                (key("coach", "social", "coached"), 1),
                (key("none", "none", "forwarded"), 1),
            ]
        );
    }
}

//! The relay's metrics, rendered into `/metrics` (Prometheus text): deliveries by
//! destination and outcome, pending deliveries and the age of the oldest (the lag),
//! and each destination's breaker state.

use crate::breaker::BreakerState;
use crate::sink::Outcome;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct Destination {
    delivered: u64,
    retried: u64,
    gone: u64,
    seconds: f64,
    pending: i64,
    oldest_pending_seconds: f64,
    breaker: i64,
}

/// Counters and gauges of one node's relay.
pub struct RelayMetrics {
    by_destination: Mutex<HashMap<String, Destination>>,
}

impl RelayMetrics {
    pub fn new(destinations: &[String]) -> Self {
        Self {
            by_destination: Mutex::new(
                destinations
                    .iter()
                    .map(|d| (d.clone(), Destination::default()))
                    .collect(),
            ),
        }
    }

    /// Count one attempt and how long it took.
    pub fn record(&self, destination: &str, outcome: &Outcome, took: Duration) {
        if let Ok(mut m) = self.by_destination.lock() {
            let d = m.entry(destination.to_string()).or_default();
            match outcome {
                Outcome::Delivered { .. } => d.delivered += 1,
                Outcome::Retry { .. } => d.retried += 1,
                Outcome::Gone { .. } => d.gone += 1,
            }
            d.seconds += took.as_secs_f64();
        }
    }

    /// Pending deliveries and the oldest one's age, per destination (all others: 0).
    pub fn set_pending(&self, stats: Vec<(String, i64, f64)>) {
        if let Ok(mut m) = self.by_destination.lock() {
            for d in m.values_mut() {
                d.pending = 0;
                d.oldest_pending_seconds = 0.0;
            }
            for (name, pending, oldest) in stats {
                let d = m.entry(name).or_default();
                d.pending = pending;
                d.oldest_pending_seconds = oldest;
            }
        }
    }

    pub fn set_breaker(&self, destination: &str, state: BreakerState) {
        if let Ok(mut m) = self.by_destination.lock() {
            m.entry(destination.to_string()).or_default().breaker = state.gauge();
        }
    }

    /// Deliveries settled as delivered so far on this node, for one destination.
    pub fn delivered(&self, destination: &str) -> u64 {
        self.by_destination
            .lock()
            .ok()
            .and_then(|m| m.get(destination).map(|d| d.delivered))
            .unwrap_or(0)
    }

    /// Append the Prometheus text of these metrics to `out`.
    pub fn render(&self, out: &mut String) {
        let Ok(m) = self.by_destination.lock() else {
            return;
        };
        let mut names: Vec<&String> = m.keys().collect();
        names.sort();
        let _ = writeln!(
            out,
            "# HELP keel_event_deliveries_total Delivery attempts by destination and outcome.\n# TYPE keel_event_deliveries_total counter"
        );
        for n in &names {
            let d = &m[*n];
            for (outcome, v) in [
                ("delivered", d.delivered),
                ("retry", d.retried),
                ("gone", d.gone),
            ] {
                let _ = writeln!(
                    out,
                    "keel_event_deliveries_total{{destination=\"{n}\",outcome=\"{outcome}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP keel_event_delivery_seconds_total Time spent in delivery attempts.\n# TYPE keel_event_delivery_seconds_total counter"
        );
        for n in &names {
            let _ = writeln!(
                out,
                "keel_event_delivery_seconds_total{{destination=\"{n}\"}} {}",
                m[*n].seconds
            );
        }
        let _ = writeln!(
            out,
            "# HELP keel_events_pending Deliveries not yet settled.\n# TYPE keel_events_pending gauge"
        );
        for n in &names {
            let _ = writeln!(
                out,
                "keel_events_pending{{destination=\"{n}\"}} {}",
                m[*n].pending
            );
        }
        let _ = writeln!(
            out,
            "# HELP keel_events_oldest_pending_seconds Age of the oldest pending event (the lag).\n# TYPE keel_events_oldest_pending_seconds gauge"
        );
        for n in &names {
            let _ = writeln!(
                out,
                "keel_events_oldest_pending_seconds{{destination=\"{n}\"}} {}",
                m[*n].oldest_pending_seconds
            );
        }
        let _ = writeln!(
            out,
            "# HELP keel_event_breaker_state Circuit breaker: 0 closed, 1 half-open, 2 open.\n# TYPE keel_event_breaker_state gauge"
        );
        for n in &names {
            let _ = writeln!(
                out,
                "keel_event_breaker_state{{destination=\"{n}\"}} {}",
                m[*n].breaker
            );
        }
    }
}

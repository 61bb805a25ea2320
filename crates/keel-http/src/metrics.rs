//! `/metrics` in the Prometheus text format: requests by method, route and status, and
//! their latency as a histogram. Routes are normalised (`/v1/posts/{id}`; unknown paths
//! count as `other`) so the number of series stays bounded.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Counters and latency histograms of the HTTP layer.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(String, String, u16), u64>>,
    latency: Mutex<HashMap<(String, String), Histogram>>,
}

/// `/v1/posts/0193…` → `/v1/posts/{id}`; anything unrouted → `other`.
pub fn route_label(path: &str, status: u16) -> String {
    if status == 404 && !path.starts_with("/v1/") {
        return "other".into();
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let norm: Vec<String> = segs
        .iter()
        .map(|s| {
            if uuid::Uuid::parse_str(s).is_ok() {
                "{id}".to_string()
            } else {
                (*s).to_string()
            }
        })
        .collect();
    if norm.len() > 6 || norm.iter().any(|s| s.len() > 64) {
        return "other".into();
    }
    format!("/{}", norm.join("/"))
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l
                .entry((method.to_string(), route.to_string()))
                .or_default();
            let secs = elapsed.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP keel_build_info Keel's version.\n# TYPE keel_build_info gauge"
        );
        let _ = writeln!(
            out,
            "keel_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP keel_http_requests_total HTTP requests by method, route and status.\n# TYPE keel_http_requests_total counter"
        );
        if let Ok(r) = self.requests.lock() {
            let mut rows: Vec<_> = r.iter().collect();
            rows.sort();
            for ((m, p, s), n) in rows {
                let _ = writeln!(
                    out,
                    "keel_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                    escape(p)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP keel_http_request_duration_seconds Time to answer, by method and route.\n# TYPE keel_http_request_duration_seconds histogram"
        );
        if let Ok(l) = self.latency.lock() {
            let mut rows: Vec<_> = l.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for ((m, p), h) in rows {
                let labels = format!("method=\"{m}\",route=\"{}\"", escape(p));
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "keel_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "keel_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "keel_http_request_duration_seconds_sum{{{labels}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "keel_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Another part of the app with metrics of its own (the event relay), appended to
/// `/metrics` after the HTTP layer's.
pub trait MetricsSource: Send + Sync {
    /// Append Prometheus text to `out`.
    fn render(&self, out: &mut String);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_normalised_and_counted() {
        assert_eq!(
            route_label("/v1/posts/0193b1c4-7f2e-7a3b-9c4d-5e6f7a8b9c0d", 200),
            "/v1/posts/{id}"
        );
        assert_eq!(route_label("/wp-admin/x.php", 404), "other");
        let m = Metrics::default();
        m.record("GET", "/v1/posts", 200, Duration::from_millis(3));
        m.record("GET", "/v1/posts", 200, Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains(
                "keel_http_requests_total{method=\"GET\",route=\"/v1/posts\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(
            text.contains("_count{method=\"GET\",route=\"/v1/posts\"} 2"),
            "{text}"
        );
    }
}

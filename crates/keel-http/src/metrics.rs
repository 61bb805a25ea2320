//! `/metrics` in the Prometheus text format: requests by method, route and status, and
//! their latency as a histogram. Routes are normalised (`/v1/posts/{id}`; unknown paths
//! count as `other`) so the number of series stays bounded.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

thread_local! {
    /// The series key of the request being counted, reused.
    static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// One method and route: requests by status and the latency histogram.
struct Series {
    method: String,
    route: String,
    statuses: Vec<(u16, u64)>,
    latency: Histogram,
}

/// Counters and latency histograms of the HTTP layer: one lock and, once a route has
/// been seen, no allocation per request (the key is built in a reused buffer).
#[derive(Default)]
pub struct Metrics {
    /// By `"<method> <route>"`.
    series: Mutex<HashMap<String, Series>>,
}

/// `/v1/posts/0193…` → `/v1/posts/{id}`; anything unrouted → `other`.
pub fn route_label(path: &str, status: u16) -> String {
    let mut out = String::with_capacity(path.len());
    push_route_label(&mut out, path, status);
    out
}

/// [`route_label`] appended to `out`.
fn push_route_label(out: &mut String, path: &str, status: u16) {
    let start = out.len();
    if status == 404 && !path.starts_with("/v1/") {
        out.push_str("other");
        return;
    }
    let trimmed = path.trim_matches('/');
    let mut segments = 0;
    for s in trimmed.split('/') {
        segments += 1;
        if segments > 6 || s.len() > 64 {
            out.truncate(start);
            out.push_str("other");
            return;
        }
        out.push('/');
        if s.len() >= 32 && uuid::Uuid::parse_str(s).is_ok() {
            out.push_str("{id}");
        } else {
            out.push_str(s);
        }
    }
    if trimmed.is_empty() {
        out.truncate(start);
        out.push('/');
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Count one request to `path`, labelled as [`route_label`] would.
    pub fn record_path(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        KEY.with(|key| {
            let mut key = key.borrow_mut();
            key.clear();
            key.push_str(method);
            key.push(' ');
            push_route_label(&mut key, path, status);
            self.count(&key, method.len(), status, elapsed);
        });
    }

    fn count(&self, key: &str, method_len: usize, status: u16, elapsed: Duration) {
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        if !series.contains_key(key) {
            series.insert(
                key.to_string(),
                Series {
                    method: key[..method_len].to_string(),
                    route: key[method_len + 1..].to_string(),
                    statuses: Vec::new(),
                    latency: Histogram::default(),
                },
            );
        }
        let Some(s) = series.get_mut(key) else {
            return;
        };
        match s.statuses.iter_mut().find(|(code, _)| *code == status) {
            Some((_, n)) => *n += 1,
            None => s.statuses.push((status, 1)),
        }
        let h = &mut s.latency;
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
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
        let series = self.series.lock();
        let mut rows: Vec<&Series> = series.iter().flat_map(|s| s.values()).collect();
        rows.sort_by(|a, b| (&a.method, &a.route).cmp(&(&b.method, &b.route)));
        for s in &rows {
            let mut statuses = s.statuses.clone();
            statuses.sort();
            for (code, n) in statuses {
                let _ = writeln!(
                    out,
                    "keel_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{code}\"}} {n}",
                    s.method,
                    escape(&s.route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP keel_http_request_duration_seconds Time to answer, by method and route.\n# TYPE keel_http_request_duration_seconds histogram"
        );
        for s in &rows {
            let h = &s.latency;
            let labels = format!("method=\"{}\",route=\"{}\"", s.method, escape(&s.route));
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
        drop(rows);
        drop(series);
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
        assert_eq!(route_label("/", 200), "/");
        assert_eq!(route_label("/v1/a/b/c/d/e/f/g", 404), "other");
        assert_eq!(route_label("/v1/posts", 200), "/v1/posts");
        let m = Metrics::default();
        m.record_path("GET", "/v1/posts", 200, Duration::from_millis(3));
        m.record_path("GET", "/v1/posts/", 200, Duration::from_millis(30));
        m.record_path("GET", "/v1/posts", 404, Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains(
                "keel_http_requests_total{method=\"GET\",route=\"/v1/posts\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "keel_http_requests_total{method=\"GET\",route=\"/v1/posts\",status=\"404\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.005\"} 2"), "{text}");
        assert!(
            text.contains("_count{method=\"GET\",route=\"/v1/posts\"} 3"),
            "{text}"
        );
    }
}

//! The events benchmark's webhook receiver: answers every `POST` at once, counts it, and
//! records its arrival time and the envelope's `occurred_at`, so the benchmark can
//! measure relay throughput and commit → first attempt latency without the receiver
//! being the bottleneck. Signatures are not verified (the test suite does that).
//!
//! - `POST /<anything>`: answered with the current status (200 unless told otherwise);
//!   only deliveries answered 2xx are recorded.
//! - `POST /_status/<code>`: answer with `code` from now on (e.g. 503 to build a backlog).
//! - `POST /_reset`: forget every recorded delivery.
//! - `GET /_stats`: JSON — `delivered`, `rejected`, `unique_ids`, `first_at`/`last_at`
//!   (unix seconds), `per_second` (delivered ÷ (last − first)), `per_second_99` (the
//!   same up to the 99th percentile arrival), and percentiles of
//!   arrival − `occurred_at` in milliseconds (`p50_ms`, `p90_ms`, `p99_ms`, `max_ms`).
//!
//! Usage: `receiver --addr 127.0.0.1:9000 [--status 503]`

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Deserialize)]
struct Envelope {
    occurred_at: String,
}

#[derive(Default)]
struct Log {
    /// (arrival, occurred_at), unix microseconds.
    times: Vec<(i64, i64)>,
    ids: HashSet<String>,
}

struct Receiver {
    status: AtomicU16,
    rejected: AtomicU64,
    log: Mutex<Log>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let arrival = now_us();
    let code = r.status.load(Ordering::Relaxed);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    if !status.is_success() {
        r.rejected.fetch_add(1, Ordering::Relaxed);
        return status.into_response();
    }
    let occurred = serde_json::from_slice::<Envelope>(&body)
        .ok()
        .and_then(|e| OffsetDateTime::parse(&e.occurred_at, &Rfc3339).ok())
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(0));
    let Some(occurred) = occurred else {
        return (StatusCode::BAD_REQUEST, "no occurred_at").into_response();
    };
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut log = r
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    log.times.push((arrival, occurred));
    log.ids.insert(id);
    drop(log);
    status.into_response()
}

async fn set_status(State(r): State<Arc<Receiver>>, Path(code): Path<u16>) -> StatusCode {
    if StatusCode::from_u16(code).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    r.status.store(code, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn reset(State(r): State<Arc<Receiver>>) -> StatusCode {
    *r.log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Log::default();
    r.rejected.store(0, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let v = sorted[rank.clamp(1, sorted.len()) - 1] as f64;
    v / 1000.0
}

async fn stats(State(r): State<Arc<Receiver>>) -> Response {
    let (mut lat, mut arrivals, unique) = {
        let log = r
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lat: Vec<i64> = log.times.iter().map(|(a, o)| a - o).collect();
        let arrivals: Vec<i64> = log.times.iter().map(|t| t.0).collect();
        (lat, arrivals, log.ids.len())
    };
    lat.sort_unstable();
    arrivals.sort_unstable();
    let first = arrivals.first().copied().unwrap_or(0);
    let last = arrivals.last().copied().unwrap_or(0);
    // The rate up to the 99th percentile arrival: a straggler (a retry scheduled
    // seconds later) does not stretch the span.
    let n99 = arrivals.len() * 99 / 100;
    let per_second_99 = match arrivals.get(n99.saturating_sub(1)) {
        Some(&t) if t > first => n99 as f64 / ((t - first) as f64 / 1e6),
        _ => 0.0,
    };
    let span = (last - first) as f64 / 1e6;
    let per_second = if span > 0.0 {
        lat.len() as f64 / span
    } else {
        0.0
    };
    let body = serde_json::json!({
        "delivered": lat.len(),
        "rejected": r.rejected.load(Ordering::Relaxed),
        "unique_ids": unique,
        "first_at": first as f64 / 1e6,
        "last_at": last as f64 / 1e6,
        "per_second": per_second,
        "per_second_99": per_second_99,
        "p50_ms": percentile(&lat, 50.0),
        "p90_ms": percentile(&lat, 90.0),
        "p99_ms": percentile(&lat, 99.0),
        "max_ms": percentile(&lat, 100.0),
    });
    axum::Json(body).into_response()
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:9000".to_owned();
    let mut status = 200u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            "--status" => status = args.next().and_then(|s| s.parse().ok()).unwrap_or(status),
            other => {
                eprintln!(
                    "receiver: unknown argument {other}; usage: receiver --addr HOST:PORT [--status CODE]"
                );
                std::process::exit(2);
            }
        }
    }
    let state = Arc::new(Receiver {
        status: AtomicU16::new(status),
        rejected: AtomicU64::new(0),
        log: Mutex::new(Log::default()),
    });
    let app = Router::new()
        .route("/_stats", get(stats))
        .route("/_status/{code}", post(set_status))
        .route("/_reset", post(reset))
        .fallback(hook)
        .with_state(state);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("receiver: listening on {addr}");
            axum::serve(listener, app).await
        })
}

//! The outer layer every request passes: request id (honoured when sane, generated
//! otherwise, returned and logged), a trace span, the request time limit, security
//! headers and one access-log line.

use crate::context::{self, RequestContext};
use crate::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One request's access-log line.
#[derive(Debug)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub elapsed_ms: f64,
}

/// Where access lines go when not through `tracing`: the binary writes them itself,
/// because formatting each one through the tracing JSON formatter cost a fifth of a
/// get-by-id's throughput.
pub trait AccessLog: Send + Sync + std::fmt::Debug {
    fn write(&self, line: &AccessLine<'_>);
}

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Access lines go here when set; through `tracing::info!` otherwise.
    pub access_log: Option<std::sync::Arc<dyn AccessLog>>,
    /// Where request counts and latencies go (`/metrics`).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Served over TLS: send `Strict-Transport-Security`.
    pub hsts: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            access_log: None,
            metrics: Default::default(),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            hsts: false,
        }
    }
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| s.to_string())
}

pub async fn request_layer(State(limits): State<Limits>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let hsts = limits.hsts;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // In-request events (audit, errors) carry the request id through this span; the
    // method and path are on the access line.
    let span = tracing::info_span!("request", request_id = %request_id);
    let ctx = RequestContext {
        request_id: request_id.clone(),
        path: path.clone(),
    };
    let fut = context::scope(ctx.clone(), async move {
        match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
            Ok(res) => res,
            Err(_) => Problem::new(
                ErrorCode::Timeout,
                format!(
                    "the request took longer than {} s",
                    limits.request_timeout.as_secs()
                ),
            )
            .into_response(),
        }
    });
    let mut res = fut.instrument(span.clone()).await;
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    let status = res.status().as_u16();
    if path != "/metrics" {
        limits.metrics.record(
            method.as_str(),
            &crate::metrics::route_label(&path, status),
            status,
            started.elapsed(),
        );
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        span.in_scope(|| {
            tracing::error!(method = %method, path = %path, status, elapsed_ms, "request failed");
        });
    } else if tracing::enabled!(target: "keel::access", tracing::Level::INFO) {
        match &limits.access_log {
            Some(log) => log.write(&AccessLine {
                request_id: &request_id,
                method: method.as_str(),
                path: &path,
                status,
                elapsed_ms,
            }),
            None => span.in_scope(|| {
                tracing::info!(target: "keel::access", method = %method, path = %path, status, elapsed_ms, "request");
            }),
        }
    }
    res
}

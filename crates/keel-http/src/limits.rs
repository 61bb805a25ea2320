//! Rate limits on REST: the request is named as the core's [`LimitTarget`] (so
//! GraphQL and realtime count against the same quotas) and checked by the app's
//! [`RateLimits`]. Answers carry the IETF `RateLimit-Policy` and `RateLimit` headers;
//! a refusal is a 429 problem with `Retry-After`.

use crate::AppState;
use crate::problem::Problem;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use keel_core::ratelimit::{Decision, LimitTarget, Quota, RateLimits, Verdict};
use std::net::SocketAddr;

/// The client's address, for anonymous callers: the one the request layer settled
/// (behind trusted proxies, the forwarded client), else the TCP peer.
pub fn client_ip(req: &Request) -> String {
    if let Some(c) = req.extensions().get::<crate::middleware::ClientAddr>() {
        return crate::middleware::ip_text(c.0);
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_string(),
            |c| crate::middleware::ip_text(c.0.ip()),
        )
}

/// The `RateLimit-Policy` and `RateLimit` headers of the tightest quota.
pub fn headers(res: &mut Response, quota: &Quota, d: &Decision) {
    let h = res.headers_mut();
    if let Some(v) = policy_header(quota) {
        h.insert("ratelimit-policy", v);
    }
    let mut numbers = itoa::Buffer::new();
    let mut value = String::with_capacity(quota.name.len() + 32);
    value.push('"');
    value.push_str(&quota.name);
    value.push_str("\";r=");
    value.push_str(numbers.format(d.remaining));
    value.push_str(";t=");
    value.push_str(numbers.format(d.reset.as_secs_f64().ceil() as u64));
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("ratelimit", v);
    }
}

/// A quota's `RateLimit-Policy` value; the same for every answer under it, so each
/// worker keeps the last one it made.
fn policy_header(quota: &Quota) -> Option<HeaderValue> {
    type Made = Option<(String, u32, u64, HeaderValue)>;
    thread_local! {
        static LAST: std::cell::RefCell<Made> = const { std::cell::RefCell::new(None) };
    }
    let (requests, period) = (quota.requests, quota.period.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((name, r, p, v)) = last.as_ref()
            && *name == quota.name
            && *r == requests
            && *p == period
        {
            return Some(v.clone());
        }
        let v =
            HeaderValue::from_str(&format!("\"{}\";q={requests};w={period}", quota.name)).ok()?;
        *last = Some((quota.name.clone(), requests, period, v.clone()));
        Some(v)
    })
}

/// A 429 for a refused decision.
pub fn refused(quota: &Quota, d: &Decision) -> Response {
    let retry = d.reset.as_secs_f64().ceil().max(1.0) as u64;
    let mut res = Problem::new(
        ErrorCode::RateLimited,
        format!("too many requests; retry in {retry} s"),
    )
    .with_header(axum::http::header::RETRY_AFTER, &retry.to_string())
    .into_response();
    headers(&mut res, quota, d);
    res
}

/// Check every quota that applies to `method path` from `user` (or, anonymous, the
/// address `ip`); the first exhausted one is the 429 to answer. Admitted: the
/// tightest quota and its decision, for the answer's headers.
pub async fn admit(
    state: &AppState,
    user: Option<uuid::Uuid>,
    ip: &str,
    method: &Method,
    path: &str,
) -> Result<Option<(Quota, Decision)>, Response> {
    let target = LimitTarget::from_rest(method.as_str(), path);
    match state.rate_limits.check(user, ip, &target).await {
        Verdict::Refused(q, d) => Err(refused(&q, &d)),
        Verdict::Allowed(tightest) => Ok(tightest),
    }
}

/// Count a login attempt for an account; `Err` is the 429 to answer.
pub async fn login_attempt(limits: &RateLimits, email: &str) -> Result<(), Box<Response>> {
    match limits.login_attempt(email).await {
        Verdict::Allowed(_) => Ok(()),
        Verdict::Refused(q, d) => Err(Box::new(refused(&q, &d))),
    }
}

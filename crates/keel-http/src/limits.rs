//! Rate limits on REST: the request is named as the core's [`LimitTarget`] (so
//! GraphQL and realtime count against the same quotas) and checked by the app's
//! [`RateLimits`]. Answers carry the IETF `RateLimit-Policy` and `RateLimit` headers;
//! a refusal is a 429 problem with `Retry-After`.

use crate::AppState;
use crate::identity::Caller;
use crate::problem::Problem;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use keel_core::ratelimit::{Decision, LimitTarget, Quota, RateLimits, Verdict};
use std::net::SocketAddr;

/// The client's address, for anonymous callers: the one the request layer settled
/// (behind trusted proxies, the forwarded client), else the TCP peer.
pub fn client_ip(req: &Request) -> String {
    if let Some(c) = req.extensions().get::<crate::middleware::ClientAddr>() {
        return c.0.to_string();
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

fn headers(res: &mut Response, quota: &Quota, d: &Decision) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "\"{}\";q={};w={}",
        quota.name,
        quota.requests,
        quota.period.as_secs()
    )) {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "\"{}\";r={};t={}",
        quota.name,
        d.remaining,
        d.reset.as_secs_f64().ceil() as u64
    )) {
        h.insert("ratelimit", v);
    }
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

/// Check every quota that applies; refuse on the first exhausted one.
pub async fn rate_limit_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Probes from load balancers and orchestrators are never limited.
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let user = req.extensions().get::<Caller>().and_then(|c| c.0.id);
    let target = LimitTarget::from_rest(req.method().as_str(), req.uri().path());
    let verdict = state
        .rate_limits
        .check(user, &client_ip(&req), &target)
        .await;
    match verdict {
        Verdict::Refused(q, d) => refused(&q, &d),
        Verdict::Allowed(tightest) => {
            let mut res = next.run(req).await;
            if let Some((q, d)) = tightest {
                headers(&mut res, &q, &d);
            }
            res
        }
    }
}

/// Count a login attempt for an account; `Err` is the 429 to answer.
pub async fn login_attempt(limits: &RateLimits, email: &str) -> Result<(), Box<Response>> {
    match limits.login_attempt(email).await {
        Verdict::Allowed(_) => Ok(()),
        Verdict::Refused(q, d) => Err(Box::new(refused(&q, &d))),
    }
}

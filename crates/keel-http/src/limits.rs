//! Rate limits from `[limits]`: a quota for anonymous callers (per IP), one for
//! signed-in callers (per user), and per-route quotas (`"POST /v1/posts" = "10/min"`,
//! counted per user or IP). Auth endpoints have strict quotas even when keel.toml is
//! silent. Answers carry the IETF `RateLimit-Policy` and `RateLimit` headers; a refusal
//! is a 429 problem with `Retry-After`.

use crate::AppState;
use crate::identity::Caller;
use crate::problem::Problem;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_core::ratelimit::{Decision, Quota, RateLimiter};
use keel_spec::Model;
use std::net::SocketAddr;
use std::time::Duration;

/// Quotas for auth endpoints when keel.toml does not name them.
pub const AUTH_DEFAULTS: &[(&str, u32, u64)] = &[
    ("POST /v1/auth/login", 10, 60),
    ("POST /v1/auth/signup", 20, 3600),
    ("POST /v1/auth/refresh", 60, 60),
    // Each start writes a row; both ends of an OAuth login are cheap to abuse.
    ("GET /v1/auth/oauth/{provider}", 30, 60),
    ("GET /v1/auth/oauth/{provider}/callback", 30, 60),
];

/// Failed or not, this many login attempts per account per 15 minutes.
pub const LOGIN_PER_ACCOUNT: (u32, u64) = (10, 900);

/// The limits of one deployment.
#[derive(Debug, Clone, Default)]
pub struct LimitConfig {
    pub anonymous: Option<Quota>,
    pub authenticated: Option<Quota>,
    pub routes: Vec<(Method, Vec<String>, Quota)>,
}

fn quota(name: &str, requests: u32, secs: u64) -> Quota {
    Quota {
        name: name.to_string(),
        requests,
        period: Duration::from_secs(secs.max(1)),
    }
}

impl LimitConfig {
    pub fn from_model(model: &Model) -> Self {
        let mut cfg = LimitConfig::default();
        let mut keys: Vec<(String, u32, u64)> = model
            .limits
            .iter()
            .map(|l| (l.key.clone(), l.requests, l.per_secs))
            .collect();
        for (k, r, s) in AUTH_DEFAULTS {
            if !keys.iter().any(|(key, _, _)| key == k) {
                keys.push((k.to_string(), *r, *s));
            }
        }
        for (key, requests, secs) in keys {
            match key.as_str() {
                "anonymous" => cfg.anonymous = Some(quota("anonymous", requests, secs)),
                "authenticated" => cfg.authenticated = Some(quota("authenticated", requests, secs)),
                route => {
                    let Some((m, path)) = route.split_once(' ') else {
                        continue;
                    };
                    let Ok(method) = Method::from_bytes(m.as_bytes()) else {
                        continue;
                    };
                    let segments = path
                        .trim_matches('/')
                        .split('/')
                        .map(str::to_string)
                        .collect();
                    let name = route.replace([' ', '/'], "_").to_lowercase();
                    cfg.routes.push((
                        method,
                        segments,
                        quota(name.trim_matches('_'), requests, secs),
                    ));
                }
            }
        }
        cfg
    }

    fn route_quotas<'a>(
        &'a self,
        method: &Method,
        path: &str,
    ) -> impl Iterator<Item = &'a Quota> + 'a {
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(str::to_string)
            .collect();
        let method = method.clone();
        self.routes.iter().filter_map(move |(m, pattern, q)| {
            let matches = *m == method
                && pattern.len() == segs.len()
                && pattern
                    .iter()
                    .zip(&segs)
                    .all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}')));
            matches.then_some(q)
        })
    }
}

/// The client's address, for anonymous callers.
pub fn client_ip(req: &Request) -> String {
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
        "rate-limited",
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
    let principal = req.extensions().get::<Caller>().map(|c| c.0.clone());
    let who = match principal.as_ref().and_then(|p| p.id) {
        Some(id) => format!("user:{id}"),
        None => format!("ip:{}", client_ip(&req)),
    };
    let cfg = &state.limits;
    let global = match principal.as_ref().and_then(|p| p.id) {
        Some(_) => cfg.authenticated.as_ref(),
        None => cfg.anonymous.as_ref(),
    };
    let mut tightest: Option<(&Quota, Decision)> = None;
    for q in global
        .into_iter()
        .chain(cfg.route_quotas(req.method(), req.uri().path()))
    {
        let d = state.limiter.check(q, &format!("{}|{who}", q.name));
        if !d.allowed {
            return refused(q, &d);
        }
        if tightest
            .as_ref()
            .is_none_or(|(_, t)| d.remaining < t.remaining)
        {
            tightest = Some((q, d));
        }
    }
    let mut res = next.run(req).await;
    if let Some((q, d)) = tightest {
        headers(&mut res, q, &d);
    }
    res
}

/// Count a login attempt for an account; `Err` is the 429 to answer.
pub fn login_attempt(limiter: &RateLimiter, email: &str) -> Result<(), Box<Response>> {
    let q = quota(
        "login_per_account",
        LOGIN_PER_ACCOUNT.0,
        LOGIN_PER_ACCOUNT.1,
    );
    let d = limiter.check(&q, &format!("login|{}", email.trim().to_lowercase()));
    if d.allowed {
        Ok(())
    } else {
        Err(Box::new(refused(&q, &d)))
    }
}

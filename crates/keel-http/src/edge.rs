//! The edge: the one service every request passes before the routes, in one pass —
//! request id, client address, caller, rate limit, trace span, time limit, then the
//! router; on the way out security and rate-limit headers, metrics and the access
//! line. One plain service rather than a stack of `from_fn` layers, each of which
//! boxed and cloned the rest of the stack per request.

use crate::context::{self, RequestContext};
use crate::identity::{self, Caller};
use crate::limits;
use crate::middleware::{AccessLine, ClientAddr, Limits, X_REQUEST_ID, client_addr};
use crate::problem::Problem;
use crate::{AppState, extract};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

/// The whole API as one service: serve it with
/// `axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>`.
#[derive(Clone)]
pub struct Edge {
    state: AppState,
    limits: Arc<Limits>,
    router: Router,
    /// CORS is configured: preflights go straight to the router's CORS layer.
    cors: bool,
}

impl Edge {
    pub(crate) fn new(state: AppState, limits: Limits, router: Router, cors: bool) -> Self {
        Self {
            state,
            limits: Arc::new(limits),
            router,
            cors,
        }
    }

    async fn handle(self, mut req: Request<Body>) -> Response {
        let started = Instant::now();
        let limits = &self.limits;
        let request_id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(valid_request_id)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let id_value = HeaderValue::from_str(&request_id).ok();
        if let Some(v) = &id_value {
            req.headers_mut().insert(X_REQUEST_ID.clone(), v.clone());
        }
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = peer.map(|peer| client_addr(peer, req.headers(), &limits.trusted_proxies));
        if let Some(client) = client {
            req.extensions_mut().insert(ClientAddr(client));
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if path == "/readyz" {
            req.extensions_mut()
                .insert(crate::health::ReadinessDetails(limits.readiness.clone()));
        }
        req.extensions_mut()
            .insert(extract::BodyLimit(limits.max_body_bytes));
        // In-request events (audit, errors) carry the request id through this span; the
        // method and path are on the access line.
        let span = tracing::info_span!("request", request_id = %request_id, user_id = tracing::field::Empty);
        let ctx = RequestContext {
            request_id: request_id.clone(),
            path: path.clone(),
        };
        let timeout = limits.request_timeout;
        // Boxed once here, so the wrappers below move a pointer rather than copying
        // the whole state machine (kilobytes) each.
        let routed = Box::pin(self.admit_and_route(req, client));
        let inner = async {
            match tokio::time::timeout(timeout, routed).await {
                Ok(res) => res,
                Err(_) => Problem::new(
                    ErrorCode::Timeout,
                    format!("the request took longer than {} s", timeout.as_secs()),
                )
                .into_response(),
            }
        };
        let mut res = context::scope(ctx, inner).instrument(span.clone()).await;
        let headers = res.headers_mut();
        headers.reserve(6);
        if let Some(v) = id_value {
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
        if limits.hsts {
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
            limits
                .metrics
                .record_path(method.as_str(), &path, status, started.elapsed());
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

    /// Who calls (a bad token is a 401 whatever the route), whether a quota admits
    /// it (a 429 if not), then the route; rate-limit headers on the answer.
    async fn admit_and_route(
        &self,
        mut req: Request<Body>,
        client: Option<std::net::IpAddr>,
    ) -> Response {
        let preflight = self.cors
            && req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            return self.route(req).await;
        }
        let principal = match identity::caller(&self.state, req.headers()).await {
            Ok(p) => p,
            Err(res) => return res,
        };
        if let Some(id) = principal.id {
            tracing::Span::current().record("user_id", tracing::field::display(id));
        }
        let user = principal.id;
        req.extensions_mut().insert(Caller(principal));
        // Probes from load balancers and orchestrators are never limited.
        if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
            return self.route(req).await;
        }
        let ip = client.map_or_else(|| "unknown".to_string(), crate::middleware::ip_text);
        match limits::admit(&self.state, user, &ip, req.method(), req.uri().path()).await {
            Err(refused) => refused,
            Ok(tightest) => {
                let mut res = self.route(req).await;
                if let Some((q, d)) = tightest {
                    limits::headers(&mut res, &q, &d);
                }
                res
            }
        }
    }

    async fn route(&self, req: Request<Body>) -> Response {
        use tower::ServiceExt;
        match self.router.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        }
    }
}

/// A client's `X-Request-Id`, when it is one we can echo and log safely.
fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| s.to_string())
}

impl<B> tower::Service<Request<B>> for Edge
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req.map(Body::new)).await) })
    }
}

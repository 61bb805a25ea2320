//! The HTTP surface: REST per collection, OpenAPI and its docs, health. Domain errors
//! become problem+json in one place ([`problem`]).
//!
//! A request passes: the [`edge`] (request id, client address, caller, rate limit,
//! span, time limit; security headers, metrics and access log on the way out) →
//! route → handler in [`records`] → the operation core.

pub mod auth;
pub mod conditional;
pub mod context;
pub mod docs;
pub mod edge;
pub mod events;
pub mod extract;
pub mod graphql;
pub mod health;
pub mod identity;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod openapi;
pub mod problem;
pub mod realtime;
pub mod records;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use keel_core::{Engine, ErrorCode};
use std::sync::Arc;

pub use edge::Edge;
pub use middleware::{AccessLine, AccessLog, Limits};
pub use problem::{Problem, ProblemType, problem_type, problem_types};

/// What every handler can reach, behind one `Arc`: every middleware layer and
/// handler clones the state, and cloning seven `Arc`s cost seven contended atomic
/// increments (and decrements) per layer per request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub engine: Arc<Engine>,
    /// Sign-up, login and tokens; `None` serves anonymous callers only.
    pub auth: Option<Arc<keel_auth::AuthService>>,
    /// The OpenAPI document, rendered once at start.
    pub openapi: Arc<Vec<u8>>,
    pub rate_limits: Arc<keel_core::ratelimit::RateLimits>,
    pub metrics: Arc<metrics::Metrics>,
    pub metrics_sources: Vec<Arc<dyn metrics::MetricsSource>>,
    /// The realtime hub (see [`Services::realtime`]).
    pub realtime: Option<Arc<keel_realtime::Hub>>,
    /// OAuth2 / OIDC login; `None` when keel.toml configures no provider.
    pub oauth: Option<Arc<keel_auth::oauth::OAuth>>,
    /// The GraphQL surface (see [`Services::graphql`]).
    pub graphql: Option<Arc<keel_graphql::GraphQl>>,
}

/// The services the app built and hands to the HTTP surface: nothing is built
/// inside the router, so another surface (GraphQL, realtime) can share them.
#[derive(Clone)]
pub struct Services {
    pub engine: Arc<Engine>,
    /// Sign-up, login and tokens; `None` serves anonymous callers only.
    pub auth: Option<Arc<keel_auth::AuthService>>,
    /// OAuth2 / OIDC login; `None` when keel.toml configures no provider.
    pub oauth: Option<Arc<keel_auth::oauth::OAuth>>,
    /// Quotas and the store they count in (in-process or shared).
    pub rate_limits: Arc<keel_core::ratelimit::RateLimits>,
    /// Metrics of other services (the event relay), served on `/metrics` too.
    pub metrics_sources: Vec<Arc<dyn metrics::MetricsSource>>,
    /// The realtime feed's subscribers on this node; `None`: no `/v1/realtime`.
    pub realtime: Option<Arc<keel_realtime::Hub>>,
    /// The GraphQL schema generated from the model; `None`: no `/graphql`.
    pub graphql: Option<Arc<keel_graphql::GraphQl>>,
}

impl Services {
    /// The embedded defaults around an engine: in-process rate limits, no identity.
    pub fn embedded(engine: Arc<Engine>) -> Self {
        let policy = keel_core::ratelimit::LimitPolicy::from_model(engine.model());
        Self {
            engine,
            auth: None,
            oauth: None,
            rate_limits: Arc::new(keel_core::ratelimit::RateLimits::new(
                policy,
                Arc::new(keel_core::ratelimit::RateLimiter::new()),
            )),
            metrics_sources: Vec::new(),
            realtime: None,
            graphql: None,
        }
    }
}

/// The whole API as one service ([`Edge`] in front of the routes), ready to serve.
pub fn router(services: Services, limits: Limits) -> Edge {
    let Services {
        engine,
        auth,
        oauth,
        rate_limits,
        metrics_sources,
        realtime,
        graphql,
    } = services;
    let openapi = openapi::document(engine.model());
    let metrics = limits.metrics.clone();
    let cors = cors_layer(&engine.model().server.cors_origins);
    let state = AppState(Arc::new(Shared {
        rate_limits,
        oauth,
        engine,
        auth,
        openapi: Arc::new(serde_json::to_vec_pretty(&openapi).unwrap_or_default()),
        metrics,
        metrics_sources,
        realtime,
        graphql,
    }));
    let routes = Router::new()
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/v1/auth/signup", post(auth::signup))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/logout-all", post(auth::logout_all))
        .route("/v1/auth/me", get(auth::me))
        .route("/v1/auth/oauth/{provider}", get(oauth::start))
        .route("/v1/auth/oauth/{provider}/callback", get(oauth::callback))
        .route("/v1/admin/users/{id}/roles", post(auth::grant_role))
        .route(
            "/v1/admin/users/{id}/roles/{role}",
            delete(auth::revoke_role),
        )
        .route("/v1/admin/events", get(events::list))
        .route("/v1/admin/events/retry", post(events::retry))
        .route("/v1/admin/events/replay", post(events::replay))
        .route("/v1/realtime", get(realtime::feed))
        .route("/graphql", get(graphql::serve).post(graphql::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/docs", get(docs::page))
        .route("/docs/", get(docs::page))
        .route("/docs/rapidoc-min.js", get(docs::rapidoc))
        .route("/docs/errors", get(docs::errors))
        .route("/v1/{collection}", get(records::list).post(records::create))
        .route(
            "/v1/{collection}/{id}",
            get(records::get)
                .patch(records::update)
                .delete(records::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let has_cors = cors.is_some();
    let routes = match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    Edge::new(state.clone(), limits, routes.with_state(state), has_cors)
}

/// CORS for the origins of `[server] cors_origins`; none configured, none allowed.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |list: &[&'static str]| -> Vec<header::HeaderName> {
        list.iter()
            .map(|h| header::HeaderName::from_static(h))
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers(names(&[
                "authorization",
                "content-type",
                "idempotency-key",
                "if-match",
                "x-request-id",
            ]))
            .expose_headers(names(&[
                "etag",
                "location",
                "ratelimit",
                "ratelimit-policy",
                "retry-after",
                "x-request-id",
                "idempotent-replayed",
            ]))
            .max_age(std::time::Duration::from_secs(600)),
    )
}

async fn metrics_text(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let mut text = state.metrics.render();
    for source in &state.metrics_sources {
        source.render(&mut text);
    }
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

async fn openapi_json(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let mut res = state.openapi.as_ref().clone().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(
        ErrorCode::NotFound,
        format!("no route for `{}`", uri.path()),
    )
}

/// A 405 in problem+json; axum adds the `Allow` header listing the route's methods.
async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        ErrorCode::MethodNotAllowed,
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}

/// Serve HTTPS (rustls) until `shutdown` resolves, then finish in-flight requests
/// (up to 30 s) and return. The process must have installed a rustls crypto provider.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Edge,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    let std_listener = listener.into_std()?;
    std_listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(std_listener, config)
        .handle(handle)
        .serve(
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                std::net::SocketAddr,
            >(app),
        )
        .await
}

/// Serve until `shutdown` resolves, then finish in-flight requests and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Edge,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

//! [`App::build`]: the one place a Keel server is wired. It opens the store, applies
//! safe migrations, loads the secrets and field keys, builds the services (identity,
//! rate limits, OAuth) and the surfaces, and binds the listener. `keel serve` and
//! every test start the server through it, so nothing is wired twice.

use keel_core::Engine;
use keel_core::ratelimit::{LimitPolicy, LimitStore, RateLimiter, RateLimits};
use keel_spec::Model;
use keel_store::{Plan as MigrationPlan, Store, StoreError};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything a server is built from, already resolved from flags, environment and
/// keel.toml (see `config` in the binary for that order).
pub struct Settings {
    pub model: Model,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// `HOST:PORT`; port 0 picks a free one (tests).
    pub addr: String,
    /// Signs list cursors; at least 32 characters. `None`: one is generated once and
    /// kept in the database, so every node sharing it agrees.
    pub secret: Option<String>,
    /// `KEEL_FIELD_KEYS`: `kid:base64-key[,…]` for `encrypted` fields.
    pub field_keys: Option<String>,
    /// PEM certificate chain and key: serve HTTPS (and send HSTS).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Where access lines go; `None` logs them through `tracing`.
    pub access_log: Option<Arc<dyn keel_http::AccessLog>>,
    /// Where rate-limit state lives; `None` is Redis when `redis_url` is set, else
    /// the in-process store.
    pub limit_store: Option<Arc<dyn LimitStore>>,
    /// `redis://…`: rate limits and login throttles shared by every node using it.
    pub redis_url: Option<String>,
    /// What every Redis key of this deployment starts with.
    pub redis_prefix: String,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: Vec<keel_spec::Cidr>,
    /// Where records read by id are cached.
    pub cache: CacheMode,
    /// `postgres://…` read replicas of the database.
    pub replicas: Vec<String>,
    /// How far behind the primary a replica may be and still serve reads.
    pub replica_max_lag: Duration,
    /// How the event relay paces itself (retention comes from keel.toml).
    pub relay: keel_events::RelaySettings,
    /// GraphQL's abuse limits and introspection switch (`KEEL_GRAPHQL_INTROSPECTION=off`
    /// turns introspection off at build).
    pub graphql: keel_graphql::Options,
}

impl Settings {
    /// Defaults for everything but the model and the database.
    pub fn new(model: Model, database_url: impl Into<String>) -> Self {
        Self {
            model,
            database_url: database_url.into(),
            addr: "127.0.0.1:8080".into(),
            secret: None,
            field_keys: None,
            tls: None,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            access_log: None,
            limit_store: None,
            redis_url: None,
            redis_prefix: "keel:".into(),
            trusted_proxies: Vec::new(),
            cache: CacheMode::Auto,
            replicas: Vec::new(),
            replica_max_lag: keel_store::replicas::DEFAULT_MAX_LAG,
            relay: keel_events::RelaySettings::default(),
            graphql: keel_graphql::Options::default(),
        }
    }
}

/// Where records read by id are cached (see `keel serve --cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CacheMode {
    /// In Redis when Redis is set; else nowhere.
    #[default]
    Auto,
    /// In this process (about 24 MB of records), whatever the database: for a
    /// single node.
    Local,
    /// Nowhere: every read goes to the database.
    Off,
}

/// About how much memory the in-process record cache may take.
const LOCAL_CACHE_BYTES: u64 = 24 * 1024 * 1024;

/// Why a server could not be built. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot open the database {database}: {source}")]
    OpenDatabase {
        database: String,
        source: StoreError,
    },
    #[error(
        "refusing to start: destructive migration pending ({}); run `keel migrate --plan` to review, then `keel migrate --allow-destructive`",
        .0.destructive().map(|s| s.description.as_str()).collect::<Vec<_>>().join("; ")
    )]
    DestructiveMigration(MigrationPlan),
    #[error("migration failed: {0}")]
    Migration(StoreError),
    #[error("KEEL_SECRET must be at least 32 characters")]
    ShortSecret,
    #[error("cannot read the cursor key: {0}")]
    CursorKey(StoreError),
    #[error("invalid {keys}: {0}", keys = keel_core::crypto::KEYS_ENV)]
    FieldKeys(String),
    #[error(
        "keel.toml has encrypted fields: set {} to `kid:base64-32-byte-key` (e.g. `k1:$(openssl rand -base64 32)`)",
        keel_core::crypto::KEYS_ENV
    )]
    MissingFieldKeys,
    #[error("cannot load the token-signing keys: {0}")]
    SigningKeys(String),
    #[error("{0}")]
    Redis(String),
    #[error("read replicas: {0}")]
    Replicas(String),
    #[error("events: {0}")]
    Events(#[from] crate::events::EventsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A built server: bound, migrated, ready to run.
pub struct App {
    address: SocketAddr,
    engine: Arc<Engine>,
    auth: Arc<keel_auth::AuthService>,
    router: keel_http::Edge,
    listener: tokio::net::TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    /// Delivers the outbox; started by [`App::run_until`].
    relay: Arc<keel_events::Relay>,
    /// The realtime subscribers; fed by a reader [`App::run_until`] starts.
    hub: Arc<keel_realtime::Hub>,
    /// Applied migration steps, for the start-up log.
    pub migrated_steps: usize,
    /// The GraphQL surface (`None` if the model's schema could not be generated).
    graphql: Option<Arc<keel_graphql::GraphQl>>,
}

/// The GraphQL schema of the model. A model GraphQL cannot name (a clash of
/// generated type names) still serves REST: the error is logged, `/graphql` is 404.
fn graphql_surface(
    engine: &Arc<Engine>,
    rate_limits: &Arc<RateLimits>,
    hub: &Arc<keel_realtime::Hub>,
    mut options: keel_graphql::Options,
) -> Option<Arc<keel_graphql::GraphQl>> {
    if std::env::var("KEEL_GRAPHQL_INTROSPECTION")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "off" | "false" | "0"))
    {
        options.introspection = false;
    }
    match keel_graphql::GraphQl::new(
        engine.clone(),
        rate_limits.clone(),
        Some(hub.clone()),
        options,
    ) {
        Ok(g) => Some(Arc::new(g)),
        Err(e) => {
            tracing::error!(error = %e, "GraphQL is unavailable: its schema could not be generated");
            None
        }
    }
}

impl App {
    /// Wire the whole server from its settings and bind its listener.
    pub async fn build(settings: Settings) -> Result<App, BuildError> {
        let Settings {
            model,
            database_url,
            addr,
            secret,
            field_keys,
            tls,
            request_timeout,
            max_body_bytes,
            access_log,
            limit_store,
            redis_url,
            redis_prefix,
            trusted_proxies,
            cache,
            replicas,
            replica_max_lag,
            relay,
            graphql,
        } = settings;
        let store =
            Store::open(&database_url)
                .await
                .map_err(|source| BuildError::OpenDatabase {
                    database: keel_store::redact(&database_url),
                    source,
                })?;
        let migrated_steps = match store.migrate(&model, false).await {
            Ok(plan) => plan.steps.len(),
            Err(StoreError::Destructive(plan)) => {
                return Err(BuildError::DestructiveMigration(plan));
            }
            Err(e) => return Err(BuildError::Migration(e)),
        };
        let store = if replicas.is_empty() {
            store
        } else {
            let opened = keel_store::Replicas::open(&replicas, replica_max_lag)
                .and_then(|r| store.with_replicas(r));
            opened.map_err(|e| BuildError::Replicas(e.to_string()))?
        };
        let secret = cursor_secret(&store, secret).await?;
        let cipher = field_cipher(&model, field_keys.as_deref())?;
        let mut engine = Engine::new(Arc::new(model), store, secret.as_bytes());
        if let Some(cipher) = cipher {
            engine = engine.with_cipher(cipher);
        }
        let redis = match &redis_url {
            Some(url) => Some(Arc::new(
                keel_redis::RedisLink::new(url).map_err(|e| BuildError::Redis(e.to_string()))?,
            )),
            None => None,
        };
        if !replicas.is_empty() {
            // A write committed this long ago is on every replica in service.
            let window = replica_max_lag + 2 * keel_store::replicas::PROBE_EVERY;
            let recent: Arc<dyn keel_core::recent_writes::RecentWrites> = match &redis {
                Some(link) => Arc::new(keel_redis::RedisRecentWrites::new(
                    link.clone(),
                    &redis_prefix,
                    secret.as_bytes(),
                    window,
                )),
                None => {
                    tracing::warn!(
                        "read replicas without Redis: a caller reads its own writes on the node it wrote to only"
                    );
                    Arc::new(keel_core::recent_writes::LocalRecentWrites::new(window))
                }
            };
            tracing::info!(replicas = replicas.len(), "reads go to the read replicas");
            engine = engine.with_recent_writes(recent);
        }
        let local = || -> Arc<dyn keel_core::cache::RecordCache> {
            Arc::new(keel_core::cache::LocalRecordCache::new(LOCAL_CACHE_BYTES))
        };
        let record_cache = match (cache, &redis) {
            (CacheMode::Off, _) => None,
            (CacheMode::Local, _) => Some(local()),
            (CacheMode::Auto, Some(link)) => Some(Arc::new(keel_redis::RedisRecordCache::new(
                link.clone(),
                &redis_prefix,
            ))
                as Arc<dyn keel_core::cache::RecordCache>),
            // One node on SQLite reads in process already; a cache there costs more
            // memory than it saves time by default (`--cache local` opts in).
            (CacheMode::Auto, None) => None,
        };
        if let Some(c) = record_cache {
            tracing::info!(cache = c.kind(), "records read by id are cached");
            engine = engine.with_cache(c);
        }
        let engine = Arc::new(engine);
        let auth = Arc::new(
            keel_auth::AuthService::new(
                engine.clone(),
                keel_auth::PasswordPolicy::from_model(engine.model()),
            )
            .await
            .map_err(|e| BuildError::SigningKeys(e.to_string()))?,
        );
        let oauth = match keel_auth::oauth::OAuth::new(engine.model(), engine.store().clone()) {
            Ok(o) => o.map(Arc::new),
            Err(e) => {
                tracing::error!(error = %e, "OAuth login is unavailable");
                None
            }
        };
        let mut redis_state = None;
        if let (Some(link), Some(url)) = (&redis, &redis_url) {
            tracing::info!(redis = %keel_store::redact(url), "sharing state through Redis");
            redis_state = Some(Arc::new(RedisState(link.health())));
        }
        let limit_store: Arc<dyn LimitStore> = match (limit_store, &redis) {
            (Some(store), _) => store,
            (None, Some(link)) => Arc::new(
                keel_redis::RedisLimitStore::new(link.clone(), redis_prefix)
                    .with_key_secret(secret.as_bytes()),
            ),
            (None, None) => Arc::new(RateLimiter::new()),
        };
        let rate_limits = Arc::new(RateLimits::new(
            LimitPolicy::from_model(engine.model()),
            limit_store,
        ));
        let relay = crate::events::relay(&engine, relay).await?;
        let hub = Arc::new(keel_realtime::Hub::new(engine.clone()));
        let graphql = graphql_surface(&engine, &rate_limits, &hub, graphql);
        let router = keel_http::router(
            keel_http::Services {
                engine: engine.clone(),
                auth: Some(auth.clone()),
                oauth,
                rate_limits,
                metrics_sources: std::iter::once(Arc::new(crate::events::RelayMetricsSource(
                    relay.metrics.clone(),
                ))
                    as Arc<dyn keel_http::metrics::MetricsSource>)
                .chain(
                    redis_state
                        .clone()
                        .map(|r| r as Arc<dyn keel_http::metrics::MetricsSource>),
                )
                .chain(std::iter::once(Arc::new(CacheMetrics(engine.clone()))
                    as Arc<dyn keel_http::metrics::MetricsSource>))
                .chain(std::iter::once(Arc::new(ReplicaMetrics(engine.clone()))
                    as Arc<dyn keel_http::metrics::MetricsSource>))
                .collect(),
                realtime: Some(hub.clone()),
                graphql: graphql.clone(),
            },
            keel_http::Limits {
                access_log,
                request_timeout: request_timeout.max(Duration::from_secs(1)),
                max_body_bytes,
                hsts: tls.is_some(),
                trusted_proxies: Arc::from(trusted_proxies),
                readiness: redis_state
                    .map(|r| r as Arc<dyn keel_http::health::ReadinessDetail>)
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        );
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| BuildError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| BuildError::Bind {
            addr: addr.clone(),
            source,
        })?;
        Ok(App {
            address,
            engine,
            auth,
            router,
            listener,
            tls,
            relay,
            hub,
            migrated_steps,
            graphql,
        })
    }

    /// The GraphQL surface, when its schema could be generated.
    pub fn graphql(&self) -> Option<&Arc<keel_graphql::GraphQl>> {
        self.graphql.as_ref()
    }

    /// The address the listener is bound to (the real port when 0 was asked).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The operation core the app serves.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The identity service the app serves.
    pub fn auth(&self) -> &Arc<keel_auth::AuthService> {
        &self.auth
    }

    /// The whole API as a router, to drive in process without the listener (e.g.
    /// `tower::ServiceExt::oneshot`); callers have no `ConnectInfo`, so anonymous rate
    /// limits count them under one unknown address.
    pub fn router(&self) -> keel_http::Edge {
        self.router.clone()
    }

    /// The event relay (its metrics, for tests and `/metrics`).
    pub fn relay(&self) -> &Arc<keel_events::Relay> {
        &self.relay
    }

    /// Serve and relay events until `shutdown` resolves, then finish in-flight
    /// requests and deliveries and return.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let relay = crate::events::spawn_relay(self.relay.clone(), until(stopped.clone()));
        let store = self.engine.store().clone();
        let replicas = tokio::spawn({
            let stop = until(stopped.clone());
            async move { store.watch_replicas(stop).await }
        });
        // The feed ends every realtime stream at shutdown, so the server can drain.
        let feed = keel_realtime::FeedReader::new(self.engine.clone(), self.hub.clone());
        let feed = tokio::spawn(feed.run(until(stopped.clone())));
        let served = match &self.tls {
            Some((cert, key)) => {
                keel_http::serve_tls(self.listener, self.router, until(stopped), cert, key).await
            }
            None => keel_http::serve(self.listener, self.router, until(stopped)).await,
        };
        // Deliveries in flight finish (or their leases pass them to another node).
        let _ = tokio::time::timeout(Duration::from_secs(15), relay).await;
        let _ = feed.await;
        let _ = replicas.await;
        served
    }
}

/// Redis as this node sees it: in `/metrics`, and `"redis": "up" | "down"` in
/// `/readyz` (which stays ready: without Redis, limits are counted per node).
#[derive(Debug)]
struct RedisState(Arc<keel_redis::RedisHealth>);

impl keel_http::metrics::MetricsSource for RedisState {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}

impl keel_http::health::ReadinessDetail for RedisState {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn state(&self) -> &'static str {
        self.0.state()
    }
}

/// The record cache's hits and misses in `/metrics` (nothing when there is no cache).
struct CacheMetrics(Arc<Engine>);

impl keel_http::metrics::MetricsSource for CacheMetrics {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        if let Some((kind, stats)) = self.0.cache() {
            let _ = write!(
                out,
                "# HELP keel_cache_hits_total Gets by id answered from the record cache.\n\
                 # TYPE keel_cache_hits_total counter\n\
                 keel_cache_hits_total{{cache=\"{kind}\"}} {}\n\
                 # HELP keel_cache_misses_total Gets by id the record cache could not answer.\n\
                 # TYPE keel_cache_misses_total counter\n\
                 keel_cache_misses_total{{cache=\"{kind}\"}} {}\n",
                stats.hits(),
                stats.misses()
            );
        }
    }
}

/// Each read replica in or out of service, in `/metrics`.
struct ReplicaMetrics(Arc<Engine>);

impl keel_http::metrics::MetricsSource for ReplicaMetrics {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let Some(replicas) = self.0.store().replicas() else {
            return;
        };
        out.push_str(
            "# HELP keel_replica_in_service Whether a read replica serves reads (caught up, answering).\n\
             # TYPE keel_replica_in_service gauge\n",
        );
        for (i, up) in replicas.in_service().into_iter().enumerate() {
            let _ = writeln!(
                out,
                "keel_replica_in_service{{replica=\"{i}\"}} {}",
                u8::from(up)
            );
        }
    }
}

/// The cursor-signing key: the configured one, or the deployment's generated one.
async fn cursor_secret(store: &Store, configured: Option<String>) -> Result<String, BuildError> {
    match configured {
        Some(s) if s.len() >= 32 => Ok(s),
        Some(_) => Err(BuildError::ShortSecret),
        None => {
            let generated = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            store
                .meta_get_or_init("cursor_secret", &generated)
                .await
                .map_err(BuildError::CursorKey)
        }
    }
}

/// The cipher for `encrypted` fields; required when the model has any.
fn field_cipher(
    model: &Model,
    keys: Option<&str>,
) -> Result<Option<keel_core::crypto::FieldCipher>, BuildError> {
    let has_encrypted = model
        .collections
        .iter()
        .any(|c| c.fields.iter().any(|f| f.encrypted));
    match keys {
        Some(keys) => keel_core::crypto::FieldCipher::parse(keys)
            .map(Some)
            .map_err(|e| BuildError::FieldKeys(e.to_string())),
        None if has_encrypted => Err(BuildError::MissingFieldKeys),
        None => Ok(None),
    }
}

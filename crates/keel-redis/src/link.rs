//! One connection to Redis shared by everything a node keeps there (rate limits, the
//! record cache), and the node's view of whether Redis answers. While Redis is down
//! it is probed again at most every [`PROBE_EVERY`], so requests do not each wait
//! for it; redis' `ConnectionManager` re-establishes the connection by itself.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// While Redis is down, how often a request tries it again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Why a Redis service could not be built (a bad URL).
#[derive(Debug)]
pub struct RedisUrlError(String);

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisUrlError {}

/// Whether Redis answers, as this node last saw it, and how many checks were
/// counted per node instead.
#[derive(Debug)]
pub struct RedisHealth {
    up: AtomicBool,
    fallbacks: AtomicU64,
    outages: AtomicU64,
}

impl Default for RedisHealth {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            fallbacks: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        }
    }
}

impl RedisHealth {
    /// Redis answered the last check (or none has been made yet).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Checks counted by the per-node limiter because Redis was down.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// One rate-limit check counted on this node because Redis was down.
    pub(crate) fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Times Redis went from up to down.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// `"up"` or `"down"`, for readiness details.
    pub fn state(&self) -> &'static str {
        if self.is_up() { "up" } else { "down" }
    }

    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        use fmt::Write;
        let _ = write!(
            out,
            "# HELP keel_redis_up Whether Redis answered this node's last command.\n\
             # TYPE keel_redis_up gauge\n\
             keel_redis_up {}\n\
             # HELP keel_redis_fallbacks_total Rate-limit checks counted on this node because Redis was down.\n\
             # TYPE keel_redis_fallbacks_total counter\n\
             keel_redis_fallbacks_total {}\n\
             # HELP keel_redis_outages_total Times Redis became unreachable.\n\
             # TYPE keel_redis_outages_total counter\n\
             keel_redis_outages_total {}\n",
            u8::from(self.is_up()),
            self.fallbacks(),
            self.outages()
        );
    }
}

/// Check that `url` is a Redis URL, without connecting. The message names no password.
pub fn validate_url(url: &str) -> Result<(), RedisUrlError> {
    client(url).map(|_| ())
}

fn client(url: &str) -> Result<redis::Client, RedisUrlError> {
    if !(url.starts_with("redis://")
        || url.starts_with("unix://")
        || url.starts_with("redis+unix://"))
    {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        return Err(RedisUrlError(if scheme.is_empty() {
            "the Redis URL must look like redis://[:PASSWORD@]HOST[:PORT][/DB]".into()
        } else {
            format!(
                "unsupported Redis URL scheme `{scheme}`: use redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// is not built in)"
            )
        }));
    }
    redis::Client::open(url).map_err(|e| {
        // The error's text may repeat the URL, password included: keep its kind only.
        RedisUrlError(format!(
            "invalid Redis URL ({:?}): use redis://[:PASSWORD@]HOST[:PORT][/DB]",
            e.kind()
        ))
    })
}

/// The connection every Redis-backed service of a node shares, and its health.
pub struct RedisLink {
    conn: ConnectionManager,
    health: Arc<RedisHealth>,
    /// Microseconds since `epoch` before which a down Redis is not tried again.
    next_probe_us: AtomicU64,
    epoch: Instant,
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLink")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `url`. Connects lazily: a Redis that is down at start is a degraded
    /// node, not a failed start. Call it inside a Tokio runtime (the connection
    /// manager spawns a task).
    pub fn new(url: &str) -> Result<Self, RedisUrlError> {
        let client = client(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisUrlError(format!("cannot set up Redis: {:?}", e.kind())))?;
        Ok(Self {
            conn,
            health: Arc::new(RedisHealth::default()),
            next_probe_us: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// This node's view of Redis, for `/metrics` and `/readyz`.
    pub fn health(&self) -> Arc<RedisHealth> {
        self.health.clone()
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Run one command (or script) on Redis: `None` when Redis is down (not tried
    /// again before the next probe) or the command failed, which marks it down.
    pub async fn call<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.health.is_up() && self.now_us() < self.next_probe_us.load(Ordering::Relaxed) {
            return None;
        }
        match command(self.conn.clone()).await {
            Ok(v) => {
                if !self.health.up.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "Redis answers again: rate limits and the cache are shared by every node"
                    );
                }
                Some(v)
            }
            Err(e) => {
                let probe = self.now_us() + u64::try_from(PROBE_EVERY.as_micros()).unwrap_or(0);
                self.next_probe_us.store(probe, Ordering::Relaxed);
                if self.health.up.swap(false, Ordering::Relaxed) {
                    self.health.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error_kind = ?e.kind(),
                        "Redis is unreachable: rate limits are counted per node and the shared cache is bypassed until it answers again"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_named_without_their_password() {
        let e = validate_url("http://:hunter2@host").expect_err("scheme");
        assert!(e.to_string().contains("`http`"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = validate_url("localhost:6379").expect_err("no scheme");
        assert!(e.to_string().contains("redis://"), "{e}");
        let e = validate_url("redis://:hunter2@host:notaport").expect_err("port");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(validate_url("redis://127.0.0.1:6379/0").is_ok());
    }
}

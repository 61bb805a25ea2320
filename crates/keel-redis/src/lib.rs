//! Rate limits shared by every node: [`RedisLimitStore`] is a [`LimitStore`] that
//! counts each request with one atomic GCRA script in Redis. The time comes from
//! Redis (`TIME` inside the script), so the nodes' clocks do not matter; each key
//! carries a `{…}` hash tag, so a check touches one cluster slot; keys expire when
//! their allowance is whole again, so Redis does not fill up.
//!
//! When Redis is unreachable or answers with an error, the check is counted by a
//! per-node in-process limiter instead (never an error for the caller), the outage is
//! logged once, and [`RedisHealth`] says so (for `/metrics` and `/readyz`). The
//! connection is re-established by redis' `ConnectionManager`; while Redis is down it
//! is probed again at most every [`PROBE_EVERY`], so requests do not each wait for it.

use keel_core::ratelimit::{Decision, LimitStore, Quota, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// While Redis is down, how often a request tries it again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// GCRA over one key, in microseconds of Redis' clock. ARGV: emission interval,
/// period (the burst tolerance). Returns {allowed, remaining, reset_us}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > burst then
  local retry = tat - (now + burst - interval)
  if retry < 1000 then retry = 1000 end
  return {0, 0, math.floor(retry)}
end
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor(used / 1000) + 1000)
return {1, math.floor((burst - used) / interval), math.floor(used)}
";

/// Why a store could not be built.
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
            "# HELP keel_redis_up Whether Redis answered this node's last rate-limit check.\n\
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

/// Rate limits in Redis, shared by every node using the same Redis and prefix.
pub struct RedisLimitStore {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    /// Keys the MAC that stands for a client in key names (see [`Self::key`]).
    key_secret: Vec<u8>,
    fallback: RateLimiter,
    health: Arc<RedisHealth>,
    /// Microseconds since `epoch` before which a down Redis is not tried again.
    next_probe_us: AtomicU64,
    epoch: Instant,
}

impl fmt::Debug for RedisLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimitStore")
            .field("prefix", &self.prefix)
            .field("health", &self.health)
            .finish_non_exhaustive()
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

impl RedisLimitStore {
    /// A store on `url` whose keys start with `prefix` (e.g. `keel:`). Connects
    /// lazily: a Redis that is down at start is a degraded node, not a failed start.
    /// Call it inside a Tokio runtime (the connection manager spawns a task).
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, RedisUrlError> {
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
            script: redis::Script::new(GCRA),
            prefix: prefix.into(),
            key_secret: Vec::new(),
            fallback: RateLimiter::new(),
            health: Arc::new(RedisHealth::default()),
            next_probe_us: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// The secret every node shares (the cursor secret): client keys are named by
    /// their HMAC under it, so the same client is the same key on every node while
    /// Redis never holds an email or an address in plain text (nor a plain hash of
    /// one, which the small IPv4 space would give away).
    pub fn with_key_secret(mut self, secret: &[u8]) -> Self {
        self.key_secret = secret.to_vec();
        self
    }

    /// The store's view of Redis, for `/metrics` and `/readyz`.
    pub fn health(&self) -> Arc<RedisHealth> {
        self.health.clone()
    }

    /// The Redis key for one (policy, client) pair: the policy's name, escaped, and
    /// the client's HMAC-SHA-256 (128 bits, hex) as one hash tag, so no client key can
    /// end the tag early or be read back from Redis.
    pub fn key(&self, quota: &Quota, key: &str) -> String {
        use hmac::Mac;
        use std::fmt::Write;
        let mut tag = String::with_capacity(quota.name.len() + 34);
        for c in quota.name.chars() {
            match c {
                '%' => tag.push_str("%25"),
                '{' => tag.push_str("%7B"),
                '}' => tag.push_str("%7D"),
                c => tag.push(c),
            }
        }
        tag.push('|');
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key_secret)
            .expect("HMAC takes a key of any length");
        mac.update(key.as_bytes());
        for b in &mac.finalize().into_bytes()[..16] {
            let _ = write!(tag, "{b:02x}");
        }
        format!("{}rl:{{{tag}}}", self.prefix)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    async fn check_redis(&self, quota: &Quota, key: &str) -> redis::RedisResult<Decision> {
        let requests = quota.requests.max(1);
        let period_us = u64::try_from(quota.period.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let interval_us = (period_us / u64::from(requests)).max(1);
        let mut conn = self.conn.clone();
        let (allowed, remaining, reset_us): (i64, i64, i64) = self
            .script
            .key(self.key(quota, key))
            .arg(interval_us)
            .arg(period_us)
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset: Duration::from_micros(u64::try_from(reset_us.max(0)).unwrap_or(0)),
        })
    }

    fn fall_back(&self, quota: &Quota, key: &str) -> Decision {
        self.health.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.fallback.check(quota, key)
    }

    /// Count one request for `key` under `quota`: in Redis, or on this node while
    /// Redis is down.
    pub async fn check(&self, quota: &Quota, key: &str) -> Decision {
        if !self.health.is_up() && self.now_us() < self.next_probe_us.load(Ordering::Relaxed) {
            return self.fall_back(quota, key);
        }
        match self.check_redis(quota, key).await {
            Ok(d) => {
                if !self.health.up.swap(true, Ordering::Relaxed) {
                    tracing::warn!("Redis answers again: rate limits are shared by every node");
                }
                d
            }
            Err(e) => {
                let probe = self.now_us() + u64::try_from(PROBE_EVERY.as_micros()).unwrap_or(0);
                self.next_probe_us.store(probe, Ordering::Relaxed);
                if self.health.up.swap(false, Ordering::Relaxed) {
                    self.health.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error_kind = ?e.kind(),
                        "Redis is unreachable: rate limits are counted per node until it answers again"
                    );
                }
                self.fall_back(quota, key)
            }
        }
    }
}

impl LimitStore for RedisLimitStore {
    fn check<'a>(
        &'a self,
        quota: &'a Quota,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(RedisLimitStore::check(self, quota, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_carry_one_escaped_hash_tag() {
        let s = RedisLimitStore::new("redis://127.0.0.1:1", "p:").expect("store");
        let q = Quota {
            name: "anonymous".into(),
            requests: 1,
            period: Duration::from_secs(1),
        };
        let s = s.with_key_secret(b"a secret every node shares");
        let k = s.key(&q, "1.2.3.4");
        assert!(k.starts_with("p:rl:{anonymous|"), "{k}");
        assert!(k.ends_with('}') && !k.contains("1.2.3.4"), "{k}");
        assert_eq!(k.len(), "p:rl:{anonymous|}".len() + 32);
        assert_eq!(k, s.key(&q, "1.2.3.4"), "the same client, the same key");
        assert_ne!(k, s.key(&q, "1.2.3.5"));
        let other = RedisLimitStore::new("redis://127.0.0.1:1", "p:")
            .expect("store")
            .with_key_secret(b"another secret");
        assert_ne!(k, other.key(&q, "1.2.3.4"), "keyed by the secret");
        let odd = Quota {
            name: "a}b{%".into(),
            ..q
        };
        assert!(s.key(&odd, "x").starts_with("p:rl:{a%7Db%7B%25|"));
    }

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

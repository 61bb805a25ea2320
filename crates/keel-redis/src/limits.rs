//! Rate limits shared by every node: [`RedisLimitStore`] is a [`LimitStore`] that
//! counts each request with one atomic GCRA script in Redis. The time comes from
//! Redis (`TIME` inside the script), so the nodes' clocks do not matter; each key
//! carries a `{…}` hash tag, so a check touches one cluster slot; keys expire when
//! their allowance is whole again, so Redis does not fill up.
//!
//! A large allowance is not asked of Redis request by request: a node takes a few
//! tokens in advance with a check (at most 0.1 % of what the key has left, at most
//! 100, spent within a second), so Redis still counts every token it hands out —
//! the limit is never exceeded, and at worst a node's unspent credit (0.1 %) goes
//! unused. Under 1,000 left, every request is one script in Redis.
//!
//! When Redis is unreachable or answers with an error, the check is counted by a
//! per-node in-process limiter instead (never an error for the caller).

use crate::link::RedisLink;
use keel_core::ratelimit::{Decision, LimitStore, Quota, RateLimiter};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// GCRA over one key, in microseconds of Redis' clock. ARGV: emission interval,
/// period (the burst tolerance), tokens wanted (this request and a credit for the
/// node; when they do not all fit, this request alone is tried). Returns {allowed,
/// remaining, reset_us, tokens granted}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval * n
if n > 1 and new_tat - now > burst then
  n = 1
  new_tat = tat + interval
end
if new_tat - now > burst then
  local retry = tat - (now + burst - interval)
  if retry < 1000 then retry = 1000 end
  return {0, 0, math.floor(retry), 0}
end
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor(used / 1000) + 1000)
return {1, math.floor((burst - used) / interval), math.floor(used), n}
";

/// How long a node may spend tokens it took in advance; what is left then is lost.
const CREDIT_LIFE: Duration = Duration::from_secs(1);

/// The most tokens a node takes in advance for one key.
const MAX_CREDIT: u32 = 100;

/// A node takes in advance one token per this many the key has left, so a credit
/// is never more than 0.1 % of the allowance (none under 1,000 left: small limits
/// are counted in Redis request by request, exactly).
const CREDIT_DIVISOR: u32 = 1000;

/// Tokens this node took from Redis in advance for one key, and Redis' last answer.
#[derive(Debug, Clone, Copy)]
struct Credit {
    tokens: u32,
    until: Instant,
    remaining: u32,
    reset: Duration,
}

/// Rate limits in Redis, shared by every node using the same Redis and prefix.
pub struct RedisLimitStore {
    link: Arc<RedisLink>,
    script: redis::Script,
    prefix: String,
    /// Keys the MAC that stands for a client in key names (see [`Self::key`]).
    key_secret: Vec<u8>,
    fallback: RateLimiter,
    /// Tokens taken in advance, per Redis key (see [`CREDIT_DIVISOR`]).
    credits: Mutex<HashMap<String, Credit>>,
}

impl fmt::Debug for RedisLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimitStore")
            .field("prefix", &self.prefix)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl RedisLimitStore {
    /// A store over `link` whose keys start with `prefix` (e.g. `keel:`).
    pub fn new(link: Arc<RedisLink>, prefix: impl Into<String>) -> Self {
        Self {
            link,
            script: redis::Script::new(GCRA),
            prefix: prefix.into(),
            key_secret: Vec::new(),
            fallback: RateLimiter::new(),
            credits: Mutex::new(HashMap::new()),
        }
    }

    /// Redis as this store's link sees it.
    pub fn health(&self) -> Arc<crate::link::RedisHealth> {
        self.link.health()
    }

    /// The secret every node shares (the cursor secret): client keys are named by
    /// their HMAC under it, so the same client is the same key on every node while
    /// Redis never holds an email or an address in plain text (nor a plain hash of
    /// one, which the small IPv4 space would give away).
    pub fn with_key_secret(mut self, secret: &[u8]) -> Self {
        self.key_secret = secret.to_vec();
        self
    }

    /// The Redis key for one (policy, client) pair: the policy's name, escaped, and
    /// the client's HMAC-SHA-256 (128 bits, hex) as one hash tag, so no client key can
    /// end the tag early or be read back from Redis.
    pub fn key(&self, quota: &Quota, key: &str) -> String {
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
        tag.push_str(&crate::client_mac(&self.key_secret, key));
        format!("{}rl:{{{tag}}}", self.prefix)
    }

    /// Spend one token taken in advance for `key`, if one is left and fresh; else
    /// how many to take from Redis this time.
    fn spend_credit(&self, key: &str) -> Result<Decision, u32> {
        let mut credits = self.credits.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = credits.get_mut(key) else {
            return Err(1);
        };
        if c.tokens > 0 && Instant::now() < c.until {
            c.tokens -= 1;
            return Ok(Decision {
                allowed: true,
                remaining: c.remaining,
                reset: c.reset,
            });
        }
        Err(1 + (c.remaining / CREDIT_DIVISOR).min(MAX_CREDIT))
    }

    fn keep_credit(&self, key: String, credit: Credit) {
        let mut credits = self.credits.lock().unwrap_or_else(|e| e.into_inner());
        if credits.len() >= 10_000 && !credits.contains_key(&key) {
            credits.retain(|_, c| c.tokens > 0 && Instant::now() < c.until);
            if credits.len() >= 10_000 {
                credits.clear();
            }
        }
        credits.insert(key, credit);
    }

    async fn check_redis(&self, quota: &Quota, key: &str) -> Option<Decision> {
        let requests = quota.requests.max(1);
        let period_us = u64::try_from(quota.period.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let interval_us = (period_us / u64::from(requests)).max(1);
        let redis_key = self.key(quota, key);
        let wanted = match self.spend_credit(&redis_key) {
            Ok(decision) => return Some(decision),
            Err(wanted) => wanted,
        };
        let invocation = {
            let mut i = self.script.key(&redis_key);
            i.arg(interval_us).arg(period_us).arg(wanted);
            i
        };
        let (allowed, remaining, reset_us, granted): (i64, i64, i64, i64) = self
            .link
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let decision = Decision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset: Duration::from_micros(u64::try_from(reset_us.max(0)).unwrap_or(0)),
        };
        self.keep_credit(
            redis_key,
            Credit {
                tokens: u32::try_from(granted - 1).unwrap_or(0),
                until: Instant::now() + CREDIT_LIFE,
                remaining: decision.remaining,
                reset: decision.reset,
            },
        );
        Some(decision)
    }

    /// Count one request for `key` under `quota`: in Redis (or from tokens this
    /// node took in advance for a large allowance), or on this node while Redis is
    /// down.
    pub async fn check(&self, quota: &Quota, key: &str) -> Decision {
        match self.check_redis(quota, key).await {
            Some(d) => d,
            None => {
                self.link.health().count_fallback();
                self.fallback.check(quota, key)
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
        let link = Arc::new(RedisLink::new("redis://127.0.0.1:1").expect("link"));
        let s = RedisLimitStore::new(link.clone(), "p:");
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
        let other = RedisLimitStore::new(link, "p:").with_key_secret(b"another secret");
        assert_ne!(k, other.key(&q, "1.2.3.4"), "keyed by the secret");
        let odd = Quota {
            name: "a}b{%".into(),
            ..q
        };
        assert!(s.key(&odd, "x").starts_with("p:rl:{a%7Db%7B%25|"));
    }
}

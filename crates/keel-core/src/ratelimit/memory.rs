//! The in-process [`LimitStore`]: GCRA (the generic cell rate algorithm) in memory,
//! one theoretical arrival time per (policy, client) key. It allows bursts up to the
//! quota and then one request per `period / quota`, and tells how long to wait when
//! it refuses. The embedded default; nodes that share limits use Redis instead.

use super::{Decision, LimitStore, Quota};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

/// In-memory GCRA limiter.
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<String, Instant>>>,
    epoch: Instant,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            epoch: Instant::now(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Instant>> {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }

    /// Count one request for `key` under `quota`, at `now`.
    pub fn check_at(&self, quota: &Quota, key: &str, now: Instant) -> Decision {
        let requests = quota.requests.max(1);
        let interval = quota.period / requests;
        let burst = quota.period;
        let Ok(mut map) = self.shard(key).lock() else {
            return Decision {
                allowed: true,
                remaining: requests,
                reset: Duration::ZERO,
            };
        };
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        // Allowed while the new arrival time stays within one period of now.
        if new_tat.saturating_duration_since(now) > burst {
            let retry = tat.saturating_duration_since(now + burst - interval.min(burst));
            return Decision {
                allowed: false,
                remaining: 0,
                reset: retry.max(Duration::from_millis(1)),
            };
        }
        map.insert(key.to_string(), new_tat);
        if map.len() > 100_000 {
            // Forget clients whose allowance is whole again.
            map.retain(|_, t| *t > now);
        }
        let used = new_tat.saturating_duration_since(now);
        let left = burst.saturating_sub(used);
        Decision {
            allowed: true,
            remaining: (left.as_nanos() / interval.as_nanos().max(1)) as u32,
            reset: used,
        }
    }

    /// Count one request now.
    pub fn check(&self, quota: &Quota, key: &str) -> Decision {
        let _ = self.epoch;
        self.check_at(quota, key, Instant::now())
    }
}

impl LimitStore for RateLimiter {
    fn check<'a>(
        &'a self,
        quota: &'a Quota,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        let decision = RateLimiter::check(self, quota, key);
        Box::pin(std::future::ready(decision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_quota_then_refuses_until_time_passes() {
        let l = RateLimiter::new();
        let q = Quota {
            name: "t".into(),
            requests: 3,
            period: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let d: Vec<Decision> = (0..4).map(|_| l.check_at(&q, "a", t0)).collect();
        assert!(d[..3].iter().all(|d| d.allowed));
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>()[..3],
            [2, 1, 0]
        );
        assert!(!d[3].allowed);
        assert!(
            d[3].reset > Duration::from_secs(19) && d[3].reset <= Duration::from_secs(20),
            "{:?}",
            d[3].reset
        );
        // Another client is not affected.
        assert!(l.check_at(&q, "b", t0).allowed);
        // One interval later, one more request fits.
        assert!(l.check_at(&q, "a", t0 + Duration::from_secs(20)).allowed);
        assert!(!l.check_at(&q, "a", t0 + Duration::from_secs(20)).allowed);
    }
}

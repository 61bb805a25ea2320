//! Against the machine's Redis at 127.0.0.1:6379 (a unique key prefix per test), and
//! against a port nothing listens on.

use keel_core::ratelimit::Quota;
use keel_redis::{RedisLimitStore, RedisLink};
use std::time::Duration;

fn prefix(test: &str) -> String {
    format!("keel-test:{test}:{}:", uuid_ish())
}

fn uuid_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn limit_store(url: &str, prefix: impl Into<String>) -> RedisLimitStore {
    let link = RedisLink::new(url).expect("a Redis URL");
    RedisLimitStore::new(std::sync::Arc::new(link), prefix)
}

fn quota(requests: u32) -> Quota {
    Quota {
        name: "anonymous".into(),
        requests,
        period: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn two_stores_share_one_limit_with_the_same_decisions_as_in_process() {
    let p = prefix("shared");
    let a = limit_store("redis://127.0.0.1:6379", p.clone());
    let b = limit_store("redis://127.0.0.1:6379", p);
    let q = quota(3);
    let mut decisions = Vec::new();
    for i in 0..5 {
        let s = if i % 2 == 0 { &a } else { &b };
        decisions.push(s.check(&q, "1.2.3.4").await);
    }
    assert_eq!(
        decisions.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, true, true, false, false]
    );
    assert_eq!(
        decisions.iter().map(|d| d.remaining).collect::<Vec<_>>(),
        [2, 1, 0, 0, 0]
    );
    let refused = &decisions[3];
    assert!(
        refused.reset > Duration::from_secs(19) && refused.reset <= Duration::from_secs(20),
        "{:?}",
        refused.reset
    );
    assert!(
        decisions[0].reset > Duration::from_secs(19)
            && decisions[0].reset <= Duration::from_secs(20),
        "{:?}",
        decisions[0].reset
    );
    // Another client has its own bucket.
    assert!(a.check(&q, "5.6.7.8").await.allowed);
    assert!(a.health().is_up());
    assert_eq!(a.health().fallbacks(), 0);
}

#[tokio::test]
async fn keys_expire_once_the_allowance_is_whole() {
    let p = prefix("ttl");
    let s = limit_store("redis://127.0.0.1:6379", p.clone());
    let q = Quota {
        name: "short".into(),
        requests: 2,
        period: Duration::from_secs(2),
    };
    assert!(s.check(&q, "k").await.allowed);
    let out = std::process::Command::new("redis-cli")
        .args(["-p", "6379", "PTTL", &s.key(&q, "k")])
        .output()
        .expect("redis-cli");
    let ttl: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ttl");
    assert!(ttl > 0 && ttl <= 2_000, "PTTL {ttl}");
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_per_node_and_says_so() {
    // Nothing listens on port 1.
    let s = limit_store("redis://127.0.0.1:1", "keel-test:down:");
    let q = quota(2);
    let d: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(s.check(&q, "k").await.allowed);
        }
        v
    };
    assert_eq!(d, [true, true, false]);
    let h = s.health();
    assert!(!h.is_up());
    assert_eq!(h.state(), "down");
    assert_eq!(h.fallbacks(), 3);
    assert_eq!(h.outages(), 1);
    let mut text = String::new();
    h.render(&mut text);
    assert!(text.contains("keel_redis_up 0\n"), "{text}");
    assert!(text.contains("keel_redis_fallbacks_total 3\n"), "{text}");
}

#[tokio::test]
async fn a_large_allowance_is_taken_in_small_credits_and_never_overspent() {
    let p = prefix("credit");
    let a = limit_store("redis://127.0.0.1:6379", p.clone());
    let b = limit_store("redis://127.0.0.1:6379", p);
    let q = Quota {
        name: "large".into(),
        // ~12 tokens a second refill: the test's own duration barely moves it.
        requests: 10_000_000,
        period: Duration::from_secs(10 * 86_400),
    };
    for _ in 0..300 {
        assert!(a.check(&q, "client").await.allowed);
    }
    // Another node's first check takes one token and sees what Redis handed out:
    // every request of node a, plus at most one credit (≤ 100) not spent yet.
    let seen = b.check(&q, "client").await;
    let taken = 10_000_000 - 1 - seen.remaining;
    assert!(
        (295..=400).contains(&taken),
        "node a took {taken} tokens for 300 requests"
    );
}

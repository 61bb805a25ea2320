//! Read-your-writes across nodes: a caller who wrote on one node reads the primary
//! on every node for the window, through one short-lived key per writer in Redis
//! (named by the writer's HMAC). While Redis is down every node assumes the caller
//! may have written: reads go to the primary, which is always fresh.

use crate::link::RedisLink;
use keel_core::cache::CacheFuture;
use keel_core::recent_writes::{LocalRecentWrites, RecentWrites};
use std::sync::Arc;
use std::time::Duration;

/// Recent writers in Redis, with this node's own writers also kept in process.
pub struct RedisRecentWrites {
    link: Arc<RedisLink>,
    local: LocalRecentWrites,
    prefix: String,
    secret: Vec<u8>,
    window: Duration,
}

impl RedisRecentWrites {
    /// Writers are remembered for `window`, under keys starting with `prefix`.
    pub fn new(link: Arc<RedisLink>, prefix: &str, secret: &[u8], window: Duration) -> Self {
        Self {
            link,
            local: LocalRecentWrites::new(window),
            prefix: prefix.to_string(),
            secret: secret.to_vec(),
            window,
        }
    }

    fn key(&self, who: &str) -> String {
        format!(
            "{}ryw:{{{}}}",
            self.prefix,
            crate::client_mac(&self.secret, who)
        )
    }

    async fn note(&self, who: &str) {
        self.local.note(who);
        let (key, ms) = (self.key(who), self.window.as_millis().max(1));
        let _: Option<()> = self
            .link
            .call(|mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(u64::try_from(ms).unwrap_or(u64::MAX))
                    .query_async(&mut conn)
                    .await
            })
            .await;
    }

    async fn wrote(&self, who: &str) -> bool {
        if self.local.contains(who) {
            return true;
        }
        let key = self.key(who);
        let found: Option<i64> =
            self.link
                .call(|mut conn| async move {
                    redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await
                })
                .await;
        found.is_none_or(|n| n > 0)
    }
}

impl RecentWrites for RedisRecentWrites {
    fn mark<'a>(&'a self, who: &'a str) -> CacheFuture<'a, ()> {
        Box::pin(self.note(who))
    }

    fn recent<'a>(&'a self, who: &'a str) -> CacheFuture<'a, bool> {
        Box::pin(self.wrote(who))
    }
}

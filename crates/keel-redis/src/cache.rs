//! The record cache shared by every node: [`RedisRecordCache`] keeps each entry as
//! one Redis string, `v<version>:<stored record JSON>` or `d` (deleted), and replaces
//! it only through a script that keeps the newer of the two (see
//! `keel_core::cache::Cached::supersedes`), so writers and readers on any node can
//! race without putting an old version back.
//!
//! Every key carries a *generation*. A node that could not write a change through
//! (Redis was down for it) bumps the generation before it uses the cache again:
//! every entry cached before is then unreachable, since one of them may be what that
//! change replaced. While Redis is down the node serves from the database.

use crate::link::{PROBE_EVERY, RedisLink};
use keel_core::cache::{CacheFuture, CacheKey, Cached, RecordCache};
use serde_json::{Map, Value as Json};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How long an entry lives without being written again.
const ENTRY_TTL_MS: u64 = 10 * 60 * 1000;

/// KEYS[1]: the generation. ARGV[1]: the key before the generation, ARGV[2]: after.
const GET: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return redis.call('GET', ARGV[1] .. g .. ARGV[2])
";

/// KEYS[1]: the generation. ARGV: key head, key tail, version (-1: deleted), value,
/// TTL in ms. Keeps what is cached when it is a delete or a version at least as new.
const PUT: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
local k = ARGV[1] .. g .. ARGV[2]
local cur = redis.call('GET', k)
if cur then
  if cur == 'd' then return 0 end
  if ARGV[3] ~= '-1' then
    local v = tonumber(string.match(cur, '^v(%d+):'))
    if v and v >= tonumber(ARGV[3]) then return 0 end
  end
end
redis.call('SET', k, ARGV[4], 'PX', ARGV[5])
return 1
";

/// Records cached in Redis, shared by every node with the same Redis and prefix.
pub struct RedisRecordCache {
    link: Arc<RedisLink>,
    get: redis::Script,
    put: redis::Script,
    /// `<prefix>cache{…}`: every key of the cache shares one hash tag (one slot).
    tag: String,
    /// A write could not be written through: bump the generation before any use
    /// (and in the background as soon as Redis answers, for the other nodes' sake).
    missed: Arc<AtomicBool>,
}

impl fmt::Debug for RedisRecordCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRecordCache")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl RedisRecordCache {
    /// A cache over `link` whose keys start with `prefix` (e.g. `keel:`).
    pub fn new(link: Arc<RedisLink>, prefix: &str) -> Self {
        Self {
            link,
            get: redis::Script::new(GET),
            put: redis::Script::new(PUT),
            tag: format!("{prefix}cache{{{prefix}}}"),
            missed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn generation_key(&self) -> String {
        format!("{}:gen", self.tag)
    }

    /// The key around its generation: `(<tag>:, :<collection>:<schema>:<id>)`.
    fn key_parts(&self, key: &CacheKey<'_>) -> (String, String) {
        (
            format!("{}:", self.tag),
            format!(":{}:{:x}:{}", key.collection, key.schema, key.id.simple()),
        )
    }

    /// Whether the cache may be used now: if a write was missed, the generation is
    /// bumped first (and the cache stays unused until that succeeds).
    async fn usable(&self) -> bool {
        !self.missed.load(Ordering::Acquire)
            || bump_generation(&self.link, &self.missed, self.generation_key()).await
    }

    /// A write may not have reached Redis: stop using the cache, and bump the
    /// generation as soon as Redis answers (probing every [`PROBE_EVERY`]), so the
    /// other nodes stop serving what that write replaced within a probe of Redis
    /// coming back, even if this node serves no request meanwhile.
    fn missed_a_write(&self) {
        if self.missed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (link, missed, key) = (
            self.link.clone(),
            self.missed.clone(),
            self.generation_key(),
        );
        tokio::spawn(async move {
            while missed.load(Ordering::Acquire)
                && !bump_generation(&link, &missed, key.clone()).await
            {
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }

    async fn fetch(&self, key: CacheKey<'_>) -> Option<Cached> {
        if !self.usable().await {
            return None;
        }
        let (head, tail) = self.key_parts(&key);
        let mut invocation = self.get.key(self.generation_key());
        invocation.arg(head).arg(tail);
        let value: Option<Vec<u8>> = self
            .link
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        decode(&value?)
    }

    async fn store(&self, key: CacheKey<'_>, entry: Cached) {
        if !self.usable().await {
            return;
        }
        let (head, tail) = self.key_parts(&key);
        let (version, value) = match &entry {
            Cached::Deleted => (-1, b"d".to_vec()),
            Cached::Record { version, record } => {
                let mut value = format!("v{version}:").into_bytes();
                if serde_json::to_writer(&mut value, &**record).is_err() {
                    return;
                }
                (*version, value)
            }
        };
        let mut invocation = self.put.key(self.generation_key());
        invocation
            .arg(head)
            .arg(tail)
            .arg(version)
            .arg(value)
            .arg(ENTRY_TTL_MS);
        let stored: Option<i64> = self
            .link
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        if stored.is_none() {
            // Maybe applied, maybe not: assume not, so no node serves what it replaced.
            self.missed_a_write();
        }
    }
}

/// `INCR` the generation; clears `missed` when Redis took it.
async fn bump_generation(link: &RedisLink, missed: &AtomicBool, key: String) -> bool {
    let bumped: Option<i64> = link
        .call(|mut conn| async move { redis::cmd("INCR").arg(&key).query_async(&mut conn).await })
        .await;
    if bumped.is_some() && missed.swap(false, Ordering::AcqRel) {
        tracing::warn!(
            "the shared cache was emptied: this node could not write a change through while Redis was down"
        );
    }
    bumped.is_some()
}

/// An entry as stored: `d`, or `v<version>:<JSON object>`.
fn decode(value: &[u8]) -> Option<Cached> {
    if value == b"d" {
        return Some(Cached::Deleted);
    }
    let rest = value.strip_prefix(b"v")?;
    let colon = rest.iter().position(|b| *b == b':')?;
    let version = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let record: Map<String, Json> = serde_json::from_slice(&rest[colon + 1..]).ok()?;
    Some(Cached::Record {
        version,
        record: Arc::new(record),
    })
}

impl RecordCache for RedisRecordCache {
    fn get<'a>(&'a self, key: CacheKey<'a>) -> CacheFuture<'a, Option<Cached>> {
        Box::pin(self.fetch(key))
    }

    fn put<'a>(&'a self, key: CacheKey<'a>, entry: Cached) -> CacheFuture<'a, ()> {
        Box::pin(self.store(key, entry))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_or_are_misses() {
        assert!(matches!(decode(b"d"), Some(Cached::Deleted)));
        match decode(br#"v7:{"id":"x","version":7}"#) {
            Some(Cached::Record { version, record }) => {
                assert_eq!(version, 7);
                assert_eq!(record.get("id"), Some(&Json::from("x")));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(b"v7").is_none());
        assert!(decode(b"vx:{}").is_none());
        assert!(decode(b"v1:[1]").is_none());
        assert!(decode(b"").is_none());
    }
}

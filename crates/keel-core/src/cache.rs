//! The record cache: records by id, kept *before* the read rule (one entry serves
//! every caller; the rule is decided in memory for each of them on a hit) and
//! replaced by every committed write before the write answers, so a caller never
//! reads an older version than one it just wrote.
//!
//! Entries are versioned: a record read from the database is only *offered*
//! ([`RecordCache::put`] keeps it unless a newer version or a delete is already
//! known), so a slow reader cannot put back what a write replaced, nor can two
//! writers' write-throughs land out of order. A delete leaves a tombstone (ids are
//! never reused). Where the cache lives is a service the app is built with: in
//! process ([`LocalRecordCache`], one node) or in Redis (shared by every node).

use crate::principal::Principal;
use keel_expr::{Env, Value};
use keel_spec::Collection;
use serde_json::{Map, Value as Json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One record's cache entry.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The record in its stored form (encrypted fields as ciphertext), at `version`.
    Record {
        version: i64,
        record: Arc<Map<String, Json>>,
    },
    /// Deleted: answers 404 without a query, and no older read can be put back.
    Deleted,
}

impl Cached {
    /// A stored record as an entry (its `version` column, 0 if absent).
    pub fn record(record: Map<String, Json>) -> Self {
        let version = record.get("version").and_then(Json::as_i64).unwrap_or(0);
        Cached::Record {
            version,
            record: Arc::new(record),
        }
    }

    /// About how many bytes the entry takes in memory (the map's buckets and the
    /// strings they own), for the in-process cache's bound.
    pub fn weight(&self) -> u32 {
        fn json(v: &Json) -> usize {
            match v {
                Json::String(s) => 24 + s.len(),
                Json::Array(items) => 24 + items.iter().map(|i| 32 + json(i)).sum::<usize>(),
                Json::Object(m) => {
                    64 + m.iter().map(|(k, v)| 72 + k.len() + json(v)).sum::<usize>()
                }
                _ => 0,
            }
        }
        match self {
            Cached::Deleted => 96,
            Cached::Record { record, .. } => {
                let fields: usize = record.iter().map(|(k, v)| 72 + k.len() + json(v)).sum();
                u32::try_from(160 + fields).unwrap_or(u32::MAX)
            }
        }
    }

    /// Whether this entry may replace `current` (newer version, or a delete).
    pub fn supersedes(&self, current: &Cached) -> bool {
        match (self, current) {
            (_, Cached::Deleted) => false,
            (Cached::Deleted, _) => true,
            (Cached::Record { version: new, .. }, Cached::Record { version: old, .. }) => new > old,
        }
    }
}

/// Which record an entry is for. `schema` is a fingerprint of the collection's
/// columns, so a cache that outlives a migration (Redis) never serves an old shape.
#[derive(Debug, Clone, Copy)]
pub struct CacheKey<'a> {
    pub collection: &'a str,
    /// The collection's position in the model: an in-process key without a string.
    pub slot: u32,
    pub schema: u64,
    pub id: uuid::Uuid,
}

/// A future the cache returns (object-safe trait, as [`crate::ratelimit::LimitStore`]).
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where cached records live. Implementations never fail a request: a cache that
/// cannot answer is a miss, a write it cannot take is dropped (and the
/// implementation must then not serve what that write replaced).
pub trait RecordCache: Send + Sync {
    /// The entry for `key`, if any.
    fn get<'a>(&'a self, key: CacheKey<'a>) -> CacheFuture<'a, Option<Cached>>;
    /// Keep `entry` unless what is cached supersedes it (see [`Cached::supersedes`]).
    fn put<'a>(&'a self, key: CacheKey<'a>, entry: Cached) -> CacheFuture<'a, ()>;
    /// A short name for logs and metrics (`local`, `redis`).
    fn kind(&self) -> &'static str;
}

/// Hits and misses of the get-by-id path, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// Records cached in this process (moka, bounded by an estimate of the memory they
/// take, least recently used out first). Right for one node: nothing tells other
/// processes of a write.
pub struct LocalRecordCache {
    entries: moka::sync::Cache<(u32, u64, u128), Cached>,
}

impl LocalRecordCache {
    /// A cache holding records worth at most about `bytes` of memory.
    pub fn new(bytes: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, entry: &Cached| entry.weight())
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
        }
    }

    fn key(key: CacheKey<'_>) -> (u32, u64, u128) {
        (key.slot, key.schema, key.id.as_u128())
    }
}

impl RecordCache for LocalRecordCache {
    fn get<'a>(&'a self, key: CacheKey<'a>) -> CacheFuture<'a, Option<Cached>> {
        let found = self.entries.get(&Self::key(key));
        Box::pin(std::future::ready(found))
    }

    fn put<'a>(&'a self, key: CacheKey<'a>, entry: Cached) -> CacheFuture<'a, ()> {
        use moka::ops::compute::Op;
        self.entries
            .entry(Self::key(key))
            .and_compute_with(|current| match current {
                Some(current) if !entry.supersedes(current.value()) => Op::Nop,
                _ => Op::Put(entry),
            });
        Box::pin(std::future::ready(()))
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Whether a collection's records can be served from the cache: its read rule must
/// be decidable from the record alone (its own visible, unencrypted fields, the
/// caller and the clock), since a hit runs the rule in memory without a query. The
/// accounts collection (`users`) is never cached: `keel admin` changes roles from
/// another process, which no cache would hear of.
pub(crate) fn cacheable(c: &Collection) -> bool {
    let Some(rule) = &c.access.read else {
        return false;
    };
    if c.name == "users" {
        return false;
    }
    rule.typed.paths().iter().all(|path| match path.as_slice() {
        [first, ..] if first == "auth" => true,
        [field] => c
            .field(field)
            .is_some_and(|f| !f.encrypted && c.visible().any(|v| v.name == f.name)),
        _ => false,
    })
}

/// A fingerprint of a collection's visible columns (names and storage).
pub(crate) fn schema_fingerprint(c: &Collection) -> u64 {
    // FNV-1a: stable across processes and releases, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in c.visible() {
        for b in f
            .name
            .bytes()
            .chain(format!("{:?}", f.storage()).bytes())
            .chain([0])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Whether `principal` may read a cached `record` of `c` (system: always).
pub(crate) fn readable(c: &Collection, record: &Map<String, Json>, principal: &Principal) -> bool {
    if principal.system {
        return true;
    }
    match &c.access.read {
        None => false,
        Some(rule) => keel_expr::eval(
            &rule.typed,
            &CachedEnv {
                c,
                record,
                principal,
                now: time::OffsetDateTime::now_utc(),
            },
        ),
    }
}

/// What a read rule sees on a cache hit: the record's own fields and the caller.
struct CachedEnv<'a> {
    c: &'a Collection,
    record: &'a Map<String, Json>,
    principal: &'a Principal,
    now: time::OffsetDateTime,
}

impl Env for CachedEnv<'_> {
    fn lookup(&self, path: &[String]) -> Value {
        match path {
            [first, ..] if first == "auth" => self.principal.auth_value(path),
            [field] => match (self.c.field(field), self.record.get(field)) {
                (Some(f), Some(v)) => crate::values::from_json(&f.ty, v),
                _ => Value::Null,
            },
            _ => Value::Null,
        }
    }

    fn has_role(&self, role: &str) -> bool {
        self.principal.has_role(role)
    }

    fn now(&self) -> time::OffsetDateTime {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: i64) -> Cached {
        let mut m = Map::new();
        m.insert("version".into(), Json::from(version));
        Cached::record(m)
    }

    #[test]
    fn a_record_weighs_what_its_fields_hold() {
        let mut m = Map::new();
        m.insert("version".into(), Json::from(1));
        let small = Cached::record(m.clone()).weight();
        m.insert("body".into(), Json::from("x".repeat(1000)));
        let large = Cached::record(m).weight();
        assert!(large >= small + 1000, "{small} → {large}");
    }

    #[tokio::test]
    async fn the_local_cache_keeps_within_its_bytes() {
        let cache = LocalRecordCache::new(64 * 1024);
        for i in 0..1000u128 {
            let mut m = Map::new();
            m.insert("version".into(), Json::from(1));
            m.insert("body".into(), Json::from("x".repeat(500)));
            let key = CacheKey {
                collection: "posts",
                slot: 0,
                schema: 1,
                id: uuid::Uuid::from_u128(i),
            };
            cache.put(key, Cached::record(m)).await;
        }
        cache.entries.run_pending_tasks();
        assert!(
            cache.entries.weighted_size() <= 64 * 1024,
            "{}",
            cache.entries.weighted_size()
        );
        assert!(cache.entries.entry_count() < 1000);
    }

    #[test]
    fn newer_versions_and_deletes_win_and_nothing_beats_a_delete() {
        assert!(rec(2).supersedes(&rec(1)));
        assert!(!rec(1).supersedes(&rec(2)));
        assert!(!rec(2).supersedes(&rec(2)));
        assert!(Cached::Deleted.supersedes(&rec(9)));
        assert!(!rec(10).supersedes(&Cached::Deleted));
        assert!(!Cached::Deleted.supersedes(&Cached::Deleted));
    }

    #[tokio::test]
    async fn a_local_put_keeps_the_newest() {
        let cache = LocalRecordCache::new(1 << 20);
        let key = CacheKey {
            collection: "posts",
            slot: 0,
            schema: 1,
            id: uuid::Uuid::now_v7(),
        };
        assert!(cache.get(key).await.is_none());
        cache.put(key, rec(2)).await;
        cache.put(key, rec(1)).await;
        assert!(matches!(
            cache.get(key).await,
            Some(Cached::Record { version: 2, .. })
        ));
        cache.put(key, Cached::Deleted).await;
        cache.put(key, rec(3)).await;
        assert!(matches!(cache.get(key).await, Some(Cached::Deleted)));
        let other_shape = CacheKey { schema: 2, ..key };
        assert!(cache.get(other_shape).await.is_none());
    }
}

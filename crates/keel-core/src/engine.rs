//! The [`Engine`]: one model over one store, and what every operation shares (the
//! cursor key, the field cipher, statements and filters built once). The operations
//! themselves are in `ops`, one file each; REST (and later GraphQL and realtime)
//! call them and nothing else, so a rule or a validation cannot be applied on one
//! surface and forgotten on another.

use crate::cursor::CursorKey;
use crate::error::CoreError;
use crate::principal::Principal;
use crate::values;
use keel_expr::{Dialect, Value};
use keel_spec::{Collection, Field, FieldType, Model, Operation, Storage};
use keel_store::Store;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The answer to a create: the record, and whether it is a replay of an earlier
/// request with the same `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Created {
    pub record: Json,
    pub id: String,
    pub replayed: bool,
}

/// The operations over one model and one store.
pub struct Engine {
    pub(crate) model: Arc<Model>,
    pub(crate) store: Store,
    pub(crate) cursor: CursorKey,
    /// Compiled `pattern`s by (collection, field): compiled once, not per request.
    pub(crate) patterns: HashMap<(String, String), regex_lite::Regex>,
    /// Keys for `encrypted` fields; required when the model has any.
    pub(crate) cipher: Option<crate::crypto::FieldCipher>,
    /// Per collection, its visible columns as JSON object keys (see `select`): rows
    /// answered as stored are written with them straight from the driver.
    pub(crate) shapes: HashMap<String, keel_store::ObjectShape>,
    /// Get-by-id statements already built (see `statements`).
    pub(crate) by_id: crate::statements::ByIdSelects,
    /// List filters already parsed and checked.
    pub(crate) filters: crate::statements::ParsedFilters,
    /// Which destinations want which events (built once from the model).
    pub(crate) destinations: Arc<crate::write::outbox::Destinations>,
    /// Per collection, the ref fields that point at it: `(collection, field, on_delete)`.
    pub(crate) referrers: HashMap<String, Vec<(String, String, keel_spec::OnDelete)>>,
    /// Signalled after every committed write, so the relay delivers at once.
    pub(crate) committed: Arc<tokio::sync::Notify>,
    /// Set when deliveries are made pending outside a write (`retry`, `replay`), so
    /// the relay asks the store for them at its next lease.
    pub(crate) deliveries_made: Arc<std::sync::atomic::AtomicBool>,
    /// Signalled after every committed write, so the realtime feed reads at once.
    pub(crate) feed: Arc<tokio::sync::Notify>,
    /// Where records by id are cached (`None`: nowhere), see [`crate::cache`].
    pub(crate) cache: Option<Arc<dyn crate::cache::RecordCache>>,
    /// The collections served from the cache, with their positions in the model and
    /// schema fingerprints.
    pub(crate) cached_collections: HashMap<String, (u32, u64)>,
    pub(crate) cache_stats: Arc<crate::cache::CacheStats>,
    /// Who wrote recently (only with replicas): their reads go to the primary.
    pub(crate) recent_writes: Option<Arc<dyn crate::recent_writes::RecentWrites>>,
}

impl Engine {
    pub fn new(model: Arc<Model>, store: Store, cursor_secret: &[u8]) -> Self {
        let mut patterns = HashMap::new();
        for c in &model.collections {
            for f in &c.fields {
                if let FieldType::Text {
                    pattern: Some(p), ..
                } = &f.ty
                    && let Ok(re) = regex_lite::Regex::new(p)
                {
                    patterns.insert((c.name.clone(), f.name.clone()), re);
                }
            }
        }
        let mut referrers: HashMap<String, Vec<(String, String, keel_spec::OnDelete)>> =
            HashMap::new();
        for c in &model.collections {
            for f in &c.fields {
                if let FieldType::Ref { to, on_delete, .. } = &f.ty {
                    referrers.entry(to.clone()).or_default().push((
                        c.name.clone(),
                        f.name.clone(),
                        *on_delete,
                    ));
                }
            }
        }
        let shapes = model
            .collections
            .iter()
            .map(|c| {
                let columns: Vec<(String, Storage)> =
                    c.visible().map(|f| (f.name.clone(), f.storage())).collect();
                (c.name.clone(), keel_store::ObjectShape::new(&columns))
            })
            .collect();
        Self {
            destinations: Arc::new(crate::write::outbox::Destinations::new(&model)),
            shapes,
            referrers,
            model,
            store,
            cursor: CursorKey::new(cursor_secret),
            patterns,
            cipher: None,
            by_id: Default::default(),
            filters: Default::default(),
            committed: Default::default(),
            deliveries_made: Default::default(),
            feed: Default::default(),
            cache: None,
            cached_collections: HashMap::new(),
            cache_stats: Default::default(),
            recent_writes: None,
        }
    }

    /// With replicas: note writers in `recent`, and send their reads to the primary
    /// while they are there.
    pub fn with_recent_writes(
        mut self,
        recent: Arc<dyn crate::recent_writes::RecentWrites>,
    ) -> Self {
        self.recent_writes = Some(recent);
        self
    }

    /// Rows of a read a replica may answer: from a replica unless `principal` wrote
    /// within the read-your-writes window, is Keel itself, or there are no replicas.
    pub(crate) async fn read_rows(
        &self,
        principal: &Principal,
        stmt: &keel_store::Stmt,
        columns: &[Storage],
    ) -> Result<Vec<keel_store::Row>, CoreError> {
        Ok(if self.reads_replica(principal).await {
            self.store.query_replica(stmt, columns).await?
        } else {
            self.store.query(stmt, columns).await?
        })
    }

    /// [`Engine::read_rows`], each row to `sink`.
    pub(crate) async fn read_into(
        &self,
        principal: &Principal,
        stmt: &keel_store::Stmt,
        sink: &mut dyn keel_store::RowSink,
    ) -> Result<(), CoreError> {
        if self.reads_replica(principal).await {
            self.store.query_replica_into(stmt, sink).await?;
        } else {
            self.store.query_into(stmt, sink).await?;
        }
        Ok(())
    }

    /// Whether `principal`'s reads may go to a replica: not while they are in the
    /// read-your-writes window, never for Keel's own reads (identity flows reading
    /// what they just wrote), and only where there are replicas.
    async fn reads_replica(&self, principal: &Principal) -> bool {
        match (
            self.recent_writes.as_deref(),
            crate::recent_writes::writer_key(principal),
        ) {
            (Some(recent), Some(who)) => !recent.recent(&who).await,
            _ => false,
        }
    }

    /// After a committed write: `principal` reads the primary for a while.
    pub(crate) async fn note_write(&self, principal: &Principal) {
        if let (Some(recent), Some(who)) = (
            self.recent_writes.as_deref(),
            crate::recent_writes::writer_key(principal),
        ) {
            recent.mark(&who).await;
        }
    }

    /// Serve gets by id from `cache` (for the collections whose read rule it can
    /// decide in memory) and write every committed change through to it.
    pub fn with_cache(mut self, cache: Arc<dyn crate::cache::RecordCache>) -> Self {
        self.cached_collections = self
            .model
            .collections
            .iter()
            .enumerate()
            .filter(|(_, c)| crate::cache::cacheable(c))
            .map(|(slot, c)| {
                let slot = u32::try_from(slot).unwrap_or(u32::MAX);
                (c.name.clone(), (slot, crate::cache::schema_fingerprint(c)))
            })
            .collect();
        self.cache = Some(cache);
        self
    }

    /// The record cache's kind (`local`, `redis`) and its hit counts, if there is one.
    pub fn cache(&self) -> Option<(&'static str, &crate::cache::CacheStats)> {
        self.cache.as_ref().map(|c| (c.kind(), &*self.cache_stats))
    }

    /// The cache and the key of a record, when its collection is cached.
    pub(crate) fn cache_key<'a>(
        &'a self,
        collection: &'a str,
        id: uuid::Uuid,
    ) -> Option<(
        &'a dyn crate::cache::RecordCache,
        crate::cache::CacheKey<'a>,
    )> {
        let cache = self.cache.as_deref()?;
        let (slot, schema) = *self.cached_collections.get(collection)?;
        Some((
            cache,
            crate::cache::CacheKey {
                collection,
                slot,
                schema,
                id,
            },
        ))
    }

    /// Write committed changes through to the cache (before the write answers, so
    /// the writer's next read sees them): a record's new stored form, or a delete.
    pub(crate) async fn cache_written(&self, changes: Vec<crate::write::Touched>) {
        for t in changes {
            if let Some((cache, key)) = self.cache_key(&t.collection, t.id) {
                let entry = match t.record {
                    Some(record) => crate::cache::Cached::record(record),
                    None => crate::cache::Cached::Deleted,
                };
                cache.put(key, entry).await;
            }
        }
    }

    /// Which destinations want which events, for the relay that makes deliveries
    /// from events (see `keel_store::events::relay_makes_deliveries`).
    pub fn interests(&self) -> Arc<dyn keel_store::events::Interests> {
        self.destinations.clone()
    }

    /// Notified after each committed write (the outbox relay waits on it).
    pub fn committed(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// Set with [`Engine::deliveries_made`] (the relay clears it).
    pub fn deliveries_made_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.deliveries_made.clone()
    }

    /// Deliveries were made pending outside a write (an admin's retry or replay):
    /// the relay looks for them at once, not at its next poll.
    pub fn deliveries_made(&self) {
        self.deliveries_made
            .store(true, std::sync::atomic::Ordering::Release);
        self.committed.notify_one();
    }

    /// Notified after each committed write (the realtime feed waits on it).
    pub fn feed_wake(&self) -> Arc<tokio::sync::Notify> {
        self.feed.clone()
    }

    /// Wake everything that follows the outbox: a write committed.
    pub(crate) fn after_commit(&self) {
        self.committed.notify_one();
        self.feed.notify_one();
    }

    /// A record in its stored form (as events carry it) made readable: encrypted
    /// fields decrypted, as a GET answers them.
    pub fn open_record(
        &self,
        collection: &str,
        record: serde_json::Map<String, Json>,
    ) -> serde_json::Map<String, Json> {
        match self.model.collection(collection) {
            Some(c) => self.open(c, record),
            None => record,
        }
    }

    /// Use these keys for `encrypted` fields.
    pub fn with_cipher(mut self, cipher: crate::crypto::FieldCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    pub(crate) fn collection(&self, name: &str) -> Result<&Collection, CoreError> {
        self.model
            .collection(name)
            .ok_or_else(|| CoreError::UnknownCollection(name.to_string()))
    }

    pub(crate) fn denied(&self, principal: &Principal, op: Operation, c: &Collection) -> CoreError {
        CoreError::Denied {
            anonymous: principal.is_anonymous(),
            message: if principal.is_anonymous() {
                format!("sign in to {} `{}`", op.as_str(), c.name)
            } else {
                format!("you may not {} this `{}` record", op.as_str(), c.name)
            },
        }
    }
}

/// Whether the column of `field` is `NOT NULL`.
pub(crate) fn not_null(c: &Collection, field: &str) -> bool {
    c.field(field).is_some_and(Field::not_null)
}

pub(crate) fn storages(columns: &[(String, Storage)]) -> Vec<Storage> {
    columns.iter().map(|(_, s)| *s).collect()
}

pub(crate) fn id_value(id: uuid::Uuid, dialect: Dialect) -> sea_query::Value {
    values::to_sql(&Value::Uuid(id), Storage::Uuid, dialect)
}

//! Get by id: one record under the read rule, with its statement built once per
//! collection and principal.

use crate::cache::{Cached, readable};
use crate::engine::{Engine, id_value, storages};
use crate::error::CoreError;
use crate::principal::Principal;
use crate::query::Projection;
use crate::record::{RecordText, project, sealed};
use crate::sql::{RowScope, col, rule_predicate};
use keel_spec::{Collection, Operation, Storage};
use keel_store::{Objects, Stmt};
use sea_query::{Alias, ExprTrait, Query, SelectStatement};
use serde_json::Value as Json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Engine {
    /// One record, if it exists and the principal may read it (404 otherwise: a
    /// record one may not read is one that does not exist, as far as they know).
    pub async fn get(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        projection: &Projection,
    ) -> Result<Json, CoreError> {
        let (c, uuid) = self.get_target(principal, collection, id)?;
        self.get_record(principal, c, uuid, id, projection).await
    }

    /// [`Engine::get`] once its target is known.
    async fn get_record(
        &self,
        principal: &Principal,
        c: &Collection,
        uuid: uuid::Uuid,
        id: &str,
        projection: &Projection,
    ) -> Result<Json, CoreError> {
        let not_found = || not_found(c, id);
        let cached = self.cache_key(&c.name, uuid);
        let record = match cached {
            Some((cache, key)) => match cache.get(key).await {
                Some(Cached::Deleted) => {
                    self.cache_stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Err(not_found());
                }
                Some(Cached::Record { record, .. }) => {
                    self.cache_stats.hits.fetch_add(1, Ordering::Relaxed);
                    if !readable(c, &record, principal) {
                        return Err(not_found());
                    }
                    self.open(c, Arc::unwrap_or_clone(record))
                }
                None => {
                    self.cache_stats.misses.fetch_add(1, Ordering::Relaxed);
                    // The rule still filters in SQL; a row it lets through is the
                    // whole visible record, the same for every caller, so it is
                    // offered to the cache as read.
                    let stored = self.fetch_by_id(c, principal, uuid, false).await?;
                    let stored = stored.ok_or_else(not_found)?;
                    cache.put(key, Cached::record(stored.clone())).await;
                    self.open(c, stored)
                }
            },
            None => {
                let stored = self.fetch_by_id(c, principal, uuid, true).await?;
                self.open(c, stored.ok_or_else(not_found)?)
            }
        };
        let mut records = vec![record];
        self.expand(principal, c, &projection.expand, &mut records)
            .await?;
        let record = records.pop().unwrap_or_default();
        Ok(Json::Object(project(record, projection.fields.as_deref())))
    }

    /// [`Engine::get`] as the JSON text of an answer. A record as stored (every
    /// field, nothing embedded, nothing to decrypt, no cache in front) is written
    /// straight from its row as it is read.
    pub async fn get_text(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        projection: &Projection,
    ) -> Result<RecordText, CoreError> {
        let (c, uuid) = self.get_target(principal, collection, id)?;
        if projection.is_whole() && !encrypted(c) && self.cache_key(&c.name, uuid).is_none() {
            return self
                .get_as_stored(c, principal, uuid)
                .await?
                .ok_or_else(|| not_found(c, id));
        }
        RecordText::of(&self.get_record(principal, c, uuid, id, projection).await?)
    }

    /// The collection and id a get names, once the principal may read some of it.
    fn get_target(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
    ) -> Result<(&Collection, uuid::Uuid), CoreError> {
        let c = self.collection(collection)?;
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found(c, id))?;
        if c.access.read.is_none() && !principal.system {
            return Err(self.denied(principal, Operation::Read, c));
        }
        Ok((c, uuid))
    }

    /// One record under the read rule, its row written as the answer's JSON text.
    async fn get_as_stored(
        &self,
        c: &Collection,
        principal: &Principal,
        id: uuid::Uuid,
    ) -> Result<Option<RecordText>, CoreError> {
        let select = self.select_by_id(c, principal, id);
        let shape = self.shape(c)?;
        debug_assert_eq!(shape.columns(), select.columns.len());
        let mut rows = Objects::new(shape, 1);
        self.read_into(principal, &select.stmt, &mut rows).await?;
        let version = rows.version(0);
        Ok(rows.into_object(0).map(|json| RecordText { json, version }))
    }

    /// The stored form of one record under the read rule, from the database: from a
    /// replica when `replica_ok` (never for a cache fill: a lagging replica's
    /// version could outlive the write that replaced it).
    async fn fetch_by_id(
        &self,
        c: &Collection,
        principal: &Principal,
        id: uuid::Uuid,
        replica_ok: bool,
    ) -> Result<Option<serde_json::Map<String, Json>>, CoreError> {
        let select = self.select_by_id(c, principal, id);
        let columns = storages(&select.columns);
        let rows = if replica_ok {
            self.read_rows(principal, &select.stmt, &columns).await?
        } else {
            self.store.query(&select.stmt, &columns).await?
        };
        Ok(rows
            .into_iter()
            .next()
            .map(|row| sealed(&select.columns, row)))
    }

    /// `SELECT <visible columns> FROM <collection> WHERE id = ? AND <read rule>` for
    /// this principal, built once per collection and principal unless the rule reads
    /// the clock.
    pub(crate) fn select_by_id(
        &self,
        c: &Collection,
        principal: &Principal,
        id: uuid::Uuid,
    ) -> ByIdStmt {
        let dialect = self.dialect();
        let id = id_value(id, dialect);
        // Only a reusable statement is ever kept, so a kept one is looked up first
        // (whether the rule reads the clock walks its expression).
        if let Some(built) = self.by_id.get(&c.name, principal) {
            let mut stmt = built.stmt.clone();
            stmt.values[0] = id;
            return ByIdStmt {
                stmt,
                columns: built.columns.clone(),
            };
        }
        let reusable = c
            .access
            .read
            .as_ref()
            .is_none_or(|r| !r.typed.reads_clock());
        let scope = RowScope::new(&self.model, c, principal);
        let (mut q, columns) = self.select(c);
        q.and_where(col(&c.name, "id").eq(id.clone()));
        q.and_where(rule_predicate(c.access.read.as_ref(), &scope, dialect));
        let stmt = Stmt::build(&q, dialect);
        let columns: Arc<[(String, Storage)]> = columns.into();
        if reusable && stmt.values.first() == Some(&id) {
            let built = crate::statements::ByIdSelect {
                stmt: stmt.clone(),
                columns: columns.clone(),
            };
            self.by_id.insert(&c.name, principal, Arc::new(built));
        }
        ByIdStmt { stmt, columns }
    }

    /// `SELECT <visible columns> FROM <collection>`, and those columns.
    pub(crate) fn select(&self, c: &Collection) -> (SelectStatement, Vec<(String, Storage)>) {
        let columns: Vec<(String, Storage)> =
            c.visible().map(|f| (f.name.clone(), f.storage())).collect();
        let mut q = Query::select();
        for (name, _) in &columns {
            q.expr(col(&c.name, name));
        }
        q.from(Alias::new(&c.name));
        (q, columns)
    }
}

fn not_found(c: &Collection, id: &str) -> CoreError {
    CoreError::NotFound {
        collection: c.name.clone(),
        id: id.to_string(),
    }
}

/// Whether any of `c`'s fields is stored encrypted (answers then need opening).
pub(crate) fn encrypted(c: &Collection) -> bool {
    c.fields.iter().any(|f| f.encrypted)
}

/// A get-by-id statement and its columns (shared with the cache entry it came from).
pub(crate) struct ByIdStmt {
    stmt: Stmt,
    columns: Arc<[(String, Storage)]>,
}

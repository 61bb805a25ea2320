//! One [`Store`] over SQLite and PostgreSQL. Callers hand it statements built with
//! sea-query ([`Stmt`]) and the storage class of each selected column; it runs them on
//! the right driver and returns rows as JSON values. Writes go through a [`Tx`].
//!
//! - `schema`: the tables the model asks for (pure);
//! - `migrate`: live schema → plan → applied in one transaction, with history and
//!   the schema fingerprint that readiness compares;
//! - `system`: Keel's own tables (migrations, outbox, idempotency keys, meta);
//! - `sqlite` / `postgres`: the two drivers; `bind`: values in and out.

pub mod bind;
mod error;
pub mod events;
pub mod migrate;
mod pipelined;
mod postgres;
pub mod replicas;
pub mod rows;
pub mod schema;
mod sqlite;
pub mod system;

pub use error::StoreError;
pub use keel_expr::Dialect;
pub use migrate::{Plan, Readiness, SchemaFingerprint, Step};
pub use postgres::redact;
pub use sqlite::WriteStats;

use keel_spec::Storage;
use rusqlite::OptionalExtension;
use std::sync::Arc;

pub use replicas::Replicas;
pub use rows::{ObjectShape, Objects, RowSink};

/// A statement and its bound values, as sea-query builds them.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub values: Vec<sea_query::Value>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, values: Vec<sea_query::Value>) -> Self {
        Self {
            sql: sql.into(),
            values,
        }
    }

    /// Build a query with the dialect's builder.
    pub fn build<Q: sea_query::QueryStatementWriter>(q: &Q, dialect: Dialect) -> Self {
        let (sql, values) = match dialect {
            Dialect::Sqlite => q.build(sea_query::SqliteQueryBuilder),
            Dialect::Postgres => q.build(sea_query::PostgresQueryBuilder),
        };
        Self {
            sql,
            values: values.0,
        }
    }
}

/// One result row: a JSON value per selected column.
pub type Row = Vec<serde_json::Value>;

/// The database behind Keel.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Read replicas of a PostgreSQL primary (see [`replicas`]).
    replicas: Option<Arc<replicas::Replicas>>,
    /// PostgreSQL's connection settings, for a LISTEN connection of its own.
    pg_config: Option<Arc<tokio_postgres::Config>>,
    /// PostgreSQL: the connections reads outside transactions share (see
    /// [`pipelined`]).
    pipelined: Option<Arc<pipelined::PipelinedReads>>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<sqlite::SqliteDb>),
    Postgres(deadpool_postgres::Pool),
}

impl Store {
    /// Open `sqlite://FILE`, `sqlite::memory:` or `postgres://…` and create Keel's
    /// system tables if they are missing.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let mut pg_config = None;
        let mut pipelined = None;
        let backend = if let Some(rest) = url.strip_prefix("sqlite:") {
            let loc = if rest == ":memory:" || rest == "//:memory:" {
                sqlite::Location::Memory(format!("keel-{}", uuid::Uuid::now_v7().simple()))
            } else {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(StoreError::InvalidUrl(url.into()));
                }
                sqlite::Location::File(path.into())
            };
            Backend::Sqlite(Arc::new(sqlite::SqliteDb::open(&loc)?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let config = postgres::config(url)?;
            pipelined = Some(Arc::new(pipelined::PipelinedReads::new(
                postgres::with_options(config.clone()),
                postgres::PIPELINED_CONNECTIONS,
            )));
            pg_config = Some(Arc::new(config));
            Backend::Postgres(postgres::pool(url)?)
        } else {
            return Err(StoreError::InvalidUrl(redact(url)));
        };
        let store = Self {
            backend,
            pg_config,
            pipelined,
            replicas: None,
        };
        store.bootstrap().await?;
        Ok(store)
    }

    /// Wake `wake` whenever another connection sends `NOTIFY channel` (PostgreSQL;
    /// `None` on SQLite, whose writers are all in this process).
    pub fn listen(
        &self,
        channel: &str,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let config = self.pg_config.as_ref()?;
        Some(postgres::listen(
            config.as_ref().clone(),
            channel.to_string(),
            wake,
        ))
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn bootstrap(&self) -> Result<(), StoreError> {
        let ddl = system::ddl(self.dialect());
        match &self.backend {
            Backend::Sqlite(db) => {
                // One write transaction, begun IMMEDIATE so it waits (busy handler)
                // for the write lock of a store starting at the same time.
                let mut w = db.writer_alone().await?;
                let tx = w
                    .conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let deliveries: Option<String> = tx
                    .query_row(
                        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = '_keel_deliveries'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                let rebuild = deliveries.is_some_and(|sql| events::sqlite_needs_rebuild(&sql));
                if rebuild {
                    tx.execute_batch(events::SQLITE_REBUILD_BEFORE)?;
                }
                tx.execute_batch(&ddl)?;
                if rebuild {
                    tx.execute_batch(events::SQLITE_REBUILD_AFTER)?;
                }
                tx.commit()?;
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await?;
                // Two nodes starting at once must not race on CREATE TABLE.
                client
                    .batch_execute(&format!(
                        "BEGIN; SELECT pg_advisory_xact_lock({}); {ddl} COMMIT;",
                        system::ADVISORY_LOCK
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query(&Stmt::new("SELECT 1", vec![]), &[Storage::Int])
            .await
            .map(|_| ())
    }

    /// Run a read-only query outside any transaction.
    pub async fn query(&self, stmt: &Stmt, columns: &[Storage]) -> Result<Vec<Row>, StoreError> {
        let mut values = rows::Values::new(columns);
        self.query_into(stmt, &mut values).await?;
        Ok(values.rows)
    }

    /// Run a read-only query outside any transaction, its rows to `sink`.
    pub async fn query_into(&self, stmt: &Stmt, sink: &mut dyn RowSink) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(|c| sqlite::query_into(c, stmt, sink)).await,
            Backend::Postgres(pool) => {
                if let Some(shared) = &self.pipelined {
                    return shared.query_into(stmt, sink).await;
                }
                let client = pool.get().await?;
                postgres::query_into(&client, stmt, sink).await
            }
        }
    }

    /// Up to `limit` events after `after`, in stream order, with the columns of
    /// [`events::feed_after`]; none means none is committed past `after`. PostgreSQL:
    /// that statement. SQLite: the newest seq, then each seq up to it looked up by key
    /// on one reader (see [`events::feed_at`]), windows of `limit` seqs until one
    /// holds an event (rolled-back writes leave gaps) or the newest is passed.
    pub async fn read_feed(
        &self,
        after: events::Position,
        limit: i64,
    ) -> Result<Vec<Row>, StoreError> {
        let columns = events::FEED_COLUMNS;
        let db = match &self.backend {
            Backend::Postgres(_) => {
                return self
                    .query(
                        &events::feed_after(Dialect::Postgres, after, limit),
                        &columns,
                    )
                    .await;
            }
            Backend::Sqlite(db) => db,
        };
        let limit = limit.max(1);
        db.read(|c| {
            let newest = sqlite::query(c, &events::newest_event(), &[Storage::Int])?
                .first()
                .and_then(|r| r.first())
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            let mut from = after.seq;
            let mut rows = Vec::new();
            while rows.is_empty() && from < newest {
                let to = newest.min(from.saturating_add(limit));
                for seq in from + 1..=to {
                    rows.extend(sqlite::query(c, &events::feed_at(seq), &columns)?);
                }
                from = to;
            }
            Ok(rows)
        })
        .await
    }

    /// The events with `after < seq <= upto`, in seq order, with the columns of
    /// [`events::select_events`]. SQLite: each seq looked up by key, all on one reader
    /// visit (see [`events::select_events`] for why not a range); PostgreSQL: one
    /// statement.
    pub async fn read_events(
        &self,
        after: i64,
        upto: i64,
        columns: &[Storage],
    ) -> Result<Vec<Row>, StoreError> {
        let seqs: Vec<i64> = (after.saturating_add(1)..=upto).collect();
        let db = match &self.backend {
            Backend::Postgres(_) => {
                let mut rows = Vec::new();
                for stmt in events::select_events(Dialect::Postgres, &seqs) {
                    rows.extend(self.query(&stmt, columns).await?);
                }
                rows.sort_by_key(|r| r.first().and_then(serde_json::Value::as_i64));
                return Ok(rows);
            }
            Backend::Sqlite(db) => db,
        };
        db.read(|c| {
            let mut rows = Vec::new();
            for stmt in events::select_events(Dialect::Sqlite, &seqs) {
                rows.extend(sqlite::query(c, &stmt, columns)?);
            }
            Ok(rows)
        })
        .await
    }

    /// The same database through a PostgreSQL pool of its own of at most `size`
    /// connections (SQLite: the same store, whose writer queue is shared anyway), for
    /// background work that must not wait behind every request for a connection (the
    /// event relay under a burst of writes got one lease through in seconds).
    pub fn with_own_pool(&self, size: usize) -> Result<Store, StoreError> {
        let (Backend::Postgres(_), Some(config)) = (&self.backend, &self.pg_config) else {
            return Ok(self.clone());
        };
        Ok(Store {
            backend: Backend::Postgres(postgres::pool_with(config.as_ref().clone(), size)?),
            pg_config: self.pg_config.clone(),
            // Its reads take its own pool too: it must not wait behind requests.
            pipelined: None,
            replicas: self.replicas.clone(),
        })
    }

    /// Serve reads that may be a little behind (see [`Store::query_replica`]) from
    /// these replicas. PostgreSQL only.
    pub fn with_replicas(mut self, replicas: replicas::Replicas) -> Result<Self, StoreError> {
        if self.dialect() != Dialect::Postgres {
            return Err(StoreError::Other(
                "read replicas need a PostgreSQL primary".into(),
            ));
        }
        self.replicas = Some(Arc::new(replicas));
        Ok(self)
    }

    /// The replicas, if any (for metrics and routing).
    pub fn replicas(&self) -> Option<&replicas::Replicas> {
        self.replicas.as_deref()
    }

    /// A read that may be answered by a replica in service (as of `max_lag` ago at
    /// worst); the primary answers when there is none, or when the replica fails.
    pub async fn query_replica(
        &self,
        stmt: &Stmt,
        columns: &[Storage],
    ) -> Result<Vec<Row>, StoreError> {
        let mut values = rows::Values::new(columns);
        self.query_replica_into(stmt, &mut values).await?;
        Ok(values.rows)
    }

    /// [`Store::query_replica`], its rows to `sink`.
    pub async fn query_replica_into(
        &self,
        stmt: &Stmt,
        sink: &mut dyn RowSink,
    ) -> Result<(), StoreError> {
        if let Some(replicas) = &self.replicas {
            if replicas.query_into(stmt, sink).await {
                return Ok(());
            }
            sink.clear();
        }
        self.query_into(stmt, sink).await
    }

    /// Probe the replicas until `stop` resolves, taking those that fail or lag out of
    /// service and putting them back once caught up. Nothing to do without replicas.
    pub async fn watch_replicas(&self, stop: impl std::future::Future<Output = ()>) {
        if let (Some(replicas), Backend::Postgres(primary)) = (&self.replicas, &self.backend) {
            replicas.clone().watch(primary.clone(), stop).await;
        }
    }

    /// Begin a write transaction. SQLite holds the write lock throughout (`BEGIN
    /// IMMEDIATE`), so a read-then-write inside it cannot race another writer; its
    /// commit may be shared with the writers queued behind it (see `sqlite`).
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let mut conn = db.writer().await;
                let group = conn.begin()?;
                Ok(Tx {
                    inner: TxInner::Sqlite {
                        conn,
                        db: db.clone(),
                        group,
                    },
                    open: true,
                })
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await?;
                client.batch_execute("BEGIN").await?;
                Ok(Tx {
                    inner: TxInner::Postgres(Some(Box::new(client))),
                    open: true,
                })
            }
        }
    }

    /// Refresh the query planner's statistics of the outbox, which grows from empty
    /// and churns: SQLite analyzes (with bounded work) each table that grew or shrank
    /// tenfold since its last `ANALYZE`, or has an index never analyzed; PostgreSQL
    /// analyzes the outbox tables (autovacuum's thresholds lag a fast-growing queue).
    /// Statistics taken while the outbox was small make SQLite scan whole tables for
    /// a range or a lookup list, and PostgreSQL pick joins that walk the whole queue.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let mut tx = self.begin().await?;
                tx.batch("PRAGMA optimize = 0x10002;").await?;
                tx.commit().await?;
                db.reload_statistics();
                Ok(())
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await?;
                Ok(client
                    .batch_execute("ANALYZE _keel_events, _keel_deliveries")
                    .await?)
            }
        }
    }

    /// SQLite: how many write transactions shared how many commits (group commit);
    /// `None` on PostgreSQL.
    pub async fn write_stats(&self) -> Option<WriteStats> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.writer.lock().await.stats),
            Backend::Postgres(_) => None,
        }
    }

    /// SQLite: transactions waiting to begin (they will share the current group's
    /// commit); 0 on PostgreSQL.
    pub fn writers_waiting(&self) -> usize {
        match &self.backend {
            Backend::Sqlite(db) => db.waiting(),
            Backend::Postgres(_) => 0,
        }
    }

    /// A setting Keel keeps in the database (e.g. the generated cursor key).
    pub async fn meta_get_or_init(&self, key: &str, init: &str) -> Result<String, StoreError> {
        let mut tx = self.begin().await?;
        tx.execute(&system::meta_insert(self.dialect(), key, init))
            .await?;
        let rows = tx
            .query(&system::meta_select(self.dialect(), key), &[Storage::Text])
            .await?;
        tx.commit().await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| StoreError::Other(format!("meta key `{key}` missing")))
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx<'a> {
    inner: TxInner<'a>,
    open: bool,
}

enum TxInner<'a> {
    Sqlite {
        conn: tokio::sync::MutexGuard<'a, sqlite::WriterConn>,
        db: Arc<sqlite::SqliteDb>,
        group: Arc<sqlite::Group>,
    },
    Postgres(Option<Box<deadpool_postgres::Object>>),
}

impl Tx<'_> {
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite { .. } => Dialect::Sqlite,
            TxInner::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn query(
        &mut self,
        stmt: &Stmt,
        columns: &[Storage],
    ) -> Result<Vec<Row>, StoreError> {
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => sqlite::query(&conn.conn, stmt, columns),
            TxInner::Postgres(Some(client)) => postgres::query(client, stmt, columns).await,
            TxInner::Postgres(None) => Err(StoreError::Other("transaction finished".into())),
        }
    }

    pub async fn execute(&mut self, stmt: &Stmt) -> Result<u64, StoreError> {
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => sqlite::execute(&conn.conn, stmt),
            TxInner::Postgres(Some(client)) => postgres::execute(client, stmt).await,
            TxInner::Postgres(None) => Err(StoreError::Other("transaction finished".into())),
        }
    }

    /// Run several statements of fixed SQL (DDL) in this transaction.
    pub async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => Ok(conn.conn.execute_batch(sql)?),
            TxInner::Postgres(Some(client)) => Ok(client.batch_execute(sql).await?),
            TxInner::Postgres(None) => Err(StoreError::Other("transaction finished".into())),
        }
    }

    /// Run `f` with the SQLite connection (introspection needs PRAGMAs).
    pub(crate) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            TxInner::Sqlite { conn, .. } => Some(&conn.conn),
            TxInner::Postgres(_) => None,
        }
    }

    pub(crate) fn postgres(&self) -> Option<&deadpool_postgres::Object> {
        match &self.inner {
            TxInner::Postgres(Some(c)) => Some(c),
            _ => None,
        }
    }

    /// Commit. On SQLite this returns once the group holding this transaction is
    /// committed, whoever commits it.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        match std::mem::replace(&mut self.inner, TxInner::Postgres(None)) {
            TxInner::Sqlite {
                mut conn,
                db,
                group,
            } => {
                if conn.release(db.waiting())? {
                    return conn.commit_group();
                }
                drop(conn);
                db.settle(group).await
            }
            TxInner::Postgres(Some(client)) => Ok(client.batch_execute("COMMIT").await?),
            TxInner::Postgres(None) => Ok(()),
        }
    }

    pub async fn rollback(mut self) -> Result<(), StoreError> {
        self.open = false;
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => {
                conn.undo();
                Ok(())
            }
            TxInner::Postgres(Some(client)) => Ok(client.batch_execute("ROLLBACK").await?),
            TxInner::Postgres(None) => Ok(()),
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => conn.undo(),
            TxInner::Postgres(client) => {
                // The connection must not go back to the pool inside a transaction.
                if let Some(client) = client.take() {
                    if let Ok(handle) = tokio::runtime::Handle::try_current() {
                        handle.spawn(async move {
                            if client.batch_execute("ROLLBACK").await.is_err() {
                                let _ = deadpool_postgres::Object::take(*client);
                            }
                        });
                    } else {
                        let _ = deadpool_postgres::Object::take(*client);
                    }
                }
            }
        }
    }
}

//! PostgreSQL reads outside transactions on a few connections shared by every caller.
//!
//! tokio-postgres pipelines the statements of concurrent callers on one connection:
//! a read neither waits for a connection of its own nor costs a backend wake-up per
//! request. The pool's exclusive checkout did both, and lists at 64 connections ran at
//! 0.42× a hand-written client that shares its connections this way. Transactions
//! keep the pool (their statements must run on one connection, alone).

use crate::rows::RowSink;
use crate::{Stmt, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio_postgres::{Client, Statement};

/// Prepared statements kept per connection, at most.
const MAX_STATEMENTS: usize = 512;

/// A handful of shared connections, each opened on first use and again after it
/// breaks; callers take them round-robin.
pub struct PipelinedReads {
    config: tokio_postgres::Config,
    slots: Vec<Mutex<Option<Arc<Connection>>>>,
    next: AtomicUsize,
}

/// One shared connection with the statements it has prepared.
struct Connection {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

impl PipelinedReads {
    /// `size` connections (at least one) with `config`'s settings.
    pub fn new(config: tokio_postgres::Config, size: usize) -> Self {
        Self {
            config,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Run `stmt`, its rows to `sink`.
    pub async fn query_into(&self, stmt: &Stmt, sink: &mut dyn RowSink) -> Result<(), StoreError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let conn = self.connection(slot).await?;
        let result = conn.query(stmt).await;
        if result.is_err() && conn.client.is_closed() {
            // Broken: the next caller of this slot opens a new one.
            let mut current = self.slots[slot]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                *current = None;
            }
        }
        for row in &result? {
            sink.postgres(row)?;
        }
        Ok(())
    }

    /// The slot's connection, opened if it has none or its connection closed.
    async fn connection(&self, slot: usize) -> Result<Arc<Connection>, StoreError> {
        let current = self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(conn) = current
            && !conn.client.is_closed()
        {
            return Ok(conn);
        }
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres: a shared read connection closed");
            }
        });
        let conn = Arc::new(Connection {
            client,
            statements: Mutex::new(HashMap::new()),
        });
        *self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        Ok(conn)
    }
}

impl Connection {
    async fn query(&self, stmt: &Stmt) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let prepared = self.prepared(&stmt.sql).await?;
        crate::postgres::rows(&self.client, &prepared, stmt).await
    }

    /// `sql` prepared on this connection once.
    async fn prepared(&self, sql: &str) -> Result<Statement, StoreError> {
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sql)
            .cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await?;
        let mut statements = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if statements.len() >= MAX_STATEMENTS {
            // Statements built from ad hoc filters: start over rather than grow.
            statements.clear();
        }
        statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

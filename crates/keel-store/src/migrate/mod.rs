//! Migrations: the live schema is read back, compared with the schema the model asks
//! for, and the difference becomes a [`Plan`] of steps. The plan is applied in one
//! transaction and recorded in `_keel_migrations`. Destructive steps (dropping a
//! table or column, changing a column's type) are refused unless allowed.
//!
//! PostgreSQL takes an advisory lock first, so only one node migrates at a time;
//! SQLite's `BEGIN IMMEDIATE` does the same. The plan is computed again inside the
//! lock, so a node that waited finds nothing left to do.
//!
//! - `plan`: live vs desired → steps (pure);
//! - `ddl`: the SQL of each step, per dialect (pure);
//! - `live`: the schema as the database has it now;
//! - `ready`: the fingerprint each migration records, and the cheap readiness check
//!   that compares it.

mod ddl;
mod live;
mod plan;
mod ready;

pub use ddl::create_table;
pub use live::LiveTable;
use live::{live_schema, managed_tables};
pub use plan::plan;
pub use ready::{Readiness, SchemaFingerprint};

use crate::schema;
use crate::{Dialect, Stmt, Store, StoreError, Tx};
use keel_spec::Model;

/// An ordered list of schema changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// One change, with the SQL that makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub description: String,
    pub sql: Vec<String>,
    pub destructive: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
    pub fn destructive(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.destructive)
    }
    pub fn has_destructive(&self) -> bool {
        self.destructive().next().is_some()
    }
    /// The plan as a SQL script with a comment per step.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(&format!(
                "-- {}{}\n",
                s.description,
                if s.destructive { " (DESTRUCTIVE)" } else { "" }
            ));
            for sql in &s.sql {
                out.push_str(sql);
                out.push_str(";\n");
            }
        }
        out
    }
}

async fn lock(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    if tx.dialect() == Dialect::Postgres {
        tx.batch(&format!(
            "SELECT pg_advisory_xact_lock({})",
            crate::system::ADVISORY_LOCK
        ))
        .await?;
    }
    Ok(())
}

impl Store {
    /// What applying the model would change, without changing anything.
    pub async fn plan(&self, model: &Model) -> Result<Plan, StoreError> {
        let mut tx = self.begin().await?;
        let live = live_schema(&mut tx).await?;
        let managed = managed_tables(&mut tx).await?;
        tx.rollback().await?;
        Ok(plan(
            &schema::tables(model),
            &live,
            &managed,
            self.dialect(),
        ))
    }

    /// Apply the plan in one transaction. Refuses destructive steps unless allowed,
    /// returning the plan in the error so the caller can show it.
    pub async fn migrate(
        &self,
        model: &Model,
        allow_destructive: bool,
    ) -> Result<Plan, StoreError> {
        let dialect = self.dialect();
        if dialect == Dialect::Sqlite {
            // Table rebuilds need foreign keys off; they are checked before commit.
            self.sqlite_pragma("PRAGMA foreign_keys = OFF").await?;
        }
        let result = self.migrate_locked(model, allow_destructive).await;
        if dialect == Dialect::Sqlite {
            self.sqlite_pragma("PRAGMA foreign_keys = ON").await?;
        }
        result
    }

    async fn sqlite_pragma(&self, sql: &str) -> Result<(), StoreError> {
        if let crate::Backend::Sqlite(db) = &self.backend {
            db.writer_alone().await?.conn.execute_batch(sql)?;
        }
        Ok(())
    }

    async fn migrate_locked(
        &self,
        model: &Model,
        allow_destructive: bool,
    ) -> Result<Plan, StoreError> {
        let desired = schema::tables(model);
        let mut tx = self.begin().await?;
        lock(&mut tx).await?;
        let live = live_schema(&mut tx).await?;
        let managed = managed_tables(&mut tx).await?;
        let plan = plan(&desired, &live, &managed, self.dialect());
        let fingerprint = SchemaFingerprint::of_tables(&desired);
        if plan.is_empty() {
            // Nothing to change; the fingerprint may still be missing (a database
            // migrated before they were recorded) or another model's with the same
            // tables.
            if ready::recorded(&mut tx).await?.as_deref() == Some(fingerprint.as_str()) {
                tx.rollback().await?;
            } else {
                ready::record(&mut tx, &fingerprint).await?;
                tx.commit().await?;
            }
            return Ok(plan);
        }
        if plan.has_destructive() && !allow_destructive {
            tx.rollback().await?;
            return Err(StoreError::Destructive(plan));
        }
        for step in &plan.steps {
            for sql in &step.sql {
                tx.batch(sql).await.map_err(|e| {
                    StoreError::Other(format!("migration step `{}` failed: {e}", step.description))
                })?;
            }
        }
        if let Some(conn) = tx.sqlite() {
            let violations: i64 = conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .map_err(StoreError::from)?;
            if violations > 0 {
                return Err(StoreError::Other(format!(
                    "the migration would leave {violations} rows pointing at missing records"
                )));
            }
        }
        let tables: Vec<&str> = desired.iter().map(|t| t.name.as_str()).collect();
        let tables_json = serde_json::to_string(&tables).unwrap_or_else(|_| "[]".into());
        let now: sea_query::Value = match self.dialect() {
            Dialect::Sqlite => keel_expr::format_datetime(time::OffsetDateTime::now_utc()).into(),
            Dialect::Postgres => {
                sea_query::Value::TimeDateTimeWithTimeZone(Some(time::OffsetDateTime::now_utc()))
            }
        };
        let (p1, p2, p3) = match self.dialect() {
            Dialect::Sqlite => ("?", "?", "?"),
            Dialect::Postgres => ("$1", "$2", "$3"),
        };
        tx.execute(&Stmt::new(
            format!("INSERT INTO _keel_migrations (applied_at, tables, statements) VALUES ({p1}, {p2}, {p3})"),
            vec![now, tables_json.into(), plan.script().into()],
        ))
        .await?;
        ready::record(&mut tx, &fingerprint).await?;
        tx.commit().await?;
        Ok(plan)
    }
}

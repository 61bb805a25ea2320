//! Migrations: the live schema is read back, compared with the schema the model asks
//! for, and the difference becomes a [`Plan`] of steps. The plan is applied in one
//! transaction and recorded in `_keel_migrations`. Destructive steps (dropping a
//! table or column, changing a column's type) are refused unless allowed.
//!
//! PostgreSQL takes an advisory lock first, so only one node migrates at a time;
//! SQLite's `BEGIN IMMEDIATE` does the same. The plan is computed again inside the
//! lock, so a node that waited finds nothing left to do.

use crate::schema::{self, ColumnDef, ForeignKeyDef, IndexDef, TableDef, column_type};
use crate::{Dialect, Stmt, Store, StoreError, Tx};
use keel_spec::{Model, OnDelete, Storage};
use sea_query::{
    Alias, ColumnDef as SqColumn, ForeignKey, ForeignKeyAction, Index, IndexOrder, Table,
};
use std::collections::BTreeSet;

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

/// A table as it is in the database now.
#[derive(Debug, Clone, Default)]
pub struct LiveTable {
    pub name: String,
    /// (name, declared type, not null)
    pub columns: Vec<(String, String, bool)>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Names of Keel-made indexes (`ix_…`, `uq_…`).
    pub indexes: Vec<String>,
}

/// Compare and plan. Pure, so it is tested without a database.
pub fn plan(
    desired: &[TableDef],
    live: &[LiveTable],
    managed: &BTreeSet<String>,
    dialect: Dialect,
) -> Plan {
    let mut steps = Vec::new();
    let mut late_fks = Vec::new();
    for want in desired {
        let Some(have) = live.iter().find(|t| t.name == want.name) else {
            steps.push(Step {
                description: format!("create table {}", want.name),
                sql: create_table(want, dialect),
                destructive: false,
            });
            if dialect == Dialect::Postgres {
                for fk in &want.foreign_keys {
                    late_fks.push(add_fk(&want.name, fk));
                }
            }
            continue;
        };
        table_changes(want, have, dialect, &mut steps);
    }
    if !late_fks.is_empty() {
        steps.push(Step {
            description: "add foreign keys".into(),
            sql: late_fks,
            destructive: false,
        });
    }
    for have in live {
        if managed.contains(&have.name) && !desired.iter().any(|t| t.name == have.name) {
            steps.push(Step {
                description: format!("drop table {} and all its rows", have.name),
                sql: vec![render(Table::drop().table(Alias::new(&have.name)), dialect)],
                destructive: true,
            });
        }
    }
    Plan { steps }
}

fn table_changes(want: &TableDef, have: &LiveTable, dialect: Dialect, steps: &mut Vec<Step>) {
    let live_col = |n: &str| have.columns.iter().find(|c| c.0 == n);
    let mut rebuild_reasons = Vec::new();
    let mut destructive = false;
    let mut alters = Vec::new();
    let mut alter_destructive = false;
    let mut added = Vec::new();

    for col in &want.columns {
        match live_col(&col.name) {
            None => added.push(col),
            Some((_, ty, not_null)) => {
                let same_type = schema::storage_of(ty, dialect) == Some(col.storage);
                if !same_type {
                    destructive = true;
                    alter_destructive = true;
                    rebuild_reasons.push(format!(
                        "change {} from {ty} to {}",
                        col.name,
                        column_type(col.storage, dialect)
                    ));
                    alters.push(format!(
                        "ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}",
                        q(&want.name),
                        q(&col.name),
                        column_type(col.storage, dialect),
                        q(&col.name),
                        column_type(col.storage, dialect)
                    ));
                }
                if *not_null != col.not_null {
                    rebuild_reasons.push(format!(
                        "{} {} NOT NULL",
                        if col.not_null { "set" } else { "drop" },
                        col.name
                    ));
                    alters.push(format!(
                        "ALTER TABLE {} ALTER COLUMN {} {} NOT NULL",
                        q(&want.name),
                        q(&col.name),
                        if col.not_null { "SET" } else { "DROP" }
                    ));
                }
            }
        }
    }
    let dropped: Vec<&str> = have
        .columns
        .iter()
        .filter(|c| !want.columns.iter().any(|w| w.name == c.0))
        .map(|c| c.0.as_str())
        .collect();
    let fk_changed: Vec<&ForeignKeyDef> = want
        .foreign_keys
        .iter()
        .filter(|fk| !have.foreign_keys.contains(fk) && !added.iter().any(|c| c.name == fk.column))
        .collect();
    let fk_removed: Vec<&ForeignKeyDef> = have
        .foreign_keys
        .iter()
        .filter(|fk| {
            !want
                .foreign_keys
                .iter()
                .any(|w| w.column == fk.column && w == *fk)
        })
        .collect();

    match dialect {
        Dialect::Sqlite => {
            // SQLite cannot alter a column or its constraints in place: the documented
            // way is to build the new table, copy the rows and swap.
            if !dropped.is_empty() {
                destructive = true;
                rebuild_reasons.push(format!("drop column(s) {}", dropped.join(", ")));
            }
            if !fk_changed.is_empty() || !fk_removed.is_empty() {
                rebuild_reasons.push("change foreign keys".into());
            }
            // Adding a NOT NULL column also needs a rebuild (no default to fill rows with).
            let simple_adds: Vec<&&ColumnDef> = added.iter().filter(|c| !c.not_null).collect();
            let hard_adds: Vec<&&ColumnDef> = added.iter().filter(|c| c.not_null).collect();
            if !hard_adds.is_empty() {
                rebuild_reasons.push(format!(
                    "add required column(s) {}",
                    hard_adds
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !rebuild_reasons.is_empty() {
                steps.push(Step {
                    description: format!(
                        "rebuild table {}: {}",
                        want.name,
                        rebuild_reasons.join("; ")
                    ),
                    sql: sqlite_rebuild(want, have),
                    destructive,
                });
                return;
            }
            for col in simple_adds {
                steps.push(Step {
                    description: format!("add column {}.{}", want.name, col.name),
                    sql: vec![add_column(&want.name, col, dialect)],
                    destructive: false,
                });
            }
        }
        Dialect::Postgres => {
            for col in &added {
                let mut sql = vec![add_column(&want.name, col, dialect)];
                if let Some(fk) = want.foreign_keys.iter().find(|fk| fk.column == col.name) {
                    sql.push(add_fk(&want.name, fk));
                }
                steps.push(Step {
                    description: format!("add column {}.{}", want.name, col.name),
                    sql,
                    destructive: false,
                });
            }
            for name in &dropped {
                steps.push(Step {
                    description: format!("drop column {}.{} and its data", want.name, name),
                    sql: vec![format!(
                        "ALTER TABLE {} DROP COLUMN {}",
                        q(&want.name),
                        q(name)
                    )],
                    destructive: true,
                });
            }
            if !alters.is_empty() {
                steps.push(Step {
                    description: format!(
                        "alter table {}: {}",
                        want.name,
                        rebuild_reasons.join("; ")
                    ),
                    sql: alters,
                    destructive: alter_destructive,
                });
            }
            for fk in fk_removed {
                if dropped.contains(&fk.column.as_str()) {
                    continue;
                }
                steps.push(Step {
                    description: format!("drop foreign key {}.{}", want.name, fk.column),
                    sql: vec![format!(
                        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                        q(&want.name),
                        q(&fk_name(&want.name, &fk.column))
                    )],
                    destructive: false,
                });
            }
            for fk in fk_changed {
                steps.push(Step {
                    description: format!(
                        "add foreign key {}.{} → {}",
                        want.name, fk.column, fk.table
                    ),
                    sql: vec![add_fk(&want.name, fk)],
                    destructive: false,
                });
            }
        }
    }
    // Indexes are compared by name; the name encodes the columns and order.
    for ix in &want.indexes {
        if !have.indexes.contains(&ix.name) {
            steps.push(Step {
                description: format!(
                    "create {}index {}",
                    if ix.unique { "unique " } else { "" },
                    ix.name
                ),
                sql: vec![create_index(&want.name, ix, dialect)],
                destructive: false,
            });
        }
    }
    for name in &have.indexes {
        if !want.indexes.iter().any(|i| &i.name == name) {
            steps.push(Step {
                description: format!("drop index {name}"),
                sql: vec![format!("DROP INDEX IF EXISTS {}", q(name))],
                destructive: false,
            });
        }
    }
}

/// Render a schema statement in the dialect.
fn render<S: sea_query::SchemaStatementBuilder>(stmt: &S, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => stmt.build(sea_query::SqliteQueryBuilder),
        Dialect::Postgres => stmt.build(sea_query::PostgresQueryBuilder),
    }
}

/// A quoted identifier (names are validated to `[a-z][a-z0-9_]*`, quoting is belt and braces).
fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn fk_name(table: &str, column: &str) -> String {
    schema::index_name("fk", table, &[column])
}

fn column(col: &ColumnDef, dialect: Dialect) -> SqColumn {
    let mut c = SqColumn::new(Alias::new(&col.name));
    c.custom(Alias::new(column_type(col.storage, dialect)));
    if col.not_null {
        c.not_null();
    }
    if col.primary_key {
        c.primary_key();
    }
    if dialect == Dialect::Postgres && col.storage == Storage::Text {
        // Byte order, as SQLite compares: sorting and cursors agree on both databases.
        c.extra("COLLATE \"C\"");
    }
    c
}

fn action(on_delete: OnDelete) -> ForeignKeyAction {
    match on_delete {
        OnDelete::Cascade => ForeignKeyAction::Cascade,
        OnDelete::Restrict => ForeignKeyAction::Restrict,
        OnDelete::SetNull => ForeignKeyAction::SetNull,
    }
}

/// `CREATE TABLE` and its indexes. SQLite gets its foreign keys inline (it cannot add
/// them later); PostgreSQL gets them after every table exists.
pub fn create_table(t: &TableDef, dialect: Dialect) -> Vec<String> {
    create_table_named(t, &t.name, dialect)
        .into_iter()
        .chain(
            t.indexes
                .iter()
                .map(|ix| create_index(&t.name, ix, dialect)),
        )
        .collect()
}

fn create_table_named(t: &TableDef, name: &str, dialect: Dialect) -> Vec<String> {
    let mut stmt = Table::create();
    stmt.table(Alias::new(name));
    for col in &t.columns {
        stmt.col(column(col, dialect));
    }
    if dialect == Dialect::Sqlite {
        for fk in &t.foreign_keys {
            stmt.foreign_key(
                ForeignKey::create()
                    .from(Alias::new(name), Alias::new(&fk.column))
                    .to(Alias::new(&fk.table), Alias::new("id"))
                    .on_delete(action(fk.on_delete)),
            );
        }
    }
    vec![render(&stmt, dialect)]
}

fn add_fk(table: &str, fk: &ForeignKeyDef) -> String {
    ForeignKey::create()
        .name(fk_name(table, &fk.column))
        .from(Alias::new(table), Alias::new(&fk.column))
        .to(Alias::new(&fk.table), Alias::new("id"))
        .on_delete(action(fk.on_delete))
        .to_string(sea_query::PostgresQueryBuilder)
}

fn add_column(table: &str, col: &ColumnDef, dialect: Dialect) -> String {
    let mut c = column(col, dialect);
    if col.not_null && dialect == Dialect::Postgres {
        // Existing rows need a value; the column is created nullable and tightened
        // only when the table is empty.
        c = column(
            &ColumnDef {
                not_null: false,
                ..col.clone()
            },
            dialect,
        );
    }
    render(
        Table::alter().table(Alias::new(table)).add_column(c),
        dialect,
    )
}

fn create_index(table: &str, ix: &IndexDef, dialect: Dialect) -> String {
    let mut stmt = Index::create();
    stmt.name(&ix.name).table(Alias::new(table));
    for (col, desc) in &ix.columns {
        stmt.col((
            Alias::new(col),
            if *desc {
                IndexOrder::Desc
            } else {
                IndexOrder::Asc
            },
        ));
    }
    if ix.unique {
        stmt.unique();
    }
    render(&stmt, dialect)
}

fn sqlite_rebuild(want: &TableDef, have: &LiveTable) -> Vec<String> {
    let tmp = format!("_keel_new_{}", want.name);
    let mut sql = create_table_named(want, &tmp, Dialect::Sqlite);
    let common: Vec<String> = want
        .columns
        .iter()
        .filter(|c| have.columns.iter().any(|h| h.0 == c.name))
        .map(|c| q(&c.name))
        .collect();
    sql.push(format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
        q(&tmp),
        q(&want.name),
        cols = common.join(", ")
    ));
    sql.push(format!("DROP TABLE {}", q(&want.name)));
    sql.push(format!(
        "ALTER TABLE {} RENAME TO {}",
        q(&tmp),
        q(&want.name)
    ));
    for ix in &want.indexes {
        sql.push(create_index(&want.name, ix, Dialect::Sqlite));
    }
    sql
}

// ---- reading the live schema ----

async fn live_schema(tx: &mut Tx<'_>) -> Result<Vec<LiveTable>, StoreError> {
    if let Some(conn) = tx.sqlite() {
        return sqlite_live(conn);
    }
    let Some(client) = tx.postgres() else {
        return Err(StoreError::Other("transaction finished".into()));
    };
    let mut tables: Vec<LiveTable> = Vec::new();
    for row in client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_keel%'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await?
    {
        let table: String = row.get(0);
        let entry = match tables.iter_mut().position(|t| t.name == table) {
            Some(i) => &mut tables[i],
            None => {
                tables.push(LiveTable {
                    name: table,
                    ..Default::default()
                });
                let last = tables.len() - 1;
                &mut tables[last]
            }
        };
        let nullable: String = row.get(3);
        entry
            .columns
            .push((row.get(1), row.get(2), nullable == "NO"));
    }
    for row in client
        .query(
            "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text, c.confdeltype::text
             FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
            &[],
        )
        .await?
    {
        let table: String = row.get(0);
        let kind: String = row.get(3);
        if let Some(t) = tables.iter_mut().find(|t| t.name == table.trim_matches('"')) {
            t.foreign_keys.push(ForeignKeyDef {
                column: row.get(1),
                table: row.get::<_, String>(2).trim_matches('"').to_string(),
                on_delete: match kind.as_str() {
                    "c" => OnDelete::Cascade,
                    "n" => OnDelete::SetNull,
                    _ => OnDelete::Restrict,
                },
            });
        }
    }
    for row in client
        .query(
            "SELECT tablename::text, indexname::text FROM pg_indexes
             WHERE schemaname = current_schema() AND (indexname LIKE 'ix\\_%' OR indexname LIKE 'uq\\_%')",
            &[],
        )
        .await?
    {
        let table: String = row.get(0);
        if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
            t.indexes.push(row.get(1));
        }
    }
    Ok(tables)
}

fn sqlite_live(conn: &rusqlite::Connection) -> Result<Vec<LiveTable>, StoreError> {
    let mut names = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_keel%' ESCAPE '\\' ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for r in rows {
            names.push(r?);
        }
    }
    let mut tables = Vec::new();
    for name in names {
        let mut t = LiveTable {
            name: name.clone(),
            ..Default::default()
        };
        let mut stmt =
            conn.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")?;
        let rows = stmt.query_map([&name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? != 0 || r.get::<_, i64>(3)? != 0,
            ))
        })?;
        for r in rows {
            t.columns.push(r?);
        }
        let mut stmt =
            conn.prepare("SELECT \"from\", \"table\", on_delete FROM pragma_foreign_key_list(?1)")?;
        let rows = stmt.query_map([&name], |r| {
            Ok(ForeignKeyDef {
                column: r.get(0)?,
                table: r.get(1)?,
                on_delete: match r.get::<_, String>(2)?.as_str() {
                    "CASCADE" => OnDelete::Cascade,
                    "SET NULL" => OnDelete::SetNull,
                    _ => OnDelete::Restrict,
                },
            })
        })?;
        for r in rows {
            t.foreign_keys.push(r?);
        }
        let mut stmt = conn.prepare("SELECT name FROM pragma_index_list(?1) WHERE origin = 'c'")?;
        let rows = stmt.query_map([&name], |r| r.get::<_, String>(0))?;
        for r in rows {
            let n = r?;
            if n.starts_with("ix_") || n.starts_with("uq_") {
                t.indexes.push(n);
            }
        }
        tables.push(t);
    }
    Ok(tables)
}

async fn managed_tables(tx: &mut Tx<'_>) -> Result<BTreeSet<String>, StoreError> {
    let rows = tx
        .query(
            &Stmt::new(
                "SELECT tables FROM _keel_migrations ORDER BY id DESC LIMIT 1",
                vec![],
            ),
            &[Storage::Text],
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_str())
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .unwrap_or_default()
        .into_iter()
        .collect())
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
        if plan.is_empty() {
            tx.rollback().await?;
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
        tx.commit().await?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, storage: Storage, not_null: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            storage,
            not_null,
            primary_key: name == "id",
        }
    }

    fn posts(extra: Vec<ColumnDef>) -> TableDef {
        let mut columns = vec![
            col("id", Storage::Uuid, true),
            col("title", Storage::Text, true),
        ];
        columns.extend(extra);
        TableDef {
            name: "posts".into(),
            columns,
            foreign_keys: vec![],
            indexes: vec![],
        }
    }

    fn live_of(t: &TableDef, dialect: Dialect) -> LiveTable {
        LiveTable {
            name: t.name.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        column_type(c.storage, dialect).into(),
                        c.not_null,
                    )
                })
                .collect(),
            foreign_keys: t.foreign_keys.clone(),
            indexes: t.indexes.iter().map(|i| i.name.clone()).collect(),
        }
    }

    #[test]
    fn same_schema_plans_nothing() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let t = posts(vec![]);
            assert!(
                plan(
                    std::slice::from_ref(&t),
                    &[live_of(&t, d)],
                    &BTreeSet::new(),
                    d
                )
                .is_empty()
            );
        }
    }

    #[test]
    fn a_new_optional_column_is_a_safe_add() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let old = posts(vec![]);
            let new = posts(vec![col("body", Storage::Text, false)]);
            let p = plan(&[new], &[live_of(&old, d)], &BTreeSet::new(), d);
            assert_eq!(p.steps.len(), 1, "{d:?}: {p:?}");
            assert!(!p.has_destructive());
            assert!(
                p.steps[0].sql[0].contains("ADD COLUMN"),
                "{:?}",
                p.steps[0].sql
            );
        }
    }

    #[test]
    fn dropping_a_column_or_table_is_destructive() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let old = posts(vec![col("body", Storage::Text, false)]);
            let new = posts(vec![]);
            assert!(
                plan(
                    std::slice::from_ref(&new),
                    &[live_of(&old, d)],
                    &BTreeSet::new(),
                    d
                )
                .has_destructive()
            );
            let managed: BTreeSet<String> = ["posts".to_string()].into();
            let p = plan(&[], &[live_of(&new, d)], &managed, d);
            assert!(p.has_destructive());
            // A table Keel never created is left alone.
            assert!(plan(&[], &[live_of(&new, d)], &BTreeSet::new(), d).is_empty());
        }
    }

    #[test]
    fn changing_a_type_is_destructive() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let old = posts(vec![col("n", Storage::Text, false)]);
            let new = posts(vec![col("n", Storage::Int, false)]);
            assert!(plan(&[new], &[live_of(&old, d)], &BTreeSet::new(), d).has_destructive());
        }
    }
}

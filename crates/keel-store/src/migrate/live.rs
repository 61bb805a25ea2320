//! The schema as the database has it now: tables, columns, foreign keys and Keel's
//! indexes (SQLite through its PRAGMAs, PostgreSQL through its catalogs), and the
//! tables Keel manages, as the last migration recorded them.

use crate::schema::ForeignKeyDef;
use crate::{Stmt, StoreError, Tx};
use keel_spec::{OnDelete, Storage};
use std::collections::BTreeSet;

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

pub(super) async fn live_schema(tx: &mut Tx<'_>) -> Result<Vec<LiveTable>, StoreError> {
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

pub(super) async fn managed_tables(tx: &mut Tx<'_>) -> Result<BTreeSet<String>, StoreError> {
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

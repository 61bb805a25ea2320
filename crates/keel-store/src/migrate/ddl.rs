//! The SQL of each step, per dialect: tables, columns, foreign keys, indexes, and
//! SQLite's copy-and-swap rebuild (it cannot alter a column in place). Pure.

use super::LiveTable;
use crate::Dialect;
use crate::schema::{self, ColumnDef, ForeignKeyDef, IndexDef, TableDef, column_type};
use keel_spec::{OnDelete, Storage};
use sea_query::{
    Alias, ColumnDef as SqColumn, ForeignKey, ForeignKeyAction, Index, IndexOrder, Table,
};

/// Render a schema statement in the dialect.
pub(super) fn render<S: sea_query::SchemaStatementBuilder>(stmt: &S, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => stmt.build(sea_query::SqliteQueryBuilder),
        Dialect::Postgres => stmt.build(sea_query::PostgresQueryBuilder),
    }
}

/// A quoted identifier (names are validated to `[a-z][a-z0-9_]*`, quoting is belt and braces).
pub(super) fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn fk_name(table: &str, column: &str) -> String {
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

pub(super) fn add_fk(table: &str, fk: &ForeignKeyDef) -> String {
    ForeignKey::create()
        .name(fk_name(table, &fk.column))
        .from(Alias::new(table), Alias::new(&fk.column))
        .to(Alias::new(&fk.table), Alias::new("id"))
        .on_delete(action(fk.on_delete))
        .to_string(sea_query::PostgresQueryBuilder)
}

pub(super) fn add_column(table: &str, col: &ColumnDef, dialect: Dialect) -> String {
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

pub(super) fn create_index(table: &str, ix: &IndexDef, dialect: Dialect) -> String {
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

pub(super) fn sqlite_rebuild(want: &TableDef, have: &LiveTable) -> Vec<String> {
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

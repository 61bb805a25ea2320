//! The storage schema the model asks for, per dialect: tables, columns, foreign keys
//! and indexes. Pure; both DDL generation and migration planning start from here.

use keel_expr::Dialect;
use keel_spec::{Collection, FieldType, Model, OnDelete, Storage};

/// One table as the model wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    pub indexes: Vec<IndexDef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub storage: Storage,
    pub not_null: bool,
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKeyDef {
    pub column: String,
    pub table: String,
    pub on_delete: OnDelete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub name: String,
    /// (column, descending)
    pub columns: Vec<(String, bool)>,
    pub unique: bool,
}

/// Every table of the model, in dependency-friendly order (declaration order; SQLite
/// and PostgreSQL both accept forward references inside one transaction for FKs
/// created with the table only when the target exists, so refs are sorted first).
pub fn tables(model: &Model) -> Vec<TableDef> {
    let mut out: Vec<TableDef> = model.collections.iter().map(table).collect();
    // Topological order so a referenced table is created before the one pointing at it.
    let mut ordered: Vec<TableDef> = Vec::with_capacity(out.len());
    while !out.is_empty() {
        let ready = out.iter().position(|t| {
            t.foreign_keys.iter().all(|fk| {
                fk.table == t.name
                    || ordered.iter().any(|o| o.name == fk.table)
                    || !out.iter().any(|o| o.name == fk.table)
            })
        });
        // A cycle of refs: take the first; SQLite checks FKs lazily and the planner
        // adds PostgreSQL FKs after all tables exist.
        let i = ready.unwrap_or(0);
        ordered.push(out.remove(i));
    }
    ordered
}

/// The table of one collection.
pub fn table(c: &Collection) -> TableDef {
    let mut columns = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut indexes = Vec::new();
    for f in &c.fields {
        columns.push(ColumnDef {
            name: f.name.clone(),
            storage: f.storage(),
            not_null: f.not_null(),
            primary_key: f.name == "id",
        });
        if let FieldType::Ref { to, on_delete, .. } = &f.ty {
            foreign_keys.push(ForeignKeyDef {
                column: f.name.clone(),
                table: to.clone(),
                on_delete: *on_delete,
            });
        }
        if f.unique && f.name != "id" {
            indexes.push(IndexDef {
                name: index_name("uq", &c.name, &[f.name.as_str()]),
                columns: vec![(f.name.clone(), false)],
                unique: true,
            });
        }
    }
    for u in &c.uniques {
        let cols: Vec<&str> = u.fields.iter().map(String::as_str).collect();
        indexes.push(IndexDef {
            name: index_name("uq", &c.name, &cols),
            columns: u.fields.iter().map(|f| (f.clone(), false)).collect(),
            unique: true,
        });
    }
    for ix in &c.indexes {
        let parts: Vec<String> = ix
            .keys
            .iter()
            .map(|k| {
                if k.descending {
                    format!("{}_desc", k.field)
                } else {
                    k.field.clone()
                }
            })
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        indexes.push(IndexDef {
            name: index_name("ix", &c.name, &parts),
            columns: ix
                .keys
                .iter()
                .map(|k| (k.field.clone(), k.descending))
                .collect(),
            unique: false,
        });
    }
    indexes.dedup_by(|a, b| a.name == b.name);
    TableDef {
        name: c.name.clone(),
        columns,
        foreign_keys,
        indexes,
    }
}

/// `ix_posts_author_created_at_desc`, shortened with a hash past PostgreSQL's 63 bytes.
pub fn index_name(prefix: &str, table: &str, cols: &[&str]) -> String {
    let name = format!("{prefix}_{table}_{}", cols.join("_"));
    if name.len() <= 63 {
        return name;
    }
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{}_{:08x}", &name[..50], h as u32)
}

/// The column type a dialect stores a storage class as. SQLite names keep `TEXT` in
/// them so the column gets TEXT affinity (a JSON `"123"` stays text) while the
/// declared name still tells the planner what the column holds.
pub fn column_type(storage: Storage, dialect: Dialect) -> &'static str {
    match (dialect, storage) {
        (Dialect::Sqlite, Storage::Text) => "TEXT",
        (Dialect::Sqlite, Storage::Int) => "INTEGER",
        (Dialect::Sqlite, Storage::Float) => "REAL",
        (Dialect::Sqlite, Storage::Bool) => "BOOLEAN",
        (Dialect::Sqlite, Storage::Datetime) => "DATETIME_TEXT",
        (Dialect::Sqlite, Storage::Date) => "DATE_TEXT",
        (Dialect::Sqlite, Storage::Uuid) => "UUID_TEXT",
        (Dialect::Sqlite, Storage::Json) => "JSON_TEXT",
        (Dialect::Postgres, Storage::Text) => "text",
        (Dialect::Postgres, Storage::Int) => "bigint",
        (Dialect::Postgres, Storage::Float) => "double precision",
        (Dialect::Postgres, Storage::Bool) => "boolean",
        (Dialect::Postgres, Storage::Datetime) => "timestamp with time zone",
        (Dialect::Postgres, Storage::Date) => "date",
        (Dialect::Postgres, Storage::Uuid) => "uuid",
        (Dialect::Postgres, Storage::Json) => "jsonb",
    }
}

/// The storage class a live column type stands for (`None`: not one of ours).
pub fn storage_of(type_name: &str, dialect: Dialect) -> Option<Storage> {
    let t = type_name.to_ascii_lowercase();
    [
        Storage::Text,
        Storage::Int,
        Storage::Float,
        Storage::Bool,
        Storage::Datetime,
        Storage::Date,
        Storage::Uuid,
        Storage::Json,
    ]
    .into_iter()
    .find(|s| column_type(*s, dialect).eq_ignore_ascii_case(&t))
}

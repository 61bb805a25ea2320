//! Readiness without the write lock: each migration records a fingerprint of the
//! schema it brought the database to (in `_keel_meta`), and a probe compares that one
//! row, read on a reader connection, with the fingerprint of the node's model.

use crate::schema::{TableDef, tables};
use crate::{Dialect, Stmt, Store, StoreError, Tx, system};
use keel_spec::{Model, Storage};

/// The `_keel_meta` key holding the fingerprint of the last applied schema.
const KEY: &str = "schema_fingerprint";

/// A digest of the schema a model asks for (tables, columns, foreign keys, indexes;
/// not their order). Two models that need the same tables have the same fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaFingerprint(String);

impl SchemaFingerprint {
    /// The fingerprint of the tables `model` asks for.
    pub fn of(model: &Model) -> Self {
        Self::of_tables(&tables(model))
    }

    pub fn of_tables(tables: &[TableDef]) -> Self {
        let mut tables: Vec<&TableDef> = tables.iter().collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::from("keel-schema 1\n");
        for t in tables {
            text.push_str(&format!("table {}\n", t.name));
            let mut columns: Vec<_> = t.columns.iter().collect();
            columns.sort_by(|a, b| a.name.cmp(&b.name));
            for c in columns {
                text.push_str(&format!(
                    "column {} {:?} {} {}\n",
                    c.name, c.storage, c.not_null, c.primary_key
                ));
            }
            let mut fks: Vec<_> = t.foreign_keys.iter().collect();
            fks.sort_by(|a, b| a.column.cmp(&b.column));
            for fk in fks {
                text.push_str(&format!(
                    "fk {} {} {:?}\n",
                    fk.column, fk.table, fk.on_delete
                ));
            }
            let mut indexes: Vec<_> = t.indexes.iter().collect();
            indexes.sort_by(|a, b| a.name.cmp(&b.name));
            for ix in indexes {
                text.push_str(&format!(
                    "index {} {} {:?}\n",
                    ix.name, ix.unique, ix.columns
                ));
            }
        }
        // FNV-1a: not a defence against anyone, only a short stable name for the text
        // (a schema change colliding by accident has a chance of one in 2^64).
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(format!("{hash:016x}-{}", text.len()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SchemaFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the database stands against the schema a node expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The last migration brought the database to the expected schema.
    Ready,
    /// No migration has recorded a schema yet (never migrated, or migrated by a Keel
    /// that did not record fingerprints: the next `keel migrate` records it).
    NotMigrated,
    /// The database was last migrated to another schema.
    Differs,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        *self == Readiness::Ready
    }
}

impl Store {
    /// Is the database at the schema `expected` describes? One indexed read of one
    /// row, on a reader connection (SQLite) or a pooled one (PostgreSQL): it neither
    /// waits for nor holds up writers, and diffs nothing.
    pub async fn readiness(&self, expected: &SchemaFingerprint) -> Result<Readiness, StoreError> {
        let rows = self
            .query(&system::meta_select(self.dialect(), KEY), &[Storage::Text])
            .await?;
        Ok(judge(first_text(&rows), expected))
    }
}

fn first_text(rows: &[crate::Row]) -> Option<&str> {
    rows.first()?.first()?.as_str()
}

fn judge(recorded: Option<&str>, expected: &SchemaFingerprint) -> Readiness {
    match recorded {
        None => Readiness::NotMigrated,
        Some(r) if r == expected.as_str() => Readiness::Ready,
        Some(_) => Readiness::Differs,
    }
}

/// The fingerprint recorded in the database, read inside the migration's transaction.
pub(super) async fn recorded(tx: &mut Tx<'_>) -> Result<Option<String>, StoreError> {
    let rows = tx
        .query(&system::meta_select(tx.dialect(), KEY), &[Storage::Text])
        .await?;
    Ok(first_text(&rows).map(str::to_string))
}

/// Record `fingerprint` as the schema the database is at, in the migration's
/// transaction (so it commits with the steps, or not at all).
pub(super) async fn record(
    tx: &mut Tx<'_>,
    fingerprint: &SchemaFingerprint,
) -> Result<(), StoreError> {
    let (p1, p2) = match tx.dialect() {
        Dialect::Sqlite => ("?", "?"),
        Dialect::Postgres => ("$1", "$2"),
    };
    tx.execute(&Stmt::new(
        format!(
            "INSERT INTO _keel_meta (key, value) VALUES ({p1}, {p2}) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ),
        vec![KEY.into(), fingerprint.as_str().into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnDef, IndexDef};

    fn table(name: &str, columns: &[(&str, Storage)]) -> TableDef {
        TableDef {
            name: name.into(),
            columns: columns
                .iter()
                .map(|(n, s)| ColumnDef {
                    name: (*n).into(),
                    storage: *s,
                    not_null: false,
                    primary_key: *n == "id",
                })
                .collect(),
            foreign_keys: vec![],
            indexes: vec![],
        }
    }

    #[test]
    fn the_fingerprint_ignores_order_and_sees_every_change() {
        let a = table("a", &[("id", Storage::Uuid), ("x", Storage::Text)]);
        let b = table("b", &[("id", Storage::Uuid)]);
        let fp = SchemaFingerprint::of_tables(&[a.clone(), b.clone()]);
        assert!(fp.as_str().len() > 16, "{fp}");
        let mut a_reordered = a.clone();
        a_reordered.columns.reverse();
        assert_eq!(fp, SchemaFingerprint::of_tables(&[b.clone(), a_reordered]));

        let mut changes = Vec::new();
        let mut t = a.clone();
        t.columns[1].storage = Storage::Int;
        changes.push(t);
        let mut t = a.clone();
        t.columns[1].not_null = true;
        changes.push(t);
        let mut t = a.clone();
        t.columns.pop();
        changes.push(t);
        let mut t = a.clone();
        t.indexes.push(IndexDef {
            name: "ix_a_x".into(),
            columns: vec![("x".into(), false)],
            unique: false,
        });
        changes.push(t);
        for changed in changes {
            assert_ne!(fp, SchemaFingerprint::of_tables(&[changed, b.clone()]));
        }
        assert_ne!(fp, SchemaFingerprint::of_tables(std::slice::from_ref(&a)));
    }

    #[test]
    fn readiness_compares_the_recorded_fingerprint() {
        let fp = SchemaFingerprint::of_tables(&[]);
        assert_eq!(judge(None, &fp), Readiness::NotMigrated);
        assert_eq!(judge(Some(fp.as_str()), &fp), Readiness::Ready);
        assert_eq!(judge(Some("0"), &fp), Readiness::Differs);
    }
}

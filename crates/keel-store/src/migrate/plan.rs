//! The planner: the tables the model asks for against the tables the database has,
//! as an ordered list of steps. Pure, so it is tested without a database.

use super::ddl::{
    add_column, add_fk, create_index, create_table, fk_name, q, render, sqlite_rebuild,
};
use super::{LiveTable, Plan, Step};
use crate::Dialect;
use crate::schema::{self, ColumnDef, ForeignKeyDef, TableDef, column_type};
use sea_query::{Alias, Table};
use std::collections::BTreeSet;

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

#[cfg(test)]
mod tests {
    use super::*;
    use keel_spec::Storage;

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

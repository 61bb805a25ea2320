//! Section 5, the data schema: keys and indexes per table, the DDL of the chosen
//! database, and the entity-relationship diagram.

use super::{Inputs, SECTIONS};
use crate::artifacts;
use crate::plan::Database;
use keel_spec::{FieldType, OnDelete};
use keel_store::Dialect;
use std::fmt::Write;

pub(super) fn data(d: &mut String, i: &Inputs<'_>) {
    let m = i.model;
    let chosen = match i.plan.database {
        Database::Sqlite => Dialect::Sqlite,
        Database::Postgres => Dialect::Postgres,
    };
    let other = match chosen {
        Dialect::Sqlite => Dialect::Postgres,
        Dialect::Postgres => Dialect::Sqlite,
    };
    let _ = writeln!(d, "## {}\n", SECTIONS[4]);
    let _ = writeln!(
        d,
        "Each collection is one table. Every table has `id` (UUIDv7, the **primary key**: time-ordered, so inserts append to the index), `created_at`, `updated_at` and `version` (optimistic locking). Refs are **foreign keys** with the declared `on_delete`; `uq_*` are **unique indexes**, `ix_*` the declared **indexes**. The DDL for {} (the chosen database) follows; the {} DDL is in `schema.{}.sql`, and both are what `keel migrate` runs.\n",
        artifacts::dialect_name(chosen),
        artifacts::dialect_name(other),
        artifacts::dialect_file(other)
    );
    let _ = writeln!(
        d,
        "| table | primary key | foreign keys | indexes |\n|---|---|---|---|"
    );
    for t in keel_store::schema::tables(m) {
        let fks: Vec<String> = t
            .foreign_keys
            .iter()
            .map(|fk| {
                format!(
                    "**`{}` → `{}.id`** ({})",
                    fk.column,
                    fk.table,
                    fk.on_delete.as_str().replace('_', " ")
                )
            })
            .collect();
        let ixs: Vec<String> = t
            .indexes
            .iter()
            .map(|ix| {
                let cols: Vec<String> = ix
                    .columns
                    .iter()
                    .map(|(c, desc)| {
                        if *desc {
                            format!("{c} DESC")
                        } else {
                            c.clone()
                        }
                    })
                    .collect();
                format!(
                    "**`{}`**{} ({})",
                    ix.name,
                    if ix.unique { " unique" } else { "" },
                    cols.join(", ")
                )
            })
            .collect();
        let _ = writeln!(
            d,
            "| `{}` | **`id`** | {} | {} |",
            t.name,
            if fks.is_empty() {
                "—".into()
            } else {
                fks.join("<br>")
            },
            if ixs.is_empty() {
                "—".into()
            } else {
                ixs.join("<br>")
            }
        );
    }
    d.push('\n');
    let _ = writeln!(d, "```sql\n{}```\n", artifacts::model_ddl(m, chosen));
    let _ = writeln!(
        d,
        "Entity–relationship diagram (PK primary key, FK foreign key, UK unique):\n"
    );
    let mut g = String::from("erDiagram\n");
    for c in &m.collections {
        let _ = writeln!(g, "  {} {{", c.name);
        for f in c.fields.iter().filter(|f| !f.hidden) {
            let ty = match &f.ty {
                FieldType::Ref { .. } => "uuid",
                t => t.name(),
            };
            let key = if f.name == "id" {
                " PK"
            } else if matches!(f.ty, FieldType::Ref { .. }) {
                " FK"
            } else if f.unique {
                " UK"
            } else {
                ""
            };
            let _ = writeln!(g, "    {ty} {}{key}", f.name);
        }
        g.push_str("  }\n");
    }
    for c in &m.collections {
        for f in &c.fields {
            if let FieldType::Ref { to, on_delete, .. } = &f.ty {
                let left = if f.required && *on_delete != OnDelete::SetNull {
                    "||"
                } else {
                    "|o"
                };
                let _ = writeln!(g, "  {to} {left}--o{{ {} : \"{}\"", c.name, f.name);
            }
        }
    }
    let _ = writeln!(d, "```mermaid\n{g}```\n");
}

//! What deleting a record does to the records that refer to it, done by the core
//! (not left to the database's `ON DELETE`) so each effect is a change with its own
//! event: `cascade` children are deleted (children before parents), `set_null`
//! children are updated (their version bumped), `restrict` is left to the foreign key.

use crate::engine::{Engine, id_value, storages};
use crate::error::CoreError;
use crate::principal::Principal;
use crate::record::sealed;
use crate::values;
use crate::write::Touched;
use crate::write::outbox::{Change, ChangeKind};
use keel_expr::{Dialect, Value};
use keel_spec::{Collection, OnDelete, Storage};
use keel_store::{Stmt, Tx};
use sea_query::{Alias, Expr, ExprTrait, LockType, Query};
use serde_json::{Map, Value as Json};
use std::collections::HashSet;

/// A record reached by a cascade, in its stored form.
struct Reached {
    collection: String,
    id: uuid::Uuid,
    record: Map<String, Json>,
}

impl Engine {
    /// Apply the `on_delete` of every ref to `(c, id)`, recursively, before `(c, id)`
    /// itself is deleted. `visited` holds the records already being deleted (a cycle
    /// in the data stops there).
    pub(crate) async fn cascade(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        id: uuid::Uuid,
        principal: &Principal,
        now: time::OffsetDateTime,
        visited: &mut HashSet<(String, uuid::Uuid)>,
    ) -> Result<Vec<Touched>, CoreError> {
        let mut touched = Vec::new();
        // Depth-first, recording records in pre-order; deleting them in reverse order
        // deletes every child before its parent.
        let mut stack = vec![(c.name.clone(), id)];
        let mut doomed: Vec<Reached> = Vec::new();
        while let Some((coll, parent)) = stack.pop() {
            let Some(referrers) = self.referrers.get(&coll) else {
                continue;
            };
            for (child, field, on_delete) in referrers {
                let Some(k) = self.model.collection(child) else {
                    continue;
                };
                match on_delete {
                    OnDelete::Restrict => {}
                    OnDelete::SetNull => {
                        touched.extend(self.set_null(tx, k, field, parent, principal, now).await?);
                    }
                    OnDelete::Cascade => {
                        for (child_id, record) in self.referring(tx, k, field, parent).await? {
                            if visited.insert((k.name.clone(), child_id)) {
                                stack.push((k.name.clone(), child_id));
                                doomed.push(Reached {
                                    collection: k.name.clone(),
                                    id: child_id,
                                    record,
                                });
                            }
                        }
                    }
                }
            }
        }
        let dialect = tx.dialect();
        for r in doomed.into_iter().rev() {
            let Some(k) = self.model.collection(&r.collection) else {
                continue;
            };
            let delete = Query::delete()
                .from_table(Alias::new(&k.name))
                .and_where(Expr::col(Alias::new("id")).eq(id_value(r.id, dialect)))
                .to_owned();
            tx.execute(&Stmt::build(&delete, dialect))
                .await
                .map_err(|e| self.constraint_error(k, e))?;
            let change = Change {
                kind: ChangeKind::Deleted,
                record_id: r.id,
                data: None,
                previous: Some(&r.record),
            };
            self.append_event(tx, k, change, principal, now).await?;
            touched.push(Touched {
                collection: k.name.clone(),
                id: r.id,
                record: None,
            });
        }
        Ok(touched)
    }

    /// The records of `k` whose `field` is `parent`, in their stored form (locked on
    /// PostgreSQL, so a concurrent write to one of them orders with this delete).
    async fn referring(
        &self,
        tx: &mut Tx<'_>,
        k: &Collection,
        field: &str,
        parent: uuid::Uuid,
    ) -> Result<Vec<(uuid::Uuid, Map<String, Json>)>, CoreError> {
        let dialect = tx.dialect();
        let (mut q, columns) = self.select(k);
        q.and_where(
            Expr::col((Alias::new(&k.name), Alias::new(field))).eq(id_value(parent, dialect)),
        );
        if dialect == Dialect::Postgres {
            q.lock_with_tables(LockType::Update, [Alias::new(&k.name)]);
        }
        let rows = tx
            .query(&Stmt::build(&q, dialect), &storages(&columns))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| sealed(&columns, row))
            .filter_map(|record| {
                let id = record
                    .get("id")
                    .and_then(Json::as_str)
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())?;
                Some((id, record))
            })
            .collect())
    }

    /// `field = NULL` on every record of `k` pointing at `parent`, as updates: the
    /// version is bumped and each gets an `updated` event.
    async fn set_null(
        &self,
        tx: &mut Tx<'_>,
        k: &Collection,
        field: &str,
        parent: uuid::Uuid,
        principal: &Principal,
        now: time::OffsetDateTime,
    ) -> Result<Vec<Touched>, CoreError> {
        let dialect = tx.dialect();
        let mut touched = Vec::new();
        for (child_id, previous) in self.referring(tx, k, field, parent).await? {
            let mut update = Query::update();
            update
                .table(Alias::new(&k.name))
                .value(
                    Alias::new(field),
                    Expr::val(values::to_sql(&Value::Null, Storage::Uuid, dialect)),
                )
                .value(
                    Alias::new("updated_at"),
                    Expr::val(values::to_sql(
                        &Value::Datetime(now),
                        Storage::Datetime,
                        dialect,
                    )),
                )
                .value(
                    Alias::new("version"),
                    Expr::col(Alias::new("version")).add(1),
                )
                .and_where(Expr::col(Alias::new("id")).eq(id_value(child_id, dialect)));
            tx.execute(&Stmt::build(&update, dialect))
                .await
                .map_err(|e| self.constraint_error(k, e))?;
            let Some((record, _)) = self.read_in_tx(tx, k, child_id, &[]).await? else {
                continue;
            };
            let change = Change {
                kind: ChangeKind::Updated,
                record_id: child_id,
                data: Some(&record),
                previous: Some(&previous),
            };
            self.append_event(tx, k, change, principal, now).await?;
            touched.push(Touched {
                collection: k.name.clone(),
                id: child_id,
                record: Some(record),
            });
        }
        Ok(touched)
    }
}

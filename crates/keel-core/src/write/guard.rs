//! The row a write changes, read and locked inside its transaction, and the rules
//! decided on it; refs checked to point at something.

use crate::engine::{Engine, id_value, storages};
use crate::error::{CoreError, FieldError};
use crate::principal::Principal;
use crate::record::sealed;
use crate::sql::{RowScope, col, rule_predicate};
use keel_expr::{Dialect, Value};
use keel_spec::{Collection, FieldType, Operation, Storage};
use keel_store::{Stmt, Tx};
use sea_query::{Alias, Expr, ExprTrait, LockType, Query};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

impl Engine {
    /// The read rule and the operation's rule as SQL, for [`Engine::lock_for_write`]
    /// (built before any await: the scope is not shareable across threads).
    pub(crate) fn write_checks(
        &self,
        c: &Collection,
        scope: &RowScope<'_>,
        op: Operation,
        dialect: Dialect,
    ) -> [Expr; 2] {
        [
            rule_predicate(c.access.read.as_ref(), scope, dialect),
            rule_predicate(c.access.get(op), scope, dialect),
        ]
    }

    /// Read the record to change inside the write's transaction (PostgreSQL locks the
    /// row) and decide: missing or unreadable → 404, rule false → 401/403, stale
    /// `If-Match` → 412. Returns the record and its version.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn lock_for_write(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        uuid: uuid::Uuid,
        id: &str,
        principal: &Principal,
        op: Operation,
        checks: [Expr; 2],
        if_match: Option<&[i64]>,
    ) -> Result<(Map<String, Json>, i64), CoreError> {
        let not_found = || CoreError::NotFound {
            collection: c.name.clone(),
            id: id.to_string(),
        };
        let current = self.read_in_tx(tx, c, uuid, &checks).await?;
        let Some((current, checks)) = current else {
            return Err(not_found());
        };
        if !checks[0] {
            return Err(not_found());
        }
        if !checks[1] {
            return Err(self.denied(principal, op, c));
        }
        let version = current.get("version").and_then(Json::as_i64).unwrap_or(0);
        if if_match.is_some_and(|versions| !versions.contains(&version)) {
            return Err(CoreError::StaleVersion { current: version });
        }
        Ok((current, version))
    }

    /// The record's visible fields in their stored form (encrypted fields sealed) and
    /// the value of each predicate, inside the
    /// transaction (PostgreSQL locks the row until commit).
    pub(crate) async fn read_in_tx(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        id: uuid::Uuid,
        predicates: &[Expr],
    ) -> Result<Option<(Map<String, Json>, Vec<bool>)>, CoreError> {
        let dialect = tx.dialect();
        let (mut q, columns) = self.select(c);
        let mut storages = storages(&columns);
        for p in predicates {
            q.expr(Expr::case(p.clone(), Expr::cust("TRUE")).finally(Expr::cust("FALSE")));
            storages.push(Storage::Bool);
        }
        q.and_where(col(&c.name, "id").eq(id_value(id, dialect)));
        if dialect == Dialect::Postgres {
            q.lock_with_tables(LockType::Update, [Alias::new(&c.name)]);
        }
        let rows = tx.query(&Stmt::build(&q, dialect), &storages).await?;
        let Some(mut row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let checks: Vec<bool> = row
            .split_off(columns.len())
            .into_iter()
            .map(|v| v.as_bool().unwrap_or(false))
            .collect();
        Ok(Some((sealed(&columns, row), checks)))
    }

    /// A ref must point at a record the caller may read: a 409 naming the field, not
    /// a foreign-key error from the database. A record the caller may not read
    /// answers exactly as a missing one, so a ref cannot probe for existence.
    pub(crate) async fn check_refs(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        principal: &Principal,
        input: &BTreeMap<String, Value>,
    ) -> Result<(), CoreError> {
        let dialect = tx.dialect();
        // Statements first: a rule's scope is not shareable across an await.
        let mut probes = Vec::new();
        for (name, v) in input {
            let (Some(FieldType::Ref { to, .. }), Value::Uuid(id)) =
                (c.field(name).map(|f| &f.ty), v)
            else {
                continue;
            };
            let Some(target) = self.model.collection(to) else {
                continue;
            };
            let scope = RowScope::new(&self.model, target, principal);
            let q = Query::select()
                .expr(Expr::cust("1"))
                .from(Alias::new(to))
                .and_where(col(to, "id").eq(id_value(*id, dialect)))
                .and_where(rule_predicate(target.access.read.as_ref(), &scope, dialect))
                .to_owned();
            probes.push((name, to, *id, Stmt::build(&q, dialect)));
        }
        let mut errors = Vec::new();
        for (name, to, id, stmt) in probes {
            if tx.query(&stmt, &[Storage::Int]).await?.is_empty() {
                errors.push(FieldError::new(
                    name,
                    "not_found",
                    format!("no `{to}` record has id {id}"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            // As PostgREST answers a foreign-key violation: the body is well-formed,
            // but conflicts with what is stored.
            Err(CoreError::Conflict {
                message: errors
                    .iter()
                    .map(|e| format!("`{}`: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            })
        }
    }
}

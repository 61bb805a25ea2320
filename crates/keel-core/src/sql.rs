//! How the operations speak SQL: table and column references, the scope that turns
//! rule and filter paths into columns, correlated subqueries (through refs) or bound
//! values, and the select list of a collection.

use crate::principal::Principal;
use keel_expr::{Dialect, PathSql, SqlScope, Value};
use keel_spec::{Collection, FieldType, Model};
use sea_query::{Alias, Expr, Query};
use std::cell::Cell;
use std::collections::BTreeMap;

pub fn col(table: &str, column: &str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(column)))
}

/// Paths of a rule or filter, as SQL for one row of `collection`.
pub struct RowScope<'a> {
    pub model: &'a Model,
    pub collection: &'a Collection,
    pub principal: &'a Principal,
    /// The incoming body for `input.*` (create and update rules).
    pub input: Option<&'a BTreeMap<String, Value>>,
    pub now: time::OffsetDateTime,
    next_alias: Cell<usize>,
}

impl<'a> RowScope<'a> {
    pub fn new(model: &'a Model, collection: &'a Collection, principal: &'a Principal) -> Self {
        Self {
            model,
            collection,
            principal,
            input: None,
            now: time::OffsetDateTime::now_utc(),
            next_alias: Cell::new(0),
        }
    }

    pub fn with_input(mut self, input: &'a BTreeMap<String, Value>) -> Self {
        self.input = Some(input);
        self
    }

    fn alias(&self) -> String {
        let n = self.next_alias.get() + 1;
        self.next_alias.set(n);
        format!("_r{n}")
    }

    /// `a.b.c` through refs: nested correlated subqueries, innermost first.
    fn through_refs(&self, path: &[String]) -> Expr {
        let mut coll = self.collection;
        let mut current = col(&self.collection.name, &path[0]);
        for (i, seg) in path.iter().enumerate().skip(1) {
            let Some(FieldType::Ref { to, .. }) = coll.field(&path[i - 1]).map(|f| &f.ty) else {
                return Expr::cust("NULL");
            };
            let Some(target) = self.model.collection(to) else {
                return Expr::cust("NULL");
            };
            let alias = self.alias();
            let sub = Query::select()
                .expr(col(&alias, seg))
                .from_as(Alias::new(&target.name), Alias::new(&alias))
                .and_where(col(&alias, "id").eq(current))
                .limit(1)
                .to_owned();
            current = Expr::SubQuery(None, Box::new(sub.into()));
            coll = target;
        }
        current
    }
}

use sea_query::ExprTrait;

impl SqlScope for RowScope<'_> {
    fn path(&self, path: &[String]) -> PathSql {
        match path.first().map(String::as_str) {
            Some("auth") => PathSql::Value(self.principal.auth_value(path)),
            Some("input") => PathSql::Value(
                path.get(1)
                    .and_then(|f| self.input.and_then(|i| i.get(f)))
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
            Some(field) if path.len() == 1 => PathSql::Expr(col(&self.collection.name, field)),
            Some(_) => PathSql::Expr(self.through_refs(path)),
            None => PathSql::Value(Value::Null),
        }
    }

    fn has_role(&self, role: &str) -> bool {
        self.principal.has_role(role)
    }

    fn now(&self) -> time::OffsetDateTime {
        self.now
    }
}

/// The predicate of a rule for this principal; `None` rule means deny.
pub fn rule_predicate(
    rule: Option<&keel_spec::Rule>,
    scope: &RowScope<'_>,
    dialect: Dialect,
) -> Expr {
    if scope.principal.system {
        return Expr::cust("1 = 1");
    }
    match rule {
        None => Expr::cust("1 = 0"),
        Some(r) => keel_expr::to_sql(&r.typed, scope, dialect),
    }
}

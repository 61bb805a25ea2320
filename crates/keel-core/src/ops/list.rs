//! List: one page of the records the caller may read, by keyset, with the read
//! rule compiled into the `WHERE` (so hidden rows are never returned or counted).

use crate::engine::{Engine, not_null, storages};
use crate::error::CoreError;
use crate::ops::get::encrypted;
use crate::principal::Principal;
use crate::query::index_arms::index_arms;
use crate::query::{ListQuery, Page, PageText, sort_signature};
use crate::record::project;
use crate::sql::{RowScope, col, rule_predicate};
use keel_spec::{Collection, Operation, Storage};
use keel_store::{Objects, Stmt};
use sea_query::{Alias, Expr, ExprTrait, NullOrdering, Order, Query, SelectStatement};
use serde_json::{Map, Value as Json};

impl Engine {
    /// A page of the records the principal may read, filtered and sorted.
    pub async fn list(
        &self,
        principal: &Principal,
        collection: &str,
        query: &ListQuery,
    ) -> Result<Page, CoreError> {
        let c = self.collection(collection)?;
        let select = self.page_select(principal, c, query).await?;
        let limit = query.limit as usize;
        let rows = self
            .read_rows(principal, &select.stmt, &storages(&select.columns))
            .await?;
        let has_more = rows.len() > limit;
        let mut records: Vec<Map<String, Json>> = rows
            .into_iter()
            .take(limit)
            .map(|r| self.record(c, &select.columns, r))
            .collect();
        let next_cursor = match records.last() {
            Some(last) if has_more => Some(self.cursor_after(query, last)),
            _ => None,
        };
        self.expand(principal, c, &query.projection.expand, &mut records)
            .await?;
        let items = records
            .into_iter()
            .map(|r| Json::Object(project(r, query.projection.fields.as_deref())))
            .collect();
        Ok(Page {
            items,
            next_cursor,
            total: select.total,
        })
    }

    /// [`Engine::list`] as the JSON text of an answer. Records as stored (every
    /// field, nothing embedded, nothing to decrypt) are written straight from their
    /// rows as they are read.
    pub async fn list_text(
        &self,
        principal: &Principal,
        collection: &str,
        query: &ListQuery,
    ) -> Result<PageText, CoreError> {
        let c = self.collection(collection)?;
        if !query.projection.is_whole() || encrypted(c) {
            return PageText::of(self.list(principal, collection, query).await?);
        }
        let select = self.page_select(principal, c, query).await?;
        let limit = query.limit as usize;
        let mut rows = Objects::new(self.shape(c)?, limit + 1);
        self.read_into(principal, &select.stmt, &mut rows).await?;
        let next_cursor = if rows.len() > limit {
            limit
                .checked_sub(1)
                .and_then(|i| rows.object(i))
                .and_then(|text| serde_json::from_str::<Map<String, Json>>(text).ok())
                .map(|last| self.cursor_after(query, &last))
        } else {
            None
        };
        Ok(PageText {
            items: rows.into_array(limit),
            next_cursor,
            total: select.total,
        })
    }

    /// The cursor of the page after the one ending with `last`.
    fn cursor_after(&self, query: &ListQuery, last: &Map<String, Json>) -> String {
        let values: Vec<Json> = query
            .sort
            .iter()
            .map(|k| last.get(&k.field).cloned().unwrap_or(Json::Null))
            .collect();
        self.cursor.encode(&sort_signature(&query.sort), &values)
    }

    /// The statement of one page (one row more than the limit, which tells whether
    /// there is a next page), its columns, and the count when asked for.
    async fn page_select(
        &self,
        principal: &Principal,
        c: &Collection,
        query: &ListQuery,
    ) -> Result<PageSelect, CoreError> {
        let dialect = self.dialect();
        if c.access.read.is_none() && !principal.system {
            return Err(self.denied(principal, Operation::Read, c));
        }
        let limit = query.limit;
        let sort = &query.sort;
        let filter = &query.filter;
        let scope = RowScope::new(&self.model, c, principal);
        let mut conditions = vec![rule_predicate(c.access.read.as_ref(), &scope, dialect)];
        if let Some(typed) = filter {
            conditions.push(keel_expr::to_sql(typed, &scope, dialect));
        }
        let rule = c.access.read.as_ref().filter(|_| !principal.system);
        let arms = index_arms(
            c,
            rule.map(|r| &r.typed),
            filter.as_deref(),
            &scope,
            dialect,
        );
        let total = if query.count {
            let mut q = Query::select();
            q.expr(Expr::cust("COUNT(*)")).from(Alias::new(&c.name));
            for cond in &conditions {
                q.and_where(cond.clone());
            }
            let rows = self
                .read_rows(principal, &Stmt::build(&q, dialect), &[Storage::Int])
                .await?;
            rows.first().and_then(|r| r.first()).and_then(Json::as_i64)
        } else {
            None
        };
        let keyset = match &query.after {
            Some(values) => Some(self.keyset(c, sort, values, dialect)?),
            None => None,
        };
        let (mut q, columns) = self.select(c);
        let order = |q: &mut SelectStatement| {
            for key in sort {
                let field = &key.field;
                let (order, nulls) = if key.descending {
                    (Order::Desc, NullOrdering::Last)
                } else {
                    (Order::Asc, NullOrdering::First)
                };
                let column = (Alias::new(&c.name), Alias::new(field));
                // A column that cannot hold NULL is ordered without a NULLS clause:
                // PostgreSQL's indexes sort NULLs the other way round (first when
                // descending), and an explicit clause kept it from walking them.
                if not_null(c, field) {
                    q.order_by(column, order);
                } else {
                    q.order_by_with_nulls(column, order, nulls);
                }
            }
            q.limit(u64::from(limit) + 1);
        };
        match arms {
            // One page per `||` operand, each from its own index, then the page of
            // their union (an id may come from several operands: `IN` counts it once).
            Some(arms) => {
                let mut union: Option<SelectStatement> = None;
                for (i, arm) in arms.into_iter().enumerate() {
                    let mut inner = Query::select();
                    inner
                        .expr(col(&c.name, "id"))
                        .from(Alias::new(&c.name))
                        .and_where(arm);
                    if let Some(k) = &keyset {
                        inner.and_where(k.clone());
                    }
                    order(&mut inner);
                    let alias = format!("_arm{i}");
                    let mut page = Query::select();
                    page.column(Alias::new("id"))
                        .from_subquery(inner, Alias::new(&alias));
                    union = Some(match union {
                        None => page,
                        Some(mut u) => {
                            u.union(sea_query::UnionType::All, page);
                            u
                        }
                    });
                }
                if let Some(union) = union {
                    q.and_where(col(&c.name, "id").in_subquery(union));
                }
            }
            None => {
                for cond in conditions.into_iter().chain(keyset) {
                    q.and_where(cond);
                }
            }
        }
        order(&mut q);
        Ok(PageSelect {
            stmt: Stmt::build(&q, dialect),
            columns,
            total,
        })
    }
}

/// One page's statement, see [`Engine::page_select`].
struct PageSelect {
    stmt: Stmt,
    columns: Vec<(String, Storage)>,
    total: Option<i64>,
}

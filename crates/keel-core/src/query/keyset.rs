//! Keyset pagination: the predicate for "strictly after the cursor's row" in a
//! total sort order.

use super::SortKey;
use crate::engine::{Engine, not_null};
use crate::error::CoreError;
use crate::sql::col;
use crate::values;
use keel_expr::{Dialect, Value};
use keel_spec::Collection;
use sea_query::{Expr, ExprTrait};
use serde_json::Value as Json;

impl Engine {
    /// Rows strictly after the cursor's row in the sort order. NULLs sort first
    /// ascending and last descending, on both databases.
    pub(crate) fn keyset(
        &self,
        c: &Collection,
        sort: &[SortKey],
        values: &[Json],
        dialect: Dialect,
    ) -> Result<Expr, CoreError> {
        if values.len() != sort.len() {
            return Err(CoreError::BadParam {
                param: "cursor",
                message: "malformed cursor".into(),
                position: None,
            });
        }
        let mut any: Option<Expr> = None;
        for i in 0..sort.len() {
            let mut all: Option<Expr> = None;
            for j in 0..=i {
                let (name, desc) = (&sort[j].field, &sort[j].descending);
                let field = c.field(name).ok_or_else(|| CoreError::BadParam {
                    param: "cursor",
                    message: "malformed cursor".into(),
                    position: None,
                })?;
                let v = values::from_json(&field.ty, &values[j]);
                let column = col(&c.name, name);
                let is_null = matches!(v, Value::Null);
                let bound = || values::to_sql(&v, field.ty.storage(), dialect);
                let part = if j < i {
                    if is_null {
                        column.is_null()
                    } else {
                        column.eq(bound())
                    }
                } else {
                    match (desc, is_null) {
                        (false, true) => column.is_not_null(),
                        (false, false) => column.gt(bound()),
                        (true, true) => Expr::cust("1 = 0"),
                        (true, false) if not_null(c, name) => column.lt(bound()),
                        (true, false) => column.clone().lt(bound()).or(column.is_null()),
                    }
                };
                all = Some(match all {
                    None => part,
                    Some(a) => a.and(part),
                });
            }
            if let Some(all) = all {
                any = Some(match any {
                    None => all,
                    Some(a) => a.or(all),
                });
            }
        }
        Ok(any.unwrap_or_else(|| Expr::cust("1 = 1")))
    }
}

//! Compiles a [`Typed`] expression to a parameterized SQL predicate for SQLite or
//! PostgreSQL that selects exactly the rows the in-memory evaluator accepts.
//!
//! How the semantics are kept identical:
//! - Everything known at compile time (literals, `auth.*` / `input.*` values, roles,
//!   the clock) is folded by the evaluator itself (see [`crate::eval`]), so only
//!   column-dependent parts reach SQL.
//! - Every predicate is two-valued where it matters: under `!` or as a value,
//!   comparisons are wrapped as `COALESCE(a = b, FALSE)` (outside those, a bare `a = b`
//!   selects the same rows in a condition and lets an index serve it)
//!   and boolean columns as `COALESCE(col, FALSE)`, so `NOT`, `AND` and `OR` never see
//!   NULL. A comparison with a value known to be NULL is folded to `FALSE`.
//! - Text ordering on PostgreSQL uses `COLLATE "C"` (byte order, like SQLite's BINARY).
//! - Mixed Int/Float comparisons on PostgreSQL cast the integer side to
//!   `DOUBLE PRECISION` (exact up to 2^53; SQLite and the evaluator are exact beyond).
//! - `a ~ b` is `a LIKE '%b%' ESCAPE '\'` on SQLite and `ILIKE` on PostgreSQL, with `%`,
//!   `_` and `\` in `b` escaped. Both fold ASCII case; PostgreSQL's ILIKE may also fold
//!   non-ASCII letters (locale-dependent) where SQLite and the evaluator do not.
//! - `lower`/`upper` are ASCII-only everywhere: SQLite's built-ins are, and on
//!   PostgreSQL they compile to `translate()` over A–Z so that non-ASCII text is left
//!   alone exactly as in the evaluator.
//! - `x in <Json or List column>` tests top-level array membership (see
//!   [`crate::types`]): `json_each` on SQLite, `@>` on PostgreSQL.
//!
//! On PostgreSQL every bound parameter is wrapped in `CAST($n AS <type>)` with the type
//! [`value_to_sea`] binds it as, so the server never has to guess a parameter's type.
//!
//! The returned expression embeds dialect-specific placeholders in a few custom
//! fragments, so render it with the matching query builder (`SqliteQueryBuilder` for
//! [`Dialect::Sqlite`], `PostgresQueryBuilder` for [`Dialect::Postgres`]).

use std::fmt::Write as _;

use sea_query::{Expr, ExprTrait};
use time::OffsetDateTime;

use crate::check::{Node, NodeKind, Rel, Typed};
use crate::eval::{self, Source};
use crate::types::{
    Type, Value, format_date, format_datetime, format_uuid, json_candidates, normalize, to_json,
    to_utc_micros,
};

/// The SQL dialect to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite 3.38 or newer (JSON functions and `TRUE`/`FALSE` built in).
    Sqlite,
    /// PostgreSQL 12 or newer.
    Postgres,
}

/// How one path appears in SQL.
#[derive(Debug, Clone)]
pub enum PathSql {
    /// A column (or correlated subquery) of the current row.
    Expr(Expr),
    /// A value known when the query is built (`auth.*`, `input.*`), bound as a parameter
    /// or folded away.
    Value(Value),
}

/// What the SQL compiler needs to know about the query it is building.
pub trait SqlScope {
    /// How a path appears in SQL: a column/subquery expression of the current row, or a
    /// value to bind (`auth.*`, `input.*`). Columns must hold the encoding
    /// [`value_to_sea`] binds. May be called more than once per path (folding looks at
    /// subtrees repeatedly), so keep it a cheap lookup.
    fn path(&self, path: &[String]) -> PathSql;
    /// Whether the caller has `role`; `has_role` is folded at compile time.
    fn has_role(&self, role: &str) -> bool;
    /// The time `now()` stands for; bound as a value.
    fn now(&self) -> OffsetDateTime;
}

/// Compiles `expr` to a boolean predicate for `.and_where(…)` / `.cond_where(…)`.
///
/// The predicate is never NULL, and a row matches it exactly when [`crate::eval`] would
/// accept that row with the same scope.
///
/// The result is meant for a condition (`WHERE`, `CASE WHEN`), where NULL counts as
/// false: comparisons outside any `!` (and not used as values) are left bare —
/// `col = ?`, which an index can serve — because there NULL and FALSE lead to the same
/// rows. Under `!`, or as a value, they are wrapped as `COALESCE(…, FALSE)`.
pub fn to_sql(expr: &Typed, scope: &dyn SqlScope, dialect: Dialect) -> Expr {
    Compiler {
        scope,
        dialect,
        strict: std::cell::Cell::new(0),
    }
    .predicate(&expr.root)
}

/// How a value is bound for `dialect`, matching the store's column encoding.
///
/// SQLite: Bool as integer 0/1, Datetime as canonical text (see
/// [`crate::format_datetime`]), Date as `YYYY-MM-DD`, Uuid as lowercase hyphenated text,
/// Json and List as JSON text. PostgreSQL: native bool, timestamptz, date, uuid, jsonb
/// (a List is bound as a jsonb array). NULL is bound as an untyped-text NULL.
pub fn value_to_sea(v: &Value, dialect: Dialect) -> sea_query::Value {
    use sea_query::Value as S;
    let pg = dialect == Dialect::Postgres;
    match v {
        Value::Null => S::String(None),
        Value::Bool(b) if pg => S::Bool(Some(*b)),
        Value::Bool(b) => S::BigInt(Some(i64::from(*b))),
        Value::Int(i) => S::BigInt(Some(*i)),
        Value::Float(f) => S::Double(Some(*f)),
        Value::Text(s) => S::String(Some(s.clone())),
        Value::Datetime(t) if pg => S::TimeDateTimeWithTimeZone(Some(to_utc_micros(*t))),
        Value::Datetime(t) => S::String(Some(format_datetime(*t))),
        Value::Date(d) if pg => S::TimeDate(Some(*d)),
        Value::Date(d) => S::String(Some(format_date(*d))),
        Value::Uuid(u) if pg => S::Uuid(Some(*u)),
        Value::Uuid(u) => S::String(Some(format_uuid(*u))),
        Value::Json(j) if pg => S::Json(Some(Box::new(j.clone()))),
        Value::Json(j) => S::String(Some(j.to_string())),
        Value::List(_) if pg => S::Json(Some(Box::new(to_json(v)))),
        Value::List(_) => S::String(Some(to_json(v).to_string())),
    }
}

/// The partial evaluator's view of a SQL scope: bound values are known, columns are not.
struct SqlSource<'a>(&'a dyn SqlScope);

impl Source for SqlSource<'_> {
    fn path(&self, path: &[String], ty: &Type) -> Option<Value> {
        match self.0.path(path) {
            PathSql::Value(v) => Some(normalize(v, ty)),
            PathSql::Expr(_) => None,
        }
    }
    fn has_role(&self, role: &str) -> Option<bool> {
        Some(self.0.has_role(role))
    }
    fn now(&self) -> Option<OffsetDateTime> {
        Some(self.0.now())
    }
}

/// A compiled scalar: known now (bound as a parameter) or computed by the database.
enum Operand {
    Const(Value),
    Sql(Expr),
}

struct Compiler<'a> {
    scope: &'a dyn SqlScope,
    dialect: Dialect,
    /// Above zero under `!` or inside a value: there a NULL comparison must read FALSE.
    strict: std::cell::Cell<u32>,
}

impl Compiler<'_> {
    fn source(&self) -> SqlSource<'_> {
        SqlSource(self.scope)
    }

    fn pg(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// A never-NULL boolean expression.
    fn predicate(&self, node: &Node) -> Expr {
        match eval::truth(node, &self.source()) {
            Some(b) => boolean(b),
            None => self.predicate_sql(node),
        }
    }

    /// `node` is known not to fold to a constant.
    fn predicate_sql(&self, node: &Node) -> Expr {
        match &node.kind {
            NodeKind::Not(x) => self.strictly(|| self.predicate(x)).not(),
            NodeKind::And(items) => self.logic(items, true),
            NodeKind::Or(items) => self.logic(items, false),
            NodeKind::Cmp(rel, a, b) => self.compare(*rel, a, b),
            NodeKind::IsNull(x, negated) => match self.operand(x) {
                Operand::Sql(e) if *negated => e.is_not_null(),
                Operand::Sql(e) => e.is_null(),
                Operand::Const(v) => boolean(v.is_null() != *negated),
            },
            NodeKind::Contains(a, b) => self.contains(a, b),
            NodeKind::In(x, list) => self.membership(x, list),
            // A boolean column (or anything else boolean-valued) in predicate position.
            _ => match self.operand(node) {
                Operand::Sql(e) => self.raw("COALESCE(?, FALSE)", vec![e]),
                Operand::Const(v) => boolean(eval::truthy(&v)),
            },
        }
    }

    /// `&&` / `||`: operands that fold to the neutral element are dropped; the rest are
    /// combined as a balanced tree so that long chains stay shallow.
    fn logic(&self, items: &[Node], is_and: bool) -> Expr {
        let source = self.source();
        let parts: Vec<Expr> = items
            .iter()
            .filter(|item| eval::truth(item, &source) != Some(is_and))
            .map(|item| self.predicate(item))
            .collect();
        balanced(parts, is_and)
    }

    fn operand(&self, node: &Node) -> Operand {
        if let Some(v) = eval::value(node, &self.source()) {
            return Operand::Const(v);
        }
        match &node.kind {
            NodeKind::Path(p) => match self.scope.path(p) {
                PathSql::Expr(e) => Operand::Sql(e),
                PathSql::Value(v) => Operand::Const(normalize(v, &node.ty)),
            },
            NodeKind::Len(x) => Operand::Sql(self.len(x)),
            NodeKind::Lower(x) => Operand::Sql(self.case_map(x, true)),
            NodeKind::Upper(x) => Operand::Sql(self.case_map(x, false)),
            NodeKind::List(items) => Operand::Sql(Expr::Tuple(
                items
                    .iter()
                    .map(|item| self.bind(self.operand(item)))
                    .collect(),
            )),
            _ => Operand::Sql(self.strictly(|| self.predicate_sql(node))),
        }
    }

    /// Compile with NULL comparisons made FALSE (under `!`, or as a value).
    fn strictly(&self, f: impl FnOnce() -> Expr) -> Expr {
        self.strict.set(self.strict.get() + 1);
        let e = f();
        self.strict.set(self.strict.get() - 1);
        e
    }

    fn bind(&self, operand: Operand) -> Expr {
        match operand {
            Operand::Const(v) => {
                let param = Expr::Value(value_to_sea(&v, self.dialect));
                match pg_type(&v) {
                    // PostgreSQL infers a parameter's type from its context, which fails
                    // or guesses wrong in spots like `$1 IN ($2, col)`; state it.
                    Some(ty) if self.pg() => self.raw(&format!("CAST(? AS {ty})"), vec![param]),
                    _ => param,
                }
            }
            Operand::Sql(e) => e,
        }
    }

    /// On PostgreSQL, an Int operand compared with a Float is made a float, since
    /// neither the server nor the driver mixes the two implicitly.
    fn numeric(&self, operand: Operand, ty: &Type, to_float: bool) -> Operand {
        if !(self.pg() && to_float && *ty == Type::Int) {
            return operand;
        }
        match operand {
            #[allow(clippy::cast_precision_loss)]
            Operand::Const(Value::Int(i)) => Operand::Const(Value::Float(i as f64)),
            Operand::Sql(e) => Operand::Sql(self.raw("CAST(? AS DOUBLE PRECISION)", vec![e])),
            other => other,
        }
    }

    fn compare(&self, rel: Rel, a: &Node, b: &Node) -> Expr {
        let to_float = a.ty == Type::Float || b.ty == Type::Float;
        let lhs = self.numeric(self.operand(a), &a.ty, to_float);
        let rhs = self.numeric(self.operand(b), &b.ty, to_float);
        let ordering = !matches!(rel, Rel::Eq | Rel::Ne);
        let (lhs, rhs) = if self.pg() && ordering && a.ty.is_textual() {
            // Byte order, like SQLite's BINARY collation. Attach the collation to a
            // column side: a bare parameter has no type to collate yet.
            match (lhs, rhs) {
                (Operand::Sql(l), r) => (Operand::Sql(self.collate_c(l)), r),
                (l, Operand::Sql(r)) => (l, Operand::Sql(self.collate_c(r))),
                pair => pair,
            }
        } else {
            (lhs, rhs)
        };
        let op = match rel {
            Rel::Eq => "=",
            Rel::Ne => "<>",
            Rel::Lt => "<",
            Rel::Le => "<=",
            Rel::Gt => ">",
            Rel::Ge => ">=",
        };
        let template = if self.strict.get() > 0 {
            format!("COALESCE((?) {op} (?), FALSE)")
        } else {
            format!("(?) {op} (?)")
        };
        self.raw(&template, vec![self.bind(lhs), self.bind(rhs)])
    }

    fn collate_c(&self, e: Expr) -> Expr {
        self.raw("(?) COLLATE \"C\"", vec![e])
    }

    fn contains(&self, a: &Node, b: &Node) -> Expr {
        let haystack = self.bind(self.operand(a));
        let pattern = match self.operand(b) {
            Operand::Const(Value::Text(s)) => self.bind(Operand::Const(Value::Text(format!(
                "%{}%",
                escape_like(&s)
            )))),
            Operand::Const(other) => self.bind(Operand::Const(other)),
            Operand::Sql(e) => self.raw(
                "(? || REPLACE(REPLACE(REPLACE(?, ?, ?), ?, ?), ?, ?) || ?)",
                vec![
                    constant("%"),
                    e,
                    constant("\\"),
                    constant("\\\\"),
                    constant("%"),
                    constant("\\%"),
                    constant("_"),
                    constant("\\_"),
                    constant("%"),
                ],
            ),
        };
        let like = if self.pg() { "ILIKE" } else { "LIKE" };
        let template = format!("COALESCE((?) {like} (?) ESCAPE ?, FALSE)");
        self.raw(&template, vec![haystack, pattern, constant("\\")])
    }

    fn membership(&self, x: &Node, list: &Node) -> Expr {
        let needle = self.operand(x);
        let candidates: Vec<(Operand, Type)> = match &list.kind {
            NodeKind::List(items) => {
                let source = self.source();
                items
                    .iter()
                    .filter_map(|item| match eval::value(item, &source) {
                        Some(Value::Null) => None,
                        Some(v) => Some((Operand::Const(v), item.ty.clone())),
                        None => Some((self.operand(item), item.ty.clone())),
                    })
                    .collect()
            }
            _ => match self.operand(list) {
                Operand::Const(Value::List(values)) => {
                    let elem = match &list.ty {
                        Type::List(elem) => (**elem).clone(),
                        other => other.clone(),
                    };
                    values
                        .into_iter()
                        .filter(|v| !v.is_null())
                        .map(|v| (Operand::Const(v), elem.clone()))
                        .collect()
                }
                Operand::Const(Value::Json(serde_json::Value::Array(items))) => {
                    json_candidates(&items, &x.ty)
                        .into_iter()
                        .map(|v| {
                            let ty = value_type(&v);
                            (Operand::Const(v), ty)
                        })
                        .collect()
                }
                Operand::Const(_) => Vec::new(),
                Operand::Sql(array) => return self.json_membership(needle, &x.ty, array),
            },
        };
        if candidates.is_empty() {
            return boolean(false);
        }
        let to_float = x.ty == Type::Float || candidates.iter().any(|(_, ty)| *ty == Type::Float);
        let needle = self.bind(self.numeric(needle, &x.ty, to_float));
        let items: Vec<Expr> = candidates
            .into_iter()
            .map(|(operand, ty)| self.bind(self.numeric(operand, &ty, to_float)))
            .collect();
        let in_list = needle.is_in(items);
        self.raw("COALESCE(?, FALSE)", vec![in_list])
    }

    /// `needle in <JSON array column>`: top-level elements of the matching JSON type.
    fn json_membership(&self, needle: Operand, ty: &Type, array: Expr) -> Expr {
        match self.dialect {
            Dialect::Sqlite => {
                let types = match ty {
                    t if t.is_textual() => "'text'",
                    Type::Uuid | Type::Datetime | Type::Date => "'text'",
                    Type::Int | Type::Float => "'integer', 'real'",
                    Type::Bool => "'true', 'false'",
                    _ => return boolean(false),
                };
                let template = format!(
                    "EXISTS (SELECT 1 FROM json_each(?) AS keel_je WHERE json_type(?) = 'array' \
                     AND keel_je.type IN ({types}) AND keel_je.atom = (?))"
                );
                let needle = self.bind(needle);
                self.raw(&template, vec![array.clone(), array, needle])
            }
            Dialect::Postgres => match needle {
                Operand::Const(v) => {
                    let probe = Value::Json(serde_json::Value::Array(vec![to_json(&v)]));
                    let probe = self.bind(Operand::Const(probe));
                    self.raw("COALESCE((?) @> (?), FALSE)", vec![array, probe])
                }
                Operand::Sql(e) => {
                    // Datetimes sit in JSON in their canonical text form.
                    let element = if *ty == Type::Datetime {
                        self.raw(
                            "to_char((?) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                            vec![e.clone()],
                        )
                    } else {
                        e.clone()
                    };
                    self.raw(
                        "((?) IS NOT NULL AND COALESCE((?) @> jsonb_build_array(?), FALSE))",
                        vec![e, array, element],
                    )
                }
            },
        }
    }

    fn len(&self, x: &Node) -> Expr {
        let arg = self.bind(self.operand(x));
        match (self.dialect, x.ty.is_textual()) {
            (Dialect::Sqlite, true) => self.raw("length(?)", vec![arg]),
            (Dialect::Sqlite, false) => self.raw("json_array_length(?)", vec![arg]),
            (Dialect::Postgres, true) => self.raw("CAST(char_length(?) AS BIGINT)", vec![arg]),
            // jsonb_array_length fails on non-arrays; SQLite's json_array_length gives 0.
            (Dialect::Postgres, false) => self.raw(
                "(CASE WHEN (?) IS NULL THEN NULL WHEN jsonb_typeof(?) = 'array' \
                 THEN CAST(jsonb_array_length(?) AS BIGINT) ELSE 0 END)",
                vec![arg.clone(), arg.clone(), arg],
            ),
        }
    }

    fn case_map(&self, x: &Node, lower: bool) -> Expr {
        const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
        let arg = self.bind(self.operand(x));
        match (self.dialect, lower) {
            (Dialect::Sqlite, true) => self.raw("lower(?)", vec![arg]),
            (Dialect::Sqlite, false) => self.raw("upper(?)", vec![arg]),
            (Dialect::Postgres, true) => self.raw(
                "translate(?, ?, ?)",
                vec![arg, constant(UPPER), constant(LOWER)],
            ),
            (Dialect::Postgres, false) => self.raw(
                "translate(?, ?, ?)",
                vec![arg, constant(LOWER), constant(UPPER)],
            ),
        }
    }

    /// A custom SQL fragment; each `?` in `template` is replaced by the next of `args`
    /// (numbered `$n` on PostgreSQL, as sea-query expects there). Templates contain no
    /// other `?`, no `[` and no `--`, which sea-query's tokenizer would misread.
    fn raw(&self, template: &str, args: Vec<Expr>) -> Expr {
        let template = match self.dialect {
            Dialect::Sqlite => template.to_string(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(template.len() + 8);
                let mut n = 0;
                for ch in template.chars() {
                    if ch == '?' {
                        n += 1;
                        let _ = write!(out, "${n}");
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
        };
        Expr::cust_with_exprs(template, args)
    }
}

/// `TRUE` / `FALSE` (SQLite 3.23+ and PostgreSQL both have the keywords).
fn boolean(b: bool) -> Expr {
    Expr::cust(if b { "TRUE" } else { "FALSE" })
}

/// A string written inline in the SQL, escaped by the query builder.
fn constant(s: &str) -> Expr {
    Expr::Constant(sea_query::Value::String(Some(s.to_string())))
}

/// The PostgreSQL type a value is bound as (see [`value_to_sea`]).
fn pg_type(v: &Value) -> Option<&'static str> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => "BOOLEAN",
        Value::Int(_) => "BIGINT",
        Value::Float(_) => "DOUBLE PRECISION",
        Value::Text(_) => "TEXT",
        Value::Datetime(_) => "TIMESTAMPTZ",
        Value::Date(_) => "DATE",
        Value::Uuid(_) => "UUID",
        Value::Json(_) | Value::List(_) => "JSONB",
    })
}

/// Escapes LIKE metacharacters for `ESCAPE '\'`.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for ch in s.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The static type a folded value stands for, for numeric unification.
fn value_type(v: &Value) -> Type {
    match v {
        Value::Float(_) => Type::Float,
        Value::Int(_) => Type::Int,
        _ => Type::Null,
    }
}

/// Joins predicates with AND/OR as a balanced tree (depth log2 n).
fn balanced(mut parts: Vec<Expr>, is_and: bool) -> Expr {
    match parts.len() {
        0 => boolean(is_and),
        1 => parts.remove(0),
        n => {
            let right = parts.split_off(n / 2);
            let left = balanced(parts, is_and);
            let right = balanced(right, is_and);
            if is_and {
                left.and(right)
            } else {
                left.or(right)
            }
        }
    }
}

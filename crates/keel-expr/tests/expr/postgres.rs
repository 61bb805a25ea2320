//! The equivalence property of [`crate::equivalence`] against a real PostgreSQL: for
//! random well-typed expressions and random rows, the predicate compiled for
//! [`Dialect::Postgres`] selects exactly the rows the in-memory evaluator accepts.
//!
//! The server is `KEEL_TEST_POSTGRES` (default [`DEFAULT_URL`]). It must be reachable:
//! the test fails, never skips, without it. Each run works in a schema of its own
//! (`keel_expr_<uuid>`), created with the store's column types and dropped at the end,
//! also when the test fails.

use crate::common::{Caller, Row, TableScope, USERS};
use crate::generate::{accepted, caller, checked, config, expression, numbered, row};
use keel_expr::{CmpOp, Dialect, Expr, ExprKind, Literal, to_sql, value_to_sea};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner, contextualize_config};
use sea_query::{Alias, Order, PostgresQueryBuilder, Query};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// The server the test uses unless `KEEL_TEST_POSTGRES` names another.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `t` and `users` with the column types the store creates on PostgreSQL
/// (`keel-store`'s migrations): text in byte order (`COLLATE "C"`), native types for
/// everything else.
const SCHEMA: &str = r#"
    CREATE TABLE t (
        id bigint PRIMARY KEY,
        title text COLLATE "C",
        views bigint,
        score double precision,
        published boolean,
        created_at timestamptz,
        day date,
        author uuid,
        visibility text COLLATE "C",
        tags jsonb
    );
    CREATE TABLE users (id uuid PRIMARY KEY, name text COLLATE "C");
"#;

/// A connection working in a schema of its own; dropping it drops the schema.
struct Database {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    schema: String,
}

impl Database {
    /// Connects, creates the schema, makes it the search path and fills `users`.
    /// Panics with a clear message when the server is unreachable.
    fn open() -> Self {
        let url = std::env::var("KEEL_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
            .unwrap_or_else(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                panic!(
                    "PostgreSQL is not reachable at {url}: {e}{cause}\n\
                     This test needs a server: start one, or set KEEL_TEST_POSTGRES to its URL."
                )
            });
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("PostgreSQL connection: {e}");
            }
        });
        // The guard exists before the schema does, so a failure below still cleans up.
        let db = Self {
            runtime,
            client,
            schema: format!("keel_expr_{}", uuid::Uuid::now_v7().simple()),
        };
        let setup = format!(
            "CREATE SCHEMA \"{s}\"; SET search_path TO \"{s}\"; {SCHEMA}",
            s = db.schema
        );
        db.runtime
            .block_on(db.client.batch_execute(&setup))
            .unwrap_or_else(|e| panic!("creating schema {}: {e}", db.schema));
        for (id, name) in USERS {
            db.runtime
                .block_on(
                    db.client
                        .execute("INSERT INTO users (id, name) VALUES ($1, $2)", &[id, name]),
                )
                .unwrap_or_else(|e| panic!("inserting user {id}: {e}"));
        }
        db
    }

    /// Replaces the rows of `t` and selects the ids `pred` matches, in order; the
    /// error is the server's message.
    fn select(&self, rows: &[Row], pred: sea_query::Expr) -> (String, Result<Vec<i64>, String>) {
        let (sql, values) = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("t"))
            .and_where(pred)
            .order_by(Alias::new("id"), Order::Asc)
            .build(PostgresQueryBuilder);
        let params: Vec<Param> = values.into_iter().map(Param::from).collect();
        let result = self.runtime.block_on(async {
            self.client.execute("DELETE FROM t", &[]).await?;
            if !rows.is_empty() {
                let (insert, values) = insert(rows);
                self.client.execute(&insert, &refs(&values)).await?;
            }
            let found = self.client.query(&sql, &refs(&params)).await?;
            found
                .iter()
                .map(|r| r.try_get::<_, i64>(0))
                .collect::<Result<Vec<i64>, tokio_postgres::Error>>()
        });
        (sql, result.map_err(|e| describe(&e)))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        if let Err(e) = self.runtime.block_on(self.client.batch_execute(&drop)) {
            eprintln!("could not drop schema {}: {e}", self.schema);
        }
    }
}

/// The server's own words where there are some.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// One multi-row `INSERT` of `rows` into `t`, the values bound as the store binds them.
fn insert(rows: &[Row]) -> (String, Vec<Param>) {
    let mut tuples = Vec::with_capacity(rows.len());
    let mut values = Vec::new();
    for row in rows {
        let mut placeholders = Vec::new();
        for (_, v) in row.columns() {
            values.push(Param::from(value_to_sea(&v, Dialect::Postgres)));
            placeholders.push(format!("${}", values.len()));
        }
        tuples.push(format!("({})", placeholders.join(", ")));
    }
    let columns: Vec<&str> = Row::default()
        .columns()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let sql = format!(
        "INSERT INTO t ({}) VALUES {}",
        columns.join(", "),
        tuples.join(", ")
    );
    (sql, values)
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Our own sea-query → tokio-postgres parameter conversion (the store has its own, more
/// lenient one). Each value is bound as the Rust type of the `CAST($n AS …)` the
/// compiler wraps it in, so a cast and a value that disagree fail the test.
#[derive(Debug)]
enum Param {
    Bool(bool),
    BigInt(i64),
    Double(f64),
    Text(String),
    Datetime(time::OffsetDateTime),
    Date(time::Date),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
    /// [`value_to_sea`]'s untyped NULL: fits any parameter type.
    Null,
}

impl From<sea_query::Value> for Param {
    fn from(v: sea_query::Value) -> Self {
        use sea_query::Value as S;
        match v {
            S::Bool(Some(b)) => Param::Bool(b),
            S::BigInt(Some(i)) => Param::BigInt(i),
            S::Double(Some(f)) => Param::Double(f),
            S::String(Some(s)) => Param::Text(s),
            S::TimeDateTimeWithTimeZone(Some(t)) => Param::Datetime(t),
            S::TimeDate(Some(d)) => Param::Date(d),
            S::Uuid(Some(u)) => Param::Uuid(u),
            S::Json(Some(j)) => Param::Json(*j),
            S::String(None) => Param::Null,
            other => panic!(
                "PostgreSQL values are bound as bool, bigint, double precision, text, timestamptz, date, uuid, jsonb or NULL, got {other:?}"
            ),
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Each typed value checks the parameter type itself.
        match self {
            Param::Bool(b) => b.to_sql_checked(ty, out),
            Param::BigInt(i) => i.to_sql_checked(ty, out),
            Param::Double(f) => f.to_sql_checked(ty, out),
            Param::Text(s) => s.to_sql_checked(ty, out),
            Param::Datetime(t) => t.to_sql_checked(ty, out),
            Param::Date(d) => d.to_sql_checked(ty, out),
            Param::Uuid(u) => u.to_sql_checked(ty, out),
            Param::Json(j) => j.to_sql_checked(ty, out),
            Param::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

// ---------- the one known gap ----------

// PostgreSQL compares an Int with a Float as `double precision` (the compiler casts the
// Int side, see `sql.rs`), so an Int beyond ±2^53 is rounded first, where the evaluator
// (and SQLite) compare exactly. This documented gap is all the PostgreSQL run leaves
// out: the same Ints in every other comparison (with Ints, JSON membership) are still
// generated and checked.

/// Every integer of at most this magnitude is exact as a double.
const EXACT_IN_F64: u64 = 1 << 53;

/// A numeric operand as far as the gap is concerned.
#[derive(Debug, Clone, Copy)]
struct Num {
    float: bool,
    /// May hold an Int beyond 2^53.
    beyond: bool,
    /// Known when the query is built (then the evaluator itself folds the comparison).
    constant: bool,
}

fn num(e: &Expr, big_views: bool) -> Option<Num> {
    let (float, beyond, constant) = match &e.kind {
        ExprKind::Literal(Literal::Int(i)) => (false, i.unsigned_abs() > EXACT_IN_F64, true),
        ExprKind::Literal(Literal::Float(_)) => (true, false, true),
        ExprKind::Path(p) if p == &["views"] => (false, big_views, false),
        ExprKind::Path(p) if p == &["score"] => (true, false, false),
        // Lengths of the generated values are tiny.
        ExprKind::Call { name, .. } if name == "len" => (false, false, false),
        _ => return None,
    };
    Some(Num {
        float,
        beyond,
        constant,
    })
}

/// Whether `e` compares an Int beyond 2^53 with a Float in SQL; `big_views` says
/// whether the `views` column may hold such an Int.
fn meets_gap(e: &Expr, big_views: bool) -> bool {
    match &e.kind {
        ExprKind::Not(x) => meets_gap(x, big_views),
        ExprKind::And(items) | ExprKind::Or(items) | ExprKind::List(items) => {
            items.iter().any(|x| meets_gap(x, big_views))
        }
        ExprKind::Call { args, .. } => args.iter().any(|x| meets_gap(x, big_views)),
        ExprKind::Compare { op, lhs, rhs } => {
            let operands: Vec<&Expr> = match (op, &rhs.kind) {
                (CmpOp::In, ExprKind::List(items)) => {
                    std::iter::once(&**lhs).chain(items).collect()
                }
                // Membership in a JSON column compares jsonb numbers, exactly; in a bound
                // list (`auth.roles`), in memory.
                (CmpOp::In | CmpOp::Contains, _) => Vec::new(),
                _ => vec![lhs, rhs],
            };
            let nums: Vec<Num> = operands.iter().filter_map(|x| num(x, big_views)).collect();
            let here = nums.iter().any(|n| n.float)
                && nums.iter().any(|n| !n.float && n.beyond)
                && !nums.iter().all(|n| n.constant);
            here || meets_gap(lhs, big_views) || meets_gap(rhs, big_views)
        }
        ExprKind::Literal(_) | ExprKind::Path(_) => false,
    }
}

fn beyond_f64(row: &Row) -> bool {
    row.views.is_some_and(|v| v.unsigned_abs() > EXACT_IN_F64)
}

/// The generators of the SQLite run, less the gap: a case whose Int literal beyond 2^53
/// meets a Float is dropped; when `views` meets a Float, the rows whose `views` is
/// beyond 2^53 are.
fn case() -> impl Strategy<Value = (String, Vec<Row>, Caller)> {
    (
        expression(),
        proptest::collection::vec(row(), 0..10),
        caller(),
    )
        .prop_filter_map(
            "an Int beyond 2^53 compared with a Float (double precision on PostgreSQL)",
            |(src, rows, caller)| {
                // A source that does not parse is passed on, for the test to fail.
                let Ok(expr) = keel_expr::parse(&src) else {
                    return Some((src, rows, caller));
                };
                if meets_gap(&expr, false) {
                    return None;
                }
                let rows = if meets_gap(&expr, true) {
                    rows.into_iter().filter(|r| !beyond_f64(r)).collect()
                } else {
                    rows
                };
                Some((src, rows, caller))
            },
        )
}

#[test]
fn postgres_selects_exactly_what_eval_accepts() {
    let db = Database::open();
    let mut config = contextualize_config(config());
    config.test_name = Some(concat!(
        module_path!(),
        "::postgres_selects_exactly_what_eval_accepts"
    ));
    config.source_file = Some(file!());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |(src, rows, caller)| {
        let rows = numbered(rows);
        let typed = checked(&src)?;
        let expected = accepted(&typed, &rows, &caller);

        let scope = TableScope { caller: &caller };
        let (sql, got) = db.select(&rows, to_sql(&typed, &scope, Dialect::Postgres));
        let got = got.map_err(|e| TestCaseError::fail(format!("{src}\n{sql}\n{e}")))?;
        prop_assert_eq!(&got, &expected, "\n{}\n{}\n{:#?}", src, sql, rows);
        Ok(())
    });
    drop(db);
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

#[test]
fn the_gap_is_recognized() {
    let gap =
        |src: &str, big_views: bool| meets_gap(&keel_expr::parse(src).expect("parses"), big_views);
    assert!(gap("score < 9007199254740993", false));
    assert!(gap("!(true && views > 9007199254740992.0)", true));
    assert!(gap("9223372036854775807 in [score, 1]", false));
    assert!(gap("published == (score == views)", true));
    // Folded by the evaluator, or exact on PostgreSQL too.
    assert!(!gap("9007199254740993 > 9007199254740992.0", false));
    assert!(!gap("views > 9007199254740992.0", false));
    assert!(!gap("views == 9223372036854775807", true));
    assert!(!gap("score < 9007199254740992", false));
    assert!(!gap("views in tags", true));
    assert!(!gap("len(title) < 1.5", true));
}

//! The central property: for random well-typed expressions and random rows (see
//! [`crate::generate`]), SQLite selects exactly the rows the in-memory evaluator accepts.
//! [`crate::postgres`] holds PostgreSQL to the same property.

use crate::common::{NOW, Row, TableScope, U2, USERS};
use crate::generate::{accepted, caller, checked, expression, numbered, row};
use keel_expr::{Dialect, Value, to_sql, value_to_sea};
use proptest::prelude::*;
use rusqlite::types::Value as Sql;
use sea_query::{Alias, Order, PostgresQueryBuilder, Query, SqliteQueryBuilder};
use time::macros::{date, datetime};

// ---------- SQLite ----------

/// Our own sea-query → rusqlite parameter conversion (the store has its own).
fn to_rusqlite(v: sea_query::Value) -> Sql {
    use sea_query::Value as S;
    match v {
        S::BigInt(Some(i)) => Sql::Integer(i),
        S::Double(Some(f)) => Sql::Real(f),
        S::String(Some(s)) => Sql::Text(s),
        S::BigInt(None) | S::Double(None) | S::String(None) => Sql::Null,
        other => panic!("SQLite values are bound as integer, real or text, got {other:?}"),
    }
}

fn database(rows: &[Row]) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
    db.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT, views INTEGER, score REAL,
                         published INTEGER, created_at TEXT, day TEXT, author TEXT,
                         visibility TEXT, tags TEXT);
         CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT);",
    )
    .expect("schema");
    for (id, name) in USERS {
        db.execute(
            "INSERT INTO users (id, name) VALUES (?1, ?2)",
            rusqlite::params![id.to_string(), name],
        )
        .expect("insert user");
    }
    for row in rows {
        let params: Vec<Sql> = row
            .columns()
            .into_iter()
            .map(|(_, v)| to_rusqlite(value_to_sea(&v, Dialect::Sqlite)))
            .collect();
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params_from_iter(params),
        )
        .expect("insert row");
    }
    db
}

fn select(db: &rusqlite::Connection, pred: sea_query::Expr) -> (String, Result<Vec<i64>, String>) {
    let (sql, values) = Query::select()
        .column(Alias::new("id"))
        .from(Alias::new("t"))
        .and_where(pred)
        .order_by(Alias::new("id"), Order::Asc)
        .build(SqliteQueryBuilder);
    let params: Vec<Sql> = values.into_iter().map(to_rusqlite).collect();
    let result = db
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<i64>, _>>()
        })
        .map_err(|e| e.to_string());
    (sql, result)
}

proptest! {
    #![proptest_config(crate::generate::config())]

    #[test]
    fn sqlite_selects_exactly_what_eval_accepts(
        src in expression(),
        rows in proptest::collection::vec(row(), 0..10),
        caller in caller(),
    ) {
        let rows = numbered(rows);
        let typed = checked(&src)?;
        let expected = accepted(&typed, &rows, &caller);

        let db = database(&rows);
        let scope = TableScope { caller: &caller };
        let (sql, got) = select(&db, to_sql(&typed, &scope, Dialect::Sqlite));
        let got = got.map_err(|e| TestCaseError::fail(format!("{src}\n{sql}\n{e}")))?;
        prop_assert_eq!(&got, &expected, "\n{}\n{}\n{:#?}", src, sql, rows);

        // The PostgreSQL rendering must at least build.
        let (pg, _) = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("t"))
            .and_where(to_sql(&typed, &scope, Dialect::Postgres))
            .build(PostgresQueryBuilder);
        prop_assert!(pg.starts_with("SELECT"));
    }
}

#[test]
fn stored_encoding_for_sqlite() {
    let t = datetime!(2024-02-29 23:00:00.1234567 -02:00);
    assert_eq!(
        value_to_sea(&Value::Datetime(t), Dialect::Sqlite),
        sea_query::Value::String(Some("2024-03-01T01:00:00.123456Z".into()))
    );
    assert_eq!(
        value_to_sea(&Value::Bool(true), Dialect::Sqlite),
        sea_query::Value::BigInt(Some(1))
    );
    assert_eq!(
        value_to_sea(&Value::Uuid(U2), Dialect::Sqlite),
        sea_query::Value::String(Some("00000000-0000-4000-8000-0000000000b2".into()))
    );
    assert_eq!(
        value_to_sea(&Value::Date(date!(2024 - 02 - 29)), Dialect::Sqlite),
        sea_query::Value::String(Some("2024-02-29".into()))
    );
    assert_eq!(
        value_to_sea(&Value::Json(serde_json::json!({"a": [1]})), Dialect::Sqlite),
        sea_query::Value::String(Some(r#"{"a":[1]}"#.into()))
    );
    assert_eq!(
        value_to_sea(&Value::Datetime(NOW), Dialect::Postgres),
        sea_query::Value::TimeDateTimeWithTimeZone(Some(NOW))
    );
    assert_eq!(
        value_to_sea(&Value::Bool(false), Dialect::Postgres),
        sea_query::Value::Bool(Some(false))
    );
}

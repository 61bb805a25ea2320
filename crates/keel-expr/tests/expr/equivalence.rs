//! The central property: for random well-typed expressions and random rows (NULLs,
//! `%`, `_` and `\` in text, odd JSON), SQLite selects exactly the rows the in-memory
//! evaluator accepts.

use crate::common::{Caller, NOW, Row, RowEnv, TableScope, U1, U2, U3, USERS};
use keel_expr::{Dialect, Value, eval, to_sql, value_to_sea};
use proptest::prelude::*;
use rusqlite::types::Value as Sql;
use sea_query::{Alias, Order, PostgresQueryBuilder, Query, SqliteQueryBuilder};
use time::OffsetDateTime;
use time::macros::{date, datetime};

// ---------- expressions ----------

/// A string literal in source form, quoted and escaped.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Short text over an alphabet full of LIKE metacharacters and case pairs.
fn text() -> impl Strategy<Value = String> {
    "[aAbB%_\\\\ ]{0,3}"
}

fn one_of(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(str::to_string)
}

/// Text operands, including the enum `visibility` (which literals must not meet).
fn text_operand() -> BoxedStrategy<String> {
    prop_oneof![1 => Just("visibility".to_string()), 5 => plain_text_operand()].boxed()
}

fn plain_text_operand() -> BoxedStrategy<String> {
    prop_oneof![
        one_of(&["title", "author.name", "lower(title)", "upper(author.name)"]),
        text().prop_map(|s| quote(&s)),
    ]
    .boxed()
}

fn num_operand() -> BoxedStrategy<String> {
    one_of(&[
        "views",
        "score",
        "len(title)",
        "len(tags)",
        "len(author.name)",
        "0",
        "1",
        "-1",
        "2",
        "3",
        "1.5",
        "2.0",
        "-0.5",
        "9007199254740992.0",
        "9007199254740993",
        "9223372036854775807",
    ])
    .boxed()
}

fn datetime_operand() -> BoxedStrategy<String> {
    one_of(&[
        "created_at",
        "now()",
        "\"2024-01-01T00:00:00Z\"",
        "\"2024-01-01T00:00:00.000001Z\"",
        "\"2024-01-01T01:00:00+01:00\"",
        "\"2024-06-01T12:30:00.5Z\"",
        "\"2023-12-31T23:59:59.999999Z\"",
    ])
    .boxed()
}

fn uuid_operand() -> BoxedStrategy<String> {
    one_of(&[
        "author",
        "auth.id",
        "\"00000000-0000-4000-8000-0000000000a1\"",
        "\"00000000-0000-4000-8000-0000000000B2\"",
    ])
    .boxed()
}

fn eq_op() -> BoxedStrategy<String> {
    one_of(&["==", "!="]).boxed()
}

fn ord_op() -> BoxedStrategy<String> {
    one_of(&["==", "!=", "<", "<=", ">", ">="]).boxed()
}

fn leaf() -> BoxedStrategy<String> {
    let cmp = |a: BoxedStrategy<String>, op: BoxedStrategy<String>, b: BoxedStrategy<String>| {
        (a, op, b).prop_map(|(a, op, b)| format!("{a} {op} {b}"))
    };
    let text_cmp = (text_operand(), ord_op(), text_operand()).prop_filter_map(
        "enums are not ordered",
        |(a, op, b)| {
            let ordering = !matches!(op.as_str(), "==" | "!=");
            let enum_side = a == "visibility" || b == "visibility";
            let literal_vs_enum = enum_side && (a.starts_with('"') || b.starts_with('"'));
            if (ordering && enum_side) || literal_vs_enum {
                None
            } else {
                Some(format!("{a} {op} {b}"))
            }
        },
    );
    let list = |item: BoxedStrategy<String>| {
        proptest::collection::vec(item, 0..4).prop_map(|items| format!("[{}]", items.join(", ")))
    };
    prop_oneof![
        text_cmp,
        (text_operand(), text_operand()).prop_map(|(a, b)| format!("{a} ~ {b}")),
        cmp(num_operand(), ord_op(), num_operand()),
        cmp(datetime_operand(), ord_op(), datetime_operand()),
        cmp(uuid_operand(), eq_op(), uuid_operand()),
        (
            one_of(&["==", "!="]),
            one_of(&["\"public\"", "\"followers\""])
        )
            .prop_map(|(op, v)| format!("visibility {op} {v}")),
        one_of(&[
            "visibility in [\"public\"]",
            "visibility in [\"public\", \"followers\"]",
            "\"followers\" in [visibility]",
            "day == \"2024-02-29\"",
            "day < \"2024-03-01\"",
            "day >= \"2024-02-29\"",
            "published",
            "published == true",
            "published != false",
            "published == (views > 1)",
            "has_role(\"admin\")",
            "has_role(\"nobody\")",
            "true",
            "false",
            "len([title, author.name]) == 2",
            "\"admin\" in auth.roles",
            "title in auth.roles",
            "views == 9007199254740992.0",
            "views > 9007199254740992.0",
            "score < 9007199254740993",
            "score == views",
        ]),
        (
            one_of(&[
                "title",
                "views",
                "score",
                "published",
                "created_at",
                "day",
                "author",
                "visibility",
                "tags",
                "auth.id",
                "author.name",
                "lower(title)",
                "len(tags)",
                "[title]",
            ]),
            eq_op()
        )
            .prop_map(|(path, op)| format!("{path} {op} null")),
        (
            plain_text_operand(),
            list(prop_oneof![plain_text_operand(), Just("null".to_string())].boxed())
        )
            .prop_map(|(x, items)| format!("{x} in {items}")),
        (num_operand(), list(num_operand())).prop_map(|(x, items)| format!("{x} in {items}")),
        (uuid_operand(), list(uuid_operand())).prop_map(|(x, items)| format!("{x} in {items}")),
        (
            prop_oneof![
                text_operand(),
                num_operand(),
                uuid_operand(),
                datetime_operand(),
                one_of(&["published", "true", "day", "\"2024-02-29\""]),
            ],
            Just("tags".to_string())
        )
            .prop_filter("no enum literal checks", |(x, _)| x != "visibility")
            .prop_map(|(x, list)| format!("{x} in {list}")),
    ]
    .boxed()
}

fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("!({e})")),
            proptest::collection::vec(inner.clone(), 2..4)
                .prop_map(|items| format!("({})", items.join(" && "))),
            proptest::collection::vec(inner, 2..4)
                .prop_map(|items| format!("({})", items.join(" || "))),
        ]
    })
}

// ---------- rows ----------

fn instant() -> impl Strategy<Value = OffsetDateTime> {
    proptest::sample::select(
        &[
            datetime!(2024-01-01 00:00:00 UTC),
            datetime!(2024-01-01 00:00:00.000001 UTC),
            datetime!(2024-06-01 12:30:00.5 UTC),
            datetime!(2023-12-31 23:59:59.999999 UTC),
            datetime!(2024-02-29 23:00:00 -02:00),
            datetime!(2024-03-01 00:00:00 UTC),
        ][..],
    )
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    let element = proptest::sample::select(vec![
        json!("a"),
        json!("A"),
        json!("b"),
        json!("%_"),
        json!(""),
        json!(1),
        json!(2.0),
        json!(1.5),
        json!(-1),
        json!(true),
        json!(false),
        json!(null),
        json!(["a"]),
        json!({"a": 1}),
        json!("00000000-0000-4000-8000-0000000000a1"),
        json!("00000000-0000-4000-8000-0000000000B2"),
        json!("2024-01-01T00:00:00.000000Z"),
        json!("2024-01-01T00:00:00Z"),
        json!("2024-02-29"),
    ]);
    prop_oneof![
        4 => proptest::collection::vec(element, 0..4).prop_map(serde_json::Value::Array),
        1 => proptest::sample::select(vec![json!("a"), json!({"a": "a"}), json!(3), json!(null)]),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.8, text()),
        proptest::option::weighted(
            0.8,
            proptest::sample::select(&[-1_i64, 0, 1, 2, 3, 9_007_199_254_740_993, i64::MAX][..]),
        ),
        proptest::option::weighted(
            0.8,
            proptest::sample::select(&[-0.5_f64, 0.0, 1.0, 1.5, 2.0, 9_007_199_254_740_992.0][..]),
        ),
        proptest::option::of(any::<bool>()),
        proptest::option::weighted(0.8, instant()),
        proptest::option::of(proptest::sample::select(
            &[
                date!(2024 - 02 - 28),
                date!(2024 - 02 - 29),
                date!(2024 - 03 - 01),
            ][..],
        )),
        proptest::option::weighted(0.8, proptest::sample::select(&[U1, U2, U3][..])),
        proptest::option::weighted(
            0.8,
            proptest::sample::select(&["public", "followers"][..]).prop_map(str::to_string),
        ),
        proptest::option::weighted(0.8, json()),
    )
        .prop_map(
            |(title, views, score, published, created_at, day, author, visibility, tags)| Row {
                id: 0,
                title,
                views,
                score,
                published,
                created_at,
                day,
                author,
                visibility,
                tags,
            },
        )
}

fn caller() -> impl Strategy<Value = Caller> {
    (
        proptest::option::of(proptest::sample::select(&[U1, U2][..])),
        proptest::sample::subsequence(&["admin", "editor"][..], 0..=2),
    )
        .prop_map(|(auth_id, roles)| Caller {
            auth_id,
            roles: roles.into_iter().map(str::to_string).collect(),
        })
}

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
    // PROPTEST_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn sqlite_selects_exactly_what_eval_accepts(
        src in expression(),
        rows in proptest::collection::vec(row(), 0..10),
        caller in caller(),
    ) {
        let rows: Vec<Row> = rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| Row { id: i64::try_from(i).unwrap_or(0) + 1, ..r })
            .collect();
        let expr = keel_expr::parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let typed = keel_expr::check(&expr, &crate::common::TestScope)
            .map_err(|e| TestCaseError::fail(format!("{src}: {e:?}")))?;

        let expected: Vec<i64> = rows
            .iter()
            .filter(|row| eval(&typed, &RowEnv { row, caller: &caller }))
            .map(|row| row.id)
            .collect();

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

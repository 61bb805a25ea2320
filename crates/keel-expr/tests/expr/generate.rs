//! What the equivalence properties run on, shared by the SQLite and the PostgreSQL run:
//! random well-typed expressions, random rows (NULLs, `%`, `_` and `\` in text, odd
//! JSON) and random callers, plus the in-memory side of the comparison.

use crate::common::{Caller, Row, RowEnv, TestScope, U1, U2, U3};
use keel_expr::{Typed, eval};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use time::OffsetDateTime;
use time::macros::{date, datetime};

/// The runner configuration of both runs; `PROPTEST_CASES` raises the count for a
/// longer local run.
pub fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(512),
        ..Config::default()
    }
}

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

pub fn expression() -> impl Strategy<Value = String> {
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

pub fn row() -> impl Strategy<Value = Row> {
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

pub fn caller() -> impl Strategy<Value = Caller> {
    (
        proptest::option::of(proptest::sample::select(&[U1, U2][..])),
        proptest::sample::subsequence(&["admin", "editor"][..], 0..=2),
    )
        .prop_map(|(auth_id, roles)| Caller {
            auth_id,
            roles: roles.into_iter().map(str::to_string).collect(),
        })
}

// ---------- the in-memory side ----------

/// Gives the rows the ids 1, 2, … in order.
pub fn numbered(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter()
        .zip(1_i64..)
        .map(|(r, id)| Row { id, ..r })
        .collect()
}

/// Parses and checks a generated expression; the generators only make well-typed ones.
pub fn checked(src: &str) -> Result<Typed, TestCaseError> {
    let expr = keel_expr::parse(src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
    keel_expr::check(&expr, &TestScope).map_err(|e| TestCaseError::fail(format!("{src}: {e:?}")))
}

/// The ids of the rows the evaluator accepts, in order.
pub fn accepted(typed: &Typed, rows: &[Row], caller: &Caller) -> Vec<i64> {
    rows.iter()
        .filter(|row| eval(typed, &RowEnv { row, caller }))
        .map(|row| row.id)
        .collect()
}

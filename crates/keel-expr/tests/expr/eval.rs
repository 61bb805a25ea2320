//! In-memory evaluation: the semantics the SQL compiler must reproduce.

use crate::common::{Caller, NOW, Row, RowEnv, U1, U2, typed};
use keel_expr::{Env, Value, eval};
use time::macros::{date, datetime};

fn row() -> Row {
    Row {
        id: 1,
        title: Some("Rust 100%_done".into()),
        views: Some(10),
        score: Some(2.5),
        published: Some(true),
        created_at: Some(datetime!(2024-01-15 12:00:00.123456789 UTC)),
        day: Some(date!(2024 - 02 - 29)),
        author: Some(U1),
        visibility: Some("followers".into()),
        tags: Some(serde_json::json!(["a", "B", 3, true, ["x"]])),
    }
}

fn anonymous() -> Caller {
    Caller {
        auth_id: None,
        roles: vec![],
    }
}

fn run(src: &str, row: &Row, caller: &Caller) -> bool {
    eval(&typed(src), &RowEnv { row, caller })
}

#[test]
fn comparisons_with_null_are_false_except_null_tests() {
    let row = row();
    let anon = anonymous();
    assert!(!run("author == auth.id", &row, &anon));
    assert!(!run("author != auth.id", &row, &anon));
    assert!(run("!(author == auth.id)", &row, &anon));
    assert!(run("auth.id == null", &row, &anon));
    assert!(!run("auth.id != null", &row, &anon));
    let owner = Caller {
        auth_id: Some(U1),
        roles: vec![],
    };
    assert!(run("author == auth.id", &row, &owner));
    assert!(run("auth.id != null", &row, &owner));

    let empty = Row {
        id: 2,
        ..Row::default()
    };
    for src in [
        "title == 'x'",
        "title != 'x'",
        "views < 1",
        "views >= 1",
        "title ~ ''",
        "title in ['x']",
        "len(title) == 0",
        "lower(title) != 'x'",
        "published",
        "published == false",
        "'a' in tags",
    ] {
        assert!(!run(src, &empty, &anon), "`{src}` on NULLs");
    }
    assert!(run("!published", &empty, &anon), "NULL is not true");
    assert!(run("title == null && tags == null", &empty, &anon));
}

#[test]
fn numbers_compare_exactly_across_int_and_float() {
    let row = row();
    let anon = anonymous();
    assert!(run("views == 10.0", &row, &anon));
    assert!(run("views < 10.5 && views > 9.5", &row, &anon));
    assert!(run("score > 2 && score < 3", &row, &anon));
    assert!(run("views in [1, 10.0]", &row, &anon));
    let big = Row {
        views: Some((1 << 53) + 1),
        ..row.clone()
    };
    assert!(run("views > 9007199254740992.0", &big, &anon));
    assert!(run("views != 9007199254740992.0", &big, &anon));
}

#[test]
fn text_is_bytewise_and_contains_is_ascii_case_insensitive() {
    let row = row();
    let anon = anonymous();
    assert!(run("title < 'rust'", &row, &anon), "uppercase sorts first");
    assert!(run("title ~ 'RUST'", &row, &anon));
    assert!(run("title ~ '100%_'", &row, &anon));
    assert!(!run("title ~ '100__'", &row, &anon), "no wildcards");
    assert!(run("title ~ ''", &row, &anon));
    assert!(run("lower(title) == 'rust 100%_done'", &row, &anon));
    assert!(run("upper(title) == 'RUST 100%_DONE'", &row, &anon));
    assert!(run("len(title) == 14", &row, &anon));
    let accented = Row {
        title: Some("Émile".into()),
        ..row.clone()
    };
    assert!(
        run("lower(title) == 'Émile'", &accented, &anon),
        "ASCII only"
    );
    assert!(
        run("len(title) == 5", &accented, &anon),
        "characters, not bytes"
    );
}

#[test]
fn datetimes_dates_and_now() {
    let row = row();
    let anon = anonymous();
    assert!(run(
        "created_at > '2024-01-15T12:00:00.123455Z'",
        &row,
        &anon
    ));
    // Stored at microsecond precision: the nanoseconds are not there.
    assert!(run(
        "created_at == '2024-01-15T12:00:00.123456Z'",
        &row,
        &anon
    ));
    assert!(run(
        "created_at == '2024-01-15T13:00:00.123456+01:00'",
        &row,
        &anon
    ));
    assert!(run("created_at < now()", &row, &anon));
    assert!(run(
        "day == '2024-02-29' && day > '2024-02-28'",
        &row,
        &anon
    ));
    // Text from an env (say, an input body) is read as the path's type.
    struct TextDates;
    impl Env for TextDates {
        fn lookup(&self, path: &[String]) -> Value {
            match path[0].as_str() {
                "created_at" => Value::Text("2024-01-01T00:00:00Z".into()),
                "author" => Value::Text(U2.to_string().to_uppercase()),
                _ => Value::Null,
            }
        }
        fn has_role(&self, _: &str) -> bool {
            false
        }
        fn now(&self) -> time::OffsetDateTime {
            NOW
        }
    }
    let t = typed(
        "created_at == '2024-01-01T00:00:00.000Z' && author == '00000000-0000-4000-8000-0000000000b2'",
    );
    assert!(eval(&t, &TextDates));
}

#[test]
fn membership() {
    let row = row();
    let admin = Caller {
        auth_id: Some(U2),
        roles: vec!["admin".into(), "editor".into()],
    };
    assert!(run("visibility in ['public', 'followers']", &row, &admin));
    assert!(!run("visibility in ['public']", &row, &admin));
    assert!(!run("views in []", &row, &admin));
    assert!(run(
        "'editor' in auth.roles && has_role('admin')",
        &row,
        &admin
    ));
    assert!(!run("has_role('owner')", &row, &admin));
    // JSON arrays: top-level elements of the same JSON type.
    assert!(run("'a' in tags && 'B' in tags", &row, &admin));
    assert!(!run("'b' in tags", &row, &admin), "exact, not case-folded");
    assert!(
        !run("'x' in tags", &row, &admin),
        "nested arrays do not count"
    );
    assert!(run(
        "views in [10] && 3 in tags && 3.0 in tags",
        &row,
        &admin
    ));
    assert!(
        !run("'3' in tags", &row, &admin),
        "a string is not a number"
    );
    assert!(run("published in tags", &row, &admin));
    assert!(run("len(tags) == 5", &row, &admin));
    let object = Row {
        tags: Some(serde_json::json!({"a": "a"})),
        ..row.clone()
    };
    assert!(
        !run("'a' in tags", &object, &admin),
        "objects are not lists"
    );
    assert!(run("len(tags) == 0", &object, &admin));
}

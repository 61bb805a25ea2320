//! The SQL compiler's output for both dialects: shape, folding and binding.

use crate::common::{Caller, TableScope, U1, typed};
use keel_expr::{Dialect, Value, to_sql, value_to_sea};
use sea_query::{Alias, PostgresQueryBuilder, Query, SqliteQueryBuilder, Values};

fn anon() -> Caller {
    Caller {
        auth_id: None,
        roles: vec![],
    }
}

fn admin() -> Caller {
    Caller {
        auth_id: Some(U1),
        roles: vec!["admin".into()],
    }
}

/// The WHERE clause and the bound values.
fn sql(src: &str, caller: &Caller, dialect: Dialect) -> (String, Values) {
    let pred = to_sql(&typed(src), &TableScope { caller }, dialect);
    let mut q = Query::select();
    q.column(Alias::new("id"))
        .from(Alias::new("t"))
        .and_where(pred);
    let (sql, values) = match dialect {
        Dialect::Sqlite => q.build(SqliteQueryBuilder),
        Dialect::Postgres => q.build(PostgresQueryBuilder),
    };
    let clause = sql
        .strip_prefix(r#"SELECT "id" FROM "t" WHERE "#)
        .unwrap_or_else(|| panic!("unexpected SQL: {sql}"))
        .to_string();
    (clause, values)
}

fn lite(src: &str, caller: &Caller) -> (String, Values) {
    sql(src, caller, Dialect::Sqlite)
}

fn pg(src: &str, caller: &Caller) -> (String, Values) {
    sql(src, caller, Dialect::Postgres)
}

fn text(s: &str) -> sea_query::Value {
    sea_query::Value::String(Some(s.into()))
}

#[test]
fn comparisons_are_two_valued_and_values_are_bound() {
    // In a condition a bare comparison selects the same rows and an index can serve it.
    let (clause, values) = lite("views >= 3", &anon());
    assert_eq!(clause, r#"("t"."views") >= (?)"#);
    assert_eq!(values.0, vec![sea_query::Value::BigInt(Some(3))]);
    let (clause, _) = pg("views >= 3", &anon());
    assert_eq!(clause, r#"("t"."views") >= (CAST($1 AS BIGINT))"#);
    // Under `!` a NULL comparison must read FALSE, so it is wrapped.
    let (clause, _) = lite("!(views >= 3)", &anon());
    assert_eq!(clause, r#"NOT (COALESCE(("t"."views") >= (?), FALSE))"#);

    let (clause, _) = lite("published && !published", &anon());
    assert_eq!(
        clause,
        r#"(COALESCE("t"."published", FALSE)) AND (NOT (COALESCE("t"."published", FALSE)))"#
    );
    let (clause, _) = lite("tags == null || title != null", &anon());
    assert_eq!(clause, r#""t"."tags" IS NULL OR "t"."title" IS NOT NULL"#);
}

#[test]
fn known_values_fold() {
    // With no caller, `author == auth.id` is false and disappears from the OR.
    let src = r#"visibility == "public" || author == auth.id"#;
    let (clause, values) = lite(src, &anon());
    assert_eq!(clause, r#"("t"."visibility") = (?)"#);
    assert_eq!(values.0, vec![text("public")]);
    let (clause, values) = lite(src, &admin());
    assert_eq!(
        clause,
        r#"(("t"."visibility") = (?)) OR (("t"."author") = (?))"#
    );
    assert_eq!(values.0[1], text("00000000-0000-4000-8000-0000000000a1"));
    let (_, values) = pg(src, &admin());
    assert_eq!(values.0[1], sea_query::Value::Uuid(Some(U1)));

    assert_eq!(
        lite("has_role('admin') && tags != null", &anon()).0,
        "FALSE"
    );
    assert_eq!(
        lite("has_role('admin') && tags != null", &admin()).0,
        r#""t"."tags" IS NOT NULL"#
    );
    assert_eq!(lite("true", &anon()).0, "TRUE");
    assert_eq!(lite("auth.id == null", &anon()).0, "TRUE");
    assert_eq!(lite("!(author == auth.id)", &anon()).0, "TRUE");
    assert_eq!(lite("views in []", &anon()).0, "FALSE");
    assert_eq!(lite("views in [null]", &anon()).0, "FALSE");
    assert_eq!(lite("'admin' in auth.roles", &admin()).0, "TRUE");
    assert_eq!(lite("len([title, title]) == 2", &anon()).0, "TRUE");
    let (clause, values) = lite("title in auth.roles", &admin());
    assert_eq!(clause, r#"COALESCE("t"."title" IN (?), FALSE)"#);
    assert_eq!(values.0, vec![text("admin")]);
    assert_eq!(lite("title in auth.roles", &anon()).0, "FALSE");
}

#[test]
fn now_is_bound_in_the_storage_encoding() {
    let (clause, values) = lite("created_at < now()", &anon());
    assert_eq!(clause, r#"("t"."created_at") < (?)"#);
    assert_eq!(values.0, vec![text("2024-03-01T00:00:00.000000Z")]);
    let (clause, values) = pg("created_at < now()", &anon());
    assert_eq!(clause, r#"("t"."created_at") < (CAST($1 AS TIMESTAMPTZ))"#);
    assert_eq!(
        values.0,
        vec![sea_query::Value::TimeDateTimeWithTimeZone(Some(
            crate::common::NOW
        ))]
    );
}

#[test]
fn postgres_text_order_and_numeric_mixing() {
    let (clause, _) = pg("title < 'b'", &anon());
    assert_eq!(
        clause,
        r#"(("t"."title") COLLATE "C") < (CAST($1 AS TEXT))"#
    );
    let (clause, _) = pg("'b' > author.name", &anon());
    assert!(
        clause.contains(r#"(CAST($1 AS TEXT)) > (((SELECT"#),
        "{clause}"
    );
    assert!(clause.contains(r#") COLLATE "C")"#), "{clause}");
    let (clause, values) = pg("views > 1.5 && score < 2", &anon());
    assert_eq!(
        clause,
        r#"((CAST("t"."views" AS DOUBLE PRECISION)) > (CAST($1 AS DOUBLE PRECISION))) AND (("t"."score") < (CAST($2 AS DOUBLE PRECISION)))"#
    );
    assert_eq!(
        values.0,
        vec![
            sea_query::Value::Double(Some(1.5)),
            sea_query::Value::Double(Some(2.0))
        ]
    );
    let (clause, _) = lite("views > 1.5", &anon());
    assert_eq!(clause, r#"("t"."views") > (?)"#, "SQLite is exact as is");
}

#[test]
fn contains_escapes_like_metacharacters() {
    let (clause, values) = lite(r#"title ~ "50%_\\""#, &anon());
    assert_eq!(
        clause,
        r#"COALESCE(("t"."title") LIKE (?) ESCAPE '\', FALSE)"#
    );
    assert_eq!(values.0, vec![text(r"%50\%\_\\%")]);
    let (clause, _) = pg(r#"title ~ "x""#, &anon());
    assert_eq!(
        clause,
        r#"COALESCE(("t"."title") ILIKE (CAST($1 AS TEXT)) ESCAPE E'\\', FALSE)"#
    );
    let (clause, values) = lite("title ~ author.name", &anon());
    assert!(values.0.is_empty());
    assert!(
        clause.contains(r#"LIKE (('%' || REPLACE(REPLACE(REPLACE((SELECT"#),
        "{clause}"
    );
    assert!(
        clause.ends_with(r#", '\', '\\'), '%', '\%'), '_', '\_') || '%')) ESCAPE '\', FALSE)"#),
        "{clause}"
    );
}

#[test]
fn functions() {
    assert_eq!(
        lite("len(title) < 3", &anon()).0,
        r#"(length("t"."title")) < (?)"#
    );
    assert_eq!(
        lite("len(tags) < 3", &anon()).0,
        r#"(json_array_length("t"."tags")) < (?)"#
    );
    assert!(pg("len(tags) < 3", &anon()).0.contains("jsonb_typeof"));
    assert!(pg("len(title) < 3", &anon()).0.contains("char_length"));
    assert_eq!(
        lite("upper(title) == 'X'", &anon()).0,
        r#"(upper("t"."title")) = (?)"#
    );
    assert_eq!(
        pg("lower(title) == 'x'", &anon()).0,
        r#"(translate("t"."title", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')) = (CAST($1 AS TEXT))"#
    );
}

#[test]
fn membership() {
    let (clause, values) = lite("title in [author.name, 'x', null]", &anon());
    assert_eq!(
        clause,
        r#"COALESCE("t"."title" IN ((SELECT "users"."name" FROM "users" WHERE "users"."id" = "t"."author"), ?), FALSE)"#
    );
    assert_eq!(values.0, vec![text("x")]);

    let (clause, values) = lite("'a' in tags", &anon());
    assert_eq!(
        clause,
        r#"EXISTS (SELECT 1 FROM json_each("t"."tags") AS keel_je WHERE json_type("t"."tags") = 'array' AND keel_je.type IN ('text') AND keel_je.atom = (?))"#
    );
    assert_eq!(values.0, vec![text("a")]);
    let (clause, values) = pg("'a' in tags", &anon());
    assert_eq!(
        clause,
        r#"COALESCE(("t"."tags") @> (CAST($1 AS JSONB)), FALSE)"#
    );
    assert_eq!(
        values.0,
        vec![sea_query::Value::Json(Some(Box::new(serde_json::json!([
            "a"
        ]))))]
    );
    let (clause, _) = pg("views in tags", &anon());
    assert_eq!(
        clause,
        r#"(("t"."views") IS NOT NULL AND COALESCE(("t"."tags") @> jsonb_build_array("t"."views"), FALSE))"#
    );
    let (clause, _) = pg("created_at in tags", &anon());
    assert!(clause.contains("to_char("), "canonical text: {clause}");
}

#[test]
fn long_chains_compile_to_shallow_trees() {
    // 200 operands fit in the default 2048 bytes.
    let src = vec!["views==1"; 200].join("||");
    let typed = typed(&src);
    let pred = to_sql(&typed, &TableScope { caller: &anon() }, Dialect::Sqlite);
    let (sql, values) = Query::select()
        .column(Alias::new("id"))
        .from(Alias::new("t"))
        .and_where(pred)
        .build(SqliteQueryBuilder);
    assert_eq!(values.0.len(), 200);
    assert_eq!(sql.matches(" OR ").count(), 199);
    let max_depth = sql
        .chars()
        .scan(0_i32, |depth, c| {
            match c {
                '(' => *depth += 1,
                ')' => *depth -= 1,
                _ => {}
            }
            Some(*depth)
        })
        .max()
        .unwrap_or(0);
    assert!(max_depth < 20, "balanced, depth {max_depth}");
}

#[test]
fn value_encoding() {
    let list = Value::List(vec![Value::Text("a".into()), Value::Int(1)]);
    assert_eq!(value_to_sea(&list, Dialect::Sqlite), text(r#"["a",1]"#));
    assert_eq!(
        value_to_sea(&list, Dialect::Postgres),
        sea_query::Value::Json(Some(Box::new(serde_json::json!(["a", 1]))))
    );
    assert_eq!(
        value_to_sea(&Value::Uuid(U1), Dialect::Postgres),
        sea_query::Value::Uuid(Some(U1))
    );
    assert_eq!(
        value_to_sea(&Value::Float(1.5), Dialect::Sqlite),
        sea_query::Value::Double(Some(1.5))
    );
}

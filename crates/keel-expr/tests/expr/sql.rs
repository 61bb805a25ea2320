//! The SQL compiler's output for both dialects.

use crate::common::{Caller, TableScope, U1, typed};
use keel_expr::{Dialect, Value, to_sql, value_to_sea};
use sea_query::{Alias, PostgresQueryBuilder, Query, SqliteQueryBuilder};

fn sql(src: &str, caller: &Caller, dialect: Dialect) -> (String, sea_query::Values) {
    let pred = to_sql(&typed(src), &TableScope { caller }, dialect);
    let mut q = Query::select();
    q.column(Alias::new("id"))
        .from(Alias::new("t"))
        .and_where(pred);
    match dialect {
        Dialect::Sqlite => q.build(SqliteQueryBuilder),
        Dialect::Postgres => q.build(PostgresQueryBuilder),
    }
}

#[test]
fn print() {
    let anon = Caller { auth_id: None, roles: vec![] };
    let user = Caller { auth_id: Some(U1), roles: vec!["admin".into()] };
    for src in [
        "visibility == 'public' || author == auth.id",
        "title < 'b' && views > 1.5",
        "title ~ 'a%b' || title ~ author.name",
        "len(tags) > 1 && len(title) < 3",
        "lower(title) == 'x'",
        "'a' in tags || created_at in tags || views in tags",
        "title in [author.name, 'x', null]",
        "published && !published",
        "has_role('admin') && tags != null",
        "created_at < now()",
    ] {
        for caller in [&anon, &user] {
            for d in [Dialect::Sqlite, Dialect::Postgres] {
                let (s, v) = sql(src, caller, d);
                println!("{src}\n  {d:?}: {s}\n  {v:?}");
            }
        }
    }
    let _ = value_to_sea(&Value::Null, Dialect::Sqlite);
}

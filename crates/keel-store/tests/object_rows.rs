//! Rows written straight into JSON object text ([`Objects`]) read the same as rows
//! taken as values and serialized as objects, on a real SQLite file and on the real
//! PostgreSQL: every storage class, NULLs, escapes, text that is not UTF-8, blobs.
#![allow(clippy::unwrap_used)]

use keel_spec::Storage;
use keel_store::{ObjectShape, Objects, Stmt, Store};
use serde_json::{Map, Value as Json};

/// Each row of `stmt` as a map serialized, one JSON array: what answers were before.
async fn as_values(store: &Store, stmt: &Stmt, columns: &[(String, Storage)]) -> String {
    let storages: Vec<Storage> = columns.iter().map(|(_, s)| *s).collect();
    let rows = store.query(stmt, &storages).await.unwrap();
    let objects: Vec<Json> = rows
        .into_iter()
        .map(|row| {
            let map: Map<String, Json> = columns.iter().map(|(n, _)| n.clone()).zip(row).collect();
            Json::Object(map)
        })
        .collect();
    serde_json::to_string(&objects).unwrap()
}

fn columns(spec: &[(&str, Storage)]) -> Vec<(String, Storage)> {
    spec.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

/// `sql`'s rows as objects, checked against the rows as values.
async fn same_text<'a>(
    store: &Store,
    sql: &str,
    columns: &[(String, Storage)],
    shape: &'a ObjectShape,
) -> Objects<'a> {
    let stmt = Stmt::new(sql, vec![]);
    let expected = as_values(store, &stmt, columns).await;
    let mut rows = Objects::new(shape, 1);
    store.query_into(&stmt, &mut rows).await.unwrap();
    let n = rows.len();
    let mut again = Objects::new(shape, 1);
    store.query_into(&stmt, &mut again).await.unwrap();
    assert_eq!(
        String::from_utf8(again.into_array(n)).unwrap(),
        expected,
        "{sql}"
    );
    // Each object alone is the same text as its element.
    let parsed: Vec<Json> = serde_json::from_str(&expected).unwrap();
    for (i, value) in parsed.iter().enumerate() {
        assert_eq!(
            rows.object(i).unwrap(),
            serde_json::to_string(value).unwrap()
        );
    }
    rows
}

#[tokio::test]
async fn sqlite_rows_as_objects_match_values() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("o.db").display());
    let store = Store::open(&url).await.unwrap();
    let spec = [
        ("id", Storage::Text),
        ("version", Storage::Int),
        ("flag", Storage::Bool),
        ("score", Storage::Float),
        ("whole", Storage::Float),
        ("meta", Storage::Json),
        ("bad", Storage::Json),
        ("bytes", Storage::Text),
        ("odd", Storage::Text),
    ];
    let sql = "SELECT 'a\"b\\c\nd é ✓', 7, 1, 2.5, 3, '{\"b\":1,\"a\":[1e3,null]}', 'not json', \
               x'00ff', CAST(x'ff61' AS TEXT) \
               UNION ALL SELECT NULL, NULL, 0, NULL, -1, NULL, NULL, NULL, '' \
               UNION ALL SELECT 'z', 12, NULL, 1e300, 0, '[]', '\"s\"', NULL, 'ok'";
    let columns = columns(&spec);
    let shape = ObjectShape::new(&columns);
    let rows = same_text(&store, sql, &columns, &shape).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.version(0), Some(7));
    assert_eq!(rows.version(1), None);
    assert_eq!(rows.version(2), Some(12));
    let first: Json = serde_json::from_str(rows.object(0).unwrap()).unwrap();
    assert_eq!(first["id"], "a\"b\\c\nd é ✓");
    assert_eq!(first["flag"], true);
    assert_eq!(first["whole"], 3.0);
    assert_eq!(first["meta"]["a"][0], 1000.0);
    assert_eq!(first["bytes"], Json::Null);
    let second = rows.object(1).unwrap().to_string();
    // The first n rows only: a page without its look-ahead row.
    assert_eq!(
        String::from_utf8(rows.into_array(1)).unwrap(),
        format!("[{}]", serde_json::to_string(&first).unwrap())
    );
    let mut again = Objects::new(&shape, 3);
    store
        .query_into(&Stmt::new(sql, vec![]), &mut again)
        .await
        .unwrap();
    assert_eq!(again.into_object(1).unwrap(), second.as_bytes());
    // No rows at all: an empty array.
    let one = self::columns(&[("x", Storage::Int)]);
    let shape = ObjectShape::new(&one);
    let none = same_text(&store, "SELECT 1 WHERE 0", &one, &shape).await;
    assert!(none.is_empty());
    assert_eq!(none.into_array(20), b"[]");
}

#[tokio::test]
async fn postgres_rows_as_objects_match_values() {
    let url = std::env::var("KEEL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let store = Store::open(&url).await.unwrap();
    let spec = [
        ("id", Storage::Uuid),
        ("version", Storage::Int),
        ("small", Storage::Int),
        ("flag", Storage::Bool),
        ("score", Storage::Float),
        ("title", Storage::Text),
        ("at", Storage::Datetime),
        ("day", Storage::Date),
        ("meta", Storage::Json),
    ];
    let sql = "SELECT '0190f000-0000-7000-8000-000000000001'::uuid, 3::int8, 2::int4, true, \
               2.5::float8, E'a\"b\\\\c\\nd é', '2026-12-03T10:00:00.123Z'::timestamptz, \
               '2026-12-03'::date, '{\"b\":1,\"a\":[1e3]}'::jsonb \
               UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL";
    let columns = columns(&spec);
    let shape = ObjectShape::new(&columns);
    let rows = same_text(&store, sql, &columns, &shape).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.version(0), Some(3));
    assert_eq!(rows.version(1), None);
}

//! Migrations on the real databases: safe steps apply, destructive ones wait for
//! permission, data survives, history is kept, readiness follows.

use crate::backend_tests;
use crate::helpers::{Backend, TestDb, spawn_on};
use keel_store::{Store, StoreError};
use serde_json::json;
use std::collections::BTreeMap;

const V1: &str = r#"
[app]
name = "m"
[collections.items]
fields.name = { type = "text", required = true }
fields.size = { type = "int" }
fields.old = { type = "text" }
indexes = [["name"]]
access.read = "true"
access.create = "true"
"#;

const V2: &str = r#"
[app]
name = "m"
[collections.items]
fields.name = { type = "text", required = true }
fields.size = { type = "int" }
fields.old = { type = "text" }
fields.color = { type = "enum", values = ["red", "blue"] }
indexes = [["name"], ["-size"]]
unique = [["name", "color"]]
access.read = "true"
access.create = "true"
[collections.tags]
fields.label = { type = "text" }
fields.item = { type = "ref", to = "items", on_delete = "cascade" }
access.read = "true"
"#;

const V3_DROPS: &str = r#"
[app]
name = "m"
[collections.items]
fields.name = { type = "text", required = true }
fields.size = { type = "float" }
access.read = "true"
access.create = "true"
"#;

fn model(src: &str) -> keel_spec::Model {
    keel_spec::load_str(src, "keel.toml", &BTreeMap::new()).expect("valid spec")
}

async fn safe_then_destructive(b: Backend) {
    let (db, url) = TestDb::new(b).await;
    let store = Store::open(&url).await.unwrap();
    let first = store.migrate(&model(V1), false).await.unwrap();
    assert!(!first.is_empty());
    assert!(
        store.plan(&model(V1)).await.unwrap().is_empty(),
        "applied plans are empty"
    );
    assert!(
        store.migrate(&model(V1), false).await.unwrap().is_empty(),
        "idempotent"
    );

    let app = spawn_on(db, url.clone(), V1).await;
    app.create("items", json!({"name": "a", "size": 3, "old": "keep?"}))
        .await;

    let plan = store.plan(&model(V2)).await.unwrap();
    assert!(!plan.has_destructive(), "{}", plan.script());
    assert!(plan.script().contains("color"), "{}", plan.script());
    store.migrate(&model(V2), false).await.unwrap();
    assert!(store.plan(&model(V2)).await.unwrap().is_empty());

    // Dropping a column and changing a type lose data: refused without permission.
    match store.migrate(&model(V3_DROPS), false).await {
        Err(StoreError::Destructive(plan)) => {
            let text: Vec<String> = plan.destructive().map(|s| s.description.clone()).collect();
            assert!(text.iter().any(|d| d.contains("tags")), "{text:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing changed.
    assert!(store.plan(&model(V2)).await.unwrap().is_empty());
    store.migrate(&model(V3_DROPS), true).await.unwrap();
    assert!(store.plan(&model(V3_DROPS)).await.unwrap().is_empty());
    let rows = store
        .query(
            &keel_store::Stmt::new("SELECT name, size FROM items", vec![]),
            &[keel_spec::Storage::Text, keel_spec::Storage::Float],
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![json!("a"), json!(3.0)]],
        "rows survive the rebuild"
    );
    let history = store
        .query(
            &keel_store::Stmt::new("SELECT count(*) FROM _keel_migrations", vec![]),
            &[keel_spec::Storage::Int],
        )
        .await
        .unwrap();
    assert_eq!(history[0][0], json!(3));
}

async fn readiness_reports_pending_migrations(b: Backend) {
    let (db, url) = TestDb::new(b).await;
    let app = spawn_on(db, url.clone(), V1).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    // Another node drops a column behind our back: this node is no longer ready.
    let store = Store::open(&url).await.unwrap();
    store.migrate(&model(V3_DROPS), true).await.unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
}

async fn concurrent_migrations_do_not_collide(b: Backend) {
    let (_db, url) = TestDb::new(b).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::open(&url).await.unwrap();
            store
                .migrate(&model(V2), false)
                .await
                .map(|p| p.steps.len())
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.push(t.await.unwrap().expect("every migrate succeeds"));
    }
    assert_eq!(applied.iter().filter(|n| **n > 0).count(), 1, "{applied:?}");
}

backend_tests!(
    safe_then_destructive,
    readiness_reports_pending_migrations,
    concurrent_migrations_do_not_collide,
);

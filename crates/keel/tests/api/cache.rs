//! The record cache on one node (in process, on SQLite and PostgreSQL): one entry
//! serves every caller and the read rule is decided per caller on a hit; every
//! write (cascades included) replaces the entry before it answers; ETags hold.

use crate::auth::signup;
use crate::backend_tests;
use crate::helpers::{Backend, TEST_KEYS, TestApp, TestDb, spawn_with};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const SPEC: &str = r#"
[app]
name = "cachetest"

[collections.papers]
fields.title = { type = "text" }
fields.owner = { type = "ref", to = "users", default = "auth.id", immutable = true }
fields.public = { type = "bool", default = false }
access.read = 'public == true || owner == auth.id'
access.create = "auth.id != null"
access.update = "owner == auth.id"
access.delete = "owner == auth.id"

[collections.folders]
fields.name = { type = "text" }
access.read = "true"
access.create = "true"
access.delete = "true"

[collections.files]
fields.name = { type = "text" }
fields.folder = { type = "ref", to = "folders", on_delete = "set_null" }
access.read = "true"
access.create = "true"
access.update = "true"
access.delete = "true"

[collections.tags]
fields.name = { type = "text" }
fields.folder = { type = "ref", to = "folders", on_delete = "cascade" }
access.read = "true"
access.create = "true"

[limits]
"POST /v1/auth/signup" = "1000/min"
"#;

pub fn settings(url: &str, cache: keel::CacheMode) -> keel::Settings {
    let model = keel_spec::load_str(SPEC, "keel.toml", &BTreeMap::new()).unwrap();
    let mut settings = keel::Settings::new(model, url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.secret = Some("test-secret-test-secret-test-secret".into());
    settings.cache = cache;
    settings
}

async fn cached_app(b: Backend) -> TestApp {
    let (db, url) = TestDb::new(b).await;
    spawn_with(db, settings(&url, keel::CacheMode::Local)).await
}

pub async fn get_as(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn cache_counts(app: &TestApp) -> (u64, u64) {
    let text = crate::many_nodes::metrics(app).await;
    let count = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    (
        count("keel_cache_hits_total"),
        count("keel_cache_misses_total"),
    )
}

async fn rules_are_decided_per_caller_on_a_cached_record(b: Backend) {
    let app = cached_app(b).await;
    let alice = signup(&app, "alice@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let res = app
        .client
        .post(app.url("/v1/papers"))
        .bearer_auth(&alice.token)
        .json(&json!({"title": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let doc: Value = res.json().await.unwrap();
    let path = format!("/v1/papers/{}", doc["id"].as_str().unwrap());
    let before = cache_counts(&app).await;
    // Alice reads it (a miss: a create writes nothing through; her read fills it).
    let (status, got) = get_as(&app, &path, Some(&alice.token)).await;
    assert_eq!((status, got["title"].as_str()), (200, Some("mine")));
    // Bob and anonymous callers are refused by the rule on the same cached entry.
    assert_eq!(get_as(&app, &path, Some(&bob.token)).await.0, 404);
    assert_eq!(get_as(&app, &path, None).await.0, 404);
    // Alice again: from the cache.
    assert_eq!(get_as(&app, &path, Some(&alice.token)).await.0, 200);
    let after = cache_counts(&app).await;
    assert_eq!(after.0 - before.0, 3, "three hits: {before:?} → {after:?}");
    assert_eq!(after.1 - before.1, 1, "one miss: {before:?} → {after:?}");
    // Alice makes it public: everyone reads version 2 at once.
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&alice.token)
        .json(&json!({"public": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for token in [Some(alice.token.as_str()), Some(&bob.token), None] {
        let (status, got) = get_as(&app, &path, token).await;
        assert_eq!((status, got["version"].as_i64()), (200, Some(2)), "{got}");
    }
    // A conditional GET agrees with the cached version.
    let res = app
        .client
        .get(app.url(&path))
        .header("if-none-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = app
        .client
        .get(app.url(&path))
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    // Deleted: nobody reads it, owner included.
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(get_as(&app, &path, Some(&alice.token)).await.0, 404);
    assert_eq!(get_as(&app, &path, None).await.0, 404);
}

async fn a_record_read_before_it_was_cached_is_filled_once(b: Backend) {
    let (db, url) = TestDb::new(b).await;
    // Written with the cache off, so the cache starts empty for the second app.
    let writer = spawn_with(db, settings(&url, keel::CacheMode::Off)).await;
    let file = writer.create("files", json!({"name": "a"})).await;
    let path = format!("/v1/files/{}", file["id"].as_str().unwrap());
    let reader = spawn_with(
        TestDb::Sqlite {
            _dir: tempfile::tempdir().unwrap(),
        },
        settings(&url, keel::CacheMode::Local),
    )
    .await;
    let before = cache_counts(&reader).await;
    for _ in 0..3 {
        assert_eq!(get_as(&reader, &path, None).await.0, 200);
    }
    let after = cache_counts(&reader).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 1));
    assert_eq!(get_as(&reader, "/v1/files/not-a-uuid", None).await.0, 404);
    let absent = format!("/v1/files/{}", uuid::Uuid::now_v7());
    assert_eq!(get_as(&reader, &absent, None).await.0, 404);
}

async fn cascades_replace_the_cached_children(b: Backend) {
    let app = cached_app(b).await;
    let folder = app.create("folders", json!({"name": "f"})).await;
    let folder_id = folder["id"].as_str().unwrap();
    let file = app
        .create("files", json!({"name": "x", "folder": folder_id}))
        .await;
    let tag = app
        .create("tags", json!({"name": "t", "folder": folder_id}))
        .await;
    let file_path = format!("/v1/files/{}", file["id"].as_str().unwrap());
    let tag_path = format!("/v1/tags/{}", tag["id"].as_str().unwrap());
    assert_eq!(get_as(&app, &file_path, None).await.1["folder"], folder_id);
    assert_eq!(get_as(&app, &tag_path, None).await.0, 200);
    let res = app.delete(&format!("/v1/folders/{folder_id}")).await;
    assert_eq!(res.status(), 204);
    let (status, got) = get_as(&app, &file_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (got["folder"].clone(), got["version"].as_i64()),
        (Value::Null, Some(2))
    );
    assert_eq!(get_as(&app, &tag_path, None).await.0, 404);
}

backend_tests!(
    rules_are_decided_per_caller_on_a_cached_record,
    a_record_read_before_it_was_cached_is_filled_once,
    cascades_replace_the_cached_children,
);

//! What the foundation guarantees beyond plain CRUD: the app is built one way (secrets,
//! field keys and request limits come from `Settings`), encrypted fields never rest
//! in plaintext anywhere, `If-Match` follows RFC 9110, every rejection is
//! problem+json, and duplicate JSON keys are refused.

use crate::backend_tests;
use crate::helpers::{Backend, TEST_KEYS, TestDb, problem, spawn_app, spawn_with};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SPEC: &str = r#"
[app]
name = "foundation"
[collections.people]
fields.name = { type = "text" }
fields.age = { type = "int", min = 0, max = 150 }
fields.ssn = { type = "text", encrypted = true, max_length = 11 }
fields.medical = { type = "json", encrypted = true }
access.read = "true"
access.create = "true"
access.update = "true"
access.delete = "true"
"#;

fn model() -> keel_spec::Model {
    keel_spec::load_str(SPEC, "keel.toml", &BTreeMap::new()).unwrap()
}

/// Every text the table holds, one string per row.
async fn table_text(app: &crate::helpers::TestApp, sql: &str) -> Vec<String> {
    app.engine
        .store()
        .query(
            &keel_store::Stmt::new(sql, vec![]),
            &[keel_spec::Storage::Text],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn encrypted_fields_never_rest_in_plaintext(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let body = json!({"name": "Ada", "ssn": "123-45-6789", "medical": {"allergy": "nuts"}});
    let send = || {
        app.client
            .post(app.url("/v1/people"))
            .header("idempotency-key", "k-1")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["ssn"], "123-45-6789");
    // The replay answers the plaintext again, from the stored (sealed) outcome.
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay, first);
    let path = format!("/v1/people/{}", first["id"].as_str().unwrap());
    assert_eq!(
        app.patch(&path, json!({"ssn": "987-65-4321"}))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete(&path).await.status(), 204);

    let outbox = table_text(
        &app,
        "SELECT COALESCE(CAST(data AS TEXT), '') || ' ' || COALESCE(CAST(previous AS TEXT), '') FROM _keel_events",
    )
    .await;
    assert_eq!(outbox.len(), 3, "created, updated, deleted");
    let kept = table_text(&app, "SELECT record FROM _keel_idempotency_keys").await;
    assert_eq!(kept.len(), 1);
    for text in outbox.iter().chain(&kept) {
        for secret in ["123-45", "987-65", "nuts"] {
            assert!(
                !text.contains(secret),
                "plaintext `{secret}` at rest: {text}"
            );
        }
        assert!(text.contains("enc:v1:t1:"), "{text}");
    }
}

async fn if_match_follows_rfc_9110(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let p = app.create("people", json!({"name": "Ada"})).await;
    let path = format!("/v1/people/{}", p["id"].as_str().unwrap());
    let patch = |if_match: &'static str| {
        app.client
            .patch(app.url(&path))
            .header("if-match", if_match)
            .json(&json!({"name": "Grace"}))
            .send()
    };
    // Well-formed tags that do not match (strong comparison): 412.
    for stale in ["\"abc\"", "W/\"1\"", "\"2\", \"3\"", "\"\"", "\"01x\""] {
        let res = patch(stale).await.unwrap();
        let body = problem(res, 412).await;
        assert_eq!(body["type"], "/docs/errors#precondition-failed", "{stale}");
    }
    // Malformed headers: 400.
    for bad in ["1", "\"1", "W/1", "\"1\" \"2\"", "\"1\",,x"] {
        let res = patch(bad).await.unwrap();
        let body = problem(res, 400).await;
        assert_eq!(body["type"], "/docs/errors#malformed-request", "{bad}");
    }
    // One matching strong tag in a list is enough; `*` matches any.
    assert_eq!(patch("W/\"9\", \"1\"").await.unwrap().status(), 200);
    assert_eq!(patch("*").await.unwrap().status(), 200);
    assert_eq!(patch("\"3\"").await.unwrap().status(), 200);
}

async fn rejections_are_problem_json(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    // A path segment that is not UTF-8 once percent-decoded.
    for path in ["/v1/people/%FF", "/v1/%C3%28"] {
        let res = app.get(path).await;
        let status = res.status().as_u16();
        assert!(status == 400 || status == 404, "{path}: {status}");
        problem(res, status).await;
    }
    let res = app.get("/v1/people/%FF").await;
    problem(res, 400).await;
    // Duplicate keys, at the top or nested: parsers disagree on which counts.
    for body in [r#"{"name":"a","name":"b"}"#, r#"{"medical":{"x":1,"x":2}}"#] {
        let res = app
            .client
            .post(app.url("/v1/people"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let p = problem(res, 400).await;
        assert!(
            p["detail"].as_str().unwrap().contains("duplicate key"),
            "{p}"
        );
    }
    assert_eq!(app.list("/v1/people").await["items"], json!([]));
}

const REFS: &str = r#"
[app]
name = "refs"
[auth]
password = true
[collections.notes]
fields.owner = { type = "ref", to = "users", default = "auth.id", immutable = true }
fields.text = { type = "text" }
access.read = "owner == auth.id"
access.create = "auth.id != null"
[collections.pins]
fields.note = { type = "ref", to = "notes", required = true }
access.read = "true"
access.create = "auth.id != null"
access.update = "auth.id != null"
"#;

/// A ref to a record the caller may not read answers exactly as a ref to none.
async fn refs_do_not_reveal_unreadable_records(b: Backend) {
    let app = spawn_app(b, REFS).await;
    let ada = crate::auth::signup(&app, "ada@example.com").await;
    let bob = crate::auth::signup(&app, "bob@example.com").await;
    let as_user = |token: &str, body: Value| {
        app.client
            .post(app.url("/v1/pins"))
            .header("authorization", format!("Bearer {token}"))
            .json(&body)
            .send()
    };
    let note = app
        .client
        .post(app.url("/v1/notes"))
        .header("authorization", format!("Bearer {}", ada.token))
        .json(&json!({"text": "mine"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let hidden = note["id"].as_str().unwrap().to_string();
    let missing = uuid::Uuid::now_v7().to_string();
    // The owner may pin it.
    assert_eq!(
        as_user(&ada.token, json!({"note": hidden}))
            .await
            .unwrap()
            .status(),
        201
    );
    // Bob cannot tell Ada's note from no note at all.
    let mut answers = Vec::new();
    for id in [&hidden, &missing] {
        let res = as_user(&bob.token, json!({"note": id})).await.unwrap();
        let mut p = problem(res, 409).await;
        let detail = p["detail"].as_str().unwrap().replace(id.as_str(), "<id>");
        p["detail"] = json!(detail);
        let msg = p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace(id.as_str(), "<id>");
        p["errors"][0]["message"] = json!(msg);
        p.as_object_mut().unwrap().remove("request_id");
        answers.push(p);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0]["errors"][0]["field"], "note");
}

/// JSON Schema's `integer` (what OpenAPI promises) counts `58.0` as an integer.
async fn whole_floats_are_integers(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let p = app.create("people", json!({"age": 58.0})).await;
    assert_eq!(p["age"], json!(58));
    assert!(p["age"].is_i64(), "{p}");
    let e = problem(app.post("/v1/people", json!({"age": 58.5})).await, 422).await;
    assert_eq!(e["errors"][0]["code"], "type");
    let e = problem(app.post("/v1/people", json!({"age": 151.0})).await, 422).await;
    assert_eq!(e["errors"][0]["code"], "too_large");
}

backend_tests!(
    whole_floats_are_integers,
    refs_do_not_reveal_unreadable_records,
    encrypted_fields_never_rest_in_plaintext,
    if_match_follows_rfc_9110,
    rejections_are_problem_json,
);

#[tokio::test]
async fn the_app_refuses_to_start_without_its_secrets() {
    let (_db, url) = TestDb::new(Backend::Sqlite).await;
    // Encrypted fields and no keys.
    let settings = keel::Settings::new(model(), url.clone());
    let err = keel::App::build(settings).await.err().unwrap();
    assert!(matches!(err, keel::BuildError::MissingFieldKeys), "{err}");
    // Malformed keys.
    let mut settings = keel::Settings::new(model(), url.clone());
    settings.field_keys = Some("not-a-key".into());
    let err = keel::App::build(settings).await.err().unwrap();
    assert!(matches!(err, keel::BuildError::FieldKeys(_)), "{err}");
    // A cursor key too short to sign with.
    let mut settings = keel::Settings::new(model(), url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.secret = Some("short".into());
    let err = keel::App::build(settings).await.err().unwrap();
    assert!(matches!(err, keel::BuildError::ShortSecret), "{err}");
}

#[tokio::test]
async fn request_limits_come_from_the_settings() {
    let (db, url) = TestDb::new(Backend::Sqlite).await;
    let mut settings = keel::Settings::new(model(), url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.max_body_bytes = 64;
    let app = spawn_with(db, settings).await;
    let res = app
        .post("/v1/people", json!({"name": "x".repeat(100)}))
        .await;
    problem(res, 413).await;
    assert_eq!(
        app.post("/v1/people", json!({"name": "x"})).await.status(),
        201
    );
}

#[tokio::test]
async fn the_generated_cursor_key_survives_a_restart() {
    // No KEEL_SECRET: the key is generated once and kept in the database, so a
    // cursor from before a restart (or from another node) still works.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let start = || async {
        let mut settings = keel::Settings::new(model(), url.clone());
        settings.field_keys = Some(TEST_KEYS.into());
        spawn_with(
            TestDb::Sqlite {
                _dir: tempfile::tempdir().unwrap(),
            },
            settings,
        )
        .await
    };
    let first = start().await;
    for i in 0..3 {
        first
            .create("people", json!({"name": format!("p{i}")}))
            .await;
    }
    let page = first.list("/v1/people?limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    drop(first);
    let second = start().await;
    let rest = second
        .list(&format!("/v1/people?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
}

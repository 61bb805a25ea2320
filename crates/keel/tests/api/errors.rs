//! Bad input gets a clear problem+json 4xx, never a 5xx, and never loses data.

use crate::backend_tests;
use crate::helpers::{Backend, problem, spawn_app};
use crate::records::{SPEC, urlencode};
use serde_json::json;

async fn malformed_bodies_and_media_types(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let post = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/v1/posts"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let p = problem(post("{\"title\": ", "application/json").await.unwrap(), 400).await;
    assert_eq!(p["type"], "/docs/errors#malformed-request");
    assert!(p["detail"].as_str().unwrap().contains("line 1"), "{p}");
    problem(
        post("title=x", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
    )
    .await;
    problem(
        app.client
            .post(app.url("/v1/posts"))
            .body("{}")
            .send()
            .await
            .unwrap(),
        415,
    )
    .await;
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    let res = app
        .client
        .post(app.url("/v1/posts"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let big = json!({"title": "x", "body": "y".repeat(2 * 1024 * 1024)});
    problem(app.post("/v1/posts", big).await, 413).await;
}

async fn routes_methods_and_ids(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let p = problem(app.get("/v1/nothing").await, 404).await;
    assert!(p["detail"].as_str().unwrap().contains("nothing"));
    problem(app.get("/nowhere").await, 404).await;
    problem(app.get("/v1/posts/not-a-uuid").await, 404).await;
    problem(
        app.get(&format!("/v1/posts/{}", uuid::Uuid::now_v7()))
            .await,
        404,
    )
    .await;
    let res = app.client.put(app.url("/v1/posts")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET,HEAD,POST");
    problem(res, 405).await;
    let res = app
        .client
        .post(app.url(&format!("/v1/posts/{}", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    problem(res, 405).await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/posts/{}", uuid::Uuid::now_v7())))
        .header("if-match", "banana")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
}

async fn hostile_filters_are_400_with_a_position(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    app.create("posts", json!({"title": "keep me"})).await;
    let cases = [
        ("title == ", 9usize),
        ("title === \"x\"", 8),
        ("nope == 1", 0),
        ("views > \"high\"", 0),
        ("title == 'x' OR 1=1", 13),
        ("'; DROP TABLE posts; --", 0),
        ("internal == \"x\"", 0),
        ("status == \"archived\"", 10),
    ];
    for (filter, _) in cases {
        let p = problem(
            app.get(&format!("/v1/posts?filter={}", urlencode(filter)))
                .await,
            400,
        )
        .await;
        assert_eq!(p["type"], "/docs/errors#invalid-parameter", "{filter}: {p}");
        assert_eq!(p["errors"][0]["field"], "filter", "{filter}");
        assert!(p["position"].is_number(), "{filter}: {p}");
    }
    let deep = "(".repeat(500) + "views > 1" + &")".repeat(500);
    problem(
        app.get(&format!("/v1/posts?filter={}", urlencode(&deep)))
            .await,
        400,
    )
    .await;
    let huge = format!("title == \"{}\"", "a".repeat(5000));
    problem(
        app.get(&format!("/v1/posts?filter={}", urlencode(&huge)))
            .await,
        400,
    )
    .await;
    // A literal that looks like SQL is only ever a bound value.
    let page = app
        .list(&format!(
            "/v1/posts?filter={}",
            urlencode("title == \"x' OR '1'='1\"")
        ))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "sort=nope",
        "sort=meta",
        "fields=internal",
        "count=maybe",
        "sort=title,title,title,title,title,title,title",
    ] {
        let p = problem(app.get(&format!("/v1/posts?{bad}")).await, 400).await;
        assert_eq!(p["type"], "/docs/errors#invalid-parameter", "{bad}");
    }
    // Still there.
    assert_eq!(app.list("/v1/posts?count=true").await["total"], 1);
}

async fn request_ids_are_honoured_or_generated(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let res = app
        .client
        .get(app.url("/v1/nothing"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let p = problem(res, 404).await;
    assert_eq!(p["request_id"], "abc-123");
    assert_eq!(p["instance"], "/v1/nothing");
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}

async fn health_and_readiness(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    assert_eq!(app.list("/healthz").await["status"], "ok");
    let ready = app.list("/readyz").await;
    assert_eq!(ready["migrations"], "applied");
    app.get(&format!("/v1/posts/{}", uuid::Uuid::now_v7()))
        .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "keel_http_requests_total{method=\"GET\",route=\"/v1/posts/{id}\",status=\"404\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("keel_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

async fn nul_characters_are_refused_alike(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let p = problem(
        app.post("/v1/posts", json!({"title": "a\u{0}b"})).await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["code"], "invalid_character");
    let p = problem(
        app.post("/v1/posts", json!({"title": "ok", "meta": {"k": "\u{0}"}}))
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "meta");
    let p = problem(
        app.get("/v1/posts?filter=title%20%3D%3D%20%22%00%22").await,
        400,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "filter");
}

backend_tests!(
    nul_characters_are_refused_alike,
    malformed_bodies_and_media_types,
    routes_methods_and_ids,
    hostile_filters_are_400_with_a_position,
    request_ids_are_honoured_or_generated,
    health_and_readiness,
);

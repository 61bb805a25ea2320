//! The served OpenAPI document describes the served API.

use crate::helpers::{Backend, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn openapi_document_covers_every_collection() {
    let spec = include_str!("../../../../examples/social/keel.toml");
    let app = spawn_app(Backend::Sqlite, spec).await;
    let doc: Value = app.list("/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    for c in ["users", "posts", "comments", "likes", "follows"] {
        assert!(doc["paths"][format!("/v1/{c}")]["get"].is_object(), "{c}");
        assert!(
            doc["paths"][format!("/v1/{c}/{{id}}")]["patch"].is_object(),
            "{c}"
        );
    }
    let create = &doc["paths"]["/v1/posts"]["post"];
    assert_eq!(
        create["responses"]["201"]["links"]["GetPosts"]["operationId"],
        "getPosts"
    );
    assert_eq!(
        doc["components"]["schemas"]["PostsCreate"]["required"],
        serde_json::json!(["title", "body"])
    );
    assert_eq!(
        doc["components"]["schemas"]["Posts"]["properties"]["visibility"]["enum"],
        serde_json::json!(["public", "followers", null])
    );
    // The docs page and its script are served from the binary.
    let res = app.get("/docs").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("/v1/openapi.json"));
    let res = app.get("/docs/rapidoc-min.js").await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().len() > 100_000);
    let errors = app.get("/docs/errors").await.text().await.unwrap();
    assert!(errors.contains("id=\"validation\""));
}

//! Lists whose rule is an `||` of indexed lookups run one indexed page per operand and
//! page their union: the answer must be exactly the one query's, page after page, in
//! every sort, with filters and counts.

use crate::auth::signup;
use crate::backend_tests;
use crate::helpers::{Backend, spawn_app};
use serde_json::{Value, json};

const SPEC: &str = r#"
[app]
name = "lists"

[auth]
password = true

[collections.posts]
fields.title      = { type = "text", required = true }
fields.rank       = { type = "int" }
fields.author     = { type = "ref", to = "users", default = "auth.id", immutable = true }
fields.visibility = { type = "enum", values = ["public", "private"], default = "public" }
indexes = [["visibility", "-created_at"], ["author", "-created_at"]]
access.read   = 'visibility == "public" || author == auth.id'
access.create = "auth.id != null && author == auth.id"

[limits]
"POST /v1/auth/signup" = "1000/min"
"#;

async fn walk(app: &crate::helpers::TestApp, token: Option<&str>, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_string(),
        };
        let mut req = app.client.get(app.url(&q));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "GET {q}");
        let page: Value = res.json().await.unwrap();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn or_rule_lists_page_exactly_the_readable_records(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let alice = signup(&app, "alice@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let mut all = Vec::new();
    for i in 0..36 {
        let (who, visibility) = match i % 4 {
            0 => (&alice, "private"),
            1 => (&bob, "private"),
            2 => (&alice, "public"),
            _ => (&bob, "public"),
        };
        let res = app
            .client
            .post(app.url("/v1/posts"))
            .bearer_auth(&who.token)
            .json(
                &json!({"title": format!("t{:02}", (i * 7) % 36), "rank": i % 5,
                          "visibility": visibility}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        all.push(res.json::<Value>().await.unwrap());
    }
    let readable = |who: Option<&str>| -> Vec<&Value> {
        all.iter()
            .filter(|p| p["visibility"] == "public" || Some(p["author"].as_str().unwrap()) == who)
            .collect()
    };
    let ids = |v: &[Value]| {
        v.iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    // Newest first (the default), in small pages: alice sees the public posts and her own.
    let mut expected: Vec<String> = readable(Some(&alice.id))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    expected.reverse();
    let got = walk(&app, Some(&alice.token), "/v1/posts?limit=5").await;
    assert_eq!(ids(&got), expected, "alice, newest first");

    // Anonymous: public only.
    let got = walk(&app, None, "/v1/posts?limit=4").await;
    assert_eq!(got.len(), 18);
    assert!(got.iter().all(|p| p["visibility"] == "public"));

    // Another sort (no index serves it) with ties, and a filter that narrows no index.
    let mut expected: Vec<&Value> = readable(Some(&bob.id))
        .into_iter()
        .filter(|p| p["rank"].as_i64().unwrap() >= 2)
        .collect();
    expected.sort_by(|a, b| {
        b["rank"]
            .as_i64()
            .cmp(&a["rank"].as_i64())
            .then(a["title"].as_str().cmp(&b["title"].as_str()))
    });
    let expected: Vec<String> = expected
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let got = walk(
        &app,
        Some(&bob.token),
        "/v1/posts?limit=3&sort=-rank,title&filter=rank%20%3E%3D%202",
    )
    .await;
    assert_eq!(ids(&got), expected, "bob, by rank then title, rank >= 2");

    // count= counts the same set the pages walk.
    let res = app
        .client
        .get(app.url("/v1/posts?limit=2&count=true"))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["total"], json!(readable(Some(&bob.id)).len()));
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
}

backend_tests!(or_rule_lists_page_exactly_the_readable_records);

//! Planned documents answer exactly as the executor does. A document's first run goes
//! through async-graphql's executor; once it ran without a request error, the
//! common shapes (a record by id, a page, plain fields) are answered from a plan. So
//! every document here is sent several times and each answer must be byte for byte
//! the first one's — successes, errors (not found, denied, bad filters, quotas),
//! aliases, `__typename`, enums, JSON, nulls — and the documents a plan does not
//! cover, or requests whose variables are not plainly of their type, still get the
//! executor's answer.

use crate::backend_tests;
use crate::graphql::relaxed_spec;
use crate::helpers::{Backend, TestApp, spawn_app};
use serde_json::{Value as Json, json};

backend_tests!(
    planned_documents_answer_as_the_executor_does,
    plans_count_quotas_and_refuse_as_the_executor_does,
);

/// Sign up `name` and return its id and token.
async fn sign_up(app: &TestApp, name: &str) -> (String, String) {
    let email = format!("{name}@example.com");
    app.post(
        "/v1/auth/signup",
        json!({"email": email, "password": "a long password"}),
    )
    .await;
    let s: Json = app
        .post(
            "/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        s["user"]["id"].as_str().unwrap().to_string(),
        s["access_token"].as_str().unwrap().to_string(),
    )
}

/// One request's status and raw body.
async fn send(app: &TestApp, token: Option<&str>, body: &Json) -> (u16, String) {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Send `body` four times and require the same status and bytes each time; the
/// first answer, parsed.
async fn same_every_time(app: &TestApp, token: Option<&str>, body: Json) -> Json {
    let first = send(app, token, &body).await;
    for _ in 0..3 {
        let again = send(app, token, &body).await;
        assert_eq!(again, first, "for {body}");
    }
    assert!(first.0 < 500, "{first:?}");
    serde_json::from_str(&first.1).unwrap()
}

async fn planned_documents_answer_as_the_executor_does(b: Backend) {
    let app = spawn_app(b, &relaxed_spec()).await;
    let (me, token) = sign_up(&app, "writer").await;
    let (_, other) = sign_up(&app, "reader").await;
    let mut ids = Vec::new();
    for (i, visibility) in ["public", "followers", "public"].iter().enumerate() {
        let res = app
            .client
            .post(app.url("/v1/posts"))
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({
                "title": format!("post \"{i}\" — ünïcode\n"),
                "body": "b",
                "visibility": visibility,
                "tags": if i == 0 { json!({"a": [1, 2.5, null], "z": "x"}) } else { Json::Null },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        ids.push(
            res.json::<Json>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let by_id = "query One($id: String!) { posts_by_id(id: $id) { __typename id title visibility tags author_id v: version } }";
    // Found; hidden from another caller (not found); no such id; anonymous.
    let got = same_every_time(
        &app,
        Some(&token),
        json!({"query": by_id, "variables": {"id": ids[0]}}),
    )
    .await;
    assert_eq!(got["data"]["posts_by_id"]["author_id"], json!(me));
    assert_eq!(
        got["data"]["posts_by_id"]["tags"],
        json!({"a": [1, 2.5, null], "z": "x"})
    );
    assert_eq!(got["data"]["posts_by_id"]["__typename"], "Posts");
    let hidden = same_every_time(
        &app,
        Some(&other),
        json!({"query": by_id, "variables": {"id": ids[1]}}),
    )
    .await;
    assert_eq!(hidden["data"]["posts_by_id"], Json::Null);
    assert_eq!(hidden["errors"][0]["extensions"]["code"], "not-found");
    assert_eq!(hidden["errors"][0]["path"], json!(["posts_by_id"]));
    same_every_time(
        &app,
        None,
        json!({"query": by_id, "variables": {"id": "nope"}}),
    )
    .await;
    same_every_time(
        &app,
        Some(&token),
        json!({"query": by_id, "variables": {"id": ids[2]}, "operationName": "One"}),
    )
    .await;
    // Variables not of their type, missing, or another operation named: the executor's
    // request errors, every time.
    for bad in [
        json!({"query": by_id, "variables": {"id": 5}}),
        json!({"query": by_id, "variables": {}}),
        json!({"query": by_id, "variables": {"id": null}}),
        json!({"query": by_id, "variables": {"id": ids[0]}, "operationName": "Two"}),
    ] {
        let answer = same_every_time(&app, Some(&token), bad).await;
        assert!(
            answer["data"].is_null() && answer["errors"].is_array(),
            "{answer}"
        );
    }
    // Literal arguments, a page with aliases, total and cursor, nulls.
    let page = r#"{ p: posts(sort: "-created_at", limit: 2, count: true) { total items { id title tags visibility } cursor: next_cursor __typename } }"#;
    let first = same_every_time(&app, Some(&token), json!({"query": page})).await;
    assert_eq!(first["data"]["p"]["total"], 3);
    assert_eq!(first["data"]["p"]["__typename"], "PostsList");
    let cursor = first["data"]["p"]["cursor"].as_str().unwrap().to_string();
    let next = "query($c: String, $n: Int = 2, $f: String, $t: Boolean) { posts(cursor: $c, limit: $n, filter: $f, count: $t, sort: \"-created_at\") { items { id } next_cursor total } }";
    let rest = same_every_time(
        &app,
        Some(&token),
        json!({"query": next, "variables": {"c": cursor}}),
    )
    .await;
    assert_eq!(rest["data"]["posts"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"]["posts"]["next_cursor"], Json::Null);
    assert_eq!(rest["data"]["posts"]["total"], Json::Null);
    // The reader sees only the public ones; a filter; a bad filter (a field error).
    let seen = same_every_time(
        &app,
        Some(&other),
        json!({"query": next, "variables": {"n": 50, "t": true}}),
    )
    .await;
    assert_eq!(seen["data"]["posts"]["total"], 2);
    same_every_time(
        &app,
        Some(&other),
        json!({"query": next, "variables": {"f": "visibility == \"followers\"", "t": true}}),
    )
    .await;
    let bad = same_every_time(
        &app,
        Some(&other),
        json!({"query": next, "variables": {"f": "nonsense ==="}}),
    )
    .await;
    assert_eq!(bad["data"]["posts"], Json::Null);
    assert_eq!(bad["errors"][0]["extensions"]["code"], "invalid-parameter");
    // An Int variable outside 32 bits, a negative limit.
    same_every_time(
        &app,
        Some(&other),
        json!({"query": next, "variables": {"n": 5_000_000_000i64}}),
    )
    .await;
    same_every_time(
        &app,
        Some(&other),
        json!({"query": next, "variables": {"n": -1}}),
    )
    .await;
    // Shapes no plan covers answer as before: refs as records, children, fragments,
    // directives, two root fields, a repeated key.
    for query in [
        "{ posts(limit: 5) { items { id author { id } } } }",
        "{ posts(limit: 5) { items { id comments { total } } } }",
        "fragment F on Posts { id } { posts(limit: 5) { items { ...F } } }",
        "query($s: Boolean!) { posts(limit: 5) { items { id title @include(if: $s) } } }",
        "{ a: posts(limit: 1) { total } b: posts(limit: 2) { total } }",
        "{ posts(limit: 5) { items { id id } } }",
    ] {
        let answer = same_every_time(
            &app,
            Some(&token),
            json!({"query": query, "variables": {"s": true}}),
        )
        .await;
        assert!(answer["errors"].is_null(), "{query}: {answer}");
    }
}

async fn plans_count_quotas_and_refuse_as_the_executor_does(b: Backend) {
    let app = spawn_app(b, &relaxed_spec()).await;
    let (_, token) = sign_up(&app, "writer").await;
    let res = app
        .client
        .post(app.url("/v1/posts"))
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({"title": "t", "body": "b"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Json>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A GraphQL surface over the app's engine with a quota of 3 reads a minute per
    // caller: the executor's first run and the plan's runs count the same.
    let policy = keel_core::ratelimit::LimitPolicy {
        authenticated: Some(keel_core::ratelimit::Quota {
            name: "test".into(),
            requests: 3,
            period: std::time::Duration::from_secs(60),
        }),
        ..Default::default()
    };
    let limits = std::sync::Arc::new(keel_core::ratelimit::RateLimits::new(
        policy,
        std::sync::Arc::new(keel_core::ratelimit::RateLimiter::new()),
    ));
    let graphql =
        keel_graphql::GraphQl::new(app.engine.clone(), limits, None, Default::default()).unwrap();
    let me: uuid::Uuid = app
        .auth
        .user_id_by_email("writer@example.com")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let principal = keel_core::Principal {
        id: Some(me),
        ..keel_core::Principal::anonymous()
    };
    let run = |query: &'static str, variables: Json| {
        let graphql = &graphql;
        let principal = principal.clone();
        async move {
            let request = keel_graphql::async_graphql::Request::new(query)
                .variables(keel_graphql::async_graphql::Variables::from_json(variables));
            graphql
                .execute(principal, "127.0.0.1".into(), request, true)
                .await
        }
    };
    let query = "query($id: String!) { posts_by_id(id: $id) { id title } }";
    let mut answers = Vec::new();
    for _ in 0..4 {
        let out = run(query, json!({"id": id})).await;
        answers.push(match out.prepared {
            Some(body) => serde_json::from_slice::<Json>(&body).unwrap(),
            None => json!({
                "data": out.response.data.into_json().unwrap(),
                "errors": out.response.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>(),
                "codes": out.response.errors.iter().map(|e| e.extensions.as_ref().and_then(|x| x.get("code")).map(|c| c.to_string())).collect::<Vec<_>>(),
            }),
        });
    }
    // Three answered (the first by the executor, two by the plan), the fourth refused.
    assert_eq!(graphql.plan_runs(), 3, "{answers:?}");
    for a in &answers[..3] {
        assert_eq!(a["data"]["posts_by_id"]["id"], json!(id), "{a}");
    }
    assert_eq!(
        answers[3]["data"]["posts_by_id"],
        Json::Null,
        "{}",
        answers[3]
    );
    assert!(
        answers[3]["codes"][0]
            .as_str()
            .unwrap()
            .contains("rate-limited"),
        "{}",
        answers[3]
    );
    // A document no plan covers never counts as planned; a mutation over GET is
    // refused before anything runs.
    let before = graphql.plan_runs();
    run("{ posts(limit: 1) { items { author { id } } } }", json!({})).await;
    run("{ posts(limit: 1) { items { author { id } } } }", json!({})).await;
    assert_eq!(graphql.plan_runs(), before);
    let refused = run("mutation { delete_posts(id: \"x\") }", json!({})).await;
    assert!(refused.mutation_refused);
    // A page of plain fields is planned after its first run (anonymous: no quota).
    let page = "query($f: String, $n: Int) { posts(filter: $f, limit: $n, count: true) { items { id title author_id __typename } total next_cursor } }";
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let request = keel_graphql::async_graphql::Request::new(page).variables(
            keel_graphql::async_graphql::Variables::from_json(
                json!({"f": "title == \"t\"", "n": 5}),
            ),
        );
        let out = graphql
            .execute(
                keel_core::Principal::anonymous(),
                "127.0.0.1".into(),
                request,
                true,
            )
            .await;
        bodies.push(match out.prepared {
            Some(body) => serde_json::from_slice::<Json>(&body).unwrap(),
            None => json!({"data": out.response.data.into_json().unwrap()}),
        });
    }
    assert_eq!(graphql.plan_runs(), before + 2);
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    assert_eq!(bodies[2]["data"]["posts"]["total"], 1, "{}", bodies[2]);
}

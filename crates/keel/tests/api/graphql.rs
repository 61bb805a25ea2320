//! GraphQL over the same core as REST: the permission matrix of the example spec run
//! over both surfaces must agree record for record (get, list, create, update,
//! delete); validation errors carry `extensions`; refs load in batches (no N+1);
//! abuse limits and malformed requests are answered as errors, never 5xx.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, spawn_app};
use keel_spec::{FieldType, Model};
use reqwest::Method;
use serde_json::{Value as Json, json};

backend_tests!(
    graphql_agrees_with_rest_record_for_record,
    graphql_validation_errors_carry_extensions,
    graphql_refs_load_in_batches,
    graphql_limits_and_malformed_requests_are_errors,
    graphql_name_clash_leaves_rest_serving,
    graphql_js_accepts_the_served_schema_and_it_is_the_designs,
    graphql_http_audit_passes,
);

pub(crate) const SPEC: &str = include_str!("../../../../examples/social/keel.toml");

/// The example with quotas no test reaches (shared with `graphql_plans`).
pub(crate) fn relaxed_spec() -> String {
    SPEC.replace("anonymous = \"60/min\"", "anonymous = \"100000/min\"")
        .replace("authenticated = \"600/min\"", "authenticated = \"100000/min\"")
        .replace(
            "\"POST /v1/posts\" = \"10/min\"",
            "\"POST /v1/posts\" = \"100000/min\"\n\"POST /v1/auth/signup\" = \"100000/min\"\n\"POST /v1/auth/login\" = \"100000/min\"",
        )
}

struct Who {
    name: &'static str,
    id: Option<String>,
    token: Option<String>,
}

async fn rest(
    app: &TestApp,
    who: &Who,
    method: Method,
    path: &str,
    body: Option<Json>,
) -> (u16, Json) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = &who.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Json::Null))
}

async fn gql(app: &TestApp, who: &Who, query: &str, variables: Json) -> Json {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(t) = &who.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

/// REST's outcome as GraphQL names it: `ok` or the error code slug.
fn rest_outcome(status: u16, body: &Json) -> String {
    if status < 300 {
        "ok".into()
    } else {
        body["type"]
            .as_str()
            .and_then(|t| t.rsplit('#').next())
            .unwrap_or("?")
            .to_string()
    }
}

/// GraphQL's outcome of the one root field `field`.
fn gql_outcome(body: &Json, field: &str) -> String {
    match body["errors"].as_array() {
        Some(errors) if !errors.is_empty() => errors[0]["extensions"]["code"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
        _ => {
            assert!(!body["data"][field].is_null(), "{body}");
            "ok".into()
        }
    }
}

/// Every visible field of a collection, refs as their raw `<ref>_id`.
fn selection(model: &Model, collection: &str) -> String {
    model
        .collection(collection)
        .unwrap()
        .visible()
        .map(|f| match f.ty {
            FieldType::Ref { .. } => format!("{}_id", f.name),
            _ => f.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A GraphQL record back in REST's shape.
fn as_rest(model: &Model, collection: &str, record: &Json) -> Json {
    let mut out = serde_json::Map::new();
    for f in model.collection(collection).unwrap().visible() {
        let key = match f.ty {
            FieldType::Ref { .. } => format!("{}_id", f.name),
            _ => f.name.clone(),
        };
        out.insert(f.name.clone(), record[&key].clone());
    }
    Json::Object(out)
}

/// The same record as REST answers it, limited to the visible fields.
fn visible(model: &Model, collection: &str, record: &Json) -> Json {
    let mut out = serde_json::Map::new();
    for f in model.collection(collection).unwrap().visible() {
        out.insert(f.name.clone(), record[&f.name].clone());
    }
    Json::Object(out)
}

async fn principals(app: &TestApp) -> Vec<Who> {
    let mut people = vec![Who {
        name: "anonymous",
        id: None,
        token: None,
    }];
    app.auth
        .create_admin("admin@example.com", "admin password 1")
        .await
        .unwrap();
    for (name, role) in [
        ("owner", None),
        ("other", None),
        ("member", Some("member")),
        ("moderator", Some("moderator")),
        ("admin", None),
    ] {
        let email = format!("{name}@example.com");
        let password = if name == "admin" {
            "admin password 1"
        } else {
            app.post(
                "/v1/auth/signup",
                json!({"email": email, "password": "a long password"}),
            )
            .await;
            "a long password"
        };
        if let Some(role) = role {
            let id = app.auth.user_id_by_email(&email).await.unwrap().unwrap();
            app.auth.set_role("test", &id, role, true).await.unwrap();
        }
        let s: Json = app
            .post(
                "/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await
            .json()
            .await
            .unwrap();
        people.push(Who {
            name,
            id: Some(s["user"]["id"].as_str().unwrap().to_string()),
            token: Some(s["access_token"].as_str().unwrap().to_string()),
        });
    }
    people
}

/// The owner's records in every shape the rules distinguish (one set).
async fn owner_records(app: &TestApp, owner: &Who, followee: &str) -> Vec<(&'static str, Json)> {
    let mut records = Vec::new();
    for vis in ["public", "followers"] {
        let (_, p) = rest(
            app,
            owner,
            Method::POST,
            "/v1/posts",
            Some(json!({"title": vis, "body": "b", "visibility": vis})),
        )
        .await;
        let (_, c) = rest(
            app,
            owner,
            Method::POST,
            "/v1/comments",
            Some(json!({"post": p["id"], "body": "c"})),
        )
        .await;
        let (_, l) = rest(
            app,
            owner,
            Method::POST,
            "/v1/likes",
            Some(json!({"post": p["id"]})),
        )
        .await;
        records.extend([("posts", p), ("comments", c), ("likes", l)]);
    }
    let (_, f) = rest(
        app,
        owner,
        Method::POST,
        "/v1/follows",
        Some(json!({"followee": followee})),
    )
    .await;
    records.push(("follows", f));
    records
}

fn update_body(coll: &str, rec: &Json) -> Json {
    match coll {
        "posts" | "comments" => json!({"body": "edited"}),
        "likes" => json!({"post": rec["post"]}),
        "follows" => json!({"followee": rec["followee"]}),
        _ => json!({"name": "edited"}),
    }
}

async fn graphql_agrees_with_rest_record_for_record(b: Backend) {
    let spec = relaxed_spec();
    let app = spawn_app(b, &spec).await;
    let model =
        keel_spec::load_str(&spec, "keel.toml", &std::collections::BTreeMap::new()).unwrap();
    let people = principals(&app).await;
    let owner = &people[1];
    // Two identical sets: REST writes to one, GraphQL to the other.
    let set_rest = owner_records(&app, owner, people[2].id.as_deref().unwrap()).await;
    let set_gql = owner_records(&app, owner, people[3].id.as_deref().unwrap()).await;
    let (_, me) = rest(&app, owner, Method::GET, "/v1/auth/me", None).await;
    let (_, a) = rest(
        &app,
        &people[2],
        Method::POST,
        "/v1/posts",
        Some(json!({"title": "fresh", "body": "b"})),
    )
    .await;
    let public_post = a["id"].clone();
    let mut checked = 0;
    for who in &people {
        for ((coll, rec), (_, twin)) in set_rest
            .iter()
            .zip(&set_gql)
            .chain([(&("users", me.clone()), &("users", me.clone()))])
        {
            let id = rec["id"].as_str().unwrap();
            let fields = selection(&model, coll);
            // get
            let (status, body) =
                rest(&app, who, Method::GET, &format!("/v1/{coll}/{id}"), None).await;
            let field = format!("{coll}_by_id");
            let g = gql(
                &app,
                who,
                &format!("query($id: String!) {{ {field}(id: $id) {{ {fields} }} }}"),
                json!({"id": id}),
            )
            .await;
            assert_eq!(
                gql_outcome(&g, &field),
                rest_outcome(status, &body),
                "{} get {coll}: {g}",
                who.name
            );
            if status == 200 {
                assert_eq!(
                    as_rest(&model, coll, &g["data"][&field]),
                    visible(&model, coll, &body),
                    "{} get {coll}",
                    who.name
                );
            }
            // list
            let filter = format!("id == \"{id}\"");
            let (status, page) = rest(
                &app,
                who,
                Method::GET,
                &format!(
                    "/v1/{coll}?limit=200&count=true&filter={}",
                    filter.replace(' ', "%20").replace('"', "%22")
                ),
                None,
            )
            .await;
            let g = gql(
                &app,
                who,
                &format!(
                    "query($f: String) {{ {coll}(filter: $f, limit: 200, count: true) {{ items {{ {fields} }} next_cursor total }} }}"
                ),
                json!({"f": filter}),
            )
            .await;
            assert_eq!(
                gql_outcome(&g, coll),
                rest_outcome(status, &page),
                "{} list {coll}: {g}",
                who.name
            );
            if status == 200 {
                let items: Vec<Json> = g["data"][coll]["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| as_rest(&model, coll, r))
                    .collect();
                let expected: Vec<Json> = page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| visible(&model, coll, r))
                    .collect();
                assert_eq!(items, expected, "{} list {coll}", who.name);
                assert_eq!(g["data"][coll]["total"], page["total"]);
                assert_eq!(g["data"][coll]["next_cursor"], page["next_cursor"]);
            }
            // update: REST on one set, GraphQL on its twin
            let (status, body) = rest(
                &app,
                who,
                Method::PATCH,
                &format!("/v1/{coll}/{id}"),
                Some(update_body(coll, rec)),
            )
            .await;
            let field = format!("update_{coll}");
            let g = gql(
                &app,
                who,
                &format!(
                    "mutation($id: String!, $input: {}UpdateInput!) {{ {field}(id: $id, input: $input) {{ id }} }}",
                    pascal(coll)
                ),
                json!({"id": twin["id"], "input": update_body(coll, twin)}),
            )
            .await;
            assert_eq!(
                gql_outcome(&g, &field),
                rest_outcome(status, &body),
                "{} update {coll}: {g}",
                who.name
            );
            checked += 3;
        }
        // create (and delete what was created) as themself, over both surfaces
        for coll in ["posts", "comments", "likes", "follows"] {
            let followee = if who.name == "moderator" {
                people[3].id.clone()
            } else {
                people[4].id.clone()
            };
            let body = match coll {
                "posts" => json!({"title": "t", "body": "b"}),
                "comments" => json!({"post": public_post, "body": "c"}),
                "likes" => json!({"post": public_post}),
                _ => json!({"followee": followee}),
            };
            let (status, created) = rest(
                &app,
                who,
                Method::POST,
                &format!("/v1/{coll}"),
                Some(body.clone()),
            )
            .await;
            let rest_created = rest_outcome(status, &created);
            let rest_deleted = if status == 201 {
                let (s, b) = rest(
                    &app,
                    who,
                    Method::DELETE,
                    &format!("/v1/{coll}/{}", created["id"].as_str().unwrap()),
                    None,
                )
                .await;
                Some(rest_outcome(s, &b))
            } else {
                None
            };
            let field = format!("create_{coll}");
            let g = gql(
                &app,
                who,
                &format!(
                    "mutation($input: {}CreateInput!) {{ {field}(input: $input) {{ {} }} }}",
                    pascal(coll),
                    selection(&model, coll)
                ),
                json!({"input": body}),
            )
            .await;
            assert_eq!(
                gql_outcome(&g, &field),
                rest_created,
                "{} create {coll}: {g}",
                who.name
            );
            if let Some(rest_deleted) = rest_deleted {
                let rec = &g["data"][&field];
                for (k, v) in body.as_object().unwrap() {
                    let got = rec.get(format!("{k}_id")).unwrap_or(&rec[k]);
                    assert_eq!(got, v, "{k}");
                }
                let field = format!("delete_{coll}");
                let d = gql(
                    &app,
                    who,
                    &format!("mutation($id: String!) {{ {field}(id: $id) }}"),
                    json!({"id": rec["id"]}),
                )
                .await;
                assert_eq!(gql_outcome(&d, &field), rest_deleted, "{}", who.name);
                checked += 1;
            }
            checked += 1;
        }
    }
    // Deleting the owner's records, last: REST one set, GraphQL its twin.
    for who in people.iter().rev() {
        for ((coll, rec), (_, twin)) in set_rest.iter().zip(&set_gql).rev() {
            let (status, body) = rest(
                &app,
                who,
                Method::DELETE,
                &format!("/v1/{coll}/{}", rec["id"].as_str().unwrap()),
                None,
            )
            .await;
            let field = format!("delete_{coll}");
            let g = gql(
                &app,
                who,
                &format!("mutation($id: String!) {{ {field}(id: $id) }}"),
                json!({"id": twin["id"]}),
            )
            .await;
            assert_eq!(
                gql_outcome(&g, &field),
                rest_outcome(status, &body),
                "{} delete {coll}: {g}",
                who.name
            );
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
}

fn pascal(s: &str) -> String {
    let mut c = s.chars();
    c.next().unwrap().to_ascii_uppercase().to_string() + c.as_str()
}

async fn graphql_validation_errors_carry_extensions(b: Backend) {
    let app = spawn_app(b, &relaxed_spec()).await;
    let people = principals(&app).await;
    let owner = &people[1];
    let bad = json!({"title": "", "body": "b", "visibility": "public"});
    let (status, problem) = rest(&app, owner, Method::POST, "/v1/posts", Some(bad.clone())).await;
    assert_eq!(status, 422);
    let g = gql(
        &app,
        owner,
        "mutation($input: PostsCreateInput!) { create_posts(input: $input) { id } }",
        json!({"input": bad}),
    )
    .await;
    let e = &g["errors"][0];
    assert_eq!(e["extensions"]["code"], "validation", "{g}");
    assert_eq!(e["extensions"]["errors"], problem["errors"], "{g}");
    assert_eq!(e["path"], json!(["create_posts"]), "{g}");
    assert!(g["data"]["create_posts"].is_null());
    // An enum value outside the spec's is refused by the schema itself.
    let g = gql(
        &app,
        owner,
        "mutation { create_posts(input: {title: \"t\", body: \"b\", visibility: secret}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "malformed-request");
    assert!(g.get("data").is_none(), "{g}");
    // A stale version: precondition-failed with the current one.
    let (_, post) = rest(
        &app,
        owner,
        Method::POST,
        "/v1/posts",
        Some(json!({"title": "t", "body": "b"})),
    )
    .await;
    let g = gql(
        &app,
        owner,
        "mutation($id: String!) { update_posts(id: $id, input: {body: \"x\"}, if_version: 99) { id } }",
        json!({"id": post["id"]}),
    )
    .await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "precondition-failed");
    assert_eq!(
        g["errors"][0]["extensions"]["current_version"],
        post["version"]
    );
    // Idempotency: the same key answers the same record.
    let q = "mutation { create_posts(input: {title: \"i\", body: \"b\"}, idempotency_key: \"k-1\") { id } }";
    let first = gql(&app, owner, q, json!({})).await;
    let again = gql(&app, owner, q, json!({})).await;
    assert_eq!(
        first["data"]["create_posts"]["id"],
        again["data"]["create_posts"]["id"]
    );
    // A bad filter is an invalid parameter, as on REST.
    let g = gql(
        &app,
        owner,
        "{ posts(filter: \"nope ==\") { items { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "invalid-parameter");
}

async fn graphql_refs_load_in_batches(b: Backend) {
    let app = spawn_app(b, &relaxed_spec()).await;
    let people = principals(&app).await;
    // 3 authors × 4 posts, each post with 2 comments by other authors.
    let mut posts = Vec::new();
    for who in &people[1..4] {
        for i in 0..4 {
            let (_, p) = rest(
                &app,
                who,
                Method::POST,
                "/v1/posts",
                Some(json!({"title": format!("p{i}"), "body": "b"})),
            )
            .await;
            posts.push(p);
        }
    }
    for (i, p) in posts.iter().enumerate() {
        for who in [&people[1 + (i + 1) % 3], &people[1 + (i + 2) % 3]] {
            rest(
                &app,
                who,
                Method::POST,
                "/v1/comments",
                Some(json!({"post": p["id"], "body": "c"})),
            )
            .await;
        }
    }
    let limits = std::sync::Arc::new(keel_core::ratelimit::RateLimits::new(
        keel_core::ratelimit::LimitPolicy::default(),
        std::sync::Arc::new(keel_core::ratelimit::RateLimiter::new()),
    ));
    let graphql =
        keel_graphql::GraphQl::new(app.engine.clone(), limits, None, Default::default()).unwrap();
    let principal = keel_core::Principal {
        id: Some(people[1].id.as_deref().unwrap().parse().unwrap()),
        ..keel_core::Principal::anonymous()
    };
    let query = "{ comments(limit: 100) { items { id author { id email } post { id title author { id email } } } } }";
    let before = graphql.ref_batches();
    let out = graphql
        .execute(
            principal,
            "127.0.0.1".into(),
            keel_graphql::async_graphql::Request::new(query),
            true,
        )
        .await;
    assert!(out.response.errors.is_empty(), "{:?}", out.response.errors);
    let data = out.response.data.into_json().unwrap();
    let items = data["comments"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 24);
    // Refs at two levels over 24 comments, 12 posts and 3 authors: one batch per
    // collection and level (more only when a level's loads straddle the loader's 1 ms
    // window on a busy machine), never one query per record.
    let batches = graphql.ref_batches() - before;
    assert!(batches <= 8, "{batches} batches for 48 refs");
    // And they agree with REST's expand.
    let (_, page) = rest(
        &app,
        &people[1],
        Method::GET,
        "/v1/comments?limit=100&expand=author,post",
        None,
    )
    .await;
    for (g, r) in items.iter().zip(page["items"].as_array().unwrap()) {
        assert_eq!(g["id"], r["id"]);
        assert_eq!(g["author"]["email"], r["expand"]["author"]["email"], "{r}");
        assert_eq!(g["post"]["title"], r["expand"]["post"]["title"]);
    }
    for g in items {
        let post = posts.iter().find(|p| p["id"] == g["post"]["id"]).unwrap();
        assert_eq!(g["post"]["author"]["id"], post["author"]);
    }

    // Children from their parent, paged like REST's list of the child collection.
    let me = &people[1];
    let out = gql(
        &app,
        me,
        "{ posts(limit: 100) { items { id comments(limit: 1, sort: \"id\", count: true) { items { id post_id } total next_cursor } } } }",
        json!({}),
    )
    .await;
    assert!(out.get("errors").is_none(), "{out}");
    let parents = out["data"]["posts"]["items"].as_array().unwrap();
    assert!(!parents.is_empty());
    for p in parents {
        let id = p["id"].as_str().unwrap();
        let (_, rest_page) = rest(
            &app,
            me,
            Method::GET,
            &format!(
                "/v1/comments?filter={}&sort=id&limit=1&count=true",
                encode(&format!("post == \"{id}\""))
            ),
            None,
        )
        .await;
        let page = &p["comments"];
        assert_eq!(page["total"], rest_page["total"], "{p}");
        assert_eq!(page["items"][0]["id"], rest_page["items"][0]["id"], "{p}");
        if let Some(first) = page["items"][0].as_object() {
            assert_eq!(first["post_id"], id);
        }
        // The next page through the cursor.
        if let Some(cursor) = page["next_cursor"].as_str() {
            let next = gql(
                &app,
                me,
                "query($id: String!, $c: String) { posts_by_id(id: $id) { comments(limit: 1, sort: \"id\", cursor: $c) { items { id } } } }",
                json!({"id": id, "c": cursor}),
            )
            .await;
            let second = &next["data"]["posts_by_id"]["comments"]["items"][0]["id"];
            assert!(second.is_string(), "{next}");
            assert_ne!(second, &page["items"][0]["id"]);
        }
    }
    // A filter must be one whole expression: it cannot widen the parent's bound.
    let out = gql(
        &app,
        me,
        "{ posts(limit: 1) { items { comments(filter: \"true) || (true\") { total } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        out["errors"][0]["extensions"]["code"], "invalid-parameter",
        "{out}"
    );
}

/// Percent-encode a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn raw(app: &TestApp, req: reqwest::RequestBuilder) -> (u16, String, Json) {
    let _ = app;
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, res.json().await.unwrap_or(Json::Null))
}

async fn graphql_limits_and_malformed_requests_are_errors(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let url = app.url("/graphql");
    let gr = "application/graphql-response+json";
    // Introspection is on.
    let (s, ct, body) = raw(
        &app,
        app.client
            .post(&url)
            .json(&json!({"query": "{ __schema { queryType { name } } }"})),
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "application/json"));
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    // GET serves queries, and refuses mutations with 405.
    let (s, _, body) = raw(
        &app,
        app.client.get(format!(
            "{url}?query={}",
            encode("{ likes { items { id } total } }")
        )),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["likes"]["items"], json!([]));
    let (s, _, body) = raw(
        &app,
        app.client.get(format!(
            "{url}?query={}",
            encode("mutation { delete_likes(id: \"x\") }")
        )),
    )
    .await;
    assert_eq!(s, 405);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "method-not-allowed"
    );
    // Not GraphQL requests: 400, whatever is accepted.
    for req in [
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body("{not json"),
        app.client.post(&url).json(&json!({"variables": {}})),
        app.client.post(&url).json(&json!({"query": 1})),
        app.client
            .post(&url)
            .json(&json!({"query": "{ likes { total } }", "variables": [1]})),
        app.client.get(&url),
    ] {
        let (s, _, body) = raw(&app, req.header("accept", gr)).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "malformed-request");
    }
    let (s, _, _) = raw(
        &app,
        app.client
            .post(&url)
            .header("content-type", "text/plain")
            .body("{ likes { total } }"),
    )
    .await;
    assert_eq!(s, 415);
    // Request errors: 400 with graphql-response+json, 200 with application/json;
    // never a `data` entry.
    // Past the introspection allowance (max depth + 12), and past the data depth.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(20),
        "}".repeat(20)
    );
    let deep_data = format!(
        "{{ comments {{ items {{ {} id {} }} }} }}",
        "post { author { ".repeat(5),
        "} } ".repeat(5)
    );
    let many_aliases = format!(
        "{{ {} }}",
        (0..31)
            .map(|i| format!("a{i}: likes {{ total }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let huge = format!("{{ likes {{ total }} }} #{}", "x".repeat(40 * 1024));
    for (query, code) in [
        ("{ likes { ", "malformed-request"),
        ("{ nothing }", "malformed-request"),
        (deep.as_str(), "malformed-request"),
        (deep_data.as_str(), "malformed-request"),
        (many_aliases.as_str(), "invalid-parameter"),
        (huge.as_str(), "payload-too-large"),
    ] {
        for (accept, status) in [(gr, 400), ("application/json", 200)] {
            let (s, ct, body) = raw(
                &app,
                app.client
                    .post(&url)
                    .header("accept", accept)
                    .json(&json!({"query": query})),
            )
            .await;
            assert_eq!(s, status, "{query:.60}: {body}");
            assert!(ct.starts_with(accept), "{ct}");
            assert_eq!(
                body["errors"][0]["extensions"]["code"], code,
                "{query:.60}: {body}"
            );
            assert!(body.get("data").is_none(), "{body}");
            if query == deep || query == deep_data {
                let message = body["errors"][0]["message"].as_str().unwrap_or_default();
                assert!(message.contains("too deep"), "{body}");
            }
        }
    }
    // Operations count against the REST quotas: `POST /v1/posts` = 10/min.
    app.post(
        "/v1/auth/signup",
        json!({"email": "q@example.com", "password": "a long password"}),
    )
    .await;
    let s: Json = app
        .post(
            "/v1/auth/login",
            json!({"email": "q@example.com", "password": "a long password"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let who = Who {
        name: "q",
        id: None,
        token: Some(s["access_token"].as_str().unwrap().to_string()),
    };
    let q = "mutation { create_posts(input: {title: \"t\", body: \"b\"}) { id } }";
    for i in 0..10 {
        let g = gql(&app, &who, q, json!({})).await;
        assert!(g.get("errors").is_none(), "{i} {}: {g}", who.name);
    }
    let g = gql(&app, &who, q, json!({})).await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "rate-limited", "{g}");
    assert!(
        g["errors"][0]["extensions"]["retry_after"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let (status, _) = rest(
        &app,
        &who,
        Method::POST,
        "/v1/posts",
        Some(json!({"title": "t", "body": "b"})),
    )
    .await;
    assert_eq!(status, 429);
}

async fn graphql_name_clash_leaves_rest_serving(b: Backend) {
    // `post`'s list type and `post_list`'s object type are both `PostList`: no
    // schema, REST unaffected.
    let spec = r#"
[app]
name = "clash"

[collections.post]
fields.t = { type = "text" }
access.read = "true"

[collections.post_list]
fields.t = { type = "text" }
access.read = "true"
"#;
    let app = spawn_app(b, spec).await;
    let res = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": "{ post { total } }"}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert_eq!(status, 404, "{}", res.text().await.unwrap());
    let res = app.get("/v1/post_list").await;
    assert_eq!(res.status().as_u16(), 200);
}

/// graphql-js builds and validates the introspection result (`buildClientSchema` +
/// `validateSchema`), and the served schema is the `schema.graphql` `keel design`
/// writes for the same spec.
async fn graphql_js_accepts_the_served_schema_and_it_is_the_designs(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let model = keel_spec::load_str(SPEC, "keel.toml", &std::collections::BTreeMap::new()).unwrap();
    let files = keel::samples::design(&model, SPEC, "keel.toml", keel_design::Format::Markdown)
        .await
        .unwrap();
    let (_, sdl) = files
        .iter()
        .find(|(name, _)| name == "schema.graphql")
        .expect("keel design writes schema.graphql");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("schema.graphql");
    std::fs::write(&file, sdl).unwrap();
    let dir = std::path::PathBuf::from(
        std::env::var("KEEL_REALTIME_DIR")
            .expect("KEEL_REALTIME_DIR is not set: run the tests through scripts/test.sh"),
    );
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/realtime/graphql_schema_check.mjs"
        ),
        dir.join("graphql_schema_check.mjs"),
    )
    .unwrap();
    let out = tokio::process::Command::new("node")
        .arg("graphql_schema_check.mjs")
        .arg("served")
        .arg(app.url("/graphql"))
        .arg(&file)
        .current_dir(&dir)
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
}

/// graphql-http's `auditServer` (the GraphQL-over-HTTP spec's MUST, SHOULD and MAY
/// checks): every audit passes, not only the MUSTs.
async fn graphql_http_audit_passes(b: Backend) {
    let app = spawn_app(b, &relaxed_spec()).await;
    let dir = std::path::PathBuf::from(
        std::env::var("KEEL_REALTIME_DIR")
            .expect("KEEL_REALTIME_DIR is not set: run the tests through scripts/test.sh"),
    );
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/realtime/graphql_http_audit.mjs"
        ),
        dir.join("graphql_http_audit.mjs"),
    )
    .unwrap();
    let out = tokio::process::Command::new("node")
        .arg("graphql_http_audit.mjs")
        .arg(app.url("/graphql"))
        .current_dir(&dir)
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audits: Vec<Json> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(audits.len() > 50, "{stdout}");
    let not_ok: Vec<&Json> = audits
        .iter()
        .filter(|a| a.get("status").is_some_and(|s| s != "ok"))
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:?}");
}

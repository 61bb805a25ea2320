//! REST on records: create, get, list (filter, sort, cursor, fields, expand, count),
//! update with If-Match, delete, idempotency, validation, rules.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, problem, spawn_app};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub const SPEC: &str = r#"
[app]
name = "test"

[collections.users]
access.read = "true"
access.create = "true"
access.delete = "true"

[collections.posts]
fields.title = { type = "text", required = true, min_length = 1, max_length = 50 }
fields.body = { type = "text", max_length = 1000 }
fields.views = { type = "int", min = 0 }
fields.score = { type = "float" }
fields.published = { type = "bool", default = false }
fields.status = { type = "enum", values = ["draft", "public", "secret"], default = "draft" }
fields.author = { type = "ref", to = "users", on_delete = "restrict" }
fields.slug = { type = "text", unique = true, pattern = "^[a-z0-9-]+$" }
fields.meta = { type = "json" }
fields.due = { type = "date" }
fields.published_at = { type = "datetime" }
fields.code = { type = "text", immutable = true }
fields.internal = { type = "text", hidden = true, default = "x" }
indexes = [["status", "-created_at"]]
access.read = 'status != "secret"'
access.create = "true"
access.update = "true"
access.delete = "true"

[collections.notes]
fields.text = { type = "text" }

[collections.locked]
fields.text = { type = "text" }
access.read = "true"
access.create = "auth.id != null"
"#;

async fn app(b: Backend) -> TestApp {
    spawn_app(b, SPEC).await
}

async fn create_get_round_trip(b: Backend) {
    let app = app(b).await;
    let res = app
        .post("/v1/posts", json!({"title": "Hello", "views": 3, "score": 1.5, "meta": {"k": [1, 2]}, "due": "2026-02-03", "published_at": "2026-01-31T12:00:00+01:00"}))
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(res.headers()["etag"], "\"1\"");
    let created: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/posts/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["version"], 1);
    assert_eq!(created["published"], false, "default applied");
    assert_eq!(created["status"], "draft");
    assert_eq!(
        created["published_at"], "2026-01-31T11:00:00.000000Z",
        "stored in UTC"
    );
    assert_eq!(created["meta"], json!({"k": [1, 2]}));
    assert!(
        created.get("internal").is_none(),
        "hidden fields never leave the server"
    );
    assert!(
        uuid::Uuid::parse_str(created["id"].as_str().unwrap())
            .unwrap()
            .get_version_num()
            == 7
    );

    let res = app.get(&location).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let got: Value = res.json().await.unwrap();
    assert_eq!(got, created);
}

async fn list_pages_with_cursor_are_stable_under_inserts(b: Backend) {
    let app = app(b).await;
    let mut all = BTreeSet::new();
    for i in 0..45 {
        let p = app.create("posts", json!({"title": format!("p{i}")})).await;
        all.insert(p["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/posts?limit=20&cursor={c}"),
            None => "/v1/posts?limit=20".to_string(),
        };
        let page = app.list(&q).await;
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        // New rows arriving between pages sort before the cursor: no duplicates, no skips.
        app.create("posts", json!({"title": "late"})).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates across pages");
    assert_eq!(unique, all, "every record of the first snapshot, once");
    // Default order is newest first.
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted);
}

async fn filter_sort_fields_count(b: Backend) {
    let app = app(b).await;
    for (i, (title, views, status)) in [
        ("Rust tips", 10, "public"),
        ("rusty nails", 5, "draft"),
        ("Go", 7, "public"),
        ("Zig", 0, "secret"),
        ("None", -1, "draft"),
    ]
    .iter()
    .enumerate()
    {
        let mut body = json!({"title": title, "status": status, "score": i as f64 / 2.0});
        if *views >= 0 {
            body["views"] = json!(views);
        }
        app.create("posts", body).await;
    }
    let titles = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |f: &str| format!("/v1/posts?sort=title&filter={}", urlencode(f));
    assert_eq!(
        titles(&app.list(&q(r#"title ~ "rust""#)).await),
        ["Rust tips", "rusty nails"]
    );
    assert_eq!(
        titles(&app.list(&q("views >= 5 && views < 10")).await),
        ["Go", "rusty nails"]
    );
    assert_eq!(titles(&app.list(&q("views == null")).await), ["None"]);
    assert_eq!(
        titles(&app.list(&q(r#"status in ["draft"] || views > 8"#)).await),
        ["None", "Rust tips", "rusty nails"]
    );
    assert_eq!(
        titles(&app.list(&q("!(views > 6)")).await),
        ["None", "rusty nails"],
        "NULL comparisons are false, so their negation is true"
    );
    // The read rule applies before the filter: the secret post never shows.
    assert_eq!(
        titles(&app.list(&q(r#"title == "Zig""#)).await),
        Vec::<String>::new()
    );
    // Multi-key sort with nulls.
    let page = app.list("/v1/posts?sort=-views,title").await;
    assert_eq!(titles(&page), ["Rust tips", "Go", "rusty nails", "None"]);
    // fields and count
    let page = app
        .list("/v1/posts?fields=title,views&count=true&limit=2&sort=title")
        .await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["items"][0], json!({"title": "Go", "views": 7}));
    assert!(page["next_cursor"].is_string());
}

async fn cursor_walks_multi_key_sorts_with_nulls(b: Backend) {
    let app = app(b).await;
    let mut expected = Vec::new();
    for i in 0..13 {
        let views = if i % 3 == 0 {
            Value::Null
        } else {
            json!(i % 4)
        };
        let p = app
            .create(
                "posts",
                json!({"title": format!("t{:02}", i % 5), "views": views}),
            )
            .await;
        expected.push(p["id"].as_str().unwrap().to_string());
    }
    for sort in [
        "views,title",
        "-views,title",
        "-views,-title",
        "title,-views",
    ] {
        let full = app.list(&format!("/v1/posts?sort={sort}&limit=200")).await;
        let full: Vec<String> = full["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(full.len(), 13);
        let mut walked = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = app
                .list(&format!("/v1/posts?sort={sort}&limit=4&cursor={cursor}"))
                .await;
            walked.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(walked, full, "sort {sort}");
    }
}

async fn cursor_is_signed_and_tied_to_its_sort(b: Backend) {
    let app = app(b).await;
    for i in 0..3 {
        app.create("posts", json!({"title": format!("t{i}")})).await;
    }
    let page = app.list("/v1/posts?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let p = problem(
        app.get(&format!("/v1/posts?limit=1&sort=title&cursor={cursor}"))
            .await,
        400,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "cursor");
    let mut forged = cursor.to_string();
    forged.replace_range(0..2, "ey");
    problem(
        app.get(&format!("/v1/posts?limit=1&cursor={forged}x"))
            .await,
        400,
    )
    .await;
    problem(app.get("/v1/posts?cursor=not-a-cursor").await, 400).await;
}

async fn expand_embeds_refs_under_their_rules(b: Backend) {
    let app = app(b).await;
    let user = app
        .create("users", json!({"email": "ada@example.com", "name": "Ada"}))
        .await;
    let post = app
        .create("posts", json!({"title": "x", "author": user["id"]}))
        .await;
    let got = app
        .list(&format!(
            "/v1/posts/{}?expand=author",
            post["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got["author"], user["id"]);
    assert_eq!(got["expand"]["author"]["email"], "ada@example.com");
    let page = app.list("/v1/posts?expand=author").await;
    assert_eq!(page["items"][0]["expand"]["author"]["name"], "Ada");
    problem(app.get("/v1/posts?expand=title").await, 400).await;
    problem(app.get("/v1/posts?expand=nope").await, 400).await;
    // A ref to a missing record is a 422 naming the field.
    let p = problem(
        app.post(
            "/v1/posts",
            json!({"title": "x", "author": uuid::Uuid::now_v7()}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "author");
    assert_eq!(p["errors"][0]["code"], "not_found");
}

async fn idempotency_key_replays_the_first_answer(b: Backend) {
    let app = app(b).await;
    let send = |key: &'static str, body: Value| {
        app.client
            .post(app.url("/v1/posts"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("k-1", json!({"title": "once"})).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", json!({"title": "once"})).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let page = app.list("/v1/posts?count=true").await;
    assert_eq!(page["total"], 1, "the retry created nothing");
    let p = problem(
        send("k-1", json!({"title": "different"})).await.unwrap(),
        409,
    )
    .await;
    assert_eq!(p["type"], "/docs/errors#idempotency-key-reused");
}

async fn update_with_if_match_and_concurrent_writers(b: Backend) {
    let app = app(b).await;
    let post = app
        .create("posts", json!({"title": "v1", "code": "A"}))
        .await;
    let path = format!("/v1/posts/{}", post["id"].as_str().unwrap());
    let res = app
        .client
        .patch(app.url(&path))
        .header("if-match", "\"1\"")
        .json(&json!({"title": "v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["title"], "v2");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["code"], "A");
    assert_ne!(updated["updated_at"], post["updated_at"]);
    assert_eq!(updated["created_at"], post["created_at"]);
    // Stale version → 412 with the current ETag.
    let res = app
        .client
        .patch(app.url(&path))
        .header("if-match", "\"1\"")
        .json(&json!({"title": "v3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["etag"], "\"2\"");
    problem(res, 412).await;
    // Immutable, readonly and unknown fields are refused.
    let p = problem(
        app.patch(&path, json!({"code": "B", "version": 9, "nope": 1}))
            .await,
        422,
    )
    .await;
    let codes: BTreeSet<String> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["field"].as_str().unwrap(),
                e["code"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        codes,
        ["code:immutable", "nope:unknown_field", "version:readonly"]
            .map(String::from)
            .into()
    );
    // Ten writers holding version 2: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = app.client.clone();
        let url = app.url(&path);
        tasks.push(tokio::spawn(async move {
            client
                .patch(url)
                .header("if-match", "\"2\"")
                .json(&json!({"title": format!("w{i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        9,
        "{statuses:?}"
    );
    let now = app.list(&path).await;
    assert_eq!(now["version"], 3);
}

async fn delete_and_restrict(b: Backend) {
    let app = app(b).await;
    let user = app
        .create("users", json!({"email": "bob@example.com"}))
        .await;
    let post = app
        .create("posts", json!({"title": "x", "author": user["id"]}))
        .await;
    let post_path = format!("/v1/posts/{}", post["id"].as_str().unwrap());
    let user_path = format!("/v1/users/{}", user["id"].as_str().unwrap());
    // The post still points at the user (on_delete = restrict).
    let p = problem(app.delete(&user_path).await, 409).await;
    assert_eq!(p["type"], "/docs/errors#conflict");
    let res = app
        .client
        .delete(app.url(&post_path))
        .header("if-match", "\"7\"")
        .send()
        .await
        .unwrap();
    problem(res, 412).await;
    let res = app.delete(&post_path).await;
    assert_eq!(res.status(), 204);
    problem(app.get(&post_path).await, 404).await;
    problem(app.delete(&post_path).await, 404).await;
    assert_eq!(app.delete(&user_path).await.status(), 204);
}

async fn validation_errors_name_each_field(b: Backend) {
    let app = app(b).await;
    let p = problem(
        app.post("/v1/posts", json!({"body": 5, "views": -1, "status": "nope", "slug": "Not Valid", "due": "2026-13-01", "published_at": "yesterday", "score": "x", "id": "x"})).await,
        422,
    )
    .await;
    let codes: BTreeSet<String> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["field"].as_str().unwrap(),
                e["code"].as_str().unwrap()
            )
        })
        .collect();
    let expected: BTreeSet<String> = [
        "title:required",
        "body:type",
        "views:too_small",
        "status:invalid_enum",
        "slug:pattern",
        "due:invalid_date",
        "published_at:invalid_datetime",
        "score:type",
        "id:readonly",
    ]
    .map(String::from)
    .into();
    assert_eq!(codes, expected);
    assert_eq!(p["type"], "/docs/errors#validation");
    let p = problem(
        app.post("/v1/posts", json!({"title": "x".repeat(51)}))
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["code"], "too_long");
    let p = problem(
        app.post("/v1/posts", json!(["not", "an", "object"])).await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["code"], "type");
    let p = problem(app.post("/v1/posts", json!({"title": null})).await, 422).await;
    assert_eq!(p["errors"][0]["code"], "required");
}

async fn unique_violation_is_409(b: Backend) {
    let app = app(b).await;
    app.create("posts", json!({"title": "a", "slug": "same"}))
        .await;
    let p = problem(
        app.post("/v1/posts", json!({"title": "b", "slug": "same"}))
            .await,
        409,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "slug");
    assert_eq!(p["type"], "/docs/errors#conflict");
    assert_eq!(app.list("/v1/posts?count=true").await["total"], 1);
}

async fn rules_deny_by_default(b: Backend) {
    let app = app(b).await;
    // No rule for an operation: nobody may.
    problem(app.get("/v1/notes").await, 401).await;
    problem(app.post("/v1/notes", json!({"text": "x"})).await, 401).await;
    // A rule that is false for an anonymous caller.
    let p = problem(app.post("/v1/locked", json!({"text": "x"})).await, 401).await;
    assert_eq!(p["type"], "/docs/errors#unauthorized");
    assert_eq!(
        app.list("/v1/locked?count=true").await["total"],
        0,
        "nothing was written"
    );
    // A record the read rule hides is a 404.
    let secret = app
        .create("posts", json!({"title": "s", "status": "secret"}))
        .await;
    problem(
        app.get(&format!("/v1/posts/{}", secret["id"].as_str().unwrap()))
            .await,
        404,
    )
    .await;
    problem(
        app.patch(
            &format!("/v1/posts/{}", secret["id"].as_str().unwrap()),
            json!({"title": "t"}),
        )
        .await,
        404,
    )
    .await;
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

backend_tests!(
    conditional_gets_answer_304_for_the_current_etag,
    create_get_round_trip,
    list_pages_with_cursor_are_stable_under_inserts,
    filter_sort_fields_count,
    cursor_walks_multi_key_sorts_with_nulls,
    cursor_is_signed_and_tied_to_its_sort,
    expand_embeds_refs_under_their_rules,
    idempotency_key_replays_the_first_answer,
    update_with_if_match_and_concurrent_writers,
    delete_and_restrict,
    validation_errors_name_each_field,
    unique_violation_is_409,
    rules_deny_by_default,
    encrypted_fields_are_ciphertext_at_rest,
);

const ENCRYPTED: &str = r#"
[app]
name = "enc"
[collections.people]
fields.name = { type = "text" }
fields.ssn = { type = "text", encrypted = true, max_length = 11 }
fields.medical = { type = "json", encrypted = true }
access.read = "true"
access.create = "true"
access.update = "true"
"#;

async fn encrypted_fields_are_ciphertext_at_rest(b: Backend) {
    let app = spawn_app(b, ENCRYPTED).await;
    let p = app
        .create(
            "people",
            json!({"name": "Ada", "ssn": "123-45-6789", "medical": {"allergies": ["nuts"]}}),
        )
        .await;
    assert_eq!(p["ssn"], "123-45-6789");
    assert_eq!(p["medical"], json!({"allergies": ["nuts"]}));
    let rows = app
        .engine
        .store()
        .query(
            &keel_store::Stmt::new("SELECT ssn, medical FROM people", vec![]),
            &[keel_spec::Storage::Text, keel_spec::Storage::Text],
        )
        .await
        .unwrap();
    for v in &rows[0] {
        let s = v.as_str().unwrap();
        assert!(s.starts_with("enc:v1:t1:"), "{s}");
        assert!(!s.contains("123-45") && !s.contains("nuts"), "{s}");
    }
    let path = format!("/v1/people/{}", p["id"].as_str().unwrap());
    let updated = app
        .patch(&path, json!({"ssn": "987-65-4321"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(updated["ssn"], "987-65-4321");
    assert_eq!(app.list(&path).await["medical"]["allergies"][0], "nuts");
    // Validation still applies to the plaintext; filters and sorts cannot see it.
    let e = problem(
        app.post("/v1/people", json!({"ssn": "x".repeat(12)})).await,
        422,
    )
    .await;
    assert_eq!(e["errors"][0]["code"], "too_long");
    problem(
        app.get("/v1/people?filter=ssn%20%3D%3D%20%22x%22").await,
        400,
    )
    .await;
    problem(app.get("/v1/people?sort=ssn").await, 400).await;
}

/// `GET` answers carry an `ETag` (a record's version; a weak tag over a list's bytes)
/// and `If-None-Match` with the current one is a 304 with no body, until the data
/// changes.
async fn conditional_gets_answer_304_for_the_current_etag(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let created: Value = app
        .post("/v1/posts", json!({"title": "tagged"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/posts/{id}");
    let get = |tag: Option<String>, path: String| {
        let mut req = app.client.get(app.url(&path));
        if let Some(t) = tag {
            req = req.header("if-none-match", t);
        }
        req.send()
    };
    let tag_of = |res: &reqwest::Response| {
        res.headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string())
            .expect("an ETag")
    };
    // A record: its version; 304 while it holds, 200 with the new one after a change.
    let res = get(None, path.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tag_of(&res), "\"1\"");
    let res = get(Some("\"1\"".into()), path.clone()).await.unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(tag_of(&res), "\"1\"");
    assert!(res.bytes().await.unwrap().is_empty());
    let res = get(Some("W/\"7\", \"1\"".into()), path.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 304, "any tag of a list, weakly compared");
    let res = app
        .client
        .patch(app.url(&path))
        .json(&json!({"title": "tagged again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = get(Some("\"1\"".into()), path.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tag_of(&res), "\"2\"");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["title"], "tagged again");

    // A list: a weak tag over its bytes; the same answer, the same tag.
    let list = "/v1/posts?sort=-created_at".to_string();
    let res = get(None, list.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let tag = tag_of(&res);
    assert!(tag.starts_with("W/\""), "{tag}");
    let res = get(Some(tag.clone()), list.clone()).await.unwrap();
    assert_eq!(res.status(), 304);
    assert!(res.bytes().await.unwrap().is_empty());
    app.post("/v1/posts", json!({"title": "another"})).await;
    let res = get(Some(tag.clone()), list.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_ne!(tag_of(&res), tag);

    // With `expand`, the version does not cover the referenced records: a weak tag.
    let res = get(None, format!("{path}?expand=author")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(tag_of(&res).starts_with("W/\""));
    // A miss is not a 304, whatever the tag.
    let res = get(
        Some("*".into()),
        "/v1/posts/01a2135f-490d-7221-b17e-17fd10caf13c".into(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
}

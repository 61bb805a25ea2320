//! Identity and access over real HTTP: sign-up, login, tokens (and their forgeries),
//! refresh rotation with reuse detection, logout, roles, row-level rules per user,
//! rate limits.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, problem, spawn_app};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const SPEC: &str = r#"
[app]
name = "authtest"

[roles]
member = {}
moderator = { inherits = ["member"] }

[collections.posts]
fields.title = { type = "text", required = true, max_length = 100 }
fields.author = { type = "ref", to = "users", default = "auth.id", immutable = true, on_delete = "cascade" }
fields.visibility = { type = "enum", values = ["public", "private"], default = "public" }
access.read = 'visibility == "public" || author == auth.id'
access.create = "auth.id != null && author == auth.id"
access.update = 'author == auth.id || auth.has_role("moderator")'
access.delete = "author == auth.id"

[limits]
"POST /v1/auth/signup" = "1000/min"
"POST /v1/auth/login" = "1000/min"
"DELETE /v1/posts/{id}" = "2/min"
"#;

pub struct User {
    pub id: String,
    pub token: String,
    pub refresh: String,
}

pub async fn signup(app: &TestApp, email: &str) -> User {
    let res = app
        .post(
            "/v1/auth/signup",
            json!({"email": email, "password": "correct horse battery", "name": "N"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["token_type"], "Bearer");
    assert_eq!(s["expires_in"], 900);
    assert!(s["user"].get("password_hash").is_none(), "{s}");
    User {
        id: s["user"]["id"].as_str().unwrap().to_string(),
        token: s["access_token"].as_str().unwrap().to_string(),
        refresh: s["refresh_token"].as_str().unwrap().to_string(),
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

async fn signup_login_me(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "Ada@Example.com").await;
    let me: Value = app
        .client
        .get(app.url("/v1/auth/me"))
        .header("authorization", bearer(&ada.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["email"], "ada@example.com",
        "emails are stored in lowercase"
    );
    assert_eq!(me["id"], ada.id.as_str());
    // Emails are unique case-insensitively.
    let p = problem(
        app.post(
            "/v1/auth/signup",
            json!({"email": "ADA@example.com", "password": "another long one"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "email");
    let p = problem(
        app.post(
            "/v1/auth/signup",
            json!({"email": "bob@example.com", "password": "short"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "password");
    assert_eq!(p["errors"][0]["code"], "too_short");
    problem(
        app.post(
            "/v1/auth/signup",
            json!({"email": "bob@example.com", "password": "long enough pass", "roles": ["admin"]}),
        )
        .await,
        422,
    )
    .await;
    // Login: right, wrong password, unknown email — the last two answer alike.
    let ok = app
        .post(
            "/v1/auth/login",
            json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let wrong = problem(
        app.post(
            "/v1/auth/login",
            json!({"email": "ada@example.com", "password": "nope nope nope"}),
        )
        .await,
        401,
    )
    .await;
    let unknown = problem(
        app.post(
            "/v1/auth/login",
            json!({"email": "who@example.com", "password": "nope nope nope"}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["type"], unknown["type"]);
    problem(app.get("/v1/auth/me").await, 401).await;
    // The password hash never leaves the server, not even through lists or filters.
    let res = app
        .client
        .get(app.url("/v1/users?filter=password_hash%20!%3D%20null"))
        .header("authorization", bearer(&ada.token))
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
}

async fn forged_tokens_are_401(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let parts: Vec<&str> = ada.token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().unwrap().to_string();
    let jwks: Value = app.list("/.well-known/jwks.json").await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str() && k["crv"] == "Ed25519")
    );
    claims["roles"] = json!(["admin"]);
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let forged = [
        format!("{}.{}.{}", parts[0], enc(&claims), parts[2]),
        format!("{}.{}.", enc(&json!({"alg": "none", "kid": kid})), parts[1]),
        format!(
            "{}.{}.{}",
            enc(&json!({"alg": "HS256", "kid": kid})),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            enc(&json!({"alg": "EdDSA", "kid": "other"})),
            parts[1],
            parts[2]
        ),
        "not.a.token".to_string(),
        String::new(),
        format!("{}x", ada.token),
    ];
    for t in forged {
        let res = app
            .client
            .get(app.url("/v1/posts"))
            .header("authorization", bearer(&t))
            .send()
            .await
            .unwrap();
        let p = problem(res, 401).await;
        assert_eq!(p["type"], "/docs/errors#unauthorized", "{t}");
    }
    let res = app
        .client
        .get(app.url("/v1/posts"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
    // After a key rotation, old tokens still verify and new ones use the new key.
    let new_kid = app.auth.keys().rotate().await.unwrap();
    let res = app
        .client
        .get(app.url("/v1/auth/me"))
        .header("authorization", bearer(&ada.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let s: Value = app
        .post("/v1/auth/refresh", json!({"refresh_token": ada.refresh}))
        .await
        .json()
        .await
        .unwrap();
    let head: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                s["access_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(head["kid"], new_kid.as_str());
}

async fn refresh_rotation_and_reuse_detection(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let r1 = app
        .post("/v1/auth/refresh", json!({"refresh_token": ada.refresh}))
        .await;
    assert_eq!(r1.status(), 200);
    let r1: Value = r1.json().await.unwrap();
    let second = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, ada.refresh);
    // The first token again: stolen. The whole family dies, including `second`.
    problem(
        app.post("/v1/auth/refresh", json!({"refresh_token": ada.refresh}))
            .await,
        401,
    )
    .await;
    problem(
        app.post("/v1/auth/refresh", json!({"refresh_token": second}))
            .await,
        401,
    )
    .await;
    problem(
        app.post("/v1/auth/refresh", json!({"refresh_token": "made-up"}))
            .await,
        401,
    )
    .await;
    problem(app.post("/v1/auth/refresh", json!({})).await, 422).await;
    // Logout ends one session; logout-all ends every one.
    let s1: Value = app
        .post(
            "/v1/auth/login",
            json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let s2: Value = app
        .post(
            "/v1/auth/login",
            json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .post(
            "/v1/auth/logout",
            json!({"refresh_token": s1["refresh_token"]}),
        )
        .await;
    assert_eq!(res.status(), 204);
    problem(
        app.post(
            "/v1/auth/refresh",
            json!({"refresh_token": s1["refresh_token"]}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(
        app.post(
            "/v1/auth/refresh",
            json!({"refresh_token": s2["refresh_token"]})
        )
        .await
        .status(),
        200
    );
    let s3: Value = app
        .post(
            "/v1/auth/login",
            json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/v1/auth/logout-all"))
        .header(
            "authorization",
            bearer(s3["access_token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(
        app.post(
            "/v1/auth/refresh",
            json!({"refresh_token": s3["refresh_token"]}),
        )
        .await,
        401,
    )
    .await;
}

async fn rules_per_user_and_roles(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let as_user = |u: &User, m: reqwest::Method, path: &str| {
        app.client
            .request(m, app.url(path))
            .header("authorization", bearer(&u.token))
    };
    // Anonymous may not create; a user may, as themself only.
    problem(app.post("/v1/posts", json!({"title": "anon"})).await, 401).await;
    let res = as_user(&ada, reqwest::Method::POST, "/v1/posts")
        .json(&json!({"title": "private", "visibility": "private"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let private: Value = res.json().await.unwrap();
    assert_eq!(private["author"], ada.id.as_str(), "default = auth.id");
    let res = as_user(&bob, reqwest::Method::POST, "/v1/posts")
        .json(&json!({"title": "forged", "author": ada.id}))
        .send()
        .await
        .unwrap();
    // Bob may not read Ada's user record, so to him her id is no record at all: the
    // same 409 as a ref to nothing (a ref must never reveal what the caller cannot read).
    let p = problem(res, 409).await;
    assert_eq!(p["errors"][0]["field"], "author", "{p}");
    assert_eq!(p["errors"][0]["code"], "not_found", "{p}");
    let public: Value = as_user(&ada, reqwest::Method::POST, "/v1/posts")
        .json(&json!({"title": "public"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Bob sees only the public post: not listed, not counted, not fetched, not filtered into view.
    let page: Value = as_user(&bob, reqwest::Method::GET, "/v1/posts?count=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], public["id"]);
    let page: Value = as_user(
        &bob,
        reqwest::Method::GET,
        "/v1/posts?filter=visibility%20%3D%3D%20%22private%22&count=true",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(page["total"], 0);
    let private_path = format!("/v1/posts/{}", private["id"].as_str().unwrap());
    problem(
        as_user(&bob, reqwest::Method::GET, &private_path)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(
        as_user(&ada, reqwest::Method::GET, &private_path)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let page: Value = as_user(&ada, reqwest::Method::GET, "/v1/posts?count=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 2);
    // Bob may read the public post but not update it — until he is a moderator.
    let public_path = format!("/v1/posts/{}", public["id"].as_str().unwrap());
    let res = as_user(&bob, reqwest::Method::PATCH, &public_path)
        .json(&json!({"title": "mod"}))
        .send()
        .await
        .unwrap();
    problem(res, 403).await;
    // Only admins grant roles.
    let res = as_user(
        &ada,
        reqwest::Method::POST,
        &format!("/v1/admin/users/{}/roles", bob.id),
    )
    .json(&json!({"role": "moderator"}))
    .send()
    .await
    .unwrap();
    problem(res, 403).await;
    app.auth
        .create_admin("root@example.com", "root password 123")
        .await
        .unwrap();
    let root: Value = app
        .post(
            "/v1/auth/login",
            json!({"email": "root@example.com", "password": "root password 123"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let root = User {
        id: String::new(),
        token: root["access_token"].as_str().unwrap().into(),
        refresh: String::new(),
    };
    let res = as_user(
        &root,
        reqwest::Method::POST,
        &format!("/v1/admin/users/{}/roles", bob.id),
    )
    .json(&json!({"role": "nope"}))
    .send()
    .await
    .unwrap();
    problem(res, 422).await;
    let res = as_user(
        &root,
        reqwest::Method::POST,
        &format!("/v1/admin/users/{}/roles", bob.id),
    )
    .json(&json!({"role": "moderator"}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let granted: Value = res.json().await.unwrap();
    assert_eq!(granted["roles"], json!(["moderator"]));
    // The new role arrives with the next token.
    let fresh: Value = app
        .post("/v1/auth/refresh", json!({"refresh_token": bob.refresh}))
        .await
        .json()
        .await
        .unwrap();
    let bob2 = User {
        id: bob.id.clone(),
        token: fresh["access_token"].as_str().unwrap().into(),
        refresh: String::new(),
    };
    let res = as_user(&bob2, reqwest::Method::PATCH, &public_path)
        .json(&json!({"title": "moderated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Delete stays the author's.
    problem(
        as_user(&bob2, reqwest::Method::DELETE, &public_path)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_eq!(
        as_user(&ada, reqwest::Method::DELETE, &public_path)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let res = as_user(
        &root,
        reqwest::Method::DELETE,
        &format!("/v1/admin/users/{}/roles/moderator", bob.id),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["roles"], json!([]));
}

async fn rate_limits_answer_429_with_headers(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let path = format!("/v1/posts/{}", uuid::Uuid::now_v7());
    let del = || {
        app.client
            .delete(app.url(&path))
            .header("authorization", bearer(&ada.token))
            .send()
    };
    let first = del().await.unwrap();
    assert_eq!(first.status(), 404);
    assert!(
        first.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("q=2;w=60")
    );
    assert!(
        first.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains("r=1")
    );
    assert_eq!(del().await.unwrap().status(), 404);
    let res = del().await.unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let p = problem(res, 429).await;
    assert_eq!(p["type"], "/docs/errors#rate-limited");
    // Another user has their own allowance.
    let bob = signup(&app, "bob@example.com").await;
    let res = app
        .client
        .delete(app.url(&path))
        .header("authorization", bearer(&bob.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Logins are throttled per account even when the route allows more.
    let mut last = 0;
    for _ in 0..12 {
        last = app
            .post(
                "/v1/auth/login",
                json!({"email": "ada@example.com", "password": "wrong password"}),
            )
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
}

backend_tests!(
    signup_login_me,
    forged_tokens_are_401,
    refresh_rotation_and_reuse_detection,
    rules_per_user_and_roles,
    rate_limits_answer_429_with_headers,
);

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let spec = format!("[server]\ncors_origins = [\"https://app.example.com\"]\n{SPEC}");
    let app = spawn_app(Backend::Sqlite, &spec).await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/posts"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let res = app
        .client
        .get(app.url("/v1/posts"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = app
        .client
        .get(app.url("/v1/posts"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("etag")
    );
}

//! Operating events over real HTTP and the real binary: a dead-lettered delivery is
//! listed (route and `keel events list`), retried (route and CLI) and delivered; a
//! destination a 410 disabled comes back on retry, the route waking the relay at once;
//! replay re-delivers under the same webhook id; unknown destinations are refused;
//! only admins may do any of it.

use crate::auth::signup;
use crate::backend_tests;
use crate::events::{Receiver, SECRET, eventually};
use crate::helpers::{Backend, TestApp, TestDb, problem, spawn_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn spec(url: &str) -> String {
    format!(
        r#"
[app]
name = "eventsadmin"
[collections.posts]
fields.title = {{ type = "text", required = true, max_length = 100 }}
access.read = "true"
access.create = "true"
[events.webhooks.hook]
url = "{url}"
on = ["posts.*"]
secret = "{SECRET}"
allow_private = true
"#
    )
}

/// A relay that retries once after 20 ms, then dead-letters; it polls every `poll`.
fn relay(poll: Duration) -> keel_events::RelaySettings {
    keel_events::RelaySettings {
        poll,
        housekeeping: poll,
        schedule: keel_events::RetrySchedule::new(vec![Duration::from_millis(20)]).with_jitter(0.0),
        breaker: keel_events::BreakerConfig {
            failure_threshold: 50,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The app, its database URL and a directory holding its keel.toml (for the CLI).
struct Setup {
    app: TestApp,
    url: String,
    dir: tempfile::TempDir,
}

async fn start(b: Backend, rx: &Receiver, poll: Duration) -> Setup {
    let spec = spec(&rx.url);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), &spec).unwrap();
    let (db, url) = TestDb::new(b).await;
    let model = keel_spec::load_str(&spec, "keel.toml", &BTreeMap::new()).unwrap();
    let mut settings = keel::Settings::new(model, url.clone());
    settings.relay = relay(poll);
    let app = spawn_with(db, settings).await;
    Setup { app, url, dir }
}

impl Setup {
    /// Run `keel events <keel.toml> --database <url> <args…>`: (exit code, stdout, stderr).
    async fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let spec = self.dir.path().join("keel.toml");
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .arg("events")
            .arg(&spec)
            .args(["--database", &self.url])
            .args(args)
            .env_remove("KEEL_DATABASE_URL")
            .env_remove("KEEL_SPEC")
            .output()
            .await
            .expect("run keel");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// An admin's access token.
async fn admin(app: &TestApp) -> String {
    app.auth
        .create_admin("root@example.com", "root password 123")
        .await
        .unwrap();
    let s: Value = app
        .post(
            "/v1/auth/login",
            json!({"email": "root@example.com", "password": "root password 123"}),
        )
        .await
        .json()
        .await
        .unwrap();
    s["access_token"].as_str().unwrap().to_string()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// `GET /v1/admin/events?…` as an admin.
async fn listed(app: &TestApp, token: &str, query: &str) -> Value {
    let res = call(
        app,
        Method::GET,
        &format!("/v1/admin/events{query}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn post_admin(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let res = call(app, Method::POST, path, Some(token), Some(body)).await;
    let status = res.status();
    let json: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{json}");
    json
}

fn webhook_id(r: &crate::events::Received) -> String {
    r.headers["webhook-id"].to_str().unwrap().to_string()
}

async fn dead_letters_are_listed_retried_and_replayed(b: Backend) {
    let rx = Receiver::start().await;
    let s = start(b, &rx, Duration::from_millis(200)).await;
    let app = &s.app;
    let token = admin(app).await;

    // Two failed attempts: the delivery is dead.
    rx.answer(&[500, 500]);
    let first = app.create("posts", json!({"title": "one"})).await;
    eventually("a dead delivery", || async {
        listed(app, &token, "?state=dead").await["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    let got = rx.wait_for(2).await;
    let first_event = webhook_id(&got[0]);
    let list = listed(app, &token, "?state=dead&destination=webhook:hook").await;
    let item = &list["items"][0];
    assert_eq!(item["destination"], "webhook:hook", "{list}");
    assert_eq!(item["event_id"], first_event.as_str());
    assert_eq!(item["type"], "posts.created");
    assert_eq!(item["record_id"], first["id"]);
    assert_eq!(item["state"], "dead");
    assert_eq!(item["attempts"], 2);
    assert_eq!(item["last_status"], 500);
    assert_eq!(item["next_attempt_at"], Value::Null);
    assert!(item["occurred_at"].is_string());
    let hook = &list["destinations"][0];
    assert_eq!(hook["destination"], "webhook:hook");
    assert_eq!(hook["dead"], 1);
    assert_eq!(hook["pending"], 0);
    assert_eq!(hook["disabled"], false);
    // Other filters do not show it.
    let none = listed(app, &token, "?state=pending").await;
    assert_eq!(none["items"], json!([]));
    let none = listed(app, &token, "?destination=nats").await;
    assert_eq!(none["items"], json!([]));

    // The CLI lists it too: JSON lines and a table.
    let (code, out, err) = s
        .cli(&["list", "--state", "dead", "--format", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let delivery = lines.iter().find(|l| l["kind"] == "delivery").unwrap();
    assert_eq!(delivery["event_id"], first_event.as_str(), "{out}");
    assert_eq!(delivery["state"], "dead");
    assert_eq!(delivery["attempts"], 2);
    let dest = lines.iter().find(|l| l["kind"] == "destination").unwrap();
    assert_eq!(dest["destination"], "webhook:hook");
    assert_eq!(dest["dead"], 1);
    let (code, out, err) = s.cli(&["list"]).await;
    assert_eq!(code, 0, "{err}");
    for want in [
        "DESTINATION",
        "LAST STATUS/ERROR",
        first_event.as_str(),
        "posts.created",
        "dead",
        "webhook:hook  0 pending, 1 dead",
    ] {
        assert!(out.contains(want), "`{want}` missing from:\n{out}");
    }

    // Retry through the route: delivered, under the same webhook id.
    let retried = post_admin(app, &token, "/v1/admin/events/retry", json!({})).await;
    assert_eq!(retried["retried"], 1, "{retried}");
    assert_eq!(
        retried["destinations"],
        json!([{"destination": "webhook:hook", "retried": 1, "re_enabled": false}])
    );
    let got = rx.wait_for(3).await;
    assert_eq!(webhook_id(&got[2]), first_event);
    eventually("the retried delivery settled", || async {
        listed(app, &token, "?state=delivered").await["items"][0]["event_id"]
            == first_event.as_str()
    })
    .await;

    // A second dead letter, retried from the CLI.
    rx.answer(&[500, 500]);
    let second = app.create("posts", json!({"title": "two"})).await;
    eventually("a second dead delivery", || async {
        listed(app, &token, "?state=dead").await["items"][0]["record_id"] == second["id"]
    })
    .await;
    let (code, out, err) = s.cli(&["retry", "--destination", "webhook:hook"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("webhook:hook: 1 dead delivery pending again"),
        "{out}"
    );
    let got = rx.wait_for(6).await;
    assert_eq!(got[5].body["record_id"], second["id"]);
    let second_event = webhook_id(&got[5]);
    eventually("both delivered", || async {
        listed(app, &token, "?state=delivered").await["items"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;

    // Replay from the CLI: both events again, with their ids unchanged.
    let since =
        keel_expr::format_datetime(time::OffsetDateTime::now_utc() - time::Duration::minutes(10));
    let (code, out, err) = s
        .cli(&["replay", "--destination", "webhook:hook", "--since", &since])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 deliveries"), "{out}");
    let got = rx.wait_for(8).await;
    let replayed: BTreeSet<String> = got[6..].iter().map(webhook_id).collect();
    assert_eq!(replayed, BTreeSet::from([first_event, second_event]));

    // Unknown destinations and times are refused, nothing changed.
    let (code, _, err) = s
        .cli(&["replay", "--destination", "hook", "--since", "1h"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown destination `hook`"), "{err}");
    assert!(err.contains("webhook:hook"), "{err}");
    let (code, _, err) = s.cli(&["retry", "--destination", "nats"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown destination `nats`"), "{err}");
    let (code, _, err) = s
        .cli(&["replay", "--destination", "webhook:hook", "--since", "soon"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("--since"), "{err}");
    let (code, _, _) = s.cli(&["list", "--state", "lost"]).await;
    assert_eq!(code, 2);
}

/// The relay polls only every minute here: deliveries after a retry through the route
/// arrive because the route wakes it.
async fn a_410_disabled_destination_comes_back_on_retry(b: Backend) {
    let rx = Receiver::start().await;
    let s = start(b, &rx, Duration::from_secs(60)).await;
    let app = &s.app;
    let token = admin(app).await;
    rx.answer(&[410]);
    app.create("posts", json!({"title": "gone"})).await;
    let got = rx.wait_for(1).await;
    let first_event = webhook_id(&got[0]);
    eventually("the destination disabled", || async {
        listed(app, &token, "").await["destinations"][0]["disabled"] == true
    })
    .await;
    app.create("posts", json!({"title": "held"})).await;
    // On SQLite the relay makes the delivery row from the event, just after the commit.
    eventually("the held event's delivery", || async {
        listed(app, &token, "?state=pending").await["items"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    })
    .await;
    let list = listed(app, &token, "?state=pending").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let hook = &list["destinations"][0];
    assert_eq!(hook["pending"], 2);
    assert_eq!(hook["disabled_reason"], "410 Gone");
    assert!(hook["disabled_at"].is_string());
    assert!(hook["oldest_pending_at"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received().len(),
        1,
        "nothing goes to a disabled destination"
    );
    let (code, out, _) = s.cli(&["list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("DISABLED since"), "{out}");
    assert!(out.contains("410 Gone"), "{out}");

    let retried = post_admin(
        app,
        &token,
        "/v1/admin/events/retry",
        json!({"destination": "webhook:hook"}),
    )
    .await;
    assert_eq!(
        retried["destinations"],
        json!([{"destination": "webhook:hook", "retried": 0, "re_enabled": true}]),
        "{retried}"
    );
    let got = rx.wait_for(3).await;
    // The held delivery of the first event goes out again under its id, and the next.
    assert!(got[1..].iter().any(|r| webhook_id(r) == first_event));
    assert!(got[1..].iter().any(|r| r.body["data"]["title"] == "held"));
    eventually("the destination enabled and drained", || async {
        let l = listed(app, &token, "").await;
        l["destinations"][0]["disabled"] == false && l["destinations"][0]["pending"] == 0
    })
    .await;
}

async fn replay_redelivers_under_the_same_webhook_id(b: Backend) {
    let rx = Receiver::start().await;
    let s = start(b, &rx, Duration::from_secs(60)).await;
    let app = &s.app;
    let token = admin(app).await;
    app.create("posts", json!({"title": "a"})).await;
    app.create("posts", json!({"title": "b"})).await;
    let got = rx.wait_for(2).await;
    let ids: BTreeSet<String> = got.iter().map(webhook_id).collect();
    eventually("both delivered", || async {
        listed(app, &token, "?state=delivered&limit=5").await["items"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    let replayed = post_admin(
        app,
        &token,
        "/v1/admin/events/replay",
        json!({"destination": "webhook:hook", "since": "1h"}),
    )
    .await;
    assert_eq!(replayed["replayed"], 2, "{replayed}");
    assert_eq!(replayed["destination"], "webhook:hook");
    assert!(replayed["since"].as_str().unwrap().ends_with('Z'));
    let got = rx.wait_for(4).await;
    let again: BTreeSet<String> = got[2..].iter().map(webhook_id).collect();
    assert_eq!(again, ids);
    // Nothing occurred since a time to come; pending deliveries are not replayed.
    let future =
        keel_expr::format_datetime(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let none = post_admin(
        app,
        &token,
        "/v1/admin/events/replay",
        json!({"destination": "webhook:hook", "since": future}),
    )
    .await;
    assert_eq!(none["replayed"], 0);

    // Refused: an unknown destination, a bad or missing `since`, a missing destination.
    for (body, field) in [
        (json!({"destination": "hook", "since": "1h"}), "destination"),
        (json!({"destination": "nats", "since": "1h"}), "destination"),
        (json!({"since": "1h"}), "destination"),
        (json!({"destination": 7, "since": "1h"}), "destination"),
        (
            json!({"destination": "webhook:hook", "since": "later"}),
            "since",
        ),
        (json!({"destination": "webhook:hook"}), "since"),
    ] {
        let res = call(
            app,
            Method::POST,
            "/v1/admin/events/replay",
            Some(&token),
            Some(body.clone()),
        )
        .await;
        let p = problem(res, 422).await;
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    let res = call(
        app,
        Method::POST,
        "/v1/admin/events/retry",
        Some(&token),
        Some(json!({"destination": "webhook:other"})),
    )
    .await;
    let p = problem(res, 422).await;
    assert!(
        p["detail"].as_str().unwrap().contains("webhook:hook"),
        "{p}"
    );
    // A retry without a body retries every destination.
    let res = call(
        app,
        Method::POST,
        "/v1/admin/events/retry",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
}

async fn only_admins_see_and_redrive_events(b: Backend) {
    let rx = Receiver::start().await;
    let s = start(b, &rx, Duration::from_millis(200)).await;
    let app = &s.app;
    let member = signup(app, "member@example.com").await;
    let token = admin(app).await;
    let routes = [
        (Method::GET, "/v1/admin/events", None),
        (Method::POST, "/v1/admin/events/retry", Some(json!({}))),
        (
            Method::POST,
            "/v1/admin/events/replay",
            Some(json!({"destination": "webhook:hook", "since": "1h"})),
        ),
    ];
    for (method, path, body) in &routes {
        let res = call(app, method.clone(), path, None, body.clone()).await;
        assert_eq!(
            res.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer error=\"invalid_token\""
        );
        problem(res, 401).await;
        let res = call(app, method.clone(), path, Some(&member.token), body.clone()).await;
        problem(res, 403).await;
        let res = call(app, method.clone(), path, Some(&token), body.clone()).await;
        assert_eq!(res.status(), 200, "{method} {path}");
    }
    // Bad parameters are problems too.
    for query in ["?state=lost", "?limit=0", "?limit=1001", "?limit=x"] {
        let res = call(
            app,
            Method::GET,
            &format!("/v1/admin/events{query}"),
            Some(&token),
            None,
        )
        .await;
        problem(res, 400).await;
    }
    // The routes are in the OpenAPI document, admins only.
    let doc = app.list("/v1/openapi.json").await;
    for (path, method) in [
        ("/v1/admin/events", "get"),
        ("/v1/admin/events/retry", "post"),
        ("/v1/admin/events/replay", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!(["admin"]), "{path}");
        assert_eq!(op["security"], json!([{"bearerAuth": []}]), "{path}");
        assert!(op["responses"]["403"].is_object(), "{path}");
    }
    assert_eq!(
        doc["paths"]["/v1/admin/events/replay"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"]["destination"]["enum"],
        json!(["webhook:hook"])
    );
    assert!(doc["components"]["schemas"]["EventDelivery"].is_object());
}

backend_tests!(
    dead_letters_are_listed_retried_and_replayed,
    a_410_disabled_destination_comes_back_on_retry,
    replay_redelivers_under_the_same_webhook_id,
    only_admins_see_and_redrive_events,
);

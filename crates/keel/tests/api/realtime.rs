//! The realtime feed over SSE with a real HTTP client: each subscriber sees exactly the
//! events its reads would allow (a matrix of users and changes), filters narrow it,
//! `Last-Event-ID` resumes with no gap and no duplicate, a cursor past retention gets
//! `reset`, and a change on one node reaches a subscriber on another.

use crate::auth::signup;
use crate::backend_tests;
use crate::helpers::{Backend, TEST_KEYS, TestApp, TestDb, spawn_app, spawn_with};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const SPEC: &str = r#"
[app]
name = "live"
[auth]
password = true
[collections.posts]
fields.title = { type = "text", required = true }
fields.author = { type = "ref", to = "users", default = "auth.id", immutable = true }
fields.visibility = { type = "enum", values = ["public", "private"], default = "public" }
fields.note = { type = "text", encrypted = true }
fields.internal = { type = "text", hidden = true }
access.read = 'visibility == "public" || author == auth.id'
access.create = "auth.id != null"
access.update = "author == auth.id"
access.delete = "author == auth.id"
[limits]
"POST /v1/auth/signup" = "1000/min"
"#;

/// One SSE event as the client parsed it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// A minimal SSE client over one response.
pub struct SseClient {
    res: reqwest::Response,
    buf: String,
}

impl SseClient {
    pub async fn connect(
        app: &TestApp,
        query: &str,
        token: Option<&str>,
        last: Option<&str>,
    ) -> Self {
        let mut req = app
            .client
            .get(app.url(&format!("/v1/realtime?{query}")))
            .header("accept", "text/event-stream");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.headers());
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next event (heartbeats skipped), within 20 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        e.id = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        e.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if !any {
                    continue; // a comment (heartbeat)
                }
                e.data = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .expect("an SSE event within 20 s")
                .unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while out.len() < n {
            out.push(self.next().await.expect("the stream ended early"));
        }
        out
    }
}

async fn as_user(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let res = app
        .client
        .request(method, app.url(path))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    if res.status() == 204 {
        Value::Null
    } else {
        res.json().await.unwrap()
    }
}

/// Events up to and including the one about `record_id`.
async fn read_until(feed: &mut SseClient, record_id: &str) -> Vec<SseEvent> {
    let mut got = Vec::new();
    loop {
        let e = feed.next().await.expect("stream ended");
        let done = e.data["record_id"] == record_id;
        got.push(e);
        if done {
            return got;
        }
    }
}

/// Each subscriber gets exactly the events its GETs would allow: an update as after
/// the change, a delete as before it.
async fn each_subscriber_sees_what_it_may_read(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let mut ada_feed = SseClient::connect(&app, "collections=posts", Some(&ada.token), None).await;
    let mut bob_feed = SseClient::connect(&app, "collections=posts", Some(&bob.token), None).await;
    let mut anon_feed = SseClient::connect(&app, "collections=posts", None, None).await;
    let post = reqwest::Method::POST;
    let private = as_user(
        &app,
        &ada.token,
        post.clone(),
        "/v1/posts",
        json!({"title": "ada private", "visibility": "private", "note": "secret"}),
    )
    .await;
    let public = as_user(
        &app,
        &bob.token,
        post.clone(),
        "/v1/posts",
        json!({"title": "bob public"}),
    )
    .await;
    let p_path = format!("/v1/posts/{}", private["id"].as_str().unwrap());
    // Ada publishes her post: now everyone may read it.
    as_user(
        &app,
        &ada.token,
        reqwest::Method::PATCH,
        &p_path,
        json!({"visibility": "public"}),
    )
    .await;
    // …and hides it again: only Ada sees that update (as after the change).
    as_user(
        &app,
        &ada.token,
        reqwest::Method::PATCH,
        &p_path,
        json!({"visibility": "private"}),
    )
    .await;
    // Ada deletes it while private: only she sees the delete (as before it).
    as_user(
        &app,
        &ada.token,
        reqwest::Method::DELETE,
        &p_path,
        Value::Null,
    )
    .await;
    // A marker everyone sees, so each feed can be read to its end.
    let marker = as_user(
        &app,
        &bob.token,
        post,
        "/v1/posts",
        json!({"title": "marker"}),
    )
    .await;

    let marker = marker["id"].as_str().unwrap();
    let ada_got = read_until(&mut ada_feed, marker).await;
    let bob_got = read_until(&mut bob_feed, marker).await;
    let anon_got = read_until(&mut anon_feed, marker).await;
    let shape = |got: &[SseEvent]| -> Vec<String> {
        got.iter()
            .map(|e| {
                let title = e.data["data"]["title"]
                    .as_str()
                    .or(e.data["previous"]["title"].as_str())
                    .unwrap_or("?");
                format!("{} {title}", e.event)
            })
            .collect()
    };
    assert_eq!(
        shape(&ada_got),
        [
            "posts.created ada private",
            "posts.created bob public",
            "posts.updated ada private",
            "posts.updated ada private",
            "posts.deleted ada private",
            "posts.created marker",
        ]
    );
    let others = [
        "posts.created bob public",
        "posts.updated ada private",
        "posts.created marker",
    ];
    assert_eq!(shape(&bob_got), others);
    assert_eq!(shape(&anon_got), others);
    // Envelopes: the event id, the cursor as SSE id, encrypted fields readable as a
    // GET shows them, hidden ones never.
    let first = &ada_got[0];
    assert!(
        first.id.as_deref().is_some_and(|c| c.contains('.')),
        "{first:?}"
    );
    assert_eq!(first.data["type"], "posts.created");
    assert_eq!(first.data["data"]["note"], "secret");
    assert!(first.data["data"].get("internal").is_none());
    assert_eq!(public["id"], bob_got[0].data["record_id"]);
}

async fn filters_and_bad_requests(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let q = "collections=posts&filter.posts=title%20~%20%22keep%22";
    let mut feed = SseClient::connect(&app, q, Some(&ada.token), None).await;
    for t in ["drop me", "keep me", "also drop", "keep too"] {
        as_user(
            &app,
            &ada.token,
            reqwest::Method::POST,
            "/v1/posts",
            json!({"title": t}),
        )
        .await;
    }
    let got = feed.take(2).await;
    let titles: Vec<&str> = got
        .iter()
        .map(|e| e.data["data"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["keep me", "keep too"]);
    // Problems, before any stream starts.
    for (query, status) in [
        ("", 400),
        ("collections=nope", 404),
        ("collections=posts&filter.posts=nope%20%3D%3D%201", 400),
        ("collections=posts&since=not-a-cursor", 400),
        ("collections=posts&access_token=forged", 401),
    ] {
        let res = app.get(&format!("/v1/realtime?{query}")).await;
        crate::helpers::problem(res, status).await;
    }
}

/// Disconnect after one event, miss 20 changes, reconnect with `Last-Event-ID`: the
/// 20 arrive in order, nothing twice, then the live stream continues.
async fn resume_replays_what_was_missed(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let mut feed = SseClient::connect(&app, "collections=posts", Some(&ada.token), None).await;
    as_user(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "seen"}),
    )
    .await;
    let seen = feed.take(1).await;
    let cursor = seen[0].id.clone().unwrap();
    drop(feed);
    for i in 0..20 {
        as_user(
            &app,
            &ada.token,
            reqwest::Method::POST,
            "/v1/posts",
            json!({"title": format!("missed {i}")}),
        )
        .await;
    }
    let mut feed =
        SseClient::connect(&app, "collections=posts", Some(&ada.token), Some(&cursor)).await;
    let replayed = feed.take(20).await;
    let titles: Vec<String> = replayed
        .iter()
        .map(|e| e.data["data"]["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        titles,
        (0..20).map(|i| format!("missed {i}")).collect::<Vec<_>>()
    );
    as_user(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "live"}),
    )
    .await;
    let live = feed.take(1).await;
    assert_eq!(live[0].data["data"]["title"], "live");
    // `since=` does the same for clients that cannot send headers.
    let mut again = SseClient::connect(
        &app,
        &format!(
            "collections=posts&since={}",
            replayed[18].id.clone().unwrap()
        ),
        Some(&ada.token),
        None,
    )
    .await;
    let tail = again.take(2).await;
    assert_eq!(tail[0].data["data"]["title"], "missed 19");
    assert_eq!(tail[1].data["data"]["title"], "live");
}

/// A cursor older than the oldest kept event: `reset`, then the live stream.
async fn a_cursor_past_retention_gets_reset(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let mut feed = SseClient::connect(&app, "collections=posts", Some(&ada.token), None).await;
    as_user(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "old"}),
    )
    .await;
    let old = feed.take(1).await[0].id.clone().unwrap();
    as_user(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "newer"}),
    )
    .await;
    feed.take(1).await;
    drop(feed);
    // Retention prunes the oldest events (as the relay's housekeeping does).
    let sql = match app.engine.store().dialect() {
        keel_store::Dialect::Sqlite => "DELETE FROM _keel_events WHERE seq <= ? RETURNING seq",
        keel_store::Dialect::Postgres => "DELETE FROM _keel_events WHERE seq <= $1 RETURNING seq",
    };
    app.engine
        .store()
        .query(
            &keel_store::Stmt::new(
                sql,
                vec![
                    old.split('.')
                        .nth(1)
                        .unwrap()
                        .parse::<i64>()
                        .unwrap()
                        .into(),
                ],
            ),
            &[keel_spec::Storage::Int],
        )
        .await
        .unwrap();
    let mut feed =
        SseClient::connect(&app, "collections=posts", Some(&ada.token), Some(&old)).await;
    let e = feed.next().await.unwrap();
    assert_eq!(e.event, "reset");
    assert!(feed.next().await.is_none(), "the stream ends after reset");
}

/// With nobody subscribed the node does not follow the outbox; a live subscriber that
/// arrives after such writes starts at the head: it gets what follows, nothing before.
async fn a_live_subscriber_starts_after_writes_nobody_followed(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    for i in 0..3 {
        as_user(
            &app,
            &ada.token,
            reqwest::Method::POST,
            "/v1/posts",
            json!({"title": format!("unheard {i}")}),
        )
        .await;
    }
    let mut feed = SseClient::connect(&app, "collections=posts", Some(&ada.token), None).await;
    let heard = as_user(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "heard"}),
    )
    .await;
    let first = feed.next().await.expect("an event");
    assert_eq!(first.data["record_id"], heard["id"], "{:?}", first.data);
    assert_eq!(first.data["data"]["title"], "heard");
}

backend_tests!(
    a_live_subscriber_starts_after_writes_nobody_followed,
    each_subscriber_sees_what_it_may_read,
    filters_and_bad_requests,
    resume_replays_what_was_missed,
    a_cursor_past_retention_gets_reset,
);

/// A change committed on one node reaches a subscriber on another, and a client
/// resumes on another node from its cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_cross_nodes_and_cursors_resume_anywhere() {
    let (db, url) = TestDb::new(Backend::Postgres).await;
    let node = |db: TestDb| {
        let url = url.clone();
        async move {
            let model = keel_spec::load_str(SPEC, "keel.toml", &BTreeMap::new()).unwrap();
            let mut settings = keel::Settings::new(model, url);
            settings.field_keys = Some(TEST_KEYS.into());
            settings.secret = Some("test-secret-test-secret-test-secret".into());
            spawn_with(db, settings).await
        }
    };
    let a = node(db).await;
    let b = node(TestDb::Sqlite {
        _dir: tempfile::tempdir().unwrap(),
    })
    .await;
    let ada = signup(&a, "ada@example.com").await;
    let mut on_b = SseClient::connect(&b, "collections=posts", Some(&ada.token), None).await;
    as_user(
        &a,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "from a"}),
    )
    .await;
    let got = on_b.take(1).await;
    assert_eq!(got[0].data["data"]["title"], "from a");
    drop(on_b);
    as_user(
        &a,
        &ada.token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": "missed"}),
    )
    .await;
    let mut on_a = SseClient::connect(
        &a,
        "collections=posts",
        Some(&ada.token),
        got[0].id.as_deref(),
    )
    .await;
    assert_eq!(on_a.take(1).await[0].data["data"]["title"], "missed");
}

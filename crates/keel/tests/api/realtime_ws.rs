//! The realtime feed over a WebSocket, with a real client (tokio-tungstenite): each
//! subscriber sees exactly the events its reads would allow; subscribe and
//! unsubscribe messages; a fresh token on an open socket; resume with `since`;
//! malformed messages answered with `error`; problems on the upgrade request; a close
//! frame at shutdown.

use crate::auth::signup;
use crate::backend_tests;
use crate::helpers::{Backend, TEST_KEYS, TestApp, TestDb, spawn_app};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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
[collections.tags]
fields.name = { type = "text", required = true }
access.read = "true"
access.create = "auth.id != null"
[limits]
"POST /v1/auth/signup" = "1000/min"
"#;

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server sent next.
#[derive(Debug)]
enum Got {
    Json(Value),
    Close(Option<u16>),
    End,
}

/// A WebSocket client on `/v1/realtime`.
struct WsClient {
    ws: Stream,
    /// Events and resets that arrived while an acknowledgement was awaited.
    early: std::collections::VecDeque<Value>,
}

impl WsClient {
    /// Upgrade `GET /v1/realtime?{query}`; the HTTP status when it is refused.
    async fn try_connect(app: &TestApp, query: &str, token: Option<&str>) -> Result<Self, u16> {
        let url = format!(
            "{}/v1/realtime?{query}",
            app.base.replacen("http://", "ws://", 1)
        );
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, res)) => {
                assert_eq!(res.status(), 101);
                Ok(Self::new(ws))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let body =
                    String::from_utf8_lossy(res.body().as_deref().unwrap_or_default()).to_string();
                let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                assert!(problem["detail"].is_string(), "{body}");
                Err(res.status().as_u16())
            }
            Err(e) => panic!("connect: {e}"),
        }
    }

    fn new(ws: Stream) -> Self {
        Self {
            ws,
            early: Default::default(),
        }
    }

    async fn connect(app: &TestApp, query: &str, token: Option<&str>) -> Self {
        Self::try_connect(app, query, token)
            .await
            .unwrap_or_else(|status| panic!("upgrade refused: {status}"))
    }

    async fn send(&mut self, message: Value) {
        self.send_raw(Message::text(message.to_string())).await;
    }

    async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next message (pings skipped), within 20 s.
    async fn next_got(&mut self) -> Got {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a message within 20 s");
            match frame {
                None | Some(Err(_)) => return Got::End,
                Some(Ok(Message::Text(t))) => {
                    return Got::Json(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return Got::Close(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn next(&mut self) -> Value {
        if let Some(m) = self.early.pop_front() {
            return m;
        }
        match self.next_got().await {
            Got::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next message, which must be of this type.
    async fn expect(&mut self, kind: &str) -> Value {
        let m = self.next().await;
        assert_eq!(m["type"], kind, "{m}");
        m
    }

    /// Send a subscribe and wait until it is in effect.
    async fn subscribe(&mut self, mut message: Value) {
        message["type"] = json!("subscribe");
        let collection = message["collection"].clone();
        self.send(message).await;
        let ack = self.ack("subscribed").await;
        assert_eq!(ack["collection"], collection);
    }

    /// The acknowledgement of this type, keeping the events that come before it.
    async fn ack(&mut self, kind: &str) -> Value {
        loop {
            let m = match self.next_got().await {
                Got::Json(m) => m,
                other => panic!("expected `{kind}`, got {other:?}"),
            };
            if m["type"] == kind {
                return m;
            }
            assert!(m["type"] == "event" || m["type"] == "reset", "{m}");
            self.early.push_back(m);
        }
    }

    /// The close code the server sends next.
    async fn close_code(&mut self) -> Option<u16> {
        match self.next_got().await {
            Got::Close(code) => code,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Event messages up to and including the one about `record_id`.
    async fn until(&mut self, record_id: &str) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let m = self.expect("event").await;
            let done = m["event"]["record_id"] == record_id;
            got.push(m);
            if done {
                return got;
            }
        }
    }

    async fn take(&mut self, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(self.expect("event").await);
        }
        got
    }
}

async fn write(
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

async fn post(app: &TestApp, token: &str, body: Value) -> String {
    let created = write(app, token, reqwest::Method::POST, "/v1/posts", body).await;
    created["id"].as_str().unwrap().to_string()
}

fn title(m: &Value) -> String {
    let e = &m["event"];
    let t = e["data"]["title"]
        .as_str()
        .or(e["previous"]["title"].as_str())
        .or(e["data"]["name"].as_str())
        .unwrap_or("?");
    format!("{} {t}", e["type"].as_str().unwrap_or("?"))
}

fn titles(got: &[Value]) -> Vec<String> {
    got.iter().map(title).collect()
}

/// The SSE matrix over WebSockets: each socket gets exactly what its GETs allow (an
/// update as after the change, a delete as before), whether it was authenticated by
/// a bearer header or `access_token=`, and subscribed on the URL or by message.
async fn each_socket_sees_what_it_may_read(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let mut ada_ws = WsClient::connect(&app, "collections=posts", Some(&ada.token)).await;
    let mut bob_ws = WsClient::connect(&app, &format!("access_token={}", bob.token), None).await;
    bob_ws.subscribe(json!({"collection": "posts"})).await;
    let mut anon_ws = WsClient::connect(&app, "", None).await;
    anon_ws.subscribe(json!({"collection": "posts"})).await;

    let private = post(
        &app,
        &ada.token,
        json!({"title": "ada private", "visibility": "private", "note": "secret"}),
    )
    .await;
    post(&app, &bob.token, json!({"title": "bob public"})).await;
    let path = format!("/v1/posts/{private}");
    let patch = reqwest::Method::PATCH;
    write(
        &app,
        &ada.token,
        patch.clone(),
        &path,
        json!({"visibility": "public"}),
    )
    .await;
    write(
        &app,
        &ada.token,
        patch,
        &path,
        json!({"visibility": "private"}),
    )
    .await;
    write(
        &app,
        &ada.token,
        reqwest::Method::DELETE,
        &path,
        Value::Null,
    )
    .await;
    let marker = post(&app, &bob.token, json!({"title": "marker"})).await;

    let ada_got = ada_ws.until(&marker).await;
    assert_eq!(
        titles(&ada_got),
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
    assert_eq!(titles(&bob_ws.until(&marker).await), others);
    assert_eq!(titles(&anon_ws.until(&marker).await), others);
    // The message: a cursor, the envelope as SSE sends it (encrypted fields readable
    // as a GET shows them, hidden ones never).
    let first = &ada_got[0];
    assert!(
        first["cursor"].as_str().is_some_and(|c| c.contains('.')),
        "{first}"
    );
    assert_eq!(first["event"]["type"], "posts.created");
    assert_eq!(first["event"]["record_id"], private.as_str());
    assert_eq!(first["event"]["data"]["note"], "secret");
    assert!(first["event"]["data"].get("internal").is_none());
}

/// Subscribe (with a filter), add a collection, replace a filter, unsubscribe. Each
/// step waits for the events of the changes before it: a subscription change applies
/// to what the feed fans out after it, which may trail a commit by a moment.
async fn subscribe_and_unsubscribe(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let tag = |name: &str| json!({ "name": name });
    let mut ws = WsClient::connect(&app, "", Some(&ada.token)).await;
    post(&app, &ada.token, json!({"title": "before any subscribe"})).await;
    ws.subscribe(json!({"collection": "posts", "filter": "title ~ \"keep\""}))
        .await;
    post(&app, &ada.token, json!({"title": "drop me"})).await;
    let keep = post(&app, &ada.token, json!({"title": "keep 1"})).await;
    assert_eq!(titles(&ws.until(&keep).await), ["posts.created keep 1"]);

    ws.subscribe(json!({"collection": "tags"})).await;
    let t1 = write(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/tags",
        tag("t1"),
    )
    .await;
    let keep = post(&app, &ada.token, json!({"title": "keep 2"})).await;
    ws.until(t1["id"].as_str().unwrap()).await;
    assert_eq!(titles(&ws.until(&keep).await), ["posts.created keep 2"]);

    // A second subscribe replaces the filter.
    ws.subscribe(json!({"collection": "posts", "filter": "title ~ \"other\""}))
        .await;
    post(&app, &ada.token, json!({"title": "keep 3"})).await;
    let other = post(&app, &ada.token, json!({"title": "other 1"})).await;
    assert_eq!(titles(&ws.until(&other).await), ["posts.created other 1"]);

    ws.send(json!({"type": "unsubscribe", "collection": "posts"}))
        .await;
    let ack = ws.ack("unsubscribed").await;
    assert_eq!(ack["collection"], "posts");
    post(&app, &ada.token, json!({"title": "other 2"})).await;
    let marker = write(
        &app,
        &ada.token,
        reqwest::Method::POST,
        "/v1/tags",
        tag("t2"),
    )
    .await;
    let got = ws.until(marker["id"].as_str().unwrap()).await;
    assert_eq!(titles(&got), ["tags.created t2"]);
}

/// Anonymous at first (public posts only); after `auth` with a token, the socket reads
/// as that user (her private posts too); a bad token: `error`, then close 1008.
async fn auth_with_a_fresh_token(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let mut ws = WsClient::connect(&app, "collections=posts", None).await;
    post(
        &app,
        &ada.token,
        json!({"title": "private 1", "visibility": "private"}),
    )
    .await;
    let public = post(&app, &ada.token, json!({"title": "public 1"})).await;
    assert_eq!(titles(&ws.until(&public).await), ["posts.created public 1"]);

    // A fresh token, as a client gets it from the refresh endpoint.
    let res = app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": ada.refresh.clone() }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let fresh: Value = res.json().await.unwrap();
    let fresh = fresh["access_token"].as_str().unwrap().to_string();
    ws.send(json!({"type": "auth", "access_token": fresh}))
        .await;
    let ack = ws.ack("authenticated").await;
    assert!(ack.get("access_token").is_none());
    post(
        &app,
        &ada.token,
        json!({"title": "private 2", "visibility": "private"}),
    )
    .await;
    let public = post(&app, &ada.token, json!({"title": "public 2"})).await;
    assert_eq!(
        titles(&ws.until(&public).await),
        ["posts.created private 2", "posts.created public 2"]
    );

    ws.send(json!({"type": "auth", "access_token": "forged"}))
        .await;
    let error = ws.expect("error").await;
    assert_eq!(error["status"], 401, "{error}");
    assert_eq!(error["problem"], "/docs/errors#unauthorized", "{error}");
    assert!(error["title"].is_string() && error["detail"].is_string());
    assert_eq!(ws.close_code().await, Some(1008));
}

/// Miss 20 changes, reconnect, subscribe with `since`: the 20 in order, nothing twice,
/// then live events. A `since` after events were sent is refused; `since=` on the URL
/// resumes too; a cursor past retention gets `reset` and the socket goes on.
async fn resume_with_since(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let mut ws = WsClient::connect(&app, "collections=posts", Some(&ada.token)).await;
    post(&app, &ada.token, json!({"title": "seen"})).await;
    let cursor = ws.take(1).await[0]["cursor"].as_str().unwrap().to_string();
    drop(ws);
    for i in 0..20 {
        post(&app, &ada.token, json!({"title": format!("missed {i}")})).await;
    }
    let mut ws = WsClient::connect(&app, "", Some(&ada.token)).await;
    ws.subscribe(json!({"collection": "posts", "since": cursor}))
        .await;
    let replayed = ws.take(20).await;
    assert_eq!(
        titles(&replayed),
        (0..20)
            .map(|i| format!("posts.created missed {i}"))
            .collect::<Vec<_>>()
    );
    post(&app, &ada.token, json!({"title": "live"})).await;
    assert_eq!(titles(&ws.take(1).await), ["posts.created live"]);
    // Events were sent on this socket: its cursor can no longer move.
    ws.send(json!({"type": "subscribe", "collection": "tags", "since": cursor}))
        .await;
    let refused = ws.expect("error").await;
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(refused["collection"], "tags");
    assert!(
        refused["detail"].as_str().unwrap().contains("since"),
        "{refused}"
    );

    // On the upgrade request.
    let from = replayed[18]["cursor"].as_str().unwrap();
    let mut again = WsClient::connect(
        &app,
        &format!("collections=posts&since={from}"),
        Some(&ada.token),
    )
    .await;
    assert_eq!(
        titles(&again.take(2).await),
        ["posts.created missed 19", "posts.created live"]
    );

    // Past retention: `reset`, then the live stream on the same socket.
    let sql = match app.engine.store().dialect() {
        keel_store::Dialect::Sqlite => "DELETE FROM _keel_events WHERE seq <= ? RETURNING seq",
        keel_store::Dialect::Postgres => "DELETE FROM _keel_events WHERE seq <= $1 RETURNING seq",
    };
    let seq: i64 = replayed[0]["cursor"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    app.engine
        .store()
        .query(
            &keel_store::Stmt::new(sql, vec![seq.into()]),
            &[keel_spec::Storage::Int],
        )
        .await
        .unwrap();
    let mut old = WsClient::connect(&app, "", Some(&ada.token)).await;
    old.subscribe(json!({"collection": "posts", "since": cursor}))
        .await;
    old.expect("reset").await;
    post(&app, &ada.token, json!({"title": "after reset"})).await;
    assert_eq!(titles(&old.take(1).await), ["posts.created after reset"]);
}

/// Malformed messages get an `error` and the socket stays open; bad upgrade requests
/// get a problem before any upgrade; an oversized message closes with 1009.
async fn malformed_messages_get_errors(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let mut ws = WsClient::connect(&app, "", Some(&ada.token)).await;
    let cases: Vec<(Message, u16, Option<&str>)> = vec![
        (Message::text("not json"), 400, None),
        (Message::text("[1, 2]"), 400, None),
        (Message::text(r#"{"collection": "posts"}"#), 400, None),
        (Message::text(r#"{"type": "dance"}"#), 400, None),
        (Message::text(r#"{"type": "subscribe"}"#), 400, None),
        (Message::text(r#"{"type": "auth"}"#), 400, None),
        (
            Message::text(r#"{"type": "subscribe", "collection": 7}"#),
            400,
            None,
        ),
        (Message::binary(b"{}".to_vec()), 400, None),
        (
            Message::text(r#"{"type": "subscribe", "collection": "nope"}"#),
            404,
            Some("nope"),
        ),
        (
            Message::text(r#"{"type": "subscribe", "collection": "posts", "filter": "nope == 1"}"#),
            400,
            Some("posts"),
        ),
        (
            Message::text(
                r#"{"type": "subscribe", "collection": "posts", "since": "not-a-cursor"}"#,
            ),
            400,
            Some("posts"),
        ),
    ];
    for (message, status, collection) in cases {
        let shown = format!("{message:?}");
        ws.send_raw(message).await;
        let e = ws.expect("error").await;
        assert_eq!(e["status"], status, "{shown}: {e}");
        assert!(e["problem"].as_str().unwrap().starts_with("/docs/errors#"));
        assert!(e["title"].is_string() && e["detail"].is_string(), "{e}");
        assert_eq!(e.get("collection").and_then(Value::as_str), collection);
    }
    // Still open, still working.
    ws.subscribe(json!({"collection": "posts"})).await;
    let id = post(&app, &ada.token, json!({"title": "after the errors"})).await;
    assert_eq!(ws.expect("event").await["event"]["record_id"], id.as_str());
    // Over 64 KiB: closed with 1009.
    ws.send_raw(Message::text("x".repeat(70 * 1024))).await;
    assert_eq!(ws.close_code().await, Some(1009));

    for (query, status) in [
        ("collections=nope", 404),
        ("collections=posts&filter.posts=nope%20%3D%3D%201", 400),
        ("collections=posts&since=not-a-cursor", 400),
        ("since=1.1", 400),
        ("access_token=forged", 401),
    ] {
        let refused = WsClient::try_connect(&app, query, None).await.err();
        assert_eq!(refused, Some(status), "{query}");
    }
}

/// At shutdown every socket gets a close frame (1001, going away).
async fn shutdown_closes_sockets(b: Backend) {
    let (db, url) = TestDb::new(b).await;
    let model = keel_spec::load_str(SPEC, "keel.toml", &BTreeMap::new()).unwrap();
    let mut settings = keel::Settings::new(model, url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.secret = Some("test-secret-test-secret-test-secret".into());
    settings.addr = "127.0.0.1:0".into();
    let app = keel::App::build(settings).await.unwrap();
    let base = format!("http://{}", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let url = format!(
        "{}/v1/realtime?collections=posts",
        base.replacen("http", "ws", 1)
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = WsClient::new(ws);
    stop.send(()).unwrap();
    assert_eq!(ws.close_code().await, Some(1001));
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    drop(db);
}

backend_tests!(
    each_socket_sees_what_it_may_read,
    subscribe_and_unsubscribe,
    auth_with_a_fresh_token,
    resume_with_since,
    malformed_messages_get_errors,
    shutdown_closes_sockets,
);

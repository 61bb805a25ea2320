//! GraphQL subscriptions over `graphql-transport-ws`: the reference client (npm
//! graphql-ws, in node), as two users with different rights, follows a collection and
//! each gets exactly the changes its reads allow, refs resolved, replayed from a cursor then live; the protocol's rules
//! (close codes, ping, duplicate ids, `complete`) checked with a raw client
//! (tokio-tungstenite); queries and mutations over the socket; errors with codes.

use crate::auth::signup;
use crate::backend_tests;
use crate::helpers::{Backend, TestApp, spawn_app};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

backend_tests!(
    graphql_ws_client_follows_what_the_caller_may_read,
    the_protocol_rules_are_kept,
    queries_mutations_and_errors_over_the_socket,
);

const SPEC: &str = r#"
[app]
name = "live"
[auth]
password = true
[collections.posts]
fields.title = { type = "text", required = true }
fields.author = { type = "ref", to = "users", default = "auth.id", immutable = true }
fields.visibility = { type = "enum", values = ["public", "private"], default = "public" }
fields.internal = { type = "text", hidden = true }
access.read = 'visibility == "public" || author == auth.id'
access.create = "auth.id != null"
access.update = "author == auth.id"
access.delete = "author == auth.id"
[collections.secrets]
fields.name = { type = "text", required = true }
access.create = "auth.id != null"
[limits]
"POST /v1/auth/signup" = "1000/min"
"#;

fn ws_url(app: &TestApp) -> String {
    format!("{}/graphql", app.base.replacen("http://", "ws://", 1))
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
    res.json().await.unwrap()
}

async fn post(app: &TestApp, token: &str, title: &str, visibility: &str) -> String {
    let created = write(
        app,
        token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": title, "visibility": visibility, "internal": "never shown"}),
    )
    .await;
    created["id"].as_str().unwrap().to_string()
}

// ---- the graphql-ws client in node ----

fn realtime_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("KEEL_REALTIME_DIR").unwrap_or_else(|_| {
        panic!(
            "KEEL_REALTIME_DIR is not set: run the tests through scripts/test.sh, or run \
             scripts/tools.sh and export KEEL_REALTIME_DIR=$HOME/.cache/keel-tools/realtime"
        )
    }));
    assert!(
        dir.join("node_modules/graphql-ws/package.json").exists(),
        "graphql-ws is not installed in {} (scripts/tools.sh installs it)",
        dir.display()
    );
    dir
}

/// `tests/realtime/graphql_ws_client.mjs` running one operation: what it reports.
struct GraphqlWsClient {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    script: PathBuf,
}

impl Drop for GraphqlWsClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

impl GraphqlWsClient {
    fn start(url: &str, token: &str, query: &str) -> Self {
        let dir = realtime_dir();
        // Beside node_modules, for `import "graphql-ws"`.
        let script = dir.join(format!(
            "graphql_ws_client-{}.mjs",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/realtime/graphql_ws_client.mjs"
            ),
            &script,
        )
        .expect("copy graphql_ws_client.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .args([url, token, query])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run the graphql-ws client");
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            script,
        }
    }

    /// The next report, within 20 s.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("the graphql-ws client reported nothing within 20 s")
            .unwrap()
            .expect("the graphql-ws client exited");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// The next event (`next` payloads), as `"<type> <title>"`.
    async fn event(&mut self) -> (String, Value) {
        loop {
            let v = self.next().await;
            match v["type"].as_str() {
                Some("next") => {
                    let e = v["payload"]["data"]["posts_events"].clone();
                    assert!(v["payload"].get("errors").is_none(), "{v}");
                    let title = e["data"]["title"]
                        .as_str()
                        .or(e["previous"]["title"].as_str())
                        .unwrap_or("?");
                    return (format!("{} {title}", e["type"].as_str().unwrap_or("?")), e);
                }
                Some("connected") => continue,
                _ => panic!("expected an event, got {v}"),
            }
        }
    }

    async fn close(mut self) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"close\n").await.unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the graphql-ws client exits after close")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// Follow posts from a cursor, with refs and the record before.
fn follow(since: &str) -> String {
    format!(
        "subscription {{ posts_events(since: \"{since}\") {{ cursor type id record_id actor \
         data {{ title visibility author {{ id email }} }} previous {{ title }} }} }}"
    )
}

async fn graphql_ws_client_follows_what_the_caller_may_read(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let alice = signup(&app, "alice@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    // Before the subscription: replayed from the start of the feed.
    post(&app, &alice.token, "alice private", "private").await;
    post(&app, &bob.token, "bob private", "private").await;
    let public = post(&app, &alice.token, "alice public", "public").await;

    let mut client = GraphqlWsClient::start(&ws_url(&app), &bob.token, &follow("0.0"));
    // Alice follows too, with her own rights.
    let mut alices = GraphqlWsClient::start(&ws_url(&app), &alice.token, &follow("0.0"));
    assert_eq!(alices.event().await.0, "posts.created alice private");
    assert_eq!(alices.event().await.0, "posts.created alice public");
    let (first, e) = client.event().await;
    assert_eq!(first, "posts.created bob private");
    // The ref resolves as bob reads users (his own record); hidden fields never show.
    assert_eq!(e["data"]["author"]["id"], bob.id);
    assert_eq!(e["actor"], bob.id);
    assert!(e["cursor"].as_str().unwrap().contains('.'), "{e}");
    assert!(e["data"].get("internal").is_none());
    let (second, e) = client.event().await;
    assert_eq!(second, "posts.created alice public");
    assert_eq!(e["record_id"], public);
    assert_eq!(e["previous"], Value::Null);

    // Live: alice's private changes never reach bob; what he may read does, in order.
    post(&app, &alice.token, "alice private 2", "private").await;
    write(
        &app,
        &alice.token,
        reqwest::Method::PATCH,
        &format!("/v1/posts/{public}"),
        json!({"title": "alice public, edited"}),
    )
    .await;
    let mine = post(&app, &bob.token, "bob public", "public").await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/posts/{mine}")))
        .header("authorization", format!("Bearer {}", bob.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let mut got = Vec::new();
    let mut last = Value::Null;
    for _ in 0..3 {
        let (shape, e) = client.event().await;
        got.push(shape);
        last = e;
    }
    assert_eq!(
        got,
        [
            "posts.updated alice public, edited",
            "posts.created bob public",
            "posts.deleted bob public",
        ]
    );
    assert_eq!(
        last["data"],
        Value::Null,
        "a delete carries the record before"
    );
    assert_eq!(last["previous"]["title"], "bob public");
    let cursor = last["cursor"].as_str().unwrap().to_string();
    client.close().await;

    // Resume after the last cursor: only what came after it.
    post(&app, &alice.token, "after the cursor", "public").await;
    let mut resumed = GraphqlWsClient::start(&ws_url(&app), &bob.token, &follow(&cursor));
    let (shape, _) = resumed.event().await;
    assert_eq!(shape, "posts.created after the cursor");
    resumed.close().await;
}

// ---- the protocol, with a raw client ----

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server sent next.
#[derive(Debug, PartialEq)]
enum Got {
    Json(Value),
    Close(u16),
    End,
}

struct Raw {
    ws: Stream,
    protocol: Option<String>,
}

impl Raw {
    async fn connect_with(app: &TestApp, protocol: Option<&str>, token: Option<&str>) -> Self {
        let mut req = ws_url(app).into_client_request().unwrap();
        if let Some(p) = protocol {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(res.status(), 101);
        let protocol = res
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string());
        Self { ws, protocol }
    }

    async fn connect(app: &TestApp) -> Self {
        let raw = Self::connect_with(app, Some("graphql-transport-ws"), None).await;
        assert_eq!(raw.protocol.as_deref(), Some("graphql-transport-ws"));
        raw
    }

    /// Connected and acknowledged, as `token` (in the init payload).
    async fn ready(app: &TestApp, token: Option<&str>) -> Self {
        let mut raw = Self::connect(app).await;
        let payload = token.map_or(
            json!({}),
            |t| json!({"Authorization": format!("Bearer {t}")}),
        );
        raw.send(json!({"type": "connection_init", "payload": payload}))
            .await;
        assert_eq!(
            raw.next().await,
            Got::Json(json!({"type": "connection_ack"}))
        );
        raw
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({"id": id, "type": "subscribe", "payload": {"query": query}}))
            .await;
    }

    /// The next message (WebSocket pings skipped), within 20 s.
    async fn next(&mut self) -> Got {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("a message within 20 s");
            match frame {
                None | Some(Err(_)) => return Got::End,
                Some(Ok(Message::Text(t))) => {
                    return Got::Json(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return Got::Close(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.next().await {
            Got::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    async fn closed_with(&mut self) -> u16 {
        match self.next().await {
            Got::Close(code) => code,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

async fn the_protocol_rules_are_kept(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let alice = signup(&app, "alice@example.com").await;

    // Subscribe before connection_ack: 4401.
    let mut raw = Raw::connect(&app).await;
    raw.subscribe("1", "{ posts { items { id } } }").await;
    assert_eq!(raw.closed_with().await, 4401);

    // A second connection_init: 4429.
    let mut raw = Raw::ready(&app, None).await;
    raw.send(json!({"type": "connection_init"})).await;
    assert_eq!(raw.closed_with().await, 4429);

    // Not a message of the protocol: 4400.
    for bad in [
        json!({"type": "nonsense"}),
        json!({"type": "subscribe", "id": "1"}),
        json!([1]),
    ] {
        let mut raw = Raw::ready(&app, None).await;
        raw.send(bad).await;
        assert_eq!(raw.closed_with().await, 4400);
    }
    let mut raw = Raw::ready(&app, None).await;
    raw.ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(raw.closed_with().await, 4400);

    // A forged token in the init payload: 4403.
    let mut raw = Raw::connect(&app).await;
    raw.send(json!({"type": "connection_init", "payload": {"Authorization": "Bearer forged.token.here"}}))
        .await;
    assert_eq!(raw.closed_with().await, 4403);

    // Offering only another subprotocol: none is selected (a client then refuses the
    // handshake; one that goes on is closed with 4406).
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(
        b"GET /graphql HTTP/1.1\r\nHost: keel\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Protocol: graphql-ws\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut byte))
            .await
            .expect("the handshake answer within 20 s")
            .unwrap();
        assert_eq!(n, 1, "the server closed before answering");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-protocol"), "{head}");

    // Ping is answered with pong.
    let mut raw = Raw::ready(&app, None).await;
    raw.send(json!({"type": "ping"})).await;
    assert_eq!(raw.json().await, json!({"type": "pong"}));

    // Two running operations under one id: 4409.
    let mut raw = Raw::ready(&app, Some(&alice.token)).await;
    raw.subscribe("s", "subscription { posts_events { type } }")
        .await;
    raw.subscribe("s", "subscription { posts_events { type } }")
        .await;
    assert_eq!(raw.closed_with().await, 4409);

    // The token on the upgrade request works too; `complete` stops one operation only.
    let mut raw = Raw::connect_with(&app, Some("graphql-transport-ws"), Some(&alice.token)).await;
    raw.send(json!({"type": "connection_init"})).await;
    assert_eq!(raw.json().await["type"], "connection_ack");
    // From the start of the feed: nothing is missed while an operation starts.
    raw.subscribe(
        "a",
        "subscription { posts_events(since: \"0.0\", filter: \"title ~ 'a'\") { type data { title } } }",
    )
    .await;
    raw.subscribe(
        "b",
        "subscription { posts_events(since: \"0.0\") { type data { title } } }",
    )
    .await;
    raw.send(json!({"type": "ping"})).await;
    assert_eq!(raw.json().await, json!({"type": "pong"}));
    // Both are live once each has delivered one event.
    post(&app, &alice.token, "a first", "private").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = raw.json().await;
        assert_eq!(m["type"], "next", "{m}");
        seen.push(m["id"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    raw.send(json!({"id": "a", "type": "complete"})).await;
    post(&app, &alice.token, "a second", "private").await;
    let m = raw.json().await;
    assert_eq!(m["id"], "b", "{m}");
    assert_eq!(
        m["payload"]["data"]["posts_events"]["data"]["title"],
        "a second"
    );
    // The id may be reused once completed.
    raw.subscribe("a", "{ posts(sort: \"title\") { items { title } } }")
        .await;
    let m = raw.json().await;
    assert_eq!(m["id"], "a");
    assert_eq!(m["type"], "next");
    assert_eq!(
        m["payload"]["data"]["posts"]["items"],
        json!([{"title": "a first"}, {"title": "a second"}])
    );
    assert_eq!(raw.json().await, json!({"id": "a", "type": "complete"}));
}

async fn queries_mutations_and_errors_over_the_socket(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let alice = signup(&app, "alice@example.com").await;
    let mut raw = Raw::ready(&app, Some(&alice.token)).await;

    // A mutation: one next, then complete; the change is REST's.
    raw.subscribe(
        "m",
        "mutation { create_posts(input: {title: \"over ws\", visibility: private}) { id title } }",
    )
    .await;
    let m = raw.json().await;
    assert_eq!(m["type"], "next", "{m}");
    let id = m["payload"]["data"]["create_posts"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(raw.json().await, json!({"id": "m", "type": "complete"}));
    let res = app
        .client
        .get(app.url(&format!("/v1/posts/{id}")))
        .header("authorization", format!("Bearer {}", alice.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A request error (invalid against the schema): `error`, with a code.
    raw.subscribe("v", "subscription { posts_events { nope } }")
        .await;
    let m = raw.json().await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["id"], "v");
    assert!(
        m["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{m}"
    );
    assert!(m["payload"][0]["extensions"]["code"].is_string(), "{m}");

    // A collection nobody may read: forbidden; a bad filter, a bad cursor: the field.
    for (query, code) in [
        ("subscription { secrets_events { type } }", "forbidden"),
        (
            "subscription { posts_events(filter: \"title ==\") { type } }",
            "invalid-parameter",
        ),
        (
            "subscription { posts_events(filter: \"nope == 1\") { type } }",
            "invalid-parameter",
        ),
        (
            "subscription { posts_events(since: \"not-a-cursor\") { type } }",
            "invalid-parameter",
        ),
    ] {
        raw.subscribe("e", query).await;
        let m = raw.json().await;
        assert_eq!(m["id"], "e", "{query}: {m}");
        let errors = if m["type"] == "error" {
            m["payload"].clone()
        } else {
            assert_eq!(m["type"], "next", "{query}: {m}");
            assert_eq!(raw.json().await["type"], "complete");
            m["payload"]["errors"].clone()
        };
        assert_eq!(errors[0]["extensions"]["code"], code, "{query}: {m}");
    }

    // The socket still serves after all of that.
    raw.send(json!({"type": "ping"})).await;
    assert_eq!(raw.json().await, json!({"type": "pong"}));

    // Subscriptions are over the socket only: over GET, a 405.
    let res = app
        .client
        .get(app.url("/graphql?query=subscription%20%7B%20posts_events%20%7B%20type%20%7D%20%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    // The schema shows the subscription root.
    let res = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": "{ __schema { subscriptionType { fields { name } } } }"}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let names: Vec<&str> = body["data"]["__schema"]["subscriptionType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"posts_events"), "{body}");
}

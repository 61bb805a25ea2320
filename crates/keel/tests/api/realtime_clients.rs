//! The realtime feed with real clients and a real process: npm `eventsource` (a
//! browser-compatible EventSource, tests/realtime, installed by scripts/tools.sh into
//! `KEEL_REALTIME_DIR`) reconnects with `Last-Event-ID` after the server side drops
//! its connection and gets every missed change exactly once, in order; `keel serve`
//! ends open streams and exits 0 on SIGTERM; a consumer that stops reading is cut off
//! with `reset` instead of being buffered; the per-user and per-address connection
//! caps answer a problem+json 429.

use crate::auth::signup;
use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDb, problem, spawn_app};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const SPEC: &str = r#"
[app]
name = "live"
[auth]
password = true
[collections.posts]
fields.title = { type = "text", required = true }
fields.body = { type = "text" }
fields.author = { type = "ref", to = "users", default = "auth.id", immutable = true }
access.read = "author == auth.id"
access.create = "auth.id != null"
access.update = "author == auth.id"
access.delete = "author == auth.id"
[limits]
"POST /v1/auth/signup" = "1000/min"
"#;

/// The event types the EventSource listens for (named events reach only their own
/// listeners).
const TYPES: [&str; 4] = ["posts.created", "posts.updated", "posts.deleted", "reset"];

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

async fn create(app: &TestApp, token: &str, title: &str) -> String {
    let v = write(
        app,
        token,
        reqwest::Method::POST,
        "/v1/posts",
        json!({"title": title}),
    )
    .await;
    v["id"].as_str().unwrap().to_string()
}

// ---- a TCP proxy that can drop its connections ----

/// A loopback TCP proxy in front of the server. [`Proxy::cut`] drops every open
/// connection (both sides: to the client the server went away mid-stream) and holds
/// new ones until [`Proxy::open`]. It records each request head it forwards.
struct Proxy {
    addr: SocketAddr,
    gate: watch::Sender<bool>,
    generation: watch::Sender<u64>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gate, gate_rx) = watch::channel(true);
        let (generation, gen_rx) = watch::channel(0u64);
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (mut gate, mut cut, heads) =
                    (gate_rx.clone(), gen_rx.clone(), recorded.clone());
                tokio::spawn(async move {
                    let generation = *cut.borrow_and_update();
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let up = async {
                        // The first request head of the connection (an SSE
                        // connection carries one request).
                        let mut head = Some(Vec::new());
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if let Some(h) = head.as_mut() {
                                h.extend_from_slice(&buf[..n]);
                                if let Some(end) = h.windows(4).position(|w| w == b"\r\n\r\n") {
                                    let text = String::from_utf8_lossy(&h[..end]).into_owned();
                                    heads.lock().unwrap().push(text);
                                    head = None;
                                }
                            }
                            if uw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut ur, &mut cw);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut.wait_for(|g| *g != generation) => {}
                    }
                    // Dropping both halves of both sockets closes them.
                });
            }
        });
        Proxy {
            addr,
            gate,
            generation,
            heads,
        }
    }

    fn cut(&self) {
        self.gate.send_replace(false);
        self.generation.send_modify(|g| *g += 1);
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

// ---- npm eventsource in node ----

fn realtime_dir() -> PathBuf {
    let dir = std::env::var("KEEL_REALTIME_DIR").unwrap_or_else(|_| {
        panic!(
            "KEEL_REALTIME_DIR is not set: run the tests through scripts/test.sh, or run \
             scripts/tools.sh and export KEEL_REALTIME_DIR=$HOME/.cache/keel-tools/realtime"
        )
    });
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("node_modules/eventsource/package.json").exists(),
        "eventsource is not installed in {} (scripts/tools.sh installs it)",
        dir.display()
    );
    dir
}

/// `tests/realtime/eventsource_client.mjs` running in node: what it reports, line by
/// line.
struct EventSourceClient {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    script: PathBuf,
}

impl Drop for EventSourceClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

impl EventSourceClient {
    fn start(url: &str) -> Self {
        let dir = realtime_dir();
        // The script must sit beside node_modules for `import "eventsource"`.
        let script = dir.join(format!(
            "eventsource_client-{}.mjs",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/realtime/eventsource_client.mjs"
            ),
            &script,
        )
        .expect("copy eventsource_client.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .arg(url)
            .args(TYPES)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run the EventSource client");
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        EventSourceClient {
            stdin: child.stdin.take(),
            child,
            lines,
            script,
        }
    }

    /// The next line the client reports, within 20 s.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("the EventSource client reported nothing within 20 s")
            .unwrap()
            .expect("the EventSource client exited");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// Skip to the next report of this type.
    async fn until(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "event", "an event while waiting for {kind}: {v}");
        }
    }

    /// Every event up to and including the one about `record_id` (other reports
    /// skipped).
    async fn events_until(&mut self, record_id: &str) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let v = self.next().await;
            if v["type"] != "event" {
                continue;
            }
            let done = v["data"]["record_id"] == record_id;
            got.push(v);
            if done {
                return got;
            }
        }
    }

    /// Ask the client to close its EventSource; returns its last event id.
    async fn close(mut self) -> Option<String> {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"close\n").await.unwrap();
        let closed = self.until("closed").await;
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the EventSource client exits after close")
            .unwrap();
        assert!(status.success(), "{status}");
        closed["last_event_id"].as_str().map(str::to_string)
    }
}

/// `(type, record id, title)` of a reported event: the title as after an update, as
/// before a delete.
fn shape(v: &Value) -> (String, String, String) {
    let d = &v["data"];
    let title = d["data"]["title"]
        .as_str()
        .or(d["previous"]["title"].as_str());
    (
        v["event"].as_str().unwrap().to_string(),
        d["record_id"].as_str().unwrap().to_string(),
        title.unwrap_or("?").to_string(),
    )
}

/// npm `eventsource` with `access_token=` in the URL: the server side drops its
/// connection, 20 of Ada's changes (creates, updates, deletes) and 5 of Bob's happen
/// while it is away, and the library's own reconnect sends `Last-Event-ID`: all 20
/// arrive, in order, none twice, none of Bob's, then the live stream goes on. Then
/// the client closes itself and a new one resumes with `since=` its last id.
async fn eventsource_resumes_with_last_event_id(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let server: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(server).await;
    let feed = format!("/v1/realtime?collections=posts&access_token={}", ada.token);
    let mut es = EventSourceClient::start(&format!("http://{}{feed}", proxy.addr));
    es.until("open").await;
    let seen = create(&app, &ada.token, "seen").await;
    let first = es.events_until(&seen).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let seen_id = first[0]["id"].as_str().unwrap().to_string();

    proxy.cut();
    es.until("error").await; // the library saw the connection drop
    let mut expected = Vec::new();
    let mut live_ids = Vec::new();
    for i in 0..20 {
        let title = format!("missed {i}");
        match i % 4 {
            // A create; then an update of it; then a delete of the one before.
            0 | 2 => {
                let id = create(&app, &ada.token, &title).await;
                expected.push(("posts.created".to_string(), id.clone(), title));
                live_ids.push(id);
            }
            1 => {
                let id = live_ids.last().unwrap().clone();
                write(
                    &app,
                    &ada.token,
                    reqwest::Method::PATCH,
                    &format!("/v1/posts/{id}"),
                    json!({"title": title}),
                )
                .await;
                expected.push(("posts.updated".to_string(), id, title));
            }
            _ => {
                let id = live_ids.remove(live_ids.len() - 2);
                let before = expected
                    .iter()
                    .rev()
                    .find(|(_, r, _)| *r == id)
                    .map(|(_, _, t)| t.clone())
                    .unwrap();
                write(
                    &app,
                    &ada.token,
                    reqwest::Method::DELETE,
                    &format!("/v1/posts/{id}"),
                    Value::Null,
                )
                .await;
                expected.push(("posts.deleted".to_string(), id, before));
            }
        }
        if i % 4 == 3 {
            create(&app, &bob.token, &format!("bob {i}")).await; // not Ada's to read
        }
    }
    create(&app, &bob.token, "bob last").await;
    proxy.open();
    es.until("open").await; // reconnected on its own
    let live = create(&app, &ada.token, "live").await;
    let got = es.events_until(&live).await;
    let shapes: Vec<_> = got.iter().map(shape).collect();
    let mut want = expected.clone();
    want.push((
        "posts.created".to_string(),
        live.clone(),
        "live".to_string(),
    ));
    assert_eq!(
        shapes, want,
        "all 20 missed, in order, none twice, then live"
    );
    let ids: HashSet<&str> = got.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), got.len(), "every SSE id once: {got:?}");
    assert!(!ids.contains(seen_id.as_str()));
    // The second request was the library's reconnect with `Last-Event-ID`, the token
    // still in its URL.
    let heads = proxy.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let header = |head: &str, name: &str| -> Option<String> {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    assert_eq!(header(&heads[0], "last-event-id"), None, "{}", heads[0]);
    assert_eq!(
        header(&heads[1], "last-event-id").as_deref(),
        Some(seen_id.as_str()),
        "{}",
        heads[1]
    );
    for h in &heads {
        assert!(h.starts_with(&format!("GET {feed} ")), "{h}");
    }

    // The client closes itself; 5 changes; a new EventSource resumes with `since=`.
    let last = es.close().await;
    assert_eq!(last.as_deref(), got.last().unwrap()["id"].as_str());
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(create(&app, &ada.token, &format!("after {i}")).await);
    }
    let url = format!("{}{feed}&since={}", app.base, last.unwrap());
    let mut es = EventSourceClient::start(&url);
    let marker = create(&app, &ada.token, "marker").await;
    let got = es.events_until(&marker).await;
    let records: Vec<&str> = got
        .iter()
        .map(|v| v["data"]["record_id"].as_str().unwrap())
        .collect();
    after.push(marker);
    assert_eq!(records, after);
    es.close().await;
}

// ---- keel serve: shutdown with open streams ----

/// Every log line a `keel serve` wrote.
type Logs = Arc<Mutex<Vec<String>>>;

/// `keel serve` on a free port; returns the process, its address and its log lines.
fn serve(dir: &std::path::Path, database: &str) -> (std::process::Child, String, Logs) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--log-format", "json", "--database", database])
        .env("KEEL_ADDR", "127.0.0.1:0")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs: Logs = Arc::new(Mutex::new(Vec::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("keel serve exited before listening")
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        logs.lock().unwrap().push(line);
        if let Some(addr) = v["addr"].as_str() {
            break addr.to_string();
        }
    };
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    (child, addr, logs)
}

/// An SSE stream read to its end in the background: what it got so far, and how it
/// ended (`Ok`: a clean end of the body).
struct Follow {
    text: Arc<Mutex<String>>,
    end: tokio::task::JoinHandle<Result<(), String>>,
}

fn follow(mut res: reqwest::Response) -> Follow {
    let text = Arc::new(Mutex::new(String::new()));
    let got = text.clone();
    let end = tokio::spawn(async move {
        loop {
            match res.chunk().await {
                Ok(Some(c)) => got.lock().unwrap().push_str(&String::from_utf8_lossy(&c)),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    Follow { text, end }
}

impl Follow {
    /// Wait (up to 10 s) until the stream has received `needle`.
    async fn wait_for(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.text.lock().unwrap().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stream never got {needle:?}: {:?}",
                self.text.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// SIGTERM with two SSE streams open (one anonymous, one signed in with
/// `access_token=`): they end cleanly (a finished chunked body, not a reset
/// connection) and `keel serve` exits 0 within a few seconds, rather than waiting on
/// streams that would never end by themselves. No log line holds a token from a
/// query string, valid or not.
async fn sigterm_ends_open_streams_and_exits(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keel.toml"),
        "[app]\nname = \"stop\"\n[auth]\npassword = true\n[collections.notes]\n\
         fields.text = { type = \"text\" }\naccess.read = \"true\"\naccess.create = \"true\"\n",
    )
    .unwrap();
    let (_db, url) = TestDb::new(b).await;
    let (mut child, addr, logs) = serve(dir.path(), &url);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://{addr}/v1/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = "forged-token-that-must-not-be-logged";
    let res = client
        .get(format!(
            "http://{addr}/v1/realtime?collections=notes&access_token={forged}"
        ))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let mut streams = Vec::new();
    for query in ["", &format!("&access_token={token}")] {
        let res = client
            .get(format!(
                "http://{addr}/v1/realtime?collections=notes{query}"
            ))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        streams.push(follow(res));
    }
    // Both streams are live: a write reaches them.
    let res = client
        .post(format!("http://{addr}/v1/notes"))
        .json(&json!({"text": "before the end"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for s in &streams {
        s.wait_for("before the end").await;
    }
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("keel serve still running 5 s after SIGTERM with two open streams");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "exits 0 after SIGTERM");
    for s in streams {
        tokio::time::timeout(Duration::from_secs(2), s.end)
            .await
            .expect("the stream ended with the server")
            .unwrap()
            .expect("the stream ended cleanly");
        assert!(s.text.lock().unwrap().contains("event: notes.created"));
    }
    // The last line ("stopped") read, every line is in.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("\"stopped\""))
    {
        assert!(std::time::Instant::now() < deadline, "no `stopped` line");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let logs = logs.lock().unwrap();
    assert!(
        logs.iter().any(|l| l.contains("/v1/realtime")),
        "the streams have access lines: {logs:?}"
    );
    for l in logs.iter() {
        assert!(
            !l.contains(&token) && !l.contains(forged),
            "a token logged: {l}"
        );
    }
}

// ---- a consumer that stops reading ----

/// A client that reads its headers, then nothing, while 1,700 events of 16 KiB are
/// written: the server cuts it off (its bounded queue filled behind a full socket)
/// instead of buffering. Read again, the stream is a gap-free prefix of the feed, then
/// `reset`, then the end of the body. The client's receive buffer is kept small so the
/// kernel absorbs little. SQLite only: the cut-off is the hub's, whatever the
/// database, and each run writes ~27 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_gets_reset() {
    let app = spawn_app(Backend::Sqlite, SPEC).await;
    let ada = signup(&app, "ada@example.com").await;
    let server: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut slow = socket.connect(server).await.unwrap();
    slow.write_all(
        format!(
            "GET /v1/realtime?collections=posts HTTP/1.1\r\nhost: {server}\r\n\
             accept: text/event-stream\r\nauthorization: Bearer {}\r\n\r\n",
            ada.token
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(slow.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // Written in process (the write path is not what is tested): the 1024-event queue
    // plus a few MiB of socket buffers are passed well before the last write.
    const WRITES: usize = 1700;
    let ada_principal = app.auth.authenticate(&ada.token).await.unwrap();
    let body = "x".repeat(16 * 1024);
    let started = std::time::Instant::now();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (engine, principal, body) = (app.engine.clone(), ada_principal.clone(), body.clone());
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..WRITES).step_by(8) {
                let created = engine
                    .create(
                        &principal,
                        "posts",
                        &json!({"title": format!("t{i}"), "body": body}),
                        None,
                    )
                    .await
                    .unwrap();
                ids.push(created.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for w in writers {
        ids.extend(w.await.unwrap());
    }
    eprintln!("{WRITES} writes in {:?}", started.elapsed());
    // Now read the slow stream to the end of its body (the connection itself stays
    // open for another request).
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !rest.ends_with(b"\r\n0\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, slow.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                let t = String::from_utf8_lossy(&rest);
                panic!(
                    "the stream did not end within 30 s (was it cut off?) after {} events: {:?}",
                    t.matches("event: posts.created").count(),
                    &t[t.len().saturating_sub(200)..]
                )
            })
            .unwrap();
        assert!(n > 0, "the connection closed before the end of the body");
        rest.extend_from_slice(&buf[..n]);
    }
    let text = dechunk(&rest);
    let got: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["record_id"].as_str().map(str::to_string))
        .collect();
    assert!(
        !got.is_empty() && got.len() < WRITES,
        "cut off part way: {} of {WRITES}",
        got.len()
    );
    // `reset` carries the live position as its id (where a browser EventSource
    // continues from), then the stream ends.
    let tail = text.rsplit("\n\n").nth(1).unwrap_or_default();
    assert!(
        tail.starts_with("event: reset\nid: ")
            && tail.ends_with("\ndata: {}")
            && text.ends_with("\n\n"),
        "reset, then the end: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
    // A gap-free prefix of the feed, in the feed's order.
    let mut order = Vec::new();
    let mut after = keel_store::events::Position::default();
    loop {
        let page = keel_realtime::feed::read_after(&app.engine, after, 500)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        order.extend(
            page.iter()
                .filter(|e| e.envelope.collection == "posts")
                .map(|e| e.envelope.record_id.to_string()),
        );
    }
    assert_eq!(order.len(), WRITES);
    assert_eq!(
        order.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    assert_eq!(
        got,
        order[..got.len()],
        "the slow stream is a prefix of the feed"
    );
    eprintln!("slow consumer cut after {} of {WRITES} events", got.len());
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut raw: &[u8]) -> String {
    let mut body = Vec::new();
    loop {
        let line = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = std::str::from_utf8(&raw[..line]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line + 2..];
        if size == 0 {
            return String::from_utf8(body).unwrap();
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

// ---- connection caps ----

async fn open(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url("/v1/realtime?collections=posts"))
        .header("accept", "text/event-stream");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap()
}

/// One user may hold `max_per_user` streams: the next is a 429 problem+json with
/// `Retry-After`; another user is not affected; closing a stream frees its slot.
async fn the_per_user_cap_answers_429(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let cap = keel_realtime::Hub::new(app.engine.clone()).max_per_user;
    let ada = signup(&app, "ada@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let mut held = Vec::new();
    for _ in 0..cap {
        let res = open(&app, Some(&ada.token)).await;
        assert_eq!(res.status(), 200);
        held.push(res);
    }
    let res = open(&app, Some(&ada.token)).await;
    assert_eq!(res.headers()["retry-after"], "5");
    let body = problem(res, 429).await;
    assert!(
        body["detail"].as_str().unwrap_or_default().contains("user"),
        "{body}"
    );
    assert_eq!(open(&app, Some(&bob.token)).await.status(), 200);
    // A closed stream's slot is free again (the server notices the disconnect).
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let res = open(&app, Some(&ada.token)).await;
        if res.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed stream still counts against the cap after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Anonymous streams from one address count against `max_per_ip`.
async fn the_per_address_cap_answers_429(b: Backend) {
    let app = spawn_app(b, SPEC).await;
    let cap = keel_realtime::Hub::new(app.engine.clone()).max_per_ip;
    let mut held = Vec::new();
    for _ in 0..cap {
        let res = open(&app, None).await;
        assert_eq!(res.status(), 200);
        held.push(res);
    }
    let body = problem(open(&app, None).await, 429).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("address"),
        "{body}"
    );
}

backend_tests!(
    eventsource_resumes_with_last_event_id,
    sigterm_ends_open_streams_and_exits,
    the_per_user_cap_answers_429,
    the_per_address_cap_answers_429,
);

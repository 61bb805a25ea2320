//! Events over real HTTP: a receiver on a random port gets every change as a signed
//! Standard Webhooks request; retries keep the webhook id; 410 disables; the breaker
//! opens; one record's events arrive in commit order; filters, cascades and set-null
//! updates; two nodes on one database never deliver one event twice.

use crate::backend_tests;
use crate::helpers::{Backend, TEST_KEYS, TestApp, TestDb, spawn_with};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A webhook secret for tests (24 bytes, base64).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct Inbox {
    got: Mutex<Vec<Received>>,
    /// Statuses to answer, in order; 200 once empty.
    script: Mutex<VecDeque<u16>>,
    arrived: Notify,
}

/// A webhook receiver on a random loopback port.
pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            inbox,
            _stop: tx,
        }
    }

    /// Answer these statuses to the next requests, then 200.
    pub fn answer(&self, statuses: &[u16]) {
        self.inbox.script.lock().unwrap().extend(statuses);
    }

    /// Wait (at most 20 s) until `n` requests have arrived; all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.inbox.arrived.notified();
            {
                let got = self.inbox.got.lock().unwrap();
                if got.len() >= n {
                    return got.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.inbox.got.lock().unwrap();
                panic!(
                    "waited 20 s for {n} webhook requests, got {}: {:#?}",
                    got.len(),
                    got.iter().map(|r| &r.body["type"]).collect::<Vec<_>>()
                );
            }
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.got.lock().unwrap().clone()
    }
}

async fn receive(
    State(inbox): State<Arc<Inbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let status = inbox.script.lock().unwrap().pop_front().unwrap_or(200);
    inbox.got.lock().unwrap().push(Received {
        at: std::time::Instant::now(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    inbox.arrived.notify_waiters();
    StatusCode::from_u16(status).unwrap()
}

fn spec(url: &str, extra: &str) -> String {
    format!(
        r#"
[app]
name = "events"
[collections.posts]
fields.title = {{ type = "text", required = true, max_length = 100 }}
fields.visibility = {{ type = "enum", values = ["public", "private"], default = "public" }}
fields.secret_note = {{ type = "text", encrypted = true }}
fields.internal = {{ type = "text", hidden = true }}
access.read = "true"
access.create = "true"
access.update = "true"
access.delete = "true"
[collections.comments]
fields.post = {{ type = "ref", to = "posts", required = true, on_delete = "cascade" }}
fields.body = {{ type = "text" }}
access.read = "true"
access.create = "true"
[collections.pins]
fields.post = {{ type = "ref", to = "posts", on_delete = "set_null" }}
access.read = "true"
access.create = "true"
[events.webhooks.hook]
url = "{url}"
on = ["*"]
secret = "{SECRET}"
allow_private = true
{extra}
"#
    )
}

/// A fast relay for tests: retries after milliseconds, a breaker that opens after 3
/// failures for 300 ms. (The production schedule and breaker are unit-tested.)
fn fast_relay() -> keel_events::RelaySettings {
    keel_events::RelaySettings {
        poll: Duration::from_millis(200),
        schedule: keel_events::RetrySchedule::new(vec![
            Duration::from_millis(20),
            Duration::from_millis(40),
            Duration::from_millis(80),
        ])
        .with_jitter(0.0),
        breaker: keel_events::BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_millis(300),
            max_cool_down: Duration::from_millis(600),
            trial_timeout: Duration::from_secs(5),
        },
        ..Default::default()
    }
}

pub async fn spawn_events(b: Backend, spec: &str) -> TestApp {
    let (db, url) = TestDb::new(b).await;
    spawn_node(db, &url, spec).await
}

async fn spawn_node(db: TestDb, url: &str, spec: &str) -> TestApp {
    let model = keel_spec::load_str(spec, "keel.toml", &BTreeMap::new())
        .unwrap_or_else(|e| panic!("test spec is invalid:\n{e}"));
    let mut settings = keel::Settings::new(model, url.to_string());
    settings.field_keys = Some(TEST_KEYS.into());
    settings.relay = fast_relay();
    spawn_with(db, settings).await
}

/// Wait (at most 20 s) until `check` holds, re-checking as the relay works.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 20 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pending(app: &TestApp) -> i64 {
    app.engine
        .store()
        .query(
            &keel_store::events::pending_stats(),
            &[
                keel_spec::Storage::Text,
                keel_spec::Storage::Int,
                keel_spec::Storage::Datetime,
            ],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r[1].as_i64().unwrap_or(0))
        .sum()
}

async fn disabled(app: &TestApp) -> Vec<String> {
    app.engine
        .store()
        .query(
            &keel_store::events::disabled_destinations(),
            &[keel_spec::Storage::Text],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect()
}

/// The requests as received, verified by the PyPI `standardwebhooks` reference library
/// (an independent implementation; installed by scripts/tools.sh).
fn verify_with_standardwebhooks(got: &[Received]) {
    use base64::Engine as _;
    let bin = std::env::var("KEEL_TOOLS_BIN")
        .expect("KEEL_TOOLS_BIN is not set: run the tests through scripts/test.sh");
    let cases: Vec<Value> = got
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let h = |n: &str| r.headers[n].to_str().unwrap().to_string();
            json!({
                "name": format!("request {i}"),
                "secret": SECRET,
                "headers": {
                    "webhook-id": h("webhook-id"),
                    "webhook-timestamp": h("webhook-timestamp"),
                    "webhook-signature": h("webhook-signature"),
                },
                "body_b64": base64::engine::general_purpose::STANDARD.encode(&r.raw),
            })
        })
        .collect();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../keel-events/tests/tools/verify_standardwebhooks.py");
    let mut child = std::process::Command::new(std::path::Path::new(&bin).join("python"))
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the standardwebhooks verifier");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&serde_json::to_vec(&cases).unwrap())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "verifier failed");
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), got.len());
    for r in &results {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["payload_ok"], true, "{r}");
    }
}

fn verify(r: &Received) {
    let secrets = keel_events::WebhookSecrets::parse(SECRET).unwrap();
    let h = |name: &str| r.headers[name].to_str().unwrap().to_string();
    keel_events::signature::verify(
        &secrets,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &h("webhook-signature"),
        &r.raw,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        keel_events::signature::DEFAULT_TOLERANCE,
    )
    .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
    assert_eq!(h("webhook-id"), r.body["id"].as_str().unwrap());
}

async fn every_change_is_a_signed_event(b: Backend) {
    let rx = Receiver::start().await;
    let app = spawn_events(b, &spec(&rx.url, "")).await;
    let post = app
        .create("posts", json!({"title": "Hello", "secret_note": "s3cret"}))
        .await;
    let id = post["id"].as_str().unwrap().to_string();
    let path = format!("/v1/posts/{id}");
    let comment = app
        .create("comments", json!({"post": id, "body": "first"}))
        .await;
    let pin = app.create("pins", json!({"post": id})).await;
    assert_eq!(
        app.patch(&path, json!({"title": "Hello again"}))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete(&path).await.status(), 204);
    // created ×3, updated, then the delete: pin set to null, comment deleted, post deleted.
    let got = rx.wait_for(7).await;
    for r in &got {
        verify(r);
        let text = String::from_utf8_lossy(&r.raw);
        assert!(
            !text.contains("s3cret") && !text.contains("enc:v1"),
            "{text}"
        );
        assert!(r.body["data"].get("internal").is_none(), "{text}");
        assert!(r.body.get("actor").is_some());
    }
    let types: Vec<&str> = got
        .iter()
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    let of = |t: &str| {
        got.iter()
            .find(|r| r.body["type"] == t)
            .unwrap()
            .body
            .clone()
    };
    for t in [
        "posts.created",
        "comments.created",
        "pins.created",
        "posts.updated",
        "pins.updated",
        "comments.deleted",
        "posts.deleted",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let created = of("posts.created");
    assert_eq!(created["collection"], "posts");
    assert_eq!(created["record_id"], id.as_str());
    assert_eq!(created["data"]["title"], "Hello");
    assert!(created.get("previous").is_none(), "{created}");
    let updated = of("posts.updated");
    assert_eq!(updated["previous"]["title"], "Hello");
    assert_eq!(updated["data"]["title"], "Hello again");
    assert_eq!(updated["data"]["version"], 2);
    let deleted = of("posts.deleted");
    assert_eq!(deleted["data"], Value::Null);
    assert_eq!(deleted["previous"]["title"], "Hello again");
    let nulled = of("pins.updated");
    assert_eq!(nulled["record_id"], pin["id"]);
    assert_eq!(nulled["previous"]["post"], id.as_str());
    assert_eq!(nulled["data"]["post"], Value::Null);
    assert_eq!(nulled["data"]["version"], 2);
    assert_eq!(of("comments.deleted")["previous"]["id"], comment["id"]);
    // The pin survives, unlinked; the comment went with its post.
    let pin_now = app
        .list(&format!("/v1/pins/{}", pin["id"].as_str().unwrap()))
        .await;
    assert_eq!(pin_now["post"], Value::Null);
    assert_eq!(
        app.get(&format!("/v1/comments/{}", comment["id"].as_str().unwrap()))
            .await
            .status(),
        404
    );
    verify_with_standardwebhooks(&got);
    // Every event has its own id; a delivery's id never changes.
    let mut ids: Vec<&str> = got.iter().map(|r| r.body["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len());
}

async fn retries_keep_the_webhook_id_and_410_disables(b: Backend) {
    let rx = Receiver::start().await;
    rx.answer(&[503, 500]);
    let app = spawn_events(b, &spec(&rx.url, "")).await;
    app.create("posts", json!({"title": "one"})).await;
    let got = rx.wait_for(3).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    // A 410 disables the endpoint on every node: nothing more is sent.
    rx.answer(&[410]);
    app.create("posts", json!({"title": "two"})).await;
    rx.wait_for(4).await;
    eventually("the destination to be disabled", || async {
        disabled(&app).await == ["webhook:hook"]
    })
    .await;
    app.create("posts", json!({"title": "three"})).await;
    // Two deliveries wait for the destination to come back; none is attempted.
    eventually("two pending deliveries", || async {
        pending(&app).await == 2
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "keel_event_deliveries_total{destination=\"webhook:hook\",outcome=\"gone\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(rx.received().len(), 4);
}

async fn one_records_events_arrive_in_commit_order(b: Backend) {
    let rx = Receiver::start().await;
    // Failures on the way make deliveries retry: order must hold regardless.
    rx.answer(&[503, 200, 503, 503, 200, 500]);
    let app = spawn_events(b, &spec(&rx.url, "")).await;
    let post = app.create("posts", json!({"title": "v1"})).await;
    let path = format!("/v1/posts/{}", post["id"].as_str().unwrap());
    for i in 2..=12 {
        assert_eq!(
            app.patch(&path, json!({"title": format!("v{i}")}))
                .await
                .status(),
            200
        );
    }
    // 12 events, 4 of the attempts failed.
    let got = rx.wait_for(16).await;
    let delivered: Vec<i64> = got
        .iter()
        .filter(|r| r.body["data"]["version"].is_i64())
        .map(|r| r.body["data"]["version"].as_i64().unwrap())
        .collect();
    // Attempts of one record never overtake each other: versions never go back
    // (a retried version repeats before the next one).
    assert!(delivered.windows(2).all(|w| w[0] <= w[1]), "{delivered:?}");
    let mut distinct = delivered.clone();
    distinct.dedup();
    assert_eq!(distinct, (1..=12).collect::<Vec<_>>());
}

async fn filters_select_events(b: Backend) {
    let rx = Receiver::start().await;
    let extra = r#"[events.webhooks.public_only]
url = "URL"
on = ["posts.created", "posts.updated"]
filter = 'visibility == "public"'
allow_private = true
"#
    .replace("URL", &rx.url);
    // The main hook goes elsewhere (a closed port): only `public_only` reaches rx.
    let app = spawn_events(b, &spec("http://127.0.0.1:9/nowhere", &extra)).await;
    app.create("posts", json!({"title": "shown", "visibility": "public"}))
        .await;
    app.create("posts", json!({"title": "hidden", "visibility": "private"}))
        .await;
    app.create("posts", json!({"title": "shown too"})).await;
    let got = rx.wait_for(2).await;
    let titles: Vec<&str> = got
        .iter()
        .map(|r| r.body["data"]["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"shown") && titles.contains(&"shown too"),
        "{titles:?}"
    );
    assert!(!titles.contains(&"hidden"));
}

async fn private_destinations_are_refused_by_default(b: Backend) {
    let rx = Receiver::start().await;
    let extra = r#"[events.webhooks.guarded]
url = "URL"
on = ["*"]
"#
    .replace("URL", &rx.url);
    let app = spawn_events(b, &spec("http://127.0.0.1:9/nowhere", &extra)).await;
    app.create("posts", json!({"title": "x"})).await;
    // The guarded hook's attempt is refused before any connection is made.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = app
            .engine
            .store()
            .query(
                &keel_store::events::list(app.engine.store().dialect(), None, 50),
                &[
                    keel_spec::Storage::Text,
                    keel_spec::Storage::Int,
                    keel_spec::Storage::Text,
                    keel_spec::Storage::Text,
                    keel_spec::Storage::Text,
                    keel_spec::Storage::Text,
                    keel_spec::Storage::Int,
                    keel_spec::Storage::Datetime,
                    keel_spec::Storage::Int,
                    keel_spec::Storage::Text,
                    keel_spec::Storage::Datetime,
                ],
            )
            .await
            .unwrap();
        // On SQLite the relay makes the delivery row from the event: it may not be
        // there yet.
        let guarded = rows.iter().find(|r| r[0] == "webhook:guarded");
        if let Some(err) = guarded.and_then(|g| g[9].as_str()) {
            assert!(err.contains("private or loopback"), "{err}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rx.received().is_empty());
}

/// Three failures in a row open the breaker: the next attempt waits for the cool-down
/// (300 ms here), not for the schedule's next step (80 ms), and a success closes it.
async fn the_breaker_opens_and_closes(b: Backend) {
    let rx = Receiver::start().await;
    rx.answer(&[500, 500, 500]);
    let app = spawn_events(b, &spec(&rx.url, "")).await;
    app.create("posts", json!({"title": "x"})).await;
    let got = rx.wait_for(4).await;
    let gap = got[3].at - got[2].at;
    assert!(
        gap >= Duration::from_millis(300),
        "the breaker let an attempt through after {gap:?}"
    );
    eventually("the breaker to close", || async {
        let m = app.get("/metrics").await.text().await.unwrap();
        m.contains("keel_event_breaker_state{destination=\"webhook:hook\"} 0")
            && m.contains(
                "keel_event_deliveries_total{destination=\"webhook:hook\",outcome=\"delivered\"} 1",
            )
    })
    .await;
}

/// Events are pruned once retention has passed and their deliveries are settled.
async fn retention_prunes_settled_events(b: Backend) {
    let rx = Receiver::start().await;
    let (db, url) = TestDb::new(b).await;
    let source = spec(&rx.url, "").replace(
        "[events.webhooks.hook]",
        "[events]\nretention = \"1s\"\n[events.webhooks.hook]",
    );
    let model = keel_spec::load_str(&source, "keel.toml", &BTreeMap::new()).unwrap();
    assert_eq!(model.events.retention_secs, 1);
    let mut settings = keel::Settings::new(model, url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.relay = keel_events::RelaySettings {
        housekeeping: Duration::from_millis(100),
        ..fast_relay()
    };
    let app = spawn_with(db, settings).await;
    app.create("posts", json!({"title": "old"})).await;
    rx.wait_for(1).await;
    let count = |sql: &'static str| {
        let app = &app;
        async move {
            app.engine
                .store()
                .query(
                    &keel_store::Stmt::new(sql, vec![]),
                    &[keel_spec::Storage::Int],
                )
                .await
                .unwrap()[0][0]
                .as_i64()
                .unwrap()
        }
    };
    eventually("the event to be pruned", || async {
        count("SELECT COUNT(*) FROM _keel_events").await == 0
    })
    .await;
    assert_eq!(count("SELECT COUNT(*) FROM _keel_deliveries").await, 0);
}

backend_tests!(
    the_breaker_opens_and_closes,
    retention_prunes_settled_events,
    every_change_is_a_signed_event,
    retries_keep_the_webhook_id_and_410_disables,
    one_records_events_arrive_in_commit_order,
    filters_select_events,
    private_destinations_are_refused_by_default,
);

/// Two nodes on one PostgreSQL database: every event is delivered once, by one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_deliver_one_event_twice() {
    let rx = Receiver::start().await;
    let spec = spec(&rx.url, "");
    let (db, url) = TestDb::new(Backend::Postgres).await;
    let a = spawn_node(db, &url, &spec).await;
    let b = spawn_node(
        TestDb::Sqlite {
            _dir: tempfile::tempdir().unwrap(),
        },
        &url,
        &spec,
    )
    .await;
    let n = 60;
    for i in 0..n {
        let node = if i % 2 == 0 { &a } else { &b };
        node.create("posts", json!({"title": format!("p{i}")}))
            .await;
    }
    rx.wait_for(n).await;
    // Once every delivery is settled, each event arrived exactly once: no double claim.
    eventually("every delivery settled", || async {
        pending(&a).await == 0
    })
    .await;
    let got = rx.received();
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.body["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(got.len(), n);
}

/// A commit on a node that runs no relay wakes the relay of another node at once
/// (PostgreSQL NOTIFY), long before that relay's own poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_on_another_node_wake_the_relay() {
    let rx = Receiver::start().await;
    let spec = spec(&rx.url, "");
    let (db, url) = TestDb::new(Backend::Postgres).await;
    let model = || keel_spec::load_str(&spec, "keel.toml", &BTreeMap::new()).unwrap();
    // The delivering node polls only every 10 minutes.
    let mut settings = keel::Settings::new(model(), url.clone());
    settings.field_keys = Some(TEST_KEYS.into());
    settings.relay = keel_events::RelaySettings {
        poll: Duration::from_secs(600),
        housekeeping: Duration::from_secs(600),
        ..fast_relay()
    };
    let _delivering = spawn_with(db, settings).await;
    // The writing node is built but never run: no relay of its own.
    let mut settings = keel::Settings::new(model(), url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.addr = "127.0.0.1:0".into();
    let writer = keel::App::build(settings).await.unwrap();
    let created = writer
        .engine()
        .create(
            &keel_core::Principal::anonymous(),
            "posts",
            &json!({"title": "from elsewhere"}),
            None,
        )
        .await
        .unwrap();
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].body["record_id"], created.id.as_str());
}

/// The relay runs on a thread of its own (its deliveries never queue among requests on
/// the runtime's workers), and delivers from there.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_runs_on_a_thread_of_its_own() {
    let rx = Receiver::start().await;
    let app = spawn_events(Backend::Sqlite, &spec(&rx.url, "")).await;
    app.create("posts", json!({"title": "one"})).await;
    rx.wait_for(1).await;
    let relays = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "keel-relay")
        .count();
    assert_eq!(relays, 1);
}

//! Read replicas for real: a private PostgreSQL primary and a streaming standby
//! (`scripts/pg-replica.sh`: `initdb`, then `pg_basebackup -R`). Reads go to the
//! standby, a caller's reads right after its own write go to the primary, a standby
//! that lags (replay paused) or is stopped is taken out and put back.

use crate::auth::signup;
use crate::cache::get_as;
use crate::helpers::{TestApp, TestDb, spawn_with};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A primary and its standby on free ports; stopped on drop.
struct ReplicaSet {
    dir: tempfile::TempDir,
    primary: u16,
    standby: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-replica.sh")
}

impl ReplicaSet {
    fn start() -> ReplicaSet {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path().join("rs"))
            .output()
            .expect("scripts/pg-replica.sh");
        assert!(
            out.status.success(),
            "pg-replica.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ports = String::from_utf8_lossy(&out.stdout).to_string();
        let mut ports = ports.split_whitespace().map(|p| p.parse().unwrap());
        let (primary, standby) = (ports.next().unwrap(), ports.next().unwrap());
        ReplicaSet {
            dir,
            primary,
            standby,
        }
    }

    fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    fn run(&self, args: &[&str]) {
        let status = Command::new(script())
            .arg(args[0])
            .arg(self.dir.path().join("rs"))
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(status.success(), "pg-replica.sh {args:?}");
    }

    fn standby_sql(&self, sql: &str) {
        let status = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-Atq", "-c", sql])
            .args(["-p", &self.standby.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "{sql}");
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path().join("rs"))
            .status();
    }
}

async fn in_service(app: &TestApp) -> Option<bool> {
    let text = crate::many_nodes::metrics(app).await;
    text.lines()
        .find(|l| l.starts_with("keel_replica_in_service{replica=\"0\"}"))
        .map(|l| l.ends_with(" 1"))
}

/// Poll `/metrics` (each probe is 250 ms apart) until the replica is in service or not.
async fn until_in_service(app: &TestApp, wanted: bool) {
    for _ in 0..200 {
        if in_service(app).await == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica never became in service = {wanted}");
}

async fn names(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let (status, page) = get_as(app, "/v1/files?sort=name", token).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_a_streaming_replica_and_writers_read_their_writes() {
    let set = ReplicaSet::start();
    let mut s = crate::cache::settings(&ReplicaSet::url(set.primary), keel::CacheMode::Off);
    s.replicas = vec![ReplicaSet::url(set.standby)];
    s.replica_max_lag = Duration::from_secs(5);
    // The private primary is dropped with the set, not by the test database.
    let app = spawn_with(
        TestDb::Sqlite {
            _dir: tempfile::tempdir().unwrap(),
        },
        s,
    )
    .await;
    until_in_service(&app, true).await;
    let writer = signup(&app, "writer@example.com").await;
    let create = |name: &'static str| {
        let (app, token) = (&app, writer.token.clone());
        async move {
            let res = app
                .client
                .post(app.url("/v1/files"))
                .bearer_auth(token)
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()
        }
    };
    create("a").await;
    // The writer reads its write at once (from the primary).
    assert_eq!(names(&app, Some(&writer.token)).await, ["a"]);
    until_in_service(&app, true).await;
    // In service means within the allowed lag, not caught up: wait until the standby
    // has replayed "a" before pausing it there (anonymous reads come from it).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while names(&app, None).await != ["a"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standby never replayed a"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Replay paused: the standby stops at "a". Others read the standby, the writer
    // the primary.
    set.standby_sql("SELECT pg_wal_replay_pause()");
    let b = create("b").await;
    assert_eq!(names(&app, Some(&writer.token)).await, ["a", "b"]);
    let path = format!("/v1/files/{}", b["id"].as_str().unwrap());
    assert_eq!(get_as(&app, &path, Some(&writer.token)).await.0, 200);
    assert_eq!(
        names(&app, None).await,
        ["a"],
        "anonymous reads come from the standby"
    );
    assert_eq!(get_as(&app, &path, None).await.0, 404, "not replayed yet");

    // Past the allowed lag the standby is taken out: everyone reads the primary.
    until_in_service(&app, false).await;
    assert_eq!(names(&app, None).await, ["a", "b"]);
    // Replay resumed: caught up, it is put back.
    set.standby_sql("SELECT pg_wal_replay_resume()");
    until_in_service(&app, true).await;
    assert_eq!(names(&app, None).await, ["a", "b"]);

    // Stopped: out of service, reads never fail; started again: back.
    set.run(&["stop", "standby"]);
    for _ in 0..5 {
        assert_eq!(names(&app, None).await, ["a", "b"]);
    }
    until_in_service(&app, false).await;
    set.run(&["restart-standby"]);
    until_in_service(&app, true).await;
    assert_eq!(names(&app, None).await, ["a", "b"]);
}

#[tokio::test]
async fn replicas_need_postgres_urls() {
    let (db, url) = TestDb::new(crate::helpers::Backend::Sqlite).await;
    let mut s = crate::cache::settings(&url, keel::CacheMode::Off);
    s.replicas = vec!["postgres://127.0.0.1:1/x".into()];
    let err = keel::App::build(s)
        .await
        .err()
        .expect("SQLite has no replicas");
    assert!(err.to_string().contains("PostgreSQL primary"), "{err}");
    drop(db);
    let spec = "[app]\nname = \"r\"\n\n[server]\nreplicas = [\"mysql://x\"]\n";
    let errors =
        keel_spec::load_str(spec, "keel.toml", &std::collections::BTreeMap::new()).unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("keel.toml:5:"), "{text}");
    assert!(text.contains("postgres://"), "{text}");
}

/// One request's status, problem `type` and `Retry-After`.
async fn answer(req: reqwest::RequestBuilder) -> (u16, String, Option<String>) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["type"].as_str().unwrap_or("").to_string(),
        retry,
    )
}

/// The database stopped under a running server: reads (on the shared, pipelined
/// connections), writes (on the pool) and `/readyz` answer 503 problem+json, never
/// a 500 or a hang; started again, the same server reads and writes without a
/// restart (broken connections are replaced on their next use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_stopped_and_started_under_the_server() {
    let set = ReplicaSet::start();
    let s = crate::cache::settings(&ReplicaSet::url(set.primary), keel::CacheMode::Off);
    // The private primary is dropped with the set, not by the test database.
    let app = spawn_with(
        TestDb::Sqlite {
            _dir: tempfile::tempdir().unwrap(),
        },
        s,
    )
    .await;
    let writer = signup(&app, "writer@example.com").await;
    let create = |name: &'static str| {
        app.client
            .post(app.url("/v1/files"))
            .bearer_auth(writer.token.clone())
            .json(&json!({ "name": name }))
    };
    assert_eq!(answer(create("a")).await.0, 201);
    let (status, a) = get_as(&app, "/v1/files?sort=name", None).await;
    assert_eq!(status, 200, "{a}");
    let id = a["items"][0]["id"].as_str().unwrap().to_string();

    // Fast, not immediate: the private primary commits asynchronously, and an
    // immediate stop would lose the last commits (this test reads them back).
    set.run(&["stop", "primary", "fast"]);
    for path in ["/v1/files?sort=name".to_string(), format!("/v1/files/{id}")] {
        // Twice: the first read finds the shared connection broken, the second
        // fails to replace it.
        for _ in 0..2 {
            let (status, kind, retry) = answer(app.client.get(app.url(&path))).await;
            assert_eq!(status, 503, "GET {path}");
            assert!(kind.ends_with("#unavailable"), "{kind}");
            assert_eq!(retry.as_deref(), Some("1"));
        }
    }
    let (status, kind, _) = answer(create("b")).await;
    assert_eq!(
        (status, kind.ends_with("#unavailable")),
        (503, true),
        "{kind}"
    );
    assert_eq!(answer(app.client.get(app.url("/readyz"))).await.0, 503);

    set.run(&["restart-primary"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = get_as(&app, "/v1/files?sort=name", None).await;
        if status == 200 {
            assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
            break;
        }
        assert_eq!(status, 503, "{page}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "reads never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer(create("b")).await.0, 201);
    assert_eq!(names(&app, None).await, ["a", "b"]);
    assert_eq!(answer(app.client.get(app.url("/readyz"))).await.0, 200);
}

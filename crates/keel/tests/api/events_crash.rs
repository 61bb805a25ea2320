//! `kill -9` of `keel serve` in the middle of a write stream: after a restart every
//! acknowledged write is delivered at least once, and duplicates share the event id.
//! On SQLite, first attempts have no row until they settle: once their rows and the
//! relay's position are stored, a restart sends none of them again.

use crate::events::{Receiver, SECRET};
use crate::helpers::{Backend, TestDb};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn spec(url: &str) -> String {
    format!(
        r#"
[app]
name = "crash"
[collections.notes]
fields.text = {{ type = "text" }}
access.read = "true"
access.create = "true"
[limits]
anonymous = "1000000/min"
[events.webhooks.hook]
url = "{url}"
on = ["*"]
secret = "{SECRET}"
allow_private = true
"#
    )
}

/// `keel serve` on a free port; returns the process and its address.
fn serve(dir: &std::path::Path, database: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--log-format", "json", "--database", database])
        .env("KEEL_ADDR", "127.0.0.1:0")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("keel serve exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["addr"].as_str() {
            break addr.to_string();
        }
    };
    // Keep draining its logs so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, addr)
}

async fn acknowledged_writes_survive_kill_9(b: Backend) {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), spec(&rx.url)).unwrap();
    let (_db, url) = TestDb::new(b).await;
    let (mut child, addr) = serve(dir.path(), &url);
    let client = reqwest::Client::new();
    // Four writers; the server is killed once 60 writes are acknowledged.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, addr, acked) = (client.clone(), addr.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..1000 {
                let res = client
                    .post(format!("http://{addr}/v1/notes"))
                    .json(&serde_json::json!({"text": format!("w{w}-{i}")}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_string());
                    }
                    // The server went away: the write may or may not have happened.
                    _ => return,
                }
            }
        }));
    }
    loop {
        if acked.lock().unwrap().len() >= 60 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() >= 60);
    // Restart on the same database: the relay delivers what was left.
    let (mut child, _addr) = serve(dir.path(), &url);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = rx.received();
        let delivered: HashSet<String> = got
            .iter()
            .filter(|r| r.body["type"] == "notes.created")
            .map(|r| r.body["record_id"].as_str().unwrap().to_string())
            .collect();
        if acked.is_subset(&delivered) {
            // Duplicates (an attempt cut short by the kill, retried) share the id.
            let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
            for r in &got {
                ids.entry(r.body["record_id"].as_str().unwrap().to_string())
                    .or_default()
                    .insert(r.headers["webhook-id"].to_str().unwrap().to_string());
            }
            assert!(ids.values().all(|s| s.len() == 1), "{ids:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged writes never delivered",
            acked.difference(&delivered).count()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

crate::backend_tests!(acknowledged_writes_survive_kill_9);

/// The relay's stored position and the newest event (SQLite).
async fn position(store: &keel_store::Store) -> (i64, i64) {
    let one = |stmt: keel_store::Stmt| async move {
        store
            .query(&stmt, &[keel_spec::Storage::Int])
            .await
            .unwrap()
            .first()
            .and_then(|r| r[0].as_i64())
            .unwrap_or(0)
    };
    (
        one(keel_store::events::relay_position()).await,
        one(keel_store::events::newest_event()).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_restart_sends_nothing_already_delivered() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), spec(&rx.url)).unwrap();
    let (_db, url) = TestDb::new(Backend::Sqlite).await;
    let (mut child, addr) = serve(dir.path(), &url);
    let client = reqwest::Client::new();
    for i in 0..5 {
        let r = client
            .post(format!("http://{addr}/v1/notes"))
            .json(&serde_json::json!({ "text": format!("n{i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    rx.wait_for(5).await;
    // Each first attempt wrote one row, delivered at the first attempt; the position
    // then moves past all five.
    let store = keel_store::Store::open(&url).await.unwrap();
    crate::events::eventually("the position past every delivered event", || async {
        let (position, newest) = position(&store).await;
        position == newest
    })
    .await;
    let rows = store
        .query(
            &keel_store::Stmt::new(
                "SELECT state, attempts, last_status FROM _keel_deliveries",
                vec![],
            ),
            &[
                keel_spec::Storage::Text,
                keel_spec::Storage::Int,
                keel_spec::Storage::Int,
            ],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r[0] == "delivered" && r[1] == 1 && r[2] == 200),
        "{rows:?}"
    );
    child.kill().unwrap(); // SIGKILL: nothing is flushed on the way out
    child.wait().unwrap();
    // A restart starts past them: the next event is the only one sent.
    let (mut child, addr) = serve(dir.path(), &url);
    let r = client
        .post(format!("http://{addr}/v1/notes"))
        .json(&serde_json::json!({ "text": "after" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = rx.wait_for(6).await;
    let ids: HashSet<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(got[5].body["data"]["text"], "after");
    assert_eq!(rx.received().len(), 6);
    child.kill().unwrap();
    child.wait().unwrap();
}

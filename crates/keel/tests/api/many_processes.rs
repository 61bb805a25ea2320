//! Three `keel serve` processes on one fresh PostgreSQL database and one Redis, the
//! deployment `keel design` recommends, requests spread round-robin: they start
//! together and migrate once; one limit holds for all three; cursors and idempotency
//! keys work whichever node answers; a node killed (`kill -9`) under writes loses no
//! acknowledged write.

use crate::helpers::{Backend, TestDb};
use crate::many_nodes::PrivateRedis;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

const SPEC: &str = r#"
[app]
name = "three"

[collections.notes]
fields.text = { type = "text" }
access.read = "true"
access.create = "true"

[limits]
anonymous = "1000000/min"
"GET /v1/notes" = "20/min"
"#;

/// A `keel serve` process; killed on drop.
struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn `keel serve` (not yet waiting for it to listen).
fn spawn(dir: &std::path::Path, database: &str, redis: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--log-format", "json", "--database", database])
        .args(["--redis", redis])
        .env("KEEL_ADDR", "127.0.0.1:0")
        .env("KEEL_SECRET", "three-nodes-share-this-secret-0123456789")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for the node's "listening" log line; then keep draining its logs.
fn listening(mut child: Child) -> Node {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("keel serve exited before listening")
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["addr"].as_str() {
            break addr.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Node {
        child,
        base: format!("http://{addr}"),
    }
}

async fn all_notes(client: &reqwest::Client, base: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/notes?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_database_and_redis_and_lose_nothing_when_one_dies() {
    let redis = PrivateRedis::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), SPEC).unwrap();
    let (_db, url) = TestDb::new(Backend::Postgres).await;

    // Started together on a fresh database: one migrates, the others wait for it.
    let children: Vec<Child> = (0..3)
        .map(|_| spawn(dir.path(), &url, &redis.url()))
        .collect();
    let nodes: Vec<Node> = children.into_iter().map(listening).collect();
    let client = reqwest::Client::new();
    for n in &nodes {
        let res = client
            .get(format!("{}/readyz", n.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }

    // One limit of 20/min for the three, anonymous callers round-robin.
    let mut allowed = 0;
    for i in 0..36 {
        let res = client
            .get(format!("{}/v1/notes", nodes[i % 3].base))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(status == 200 || status == 429, "{status}");
        allowed += usize::from(status == 200);
    }
    assert_eq!(allowed, 20, "one shared limit, not 20 per node");

    // A signed-in caller (its own bucket) pages with cursors across nodes.
    let signup: Value = client
        .post(format!("{}/v1/auth/signup", nodes[1].base))
        .json(&json!({"email": "pager@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    for i in 0..7 {
        let res = client
            .post(format!("{}/v1/notes", nodes[i % 3].base))
            .json(&json!({"text": format!("page-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for hop in 0.. {
        let mut url = format!("{}/v1/notes?limit=2&sort=created_at", nodes[hop % 3].base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let res = client.get(url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["text"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("page-{i}")).collect();
    assert_eq!(
        seen, expected,
        "each record once, in order, across three nodes"
    );

    // One idempotency key, three nodes: one record, two replays.
    let mut ids = HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let res = client
            .post(format!("{}/v1/notes", n.base))
            .header("idempotency-key", "three-nodes-one-note")
            .json(&json!({"text": "once"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let replayed = res.headers().get("idempotent-replayed").is_some();
        assert_eq!(replayed, i > 0, "node {i}");
        let body: Value = res.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);

    // Writers round-robin over the nodes; node 2 is killed mid-stream. Every write
    // that was acknowledged (201) is there afterwards.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.base.clone()).collect());
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, bases, acked) = (client.clone(), bases.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..150 {
                let base = &bases[(w + i) % 3];
                let res = client
                    .post(format!("{base}/v1/notes"))
                    .json(&json!({"text": format!("w{w}-{i}")}))
                    .send()
                    .await;
                if let Ok(r) = res
                    && r.status() == 201
                {
                    let v: Value = r.json().await.unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push(v["id"].as_str().unwrap().to_string());
                }
            }
        }));
    }
    let mut nodes = nodes;
    loop {
        if acked.lock().unwrap().len() >= 120 {
            let mut killed = nodes.pop().unwrap();
            killed.child.kill().unwrap();
            killed.child.wait().unwrap();
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 300, "the writes went on: {}", acked.len());
    let stored: HashSet<String> = all_notes(&client, &nodes[0].base, &token)
        .await
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
}

//! Many nodes: rate limits shared through a real Redis (the machine's at :6379, with
//! a key prefix per test, or a private redis-server the test starts, stops and
//! restarts), the per-node fallback while Redis is down, and the client address
//! behind trusted proxies.

use crate::helpers::{Backend, TEST_KEYS, TestApp, TestDb, spawn_with};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SPEC: &str = r#"
[app]
name = "nodes"

[collections.notes]
fields.title = { type = "text" }
access.read = "true"

[limits]
anonymous = "LIMIT"
"#;

fn settings(url: &str, limit: &str) -> keel::Settings {
    let spec = SPEC.replace("LIMIT", limit);
    let model = keel_spec::load_str(&spec, "keel.toml", &BTreeMap::new()).unwrap();
    let mut settings = keel::Settings::new(model, url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.secret = Some("test-secret-test-secret-test-secret".into());
    settings
}

/// A database that is someone else's: the first node's `TestDb` drops the real one.
fn borrowed() -> TestDb {
    TestDb::Sqlite {
        _dir: tempfile::tempdir().unwrap(),
    }
}

fn unique_prefix(test: &str) -> String {
    format!("keel-test:{test}:{}:", uuid::Uuid::now_v7().simple())
}

/// `n` nodes on one PostgreSQL database and one Redis.
async fn nodes(n: usize, redis: &str, prefix: &str, limit: &str, trusted: &str) -> Vec<TestApp> {
    let (db, url) = TestDb::new(Backend::Postgres).await;
    let mut db = Some(db);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut s = settings(&url, limit);
        s.redis_url = Some(redis.to_string());
        s.redis_prefix = prefix.to_string();
        s.trusted_proxies = trusted
            .split(',')
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().unwrap())
            .collect();
        out.push(spawn_with(db.take().unwrap_or_else(borrowed), s).await);
    }
    out
}

/// `count` anonymous GETs spread round-robin over the nodes (as client `from` when
/// set, through the trusted loopback proxy); their statuses.
async fn round_robin(nodes: &[TestApp], count: usize, from: Option<&str>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..count {
        let node = &nodes[i % nodes.len()];
        let mut req = node.client.get(node.url("/v1/notes"));
        if let Some(ip) = from {
            req = req.header("x-forwarded-for", ip);
        }
        statuses.push(req.send().await.unwrap().status().as_u16());
    }
    statuses
}

fn allowed(statuses: &[u16]) -> usize {
    statuses.iter().filter(|s| **s == 200).count()
}

fn assert_only_200_and_429(statuses: &[u16]) {
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}

/// The node's `/metrics` text.
pub(crate) async fn metrics(node: &TestApp) -> String {
    node.client
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn readyz(node: &TestApp) -> (u16, Value) {
    let res = node.client.get(node.url("/readyz")).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_enforce_one_limit_not_one_each() {
    let prefix = unique_prefix("shared");
    let nodes = nodes(3, "redis://127.0.0.1:6379", &prefix, "10/min", "").await;
    let statuses = round_robin(&nodes, 30, None).await;
    assert_only_200_and_429(&statuses);
    assert_eq!(allowed(&statuses), 10, "{statuses:?}");
    // The first ten pass, wherever they landed; every later one is refused.
    assert!(statuses[..10].iter().all(|s| *s == 200), "{statuses:?}");
    // Refusals say when to come back, from Redis' clock.
    let node = &nodes[1];
    let res = node.client.get(node.url("/v1/notes")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    for node in &nodes {
        let m = metrics(node).await;
        assert!(m.contains("keel_redis_up 1\n"), "{m}");
        assert!(m.contains("keel_redis_fallbacks_total 0\n"), "{m}");
        let (status, body) = readyz(node).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["redis"], "up", "{body}");
    }
}

/// A redis-server of the test's own on a free port; killed on drop.
pub(crate) struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    /// Where an explicit `SAVE` writes, and a restart loads from.
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub(crate) fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = PrivateRedis {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test");
        self.child = Some(child);
        for _ in 0..100 {
            let pong = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "PING"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"));
            if matches!(pong, Ok(true)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_under_load_never_5xx_and_limits_are_shared_again() {
    let mut redis = PrivateRedis::start();
    // Loopback is a trusted proxy, so each phase is a client of its own.
    let nodes = std::sync::Arc::new(nodes(2, &redis.url(), "keel:", "4/min", "127.0.0.1/32").await);

    // Load on both nodes through the whole test, from ever new clients.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (nodes, stop) = (nodes.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                statuses.extend(round_robin(&nodes, 2, Some(&ip)).await);
                i += 1;
            }
            statuses
        })
    };

    // Up: one limit for both nodes.
    let up = round_robin(&nodes, 12, Some("203.0.113.1")).await;
    assert_eq!(allowed(&up), 4, "{up:?}");

    // Down: every node counts on its own (4 each), nothing fails.
    redis.stop();
    let down = round_robin(&nodes, 12, Some("203.0.113.2")).await;
    assert_only_200_and_429(&down);
    assert_eq!(allowed(&down), 8, "{down:?}");
    for node in nodes.iter() {
        let m = metrics(node).await;
        assert!(m.contains("keel_redis_up 0\n"), "{m}");
        assert!(!m.contains("keel_redis_fallbacks_total 0\n"), "{m}");
        assert!(m.contains("keel_redis_outages_total 1\n"), "{m}");
        // Degraded, still ready.
        let (status, body) = readyz(node).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["redis"], "down", "{body}");
    }

    // Back on the same port: the nodes reconnect by themselves.
    redis.restart();
    for node in nodes.iter() {
        let mut reconnected = false;
        for _ in 0..100 {
            round_robin(std::slice::from_ref(node), 1, Some("198.51.100.99")).await;
            if metrics(node).await.contains("keel_redis_up 1\n") {
                reconnected = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(reconnected, "{}", metrics(node).await);
    }
    let again = round_robin(&nodes, 12, Some("203.0.113.3")).await;
    assert_eq!(allowed(&again), 4, "{again:?}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = load.await.unwrap();
    assert!(load.len() > 20, "the load ran: {}", load.len());
    assert_only_200_and_429(&load);
}

#[tokio::test]
async fn forwarded_clients_get_their_own_buckets_only_behind_trusted_proxies() {
    let (db, url) = TestDb::new(Backend::Sqlite).await;
    let mut s = settings(&url, "2/min");
    s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let behind_proxy = spawn_with(db, s).await;
    let one = std::slice::from_ref(&behind_proxy);
    assert_eq!(
        round_robin(one, 3, Some("198.51.100.1")).await,
        [200, 200, 429]
    );
    // Another forwarded client: a bucket of its own.
    assert_eq!(round_robin(one, 2, Some("198.51.100.2")).await, [200, 200]);
    // A client-sent hop left of the proxy's is not believed: the rightmost untrusted
    // hop is the client, who is out of requests.
    assert_eq!(
        round_robin(one, 1, Some("192.0.2.7, 198.51.100.1")).await,
        [429]
    );
    // `Forwarded: for=` works too.
    let res = behind_proxy
        .client
        .get(behind_proxy.url("/v1/notes"))
        .header("forwarded", "for=\"[2001:db8::5]:4711\";proto=https")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // No trusted proxies: the headers are ignored, everyone is the peer.
    let (db, url) = TestDb::new(Backend::Sqlite).await;
    let direct = spawn_with(db, settings(&url, "2/min")).await;
    let one = std::slice::from_ref(&direct);
    assert_eq!(round_robin(one, 1, Some("198.51.100.1")).await, [200]);
    assert_eq!(round_robin(one, 2, Some("198.51.100.2")).await, [200, 429]);
    // No Redis configured: no Redis in /readyz or /metrics.
    let (_, body) = readyz(&direct).await;
    assert!(body.get("redis").is_none(), "{body}");
    assert!(!metrics(&direct).await.contains("keel_redis"));
}

#[tokio::test]
async fn bad_redis_urls_and_networks_are_clear_errors() {
    // Built in process: a URL that is not Redis' is refused by name, password hidden.
    let (db, url) = TestDb::new(Backend::Sqlite).await;
    let mut s = settings(&url, "2/min");
    s.redis_url = Some("http://:hunter2@cache:6379".into());
    let e = keel::App::build(s).await.err().expect("refused");
    let e = e.to_string();
    assert!(e.contains("unsupported Redis URL scheme `http`"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    drop(db);

    // From the command line: clap names the flag and the value.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), SPEC.replace("LIMIT", "2/min")).unwrap();
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.arg("serve")
            .args(args)
            .current_dir(dir.path())
            .env_remove("KEEL_REDIS_URL")
            .env_remove("KEEL_TRUSTED_PROXIES");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let err = serve(&["--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"], &[]);
    assert!(
        err.contains("--trusted-proxies")
            && err
                .contains("`10.0.0.0/33` is not an IP network: the prefix length must be 0 to 32"),
        "{err}"
    );
    let err = serve(&[], &[("KEEL_TRUSTED_PROXIES", "10.0.0.1,proxy")]);
    assert!(err.contains("`proxy` is not an IP network"), "{err}");
    let err = serve(&[], &[("KEEL_REDIS_URL", "http://:hunter2@cache:6379")]);
    assert!(
        err.contains("unsupported Redis URL scheme `http`")
            && err.contains("redis://[:PASSWORD@]HOST[:PORT][/DB]"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // In keel.toml: file, line and column.
    std::fs::write(
        dir.path().join("keel.toml"),
        "[app]\nname = \"x\"\n[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
    )
    .unwrap();
    let err = serve(&[], &[]);
    assert!(err.contains("keel.toml:4:20"), "{err}");
    assert!(err.contains("`10.0.0.0/40` is not an IP network"), "{err}");
}

/// `n` nodes on one PostgreSQL database sharing the record cache through Redis.
async fn cache_nodes(n: usize, redis: &str, prefix: &str) -> Vec<TestApp> {
    let (db, url) = TestDb::new(Backend::Postgres).await;
    let mut db = Some(db);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut s = crate::cache::settings(&url, keel::CacheMode::Auto);
        s.redis_url = Some(redis.to_string());
        s.redis_prefix = prefix.to_string();
        out.push(spawn_with(db.take().unwrap_or_else(borrowed), s).await);
    }
    out
}

async fn patch(node: &TestApp, path: &str, body: Value) -> Value {
    let res = node.patch(path, body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_read_at_once_on_every_node() {
    use crate::cache::{cache_counts, get_as};
    let prefix = unique_prefix("cache");
    let nodes = cache_nodes(3, "redis://127.0.0.1:6379", &prefix).await;
    let file = nodes[0]
        .create("files", serde_json::json!({"name": "v1"}))
        .await;
    let path = format!("/v1/files/{}", file["id"].as_str().unwrap());
    for round in 2..=21 {
        // Read on every node (cached in Redis), write on one, read at once on the next.
        for node in &nodes {
            assert_eq!(get_as(node, &path, None).await.0, 200);
        }
        let writer = &nodes[round % 3];
        let name = format!("v{round}");
        patch(writer, &path, serde_json::json!({"name": name})).await;
        let reader = &nodes[(round + 1) % 3];
        let (status, got) = get_as(reader, &path, None).await;
        assert_eq!(status, 200);
        assert_eq!(got["name"], name.as_str(), "round {round}: {got}");
        assert_eq!(got["version"].as_i64(), Some(round as i64));
    }
    let (hits, _) = cache_counts(&nodes[1]).await;
    assert!(hits >= 20, "node 1 served from Redis: {hits}");
    let m = metrics(&nodes[1]).await;
    assert!(m.contains("keel_cache_hits_total{cache=\"redis\"}"), "{m}");
    // A delete on one node is a 404 on every node.
    let res = nodes[2].delete(&path).await;
    assert_eq!(res.status(), 204);
    for node in &nodes {
        assert_eq!(get_as(node, &path, None).await.0, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_three_nodes_leave_the_newest_version_cached() {
    use crate::cache::get_as;
    let prefix = unique_prefix("cache-race");
    let nodes = std::sync::Arc::new(cache_nodes(3, "redis://127.0.0.1:6379", &prefix).await);
    let file = nodes[0]
        .create("files", serde_json::json!({"name": "0"}))
        .await;
    let path = format!("/v1/files/{}", file["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for w in 0..6usize {
        let (nodes, path) = (nodes.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10usize {
                let node = &nodes[(w + i) % 3];
                // Readers fill the cache between the writes, from every node.
                get_as(node, &path, None).await;
                let res = node
                    .patch(&path, serde_json::json!({"name": format!("{w}-{i}")}))
                    .await;
                assert_eq!(res.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 60 updates: version 61 everywhere, from the cache and from the database.
    let listed = nodes[0]
        .list(&format!(
            "/v1/files?filter=id%3D%3D%22{}%22",
            file["id"].as_str().unwrap()
        ))
        .await;
    let stored = &listed["items"][0];
    assert_eq!(stored["version"].as_i64(), Some(61), "{listed}");
    for node in nodes.iter() {
        let (_, got) = get_as(node, &path, None).await;
        assert_eq!(&got, stored);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_missed_while_redis_was_down_empties_the_shared_cache() {
    use crate::cache::get_as;
    let mut redis = PrivateRedis::start();
    let nodes = cache_nodes(2, &redis.url(), "keel:").await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let file = a.create("files", serde_json::json!({"name": "old"})).await;
    let path = format!("/v1/files/{}", file["id"].as_str().unwrap());
    assert_eq!(get_as(b, &path, None).await.1["name"], "old");
    // Redis goes down with the old version saved; A writes meanwhile.
    assert_eq!(redis.cli(&["SAVE"]), "OK");
    redis.stop();
    let res = a.patch(&path, serde_json::json!({"name": "new"})).await;
    assert_eq!(res.status(), 200, "no 5xx while Redis is down");
    for node in &nodes {
        let (status, got) = get_as(node, &path, None).await;
        assert_eq!(
            (status, got["name"].as_str()),
            (200, Some("new")),
            "served from the database"
        );
    }
    // Redis comes back with the old entry; A (serving nothing) bumps the generation
    // by itself, after which B cannot reach the old entry.
    redis.restart();
    let mut bumped = false;
    for _ in 0..100 {
        let generation = redis.cli(&["GET", "keel:cache{keel:}:gen"]);
        if generation.parse::<u64>().is_ok_and(|g| g >= 1) {
            bumped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bumped, "the generation was bumped");
    for _ in 0..3 {
        let (status, got) = get_as(b, &path, None).await;
        assert_eq!((status, got["name"].as_str()), (200, Some("new")));
    }
}

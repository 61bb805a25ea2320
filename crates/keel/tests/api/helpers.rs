//! `spawn_app`: the real server on a random port over a fresh database per test (a
//! temp SQLite file, or a new PostgreSQL database dropped afterwards).

use keel_core::Engine;
use reqwest::{Client, Response};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("KEEL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that disappears with the test.
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir },
    Postgres(String),
}

impl TestDb {
    pub async fn new(backend: Backend) -> (Self, String) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (TestDb::Sqlite { _dir: dir }, url)
            }
            Backend::Postgres => {
                let name = format!("keel_t_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL must be running at {admin} for the tests ({e}); scripts/test.sh starts it")
                    });
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(b, _)| b)
                    .to_string();
                (TestDb::Postgres(name.clone()), format!("{base}/{name}"))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres(name) = self {
            let name = name.clone();
            // Drop from a thread of its own: Drop cannot await, and the test's
            // runtime may be shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async move {
                    let (client, conn) =
                        tokio_postgres::connect(&postgres_admin_url(), tokio_postgres::NoTls)
                            .await
                            .ok()?;
                    tokio::spawn(conn);
                    client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// Keys for `encrypted` fields in tests (32 zero-to-31 bytes, base64url).
pub const TEST_KEYS: &str = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub auth: Arc<keel_auth::AuthService>,
    pub engine: Arc<Engine>,
    _db: TestDb,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub async fn spawn_app(backend: Backend, spec: &str) -> TestApp {
    let (db, url) = TestDb::new(backend).await;
    spawn_on(db, url, spec).await
}

pub async fn spawn_on(db: TestDb, url: String, spec: &str) -> TestApp {
    let model = keel_spec::load_str(spec, "keel.toml", &BTreeMap::new())
        .unwrap_or_else(|e| panic!("test spec is invalid:\n{e}"));
    let mut settings = keel::Settings::new(model, url);
    settings.field_keys = Some(TEST_KEYS.into());
    settings.secret = Some("test-secret-test-secret-test-secret".into());
    spawn_with(db, settings).await
}

/// A server built by `keel::App::build` from these settings (address forced to a
/// free loopback port), exactly as `keel serve` builds it.
pub async fn spawn_with(db: TestDb, mut settings: keel::Settings) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("KEEL_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    settings.addr = "127.0.0.1:0".into();
    let app = keel::App::build(settings)
        .await
        .unwrap_or_else(|e| panic!("build the app: {e}"));
    let addr = app.address();
    let auth = app.auth().clone();
    let engine = app.engine().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        base: format!("http://{addr}"),
        client: Client::new(),
        auth,
        engine,
        _db: db,
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Create a record, asserting 201, and return it.
    pub async fn create(&self, collection: &str, body: Value) -> Value {
        let res = self.post(&format!("/v1/{collection}"), body.clone()).await;
        let status = res.status();
        let json: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "create {collection} {body}: {json}");
        json
    }

    /// A list's records, asserting 200.
    pub async fn list(&self, query: &str) -> Value {
        let res = self.get(query).await;
        let status = res.status();
        let json: Value = res.json().await.expect("json");
        assert_eq!(status, 200, "GET {query}: {json}");
        json
    }
}

/// Read a problem+json response, asserting its status and content type.
pub async fn problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json");
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/docs/errors#")),
        "{body}"
    );
    assert!(body["request_id"].is_string(), "{body}");
    body
}

/// Generate `#[tokio::test]` wrappers running each test once per backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

//! The benchmark's *ceiling*: the fastest straightforward hand-written server that runs
//! the same SQL as Keel's `posts` routes on the same tables, with no engine — no model,
//! no rules, no validation, no outbox. Keel's overhead is measured against it.
//!
//! - SQLite: axum + rusqlite, one connection per runtime worker thread (opened on first
//!   use, WAL, the same pragmas as Keel), statements through `prepare_cached`, run inline.
//! - PostgreSQL: tokio-postgres, a fixed set of connections, each with its statements
//!   prepared once at start-up, picked round-robin (tokio-postgres pipelines on each).
//!
//! `Authorization: Bearer <user id>` is taken at its word: the token *is* the user id.
//!
//! Usage: `keel-bench-ceiling --addr 127.0.0.1:8081 --database sqlite:///path/db | postgres://…`

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::OffsetDateTime;
use time::macros::format_description;

const COLUMNS: &str = "id, created_at, updated_at, version, title, body, author, visibility";
const PAGE: usize = 20;

#[derive(Serialize)]
struct Post {
    id: String,
    created_at: String,
    updated_at: String,
    version: i64,
    title: String,
    body: String,
    author: Option<String>,
    visibility: String,
}

#[derive(Serialize)]
struct Page {
    items: Vec<Post>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct NewPost {
    title: String,
    body: String,
    visibility: Option<String>,
}

#[derive(Deserialize)]
struct PostPatch {
    title: Option<String>,
    body: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    /// `?visibility=public`: the indexed filter; absent: the rule-filtered list.
    visibility: Option<String>,
}

enum Db {
    Sqlite(String),
    Postgres(Pg),
}

type App = Arc<Db>;

// ---------------------------------------------------------------- helpers

fn now() -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::now_utc()
        .format(fmt)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

fn format_ts(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

fn if_match(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(header::IF_MATCH)?
        .to_str()
        .ok()?
        .trim_matches('"')
        .parse()
        .ok()
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => error(e),
    }
}

fn record(status: StatusCode, post: &Post, location: bool) -> Response {
    let mut res = json(status, post);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", post.version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    if location && let Ok(v) = HeaderValue::from_str(&format!("/v1/posts/{}", post.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn page(items: Vec<Post>) -> Response {
    let next_cursor = match items.last() {
        Some(last) if items.len() == PAGE => Some(format!("{}|{}", last.created_at, last.id)),
        _ => None,
    };
    json(StatusCode::OK, &Page { items, next_cursor })
}

fn error(e: impl std::fmt::Display) -> Response {
    eprintln!("error: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

// ---------------------------------------------------------------- SQLite

thread_local! {
    static CONN: RefCell<Option<rusqlite::Connection>> = const { RefCell::new(None) };
}

fn open_sqlite(path: &str) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -16000;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Run `f` on this worker thread's own connection (opened on first use).
fn with_conn<T>(
    path: &str,
    f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    CONN.with(|slot| {
        let mut slot = slot.borrow_mut();
        let mut conn = match slot.take() {
            Some(c) => c,
            None => open_sqlite(path)?,
        };
        let out = f(&mut conn);
        *slot = Some(conn);
        out
    })
}

fn sqlite_post(row: &rusqlite::Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: row.get(0)?,
        created_at: row.get(1)?,
        updated_at: row.get(2)?,
        version: row.get(3)?,
        title: row.get(4)?,
        body: row.get(5)?,
        author: row.get(6)?,
        visibility: row.get(7)?,
    })
}

fn sqlite_query(
    path: &str,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Post>> {
    with_conn(path, |conn| {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, sqlite_post)?;
        rows.collect()
    })
}

/// One write statement in its own `BEGIN IMMEDIATE` transaction (a deferred one could
/// fail with SQLITE_BUSY_SNAPSHOT, which the busy timeout does not retry).
fn sqlite_write(
    path: &str,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Post>> {
    with_conn(path, |conn| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let posts = {
            let mut stmt = tx.prepare_cached(sql)?;
            let rows = stmt.query_map(params, sqlite_post)?;
            rows.collect::<rusqlite::Result<Vec<Post>>>()?
        };
        tx.commit()?;
        Ok(posts)
    })
}

// ---------------------------------------------------------------- PostgreSQL

struct PgConn {
    client: tokio_postgres::Client,
    get: tokio_postgres::Statement,
    list_by_visibility: tokio_postgres::Statement,
    list_public: tokio_postgres::Statement,
    list_rule: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
}

struct Pg {
    conns: Vec<PgConn>,
    next: AtomicUsize,
}

impl Pg {
    fn conn(&self) -> &PgConn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        &self.conns[i]
    }
}

/// The rule-filtered list as Keel runs it: one indexed page per operand of
/// `visibility == "public" || author == auth.id`, then the page of their union. The
/// one-query form (`WHERE visibility = 'public' OR author = ?`) makes SQLite 3.50
/// merge both indexes and sort every public row: a few pages a second on 100k rows.
fn rule_arms(user: &str) -> String {
    let page = "ORDER BY created_at DESC, id DESC LIMIT 20";
    format!(
        "SELECT id FROM (SELECT id FROM posts WHERE visibility = 'public' {page}) AS a1 \
         UNION ALL SELECT id FROM (SELECT id FROM posts WHERE author = {user} {page}) AS a2"
    )
}

async fn connect_pg(url: &str, n: usize) -> Result<Pg, tokio_postgres::Error> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("postgres connection: {e}");
            }
        });
        let order = "ORDER BY created_at DESC, id DESC LIMIT 20";
        let get = client
            .prepare(&format!("SELECT {COLUMNS} FROM posts WHERE id = $1"))
            .await?;
        let list_by_visibility = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM posts WHERE visibility = $1 {order}"
            ))
            .await?;
        let list_public = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM posts WHERE visibility = 'public' {order}"
            ))
            .await?;
        let list_rule = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM posts WHERE id IN ({RULE_ARMS}) {order}",
                RULE_ARMS = rule_arms("$1")
            ))
            .await?;
        let insert = client
            .prepare(&format!(
                "INSERT INTO posts ({COLUMNS}) VALUES ($1, $2, $2, 1, $3, $4, $5, $6) \
                 RETURNING {COLUMNS}"
            ))
            .await?;
        let update = client
            .prepare(&format!(
                "UPDATE posts SET title = coalesce($1, title), body = coalesce($2, body), \
                 updated_at = $3, version = version + 1 \
                 WHERE id = $4 AND version = $5 AND author = $6 RETURNING {COLUMNS}"
            ))
            .await?;
        conns.push(PgConn {
            client,
            get,
            list_by_visibility,
            list_public,
            list_rule,
            insert,
            update,
        });
    }
    Ok(Pg {
        conns,
        next: AtomicUsize::new(0),
    })
}

fn pg_post(row: &tokio_postgres::Row) -> Result<Post, tokio_postgres::Error> {
    Ok(Post {
        id: row.try_get::<_, uuid::Uuid>(0)?.to_string(),
        created_at: format_ts(row.try_get(1)?),
        updated_at: format_ts(row.try_get(2)?),
        version: row.try_get(3)?,
        title: row.try_get(4)?,
        body: row.try_get(5)?,
        author: row
            .try_get::<_, Option<uuid::Uuid>>(6)?
            .map(|u| u.to_string()),
        visibility: row.try_get(7)?,
    })
}

fn pg_posts(rows: &[tokio_postgres::Row]) -> Result<Vec<Post>, tokio_postgres::Error> {
    rows.iter().map(pg_post).collect()
}

// ---------------------------------------------------------------- handlers

async fn get_post(State(db): State<App>, Path(id): Path<String>) -> Response {
    let found = match &*db {
        Db::Sqlite(path) => sqlite_query(
            path,
            &format!("SELECT {COLUMNS} FROM posts WHERE id = ?1"),
            &[&id],
        )
        .map_err(error),
        Db::Postgres(pg) => {
            let Ok(uid) = uuid::Uuid::parse_str(&id) else {
                return status(StatusCode::NOT_FOUND);
            };
            let c = pg.conn();
            match c.client.query(&c.get, &[&uid]).await {
                Ok(rows) => pg_posts(&rows).map_err(error),
                Err(e) => Err(error(e)),
            }
        }
    };
    match found {
        Ok(mut posts) => match posts.pop() {
            Some(p) => record(StatusCode::OK, &p, false),
            None => status(StatusCode::NOT_FOUND),
        },
        Err(res) => res,
    }
}

async fn list_posts(
    State(db): State<App>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let user = bearer(&headers);
    let order = "ORDER BY created_at DESC, id DESC LIMIT 20";
    let result = match &*db {
        Db::Sqlite(path) => match (&q.visibility, &user) {
            (Some(v), _) => sqlite_query(
                path,
                &format!("SELECT {COLUMNS} FROM posts WHERE visibility = ?1 {order}"),
                &[v],
            ),
            (None, Some(u)) => sqlite_query(
                path,
                &format!(
                    "SELECT {COLUMNS} FROM posts WHERE id IN ({RULE_ARMS}) {order}",
                    RULE_ARMS = rule_arms("?1")
                ),
                &[u],
            ),
            (None, None) => sqlite_query(
                path,
                &format!("SELECT {COLUMNS} FROM posts WHERE visibility = 'public' {order}"),
                &[],
            ),
        }
        .map_err(error),
        Db::Postgres(pg) => {
            let c = pg.conn();
            let rows = match (&q.visibility, &user) {
                (Some(v), _) => c.client.query(&c.list_by_visibility, &[v]).await,
                (None, Some(u)) => {
                    let Ok(uid) = uuid::Uuid::parse_str(u) else {
                        return status(StatusCode::UNAUTHORIZED);
                    };
                    c.client.query(&c.list_rule, &[&uid]).await
                }
                (None, None) => c.client.query(&c.list_public, &[]).await,
            };
            match rows {
                Ok(rows) => pg_posts(&rows).map_err(error),
                Err(e) => Err(error(e)),
            }
        }
    };
    match result {
        Ok(items) => page(items),
        Err(res) => res,
    }
}

async fn create_post(State(db): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(user) = bearer(&headers) else {
        return status(StatusCode::UNAUTHORIZED);
    };
    let Ok(new) = serde_json::from_slice::<NewPost>(&body) else {
        return status(StatusCode::UNPROCESSABLE_ENTITY);
    };
    let id = uuid::Uuid::now_v7();
    let visibility = new.visibility.unwrap_or_else(|| "public".to_string());
    let result = match &*db {
        Db::Sqlite(path) => sqlite_write(
            path,
            &format!(
                "INSERT INTO posts ({COLUMNS}) VALUES (?1, ?2, ?2, 1, ?3, ?4, ?5, ?6) \
                 RETURNING {COLUMNS}"
            ),
            &[
                &id.to_string(),
                &now(),
                &new.title,
                &new.body,
                &user,
                &visibility,
            ],
        )
        .map_err(error),
        Db::Postgres(pg) => {
            let Ok(author) = uuid::Uuid::parse_str(&user) else {
                return status(StatusCode::UNAUTHORIZED);
            };
            let c = pg.conn();
            let now = OffsetDateTime::now_utc();
            match c
                .client
                .query(
                    &c.insert,
                    &[&id, &now, &new.title, &new.body, &author, &visibility],
                )
                .await
            {
                Ok(rows) => pg_posts(&rows).map_err(error),
                Err(e) => Err(error(e)),
            }
        }
    };
    match result {
        Ok(mut posts) => match posts.pop() {
            Some(p) => record(StatusCode::CREATED, &p, true),
            None => error("insert returned no row"),
        },
        Err(res) => res,
    }
}

async fn update_post(
    State(db): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(user) = bearer(&headers) else {
        return status(StatusCode::UNAUTHORIZED);
    };
    let Some(version) = if_match(&headers) else {
        return status(StatusCode::PRECONDITION_REQUIRED);
    };
    let Ok(patch) = serde_json::from_slice::<PostPatch>(&body) else {
        return status(StatusCode::UNPROCESSABLE_ENTITY);
    };
    let result = match &*db {
        Db::Sqlite(path) => sqlite_write(
            path,
            &format!(
                "UPDATE posts SET title = coalesce(?1, title), body = coalesce(?2, body), \
                 updated_at = ?3, version = version + 1 \
                 WHERE id = ?4 AND version = ?5 AND author = ?6 RETURNING {COLUMNS}"
            ),
            &[&patch.title, &patch.body, &now(), &id, &version, &user],
        )
        .map_err(error),
        Db::Postgres(pg) => {
            let (Ok(uid), Ok(author)) = (uuid::Uuid::parse_str(&id), uuid::Uuid::parse_str(&user))
            else {
                return status(StatusCode::NOT_FOUND);
            };
            let c = pg.conn();
            let now = OffsetDateTime::now_utc();
            match c
                .client
                .query(
                    &c.update,
                    &[&patch.title, &patch.body, &now, &uid, &version, &author],
                )
                .await
            {
                Ok(rows) => pg_posts(&rows).map_err(error),
                Err(e) => Err(error(e)),
            }
        }
    };
    match result {
        Ok(mut posts) => match posts.pop() {
            Some(p) => record(StatusCode::OK, &p, false),
            None => stale(db, id).await,
        },
        Err(res) => res,
    }
}

/// The 412 of a stale If-Match (or a record not this user's): like Keel's, it carries
/// the current version in `ETag` and the record in `instance`, so a client can recover.
async fn stale(db: App, id: String) -> Response {
    let current = get_post(State(db), Path(id.clone())).await;
    let mut res = json(
        StatusCode::PRECONDITION_FAILED,
        &serde_json::json!({ "status": 412, "instance": format!("/v1/posts/{id}") }),
    );
    if let Some(etag) = current.headers().get(header::ETAG) {
        res.headers_mut().insert(header::ETAG, etag.clone());
    }
    res
}

async fn ready() -> &'static str {
    "ok"
}

// ---------------------------------------------------------------- main

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = arg(&args, "--addr").unwrap_or_else(|| "127.0.0.1:8081".into());
    let database = arg(&args, "--database").ok_or("--database sqlite:///PATH | postgres://…")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let db = if let Some(path) = database.strip_prefix("sqlite://") {
            // Fail early on a bad path; workers open their own connections.
            open_sqlite(path)?;
            Db::Sqlite(path.to_string())
        } else {
            let n = std::thread::available_parallelism().map_or(4, |n| n.get() * 4);
            Db::Postgres(connect_pg(&database, n).await?)
        };
        let app = Router::new()
            .route("/readyz", get(ready))
            .route("/v1/posts", get(list_posts).post(create_post))
            .route("/v1/posts/{id}", get(get_post).patch(update_post))
            .with_state(Arc::new(db));
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("ceiling listening on http://{addr}");
        axum::serve(listener, app).await?;
        Ok(())
    })
}

//! Planner statistics on a real SQLite file: taken while the outbox was empty, they
//! make the feed scan the whole events table; `refresh_statistics` brings back the
//! rowid range every connection uses. PostgreSQL sessions run without JIT.
#![allow(clippy::unwrap_used)]

use keel_expr::Dialect;
use keel_spec::Storage;
use keel_store::events::{self, Position};
use keel_store::{Stmt, Store};
use sea_query::Value;

/// How the reader pool would run the feed after `seq` 10.
async fn feed_plan(store: &Store) -> String {
    let feed = events::feed_after(Dialect::Sqlite, Position { tx: 0, seq: 10 }, 100);
    let explain = Stmt::new(format!("EXPLAIN QUERY PLAN {}", feed.sql), feed.values);
    store
        .query(
            &explain,
            &[Storage::Int, Storage::Int, Storage::Int, Storage::Text],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r[3].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn event(i: usize) -> Stmt {
    Stmt::new(
        "INSERT INTO _keel_events (event_id, type, collection, record_id, data, occurred_at) \
         VALUES (?, 'posts.created', 'posts', ?, '{}', '2026-12-02T00:00:00Z')",
        vec![
            Value::String(Some(format!("e{i}"))),
            Value::String(Some(format!("r{i}"))),
        ],
    )
}

#[tokio::test]
async fn stale_statistics_are_refreshed_and_lookups_use_the_key_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.batch(events::ddl(Dialect::Sqlite)).await.unwrap();
    // Analyzed with one event (the seeding script's sign-up), as the benchmark did.
    tx.execute(&event(0)).await.unwrap();
    tx.batch("ANALYZE").await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for i in 1..3000 {
        tx.execute(&event(i)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let stale = feed_plan(&store).await;
    assert!(stale.contains("SCAN _keel_events"), "{stale}");

    store.refresh_statistics().await.unwrap();
    let fresh = feed_plan(&store).await;
    assert!(
        fresh.contains("SEARCH _keel_events USING INTEGER PRIMARY KEY"),
        "{fresh}"
    );
}

/// Keel's PostgreSQL sessions never JIT-compile: a lease whose estimate passed
/// `jit_above_cost` spent 12–200 ms compiling to run for half a millisecond.
#[tokio::test]
async fn postgres_sessions_run_without_jit() {
    let url = std::env::var("KEEL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let store = Store::open(&url).await.unwrap();
    let rows = store
        .query(&Stmt::new("SHOW jit", vec![]), &[Storage::Text])
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_str(), Some("off"));
}

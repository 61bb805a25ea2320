//! The feed over a real SQLite file, read by key: events come back in seq order after
//! a position, a stretch of missing seqs longer than a page is passed over, and
//! nothing comes back once the newest event is read.
#![allow(clippy::unwrap_used)]

use keel_expr::Dialect;
use keel_store::events::{self, Position};
use keel_store::{Stmt, Store};
use sea_query::Value;

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

fn seqs(rows: &[keel_store::Row]) -> Vec<i64> {
    rows.iter().map(|r| r[1].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn the_feed_reads_past_gaps_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.batch(events::ddl(Dialect::Sqlite)).await.unwrap();
    for i in 1..=3 {
        tx.execute(&event(i)).await.unwrap();
    }
    tx.commit().await.unwrap();
    // 700 seqs whose events are gone (deleted here): a gap longer than a page.
    let mut tx = store.begin().await.unwrap();
    for i in 4..=705 {
        tx.execute(&event(i)).await.unwrap();
    }
    tx.execute(&Stmt::new(
        "DELETE FROM _keel_events WHERE seq BETWEEN 4 AND 703",
        vec![],
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let at = |seq| Position { tx: 0, seq };
    assert_eq!(seqs(&store.read_feed(at(0), 2).await.unwrap()), [1, 2]);
    assert_eq!(seqs(&store.read_feed(at(2), 500).await.unwrap()), [3]);
    let past_gap = store.read_feed(at(3), 500).await.unwrap();
    assert_eq!(seqs(&past_gap), [704, 705]);
    assert_eq!(past_gap[0][2].as_str(), Some("e704"));
    assert!(store.read_feed(at(705), 500).await.unwrap().is_empty());
    assert!(store.read_feed(at(9_999), 500).await.unwrap().is_empty());
}

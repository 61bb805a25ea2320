//! The SQLite relay's position, on a real SQLite file: set at the newest event when the
//! outbox tables are first made (events written before then already have their
//! deliveries), moved only by the relay, and retention never prunes an event past it
//! (its deliveries are not made yet). A delivery made twice is kept once.
#![allow(clippy::unwrap_used)]

use keel_expr::Dialect;
use keel_spec::Storage;
use keel_store::events;
use keel_store::{Stmt, Store};
use sea_query::Value;

fn event(i: usize, occurred_at: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO _keel_events (event_id, type, collection, record_id, data, occurred_at) \
         VALUES (?, 'posts.created', 'posts', ?, '{}', ?)",
        vec![
            Value::String(Some(format!("e{i}"))),
            Value::String(Some(format!("00000000-0000-7000-8000-{i:012}"))),
            Value::String(Some(occurred_at.into())),
        ],
    )
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    store
        .query(&Stmt::new(sql, vec![]), &[Storage::Int])
        .await
        .unwrap()[0][0]
        .as_i64()
        .unwrap()
}

async fn position(store: &Store) -> i64 {
    store
        .query(&events::relay_position(), &[Storage::Int])
        .await
        .unwrap()[0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_position_starts_at_the_newest_event_and_guards_retention() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    // An outbox from before the relay made deliveries: events, no position table.
    let mut tx = store.begin().await.unwrap();
    tx.batch(events::ddl(Dialect::Sqlite)).await.unwrap();
    tx.batch("DROP TABLE _keel_relay_position").await.unwrap();
    for i in 1..=3 {
        tx.execute(&event(i, "2020-01-01T00:00:00Z")).await.unwrap();
    }
    tx.commit().await.unwrap();
    // Made again (every start): the position is the newest event, and stays put.
    for _ in 0..2 {
        let mut tx = store.begin().await.unwrap();
        tx.batch(events::ddl(Dialect::Sqlite)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(position(&store).await, 3);
    }
    // Two old events the relay has not reached: retention keeps them.
    let mut tx = store.begin().await.unwrap();
    tx.execute(&event(4, "2020-01-01T00:00:00Z")).await.unwrap();
    tx.execute(&event(5, "2020-01-01T00:00:00Z")).await.unwrap();
    tx.commit().await.unwrap();
    let prune = |store: &Store| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            for stmt in events::prune(Dialect::Sqlite, time::OffsetDateTime::now_utc()) {
                tx.execute(&stmt).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    };
    prune(&store).await;
    assert_eq!(count(&store, "SELECT MIN(seq) FROM _keel_events").await, 4);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM _keel_events").await, 2);
    // The relay makes event 4's delivery (twice: kept once) and moves past both.
    let mut tx = store.begin().await.unwrap();
    let id = uuid::Uuid::parse_str("00000000-0000-7000-8000-000000000004").unwrap();
    let now = time::OffsetDateTime::now_utc();
    for _ in 0..2 {
        tx.execute(&events::insert_delivery(
            Dialect::Sqlite,
            "hook",
            4,
            id,
            now,
        ))
        .await
        .unwrap();
    }
    tx.execute(&events::set_relay_position(5)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM _keel_deliveries").await,
        1
    );
    // Event 5 had nobody wanting it: pruned now; event 4 waits for its delivery.
    prune(&store).await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM _keel_events").await, 1);
    assert_eq!(count(&store, "SELECT MIN(seq) FROM _keel_events").await, 4);
}

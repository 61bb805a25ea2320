//! SQLite group commit on a real database file: concurrent transactions share one
//! COMMIT, each still gets its own outcome, a failed member loses only its own writes,
//! and a member that goes away cannot leave the group uncommitted.
#![allow(clippy::unwrap_used)]

use keel_spec::Storage;
use keel_store::{Stmt, Store};
use sea_query::Value;
use std::sync::Arc;

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store
}

fn insert(id: i64, v: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO t (id, v) VALUES (?, ?)",
        vec![Value::BigInt(Some(id)), Value::String(Some(v.to_string()))],
    )
}

/// The ids a fresh connection sees: what is committed.
async fn committed(dir: &tempfile::TempDir) -> Vec<i64> {
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let other = Store::open(&url).await.unwrap();
    other
        .query(
            &Stmt::new("SELECT id FROM t ORDER BY id", vec![]),
            &[Storage::Int],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect()
}

async fn until_waiting(store: &Store, n: usize) {
    while store.writers_waiting() != n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_transactions_share_one_commit_and_keep_their_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store(&dir).await);
    let before = store.write_stats().await.unwrap();

    // The first transaction holds the writer while 40 others queue behind it.
    let mut first = store.begin().await.unwrap();
    first.execute(&insert(0, "v0")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 1..=40_i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            // Every tenth collides with the first's unique value and rolls back.
            let v = if i % 10 == 0 {
                "v0".to_string()
            } else {
                format!("v{i}")
            };
            match tx.execute(&insert(i, &v)).await {
                Ok(_) => tx.commit().await.map(|_| i),
                Err(e) => {
                    tx.rollback().await.unwrap();
                    Err(e)
                }
            }
        }));
    }
    until_waiting(&store, 40).await;
    first.commit().await.unwrap();

    let mut ok = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => ok.push(i),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(failed, 4, "ids 10, 20, 30, 40 collide");
    ok.sort_unstable();
    let mut expected = vec![0];
    expected.extend(&ok);
    assert_eq!(committed(&dir).await, expected);
    let after = store.write_stats().await.unwrap();
    assert_eq!(
        after.transactions - before.transactions,
        37,
        "the 37 that released"
    );
    assert_eq!(
        after.commits - before.commits,
        1,
        "one COMMIT for the whole group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_goes_away_does_not_strand_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store(&dir).await);

    let mut first = store.begin().await.unwrap();
    first.execute(&insert(1, "kept")).await.unwrap();
    // A second writer queues, then takes the writer and never finishes.
    let (began, began_rx) = tokio::sync::oneshot::channel();
    let hanger = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.execute(&insert(2, "abandoned")).await.unwrap();
            began.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    until_waiting(&store, 1).await;
    // The first finishes while the second waits, so it leaves its commit to the
    // group; the second then goes away (a client that disconnected): its writes roll
    // back and the first's commit still happens.
    let (committed_first, ()) = tokio::join!(first.commit(), async {
        began_rx.await.unwrap();
        hanger.abort();
    });
    committed_first.unwrap();
    assert_eq!(committed(&dir).await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_rollback_leaves_no_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let mut tx = store.begin().await.unwrap();
    tx.execute(&insert(1, "gone")).await.unwrap();
    tx.rollback().await.unwrap();
    // Another connection can write at once: the writer holds no lock.
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let other = Store::open(&url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    tx.execute(&insert(2, "other")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(committed(&dir).await, vec![2]);
}

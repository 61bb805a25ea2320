//! Leases on PostgreSQL, on a database of its own: a lease statement leases no more
//! deliveries than its limit, whatever plan the planner picks, while other
//! transactions insert deliveries and settle leased ones (a relay beside the writes).
//! Written as `UPDATE … WHERE event_seq IN (SELECT … LIMIT n FOR UPDATE SKIP
//! LOCKED)`, it leased 2 for a limit of 1 under a plan that ran the subquery again
//! for each row (which no longer sees the rows the statement itself just leased);
//! the relay kept the one it asked for, and the other waited, undelivered, for its
//! lease to run out (30 s).
#![allow(clippy::unwrap_used)]

mod support;

use keel_expr::Dialect;
use keel_spec::Storage;
use keel_store::Store;
use keel_store::events::{self, DELIVERED, Settled};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::PgDb;
use time::OffsetDateTime;

const PG: Dialect = Dialect::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_takes_no_more_than_its_limit_under_concurrent_writes() {
    let (db, url) = PgDb::new("keel_store_leases").await;
    let store = Store::open(&url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.batch(events::ddl(PG)).await.unwrap();
    tx.commit().await.unwrap();

    // The writes: one new pending delivery per transaction, as fast as they go.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let now = OffsetDateTime::now_utc();
                let mut tx = store.begin().await.unwrap();
                tx.execute(&events::insert_delivery(
                    PG,
                    "d",
                    seq,
                    uuid::Uuid::now_v7(),
                    now,
                ))
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
            seq
        }
    });
    // The outcomes: each leased delivery settled in a transaction of its own, beside
    // the next lease (as the relay's outcome writer does).
    let (settle, mut leased) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let settler = tokio::spawn({
        let store = store.clone();
        async move {
            while let Some(seq) = leased.recv().await {
                let now = OffsetDateTime::now_utc();
                let outcome = Settled {
                    state: DELIVERED,
                    attempts: 1,
                    next_attempt_at: now,
                    last_status: Some(200),
                    last_error: None,
                    now,
                };
                let mut tx = store.begin().await.unwrap();
                tx.execute(&events::settle(PG, "d", seq, &outcome))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    });

    let mut total = 0;
    let mut floor = 0;
    for round in 0..1500 {
        let now = OffsetDateTime::now_utc();
        let until = now + time::Duration::seconds(30);
        let columns = [Storage::Text, Storage::Int, Storage::Int, Storage::Uuid];
        // As the relay leases: above the highest seq it leased first, from the head
        // when that finds none.
        let mut tx = store.begin().await.unwrap();
        // The plan PostgreSQL picked when its statistics said the table was nearly
        // empty (taken at start): the leasing subquery on the inner side of a nested
        // loop, run again for each row of the destination.
        tx.batch(
            "SET LOCAL enable_hashagg = off; SET LOCAL enable_sort = off; \
             SET LOCAL enable_material = off; SET LOCAL enable_hashjoin = off; \
             SET LOCAL enable_mergejoin = off",
        )
        .await
        .unwrap();
        let mut rows = tx
            .query(&events::claim(PG, "d", now, until, 1, floor), &columns)
            .await
            .unwrap();
        if rows.is_empty() {
            rows = tx
                .query(&events::claim(PG, "d", now, until, 1, 0), &columns)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        floor = floor.max(rows.iter().filter_map(|r| r[1].as_i64()).max().unwrap_or(0));
        assert!(
            rows.len() <= 1,
            "round {round}: leased {} deliveries for a limit of 1: {rows:?}",
            rows.len()
        );
        for row in rows {
            total += 1;
            settle.send(row[1].as_i64().unwrap()).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    drop(settle);
    settler.await.unwrap();
    assert!(total > 0 && written > 0, "leased {total} of {written}");
    db.drop_it().await;
}

//! On SQLite a delivery is one B-tree row (`WITHOUT ROWID`, keyed by event and
//! destination): a file made before that keeps its deliveries when it is opened, and
//! the table takes the new shape with its indexes.
#![allow(clippy::unwrap_used)]

use keel_spec::Storage;
use keel_store::{Stmt, Store};

const ROWID_SHAPE: &str = "
CREATE TABLE _keel_deliveries (
  destination TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  record_id TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  lease_until TEXT,
  last_status INTEGER,
  last_error TEXT,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (destination, event_seq)
);
CREATE INDEX _keel_deliveries_record ON _keel_deliveries (destination, record_id, event_seq) WHERE state = 'pending';
CREATE INDEX _keel_deliveries_event ON _keel_deliveries (event_seq);
CREATE INDEX _keel_deliveries_queue ON _keel_deliveries (destination, event_seq) WHERE state = 'pending';
INSERT INTO _keel_deliveries VALUES
  ('hook', 1, 'r1', 'delivered', 1, '2026-01-01T00:00:00Z', NULL, 200, NULL, '2026-01-01T00:00:00Z'),
  ('hook', 2, 'r1', 'pending', 3, '2026-01-01T00:00:00Z', '2026-01-01T00:00:30Z', 503, 'down', '2026-01-01T00:00:00Z'),
  ('nats', 2, 'r1', 'dead', 9, '2026-01-01T00:00:00Z', NULL, NULL, 'gone', '2026-01-01T00:00:00Z');
";

async fn texts(store: &Store, sql: &'static str) -> Vec<String> {
    store
        .query(&Stmt::new(sql, vec![]), &[Storage::Text])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn an_older_deliveries_table_is_rebuilt_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(ROWID_SHAPE)
        .unwrap();
    let url = format!("sqlite://{}", path.display());
    for _ in 0..2 {
        // Opened twice: the second start finds the new shape and leaves it alone.
        let store = Store::open(&url).await.unwrap();
        let shape = texts(
            &store,
            "SELECT sql FROM sqlite_schema WHERE name = '_keel_deliveries'",
        )
        .await;
        assert!(shape[0].contains("WITHOUT ROWID"), "{shape:?}");
        let rows = texts(
            &store,
            "SELECT destination || ' ' || event_seq || ' ' || state || ' ' || attempts || ' ' \
             || coalesce(last_error, '-') FROM _keel_deliveries ORDER BY event_seq, destination",
        )
        .await;
        assert_eq!(
            rows,
            [
                "hook 1 delivered 1 -",
                "hook 2 pending 3 down",
                "nats 2 dead 9 gone"
            ]
        );
        let mut indexes = texts(
            &store,
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = '_keel_deliveries' \
             AND sql IS NOT NULL",
        )
        .await;
        indexes.sort();
        assert_eq!(
            indexes,
            [
                "_keel_deliveries_dead",
                "_keel_deliveries_queue",
                "_keel_deliveries_record"
            ]
        );
        assert!(
            texts(
                &store,
                "SELECT name FROM sqlite_schema WHERE name = '_keel_deliveries_rowid'"
            )
            .await
            .is_empty()
        );
        // A delivery made again is still kept once (the key is the same pair).
        let mut tx = store.begin().await.unwrap();
        tx.execute(&keel_store::events::insert_delivery(
            keel_store::Dialect::Sqlite,
            "hook",
            2,
            uuid::Uuid::nil(),
            time::OffsetDateTime::now_utc(),
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
        drop(store);
    }
}

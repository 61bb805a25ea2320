//! Readiness on both databases: not ready before the model's migration is applied or
//! after another schema's, ready once it is; and (SQLite) it answers while a write
//! transaction holds the write lock, from this store or another on the same file.
#![allow(clippy::unwrap_used)]

mod support;

use keel_store::{Readiness, SchemaFingerprint, Stmt, Store};
use std::collections::BTreeMap;
use std::time::Duration;
use support::PgDb;

const V1: &str = r#"
[app]
name = "r"
[collections.items]
fields.name = { type = "text", required = true }
fields.old = { type = "text" }
access.read = "true"
"#;

const V2: &str = r#"
[app]
name = "r"
[collections.items]
fields.name = { type = "text", required = true }
access.read = "true"
"#;

fn model(src: &str) -> keel_spec::Model {
    keel_spec::load_str(src, "keel.toml", &BTreeMap::new()).unwrap()
}

/// A probe that must answer at once, whatever writers are doing.
async fn probe(store: &Store, expected: &SchemaFingerprint) -> Readiness {
    tokio::time::timeout(Duration::from_secs(2), store.readiness(expected))
        .await
        .expect("readiness waited")
        .unwrap()
}

/// The readiness story every database tells.
async fn follows_migrations(url: &str) {
    let (v1, v2) = (model(V1), model(V2));
    let (fp1, fp2) = (SchemaFingerprint::of(&v1), SchemaFingerprint::of(&v2));
    assert_ne!(fp1, fp2);
    let store = Store::open(url).await.unwrap();
    assert_eq!(probe(&store, &fp1).await, Readiness::NotMigrated);

    assert!(!store.migrate(&v1, false).await.unwrap().is_empty());
    assert_eq!(probe(&store, &fp1).await, Readiness::Ready);
    assert!(store.migrate(&v1, false).await.unwrap().is_empty());
    assert_eq!(probe(&store, &fp1).await, Readiness::Ready);

    // Another node migrates to another schema: this one is no longer ready.
    let other = Store::open(url).await.unwrap();
    other.migrate(&v2, true).await.unwrap();
    assert_eq!(probe(&store, &fp1).await, Readiness::Differs);
    assert_eq!(probe(&store, &fp2).await, Readiness::Ready);

    // A database migrated before fingerprints were recorded: the next migration,
    // with nothing to change, records it.
    let mut tx = store.begin().await.unwrap();
    tx.batch("DELETE FROM _keel_meta WHERE key = 'schema_fingerprint'")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(probe(&store, &fp2).await, Readiness::NotMigrated);
    assert!(store.migrate(&v2, false).await.unwrap().is_empty());
    assert_eq!(probe(&store, &fp2).await, Readiness::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readiness_follows_migrations() {
    let dir = tempfile::tempdir().unwrap();
    follows_migrations(&format!("sqlite://{}", dir.path().join("r.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readiness_answers_while_a_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let v1 = model(V1);
    let fp = SchemaFingerprint::of(&v1);
    let store = Store::open(&url).await.unwrap();
    store.migrate(&v1, false).await.unwrap();

    // This store's own writer is busy inside a transaction...
    let mut tx = store.begin().await.unwrap();
    tx.execute(&Stmt::new(
        "INSERT INTO _keel_meta (key, value) VALUES ('written', 'yes')",
        vec![],
    ))
    .await
    .unwrap();
    assert_eq!(probe(&store, &fp).await, Readiness::Ready);
    assert_eq!(
        probe(&store, &SchemaFingerprint::of(&model(V2))).await,
        Readiness::Differs
    );
    // (Diffing the schema, as readiness did before, queues behind the writer.)
    assert!(
        tokio::time::timeout(Duration::from_millis(200), store.plan(&v1))
            .await
            .is_err()
    );
    tx.commit().await.unwrap();

    // ...and another process holds the file's write lock.
    let other = Store::open(&url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    held.batch("DELETE FROM _keel_meta WHERE key = 'written'")
        .await
        .unwrap();
    assert_eq!(probe(&store, &fp).await, Readiness::Ready);
    held.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_readiness_follows_migrations() {
    let (db, url) = PgDb::new("keel_store_ready").await;
    follows_migrations(&url).await;

    // A writer holding the fingerprint's row does not hold up the probe either.
    let v2 = model(V2);
    let store = Store::open(&url).await.unwrap();
    let mut held = store.begin().await.unwrap();
    held.batch("UPDATE _keel_meta SET value = value WHERE key = 'schema_fingerprint'")
        .await
        .unwrap();
    assert_eq!(
        probe(&store, &SchemaFingerprint::of(&v2)).await,
        Readiness::Ready
    );
    held.rollback().await.unwrap();
    db.drop_it().await;
}

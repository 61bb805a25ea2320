#![allow(dead_code)] // each test binary uses part of it

//! Envelopes for the tests, and names unique to one test run.

use keel_events::Envelope;
use serde_json::{Map, json};

/// A short token unique to this call: a test's stream, subject prefix, exchange.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_owned()
}

/// One event of `collection`, `op` one of created / updated / deleted.
pub fn event(collection: &str, op: &str) -> Envelope {
    let mut data = Map::new();
    data.insert("title".into(), json!(format!("a {op} {collection}")));
    Envelope {
        id: uuid::Uuid::now_v7(),
        kind: format!("{collection}.{op}"),
        collection: collection.to_owned(),
        record_id: uuid::Uuid::now_v7(),
        occurred_at: "2026-12-02T10:00:00.000000Z".into(),
        actor: None,
        data: (op != "deleted").then(|| data.clone()),
        previous: (op != "created").then_some(data),
    }
}

/// Three events over two collections and every operation.
pub fn three() -> [Envelope; 3] {
    [
        event("posts", "created"),
        event("posts", "updated"),
        event("comments", "deleted"),
    ]
}

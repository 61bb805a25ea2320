//! Refs resolved in batches: a per-request, per-caller DataLoader over the core's
//! [`read_by_ids`](keel_core::Engine::read_by_ids) (by primary key, under the
//! caller's read rule, as REST's `expand`), so a page of records with their refs
//! costs one query per collection and level, never one per record.

use crate::{Core, core_error};
use keel_core::MAX_LIMIT;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A referenced record: its collection and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RefKey {
    pub collection: String,
    pub id: String,
}

/// Loads referenced records for one caller, under their read rules: one query by
/// primary key per collection and batch. Built per request, never shared.
pub(crate) struct RefLoader {
    pub core: Arc<Core>,
    pub principal: keel_core::Principal,
}

fn uuid_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

impl async_graphql::dataloader::Loader<RefKey> for RefLoader {
    type Value = Json;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RefKey]) -> Result<HashMap<RefKey, Json>, Self::Error> {
        let mut by_collection: HashMap<&str, Vec<&str>> = HashMap::new();
        for k in keys.iter().filter(|k| uuid_like(&k.id)) {
            by_collection.entry(&k.collection).or_default().push(&k.id);
        }
        let engine = &self.core.engine;
        let mut found = HashMap::new();
        for (collection, ids) in by_collection {
            let ids: Vec<uuid::Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
            for chunk in ids.chunks(MAX_LIMIT as usize) {
                self.core.ref_batches.fetch_add(1, Ordering::Relaxed);
                let records = engine
                    .read_by_ids(&self.principal, collection, chunk)
                    .await
                    .map_err(core_error)?;
                for record in records {
                    if let Some(id) = record.get("id").and_then(Json::as_str) {
                        found.insert(
                            RefKey {
                                collection: collection.to_string(),
                                id: id.to_string(),
                            },
                            Json::Object(record),
                        );
                    }
                }
            }
        }
        Ok(found)
    }
}

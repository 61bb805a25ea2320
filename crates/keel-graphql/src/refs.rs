//! Refs resolved in batches: a per-request, per-caller DataLoader over the core's
//! `list` (`id in [...]`, under the caller's read rule), so a page of records with
//! their refs costs one query per collection and level, never one per record.

use crate::{Core, core_error};
use keel_core::{CoreError, ListText, MAX_LIMIT};
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

/// Loads referenced records for one caller, under their read rules: one `list` with
/// `id in [...]` per collection and batch. Built per request, never shared.
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
            for chunk in ids.chunks(MAX_LIMIT as usize) {
                self.core.ref_batches.fetch_add(1, Ordering::Relaxed);
                let list = chunk
                    .iter()
                    .map(|id| format!("\"{id}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let text = ListText {
                    filter: Some(format!("id in [{list}]")),
                    limit: Some(MAX_LIMIT),
                    ..Default::default()
                };
                let query = engine.list_query(collection, &text).map_err(core_error)?;
                let page = match engine.list(&self.principal, collection, &query).await {
                    Ok(page) => page,
                    // A collection nobody may list: its records stay unresolved (null).
                    Err(CoreError::Denied { .. }) => continue,
                    Err(e) => return Err(core_error(e)),
                };
                for item in page.items {
                    if let Some(id) = item.get("id").and_then(Json::as_str) {
                        found.insert(
                            RefKey {
                                collection: collection.to_string(),
                                id: id.to_string(),
                            },
                            item.clone(),
                        );
                    }
                }
            }
        }
        Ok(found)
    }
}

//! Parsed documents by their text: clients send the same few queries again and again
//! (with other variables), and parsing was the largest single cost of a small query.
//! Bounded: when full it starts over, so unique queries from a hostile client only
//! churn it.

use async_graphql::parser::types::ExecutableDocument;
use std::collections::HashMap;
use std::sync::Mutex;

/// At most this many documents are kept.
const CAPACITY: usize = 512;

#[derive(Default)]
pub(crate) struct DocumentCache {
    entries: Mutex<HashMap<String, ExecutableDocument>>,
}

impl DocumentCache {
    /// The parsed document of `query`, if it was parsed before.
    pub(crate) fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.entries.lock().ok()?.get(query).cloned()
    }

    /// Keep `doc`, the parse of `query`.
    pub(crate) fn insert(&self, query: &str, doc: ExecutableDocument) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(query.to_string(), doc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_starts_over_and_keeps_what_comes_next() {
        let cache = DocumentCache::default();
        let doc = |q: &str| async_graphql::parser::parse_query(q).unwrap();
        for i in 0..CAPACITY {
            let q = format!("{{ a{i} }}");
            cache.insert(&q, doc(&q));
        }
        assert!(cache.get("{ a0 }").is_some());
        cache.insert("{ b }", doc("{ b }"));
        assert!(cache.get("{ a0 }").is_none());
        assert!(cache.get("{ b }").is_some());
    }
}

//! Parsed documents by their text: clients send the same few queries again and again
//! (with other variables), and parsing was the largest single cost of a small query.
//! Each document also keeps its [`Plan`] once one is decided (after its first run
//! without a request error). Bounded: when full it starts over, so unique queries
//! from a hostile client only churn it.

use crate::plan::Plan;
use async_graphql::parser::types::ExecutableDocument;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// At most this many documents are kept.
const CAPACITY: usize = 512;

struct Entry {
    doc: ExecutableDocument,
    /// `None`: not decided yet; `Some(None)`: no plan covers this document.
    plan: Option<Option<Arc<Plan>>>,
}

/// What is known of a query text.
pub(crate) enum Known {
    /// A plan answers it.
    Planned(Arc<Plan>),
    /// Its parse; `decided`: whether a plan was looked for already.
    Parsed {
        doc: ExecutableDocument,
        decided: bool,
    },
}

#[derive(Default)]
pub(crate) struct DocumentCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl DocumentCache {
    /// What is known of `query`, if it was parsed before.
    pub(crate) fn get(&self, query: &str) -> Option<Known> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(query)?;
        Some(match &entry.plan {
            Some(Some(plan)) => Known::Planned(plan.clone()),
            decided => Known::Parsed {
                doc: entry.doc.clone(),
                decided: decided.is_some(),
            },
        })
    }

    /// Keep `doc`, the parse of `query`.
    pub(crate) fn insert(&self, query: &str, doc: ExecutableDocument) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(query.to_string(), Entry { doc, plan: None });
        }
    }

    /// Record the plan of `query` (or that none covers it).
    pub(crate) fn decide(&self, query: &str, plan: Option<Plan>) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(query)
        {
            entry.plan = Some(plan.map(Arc::new));
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
        assert!(matches!(
            cache.get("{ b }"),
            Some(Known::Parsed { decided: false, .. })
        ));
        cache.decide("{ b }", None);
        assert!(matches!(
            cache.get("{ b }"),
            Some(Known::Parsed { decided: true, .. })
        ));
    }
}

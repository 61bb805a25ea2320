//! List queries: typed from the text a surface receives, paged by keyset, split by
//! index where it pays. The operations take only the typed forms defined here.

pub(crate) mod index_arms;
mod keyset;
mod parse;

use serde_json::Value as Json;
use std::sync::Arc;

/// Page size when a list names none, and the most it may ask for.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 200;
/// At most this many sort keys (the cursor carries one value per key).
pub(crate) const MAX_SORT_KEYS: usize = 6;

/// A list as text, the way a surface received it (REST's query string, GraphQL's
/// arguments), before it is checked against the model by [`crate::Engine::list_query`].
#[derive(Debug, Clone, Default)]
pub struct ListText {
    pub filter: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub fields: Option<String>,
    pub expand: Option<String>,
    pub count: bool,
}

/// A list, typed and checked against the model: what [`crate::Engine::list`] runs.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The filter, parsed and type-checked (shared: parsed filters are cached).
    pub filter: Option<Arc<keel_expr::Typed>>,
    /// The order, always ending in `id` so it is total.
    pub sort: Vec<SortKey>,
    pub limit: u32,
    /// The sort-key values of the row the page starts after (a decoded cursor).
    pub after: Option<Vec<Json>>,
    pub projection: Projection,
    /// Count every matching record as well.
    pub count: bool,
}

/// One key of a sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// Which fields a read returns and which refs it embeds.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// `None`: every visible field.
    pub fields: Option<Vec<String>>,
    /// Ref fields whose records are embedded under `expand`.
    pub expand: Vec<String>,
}

/// One page of a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub items: Vec<Json>,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// The cursor's binding to its sort order, e.g. `-created_at,id`.
pub(crate) fn sort_signature(sort: &[SortKey]) -> String {
    sort.iter()
        .map(|k| {
            if k.descending {
                format!("-{}", k.field)
            } else {
                k.field.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

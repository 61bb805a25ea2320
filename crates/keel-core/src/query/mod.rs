//! List queries: typed from the text a surface receives, paged by keyset, split by
//! index where it pays. The operations take only the typed forms defined here.

pub(crate) mod index_arms;
mod keyset;
mod parse;

use crate::error::CoreError;
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

impl Projection {
    /// Every visible field, nothing embedded: the record as stored.
    pub fn is_whole(&self) -> bool {
        self.fields.is_none() && self.expand.is_empty()
    }
}

/// One page of a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub items: Vec<Json>,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// One page of a list as the JSON text of an answer (the same shape as [`Page`]).
#[derive(Debug)]
pub struct PageText {
    /// The records, the text of a JSON array (UTF-8).
    pub items: Vec<u8>,
    pub next_cursor: Option<String>,
    pub total: Option<i64>,
}

impl PageText {
    pub(crate) fn of(page: Page) -> Result<Self, CoreError> {
        Ok(Self {
            items: serde_json::to_vec(&page.items)
                .map_err(|e| CoreError::Store(keel_store::StoreError::Other(e.to_string())))?,
            next_cursor: page.next_cursor,
            total: page.total,
        })
    }

    /// The page as JSON: `{"items":[…],"next_cursor":…}` and `"total"` when counted,
    /// as [`Page`] serializes.
    pub fn into_json(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.items.len() + 96);
        out.extend_from_slice(b"{\"items\":");
        out.extend_from_slice(&self.items);
        out.extend_from_slice(b",\"next_cursor\":");
        match &self.next_cursor {
            // A cursor is base64url text: nothing in it needs escaping, but it is
            // written as any string would be.
            Some(c) => out.extend_from_slice(
                serde_json::to_string(c)
                    .unwrap_or_else(|_| "null".into())
                    .as_bytes(),
            ),
            None => out.extend_from_slice(b"null"),
        }
        if let Some(total) = self.total {
            out.extend_from_slice(format!(",\"total\":{total}").as_bytes());
        }
        out.push(b'}');
        out
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_page_as_text_is_the_page_serialized() {
        let items = vec![
            serde_json::json!({"id": "a\"b", "n": 1, "f": 2.5}),
            serde_json::json!({"b": [1, null]}),
        ];
        for (items, next_cursor, total) in [
            (items.clone(), None, None),
            (items, Some("eyJrIjoxfQ.sig_-".to_string()), Some(42)),
            (vec![], None, Some(0)),
        ] {
            let page = Page {
                items,
                next_cursor,
                total,
            };
            let text = PageText::of(page.clone()).unwrap().into_json();
            assert_eq!(
                String::from_utf8(text).unwrap(),
                serde_json::to_string(&page).unwrap()
            );
        }
    }
}

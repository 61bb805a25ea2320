//! The text every surface receives (filter, sort, fields, expand) made typed and
//! checked against the model, so the operations take only typed queries.

use super::{
    DEFAULT_LIMIT, ListQuery, ListText, MAX_LIMIT, MAX_SORT_KEYS, Projection, SortKey,
    sort_signature,
};
use crate::engine::Engine;
use crate::error::CoreError;
use keel_spec::{Collection, Field, FieldType};
use std::sync::Arc;

impl Engine {
    /// A list as text made typed: every parameter checked against the collection, the
    /// filter parsed and type-checked, the cursor verified against the sort order.
    pub fn list_query(&self, collection: &str, text: &ListText) -> Result<ListQuery, CoreError> {
        let c = self.collection(collection)?;
        let limit = match text.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                return Err(CoreError::BadParam {
                    param: "limit",
                    message: format!("{n} is out of range: use 1 to {MAX_LIMIT}"),
                    position: None,
                });
            }
        };
        let sort: Vec<SortKey> = self
            .sort_keys(c, text.sort.as_deref())?
            .into_iter()
            .map(|(field, descending)| SortKey { field, descending })
            .collect();
        let projection = self.projection_of(c, text.fields.as_deref(), text.expand.as_deref())?;
        let filter = match text.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(self.filter_typed(c, f)?),
            None => None,
        };
        let after = match text.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(cursor) => {
                let values = self
                    .cursor
                    .decode(cursor, &sort_signature(&sort))
                    .map_err(|m| CoreError::BadParam {
                        param: "cursor",
                        message: m.to_string(),
                        position: None,
                    })?;
                if values.len() != sort.len() {
                    return Err(CoreError::BadParam {
                        param: "cursor",
                        message: "malformed cursor".into(),
                        position: None,
                    });
                }
                Some(values)
            }
            None => None,
        };
        Ok(ListQuery {
            filter,
            sort,
            limit,
            after,
            projection,
            count: text.count,
        })
    }

    /// `fields` and `expand` as text made a checked [`Projection`].
    pub fn projection(
        &self,
        collection: &str,
        fields: Option<&str>,
        expand: Option<&str>,
    ) -> Result<Projection, CoreError> {
        let c = self.collection(collection)?;
        self.projection_of(c, fields, expand)
    }

    fn projection_of(
        &self,
        c: &Collection,
        fields: Option<&str>,
        expand: Option<&str>,
    ) -> Result<Projection, CoreError> {
        Ok(Projection {
            fields: self.field_list(c, fields)?,
            expand: self.expand_list(c, expand)?,
        })
    }

    fn sort_keys(
        &self,
        c: &Collection,
        sort: Option<&str>,
    ) -> Result<Vec<(String, bool)>, CoreError> {
        let bad = |message: String| CoreError::BadParam {
            param: "sort",
            message,
            position: None,
        };
        let mut keys: Vec<(String, bool)> = match sort.filter(|s| !s.is_empty()) {
            None => c
                .default_sort
                .iter()
                .map(|k| (k.field.clone(), k.descending))
                .collect(),
            Some(s) => {
                let parts: Vec<&str> = s.split(',').collect();
                if parts.len() > MAX_SORT_KEYS {
                    return Err(bad(format!("at most {MAX_SORT_KEYS} sort keys")));
                }
                let mut keys = Vec::new();
                for part in parts {
                    let (name, desc) = match part.strip_prefix('-') {
                        Some(n) => (n, true),
                        None => (part, false),
                    };
                    let field = self.visible_field(c, name).map_err(bad)?;
                    if field.ty == FieldType::Json || field.encrypted {
                        return Err(bad(format!(
                            "`{name}` is a json or encrypted field and cannot be sorted on"
                        )));
                    }
                    // A repeated key adds nothing to the order: the first one counts.
                    if !keys.iter().any(|(k, _)| k == name) {
                        keys.push((name.to_string(), desc));
                    }
                }
                keys
            }
        };
        // `id` breaks ties, so the order (and every cursor) is total.
        if !keys.iter().any(|(k, _)| k == "id") {
            keys.push(("id".into(), false));
        }
        Ok(keys)
    }

    fn visible_field<'c>(&self, c: &'c Collection, name: &str) -> Result<&'c Field, String> {
        match c.field(name) {
            Some(f) if !f.hidden => Ok(f),
            _ => {
                let names: Vec<&str> = c.visible().map(|f| f.name.as_str()).collect();
                Err(format!(
                    "`{}` has no field `{name}`; fields: {}",
                    c.name,
                    names.join(", ")
                ))
            }
        }
    }

    fn field_list(
        &self,
        c: &Collection,
        fields: Option<&str>,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let Some(fields) = fields.filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for name in fields.split(',') {
            self.visible_field(c, name)
                .map_err(|m| CoreError::BadParam {
                    param: "fields",
                    message: m,
                    position: None,
                })?;
            out.push(name.to_string());
        }
        Ok(Some(out))
    }

    fn expand_list(&self, c: &Collection, expand: Option<&str>) -> Result<Vec<String>, CoreError> {
        let Some(expand) = expand.filter(|f| !f.is_empty()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for name in expand.split(',') {
            let f = self
                .visible_field(c, name)
                .map_err(|m| CoreError::BadParam {
                    param: "expand",
                    message: m,
                    position: None,
                })?;
            if !matches!(f.ty, FieldType::Ref { .. }) {
                return Err(CoreError::BadParam {
                    param: "expand",
                    message: format!("`{name}` is not a ref field"),
                    position: None,
                });
            }
            if !out.contains(&f.name) {
                out.push(f.name.clone());
            }
        }
        Ok(out)
    }

    /// A list filter parsed and type-checked, from the cache when it was seen before
    /// (only filters that pass are kept).
    fn filter_typed(
        &self,
        c: &Collection,
        filter: &str,
    ) -> Result<Arc<keel_expr::Typed>, CoreError> {
        if let Some(typed) = self.filters.get(&c.name, filter) {
            return Ok(typed);
        }
        let typed = Arc::new(self.parse_filter(c, filter)?);
        self.filters.insert(&c.name, filter, typed.clone());
        Ok(typed)
    }

    fn parse_filter(&self, c: &Collection, filter: &str) -> Result<keel_expr::Typed, CoreError> {
        if let Some(at) = filter.find('\0') {
            return Err(CoreError::BadParam {
                param: "filter",
                message: format!("the NUL character is not allowed (at position {at})"),
                position: Some(at),
            });
        }
        let expr = keel_expr::parse(filter).map_err(|e| CoreError::BadParam {
            param: "filter",
            message: format!("{} (at position {})", e.message, e.span.start),
            position: Some(e.span.start),
        })?;
        let typed = keel_expr::check(
            &expr,
            &keel_spec::CollectionScope::new(&self.model, c, keel_spec::ScopeKind::Filter),
        )
        .map_err(|errs| {
            let position = errs.first().map(|e| e.span.start);
            let message = errs
                .iter()
                .map(|e| match &e.hint {
                    Some(h) => format!("{} at position {} ({h})", e.message, e.span.start),
                    None => format!("{} at position {}", e.message, e.span.start),
                })
                .collect::<Vec<_>>()
                .join("; ");
            CoreError::BadParam {
                param: "filter",
                message,
                position,
            }
        })?;
        Ok(typed)
    }
}

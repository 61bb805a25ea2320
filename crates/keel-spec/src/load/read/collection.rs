//! Reading one `[collections.<name>]`: its fields, indexes, unique constraints,
//! default sort and access rules (kept as text for the rules stage).

use super::super::Span;
use super::values::Reader;
use super::{Item, RawCollection, RawRule};
use crate::model::*;
use toml::de::DeValue;

const COLLECTION_KEYS: &[&str] = &[
    "description",
    "fields",
    "indexes",
    "unique",
    "access",
    "default_sort",
];

/// `"-created_at"` → created_at, descending.
fn sort_key(k: &str) -> SortKey {
    match k.strip_prefix('-') {
        Some(f) => SortKey {
            field: f.to_string(),
            descending: true,
        },
        None => SortKey {
            field: k.to_string(),
            descending: false,
        },
    }
}

impl Reader<'_, '_> {
    pub(super) fn read_collection(&mut self, item: &Item<'_>, raw: &mut RawCollection) {
        let Some(t) = self.table(item, "a collection") else {
            return;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "description" => {
                    raw.collection.description = self.string(v, "description").map(|s| s.value)
                }
                "fields" => {
                    let Some(ft) = self.table(v, "fields") else {
                        continue;
                    };
                    for (name, f) in ft.iter() {
                        self.read_field(raw, name, f);
                    }
                }
                "indexes" => {
                    for (keys, span) in self.key_lists(v, "indexes") {
                        let keys = keys.iter().map(|k| sort_key(k)).collect();
                        raw.collection.indexes.push(Index { keys, span });
                    }
                }
                "unique" => {
                    for (fields, span) in self.key_lists(v, "unique") {
                        raw.collection.uniques.push(Unique { fields, span });
                    }
                }
                "default_sort" => {
                    if let Some(s) = self.raw_string(v, "default_sort") {
                        raw.collection.default_sort = s
                            .value
                            .split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(sort_key)
                            .collect();
                        raw.sort_span = Some(s.span);
                    }
                }
                "access" => {
                    let Some(at) = self.table(v, "access") else {
                        continue;
                    };
                    for (op, rule) in at.iter() {
                        let which = match op.get_ref().as_ref() {
                            "read" => Operation::Read,
                            "create" => Operation::Create,
                            "update" => Operation::Update,
                            "delete" => Operation::Delete,
                            _ => {
                                self.unknown_key(
                                    op,
                                    "access",
                                    &["read", "create", "update", "delete"],
                                );
                                continue;
                            }
                        };
                        if let Some(src) = self.raw_string(rule, "an access rule") {
                            raw.rules.push(RawRule {
                                op: which,
                                source: src.value,
                                span: src.span,
                            });
                        }
                    }
                }
                _ => self.unknown_key(k, "a collection", COLLECTION_KEYS),
            }
        }
    }

    /// `[["a", "-b"], ["c"]]` (or one list `["a", "b"]` meaning one key).
    fn key_lists(&mut self, item: &Item<'_>, what: &str) -> Vec<(Vec<String>, Span)> {
        let DeValue::Array(outer) = item.get_ref() else {
            self.error(
                item.span().start,
                format!("{what} must be an array of arrays of field names"),
                Some(format!("{what} = [[\"author\", \"-created_at\"]]")),
            );
            return Vec::new();
        };
        if outer
            .iter()
            .all(|v| matches!(v.get_ref(), DeValue::String(_)))
            && !outer.is_empty()
        {
            let keys = self.string_list(item, what).unwrap_or_default();
            return vec![(keys.into_iter().map(|k| k.value).collect(), item.span())];
        }
        let mut out = Vec::new();
        for inner in outer.iter() {
            if let Some(keys) = self.string_list(inner, what) {
                if keys.is_empty() {
                    self.error(
                        inner.span().start,
                        format!("an entry of {what} needs at least one field"),
                        None,
                    );
                    continue;
                }
                out.push((keys.into_iter().map(|k| k.value).collect(), inner.span()));
            }
        }
        out
    }
}

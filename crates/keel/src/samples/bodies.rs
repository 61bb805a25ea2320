//! The request bodies the samples send: a valid create body (refs point at the
//! sample records made before), a small valid change, and a change of the wrong type.

use keel_spec::example::example;
use keel_spec::{Collection, DefaultValue, FieldType};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// A valid create body for `c`; `n` varies unique values; `ids` holds the sample
/// record of each collection made so far (a ref to one not made yet is left out).
pub fn create(c: &Collection, n: usize, ids: &BTreeMap<String, String>) -> Json {
    let mut out = serde_json::Map::new();
    for f in c.creatable() {
        if matches!(f.default, Some(DefaultValue::AuthId)) {
            continue;
        }
        let v = match &f.ty {
            FieldType::Ref { to, .. } => match ids.get(to) {
                Some(id) => json!(id),
                None => continue,
            },
            ty => match example(&f.name, ty, n) {
                Some(v) => v,
                None => continue,
            },
        };
        out.insert(f.name.clone(), v);
    }
    Json::Object(out)
}

/// A small, valid change: the first updatable text, enum or integer field.
pub fn patch(c: &Collection) -> Json {
    for f in c.updatable() {
        if matches!(
            f.ty,
            FieldType::Text { .. } | FieldType::Enum { .. } | FieldType::Int { .. }
        ) && let Some(v) = example(&f.name, &f.ty, 3)
        {
            return json!({ f.name.clone(): v });
        }
    }
    json!({})
}

/// A change the app must refuse: the first updatable field given a value of another
/// type (or, with none, a system field).
pub fn wrong_type(c: &Collection) -> Json {
    for f in c.updatable() {
        match f.ty {
            FieldType::Json => continue,
            FieldType::Text { .. } | FieldType::Email | FieldType::Url | FieldType::Enum { .. } => {
                return json!({ f.name.clone(): 42 });
            }
            _ => return json!({ f.name.clone(): "not a value of this type" }),
        }
    }
    json!({"version": 7})
}

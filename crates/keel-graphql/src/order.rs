//! Response keys in the order the query asked for them. async-graphql resolves the
//! fields of an object concurrently and keeps them in the order they *finish*: two
//! root lists, or a ref loaded after the plain fields beside it, came back swapped
//! from one run to the next. The GraphQL spec orders a response's keys as the
//! selection set does (and clients that diff or snapshot responses rely on it), so
//! the executor's data is put back in query order before it is written.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Value};

/// Reorder `data`, the response to the operation `operation` of `doc` (the only one
/// when `None`).
pub(crate) fn in_query_order(doc: &ExecutableDocument, operation: Option<&str>, data: &mut Value) {
    let op = match operation {
        Some(name) => doc
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => doc.operations.iter().next(),
    };
    if let Some((_, op)) = op {
        reorder(doc, &[&op.node.selection_set.node], data, 0);
    }
}

/// Whether the executor can answer `doc` out of order: some selection set has a
/// field that is resolved later (a root field, or one with a selection of its own:
/// a ref, children, a page) before another selection. Plain fields are ready at
/// once and finish in order.
pub(crate) fn may_come_out_of_order(doc: &ExecutableDocument) -> bool {
    fn walk(doc: &ExecutableDocument, set: &SelectionSet, root: bool, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let n = set.items.len();
        set.items.iter().enumerate().any(|(i, item)| {
            let (later, inner) = match &item.node {
                Selection::Field(f) => {
                    let sub = &f.node.selection_set.node;
                    (root || !sub.items.is_empty(), Some(sub))
                }
                Selection::FragmentSpread(spread) => (
                    true,
                    doc.fragments
                        .get(&spread.node.fragment_name.node)
                        .map(|f| &f.node.selection_set.node),
                ),
                Selection::InlineFragment(inline) => (true, Some(&inline.node.selection_set.node)),
            };
            (later && i + 1 < n) || inner.is_some_and(|s| walk(doc, s, false, depth + 1))
        })
    }
    doc.operations
        .iter()
        .any(|(_, op)| walk(doc, &op.node.selection_set.node, true, 0))
}

/// Deeper than any document the depth limit lets through; stops a hostile fragment
/// cycle (which validation refuses anyway) from recursing without end.
const MAX_DEPTH: usize = 64;

fn reorder(doc: &ExecutableDocument, sets: &[&SelectionSet], value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::List(items) => {
            for item in items {
                reorder(doc, sets, item, depth + 1);
            }
        }
        Value::Object(map) => {
            // Each response key once, in the order it first appears, with the
            // selection sets of every field that answers to it.
            let mut keys: Vec<(&Name, Vec<&SelectionSet>)> = Vec::new();
            for set in sets {
                collect(doc, set, &mut keys, depth);
            }
            let in_order = keys
                .iter()
                .enumerate()
                .all(|(i, (k, _))| map.get_index(i).is_some_and(|(m, _)| m == *k));
            if !in_order {
                let mut old = std::mem::take(map);
                for (key, _) in &keys {
                    if let Some(v) = old.shift_remove(*key) {
                        map.insert((*key).clone(), v);
                    }
                }
                // Anything the selection did not name (none expected) stays, last.
                map.extend(old);
            }
            for (key, sub) in keys {
                if let Some(v) = map.get_mut(key)
                    && !sub.is_empty()
                {
                    reorder(doc, &sub, v, depth + 1);
                }
            }
        }
        _ => {}
    }
}

fn collect<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    keys: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let key = &f.node.response_key().node;
                let sub = &f.node.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, sets)) => sets.push(sub),
                    None => keys.push((key, vec![sub])),
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    collect(doc, &fragment.node.selection_set.node, keys, depth + 1);
                }
            }
            Selection::InlineFragment(inline) => {
                collect(doc, &inline.node.selection_set.node, keys, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reordered(query: &str, data: serde_json::Value) -> String {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let mut value = Value::from_json(data).unwrap();
        in_query_order(&doc, None, &mut value);
        value.into_json().unwrap().to_string()
    }

    #[test]
    fn keys_follow_the_selection_at_every_level() {
        let q = "{ a: posts { items { id author { name id } title } } b: posts { total } }";
        let data = serde_json::json!({
            "b": {"total": 1},
            "a": {"items": [{"title": "t", "id": "1", "author": {"id": "u", "name": "n"}}]},
        });
        assert_eq!(
            reordered(q, data),
            r#"{"a":{"items":[{"id":"1","author":{"name":"n","id":"u"},"title":"t"}]},"b":{"total":1}}"#
        );
    }

    #[test]
    fn only_documents_with_a_later_field_before_another_need_it() {
        let doc = |q: &str| async_graphql::parser::parse_query(q).unwrap();
        assert!(!may_come_out_of_order(&doc(
            "{ p { items { id title author { id } } } }"
        )));
        assert!(may_come_out_of_order(&doc(
            "{ p { items { author { id } title } } }"
        )));
        assert!(may_come_out_of_order(&doc(
            "{ a: p { total } b: p { total } }"
        )));
        assert!(may_come_out_of_order(&doc(
            "{ p { ...F id } } fragment F on P { x }"
        )));
    }

    #[test]
    fn fragments_and_repeated_fields_merge_in_first_appearance_order() {
        let q = "query { p { ...F x: id ... on P { z } } } fragment F on P { y id }";
        let data = serde_json::json!({"p": {"z": 3, "id": 2, "x": 1, "y": 0}});
        assert_eq!(reordered(q, data), r#"{"p":{"y":0,"id":2,"x":1,"z":3}}"#);
    }
}

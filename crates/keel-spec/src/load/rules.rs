//! Stage 4, rules: [`Resolved`] → [`Typed`]. Each access rule is parsed and
//! type-checked against the resolved model, and each webhook `filter` against every
//! collection whose events the webhook receives; errors point into the expression.

use super::diag::Diagnostics;
use super::resolve::Resolved;
use crate::model::*;
use crate::scope::{CollectionScope, ScopeKind};
use keel_expr::{Expr, ExprKind};
use std::collections::BTreeMap;

/// The model with its access rules and webhook filters typed; defaults are not
/// derived yet.
pub(super) struct Typed {
    pub(super) model: Model,
}

pub(super) fn type_rules(resolved: Resolved, diag: &mut Diagnostics<'_>) -> Typed {
    let Resolved { mut model, rules } = resolved;
    let mut typed: Vec<(String, Operation, Rule)> = Vec::new();
    for (collection, p) in rules {
        let Some(coll) = model.collection(&collection) else {
            continue;
        };
        let kind = ScopeKind::Rule {
            input: matches!(p.op, Operation::Create | Operation::Update),
        };
        let scope = CollectionScope::new(&model, coll, kind);
        let what = format!("access.{} of `{collection}`", p.op.as_str());
        let at = p.span.start;
        match keel_expr::parse(&p.source) {
            Err(e) => diag.error(
                diag.offset_in_string(at, e.span.start),
                format!("{what}: {}", e.message),
                None,
            ),
            Ok(expr) => match keel_expr::check(&expr, &scope) {
                Ok(t) => typed.push((
                    collection,
                    p.op,
                    Rule {
                        source: p.source,
                        typed: t,
                        span: p.span,
                    },
                )),
                Err(errs) => {
                    for e in errs {
                        diag.error(
                            diag.offset_in_string(at, e.span.start),
                            format!("{what}: {}", e.message),
                            e.hint,
                        );
                    }
                }
            },
        }
    }
    for (coll, op, rule) in typed {
        if let Some(c) = model.collections.iter_mut().find(|c| c.name == coll) {
            match op {
                Operation::Read => c.access.read = Some(rule),
                Operation::Create => c.access.create = Some(rule),
                Operation::Update => c.access.update = Some(rule),
                Operation::Delete => c.access.delete = Some(rule),
            }
        }
    }
    let filters: Vec<(usize, BTreeMap<String, keel_expr::Typed>)> = model
        .webhooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| Some((i, type_filter(&model, hook, diag)?)))
        .collect();
    for (i, typed) in filters {
        if let Some(filter) = model.webhooks[i].filter.as_mut() {
            filter.typed = typed;
        }
    }
    Typed { model }
}

/// A webhook's `filter`, typed for each collection whose events the webhook receives,
/// over that collection's own fields ([`ScopeKind::EventFilter`]). `None` when there
/// is no filter or it does not type-check (the errors are in `diag`).
fn type_filter(
    model: &Model,
    hook: &Webhook,
    diag: &mut Diagnostics<'_>,
) -> Option<BTreeMap<String, keel_expr::Typed>> {
    let filter = hook.filter.as_ref()?;
    let what = format!("filter of webhook `{}`", hook.name);
    let at = filter.span.start;
    let expr = match keel_expr::parse(&filter.source) {
        Ok(expr) => expr,
        Err(e) => {
            diag.error(
                diag.offset_in_string(at, e.span.start),
                format!("{what}: {}", e.message),
                None,
            );
            return None;
        }
    };
    let mut ok = true;
    for span in has_role_calls(&expr) {
        diag.error(
            diag.offset_in_string(at, span.start),
            format!("{what}: `has_role` is not available in a webhook filter: an event is about a record, not a caller"),
            Some("filter on the record's own fields".into()),
        );
        ok = false;
    }
    let collections = hook.collections(model);
    // Each error once, with the collections it holds for when that is not all of them.
    let mut found: Vec<(usize, String, Option<String>, Vec<&str>)> = Vec::new();
    let mut typed = BTreeMap::new();
    for coll in &collections {
        let scope = CollectionScope::new(model, coll, ScopeKind::EventFilter);
        match keel_expr::check(&expr, &scope) {
            Ok(t) => {
                typed.insert(coll.name.clone(), t);
            }
            Err(errs) => {
                ok = false;
                for e in errs {
                    let offset = diag.offset_in_string(at, e.span.start);
                    match found
                        .iter_mut()
                        .find(|(o, m, ..)| *o == offset && *m == e.message)
                    {
                        Some((.., over)) => over.push(&coll.name),
                        None => found.push((offset, e.message, e.hint, vec![&coll.name])),
                    }
                }
            }
        }
    }
    for (offset, message, hint, over) in found {
        let over = if over.len() == collections.len() {
            String::new()
        } else {
            let names: Vec<String> = over.iter().map(|c| format!("`{c}`")).collect();
            format!(" (for {} events)", names.join(", "))
        };
        diag.error(offset, format!("{what}{over}: {message}"), hint);
    }
    ok.then_some(typed)
}

/// `has_role` calls: a filter is about the record, and `has_role` asks about a caller
/// (as `auth.*` does, which the scope refuses).
fn has_role_calls(expr: &Expr) -> Vec<keel_expr::Span> {
    let mut found = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Call { name, args } => {
                if name == "has_role" {
                    found.push(e.span);
                }
                stack.extend(args);
            }
            ExprKind::List(items) | ExprKind::And(items) | ExprKind::Or(items) => {
                stack.extend(items)
            }
            ExprKind::Not(inner) => stack.push(inner),
            ExprKind::Compare { lhs, rhs, .. } => {
                stack.push(lhs);
                stack.push(rhs);
            }
            ExprKind::Literal(_) | ExprKind::Path(_) => {}
        }
    }
    found.sort_by_key(|span| span.start);
    found
}

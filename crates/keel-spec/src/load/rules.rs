//! Stage 4, rules: [`Resolved`] → [`Typed`]. Each access rule is parsed and
//! type-checked against the resolved model; errors point into the expression.

use super::diag::Diagnostics;
use super::resolve::Resolved;
use crate::model::*;
use crate::scope::{CollectionScope, ScopeKind};

/// The model with its access rules typed; defaults are not derived yet.
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
        match keel_expr::parse(&p.source) {
            Err(e) => diag.error(
                p.body_offset + e.span.start,
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
                            p.body_offset + e.span.start,
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
    Typed { model }
}

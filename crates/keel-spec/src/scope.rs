//! What a path in an expression means for a collection: the bridge between the
//! model and the expression language's type checker.

use crate::model::{Collection, FieldType, Model};
use keel_expr::{Scope, Type};

/// How far a path may follow refs (`post.author.name` is two hops).
pub const MAX_REF_HOPS: usize = 3;

/// Which roots an expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// An access rule; `input` is allowed on create and update.
    Rule { input: bool },
    /// A client's list filter: no `auth`, no `input`, no hidden fields.
    Filter,
}

/// Resolves paths against one collection of the model.
pub struct CollectionScope<'m> {
    pub model: &'m Model,
    pub collection: &'m Collection,
    pub kind: ScopeKind,
}

impl<'m> CollectionScope<'m> {
    pub fn new(model: &'m Model, collection: &'m Collection, kind: ScopeKind) -> Self {
        Self {
            model,
            collection,
            kind,
        }
    }

    fn field_path(&self, start: &Collection, path: &[String]) -> Result<Type, String> {
        let mut coll = start;
        for (i, seg) in path.iter().enumerate() {
            let Some(field) = coll.field(seg) else {
                let names: Vec<&str> = coll.fields.iter().map(|f| f.name.as_str()).collect();
                let hint = crate::error::closest(seg, names.iter().copied())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(format!("`{}` has no field `{seg}`{hint}", coll.name));
            };
            if field.encrypted {
                return Err(format!(
                    "field `{seg}` is encrypted: it cannot be filtered on or used in a rule"
                ));
            }
            if field.hidden && self.kind == ScopeKind::Filter {
                return Err(format!("field `{seg}` is hidden and cannot be filtered on"));
            }
            if i + 1 == path.len() {
                return Ok(field.ty.expr_type());
            }
            match &field.ty {
                FieldType::Ref { to, .. } if i < MAX_REF_HOPS => {
                    coll = self
                        .model
                        .collection(to)
                        .ok_or_else(|| format!("unknown collection `{to}`"))?;
                }
                FieldType::Ref { .. } => {
                    return Err(format!("a path may follow at most {MAX_REF_HOPS} refs"));
                }
                other => {
                    return Err(format!(
                        "`{seg}` is a {} field, not a ref, so `.{}` cannot follow it",
                        other.name(),
                        path[i + 1]
                    ));
                }
            }
        }
        Err("empty path".into())
    }
}

impl Scope for CollectionScope<'_> {
    fn resolve(&self, path: &[String]) -> Result<Type, String> {
        let Some(root) = path.first() else {
            return Err("empty path".into());
        };
        match (root.as_str(), self.kind) {
            ("auth", ScopeKind::Rule { .. }) => match path.get(1).map(String::as_str) {
                Some("id") if path.len() == 2 => Ok(Type::Uuid),
                Some("email") if path.len() == 2 => Ok(Type::Text),
                Some("roles") if path.len() == 2 => Ok(Type::List(Box::new(Type::Text))),
                _ => Err("`auth` has `auth.id`, `auth.email` and `auth.roles`".into()),
            },
            ("auth", ScopeKind::Filter) => Err("`auth` is only available in access rules".into()),
            ("input", ScopeKind::Rule { input: true }) => {
                let rest = &path[1..];
                if rest.len() != 1 {
                    return Err("`input` is followed by one field name, e.g. `input.title`".into());
                }
                self.field_path(self.collection, rest)
            }
            ("input", _) => Err("`input` is only available in create and update rules".into()),
            _ => self.field_path(self.collection, path),
        }
    }
}

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
    /// A webhook's `filter`, evaluated in memory over the event's record (`data`;
    /// `previous` for a delete): only the record's own fields. No `auth` or `input`
    /// (a filter is about the record, not the caller or the request), no path
    /// through a ref (the record holds the id, not the target), no hidden field (it
    /// never appears in an event).
    EventFilter,
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
            if field.hidden && self.kind == ScopeKind::EventFilter {
                return Err(format!(
                    "field `{seg}` is hidden: it never appears in an event, so a webhook filter cannot read it"
                ));
            }
            if i + 1 == path.len() {
                return Ok(field.ty.expr_type());
            }
            match &field.ty {
                FieldType::Ref { to, .. } if self.kind == ScopeKind::EventFilter => {
                    return Err(format!(
                        "`{seg}.{}` follows a ref, which a webhook filter cannot: the relay evaluates filters in memory over the event's record, which holds only its own fields, and `{seg}` there is just the id of a `{to}` record",
                        path[i + 1..].join(".")
                    ));
                }
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
            ("auth", ScopeKind::EventFilter) => Err(
                "`auth` is not available in a webhook filter: a filter sees the event's record, not who made the change; filter on the record's own fields"
                    .into(),
            ),
            ("input", ScopeKind::EventFilter) => Err(
                "`input` is not available in a webhook filter: an event carries the stored record, not a request; name its fields directly (`title`, not `input.title`)"
                    .into(),
            ),
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

//! Stage 3, resolve: [`RawSpec`] → [`Resolved`]. Every name that points elsewhere
//! in the spec must exist: inherited roles (without cycles), ref targets, the fields
//! of indexes, unique constraints and default sorts, and the events webhooks
//! listen to.

use super::diag::Diagnostics;
use super::read::{RawCollection, RawRoles, RawRule, RawSpec, RawWebhook};
use crate::error::closest;
use crate::model::*;
use std::collections::BTreeSet;

/// The spec with every name resolved: a [`Model`] whose access rules are still text.
pub(super) struct Resolved {
    /// Access is empty, and `default_sort` is empty where none was written.
    pub(super) model: Model,
    /// (collection, rule), in collection order.
    pub(super) rules: Vec<(String, RawRule)>,
}

pub(super) fn resolve(raw: RawSpec, diag: &mut Diagnostics<'_>) -> Resolved {
    roles(&raw.roles, diag);
    let app = raw.app.unwrap_or_else(|| {
        diag.error(
            0,
            "missing [app] section",
            Some("add `[app]` with `name = \"…\"`".into()),
        );
        App::default()
    });
    let names: Vec<String> = raw
        .collections
        .iter()
        .map(|c| c.collection.name.clone())
        .collect();
    for c in &raw.collections {
        refs(c, &names, diag);
    }
    let mut collections = Vec::new();
    let mut rules = Vec::new();
    for c in raw.collections {
        uniques(&c.collection, diag);
        indexes(&c.collection, diag);
        default_sort(&c, diag);
        let name = &c.collection.name;
        rules.extend(c.rules.into_iter().map(|r| (name.clone(), r)));
        collections.push(c.collection);
    }
    for hook in &raw.webhooks {
        events(hook, &names, diag);
    }
    let webhooks = raw.webhooks.into_iter().map(|w| w.hook).collect();
    Resolved {
        model: Model {
            app,
            server: raw.server,
            auth: raw.auth,
            roles: raw.roles.roles,
            collections,
            limits: raw.limits,
            webhooks,
            events: raw.events,
            flags: raw.flags,
            scale: raw.scale,
        },
        rules,
    }
}

/// Inherited roles must exist and not form a cycle.
fn roles(raw: &RawRoles, diag: &mut Diagnostics<'_>) {
    let roles = &raw.roles;
    for (name, role) in roles {
        for parent in &role.inherits {
            if !roles.contains_key(parent) {
                let at = diag.find_offset(parent, raw.span.clone());
                diag.error(
                    at,
                    format!("role `{name}` inherits unknown role `{parent}`"),
                    closest(parent, roles.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?")),
                );
            }
        }
    }
    for name in roles.keys() {
        let mut stack = vec![name.as_str()];
        let mut seen = BTreeSet::new();
        while let Some(r) = stack.pop() {
            for p in roles
                .get(r)
                .map(|r| r.inherits.as_slice())
                .unwrap_or_default()
            {
                if p == name {
                    let at = diag.find_offset(name, raw.span.clone());
                    diag.error(
                        at,
                        format!("role `{name}` inherits itself"),
                        Some("remove the cycle from `inherits`".into()),
                    );
                    stack.clear();
                    break;
                }
                if seen.insert(p.as_str()) {
                    stack.push(p);
                }
            }
        }
    }
}

/// Every ref names a collection of the spec.
fn refs(c: &RawCollection, names: &[String], diag: &mut Diagnostics<'_>) {
    for r in &c.refs {
        if !names.contains(&r.to) {
            let hint = closest(&r.to, names.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("collections: {}", names.join(", ")));
            diag.error(
                r.at,
                format!(
                    "field `{}.{}` refers to unknown collection `{}`",
                    c.collection.name, r.field, r.to
                ),
                Some(hint),
            );
        }
    }
}

fn uniques(c: &Collection, diag: &mut Diagnostics<'_>) {
    for u in &c.uniques {
        for f in &u.fields {
            if c.fields.iter().all(|x| &x.name != f) {
                let at = diag.find_offset(f, u.span.clone());
                diag.error(
                    at,
                    format!("unique constraint on unknown field `{}.{f}`", c.name),
                    closest(f, c.fields.iter().map(|x| x.name.as_str()))
                        .map(|s| format!("did you mean `{s}`?")),
                );
            }
        }
        let distinct: BTreeSet<&String> = u.fields.iter().collect();
        if distinct.len() != u.fields.len() {
            diag.error(
                u.span.start,
                "a unique constraint names a field twice",
                None,
            );
        }
    }
}

/// Index keys name fields that can be indexed.
fn indexes(c: &Collection, diag: &mut Diagnostics<'_>) {
    for ix in &c.indexes {
        for k in &ix.keys {
            match c.fields.iter().find(|x| x.name == k.field) {
                None => {
                    let at = diag.find_offset(&k.field, ix.span.clone());
                    diag.error(
                        at,
                        format!("index on unknown field `{}.{}`", c.name, k.field),
                        closest(&k.field, c.fields.iter().map(|x| x.name.as_str()))
                            .map(|s| format!("did you mean `{s}`?")),
                    );
                }
                Some(f) if f.ty == FieldType::Json => {
                    diag.error(
                        ix.span.start,
                        format!("`{}` is a json field and cannot be indexed", k.field),
                        None,
                    );
                }
                Some(f) if f.encrypted => {
                    diag.error(
                        ix.span.start,
                        format!("`{}` is encrypted and cannot be indexed", k.field),
                        Some("ciphertexts do not sort like their values".into()),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

/// A written default sort names fields that can be sorted on.
fn default_sort(raw: &RawCollection, diag: &mut Diagnostics<'_>) {
    let c = &raw.collection;
    let at = raw
        .sort_span
        .as_ref()
        .map(|s| s.start)
        .unwrap_or(c.span.start);
    for k in &c.default_sort {
        if c.fields.iter().any(|x| x.name == k.field && x.encrypted) {
            diag.error(
                at,
                format!("`{}` is encrypted and cannot be sorted on", k.field),
                None,
            );
        }
        if c.fields.iter().all(|x| x.name != k.field) {
            diag.error(
                at,
                format!("default_sort on unknown field `{}.{}`", c.name, k.field),
                None,
            );
        }
    }
}

/// A webhook listens to `<collection>.<created|updated|deleted>`, `<collection>.*`
/// (every event of a collection) or `*` (every event).
fn events(raw: &RawWebhook, names: &[String], diag: &mut Diagnostics<'_>) {
    let hook = &raw.hook;
    for (i, ev) in hook.on.iter().enumerate() {
        if ev == "*" {
            continue;
        }
        let at = raw
            .on_spans
            .get(i)
            .map_or(hook.span.start, |s| diag.offset_in_string(s.start, 0));
        let (collection, kind) = ev.split_once('.').unwrap_or((ev.as_str(), ""));
        let unknown = format!("webhook `{}` listens to unknown event `{ev}`", hook.name);
        if collection == "*" {
            diag.error(
                at,
                unknown,
                Some(format!(
                    "write `*` for every event, or name each collection: `<collection>.{kind}`"
                )),
            );
        } else if !names.iter().any(|n| n == collection) {
            let hint = closest(collection, names.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("collections: {}", names.join(", ")));
            diag.error(
                at,
                format!("{unknown}: there is no collection `{collection}`"),
                Some(hint),
            );
        } else if !matches!(kind, "created" | "updated" | "deleted" | "*") {
            diag.error(
                at,
                unknown,
                Some(format!(
                    "events are `{collection}.created`, `{collection}.updated`, `{collection}.deleted`, `{collection}.*`, or `*` for every event"
                )),
            );
        }
    }
}

//! Stage 2, read: the syntax tree → [`RawSpec`]. Checks the shape of every section,
//! unknown keys, value types and `${VAR}`; names that point elsewhere in the spec
//! (refs, inherited roles, events) and access rules are kept as written for the
//! later stages.

mod collection;
mod events;
mod field;
mod sections;
mod settings;
pub(super) mod values;

use super::diag::Diagnostics;
use super::parse::Syntax;
use super::{Environment, RESERVED_COLLECTIONS, Span};
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;
use toml::de::DeValue;
use values::Reader;

pub use field::TYPES;

type Item<'i> = Spanned<DeValue<'i>>;

/// The spec section by section, each value checked on its own; names across
/// sections are not resolved yet.
pub(super) struct RawSpec {
    /// `None` when there is no `[app]` section.
    pub(super) app: Option<App>,
    pub(super) server: Server,
    pub(super) auth: Auth,
    pub(super) roles: RawRoles,
    /// `users` first, then the others in declaration order.
    pub(super) collections: Vec<RawCollection>,
    pub(super) limits: Vec<Limit>,
    pub(super) webhooks: Vec<RawWebhook>,
    /// `[events]` without its webhooks; NATS `subject_prefix` and `stream` are empty
    /// when not written (their defaults follow from the app's name).
    pub(super) events: EventsConfig,
    pub(super) flags: BTreeMap<String, Flag>,
    pub(super) scale: Scale,
}

/// `[roles]`, whose `inherits` still name roles that may not exist.
#[derive(Default)]
pub(super) struct RawRoles {
    pub(super) roles: BTreeMap<String, Role>,
    /// Where `[roles]` stands, to place errors found when resolving.
    pub(super) span: Span,
}

/// A collection whose fields are read; its refs, default sort and rules wait for
/// the later stages.
pub(super) struct RawCollection {
    /// Access is empty and `default_sort` is as written (maybe empty).
    pub(super) collection: Collection,
    pub(super) refs: Vec<RawRef>,
    /// Where `default_sort` was written.
    pub(super) sort_span: Option<Span>,
    pub(super) rules: Vec<RawRule>,
}

impl RawCollection {
    fn new(collection: Collection) -> Self {
        Self {
            collection,
            refs: Vec::new(),
            sort_span: None,
            rules: Vec::new(),
        }
    }
}

/// `to = "…"` of a ref field: a collection name not yet checked.
pub(super) struct RawRef {
    pub(super) field: String,
    pub(super) to: String,
    pub(super) at: usize,
}

/// An access rule as written, typed once every collection is known.
pub(super) struct RawRule {
    pub(super) op: Operation,
    pub(super) source: String,
    /// The string literal, quotes included.
    pub(super) span: Span,
}

/// `[events.webhooks.<name>]`: its `on` patterns are resolved against the collections
/// later, and its `filter` (source only) is typed in the rules stage.
pub(super) struct RawWebhook {
    pub(super) hook: Webhook,
    /// Where each of `hook.on` is written.
    pub(super) on_spans: Vec<Span>,
}

const ROOT_KEYS: &[&str] = &[
    "app",
    "server",
    "auth",
    "roles",
    "collections",
    "limits",
    "events",
    "flags",
    "scale",
];

/// Read every section of the spec.
pub(super) fn read(
    syntax: &Syntax<'_>,
    env: &dyn Environment,
    diag: &mut Diagnostics<'_>,
) -> RawSpec {
    let mut r = Reader::new(diag, env);
    let mut spec = RawSpec {
        app: None,
        server: Server::default(),
        auth: settings::default_auth(),
        roles: RawRoles::default(),
        collections: Vec::new(),
        limits: Vec::new(),
        webhooks: Vec::new(),
        events: EventsConfig::default(),
        flags: BTreeMap::new(),
        scale: Scale::default(),
    };
    let mut raw_collections = Vec::new();
    for (key, item) in syntax.root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "app" => spec.app = Some(r.read_app(item)),
            "server" => spec.server = r.read_server(item),
            "auth" => spec.auth = r.read_auth(item),
            "roles" => spec.roles = r.read_roles(item),
            "collections" => {
                if let Some(t) = r.table(item, "[collections]") {
                    for (name, c) in t.iter() {
                        raw_collections.push((name, c));
                    }
                }
            }
            "limits" => spec.limits = r.read_limits(item),
            "events" => {
                let events = r.read_events(item);
                spec.events = events.config;
                spec.webhooks = events.webhooks;
            }
            "flags" => spec.flags = r.read_flags(item),
            "scale" => spec.scale = r.read_scale(item),
            _ => r.unknown_key(key, "keel.toml", ROOT_KEYS),
        }
    }
    spec.collections = r.read_collections(raw_collections);
    spec
}

impl Reader<'_, '_> {
    /// Collections: `users` is built in and may be extended.
    fn read_collections(
        &mut self,
        raw: Vec<(&Spanned<std::borrow::Cow<'_, str>>, &Item<'_>)>,
    ) -> Vec<RawCollection> {
        let mut users = RawCollection::new(crate::builtin::users());
        let mut collections = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, item) in raw {
            let n = name.get_ref().as_ref();
            let at = name.span().start;
            if !self.check_name(n, at, "collection") {
                continue;
            }
            if RESERVED_COLLECTIONS.contains(&n) || n.starts_with("_keel") {
                self.error(
                    at,
                    format!("`{n}` is a reserved name"),
                    Some("choose another collection name".into()),
                );
                continue;
            }
            if !seen.insert(n.to_string()) {
                self.error(at, format!("collection `{n}` is declared twice"), None);
                continue;
            }
            if n == "users" {
                self.read_collection(item, &mut users);
            } else {
                let mut c = RawCollection::new(crate::builtin::empty_collection(n, item.span()));
                self.read_collection(item, &mut c);
                collections.push(c);
            }
        }
        collections.insert(0, users);
        collections
    }
}

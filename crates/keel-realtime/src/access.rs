//! Who may see an event: the collection's read rule, for the record as it is after
//! the change (before it, for a delete), decided in memory for every subscriber. What
//! the rule reads through refs (`author.name`, `org.owner`) is loaded once per event —
//! one query per referenced record, whatever the number of subscribers — and the
//! rule then runs in memory for each of them (the evaluator agrees with the SQL the
//! REST reads use, by property test).

use keel_core::{CoreError, Engine, ListText, Principal};
use keel_expr::{Env, Typed, Value};
use keel_spec::{Collection, FieldType};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// A subscription's collection and filter text, checked for `principal`: the
/// collection exists and has a read rule, and the filter parses and types against it
/// (the list filter language, over the record). Shared by every realtime surface.
pub fn subscription_filter(
    engine: &Engine,
    principal: &Principal,
    collection: &str,
    filter: Option<&str>,
) -> Result<Option<Arc<Typed>>, CoreError> {
    let Some(c) = engine.model().collection(collection) else {
        return Err(CoreError::UnknownCollection(collection.to_string()));
    };
    if c.access.read.is_none() && !principal.system {
        return Err(CoreError::Denied {
            anonymous: principal.is_anonymous(),
            message: format!("nobody may read `{collection}`"),
        });
    }
    let Some(filter) = filter.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let text = ListText {
        filter: Some(filter.to_string()),
        ..Default::default()
    };
    Ok(engine.list_query(collection, &text)?.filter)
}

/// A record and the records its rule reads through refs, loaded for one event.
pub struct RecordView {
    pub collection: String,
    /// The record (opened: encrypted fields readable), after or, for a delete, before.
    pub record: Map<String, Json>,
    /// Referenced records by (collection, id); `None`: missing.
    refs: HashMap<(String, String), Option<Map<String, Json>>>,
}

/// Decides reads and filters for the feed.
pub struct Access {
    engine: Arc<Engine>,
}

impl Access {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The view of one record: loads the referenced records its read rule and
    /// `extra` (subscription filters) read, one query each.
    pub async fn view(
        &self,
        collection: &str,
        record: Map<String, Json>,
        extra: &[&Typed],
    ) -> RecordView {
        let mut view = RecordView {
            collection: collection.to_string(),
            record,
            refs: HashMap::new(),
        };
        let model = self.engine.model();
        let Some(c) = model.collection(collection) else {
            return view;
        };
        let mut paths: Vec<Vec<String>> = Vec::new();
        if let Some(rule) = &c.access.read {
            paths.extend(rule.typed.paths());
        }
        for t in extra {
            paths.extend(t.paths());
        }
        for path in paths {
            if path.len() < 2 || matches!(path[0].as_str(), "auth" | "input") {
                continue;
            }
            // Walk the path's refs, loading each record not loaded yet.
            let mut coll = c;
            let mut rec = Some(view.record.clone());
            for seg in &path[..path.len() - 1] {
                let Some(FieldType::Ref { to, .. }) = coll.field(seg).map(|f| &f.ty) else {
                    break;
                };
                let Some(target) = model.collection(to) else {
                    break;
                };
                let id = rec
                    .as_ref()
                    .and_then(|r| r.get(seg))
                    .and_then(Json::as_str)
                    .map(str::to_string);
                let Some(id) = id else {
                    break;
                };
                let key = (to.clone(), id.clone());
                if !view.refs.contains_key(&key) {
                    let loaded = self
                        .engine
                        .get(&Principal::system(), to, &id, &Default::default())
                        .await
                        .ok()
                        .and_then(|j| match j {
                            Json::Object(m) => Some(m),
                            _ => None,
                        });
                    view.refs.insert(key.clone(), loaded);
                }
                rec = view.refs.get(&key).cloned().flatten();
                coll = target;
            }
        }
        view
    }

    /// Whether `principal` may read the record of `view`.
    pub fn may_read(&self, view: &RecordView, principal: &Principal) -> bool {
        if principal.system {
            return true;
        }
        let Some(c) = self.engine.model().collection(&view.collection) else {
            return false;
        };
        match &c.access.read {
            None => false,
            Some(rule) => self.holds(&rule.typed, c, view, principal),
        }
    }

    /// Whether a subscription's filter holds for the record of `view`.
    pub fn matches(&self, view: &RecordView, filter: &Typed, principal: &Principal) -> bool {
        match self.engine.model().collection(&view.collection) {
            Some(c) => self.holds(filter, c, view, principal),
            None => false,
        }
    }

    fn holds(
        &self,
        expr: &Typed,
        c: &Collection,
        view: &RecordView,
        principal: &Principal,
    ) -> bool {
        let env = ViewEnv {
            model: self.engine.model(),
            c,
            view,
            principal,
            now: time::OffsetDateTime::now_utc(),
        };
        keel_expr::eval(expr, &env)
    }
}

struct ViewEnv<'a> {
    model: &'a keel_spec::Model,
    c: &'a Collection,
    view: &'a RecordView,
    principal: &'a Principal,
    now: time::OffsetDateTime,
}

impl Env for ViewEnv<'_> {
    fn lookup(&self, path: &[String]) -> Value {
        match path.first().map(String::as_str) {
            Some("auth") => return self.principal.auth_value(path),
            Some("input") | None => return Value::Null,
            _ => {}
        }
        let mut coll = self.c;
        let mut rec: Option<&Map<String, Json>> = Some(&self.view.record);
        for (i, seg) in path.iter().enumerate() {
            let Some(field) = coll.field(seg) else {
                return Value::Null;
            };
            let v = rec.and_then(|r| r.get(seg)).cloned().unwrap_or(Json::Null);
            if i + 1 == path.len() {
                return keel_core::values::from_json(&field.ty, &v);
            }
            let FieldType::Ref { to, .. } = &field.ty else {
                return Value::Null;
            };
            let Some(target) = self.model.collection(to) else {
                return Value::Null;
            };
            rec = v
                .as_str()
                .and_then(|id| self.view.refs.get(&(to.clone(), id.to_string())))
                .and_then(Option::as_ref);
            coll = target;
        }
        Value::Null
    }

    fn has_role(&self, role: &str) -> bool {
        self.principal.has_role(role)
    }

    fn now(&self) -> time::OffsetDateTime {
        self.now
    }
}

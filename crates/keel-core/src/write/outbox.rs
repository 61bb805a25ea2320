//! The event of a change, appended to the outbox in the change's transaction, with one
//! delivery row for each destination that wants it (decided here, from the model:
//! a webhook's `on` patterns and `filter`; every broker gets every event). The relay
//! reads only those rows, so a change is delivered at least once or not at all, and
//! never before it commits. On SQLite the relay makes the delivery rows itself, from
//! the events, asking [`Destinations`] (as [`Interests`]) the same question.

use crate::engine::Engine;
use crate::error::CoreError;
use crate::principal::Principal;
use crate::values;
use keel_expr::{Env, Value};
use keel_spec::{Collection, Model};
use keel_store::Tx;
use keel_store::events::{self, EventRow, Interests};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One destination's interest in one collection's events of one kind.
struct Interest {
    destination: String,
    /// A webhook's filter, typed for this collection.
    filter: Option<keel_expr::Typed>,
}

/// Which destinations want which events: built once from the model.
#[derive(Default)]
pub(crate) struct Destinations {
    /// Per collection, the interests in its created, updated and deleted events.
    by_collection: HashMap<String, [Vec<Interest>; 3]>,
    /// The collections with interests (filters read their fields).
    collections: HashMap<String, Collection>,
    /// Whether any interest has a filter.
    filtered: bool,
}

/// The name of a webhook destination in the deliveries table and in metrics.
pub fn webhook_destination(name: &str) -> String {
    format!("webhook:{name}")
}

/// The destination names of the brokers.
pub const NATS_DESTINATION: &str = "nats";
pub const RABBITMQ_DESTINATION: &str = "rabbitmq";

impl Destinations {
    pub(crate) fn new(model: &Model) -> Self {
        let mut by_collection: HashMap<String, [Vec<Interest>; 3]> = HashMap::new();
        for c in &model.collections {
            for kind in [
                ChangeKind::Created,
                ChangeKind::Updated,
                ChangeKind::Deleted,
            ] {
                let mut list = Vec::new();
                for hook in &model.webhooks {
                    let hears = hook.wants(&c.name, kind.as_str());
                    if hears {
                        list.push(Interest {
                            destination: webhook_destination(&hook.name),
                            filter: hook
                                .filter
                                .as_ref()
                                .and_then(|f| f.typed.get(&c.name).cloned()),
                        });
                    }
                }
                if model.events.nats.is_some() {
                    list.push(Interest {
                        destination: NATS_DESTINATION.into(),
                        filter: None,
                    });
                }
                if model.events.rabbitmq.is_some() {
                    list.push(Interest {
                        destination: RABBITMQ_DESTINATION.into(),
                        filter: None,
                    });
                }
                if !list.is_empty() {
                    by_collection.entry(c.name.clone()).or_default()[kind as usize] = list;
                }
            }
        }
        let collections = model
            .collections
            .iter()
            .filter(|c| by_collection.contains_key(&c.name))
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        let filtered = by_collection
            .values()
            .flatten()
            .flatten()
            .any(|i| i.filter.is_some());
        Self {
            by_collection,
            collections,
            filtered,
        }
    }

    /// The destinations that want this change: `record` is the record after (before,
    /// for a delete) in its stored form, which filters are evaluated on.
    fn wanting<'a>(
        &'a self,
        c: &'a Collection,
        kind: ChangeKind,
        record: &'a Map<String, Json>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.by_collection
            .get(&c.name)
            .into_iter()
            .flat_map(move |kinds| &kinds[kind as usize])
            .filter(move |i| {
                i.filter
                    .as_ref()
                    .is_none_or(|f| keel_expr::eval(f, &RecordEnv { c, record }))
            })
            .map(|i| i.destination.as_str())
    }
}

impl Interests for Destinations {
    fn reads_records(&self) -> bool {
        self.filtered
    }

    fn wanting(
        &self,
        collection: &str,
        kind: &str,
        record: Option<&Map<String, Json>>,
    ) -> Vec<String> {
        let kind = match kind {
            "created" => ChangeKind::Created,
            "updated" => ChangeKind::Updated,
            "deleted" => ChangeKind::Deleted,
            _ => return Vec::new(),
        };
        let Some(c) = self.collections.get(collection) else {
            return Vec::new();
        };
        let empty = Map::new();
        self.wanting(c, kind, record.unwrap_or(&empty))
            .map(str::to_string)
            .collect()
    }
}

/// A stored record as a filter sees it: its own fields, nothing else.
struct RecordEnv<'a> {
    c: &'a Collection,
    record: &'a Map<String, Json>,
}

impl Env for RecordEnv<'_> {
    fn lookup(&self, path: &[String]) -> Value {
        match (path, path.first().and_then(|f| self.c.field(f))) {
            ([_], Some(field)) => self
                .record
                .get(&field.name)
                .map_or(Value::Null, |v| values::from_json(&field.ty, v)),
            _ => Value::Null,
        }
    }
    fn has_role(&self, _: &str) -> bool {
        false
    }
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

/// One change to append: records in their stored form.
pub(crate) struct Change<'a> {
    pub kind: ChangeKind,
    pub record_id: uuid::Uuid,
    /// The record after the change (`None` for a delete).
    pub data: Option<&'a Map<String, Json>>,
    /// The record before the change (`None` for a create).
    pub previous: Option<&'a Map<String, Json>>,
}

impl Engine {
    /// Append the event of a change and its deliveries. Records are in their stored
    /// form, so an encrypted field reaches the outbox only as ciphertext.
    pub(crate) async fn append_event(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        change: Change<'_>,
        principal: &Principal,
        now: time::OffsetDateTime,
    ) -> Result<(), CoreError> {
        let dialect = tx.dialect();
        let row = EventRow {
            event_id: uuid::Uuid::now_v7(),
            kind: format!("{}.{}", c.name, change.kind.as_str()),
            collection: c.name.clone(),
            record_id: change.record_id,
            actor: principal.id,
            data: change.data.map(|m| Json::Object(m.clone())),
            previous: change.previous.map(|m| Json::Object(m.clone())),
            occurred_at: now,
        };
        let rows = tx
            .query(
                &events::insert_event(dialect, &row),
                &[keel_spec::Storage::Int],
            )
            .await?;
        let seq = rows
            .first()
            .and_then(|r| r.first())
            .and_then(Json::as_i64)
            .unwrap_or_default();
        let record = change.data.or(change.previous);
        if events::relay_makes_deliveries(dialect) {
            // The relay makes them from the event (SQLite: one writer, fewer pages
            // written per change).
            return Ok(());
        }
        if let Some(record) = record {
            for destination in self.destinations.wanting(c, change.kind, record) {
                tx.execute(&events::insert_delivery(
                    dialect,
                    destination,
                    seq,
                    change.record_id,
                    now,
                ))
                .await?;
            }
        }
        Ok(())
    }
}

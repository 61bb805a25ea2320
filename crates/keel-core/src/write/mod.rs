//! The parts every write shares: input, guard, outbox, idempotency, constraints.

mod cascade;
mod constraint;
mod guard;
pub(crate) mod idempotency;
pub(crate) mod input;
pub(crate) mod outbox;

/// A record a committed write changed, for the cache's write-through: its new stored
/// form, or `None` when it was deleted.
pub(crate) struct Touched {
    pub collection: String,
    pub id: uuid::Uuid,
    pub record: Option<serde_json::Map<String, serde_json::Value>>,
}

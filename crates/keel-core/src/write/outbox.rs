//! The event of a change, appended to the outbox in the change's transaction.

use crate::engine::Engine;
use crate::error::CoreError;
use keel_spec::Collection;
use keel_store::Tx;
use keel_store::system::{self, OutboxEvent};
use serde_json::{Map, Value as Json};

impl Engine {
    /// Append the event of a change. `record` is in its stored form, so an encrypted
    /// field reaches the outbox (and every destination) only as ciphertext.
    pub(crate) async fn append_event(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        kind: &str,
        id: uuid::Uuid,
        record: &Map<String, Json>,
        now: time::OffsetDateTime,
    ) -> Result<(), CoreError> {
        let event = OutboxEvent {
            event_id: uuid::Uuid::now_v7(),
            topic: format!("{}.{kind}", c.name),
            collection: c.name.clone(),
            record_id: id,
            payload: Json::Object(record.clone()),
            created_at: now,
        };
        tx.execute(&system::outbox_insert(tx.dialect(), &event))
            .await?;
        Ok(())
    }
}

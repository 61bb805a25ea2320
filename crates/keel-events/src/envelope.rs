//! The event envelope: the same JSON on every destination and in the realtime feed.
//!
//! ```json
//! {"id": "<event id, UUIDv7>", "type": "posts.updated", "collection": "posts",
//!  "record_id": "…", "occurred_at": "2026-…Z", "actor": "<user id> | null",
//!  "data": {"…the record after…"}, "previous": {"…the record before…"}}
//! ```
//! `data` is null on delete; `previous` is absent on create. Hidden fields are never
//! in it; encrypted fields are left out of what leaves the server.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event id (UUIDv7): the same on every retry and every destination, so
    /// consumers deduplicate on it.
    pub id: uuid::Uuid,
    /// `<collection>.<created|updated|deleted>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub collection: String,
    pub record_id: uuid::Uuid,
    /// RFC 3339 UTC, when the change committed (its transaction's time).
    pub occurred_at: String,
    /// The user who made the change; null for anonymous or system changes (cascades).
    pub actor: Option<uuid::Uuid>,
    /// The record after the change; null on delete.
    pub data: Option<Map<String, Json>>,
    /// The record before the change; absent on create.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous: Option<Map<String, Json>>,
}

impl Envelope {
    /// The operation: `created`, `updated` or `deleted`.
    pub fn op(&self) -> &str {
        self.kind.rsplit('.').next().unwrap_or_default()
    }

    /// The envelope as the JSON body every destination receives.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_has_no_previous_and_deleted_has_null_data() {
        let id = uuid::Uuid::now_v7();
        let mut e = Envelope {
            id,
            kind: "posts.created".into(),
            collection: "posts".into(),
            record_id: id,
            occurred_at: "2026-12-02T10:00:00.000000Z".into(),
            actor: None,
            data: Some(Map::new()),
            previous: None,
        };
        let v: Json = serde_json::from_slice(&e.to_json_bytes()).unwrap_or_default();
        assert!(v.get("previous").is_none());
        assert_eq!(v["type"], "posts.created");
        assert_eq!(e.op(), "created");
        e.kind = "posts.deleted".into();
        e.data = None;
        e.previous = Some(Map::new());
        let v: Json = serde_json::from_slice(&e.to_json_bytes()).unwrap_or_default();
        assert_eq!(v["data"], Json::Null);
        assert_eq!(v["previous"], json!({}));
    }
}

//! `/v1/admin/events*`: the routes admins use to see and re-drive deliveries.

use super::*;

/// `/v1/admin/events*`: see and re-drive event deliveries (admins only).
pub(super) fn events_admin_paths(
    model: &Model,
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
) {
    let names = crate::events::configured_destinations(model);
    let destination = if names.is_empty() {
        json!({"type": "string", "maxLength": 200, "description": "keel.toml configures no event destination."})
    } else {
        json!({"type": "string", "enum": names, "description": "A destination keel.toml configures: `webhook:<name>`, `nats` or `rabbitmq`."})
    };
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    schemas.insert("EventDelivery".into(), json!({
        "type": "object",
        "description": "One delivery of one event to one destination.",
        "properties": {
            "destination": {"type": "string"},
            "event_id": {"type": "string", "format": "uuid", "description": "The event's id: the `webhook-id`, `Nats-Msg-Id` or `message_id` consumers deduplicate on."},
            "type": {"type": "string", "description": "`<collection>.<created|updated|deleted>`."},
            "record_id": {"type": "string", "format": "uuid"},
            "state": {"type": "string", "enum": ["pending", "delivered", "dead"]},
            "attempts": {"type": "integer", "minimum": 0},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time", "description": "When the relay tries next; null unless pending."},
            "last_status": {"type": ["integer", "null"], "description": "The destination's last HTTP status, if any."},
            "last_error": {"type": ["string", "null"]},
            "occurred_at": time
        },
        "required": ["destination", "event_id", "type", "record_id", "state", "attempts", "next_attempt_at", "last_status", "last_error", "occurred_at"]
    }));
    schemas.insert("EventDestination".into(), json!({
        "type": "object",
        "description": "Where one destination stands.",
        "properties": {
            "destination": {"type": "string"},
            "configured": {"type": "boolean", "description": "False for a destination keel.toml no longer configures that still has deliveries."},
            "pending": {"type": "integer", "minimum": 0},
            "oldest_pending_at": nullable_time.clone(),
            "dead": {"type": "integer", "minimum": 0},
            "disabled": {"type": "boolean", "description": "True after a 410 Gone, until a retry enables it again."},
            "disabled_at": nullable_time,
            "disabled_reason": {"type": ["string", "null"]}
        },
        "required": ["destination", "configured", "pending", "oldest_pending_at", "dead", "disabled", "disabled_at", "disabled_reason"]
    }));
    let ok = |what: &str, schema: Value| json!({"description": what, "content": {"application/json": {"schema": schema}}});
    let responses = |ok: Value, errors: &[&str]| {
        let mut m = Map::new();
        m.insert("200".into(), ok);
        for e in errors {
            m.insert(
                (*e).to_string(),
                json!({"$ref": format!("#/components/responses/{e}")}),
            );
        }
        Value::Object(m)
    };
    let query = |name: &str, schema: Value, what: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": what});
    paths.insert("/v1/admin/events".into(), json!({"get": {
        "operationId": "listEventDeliveries", "tags": ["admin"], "summary": "Event deliveries, newest first (admins only)",
        "description": "Also where each destination stands: pending and dead deliveries, disabled (after a 410). The same as `keel events list`.",
        "security": [{"bearerAuth": []}],
        "parameters": [
            query("state", json!({"type": "string", "enum": ["pending", "delivered", "dead"]}), "Only deliveries in this state."),
            query("destination", json!({"type": "string", "maxLength": 200}), "Only deliveries to this destination (`webhook:<name>`, `nats`, `rabbitmq`)."),
            query("limit", json!({"type": "integer", "minimum": 1, "maximum": crate::events::MAX_LIMIT, "default": crate::events::DEFAULT_LIMIT}), "At most this many deliveries.")
        ],
        "responses": responses(ok("The deliveries and the destinations.", json!({
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/EventDelivery"}},
                "destinations": {"type": "array", "items": {"$ref": "#/components/schemas/EventDestination"}}
            },
            "required": ["items", "destinations"]
        })), &["400", "401", "403", "408", "429", "500"])
    }}));
    paths.insert("/v1/admin/events/retry".into(), json!({"post": {
        "operationId": "retryEventDeliveries", "tags": ["admin"], "summary": "Retry dead deliveries and enable disabled destinations (admins only)",
        "description": "Dead deliveries of the destination (of every configured destination without one) become pending again, due now, and the destination is enabled again if a 410 disabled it. The same as `keel events retry`.",
        "security": [{"bearerAuth": []}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"destination": destination.clone()}}}}},
        "responses": responses(ok("What changed, per destination.", json!({
            "type": "object",
            "properties": {
                "retried": {"type": "integer", "minimum": 0, "description": "Dead deliveries made pending again."},
                "destinations": {"type": "array", "items": {"type": "object", "properties": {
                    "destination": {"type": "string"},
                    "retried": {"type": "integer", "minimum": 0},
                    "re_enabled": {"type": "boolean", "description": "The destination was disabled and is enabled again."}
                }, "required": ["destination", "retried", "re_enabled"]}}
            },
            "required": ["retried", "destinations"]
        })), &["400", "401", "403", "408", "413", "415", "422", "429", "500"])
    }}));
    paths.insert("/v1/admin/events/replay".into(), json!({"post": {
        "operationId": "replayEvents", "tags": ["admin"], "summary": "Deliver retained events again (admins only)",
        "description": "Every delivery to the destination of an event that occurred since `since` and is settled (delivered or dead) becomes pending again, under its unchanged event id: consumers deduplicate on it. Only retained events can be replayed (`[events] retention`). The same as `keel events replay`.",
        "security": [{"bearerAuth": []}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {
                "destination": destination,
                "since": {"type": "string", "maxLength": 64, "description": "An RFC 3339 time, or a duration back from now: `90s`, `15m`, `1h`, `7d`, `1w`.", "examples": ["1h"]}
            },
            "required": ["destination", "since"]}}}},
        "responses": responses(ok("How many deliveries were made pending again.", json!({
            "type": "object",
            "properties": {
                "destination": {"type": "string"},
                "since": time,
                "replayed": {"type": "integer", "minimum": 0}
            },
            "required": ["destination", "since", "replayed"]
        })), &["400", "401", "403", "408", "413", "415", "422", "429", "500"])
    }}));
}

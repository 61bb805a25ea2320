//! The outbox as SQL: `_keel_events` (one row per committed change, written in the
//! change's transaction) and `_keel_deliveries` (one row per event and destination
//! that wants it, written in the same transaction), plus `_keel_destinations` (which
//! destinations a 410 disabled). Deliveries are claimed by state with a lease, never
//! by "seq greater than the last one seen", so a transaction that commits late (its
//! seq below one already relayed, as PostgreSQL sequences allow) is never skipped.

use crate::Stmt;
use keel_expr::Dialect;
use sea_query::Value;
use serde_json::Value as Json;
use time::OffsetDateTime;

/// The DDL of the outbox tables; `_keel_outbox` (rows nobody relayed) is replaced.
pub fn ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "
DROP TABLE IF EXISTS _keel_outbox;
CREATE TABLE IF NOT EXISTS _keel_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  collection TEXT NOT NULL,
  record_id TEXT NOT NULL,
  actor TEXT,
  data TEXT,
  previous TEXT,
  occurred_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _keel_events_occurred ON _keel_events (occurred_at);
CREATE TABLE IF NOT EXISTS _keel_deliveries (
  destination TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  record_id TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  lease_until TEXT,
  last_status INTEGER,
  last_error TEXT,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (destination, event_seq)
);
CREATE INDEX IF NOT EXISTS _keel_deliveries_due ON _keel_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_record ON _keel_deliveries (destination, record_id, event_seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_event ON _keel_deliveries (event_seq);
CREATE TABLE IF NOT EXISTS _keel_destinations (
  name TEXT PRIMARY KEY,
  disabled_at TEXT,
  reason TEXT
);
"
        }
        Dialect::Postgres => {
            "
DROP TABLE IF EXISTS _keel_outbox;
CREATE TABLE IF NOT EXISTS _keel_events (
  seq BIGSERIAL PRIMARY KEY,
  event_id UUID NOT NULL UNIQUE,
  type TEXT NOT NULL,
  collection TEXT NOT NULL,
  record_id UUID NOT NULL,
  actor UUID,
  data JSONB,
  previous JSONB,
  occurred_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS _keel_events_occurred ON _keel_events (occurred_at);
CREATE TABLE IF NOT EXISTS _keel_deliveries (
  destination TEXT NOT NULL,
  event_seq BIGINT NOT NULL,
  record_id UUID NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ NOT NULL,
  lease_until TIMESTAMPTZ,
  last_status INTEGER,
  last_error TEXT,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (destination, event_seq)
);
CREATE INDEX IF NOT EXISTS _keel_deliveries_due ON _keel_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_record ON _keel_deliveries (destination, record_id, event_seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_event ON _keel_deliveries (event_seq);
CREATE TABLE IF NOT EXISTS _keel_destinations (
  name TEXT PRIMARY KEY,
  disabled_at TIMESTAMPTZ,
  reason TEXT
);
"
        }
    }
}

/// The PostgreSQL channel a commit with deliveries notifies, so every node's relay
/// wakes at once.
pub const NOTIFY_CHANNEL: &str = "keel_events";

/// A delivery's state.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";

/// One committed change, as the outbox keeps it. Records are in their stored form.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub event_id: uuid::Uuid,
    /// `posts.created`, `posts.updated`, `posts.deleted`.
    pub kind: String,
    pub collection: String,
    pub record_id: uuid::Uuid,
    pub actor: Option<uuid::Uuid>,
    pub data: Option<Json>,
    pub previous: Option<Json>,
    pub occurred_at: OffsetDateTime,
}

fn p(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

fn params(dialect: Dialect, from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| p(dialect, n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A timestamp as each dialect stores it.
pub fn at(dialect: Dialect, t: OffsetDateTime) -> Value {
    match dialect {
        Dialect::Sqlite => keel_expr::format_datetime(t).into(),
        Dialect::Postgres => Value::TimeDateTimeWithTimeZone(Some(t)),
    }
}

fn uuid(dialect: Dialect, id: uuid::Uuid) -> Value {
    match dialect {
        Dialect::Sqlite => id.hyphenated().to_string().into(),
        Dialect::Postgres => Value::Uuid(Some(id)),
    }
}

fn opt_uuid(dialect: Dialect, id: Option<uuid::Uuid>) -> Value {
    match (dialect, id) {
        (_, Some(id)) => uuid(dialect, id),
        (Dialect::Sqlite, None) => Value::String(None),
        (Dialect::Postgres, None) => Value::Uuid(None),
    }
}

fn json(dialect: Dialect, v: &Option<Json>) -> Value {
    match (dialect, v) {
        (Dialect::Sqlite, Some(v)) => v.to_string().into(),
        (Dialect::Sqlite, None) => Value::String(None),
        (Dialect::Postgres, Some(v)) => Value::Json(Some(Box::new(v.clone()))),
        (Dialect::Postgres, None) => Value::Json(None),
    }
}

/// `INSERT` an event, returning its `seq`.
pub fn insert_event(dialect: Dialect, e: &EventRow) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO _keel_events (event_id, type, collection, record_id, actor, data, previous, occurred_at) VALUES ({}) RETURNING seq",
            params(dialect, 1, 8)
        ),
        vec![
            uuid(dialect, e.event_id),
            e.kind.clone().into(),
            e.collection.clone().into(),
            uuid(dialect, e.record_id),
            opt_uuid(dialect, e.actor),
            json(dialect, &e.data),
            json(dialect, &e.previous),
            at(dialect, e.occurred_at),
        ],
    )
}

/// One pending delivery of event `seq` to `destination`, due now.
pub fn insert_delivery(
    dialect: Dialect,
    destination: &str,
    seq: i64,
    record_id: uuid::Uuid,
    now: OffsetDateTime,
) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO _keel_deliveries (destination, event_seq, record_id, state, attempts, next_attempt_at, updated_at) VALUES ({}, {}, {}, '{PENDING}', 0, {}, {})",
            p(dialect, 1),
            p(dialect, 2),
            p(dialect, 3),
            p(dialect, 4),
            p(dialect, 5)
        ),
        vec![
            destination.into(),
            seq.into(),
            uuid(dialect, record_id),
            at(dialect, now),
            at(dialect, now),
        ],
    )
}

/// Lease up to `limit` due deliveries to `destination`: pending, due, not leased by
/// another node, and with no earlier pending delivery of the same record to the same
/// destination (so one record's events go out in commit order, one at a time).
/// Returns `destination, event_seq, attempts` of each leased delivery. PostgreSQL
/// skips rows another node is leasing at this moment.
pub fn claim(
    dialect: Dialect,
    destination: &str,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
) -> Stmt {
    let lock = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    Stmt::new(
        format!(
            "UPDATE _keel_deliveries SET lease_until = {lease} \
             WHERE destination = {dest1} AND event_seq IN (\
               SELECT d.event_seq FROM _keel_deliveries d \
               WHERE d.destination = {dest2} AND d.state = '{PENDING}' AND d.next_attempt_at <= {now1} \
                 AND (d.lease_until IS NULL OR d.lease_until < {now2}) \
                 AND NOT EXISTS (SELECT 1 FROM _keel_deliveries e \
                   WHERE e.destination = d.destination AND e.record_id = d.record_id \
                     AND e.state = '{PENDING}' AND e.event_seq < d.event_seq) \
               ORDER BY d.event_seq LIMIT {limit_p}{lock}) \
             RETURNING destination, event_seq, attempts",
            lease = p(dialect, 1),
            dest1 = p(dialect, 2),
            dest2 = p(dialect, 3),
            now1 = p(dialect, 4),
            now2 = p(dialect, 5),
            limit_p = p(dialect, 6),
        ),
        vec![
            at(dialect, lease_until),
            destination.into(),
            destination.into(),
            at(dialect, now),
            at(dialect, now),
            limit.into(),
        ],
    )
}

/// The events with these seqs: `seq, event_id, type, collection, record_id, actor,
/// data, previous, occurred_at` (data and previous as JSON text).
pub fn select_events(dialect: Dialect, seqs: &[i64]) -> Stmt {
    let (data, previous) = match dialect {
        Dialect::Sqlite => ("data", "previous"),
        Dialect::Postgres => ("data::text", "previous::text"),
    };
    let list = params(dialect, 1, seqs.len().max(1));
    let values = if seqs.is_empty() {
        vec![Value::BigInt(Some(-1))]
    } else {
        seqs.iter().map(|s| (*s).into()).collect()
    };
    Stmt::new(
        format!(
            "SELECT seq, event_id, type, collection, record_id, actor, {data}, {previous}, occurred_at FROM _keel_events WHERE seq IN ({list})"
        ),
        values,
    )
}

/// Record a delivery's outcome: `state` (pending to retry, delivered, dead), the
/// attempt count, when to try next, and the last status or error; the lease ends.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    dialect: Dialect,
    destination: &str,
    seq: i64,
    state: &str,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    last_status: Option<u16>,
    last_error: Option<&str>,
    now: OffsetDateTime,
) -> Stmt {
    Stmt::new(
        format!(
            "UPDATE _keel_deliveries SET state = {}, attempts = {}, next_attempt_at = {}, last_status = {}, last_error = {}, updated_at = {}, lease_until = NULL WHERE destination = {} AND event_seq = {}",
            p(dialect, 1),
            p(dialect, 2),
            p(dialect, 3),
            p(dialect, 4),
            p(dialect, 5),
            p(dialect, 6),
            p(dialect, 7),
            p(dialect, 8)
        ),
        vec![
            state.into(),
            attempts.into(),
            at(dialect, next_attempt_at),
            Value::Int(last_status.map(i32::from)),
            Value::String(last_error.map(|e| e.chars().take(1000).collect())),
            at(dialect, now),
            destination.into(),
            seq.into(),
        ],
    )
}

/// Disable a destination on every node (a webhook answered 410).
pub fn disable_destination(
    dialect: Dialect,
    name: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Stmt {
    let upsert = match dialect {
        Dialect::Sqlite | Dialect::Postgres => {
            "ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason"
        }
    };
    Stmt::new(
        format!(
            "INSERT INTO _keel_destinations (name, disabled_at, reason) VALUES ({}, {}, {}) {upsert}",
            p(dialect, 1),
            p(dialect, 2),
            p(dialect, 3)
        ),
        vec![name.into(), at(dialect, now), reason.into()],
    )
}

/// Enable a destination again.
pub fn enable_destination(dialect: Dialect, name: &str) -> Stmt {
    Stmt::new(
        format!(
            "DELETE FROM _keel_destinations WHERE name = {}",
            p(dialect, 1)
        ),
        vec![name.into()],
    )
}

/// The names of disabled destinations.
pub fn disabled_destinations() -> Stmt {
    Stmt::new(
        "SELECT name FROM _keel_destinations WHERE disabled_at IS NOT NULL",
        vec![],
    )
}

/// Per destination: pending deliveries and the oldest pending event's time
/// (`destination, pending, oldest_occurred_at`).
pub fn pending_stats() -> Stmt {
    Stmt::new(
        format!(
            "SELECT d.destination, COUNT(*), MIN(e.occurred_at) FROM _keel_deliveries d \
             JOIN _keel_events e ON e.seq = d.event_seq WHERE d.state = '{PENDING}' \
             GROUP BY d.destination"
        ),
        vec![],
    )
}

/// Forget what retention no longer needs: deliveries that are settled (delivered or
/// dead) for events older than `before`, then events older than `before` with no
/// delivery left. Two statements, in this order.
pub fn prune(dialect: Dialect, before: OffsetDateTime) -> [Stmt; 2] {
    [
        Stmt::new(
            format!(
                "DELETE FROM _keel_deliveries WHERE state <> '{PENDING}' AND event_seq IN \
                 (SELECT seq FROM _keel_events WHERE occurred_at < {})",
                p(dialect, 1)
            ),
            vec![at(dialect, before)],
        ),
        Stmt::new(
            format!(
                "DELETE FROM _keel_events WHERE occurred_at < {} AND NOT EXISTS \
                 (SELECT 1 FROM _keel_deliveries d WHERE d.event_seq = _keel_events.seq)",
                p(dialect, 1)
            ),
            vec![at(dialect, before)],
        ),
    ]
}

/// Deliveries for `keel events list`, newest first: `destination, event_seq,
/// event_id, type, record_id, state, attempts, next_attempt_at, last_status,
/// last_error, occurred_at`; `state` filters when given.
pub fn list(dialect: Dialect, state: Option<&str>, limit: i64) -> Stmt {
    let mut values = Vec::new();
    let filter = match state {
        Some(s) => {
            values.push(s.into());
            format!("WHERE d.state = {}", p(dialect, 1))
        }
        None => String::new(),
    };
    values.push(limit.into());
    let limit_p = p(dialect, values.len());
    let (event_id, record_id) = match dialect {
        Dialect::Sqlite => ("e.event_id", "d.record_id"),
        Dialect::Postgres => ("e.event_id::text", "d.record_id::text"),
    };
    Stmt::new(
        format!(
            "SELECT d.destination, d.event_seq, {event_id}, e.type, {record_id}, d.state, d.attempts, \
             d.next_attempt_at, d.last_status, d.last_error, e.occurred_at \
             FROM _keel_deliveries d JOIN _keel_events e ON e.seq = d.event_seq {filter} \
             ORDER BY d.event_seq DESC LIMIT {limit_p}"
        ),
        values,
    )
}

/// Make dead deliveries pending again, due now (all of them, or one destination's).
pub fn retry_dead(dialect: Dialect, destination: Option<&str>, now: OffsetDateTime) -> Stmt {
    let mut values = vec![at(dialect, now), at(dialect, now)];
    let filter = match destination {
        Some(d) => {
            values.push(d.into());
            format!(" AND destination = {}", p(dialect, 3))
        }
        None => String::new(),
    };
    Stmt::new(
        format!(
            "UPDATE _keel_deliveries SET state = '{PENDING}', attempts = 0, next_attempt_at = {}, \
             updated_at = {}, lease_until = NULL WHERE state = '{DEAD}'{filter}",
            p(dialect, 1),
            p(dialect, 2)
        ),
        values,
    )
}

/// Deliver retained events again to a destination: every event since `since` whose
/// delivery to it is settled becomes pending again (consumers deduplicate on the
/// event id, which does not change).
pub fn replay(dialect: Dialect, destination: &str, since: OffsetDateTime, now: OffsetDateTime) -> Stmt {
    Stmt::new(
        format!(
            "UPDATE _keel_deliveries SET state = '{PENDING}', attempts = 0, next_attempt_at = {}, \
             updated_at = {}, lease_until = NULL WHERE destination = {} AND state <> '{PENDING}' \
             AND event_seq IN (SELECT seq FROM _keel_events WHERE occurred_at >= {})",
            p(dialect, 1),
            p(dialect, 2),
            p(dialect, 3),
            p(dialect, 4)
        ),
        vec![
            at(dialect, now),
            at(dialect, now),
            destination.into(),
            at(dialect, since),
        ],
    )
}

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
CREATE INDEX IF NOT EXISTS _keel_deliveries_dead ON _keel_deliveries (destination, event_seq) WHERE state = 'dead';
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
ALTER TABLE _keel_events ADD COLUMN IF NOT EXISTS txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS _keel_events_position ON _keel_events (txid, seq);
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
CREATE INDEX IF NOT EXISTS _keel_deliveries_dead ON _keel_deliveries (destination, event_seq) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS _keel_destinations (
  name TEXT PRIMARY KEY,
  disabled_at TIMESTAMPTZ,
  reason TEXT
);
"
        }
    }
}

/// A place in the stream of events, in an order that only ever grows at its end:
/// SQLite: the seq (one writer commits in seq order). PostgreSQL: the writing
/// transaction's id, then the seq, read only below the oldest transaction still
/// running, so an event that commits late (its seq below one already read, as
/// sequences allow) is never skipped: its transaction id is above everything read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The writing transaction (PostgreSQL); 0 on SQLite.
    pub tx: i64,
    pub seq: i64,
}

impl Position {
    /// The cursor text of a position: `<tx>.<seq>`.
    pub fn to_cursor(self) -> String {
        format!("{}.{}", self.tx, self.seq)
    }

    pub fn from_cursor(s: &str) -> Option<Self> {
        let (tx, seq) = s.split_once('.')?;
        Some(Self {
            tx: tx.parse().ok().filter(|t| *t >= 0)?,
            seq: seq.parse().ok().filter(|s| *s >= 0)?,
        })
    }
}

/// The events after `after`, in stream order, up to `limit`, as far as is settled:
/// `tx, seq, event_id, type, collection, record_id, actor, data, previous,
/// occurred_at` (data and previous as JSON text).
pub fn feed_after(dialect: Dialect, after: Position, limit: i64) -> Stmt {
    match dialect {
        Dialect::Sqlite => Stmt::new(
            "SELECT 0, seq, event_id, type, collection, record_id, actor, data, previous, occurred_at \
             FROM _keel_events WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![after.seq.into(), limit.into()],
        ),
        Dialect::Postgres => Stmt::new(
            "SELECT txid::text::bigint, seq, event_id::text, type, collection, record_id::text, actor::text, \
             data::text, previous::text, occurred_at FROM _keel_events \
             WHERE (txid, seq) > ($1::text::xid8, $2) AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY txid, seq LIMIT $3",
            vec![after.tx.into(), after.seq.into(), limit.into()],
        ),
    }
}

/// The position of the newest settled event (the head of the stream): `tx, seq`.
pub fn feed_head(dialect: Dialect) -> Stmt {
    match dialect {
        Dialect::Sqlite => Stmt::new(
            "SELECT 0, seq FROM _keel_events ORDER BY seq DESC LIMIT 1",
            vec![],
        ),
        Dialect::Postgres => Stmt::new(
            "SELECT txid::text::bigint, seq FROM _keel_events \
             WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY txid DESC, seq DESC LIMIT 1",
            vec![],
        ),
    }
}

/// The oldest event still kept: a cursor before it has missed pruned events.
pub fn feed_oldest(dialect: Dialect) -> Stmt {
    match dialect {
        Dialect::Sqlite => Stmt::new("SELECT 0, MIN(seq) FROM _keel_events", vec![]),
        Dialect::Postgres => Stmt::new(
            "SELECT txid::text::bigint, seq FROM _keel_events ORDER BY txid, seq LIMIT 1",
            vec![],
        ),
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

/// Forget every lease (SQLite at start-up: its one process is the only relay, so a
/// lease still held is one a killed process left behind).
pub fn release_leases() -> Stmt {
    Stmt::new(
        "UPDATE _keel_deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
        vec![],
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
pub fn replay(
    dialect: Dialect,
    destination: &str,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Stmt {
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

/// Deliveries for `keel events list` and `GET /v1/admin/events`, newest first, with
/// the columns of [`list`]; `state` and `destination` filter when given.
pub fn list_deliveries(
    dialect: Dialect,
    state: Option<&str>,
    destination: Option<&str>,
    limit: i64,
) -> Stmt {
    let mut values: Vec<Value> = Vec::new();
    let mut conditions = Vec::new();
    if let Some(s) = state {
        values.push(s.into());
        conditions.push(format!("d.state = {}", p(dialect, values.len())));
    }
    if let Some(d) = destination {
        values.push(d.into());
        conditions.push(format!("d.destination = {}", p(dialect, values.len())));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
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

/// Per destination and unsettled state (pending, dead): how many deliveries and the
/// oldest one's event time (`destination, state, count, oldest_occurred_at`).
pub fn backlog() -> Stmt {
    Stmt::new(
        format!(
            "SELECT d.destination, d.state, COUNT(*), MIN(e.occurred_at) FROM _keel_deliveries d \
             JOIN _keel_events e ON e.seq = d.event_seq WHERE d.state IN ('{PENDING}', '{DEAD}') \
             GROUP BY d.destination, d.state"
        ),
        vec![],
    )
}

/// The disabled destinations with when and why (`name, disabled_at, reason`).
pub fn disabled_details() -> Stmt {
    Stmt::new(
        "SELECT name, disabled_at, reason FROM _keel_destinations WHERE disabled_at IS NOT NULL ORDER BY name",
        vec![],
    )
}

/// Wake the relay of every node at commit (PostgreSQL `NOTIFY`); SQLite has no
/// other node to wake.
pub fn notify(dialect: Dialect) -> Option<Stmt> {
    match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => Some(Stmt::new(format!("NOTIFY {NOTIFY_CHANNEL}"), vec![])),
    }
}

/// Operating the outbox: what `keel events` and the admin routes show and re-drive.
/// Callers decide which destination names are valid (those keel.toml configures).
pub mod ops {
    use super::{DEAD, DELIVERED, PENDING};
    use crate::{Row, Store, StoreError};
    use keel_spec::Storage;
    use serde_json::{Value as Json, json};
    use std::collections::BTreeMap;
    use time::OffsetDateTime;

    /// The delivery states, as filters accept them.
    pub const STATES: [&str; 3] = [PENDING, DELIVERED, DEAD];

    /// One delivery of one event to one destination.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Delivery {
        pub destination: String,
        pub event_id: String,
        /// `posts.created`, …
        pub kind: String,
        pub record_id: String,
        pub state: String,
        pub attempts: i64,
        /// When the relay tries next (meaningful while pending).
        pub next_attempt_at: Option<String>,
        pub last_status: Option<i64>,
        pub last_error: Option<String>,
        pub occurred_at: String,
    }

    impl Delivery {
        fn from_row(r: &Row) -> Option<Self> {
            let text = |i: usize| r.get(i).and_then(Json::as_str).map(str::to_string);
            Some(Self {
                destination: text(0)?,
                event_id: text(2)?,
                kind: text(3)?,
                record_id: text(4)?,
                state: text(5)?,
                attempts: r.get(6).and_then(Json::as_i64).unwrap_or(0),
                next_attempt_at: text(7),
                last_status: r.get(8).and_then(Json::as_i64),
                last_error: text(9),
                occurred_at: text(10)?,
            })
        }

        /// As the admin route and `keel events list --format json` show it.
        pub fn to_json(&self) -> Json {
            json!({
                "destination": self.destination,
                "event_id": self.event_id,
                "type": self.kind,
                "record_id": self.record_id,
                "state": self.state,
                "attempts": self.attempts,
                "next_attempt_at": if self.state == PENDING { json!(self.next_attempt_at) } else { Json::Null },
                "last_status": self.last_status,
                "last_error": self.last_error,
                "occurred_at": self.occurred_at,
            })
        }
    }

    /// Where one destination stands.
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct DestinationStatus {
        pub name: String,
        /// Does keel.toml configure it? (Deliveries to one it no longer configures
        /// stay until retention prunes them.)
        pub configured: bool,
        pub pending: i64,
        /// When the oldest pending delivery's event occurred.
        pub oldest_pending_at: Option<String>,
        pub dead: i64,
        /// Set while disabled (a 410), until a retry enables it again.
        pub disabled_at: Option<String>,
        pub disabled_reason: Option<String>,
    }

    impl DestinationStatus {
        pub fn to_json(&self) -> Json {
            json!({
                "destination": self.name,
                "configured": self.configured,
                "pending": self.pending,
                "oldest_pending_at": self.oldest_pending_at,
                "dead": self.dead,
                "disabled": self.disabled_at.is_some(),
                "disabled_at": self.disabled_at,
                "disabled_reason": self.disabled_reason,
            })
        }
    }

    /// What a retry changed for one destination.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Retried {
        pub destination: String,
        /// Dead deliveries made pending again.
        pub deliveries: u64,
        /// Was the destination disabled (and is now enabled)?
        pub re_enabled: bool,
    }

    impl Retried {
        pub fn to_json(&self) -> Json {
            json!({
                "destination": self.destination,
                "retried": self.deliveries,
                "re_enabled": self.re_enabled,
            })
        }
    }

    const LIST_COLUMNS: [Storage; 11] = [
        Storage::Text,
        Storage::Int,
        Storage::Text,
        Storage::Text,
        Storage::Text,
        Storage::Text,
        Storage::Int,
        Storage::Datetime,
        Storage::Int,
        Storage::Text,
        Storage::Datetime,
    ];

    /// Deliveries, newest first, filtered by state and destination.
    pub async fn deliveries(
        store: &Store,
        state: Option<&str>,
        destination: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = store
            .query(
                &super::list_deliveries(store.dialect(), state, destination, limit),
                &LIST_COLUMNS,
            )
            .await?;
        Ok(rows.iter().filter_map(Delivery::from_row).collect())
    }

    /// Every destination keel.toml configures, and any other that still has
    /// unsettled deliveries or is disabled, by name.
    pub async fn destinations(
        store: &Store,
        configured: &[String],
    ) -> Result<Vec<DestinationStatus>, StoreError> {
        let mut by_name: BTreeMap<String, DestinationStatus> = configured
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    DestinationStatus {
                        name: n.clone(),
                        configured: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let backlog = store
            .query(
                &super::backlog(),
                &[
                    Storage::Text,
                    Storage::Text,
                    Storage::Int,
                    Storage::Datetime,
                ],
            )
            .await?;
        for r in backlog {
            let Some(name) = r[0].as_str() else { continue };
            let s = status(&mut by_name, name);
            let n = r[2].as_i64().unwrap_or(0);
            match r[1].as_str() {
                Some(PENDING) => {
                    s.pending = n;
                    s.oldest_pending_at = r[3].as_str().map(str::to_string);
                }
                Some(DEAD) => s.dead = n,
                _ => {}
            }
        }
        let disabled = store
            .query(
                &super::disabled_details(),
                &[Storage::Text, Storage::Datetime, Storage::Text],
            )
            .await?;
        for r in disabled {
            let Some(name) = r[0].as_str() else { continue };
            let s = status(&mut by_name, name);
            s.disabled_at = r[1].as_str().map(str::to_string);
            s.disabled_reason = r[2].as_str().map(str::to_string);
        }
        Ok(by_name.into_values().collect())
    }

    fn status<'a>(
        by_name: &'a mut BTreeMap<String, DestinationStatus>,
        name: &str,
    ) -> &'a mut DestinationStatus {
        by_name
            .entry(name.to_string())
            .or_insert_with(|| DestinationStatus {
                name: name.to_string(),
                ..Default::default()
            })
    }

    /// Make the dead deliveries of these destinations pending again, due now, and
    /// enable each destination again (a 410 disabled it); in one transaction, which
    /// wakes every node's relay as it commits.
    pub async fn retry(store: &Store, destinations: &[String]) -> Result<Vec<Retried>, StoreError> {
        let dialect = store.dialect();
        let now = OffsetDateTime::now_utc();
        let mut tx = store.begin().await?;
        let mut out = Vec::new();
        for d in destinations {
            let deliveries = tx
                .execute(&super::retry_dead(dialect, Some(d), now))
                .await?;
            let re_enabled = tx.execute(&super::enable_destination(dialect, d)).await? > 0;
            out.push(Retried {
                destination: d.clone(),
                deliveries,
                re_enabled,
            });
        }
        if let Some(stmt) = super::notify(dialect) {
            tx.execute(&stmt).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Deliver again to `destination` every retained event since `since` whose
    /// delivery there is settled (delivered or dead): they become pending, due now,
    /// under their unchanged event ids. Returns how many.
    pub async fn replay(
        store: &Store,
        destination: &str,
        since: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let dialect = store.dialect();
        let now = OffsetDateTime::now_utc();
        let mut tx = store.begin().await?;
        let n = tx
            .execute(&super::replay(dialect, destination, since, now))
            .await?;
        if let Some(stmt) = super::notify(dialect) {
            tx.execute(&stmt).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// `--since` / `"since"`: an RFC 3339 time (`2026-05-01T12:00:00Z`) or a
    /// duration back from `now` (`90s`, `15m`, `1h`, `7d`, `1w`).
    pub fn parse_since(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
        let s = s.trim();
        if let Some(t) = keel_expr::parse_datetime(s) {
            return Ok(t);
        }
        if let Some(secs) = keel_spec::load::parse_duration(s) {
            let back = i64::try_from(secs)
                .ok()
                .and_then(|secs| now.checked_sub(time::Duration::seconds(secs)));
            return back.ok_or_else(|| format!("`{s}` reaches too far back"));
        }
        Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-05-01T12:00:00Z) nor a duration (90s, 15m, 1h, 7d)"
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn since_takes_a_time_or_a_duration() {
            let now = keel_expr::parse_datetime("2026-05-01T12:00:00Z").unwrap();
            assert_eq!(
                parse_since("1h", now).unwrap(),
                keel_expr::parse_datetime("2026-05-01T11:00:00Z").unwrap()
            );
            assert_eq!(
                parse_since("2026-04-30T10:00:00+02:00", now).unwrap(),
                keel_expr::parse_datetime("2026-04-30T08:00:00Z").unwrap()
            );
            assert!(parse_since("yesterday", now).is_err());
            assert!(parse_since("", now).is_err());
        }
    }
}

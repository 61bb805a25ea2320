//! The outbox as SQL: `_keel_events` (one row per committed change, written in the
//! change's transaction) and `_keel_deliveries` (one row per event and destination
//! that wants it), plus `_keel_destinations` (which destinations a 410 disabled).
//! Deliveries are claimed by state with a lease, never by "seq greater than the last
//! one seen", so a transaction that commits late (its seq below one already relayed,
//! as PostgreSQL sequences allow) is never skipped.
//!
//! Who writes the deliveries depends on the database ([`relay_makes_deliveries`]).
//! PostgreSQL: the change's transaction, beside its event. SQLite: the relay, from the
//! events past its position (`_keel_relay_position`), many per transaction — the one
//! writer then spends a change's transaction on the change and its event only. On
//! SQLite that is safe because writes are serialized: events commit in `seq` order,
//! so "past the position" misses none.

use crate::Stmt;
use keel_expr::Dialect;
use sea_query::Value;
use serde_json::Value as Json;
use time::OffsetDateTime;

mod admin;
mod deliveries;
mod feed;
pub mod ops;

pub use admin::*;
pub use deliveries::*;
pub use feed::*;

/// The DDL of the outbox tables; `_keel_outbox` (rows nobody relayed) is replaced,
/// and so is the index on `next_attempt_at` no lease used (one fewer write per delivery).
///
/// On SQLite, whose one writer pays for every page a delivery touches, a delivery is
/// one B-tree row keyed `(event_seq, destination)` (`WITHOUT ROWID`: no separate
/// rowid table and key index), and the key serves what the `event_seq` index did
/// (pruning, the admin list); only pending and dead deliveries have index entries.
/// [`SQLITE_REBUILD_BEFORE`] / [`SQLITE_REBUILD_AFTER`] move an older file's table
/// to this shape.
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
  PRIMARY KEY (event_seq, destination)
) WITHOUT ROWID;
DROP INDEX IF EXISTS _keel_deliveries_due;
DROP INDEX IF EXISTS _keel_deliveries_event;
CREATE INDEX IF NOT EXISTS _keel_deliveries_record ON _keel_deliveries (destination, record_id, event_seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_queue ON _keel_deliveries (destination, event_seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_dead ON _keel_deliveries (destination, event_seq) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS _keel_destinations (
  name TEXT PRIMARY KEY,
  disabled_at TEXT,
  reason TEXT
);
CREATE TABLE IF NOT EXISTS _keel_relay_position (
  name TEXT PRIMARY KEY,
  seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO _keel_relay_position (name, seq)
  SELECT 'deliveries', COALESCE(MAX(seq), 0) FROM _keel_events;
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
DROP INDEX IF EXISTS _keel_deliveries_due;
CREATE INDEX IF NOT EXISTS _keel_deliveries_record ON _keel_deliveries (destination, record_id, event_seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _keel_deliveries_event ON _keel_deliveries (event_seq);
CREATE INDEX IF NOT EXISTS _keel_deliveries_queue ON _keel_deliveries (destination, event_seq) WHERE state = 'pending';
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

/// Run before [`ddl`] on a SQLite file whose `_keel_deliveries` still has a rowid
/// (made before deliveries became one B-tree row): the old table steps aside with its
/// indexes dropped, so [`ddl`] makes the new one; [`SQLITE_REBUILD_AFTER`] then moves
/// the rows over, in the same transaction.
pub const SQLITE_REBUILD_BEFORE: &str = "
ALTER TABLE _keel_deliveries RENAME TO _keel_deliveries_rowid;
DROP INDEX IF EXISTS _keel_deliveries_record;
DROP INDEX IF EXISTS _keel_deliveries_event;
DROP INDEX IF EXISTS _keel_deliveries_queue;
DROP INDEX IF EXISTS _keel_deliveries_dead;
DROP INDEX IF EXISTS _keel_deliveries_due;
";

/// Run after [`ddl`] when [`SQLITE_REBUILD_BEFORE`] ran: the rows into the new table.
pub const SQLITE_REBUILD_AFTER: &str = "
INSERT INTO _keel_deliveries (destination, event_seq, record_id, state, attempts,
  next_attempt_at, lease_until, last_status, last_error, updated_at)
  SELECT destination, event_seq, record_id, state, attempts, next_attempt_at,
  lease_until, last_status, last_error, updated_at FROM _keel_deliveries_rowid;
DROP TABLE _keel_deliveries_rowid;
";

/// Whether a SQLite `_keel_deliveries` defined by `sql` (its `sqlite_schema` text)
/// needs [`SQLITE_REBUILD_BEFORE`] and [`SQLITE_REBUILD_AFTER`].
pub fn sqlite_needs_rebuild(sql: &str) -> bool {
    !sql.to_ascii_uppercase().contains("WITHOUT ROWID")
}

/// Whether the relay makes the deliveries of events from the events themselves
/// (SQLite), rather than the change's transaction writing them (PostgreSQL, whose
/// sequences commit out of order).
pub fn relay_makes_deliveries(dialect: Dialect) -> bool {
    dialect == Dialect::Sqlite
}

/// Which destinations want an event: the model decides (the core's outbox); the relay
/// asks when it makes the deliveries of events written without them.
pub trait Interests: Send + Sync {
    /// Whether an answer depends on the record (some destination filters on it).
    fn reads_records(&self) -> bool;
    /// The destinations that want the `kind` (`created`, `updated`, `deleted`) event
    /// of `collection` whose record (after the change; before it, for a delete) is
    /// `record`, in its stored form (`None` when [`reads_records`](Self::reads_records)
    /// is false).
    fn wanting(
        &self,
        collection: &str,
        kind: &str,
        record: Option<&serde_json::Map<String, Json>>,
    ) -> Vec<String>;
}

/// The relay's position: the highest event seq whose deliveries are made (SQLite).
pub fn relay_position() -> Stmt {
    Stmt::new(
        "SELECT seq FROM _keel_relay_position WHERE name = 'deliveries'",
        vec![],
    )
}

/// Move the relay's position forward to `seq` (never back: two transactions that
/// computed it at different times may commit in either order).
pub fn set_relay_position(seq: i64) -> Stmt {
    Stmt::new(
        "UPDATE _keel_relay_position SET seq = max(seq, ?) WHERE name = 'deliveries'",
        vec![seq.into()],
    )
}

/// The newest event's seq (`NULL` when there is none): SQLite answers `max` of the
/// rowid from the end of the table, whatever its statistics say.
pub fn newest_event() -> Stmt {
    Stmt::new("SELECT MAX(seq) FROM _keel_events", vec![])
}

/// The event `seq`, if it exists (rolled-back transactions leave gaps): `seq, type,
/// record_id, data, previous` (the records only `with_records`, else null). One
/// lookup by key per event, as [`select_events`] does on SQLite: a range (`seq > ?`)
/// is answered with a scan of the whole table and a sort while the statistics still
/// say the outbox is empty (taken at start, before the first writes).
pub fn event_at(seq: i64, with_records: bool) -> Stmt {
    let records = if with_records {
        "data, previous"
    } else {
        "NULL, NULL"
    };
    Stmt::new(
        format!("SELECT seq, type, record_id, {records} FROM _keel_events WHERE seq = ?"),
        vec![seq.into()],
    )
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

pub(crate) fn p(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

pub(crate) fn params(dialect: Dialect, from: usize, count: usize) -> String {
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

pub(crate) fn uuid(dialect: Dialect, id: uuid::Uuid) -> Value {
    match dialect {
        Dialect::Sqlite => id.hyphenated().to_string().into(),
        Dialect::Postgres => Value::Uuid(Some(id)),
    }
}

pub(crate) fn opt_uuid(dialect: Dialect, id: Option<uuid::Uuid>) -> Value {
    match (dialect, id) {
        (_, Some(id)) => uuid(dialect, id),
        (Dialect::Sqlite, None) => Value::String(None),
        (Dialect::Postgres, None) => Value::Uuid(None),
    }
}

pub(crate) fn json(dialect: Dialect, v: &Option<Json>) -> Value {
    match (dialect, v) {
        (Dialect::Sqlite, Some(v)) => v.to_string().into(),
        (Dialect::Sqlite, None) => Value::String(None),
        (Dialect::Postgres, Some(v)) => Value::Json(Some(Box::new(v.clone()))),
        (Dialect::Postgres, None) => Value::Json(None),
    }
}

/// `INSERT` an event, returning its `seq` (and, on PostgreSQL, notifying the
/// feed channel).
pub fn insert_event(dialect: Dialect, e: &EventRow) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO _keel_events (event_id, type, collection, record_id, actor, data, previous, occurred_at) VALUES ({}) RETURNING seq{}",
            params(dialect, 1, 8),
            // PostgreSQL: the NOTIFY that wakes every node's relay and feed at commit,
            // in the same round trip as the insert.
            match dialect {
                Dialect::Sqlite => String::new(),
                Dialect::Postgres => format!(", pg_notify('{NOTIFY_CHANNEL}', '')"),
            }
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

/// One pending delivery of event `seq` to `destination`, due now; nothing when that
/// delivery exists already (a relay whose position was lost makes it only once).
pub fn insert_delivery(
    dialect: Dialect,
    destination: &str,
    seq: i64,
    record_id: uuid::Uuid,
    now: OffsetDateTime,
) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO _keel_deliveries (destination, event_seq, record_id, state, attempts, next_attempt_at, updated_at) VALUES ({}, {}, {}, '{PENDING}', 0, {}, {}) ON CONFLICT (destination, event_seq) DO NOTHING",
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

//! The outbox read as a stream: positions and the reads a feed follows it with.

use crate::Stmt;
use keel_expr::Dialect;

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

/// The columns of [`feed_after`] and [`feed_at`], as stored.
pub const FEED_COLUMNS: [keel_spec::Storage; 10] = {
    use keel_spec::Storage::{Datetime, Int, Text};
    [Int, Int, Text, Text, Text, Text, Text, Text, Text, Datetime]
};

/// The event `seq` with the columns of [`feed_after`] (SQLite), if it exists. The
/// feed reads SQLite by key, one seq after another (see [`crate::Store::read_feed`]):
/// `seq > ?` is answered with a scan of the whole table while the planner statistics
/// still say the outbox is empty, and that scan ran after every commit.
pub fn feed_at(seq: i64) -> Stmt {
    Stmt::new(
        "SELECT 0, seq, event_id, type, collection, record_id, actor, data, previous, occurred_at \
         FROM _keel_events WHERE seq = ?",
        vec![seq.into()],
    )
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

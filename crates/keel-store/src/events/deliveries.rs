//! The relay's statements: lease due deliveries, record outcomes, disable
//! destinations, prune what retention no longer needs.

use super::*;
use crate::Stmt;
use keel_expr::Dialect;
use sea_query::Value;
use std::sync::LazyLock;
use time::OffsetDateTime;

/// Whether leasing a delivery writes its lease. PostgreSQL: yes, several nodes relay.
/// SQLite: no, its one process is the only relay; the relay keeps what it has in
/// flight in memory (and leases left in an older file are released at start), so a
/// delivery's row is written when it is made and when it settles, never in between.
pub fn leases_written(dialect: Dialect) -> bool {
    dialect == Dialect::Postgres
}

/// Lease up to `limit` due deliveries to `destination`: pending, due, not leased by
/// another node, and with no earlier pending delivery of the same record to the same
/// destination (so one record's events go out in commit order, one at a time).
/// Returns `destination, event_seq, attempts, record_id` of each leased delivery
/// (the record id as text on SQLite, a UUID on PostgreSQL). PostgreSQL
/// skips rows another node is leasing at this moment and writes the lease; SQLite
/// only selects (see [`leases_written`]: the caller skips what it has in flight). Only
/// seqs above `after` are looked at: the index range then starts past the settled
/// deliveries, whose dead entries a scan from the head would walk until vacuum (`0`:
/// from the head). Nothing is leased for a disabled destination: checked in this
/// statement, so a 410 committed just before it (with its delivery made pending
/// again) is seen.
pub fn claim(
    dialect: Dialect,
    destination: &str,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
    after: i64,
) -> Stmt {
    // PostgreSQL: `OFFSET 0` keeps the "no earlier pending delivery of this record"
    // check a lookup per candidate. Pulled up into an anti-join, with statistics from
    // when the table was small, it walked every pending delivery of the destination
    // for each candidate (66 ms per lease of 8 with 20,000 pending).
    let (lock, fence) = match dialect {
        Dialect::Sqlite => ("", ""),
        Dialect::Postgres => (" FOR UPDATE SKIP LOCKED", " OFFSET 0"),
    };
    let due = |columns: &str, first: usize| {
        format!(
            "SELECT {columns} FROM _keel_deliveries d \
             WHERE d.destination = {dest} AND d.event_seq > {after_p} \
               AND NOT EXISTS (SELECT 1 FROM _keel_destinations x \
                 WHERE x.name = d.destination AND x.disabled_at IS NOT NULL) \
               AND d.state = '{PENDING}' AND d.next_attempt_at <= {now1} \
               AND (d.lease_until IS NULL OR d.lease_until < {now2}) \
               AND NOT EXISTS (SELECT 1 FROM _keel_deliveries e \
                 WHERE e.destination = d.destination AND e.record_id = d.record_id \
                   AND e.state = '{PENDING}' AND e.event_seq < d.event_seq{fence}) \
             ORDER BY d.event_seq LIMIT {limit_p}{lock}",
            dest = p(dialect, first),
            after_p = p(dialect, first + 1),
            now1 = p(dialect, first + 2),
            now2 = p(dialect, first + 3),
            limit_p = p(dialect, first + 4),
        )
    };
    let values = vec![
        destination.into(),
        after.into(),
        at(dialect, now),
        at(dialect, now),
        limit.into(),
    ];
    if !leases_written(dialect) {
        return Stmt::new(
            due("d.destination, d.event_seq, d.attempts, d.record_id", 1),
            values,
        );
    }
    let mut all = vec![at(dialect, lease_until), destination.into()];
    all.extend(values);
    // The due rows are chosen once (`MATERIALIZED`): as an `IN (…)` subquery the
    // planner may run it again while the update proceeds, and with `SKIP LOCKED`
    // under concurrent writes that leased more rows than the limit (2 for 1).
    Stmt::new(
        format!(
            "WITH due AS MATERIALIZED ({due}) \
             UPDATE _keel_deliveries SET lease_until = {lease} \
             WHERE destination = {dest} AND event_seq IN (SELECT event_seq FROM due) \
             RETURNING destination, event_seq, attempts, record_id",
            lease = p(dialect, 1),
            dest = p(dialect, 2),
            due = due("d.event_seq", 3),
        ),
        all,
    )
}

/// The events with these seqs: `seq, event_id, type, collection, record_id, actor,
/// data, previous, occurred_at` (data and previous as JSON text). PostgreSQL: one
/// statement. SQLite: one rowid lookup per seq, because statistics taken while the
/// outbox was empty (an `ANALYZE` right after seeding) make its planner answer an
/// `IN` list, even a range, with a scan of the whole table: one per lease.
pub fn select_events(dialect: Dialect, seqs: &[i64]) -> Vec<Stmt> {
    const COLUMNS: &str = "seq, event_id, type, collection, record_id, actor";
    match dialect {
        Dialect::Sqlite => seqs
            .iter()
            .map(|seq| {
                Stmt::new(
                    format!(
                        "SELECT {COLUMNS}, data, previous, occurred_at FROM _keel_events WHERE seq = ?"
                    ),
                    vec![(*seq).into()],
                )
            })
            .collect(),
        Dialect::Postgres => {
            let list = params(dialect, 1, seqs.len().max(1));
            let values = if seqs.is_empty() {
                vec![Value::BigInt(Some(-1))]
            } else {
                seqs.iter().map(|s| (*s).into()).collect()
            };
            vec![Stmt::new(
                format!(
                    "SELECT {COLUMNS}, data::text, previous::text, occurred_at FROM _keel_events WHERE seq IN ({list})"
                ),
                values,
            )]
        }
    }
}

/// A delivery's state after an attempt: pending (to retry), delivered or dead, with
/// its attempt count, when to try next, and the last status or error.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    pub state: &'a str,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub last_status: Option<u16>,
    pub last_error: Option<&'a str>,
    pub now: OffsetDateTime,
}

impl Settled<'_> {
    /// The values of the settled columns, in [`SETTLED_COLUMNS`]' order.
    fn values(&self, dialect: Dialect) -> [Value; 6] {
        [
            self.state.into(),
            self.attempts.into(),
            at(dialect, self.next_attempt_at),
            Value::Int(self.last_status.map(i32::from)),
            Value::String(self.last_error.map(|e| e.chars().take(1000).collect())),
            at(dialect, self.now),
        ]
    }
}

/// The columns an attempt's outcome sets.
const SETTLED_COLUMNS: [&str; 6] = [
    "state",
    "attempts",
    "next_attempt_at",
    "last_status",
    "last_error",
    "updated_at",
];

/// Record a leased delivery's outcome; its lease ends.
pub fn settle(dialect: Dialect, destination: &str, seq: i64, outcome: &Settled<'_>) -> Stmt {
    let mut values = outcome.values(dialect).to_vec();
    values.extend([destination.into(), seq.into()]);
    Stmt::new(per_dialect(dialect, &SETTLE_SQL), values)
}

/// The text of [`settle`]'s statement, made once per dialect.
static SETTLE_SQL: [LazyLock<String>; 2] = [
    LazyLock::new(|| settle_sql(Dialect::Sqlite)),
    LazyLock::new(|| settle_sql(Dialect::Postgres)),
];

fn settle_sql(dialect: Dialect) -> String {
    let set = SETTLED_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = {}", p(dialect, i + 1)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE _keel_deliveries SET {set}, lease_until = NULL WHERE destination = {} AND event_seq = {}",
        p(dialect, 7),
        p(dialect, 8)
    )
}

/// Write a delivery whose first attempt was made before it had a row (SQLite: see
/// `keel_events`' fresh deliveries), in its state after that attempt. A row already
/// there (the attempt was made again after a crash) takes this outcome.
pub fn insert_settled(
    dialect: Dialect,
    destination: &str,
    seq: i64,
    record_id: uuid::Uuid,
    outcome: &Settled<'_>,
) -> Stmt {
    let mut values = vec![destination.into(), seq.into(), uuid(dialect, record_id)];
    values.extend(outcome.values(dialect));
    Stmt::new(per_dialect(dialect, &INSERT_SETTLED_SQL), values)
}

/// The text of [`insert_settled`]'s statement, made once per dialect: one per
/// delivery, it was most of the relay's cost of recording an outcome.
static INSERT_SETTLED_SQL: [LazyLock<String>; 2] = [
    LazyLock::new(|| insert_settled_sql(Dialect::Sqlite)),
    LazyLock::new(|| insert_settled_sql(Dialect::Postgres)),
];

fn insert_settled_sql(dialect: Dialect) -> String {
    let columns = SETTLED_COLUMNS.join(", ");
    let update = SETTLED_COLUMNS
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO _keel_deliveries (destination, event_seq, record_id, {columns}) VALUES ({}) \
         ON CONFLICT (destination, event_seq) DO UPDATE SET {update}, lease_until = NULL",
        params(dialect, 1, 9)
    )
}

/// `texts`' entry for `dialect` (SQLite first, PostgreSQL second).
fn per_dialect(dialect: Dialect, texts: &[LazyLock<String>; 2]) -> String {
    match dialect {
        Dialect::Sqlite => texts[0].as_str().to_owned(),
        Dialect::Postgres => texts[1].as_str().to_owned(),
    }
}

/// Whether `destination` has a pending delivery of `record_id` (an earlier event of
/// the record waits there, so a later one must not overtake it).
pub fn record_pending(dialect: Dialect, destination: &str, record_id: uuid::Uuid) -> Stmt {
    Stmt::new(
        format!(
            "SELECT 1 FROM _keel_deliveries WHERE destination = {} AND record_id = {} \
             AND state = '{PENDING}' LIMIT 1",
            p(dialect, 1),
            p(dialect, 2)
        ),
        vec![destination.into(), uuid(dialect, record_id)],
    )
}

/// Whether event `seq` has a delivery row for `destination` (in any state).
pub fn delivery_exists(dialect: Dialect, destination: &str, seq: i64) -> Stmt {
    Stmt::new(
        format!(
            "SELECT 1 FROM _keel_deliveries WHERE event_seq = {} AND destination = {}",
            p(dialect, 1),
            p(dialect, 2)
        ),
        vec![seq.into(), destination.into()],
    )
}

/// The highest event seq with a delivery row for `destination` (`NULL`: none).
pub fn last_delivery(dialect: Dialect, destination: &str) -> Stmt {
    Stmt::new(
        format!(
            "SELECT MAX(event_seq) FROM _keel_deliveries WHERE destination = {}",
            p(dialect, 1)
        ),
        vec![destination.into()],
    )
}

/// Whether `destination` has any pending delivery.
pub fn destination_pending(dialect: Dialect, destination: &str) -> Stmt {
    Stmt::new(
        format!(
            "SELECT 1 FROM _keel_deliveries WHERE destination = {} AND state = '{PENDING}' LIMIT 1",
            p(dialect, 1)
        ),
        vec![destination.into()],
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
/// One aggregate over the deliveries, then one primary-key lookup per destination:
/// no join for the planner to get wrong (joined, a plan made while the outbox was
/// empty ran for minutes over a large backlog).
pub fn pending_stats() -> Stmt {
    Stmt::new(
        format!(
            "SELECT p.destination, p.pending, \
             (SELECT e.occurred_at FROM _keel_events e WHERE e.seq = p.first_seq) \
             FROM (SELECT destination, COUNT(*) AS pending, MIN(event_seq) AS first_seq \
             FROM _keel_deliveries WHERE state = '{PENDING}' GROUP BY destination) p"
        ),
        vec![],
    )
}

/// Forget what retention no longer needs: deliveries that are settled (delivered or
/// dead) for events older than `before`, then events older than `before` with no
/// delivery left (on SQLite, only those the relay has made deliveries for: an event
/// past its position has none *yet*). Two statements, in this order.
pub fn prune(dialect: Dialect, before: OffsetDateTime) -> [Stmt; 2] {
    let made = if relay_makes_deliveries(dialect) {
        " AND seq <= (SELECT seq FROM _keel_relay_position WHERE name = 'deliveries')"
    } else {
        ""
    };
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
                "DELETE FROM _keel_events WHERE occurred_at < {}{made} AND NOT EXISTS \
                 (SELECT 1 FROM _keel_deliveries d WHERE d.event_seq = _keel_events.seq)",
                p(dialect, 1)
            ),
            vec![at(dialect, before)],
        ),
    ]
}

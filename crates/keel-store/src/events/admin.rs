//! The statements behind `keel events` and the admin routes: list, retry, replay.

use super::*;
use crate::Stmt;
use keel_expr::Dialect;
use sea_query::Value;
use time::OffsetDateTime;

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
/// oldest one's event time (`destination, state, count, oldest_occurred_at`). No join
/// (see `pending_stats`).
pub fn backlog() -> Stmt {
    Stmt::new(
        format!(
            "SELECT b.destination, b.state, b.n, \
             (SELECT e.occurred_at FROM _keel_events e WHERE e.seq = b.first_seq) \
             FROM (SELECT destination, state, COUNT(*) AS n, MIN(event_seq) AS first_seq \
             FROM _keel_deliveries WHERE state IN ('{PENDING}', '{DEAD}') \
             GROUP BY destination, state) b"
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

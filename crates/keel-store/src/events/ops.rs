//! Operating the outbox: what `keel events` and the admin routes show and re-drive.
//! Callers decide which destination names are valid (those keel.toml configures).

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

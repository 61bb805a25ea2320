//! Read replicas (PostgreSQL streaming standbys): reads a replica may answer are
//! spread over the replicas in service, round-robin; a replica is taken out when it
//! fails or lags and put back when it has caught up.
//!
//! "Lags" is measured in WAL, not clocks: every [`PROBE_EVERY`] the primary's
//! current WAL position is sampled, and a replica is in service while it has
//! replayed at least the position the primary had `max_lag` ago. So a write
//! committed more than `max_lag` (plus one probe) ago is on every replica in
//! service, which is what read-your-writes builds on.

use crate::rows::RowSink;
use crate::{Stmt, StoreError};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often the primary and the replicas are probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// How far behind the primary a replica may be and stay in service, by default.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(2);

/// How long a read waits for a replica before the primary answers it instead.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// One replica: its pool and whether it serves reads now.
struct Replica {
    /// The URL without its password, for logs.
    name: String,
    pool: deadpool_postgres::Pool,
    in_service: AtomicBool,
}

/// The replicas of one primary.
pub struct Replicas {
    members: Vec<Replica>,
    next: AtomicUsize,
    max_lag: Duration,
}

impl Replicas {
    /// Pools for `urls` (connected lazily). Each starts out of service until its
    /// first probe shows it caught up.
    pub fn open(urls: &[String], max_lag: Duration) -> Result<Self, StoreError> {
        let mut members = Vec::with_capacity(urls.len());
        for url in urls {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(StoreError::InvalidUrl(crate::redact(url)));
            }
            members.push(Replica {
                name: crate::redact(url),
                pool: crate::postgres::pool(url)?,
                in_service: AtomicBool::new(false),
            });
        }
        Ok(Self {
            members,
            next: AtomicUsize::new(0),
            max_lag,
        })
    }

    /// Whether each replica serves reads now, in the order given (for `/metrics`).
    pub fn in_service(&self) -> Vec<bool> {
        self.members
            .iter()
            .map(|r| r.in_service.load(Ordering::Relaxed))
            .collect()
    }

    /// The next replica in service, round-robin.
    fn pick(&self) -> Option<&Replica> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.members[(start + i) % n])
            .find(|r| r.in_service.load(Ordering::Relaxed))
    }

    /// Run `stmt` on a replica in service, its rows to `sink`; `false` when there is
    /// none or it failed (it is then taken out until a probe puts it back).
    pub(crate) async fn query_into(&self, stmt: &Stmt, sink: &mut dyn RowSink) -> bool {
        let Some(replica) = self.pick() else {
            return false;
        };
        let read = async {
            let client = replica.pool.get().await?;
            crate::postgres::query_into(&client, stmt, sink).await
        };
        match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                set_in_service(replica, false, &format!("a read failed: {e}"));
                false
            }
            Err(_) => {
                set_in_service(replica, false, "a read timed out");
                false
            }
        }
    }

    /// Probe the primary and every replica until `stop` resolves, putting replicas
    /// in and out of service.
    pub(crate) async fn watch(
        self: Arc<Self>,
        primary: deadpool_postgres::Pool,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut samples: VecDeque<(Instant, String)> = VecDeque::new();
        let watching = async {
            loop {
                if let Some(lsn) = probe_primary(&primary).await {
                    samples.push_back((Instant::now(), lsn));
                }
                // Keep one sample older than max_lag: the position replicas must reach.
                while samples.len() > 1 && samples[1].0.elapsed() >= self.max_lag {
                    samples.pop_front();
                }
                if let Some((_, wanted)) = samples.front() {
                    for r in &self.members {
                        let caught_up = probe_replica(r, wanted).await;
                        let in_service = caught_up == Ok(true);
                        let reason = match caught_up {
                            Ok(true) => "it has caught up".to_string(),
                            Ok(false) => format!(
                                "it lags more than {} ms behind the primary",
                                self.max_lag.as_millis()
                            ),
                            Err(e) => e,
                        };
                        set_in_service(r, in_service, &reason);
                    }
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        };
        tokio::select! {
            () = watching => {}
            () = stop => {}
        }
    }
}

fn set_in_service(r: &Replica, in_service: bool, reason: &str) {
    if r.in_service.swap(in_service, Ordering::Relaxed) != in_service {
        if in_service {
            tracing::warn!(replica = %r.name, reason, "read replica back in service");
        } else {
            tracing::warn!(replica = %r.name, reason, "read replica taken out of service");
        }
    }
}

/// The primary's current WAL position, as text (`16/B374D848`).
async fn probe_primary(primary: &deadpool_postgres::Pool) -> Option<String> {
    let probe = async {
        let client = primary.get().await.ok()?;
        let row = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .ok()?;
        row.try_get::<_, String>(0).ok()
    };
    tokio::time::timeout(PROBE_EVERY * 4, probe)
        .await
        .ok()
        .flatten()
}

/// Whether replica `r` has replayed `wanted` (a server that is not a standby, e.g.
/// the primary named as its own replica, always has).
async fn probe_replica(r: &Replica, wanted: &str) -> Result<bool, String> {
    if !wanted.bytes().all(|b| b.is_ascii_hexdigit() || b == b'/') {
        return Err(format!("unexpected WAL position `{wanted}`"));
    }
    let sql = format!(
        "SELECT CASE WHEN pg_is_in_recovery() \
         THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{wanted}'::pg_lsn) >= 0 \
         ELSE true END"
    );
    let probe = async {
        let client = r.pool.get().await.map_err(|e| e.to_string())?;
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| e.to_string())?;
        row.try_get::<_, Option<bool>>(0)
            .map(|b| b.unwrap_or(false))
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(PROBE_EVERY * 4, probe).await {
        Ok(result) => result.map_err(|e| format!("it cannot be reached: {e}")),
        Err(_) => Err("it does not answer".into()),
    }
}

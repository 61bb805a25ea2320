//! The outbox relay: runs in every `keel serve`, leases due deliveries from the store
//! (several nodes never hold the same one: `FOR UPDATE SKIP LOCKED` and a lease),
//! hands each to its [`Sink`] and records the outcome: delivered, retried on the
//! documented schedule, dead-lettered, or its destination disabled (a 410). Woken
//! right after each local commit and by other nodes' commits, with a slow poll as the
//! fallback; a destination that is down never blocks a write or another destination.

use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::envelope::Envelope;
use crate::metrics::RelayMetrics;
use crate::outcomes::{OutcomeWriter, relaxed};
use crate::schedule::RetrySchedule;
use crate::sink::{Outcome, Sink};
use keel_spec::Storage;
use keel_store::events::{self, DEAD, DELIVERED, PENDING};
use keel_store::{Store, StoreError};
use serde_json::{Map, Value as Json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How often the store's planner statistics are refreshed where stale.
const STATISTICS_EVERY: Duration = Duration::from_secs(600);

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Poll at least this often (retries fall due, other nodes' commits).
    pub poll: Duration,
    /// A leased delivery is another node's to retry after this long.
    pub lease: Duration,
    /// At most this many deliveries in flight on this node.
    pub max_in_flight: usize,
    /// Once caught up (a lease found fewer deliveries than it could take), wait this
    /// long after the last lease before the next: under a stream of writes, each
    /// commit's wake-up would otherwise cost a lease transaction of its own, taken on
    /// the same (SQLite: the one) writer the requests need.
    pub linger: Duration,
    /// Events are pruned this long after they occurred (once settled).
    pub retention: Duration,
    /// How often to prune and refresh the pending gauges.
    pub housekeeping: Duration,
    pub schedule: RetrySchedule,
    /// The circuit breaker of each destination.
    pub breaker: BreakerConfig,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            // Three times a webhook's timeout: a node that dies mid-delivery hands its
            // leases on within this.
            lease: Duration::from_secs(30),
            max_in_flight: 64,
            linger: Duration::from_millis(5),
            retention: Duration::from_secs(keel_spec::DEFAULT_EVENT_RETENTION_SECS),
            housekeeping: Duration::from_secs(5),
            schedule: RetrySchedule::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// One leased delivery.
struct Lease {
    destination: String,
    seq: i64,
    attempts: i32,
    envelope: Envelope,
}

/// The relay of one node.
pub struct Relay {
    store: Store,
    sinks: HashMap<String, Arc<dyn Sink>>,
    settings: RelaySettings,
    wake: Arc<Notify>,
    breakers: Mutex<HashMap<String, Breaker>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Per destination: the highest seq leased here (see [`Relay::claim`]).
    floors: Mutex<HashMap<String, i64>>,
    /// Per destination: the seqs in flight here until their outcome commits. Where
    /// leases are not written (SQLite, see [`events::leases_written`]) this is what
    /// keeps a delivery from being leased twice.
    held: Mutex<HashMap<String, HashSet<i64>>>,
    /// Per collection, its encrypted fields: left out of what leaves the server.
    sealed: HashMap<String, Vec<String>>,
    /// Which destinations want which events, where this relay makes the deliveries
    /// from the events (SQLite; see [`events::relay_makes_deliveries`]).
    interests: Option<Arc<dyn events::Interests>>,
    pub metrics: Arc<RelayMetrics>,
}

/// Events turned into deliveries per transaction, at most.
const MAKE_BATCH: i64 = 1000;

impl Relay {
    /// A relay over `store` delivering to `sinks` (by name), woken by `wake`.
    pub fn new(
        model: &keel_spec::Model,
        store: Store,
        sinks: Vec<Arc<dyn Sink>>,
        settings: RelaySettings,
        wake: Arc<Notify>,
    ) -> Self {
        let sealed = model
            .collections
            .iter()
            .map(|c| {
                let fields = c
                    .fields
                    .iter()
                    .filter(|f| f.encrypted)
                    .map(|f| f.name.clone());
                (c.name.clone(), fields.collect::<Vec<_>>())
            })
            .filter(|(_, f)| !f.is_empty())
            .collect();
        let names: Vec<String> = sinks.iter().map(|s| s.name().to_string()).collect();
        let breakers = Mutex::new(
            names
                .iter()
                .map(|n| (n.clone(), Breaker::new(settings.breaker)))
                .collect(),
        );
        Self {
            store,
            sinks: sinks
                .into_iter()
                .map(|s| (s.name().to_string(), s))
                .collect(),
            settings,
            wake,
            breakers,
            in_flight: Mutex::new(HashMap::new()),
            floors: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            sealed,
            interests: None,
            metrics: Arc::new(RelayMetrics::new(&names)),
        }
    }

    /// Make the deliveries of events written without them (SQLite), asking
    /// `interests` which destinations want each. Required where
    /// [`events::relay_makes_deliveries`] holds: without it nothing is delivered.
    pub fn with_interests(mut self, interests: Arc<dyn events::Interests>) -> Self {
        self.interests = Some(interests);
        self
    }

    /// In `tx`: the deliveries of the events past the relay's position (a batch),
    /// and the position moved past them. Returns how many seqs it went past.
    async fn make_deliveries(
        &self,
        tx: &mut keel_store::Tx<'_>,
        interests: &dyn events::Interests,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let dialect = tx.dialect();
        let position = tx
            .query(&events::relay_position(), &[Storage::Int])
            .await?
            .first()
            .and_then(|r| r.first())
            .and_then(Json::as_i64)
            .unwrap_or(0);
        let newest = tx
            .query(&events::newest_event(), &[Storage::Int])
            .await?
            .first()
            .and_then(|r| r.first())
            .and_then(Json::as_i64)
            .unwrap_or(0);
        let with_records = interests.reads_records();
        let upto = newest.min(position + MAKE_BATCH);
        let mut rows = Vec::new();
        for seq in position + 1..=upto {
            rows.extend(
                tx.query(
                    &events::event_at(seq, with_records),
                    &[
                        Storage::Int,
                        Storage::Text,
                        Storage::Uuid,
                        Storage::Text,
                        Storage::Text,
                    ],
                )
                .await?,
            );
        }
        for row in &rows {
            let (Some(seq), Some(ty), Some(record_id)) = (
                row[0].as_i64(),
                row[1].as_str(),
                row[2].as_str().and_then(|s| s.parse::<uuid::Uuid>().ok()),
            ) else {
                continue;
            };
            let Some((collection, kind)) = ty.rsplit_once('.') else {
                continue;
            };
            // The record after the change (before it, for a delete), as stored.
            let record = with_records
                .then(|| {
                    [&row[3], &row[4]].into_iter().find_map(|v| {
                        v.as_str().and_then(|t| {
                            serde_json::from_str::<serde_json::Map<String, Json>>(t).ok()
                        })
                    })
                })
                .flatten();
            if with_records && record.is_none() {
                continue;
            }
            for destination in interests.wanting(collection, kind, record.as_ref()) {
                tx.execute(&events::insert_delivery(
                    dialect,
                    &destination,
                    seq,
                    record_id,
                    now,
                ))
                .await?;
            }
        }
        if upto > position {
            tx.execute(&events::set_relay_position(upto)).await?;
        }
        Ok((upto - position).max(0) as usize)
    }

    /// Deliver until `shutdown` resolves; deliveries in flight then finish (their
    /// leases would hand them to another node otherwise).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        // Other nodes' commits wake this relay too (PostgreSQL's NOTIFY).
        let listener = self.store.listen(events::NOTIFY_CHANNEL, self.wake.clone());
        if self.store.dialect() == keel_store::Dialect::Sqlite {
            // One process per SQLite file: leases still held were left by a process
            // that died (kill -9); its deliveries are due again now, not in 30 s.
            let released = async {
                let mut tx = self.store.begin().await?;
                tx.execute(&events::release_leases()).await?;
                tx.commit().await
            };
            if let Err(e) = released.await {
                tracing::warn!(error = %e, "events: cannot release stale leases");
            }
        }
        let (outcomes, writer) = OutcomeWriter::spawn(self.store.clone());
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Housekeeping runs beside the leasing loop, never in it: a slow statement
        // there (a plan made from stale statistics took minutes) must not stop
        // deliveries.
        let maintenance = tokio::spawn(self.clone().maintain());
        let mut caught_up = false;
        let mut last_claim = Instant::now();
        loop {
            let free = self.settings.max_in_flight.saturating_sub(tasks.len());
            let mut claimed = 0;
            if free > 0 && !self.sinks.is_empty() {
                if caught_up {
                    let since = last_claim.elapsed();
                    if since < self.settings.linger {
                        tokio::time::sleep(self.settings.linger - since).await;
                    }
                }
                last_claim = Instant::now();
                match self.claim(free).await {
                    Ok((leases, wanted)) => {
                        claimed = leases.len();
                        caught_up = claimed < wanted;
                        for lease in leases {
                            let relay = self.clone();
                            let outcomes = outcomes.clone();
                            tasks.spawn(async move { relay.deliver(lease, &outcomes).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "events: cannot lease deliveries"),
                }
            }
            if claimed > 0 && claimed == free {
                // A full batch: more may be due; make room first if there is none.
                if tasks.len() >= self.settings.max_in_flight {
                    tasks.join_next().await;
                }
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        maintenance.abort();
        if let Some(l) = listener {
            l.abort();
        }
        while tasks.join_next().await.is_some() {}
        drop(outcomes);
        let _ = writer.await;
    }

    /// How many deliveries each destination may lease now (at most `free` in all):
    /// none when disabled (on any node) or its breaker is open, one for a breaker's
    /// trial, else up to its concurrency cap minus what is in flight on this node.
    async fn allowances(&self, free: usize) -> Result<Vec<(String, usize)>, StoreError> {
        let disabled: Vec<String> = self
            .store
            .query(&events::disabled_destinations(), &[Storage::Text])
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Json::as_str).map(str::to_string))
            .collect();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut left = free;
        if let (Ok(mut breakers), Ok(in_flight)) = (self.breakers.lock(), self.in_flight.lock()) {
            for (name, sink) in &self.sinks {
                if disabled.contains(name) || left == 0 {
                    continue;
                }
                let busy = in_flight.get(name).copied().unwrap_or(0);
                let cap = match breakers.get_mut(name) {
                    Some(b) if b.state() == BreakerState::Closed => sink.concurrency(),
                    // A trial, when the cool-down is over and nothing is in flight.
                    Some(b) => usize::from(busy == 0 && b.allow(now)),
                    None => sink.concurrency(),
                };
                let n = cap.saturating_sub(busy).min(left);
                // Lease in batches: when idle, or once half the slots are free, so a
                // backlog costs one lease query per several deliveries.
                if n > 0 && (busy == 0 || n * 2 >= cap) {
                    left -= n;
                    out.push((name.clone(), n));
                }
            }
        }
        Ok(out)
    }

    /// The highest seq this node has leased for `destination` (`0`: none yet).
    fn floor(&self, destination: &str) -> i64 {
        self.floors
            .lock()
            .ok()
            .and_then(|f| f.get(destination).copied())
            .unwrap_or(0)
    }

    fn raise_floor(&self, destination: &str, top: Option<i64>) {
        if let (Ok(mut floors), Some(top)) = (self.floors.lock(), top) {
            let floor = floors.entry(destination.to_string()).or_insert(0);
            *floor = (*floor).max(top);
        }
    }

    /// Lease up to `free` due deliveries (per destination, within its allowance) and
    /// load their events.
    /// Also returns how many could have been leased (the allowances' sum).
    async fn claim(&self, free: usize) -> Result<(Vec<Lease>, usize), StoreError> {
        let allowances = self.allowances(free).await?;
        let wanted = allowances.iter().map(|(_, n)| n).sum();
        let dialect = self.store.dialect();
        let maker = self
            .interests
            .as_deref()
            .filter(|_| events::relay_makes_deliveries(dialect));
        if allowances.is_empty() && maker.is_none() {
            return Ok((Vec::new(), 0));
        }
        let now = OffsetDateTime::now_utc();
        let lease_until = now + self.settings.lease;
        let mut tx = self.store.begin().await?;
        relaxed(&mut tx).await?;
        if let Some(interests) = maker {
            // The deliveries of the events committed since, then leases among them
            // in the same transaction.
            let read = self.make_deliveries(&mut tx, interests, now).await?;
            if read as i64 == MAKE_BATCH {
                // More events wait: come back at once.
                self.wake.notify_one();
            }
        }
        if allowances.is_empty() {
            tx.commit().await?;
            return Ok((Vec::new(), 0));
        }
        if dialect == keel_store::Dialect::Postgres {
            // Planned for the bound values: a generic plan cannot know the limit is
            // small, and sorted every due delivery (20 ms with 6,000) to take eight.
            tx.execute(&keel_store::Stmt::new(
                "SET LOCAL plan_cache_mode TO force_custom_plan",
                vec![],
            ))
            .await?;
        }
        let mut leased = Vec::new();
        for (destination, n) in allowances {
            // Above the highest seq leased here first: the index range then starts past
            // the settled deliveries (dead entries until vacuum) instead of walking
            // them, which is what keeps a backlog draining fast. Only when that finds
            // fewer than wanted, from the head: retries come due there, and
            // deliveries that waited behind an earlier one of their record.
            let after = self.floor(&destination);
            let mut rows = self
                .lease(&mut tx, &destination, now, lease_until, n, after)
                .await?;
            if rows.len() < n && after > 0 {
                let more = n - rows.len();
                let again = self
                    .lease(&mut tx, &destination, now, lease_until, more, 0)
                    .await?;
                // Unwritten leases (SQLite): the first statement's rows are due still.
                let taken: HashSet<i64> = rows.iter().filter_map(|r| r[1].as_i64()).collect();
                rows.extend(
                    again
                        .into_iter()
                        .filter(|r| r[1].as_i64().is_some_and(|s| !taken.contains(&s))),
                );
            }
            self.raise_floor(
                &destination,
                rows.iter().filter_map(|r| r[1].as_i64()).max(),
            );
            leased.extend(rows);
        }
        if leased.is_empty() {
            // Commit: deliveries may have been made above.
            tx.commit().await?;
            return Ok((Vec::new(), wanted));
        }
        let seqs: Vec<i64> = leased.iter().filter_map(|r| r[1].as_i64()).collect();
        let mut rows = Vec::with_capacity(seqs.len());
        for stmt in events::select_events(dialect, &seqs) {
            rows.extend(
                tx.query(
                    &stmt,
                    &[
                        Storage::Int,
                        Storage::Uuid,
                        Storage::Text,
                        Storage::Text,
                        Storage::Uuid,
                        Storage::Uuid,
                        Storage::Text,
                        Storage::Text,
                        Storage::Datetime,
                    ],
                )
                .await?,
            );
        }
        tx.commit().await?;
        let mut by_seq: HashMap<i64, Envelope> = HashMap::new();
        for row in rows {
            if let Some((seq, mut envelope)) = envelope_of(row) {
                if let Some(fields) = self.sealed.get(&envelope.collection) {
                    for record in [&mut envelope.data, &mut envelope.previous]
                        .into_iter()
                        .flatten()
                    {
                        for f in fields {
                            record.remove(f);
                        }
                    }
                }
                by_seq.insert(seq, envelope);
            }
        }
        let mut leases = Vec::new();
        for row in leased {
            let (Some(destination), Some(seq)) = (row[0].as_str(), row[1].as_i64()) else {
                continue;
            };
            let Some(envelope) = by_seq.get(&seq).cloned() else {
                continue;
            };
            leases.push(Lease {
                destination: destination.to_string(),
                seq,
                attempts: row[2].as_i64().unwrap_or(0) as i32,
                envelope,
            });
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            for l in &leases {
                *in_flight.entry(l.destination.clone()).or_default() += 1;
            }
        }
        if let Ok(mut held) = self.held.lock() {
            for l in &leases {
                held.entry(l.destination.clone()).or_default().insert(l.seq);
            }
        }
        Ok((leases, wanted))
    }

    /// Up to `n` due deliveries to `destination` past `after`, leased. Where leases
    /// are not written, what is in flight here is still pending in the store: the
    /// statement asks for that many more and they are left out.
    async fn lease(
        &self,
        tx: &mut keel_store::Tx<'_>,
        destination: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        n: usize,
        after: i64,
    ) -> Result<Vec<keel_store::Row>, StoreError> {
        let dialect = tx.dialect();
        let held: HashSet<i64> = if events::leases_written(dialect) {
            HashSet::new()
        } else {
            self.held
                .lock()
                .ok()
                .and_then(|h| h.get(destination).cloned())
                .unwrap_or_default()
        };
        let limit = (n + held.len()) as i64;
        let mut rows = tx
            .query(
                &events::claim(dialect, destination, now, lease_until, limit, after),
                &[Storage::Text, Storage::Int, Storage::Int],
            )
            .await?;
        rows.retain(|r| r[1].as_i64().is_some_and(|s| !held.contains(&s)));
        rows.truncate(n);
        Ok(rows)
    }

    /// One attempt, and its outcome recorded (committed with others that finish
    /// at the same time).
    async fn deliver(&self, lease: Lease, outcomes: &OutcomeWriter) {
        let started = Instant::now();
        let outcome = match self.sinks.get(&lease.destination) {
            Some(sink) => {
                let body = lease.envelope.to_json_bytes();
                sink.deliver(&lease.envelope, &body).await
            }
            None => Outcome::Retry {
                status: None,
                error: "no such destination on this node".into(),
                after: Some(self.settings.lease),
            },
        };
        if let Ok(mut in_flight) = self.in_flight.lock()
            && let Some(n) = in_flight.get_mut(&lease.destination)
        {
            *n = n.saturating_sub(1);
        }
        self.metrics
            .record(&lease.destination, &outcome, started.elapsed());
        let stmts = self.settle(&lease, &outcome);
        if let Err(e) = outcomes.write(stmts).await {
            // The lease runs out and another attempt follows: at least once.
            tracing::warn!(destination = %lease.destination, event = %lease.envelope.id, error = %e, "events: cannot record a delivery");
        }
        // Its outcome is committed (or lost, and then it is due again): no longer held.
        if let Ok(mut held) = self.held.lock()
            && let Some(seqs) = held.get_mut(&lease.destination)
        {
            seqs.remove(&lease.seq);
        }
    }

    /// The statements that record `outcome` (and the breaker told of it).
    fn settle(&self, lease: &Lease, outcome: &Outcome) -> Vec<keel_store::Stmt> {
        let dialect = self.store.dialect();
        let now = OffsetDateTime::now_utc();
        let attempts = lease.attempts + 1;
        let clock = Instant::now();
        let stmt = match outcome {
            Outcome::Delivered { status } => {
                self.breaker(&lease.destination, |b| b.record_success());
                events::settle(
                    dialect,
                    &lease.destination,
                    lease.seq,
                    DELIVERED,
                    attempts,
                    now,
                    *status,
                    None,
                    now,
                )
            }
            Outcome::Retry {
                status,
                error,
                after,
            } => {
                self.breaker(&lease.destination, |b| b.record_failure(clock));
                let delay = self.settings.schedule.next_delay(
                    attempts.max(0) as u32,
                    *after,
                    random_unit(),
                );
                match delay {
                    Some(delay) => {
                        tracing::debug!(destination = %lease.destination, event = %lease.envelope.id, attempts, error = %error, "events: delivery failed, will retry");
                        events::settle(
                            dialect,
                            &lease.destination,
                            lease.seq,
                            PENDING,
                            attempts,
                            now + delay,
                            *status,
                            Some(error),
                            now,
                        )
                    }
                    None => {
                        tracing::warn!(destination = %lease.destination, event = %lease.envelope.id, attempts, error = %error, "events: delivery dead-lettered");
                        events::settle(
                            dialect,
                            &lease.destination,
                            lease.seq,
                            DEAD,
                            attempts,
                            now,
                            *status,
                            Some(error),
                            now,
                        )
                    }
                }
            }
            Outcome::Gone { status } => {
                tracing::warn!(destination = %lease.destination, "events: the destination answered 410 Gone; disabled until `keel events retry`");
                // The delivery stays pending: it goes out once the destination is
                // enabled again.
                return vec![
                    events::disable_destination(dialect, &lease.destination, "410 Gone", now),
                    events::settle(
                        dialect,
                        &lease.destination,
                        lease.seq,
                        PENDING,
                        attempts,
                        now,
                        *status,
                        Some("410 Gone: destination disabled"),
                        now,
                    ),
                ];
            }
        };
        vec![stmt]
    }

    fn breaker(&self, destination: &str, f: impl FnOnce(&mut Breaker)) {
        if let Ok(mut breakers) = self.breakers.lock()
            && let Some(b) = breakers.get_mut(destination)
        {
            let before = b.state();
            f(b);
            let after = b.state();
            self.metrics.set_breaker(destination, after);
            // Deliveries stop or resume here: say so at the default log level.
            if after != before {
                tracing::warn!(destination, from = ?before, to = ?after, "events: the destination's circuit breaker changed state");
            }
        }
    }

    /// Every `housekeeping` period: prune and refresh the pending gauges; refresh the
    /// planner's statistics at start, every [`STATISTICS_EVERY`], and on PostgreSQL
    /// whenever the backlog has more than doubled since (the outbox grows from empty,
    /// and with autovacuum off nothing else would tell the planner).
    async fn maintain(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.housekeeping);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refreshed: Option<(Instant, i64)> = None;
        loop {
            tick.tick().await;
            let pending = self.housekeeping().await;
            // On SQLite a refresh holds the one writer while it analyzes (the seeded
            // tables too): there the clock alone decides.
            let grows_stale = self.store.dialect() == keel_store::Dialect::Postgres;
            let due = refreshed.is_none_or(|(at, backlog)| {
                at.elapsed() >= STATISTICS_EVERY || (grows_stale && pending > 2 * backlog + 1000)
            });
            if due {
                match self.store.refresh_statistics().await {
                    Ok(()) => refreshed = Some((Instant::now(), pending)),
                    Err(e) => {
                        tracing::warn!(error = %e, "events: cannot refresh the planner's statistics");
                    }
                }
            }
        }
    }

    /// Prune what retention no longer needs, refresh the pending gauges; the number
    /// of pending deliveries.
    async fn housekeeping(&self) -> i64 {
        let dialect = self.store.dialect();
        let before = OffsetDateTime::now_utc() - self.settings.retention;
        let pruned = async {
            let mut tx = self.store.begin().await?;
            for stmt in events::prune(dialect, before) {
                tx.execute(&stmt).await?;
            }
            tx.commit().await
        };
        if let Err(e) = pruned.await {
            tracing::warn!(error = %e, "events: cannot prune");
        }
        match self
            .store
            .query(
                &events::pending_stats(),
                &[Storage::Text, Storage::Int, Storage::Datetime],
            )
            .await
        {
            Ok(rows) => {
                let now = OffsetDateTime::now_utc();
                let stats = rows
                    .into_iter()
                    .filter_map(|r| {
                        let name = r[0].as_str()?.to_string();
                        let pending = r[1].as_i64().unwrap_or(0);
                        let oldest = r[2]
                            .as_str()
                            .and_then(keel_expr::parse_datetime)
                            .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
                        Some((name, pending, oldest))
                    })
                    .collect::<Vec<_>>();
                let total = stats.iter().map(|(_, n, _)| *n).sum();
                self.metrics.set_pending(stats);
                total
            }
            Err(e) => {
                tracing::warn!(error = %e, "events: cannot read pending deliveries");
                0
            }
        }
    }
}

/// A uniform value in `[0, 1)` for the retry jitter.
fn random_unit() -> f64 {
    // The low 62 bits of a UUIDv7 are random.
    let bits = (uuid::Uuid::now_v7().as_u64_pair().1 & ((1u64 << 62) - 1)) >> 9;
    bits as f64 / (1u64 << 53) as f64
}

/// An event row (see `events::select_events`) as its envelope.
fn envelope_of(row: Vec<Json>) -> Option<(i64, Envelope)> {
    let seq = row[0].as_i64()?;
    let record = |v: &Json| -> Option<Map<String, Json>> {
        v.as_str()
            .and_then(|s| serde_json::from_str::<Json>(s).ok())
            .and_then(|j| match j {
                Json::Object(m) => Some(m),
                _ => None,
            })
    };
    Some((
        seq,
        Envelope {
            id: uuid::Uuid::parse_str(row[1].as_str()?).ok()?,
            kind: row[2].as_str()?.to_string(),
            collection: row[3].as_str()?.to_string(),
            record_id: uuid::Uuid::parse_str(row[4].as_str()?).ok()?,
            actor: row[5].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()),
            data: record(&row[6]),
            previous: record(&row[7]),
            occurred_at: row[8].as_str()?.to_string(),
        },
    ))
}

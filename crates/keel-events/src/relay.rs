//! The outbox relay: runs in every `keel serve`, leases due deliveries from the store
//! (several nodes never hold the same one: `FOR UPDATE SKIP LOCKED` and a lease),
//! hands each to its [`Sink`] and records the outcome: delivered, retried on the
//! documented schedule, dead-lettered, or its destination disabled (a 410). Woken
//! right after each local commit and by other nodes' commits, with a slow poll as the
//! fallback; a destination that is down never blocks a write or another destination.

use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::envelope::Envelope;
use crate::fresh::{FreshOutcome, Heads, lock};
use crate::metrics::RelayMetrics;
use crate::outcomes::{OutcomeWriter, relaxed};
use crate::schedule::RetrySchedule;
use crate::sink::{Outcome, Sink};
use keel_spec::Storage;
use keel_store::events::{self, DEAD, DELIVERED, PENDING, Settled};
use keel_store::{Row, Stmt, Store, StoreError};
use serde_json::{Map, Value as Json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
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
    event: Arc<Outgoing>,
    /// A first attempt with no row yet (SQLite, see `fresh`): its outcome is
    /// inserted, not updated.
    fresh: bool,
}

/// Where the relay's reads run: inside its transaction (PostgreSQL, whose leases are
/// written), or on the store's readers (SQLite, whose leases are not).
enum Reads<'a, 'b> {
    Tx(&'a mut keel_store::Tx<'b>),
    Store(&'a Store),
}

impl Reads<'_, '_> {
    async fn query(&mut self, stmt: &Stmt, columns: &[Storage]) -> Result<Vec<Row>, StoreError> {
        match self {
            Reads::Tx(tx) => tx.query(stmt, columns).await,
            Reads::Store(store) => store.query(stmt, columns).await,
        }
    }
}

/// The columns of `events::select_events`.
const EVENT_COLUMNS: [Storage; 9] = [
    Storage::Int,
    Storage::Uuid,
    Storage::Text,
    Storage::Text,
    Storage::Uuid,
    Storage::Uuid,
    Storage::Text,
    Storage::Text,
    Storage::Datetime,
];

/// An event as it leaves the server: its envelope (sealed) and the JSON every
/// destination receives, serialized once for all of them and every attempt.
struct Outgoing {
    envelope: Envelope,
    body: Vec<u8>,
}

impl Outgoing {
    fn new(envelope: Envelope) -> Arc<Self> {
        let body = envelope.to_json_bytes();
        Arc::new(Self { envelope, body })
    }
}

/// An event read by the walk and the destinations that want it.
type Walked = Option<(Arc<Outgoing>, Vec<String>)>;

/// The relay of one node.
pub struct Relay {
    store: Store,
    sinks: HashMap<String, Arc<dyn Sink>>,
    settings: RelaySettings,
    wake: Arc<Notify>,
    breakers: Mutex<HashMap<String, Breaker>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// A delivery's answer came back: a slot of its destination is free (before its
    /// outcome commits, which is when its task ends).
    freed: Notify,
    /// Per destination: the highest seq leased here (see [`Relay::claim`]).
    floors: Mutex<HashMap<String, i64>>,
    /// Per destination: the seqs in flight here until their outcome commits. Where
    /// leases are not written (SQLite, see [`events::leases_written`]) this is what
    /// keeps a delivery from being leased twice.
    held: Mutex<HashMap<String, HashSet<i64>>>,
    /// What this relay knows of disabled destinations (see [`DisabledKnown`]).
    disabled: Mutex<DisabledKnown>,
    /// When the store was last asked for pending rows this relay did not make.
    rows_asked: Mutex<Option<Instant>>,
    /// Set where such rows were just made in this process (see
    /// [`Relay::with_deliveries_made`]).
    rows_made: Option<Arc<AtomicBool>>,
    /// Per collection, its encrypted fields: left out of what leaves the server.
    sealed: HashMap<String, Vec<String>>,
    /// Which destinations want which events, where this relay makes the deliveries
    /// from the events (SQLite; see [`events::relay_makes_deliveries`] and `fresh`).
    interests: Option<Arc<dyn events::Interests>>,
    pub metrics: Arc<RelayMetrics>,
}

/// Events a destination's walk looks at per lease, at most (SQLite).
const WALK: i64 = 1000;

/// How long "no destination is disabled", read from the store, is trusted: another
/// node's 410 is seen within this (or at this node's first 410 there).
const DISABLED_FRESH: Duration = Duration::from_secs(1);

/// The disabled destinations as this relay knows them. While none is, the store is
/// asked once per [`DISABLED_FRESH`]; while some are, on every claim, so that `keel
/// events retry` takes effect at the wake-up it sends.
#[derive(Default)]
struct DisabledKnown {
    /// When the store last said none is disabled.
    none_since: Option<Instant>,
    /// Destinations that answered 410 here and the store does not list yet (their
    /// outcome is not committed).
    gone: Vec<String>,
}

/// Events read per reader visit while walking, at most.
const WALK_READ: i64 = 64;

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
            freed: Notify::new(),
            floors: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            disabled: Mutex::new(DisabledKnown::default()),
            rows_asked: Mutex::new(None),
            rows_made: None,
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

    /// Ask the store for pending rows at the next lease whenever `flag` is set (an
    /// admin's retry or replay in this process), not only once per poll.
    pub fn with_deliveries_made(mut self, flag: Arc<AtomicBool>) -> Self {
        self.rows_made = Some(flag);
        self
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
        let heads = match self.interests.as_deref() {
            Some(interests) if events::relay_makes_deliveries(self.store.dialect()) => {
                let heads = loop {
                    match self.heads().await {
                        Ok(heads) => break heads,
                        Err(e) => {
                            tracing::warn!(error = %e, "events: cannot read the relay's position");
                            tokio::select! {
                                _ = &mut shutdown => return,
                                _ = tokio::time::sleep(self.settings.poll) => {}
                            }
                        }
                    }
                };
                Some((interests, Arc::new(Mutex::new(heads))))
            }
            _ => None,
        };
        let (outcomes, writer) =
            OutcomeWriter::spawn(self.store.clone(), heads.as_ref().map(|(_, h)| h.clone()));
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Housekeeping runs beside the leasing loop, never in it: a slow statement
        // there (a plan made from stale statistics took minutes) must not stop
        // deliveries.
        let maintenance = tokio::spawn(
            self.clone()
                .maintain(heads.as_ref().map(|(_, h)| h.clone())),
        );
        let mut caught_up = false;
        let mut last_claim = Instant::now();
        loop {
            let free = self.settings.max_in_flight.saturating_sub(tasks.len());
            let mut claimed = 0;
            let room = free > 0 && self.room();
            if room {
                if caught_up {
                    let since = last_claim.elapsed();
                    if since < self.settings.linger {
                        tokio::time::sleep(self.settings.linger - since).await;
                    }
                }
                last_claim = Instant::now();
                let result = match &heads {
                    Some((interests, heads)) => self.claim_local(free, *interests, heads).await,
                    None => self.claim(free).await,
                };
                match result {
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
            let room = tasks.len() < self.settings.max_in_flight && self.room();
            tokio::select! {
                _ = &mut shutdown => break,
                // Without room for a lease (no destination, or every one busy), a
                // commit gives it nothing to do: no wake-up, a context switch per
                // write. Its wake-up is kept, and taken once an answer frees a slot.
                _ = self.wake.notified(), if room => {}
                _ = self.freed.notified() => {}
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

    /// The one integer `stmt` selects (`0` for none or `NULL`).
    async fn scalar(&self, stmt: &Stmt) -> Result<i64, StoreError> {
        Ok(self
            .store
            .query(stmt, &[Storage::Int])
            .await?
            .first()
            .and_then(|r| r.first())
            .and_then(Json::as_i64)
            .unwrap_or(0))
    }

    /// Whether `stmt` (selecting one integer column) finds a row.
    async fn exists(&self, stmt: &Stmt) -> Result<bool, StoreError> {
        Ok(!self.store.query(stmt, &[Storage::Int]).await?.is_empty())
    }

    /// SQLite: every destination at the stored position, knowing which have pending
    /// rows.
    async fn heads(&self) -> Result<Heads, StoreError> {
        let position = self.scalar(&events::relay_position()).await?;
        let mut with_rows = Vec::new();
        let mut rows_until = HashMap::new();
        for name in self.sinks.keys() {
            let last = self
                .scalar(&events::last_delivery(self.store.dialect(), name))
                .await?;
            rows_until.insert(name.clone(), last);
            if self
                .exists(&events::destination_pending(self.store.dialect(), name))
                .await?
            {
                with_rows.push(name.clone());
            }
        }
        Ok(Heads::new(
            self.sinks.keys().map(String::as_str),
            position,
            &with_rows,
            &rows_until,
        ))
    }

    /// How many deliveries each destination may lease now (at most `free` in all):
    /// none when disabled (on any node) or its breaker is open, one for a breaker's
    /// trial, else up to its concurrency cap minus what is in flight on this node.
    async fn allowances(&self, free: usize) -> Result<Vec<(String, usize)>, StoreError> {
        let disabled = self.disabled().await?;
        Ok(self.allowances_given(free, &disabled))
    }

    /// The destinations disabled (on any node). While none is, the store is asked at
    /// most every [`DISABLED_FRESH`]: asked on every claim, it was 8 % of the relay's
    /// CPU under load.
    async fn disabled(&self) -> Result<Vec<String>, StoreError> {
        if let Ok(known) = self.disabled.lock()
            && known.gone.is_empty()
            && known
                .none_since
                .is_some_and(|at| at.elapsed() < DISABLED_FRESH)
        {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = self
            .store
            .query(&events::disabled_destinations(), &[Storage::Text])
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Json::as_str).map(str::to_string))
            .collect();
        if let Ok(mut known) = self.disabled.lock() {
            known.gone.retain(|g| !names.contains(g));
            names.extend(known.gone.iter().cloned());
            known.none_since = names.is_empty().then(Instant::now);
        }
        Ok(names)
    }

    /// `destination` answered 410: disabled from the next claim on, not only once
    /// its outcome commits.
    fn note_disabled(&self, destination: &str) {
        if let Ok(mut known) = self.disabled.lock()
            && !known.gone.iter().any(|n| n == destination)
        {
            known.gone.push(destination.to_string());
        }
    }

    /// Whether a lease could give some destination work now, judged from what is
    /// in memory (no store read): one that is idle, has half its slots free (see
    /// [`Relay::allowances_given`]), or is not plainly open for deliveries (breaker
    /// not closed: its walk makes pending rows). A busy relay skips the lease, and
    /// the store reads it costs, until a delivery finishes.
    fn room(&self) -> bool {
        let (Ok(breakers), Ok(in_flight)) = (self.breakers.lock(), self.in_flight.lock()) else {
            return true;
        };
        self.sinks.iter().any(|(name, sink)| {
            let busy = in_flight.get(name).copied().unwrap_or(0);
            let cap = sink.concurrency();
            let closed = breakers
                .get(name)
                .is_none_or(|b| b.state() == BreakerState::Closed);
            !closed || worth_a_lease(cap.saturating_sub(busy), busy, cap)
        })
    }

    /// [`Relay::allowances`], the disabled destinations known.
    fn allowances_given(&self, free: usize, disabled: &[String]) -> Vec<(String, usize)> {
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
                if worth_a_lease(n, busy, cap) {
                    left -= n;
                    out.push((name.clone(), n));
                }
            }
        }
        out
    }

    /// SQLite: whether to ask the store for pending rows of destinations that have
    /// none this relay knows of (rows it did not make: `keel events retry` and
    /// replay). At once after the admin routes made some, else once per `poll`
    /// (another process's `keel events retry`): asked on every lease, it was 4 % of
    /// the relay's CPU under load.
    fn rows_due(&self) -> bool {
        let Ok(mut asked) = self.rows_asked.lock() else {
            return true;
        };
        let made = self
            .rows_made
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::AcqRel));
        let due = made || asked.is_none_or(|at| at.elapsed() >= self.settings.poll);
        if due {
            *asked = Some(Instant::now());
        }
        due
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
    /// load their events (PostgreSQL: leases written, so several nodes share the work).
    /// Also returns how many could have been leased (the allowances' sum).
    async fn claim(&self, free: usize) -> Result<(Vec<Lease>, usize), StoreError> {
        let allowances = self.allowances(free).await?;
        let wanted = allowances.iter().map(|(_, n)| n).sum();
        if allowances.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let now = OffsetDateTime::now_utc();
        let lease_until = now + self.settings.lease;
        let mut tx = self.store.begin().await?;
        relaxed(&mut tx).await?;
        if tx.dialect() == keel_store::Dialect::Postgres {
            // Planned for the bound values: a generic plan cannot know the limit is
            // small, and sorted every due delivery (20 ms with 6,000) to take eight.
            tx.execute(&Stmt::new(
                "SET LOCAL plan_cache_mode TO force_custom_plan",
                vec![],
            ))
            .await?;
        }
        let mut reads = Reads::Tx(&mut tx);
        let leased = self
            .lease_due(&mut reads, &allowances, now, lease_until, None)
            .await?;
        let envelopes = self.envelopes(&mut reads, &leased).await?;
        tx.commit().await?;
        Ok((self.take(leased, envelopes, Vec::new()), wanted))
    }

    /// SQLite: lease the due pending rows first (retries, and events that waited behind
    /// an earlier one of their record), then walk the events past each destination's
    /// head (see `fresh`): what may go now is sent with no row written; what may not is
    /// made a pending row. Reads run on the store's readers; the writer is taken only
    /// to make rows.
    async fn claim_local(
        &self,
        free: usize,
        interests: &dyn events::Interests,
        heads: &Mutex<Heads>,
    ) -> Result<(Vec<Lease>, usize), StoreError> {
        let dialect = self.store.dialect();
        let disabled = self.disabled().await?;
        let allowances = self.allowances_given(free, &disabled);
        let wanted = allowances.iter().map(|(_, n)| n).sum();
        let now = OffsetDateTime::now_utc();
        let mut reads = Reads::Store(&self.store);
        let leased = self
            .lease_due(&mut reads, &allowances, now, now, Some(heads))
            .await?;
        let envelopes = self.envelopes(&mut reads, &leased).await?;
        let mut left: HashMap<&str, usize> = allowances
            .iter()
            .map(|(name, n)| (name.as_str(), *n))
            .collect();
        for row in &leased {
            if let Some(n) = row[0].as_str().and_then(|d| left.get_mut(d)) {
                *n = n.saturating_sub(1);
            }
        }
        self.forget_rows(heads).await?;
        let newest = self.scalar(&events::newest_event()).await?;
        let mut seen: HashMap<i64, Walked> = HashMap::new();
        let mut fresh: Vec<Lease> = Vec::new();
        let mut rows: Vec<(String, i64, uuid::Uuid)> = Vec::new();
        let mut walked: Vec<(String, i64)> = Vec::new();
        let mut more = false;
        for name in self.sinks.keys() {
            let Some(head) = lock(heads).head(name) else {
                continue;
            };
            let blocked = disabled.contains(name)
                || self
                    .breakers
                    .lock()
                    .ok()
                    .and_then(|b| b.get(name).map(Breaker::state))
                    .is_some_and(|s| s != BreakerState::Closed);
            let mut n = left.get(name.as_str()).copied().unwrap_or(0);
            if n == 0 && !blocked {
                // Busy: its next events wait for a free slot (a later lease).
                continue;
            }
            let upto = newest.min(head + WALK);
            more |= upto < newest;
            let mut seq = head;
            while seq < upto {
                let next = seq + 1;
                if !seen.contains_key(&next) {
                    // As many as it may send (a claim often has few slots free), or
                    // a window of them where they all become rows.
                    let window = if blocked { WALK_READ } else { n as i64 };
                    let to = upto.min(seq + window.clamp(1, WALK_READ));
                    self.walk(seq, to, interests, &mut seen).await?;
                }
                let Some(Some((event, wanting))) = seen.get(&next) else {
                    // No such event: its transaction rolled back.
                    seq = next;
                    continue;
                };
                if !wanting.contains(name) {
                    seq = next;
                    continue;
                }
                // Handed out before a restart (its row made past the position then
                // stored): pending rows are leased, settled ones are done.
                let maybe = lock(heads).may_have_row(name, next);
                if maybe
                    && self
                        .exists(&events::delivery_exists(dialect, name, next))
                        .await?
                {
                    seq = next;
                    continue;
                }
                let record = event.envelope.record_id;
                // Per-record order: behind a first attempt of the record in flight,
                // or a pending row of it (asked only where there may be some).
                let sending = fresh
                    .iter()
                    .any(|l| &l.destination == name && l.event.envelope.record_id == record)
                    || lock(heads).sending(name, record);
                let ask = !blocked && !sending && lock(heads).may_have_rows(name);
                let queued = ask
                    && self
                        .exists(&events::record_pending(dialect, name, record))
                        .await?;
                let behind = blocked || sending || queued;
                if behind {
                    rows.push((name.clone(), next, record));
                } else if n == 0 {
                    // Busy: the rest waits for a free slot (another lease).
                    break;
                } else {
                    n -= 1;
                    fresh.push(Lease {
                        destination: name.clone(),
                        seq: next,
                        attempts: 0,
                        event: event.clone(),
                        fresh: true,
                    });
                }
                seq = next;
            }
            walked.push((name.clone(), seq));
        }
        let mut stored = None;
        if !rows.is_empty() {
            // The position moves with the rows: a restart must not walk over rows
            // already made (it would send again what they delivered since).
            let sent: Vec<(&str, i64)> = fresh
                .iter()
                .map(|l| (l.destination.as_str(), l.seq))
                .collect();
            let position = lock(heads).position_after(&walked, &sent);
            let mut tx = self.store.begin().await?;
            for (destination, seq, record) in &rows {
                tx.execute(&events::insert_delivery(
                    dialect,
                    destination,
                    *seq,
                    *record,
                    now,
                ))
                .await?;
            }
            tx.execute(&events::set_relay_position(position)).await?;
            tx.commit().await?;
            stored = Some(position);
        }
        {
            let mut heads = lock(heads);
            if let Some(position) = stored {
                heads.wrote(position);
            }
            for (destination, _, _) in &rows {
                heads.made_rows(destination);
            }
            for lease in &fresh {
                heads.sent(
                    &lease.destination,
                    lease.seq,
                    lease.event.envelope.record_id,
                );
            }
            for (destination, seq) in &walked {
                heads.advance(destination, *seq);
            }
        }
        if more {
            // A walk stopped at its limit with events left: come back at once.
            self.wake.notify_one();
        }
        Ok((self.take(leased, envelopes, fresh), wanted))
    }

    /// Each event with `after < seq <= upto` into `seen`, with the destinations that
    /// want it (`None`: no such event, its transaction rolled back). Filters see the
    /// record as stored; the envelope then loses its encrypted fields.
    async fn walk(
        &self,
        after: i64,
        upto: i64,
        interests: &dyn events::Interests,
        seen: &mut HashMap<i64, Walked>,
    ) -> Result<(), StoreError> {
        for seq in after + 1..=upto {
            seen.insert(seq, None);
        }
        let rows = self.store.read_events(after, upto, &EVENT_COLUMNS).await?;
        for (seq, mut envelope) in rows.into_iter().filter_map(envelope_of) {
            let kind = envelope
                .kind
                .rsplit_once('.')
                .map_or("", |(_, kind)| kind)
                .to_string();
            let record = envelope.data.as_ref().or(envelope.previous.as_ref());
            let wanting = interests.wanting(&envelope.collection, &kind, record);
            self.seal(&mut envelope);
            seen.insert(seq, Some((Outgoing::new(envelope), wanting)));
        }
        Ok(())
    }

    /// Stop asking per event about pending rows where a destination has none left
    /// (and no first attempt whose outcome could still make one).
    async fn forget_rows(&self, heads: &Mutex<Heads>) -> Result<(), StoreError> {
        let dialect = self.store.dialect();
        for name in self.sinks.keys() {
            let Some(epoch) = lock(heads).rows_epoch_if_idle(name) else {
                continue;
            };
            if !self
                .exists(&events::destination_pending(dialect, name))
                .await?
            {
                lock(heads).forget_rows(name, epoch);
            }
        }
        Ok(())
    }

    /// Lease up to each allowance of due pending rows; `destination, event_seq,
    /// attempts, record_id` of each. Rows of a record with a first attempt unsettled
    /// (`heads`) wait for it.
    async fn lease_due(
        &self,
        reads: &mut Reads<'_, '_>,
        allowances: &[(String, usize)],
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        heads: Option<&Mutex<Heads>>,
    ) -> Result<Vec<Row>, StoreError> {
        let mut leased = Vec::new();
        let ask_all = heads.is_none() || self.rows_due();
        for (destination, n) in allowances {
            let n = *n;
            if !ask_all && heads.is_some_and(|h| !lock(h).may_have_rows(destination)) {
                continue;
            }
            // Above the highest seq leased here first: the index range then starts past
            // the settled deliveries (dead entries until vacuum) instead of walking
            // them, which is what keeps a backlog draining fast. Only when that finds
            // fewer than wanted, from the head: retries come due there, and
            // deliveries that waited behind an earlier one of their record.
            let after = self.floor(destination);
            let mut rows = self
                .lease(reads, destination, now, lease_until, n, after)
                .await?;
            if rows.len() < n && after > 0 {
                let more = n - rows.len();
                let again = self
                    .lease(reads, destination, now, lease_until, more, 0)
                    .await?;
                // Unwritten leases (SQLite): the first statement's rows are due still.
                let taken: HashSet<i64> = rows.iter().filter_map(|r| r[1].as_i64()).collect();
                rows.extend(
                    again
                        .into_iter()
                        .filter(|r| r[1].as_i64().is_some_and(|s| !taken.contains(&s))),
                );
            }
            if let Some(heads) = heads {
                let heads = lock(heads);
                rows.retain(|r| {
                    let record = r[3].as_str().and_then(|s| s.parse::<uuid::Uuid>().ok());
                    record.is_none_or(|record| !heads.sending(destination, record))
                });
            }
            self.raise_floor(destination, rows.iter().filter_map(|r| r[1].as_i64()).max());
            leased.extend(rows);
        }
        Ok(leased)
    }

    /// The events of leased rows, by seq, sealed.
    async fn envelopes(
        &self,
        reads: &mut Reads<'_, '_>,
        leased: &[Row],
    ) -> Result<HashMap<i64, Arc<Outgoing>>, StoreError> {
        if leased.is_empty() {
            return Ok(HashMap::new());
        }
        let seqs: Vec<i64> = leased.iter().filter_map(|r| r[1].as_i64()).collect();
        let mut by_seq = HashMap::new();
        for stmt in events::select_events(self.store.dialect(), &seqs) {
            for row in reads.query(&stmt, &EVENT_COLUMNS).await? {
                if let Some((seq, mut envelope)) = envelope_of(row) {
                    self.seal(&mut envelope);
                    by_seq.insert(seq, Outgoing::new(envelope));
                }
            }
        }
        Ok(by_seq)
    }

    /// Leave out a record's encrypted fields: they never leave the server.
    fn seal(&self, envelope: &mut Envelope) {
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
    }

    /// The leases of `leased` rows (with their events) and of `fresh` first attempts,
    /// counted in flight; the rows held until their outcomes commit.
    fn take(
        &self,
        leased: Vec<Row>,
        envelopes: HashMap<i64, Arc<Outgoing>>,
        fresh: Vec<Lease>,
    ) -> Vec<Lease> {
        let mut leases = Vec::new();
        for row in leased {
            let (Some(destination), Some(seq)) = (row[0].as_str(), row[1].as_i64()) else {
                continue;
            };
            let Some(event) = envelopes.get(&seq).cloned() else {
                tracing::warn!(
                    destination,
                    seq,
                    "events: a leased delivery has no event; it waits for its lease to run out"
                );
                continue;
            };
            leases.push(Lease {
                destination: destination.to_string(),
                seq,
                attempts: row[2].as_i64().unwrap_or(0) as i32,
                event,
                fresh: false,
            });
        }
        if let Ok(mut held) = self.held.lock() {
            for l in &leases {
                held.entry(l.destination.clone()).or_default().insert(l.seq);
            }
        }
        leases.extend(fresh);
        if let Ok(mut in_flight) = self.in_flight.lock() {
            for l in &leases {
                *in_flight.entry(l.destination.clone()).or_default() += 1;
            }
        }
        leases
    }

    /// Up to `n` due deliveries to `destination` past `after`, leased. Where leases
    /// are not written, what is in flight here is still pending in the store: the
    /// statement asks for that many more and they are left out.
    async fn lease(
        &self,
        reads: &mut Reads<'_, '_>,
        destination: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        n: usize,
        after: i64,
    ) -> Result<Vec<Row>, StoreError> {
        let dialect = self.store.dialect();
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
        let mut rows = reads
            .query(
                &events::claim(dialect, destination, now, lease_until, limit, after),
                &[Storage::Text, Storage::Int, Storage::Int, Storage::Uuid],
            )
            .await?;
        if events::leases_written(dialect) {
            // Every row returned is leased to this node: all are delivered. (Dropping
            // one here held it, undelivered, until its lease ran out.)
            return Ok(rows);
        }
        rows.retain(|r| r[1].as_i64().is_some_and(|s| !held.contains(&s)));
        rows.truncate(n);
        Ok(rows)
    }

    /// One attempt, and its outcome recorded (committed with others that finish
    /// at the same time).
    async fn deliver(&self, lease: Lease, outcomes: &OutcomeWriter) {
        let started = Instant::now();
        let outcome = match self.sinks.get(&lease.destination) {
            Some(sink) => sink.deliver(&lease.event.envelope, &lease.event.body).await,
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
        self.freed.notify_one();
        self.metrics
            .record(&lease.destination, &outcome, started.elapsed());
        let stmts = self.settle(&lease, &outcome);
        if lease.fresh {
            // Until its row commits, the position stays before this event and the
            // record's later events wait: keep trying (a restart sends it again).
            let fresh = FreshOutcome {
                destination: lease.destination.clone(),
                seq: lease.seq,
                // (or dead: harmless, the walk only asks the store once more)
                pending: !matches!(outcome, Outcome::Delivered { .. }),
            };
            let mut pause = Duration::from_millis(50);
            for tries in 1.. {
                match outcomes.write(stmts.clone(), Some(fresh.clone())).await {
                    Ok(()) => break,
                    Err(_) if outcomes.is_closed() => break,
                    // About a minute of failing writes: the store needs attention;
                    // the next start sends this event again.
                    Err(e) if tries >= 16 => {
                        tracing::error!(destination = %lease.destination, event = %lease.event.envelope.id, error = %e, "events: cannot record a delivery; it is sent again at the next start");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(destination = %lease.destination, event = %lease.event.envelope.id, error = %e, "events: cannot record a delivery; trying again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
            return;
        }
        if let Err(e) = outcomes.write(stmts, None).await {
            // The lease runs out and another attempt follows: at least once.
            tracing::warn!(destination = %lease.destination, event = %lease.event.envelope.id, error = %e, "events: cannot record a delivery");
        }
        // Its outcome is committed (or lost, and then it is due again): no longer held.
        if let Ok(mut held) = self.held.lock()
            && let Some(seqs) = held.get_mut(&lease.destination)
        {
            seqs.remove(&lease.seq);
        }
    }

    /// The statements that record `outcome` (and the breaker told of it).
    fn settle(&self, lease: &Lease, outcome: &Outcome) -> Vec<Stmt> {
        let dialect = self.store.dialect();
        let now = OffsetDateTime::now_utc();
        let attempts = lease.attempts + 1;
        let clock = Instant::now();
        let row = |state, next_attempt_at, last_status, last_error| Settled {
            state,
            attempts,
            next_attempt_at,
            last_status,
            last_error,
            now,
        };
        let mut stmts = Vec::new();
        let settled = match outcome {
            Outcome::Delivered { status } => {
                self.breaker(&lease.destination, |b| b.record_success());
                row(DELIVERED, now, *status, None)
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
                        tracing::debug!(destination = %lease.destination, event = %lease.event.envelope.id, attempts, error = %error, "events: delivery failed, will retry");
                        row(PENDING, now + delay, *status, Some(error.as_str()))
                    }
                    None => {
                        tracing::warn!(destination = %lease.destination, event = %lease.event.envelope.id, attempts, error = %error, "events: delivery dead-lettered");
                        row(DEAD, now, *status, Some(error.as_str()))
                    }
                }
            }
            Outcome::Gone { status } => {
                self.note_disabled(&lease.destination);
                tracing::warn!(destination = %lease.destination, "events: the destination answered 410 Gone; disabled until `keel events retry`");
                stmts.push(events::disable_destination(
                    dialect,
                    &lease.destination,
                    "410 Gone",
                    now,
                ));
                // The delivery stays pending: it goes out once the destination is
                // enabled again.
                row(
                    PENDING,
                    now,
                    *status,
                    Some("410 Gone: destination disabled"),
                )
            }
        };
        stmts.push(if lease.fresh {
            events::insert_settled(
                dialect,
                &lease.destination,
                lease.seq,
                lease.event.envelope.record_id,
                &settled,
            )
        } else {
            events::settle(dialect, &lease.destination, lease.seq, &settled)
        });
        stmts
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
    async fn maintain(self: Arc<Self>, heads: Option<Arc<Mutex<Heads>>>) {
        let mut tick = tokio::time::interval(self.settings.housekeeping);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refreshed: Option<(Instant, i64)> = None;
        loop {
            tick.tick().await;
            let pending = self.housekeeping(heads.as_deref()).await;
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

    /// Add to `stats` (destination, pending, oldest age) what each destination has
    /// with no row yet: first attempts in flight, and the events past its head.
    async fn count_unsent(
        &self,
        heads: &Mutex<Heads>,
        stats: &mut Vec<(String, i64, f64)>,
        age: impl Fn(&Json) -> f64,
    ) -> Result<(), StoreError> {
        let newest = self.scalar(&events::newest_event()).await?;
        for name in self.sinks.keys() {
            let Some((unsettled, first, head)) = lock(heads).backlog(name) else {
                continue;
            };
            let unsent = unsettled as i64 + (newest - head).max(0);
            if unsent == 0 {
                continue;
            }
            let mut oldest = 0.0;
            for stmt in events::select_events(self.store.dialect(), &[first]) {
                if let Some(row) = self.store.query(&stmt, &EVENT_COLUMNS).await?.first() {
                    oldest = age(&row[8]);
                }
            }
            match stats.iter_mut().find(|(n, _, _)| n == name) {
                Some((_, pending, age)) => {
                    *pending += unsent;
                    *age = age.max(oldest);
                }
                None => stats.push((name.clone(), unsent, oldest)),
            }
        }
        Ok(())
    }

    /// Prune what retention no longer needs, refresh the pending gauges; the number
    /// of pending deliveries. On SQLite the events not yet sent to a destination
    /// (no rows: see `fresh`) count as pending there, whether or not its filter
    /// will want them.
    async fn housekeeping(&self, heads: Option<&Mutex<Heads>>) -> i64 {
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
                let age = |v: &Json| {
                    v.as_str()
                        .and_then(keel_expr::parse_datetime)
                        .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0))
                };
                let mut stats = rows
                    .into_iter()
                    .filter_map(|r| {
                        let name = r[0].as_str()?.to_string();
                        let pending = r[1].as_i64().unwrap_or(0);
                        Some((name, pending, age(&r[2])))
                    })
                    .collect::<Vec<_>>();
                if let Some(heads) = heads
                    && let Err(e) = self.count_unsent(heads, &mut stats, age).await
                {
                    tracing::warn!(error = %e, "events: cannot read the unsent backlog");
                }
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

/// Whether `n` free slots of a destination with `busy` of `cap` in flight are worth
/// a lease: leases go in batches — when idle, or once half the slots are free — so
/// a backlog costs one lease per several deliveries.
fn worth_a_lease(n: usize, busy: usize, cap: usize) -> bool {
    n > 0 && (busy == 0 || n * 2 >= cap)
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

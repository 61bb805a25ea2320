//! Subscribers and the fan-out to them. Each subscription names collections (each
//! with an optional filter) and, to resume, a cursor. The hub sends it every event of
//! those collections that its principal may read and its filter selects, through a
//! bounded queue: a subscriber whose queue is full is cut off with `reset`. A resuming
//! subscriber first replays from the outbox, then follows the live stream with no gap
//! and no duplicate.

use crate::access::Access;
use crate::feed::{self, FeedEvent};
use keel_core::{Engine, Principal};
use keel_expr::Typed;
use keel_store::events::Position;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

/// Events a subscriber may have queued before it is cut off.
pub const QUEUE: usize = 1024;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Message {
    Event(Arc<FeedEvent>),
    /// Events were missed (past retention, or the subscriber fell behind): refetch,
    /// then continue from here.
    Reset,
}

/// Why a subscription is refused.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("too many realtime connections for this {0}; close some first")]
    TooMany(&'static str),
    #[error("cannot read the event feed: {0}")]
    Store(#[from] keel_store::StoreError),
}

/// What a client asks for.
pub struct SubscriptionRequest {
    pub principal: Principal,
    /// The client's address, for the per-address connection cap.
    pub client_ip: String,
    /// Collections and their filters (typed for that collection).
    pub collections: HashMap<String, Option<Arc<Typed>>>,
    /// Resume after this position (`Last-Event-ID`, `since`); `None`: live only.
    pub since: Option<Position>,
}

struct Subscriber {
    principal: Arc<RwLock<Principal>>,
    collections: Arc<RwLock<HashMap<String, Option<Arc<Typed>>>>>,
    tx: mpsc::Sender<Message>,
    lagged: Arc<AtomicBool>,
    user: Option<String>,
    ip: String,
}

/// A subscriber interested in one event: id, principal, filter, queue, lag flag.
type Interested = (
    u64,
    Arc<RwLock<Principal>>,
    Option<Arc<Typed>>,
    mpsc::Sender<Message>,
    Arc<AtomicBool>,
);

/// The subscribers of one node.
pub struct Hub {
    engine: Arc<Engine>,
    access: Access,
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    next_id: AtomicU64,
    /// The position the live stream has reached (the feed reader's).
    position: Mutex<Position>,
    /// Whether the feed reader follows the outbox. With no subscriber it does not
    /// (nothing to publish; reading after every commit cost creates half their CPU),
    /// and the first subscriber to arrive sets the position to the head itself.
    /// Changed only under the `subscribers` lock.
    following: AtomicBool,
    closed: AtomicBool,
    /// At most this many subscriptions per signed-in user, and per address.
    pub max_per_user: usize,
    pub max_per_ip: usize,
}

impl Hub {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            access: Access::new(engine.clone()),
            engine,
            subscribers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            position: Mutex::new(Position::default()),
            following: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            max_per_user: 32,
            max_per_ip: 256,
        }
    }

    /// Move the live position forward to `p` (never back: a subscriber may have
    /// moved it to the head while the reader was idle).
    pub(crate) fn set_position(&self, p: Position) {
        if let Ok(mut pos) = self.position.lock() {
            *pos = (*pos).max(p);
        }
    }

    /// Where the feed reader, at `local`, reads next: `None` when nobody subscribes
    /// (then it stops following until a subscriber sets the position to the head).
    pub(crate) fn reader_position(&self, local: Position) -> Option<Position> {
        let subs = self.subscribers.lock().ok()?;
        if subs.is_empty() {
            self.following.store(false, Ordering::Release);
            return None;
        }
        Some(local.max(self.position.lock().map(|p| *p).unwrap_or_default()))
    }

    /// Subscribers connected to this node.
    pub fn len(&self) -> usize {
        self.subscribers.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start a subscription.
    pub async fn subscribe(
        self: &Arc<Self>,
        req: SubscriptionRequest,
    ) -> Result<Subscription, HubError> {
        let user = req.principal.id.map(|u| u.to_string());
        let (tx, rx) = mpsc::channel(QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let principal = Arc::new(RwLock::new(req.principal));
        let collections = Arc::new(RwLock::new(req.collections));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut head = None;
        let live_from = loop {
            // The reader is idle: the stream starts at the head, read before the lock
            // (an event committed meanwhile is past it, and the reader publishes it).
            if head.is_none() && !self.following.load(Ordering::Acquire) {
                head = Some(feed::head(&self.engine).await?);
            }
            let mut subs = self
                .subscribers
                .lock()
                .map_err(|_| HubError::TooMany("node"))?;
            if !self.following.load(Ordering::Acquire) {
                // It went idle after the check above: read the head again.
                let Some(h) = head.take() else { continue };
                self.set_position(h);
                self.following.store(true, Ordering::Release);
            }
            if let Some(u) = &user
                && subs.values().filter(|s| s.user.as_ref() == Some(u)).count() >= self.max_per_user
            {
                return Err(HubError::TooMany("user"));
            }
            if subs.values().filter(|s| s.ip == req.client_ip).count() >= self.max_per_ip {
                return Err(HubError::TooMany("address"));
            }
            subs.insert(
                id,
                Subscriber {
                    principal: principal.clone(),
                    collections: collections.clone(),
                    tx,
                    lagged: lagged.clone(),
                    user,
                    ip: req.client_ip,
                },
            );
            break self.position.lock().map(|p| *p).unwrap_or_default();
        };
        // The reader may be waiting idle: it catches up from the head now.
        self.engine.feed_wake().notify_one();
        if self.closed.load(Ordering::Acquire) {
            self.unsubscribe(id);
        }
        // Resume: from the cursor, unless it is older than what is kept.
        let mut reset_first = false;
        let replay_from = match req.since {
            None => None,
            Some(since) => match feed::oldest(&self.engine).await? {
                Some(oldest) if since < oldest && since != Position::default() => {
                    reset_first = true;
                    None
                }
                _ => Some(since),
            },
        };
        Ok(Subscription {
            hub: self.clone(),
            id,
            rx,
            lagged,
            principal,
            collections,
            replay: replay_from,
            last: replay_from.unwrap_or(live_from),
            floor: replay_from.unwrap_or(live_from),
            reset_first,
            pending: std::collections::VecDeque::new(),
        })
    }

    fn unsubscribe(&self, id: u64) {
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.remove(&id);
        }
    }

    /// Fan a batch of events out to the subscribers that may see them.
    pub async fn publish(&self, batch: Vec<FeedEvent>) {
        if let Some(last) = batch.last() {
            self.set_position(last.position);
        }
        for event in batch {
            let event = Arc::new(event);
            // Who wants this collection, and with which filters (snapshot, no await
            // under the lock).
            let interested: Vec<Interested> = {
                let Ok(subs) = self.subscribers.lock() else {
                    return;
                };
                subs.iter()
                    .filter_map(|(id, s)| {
                        let filter = s
                            .collections
                            .read()
                            .ok()?
                            .get(&event.envelope.collection)
                            .cloned()?;
                        Some((
                            *id,
                            s.principal.clone(),
                            filter,
                            s.tx.clone(),
                            s.lagged.clone(),
                        ))
                    })
                    .collect()
            };
            if interested.is_empty() {
                continue;
            }
            let filters: Vec<&Typed> = interested
                .iter()
                .filter_map(|(_, _, f, _, _)| f.as_deref())
                .collect();
            let record = event
                .envelope
                .data
                .clone()
                .or_else(|| event.envelope.previous.clone())
                .unwrap_or_default();
            let view = self
                .access
                .view(&event.envelope.collection, record, &filters)
                .await;
            let mut cut = Vec::new();
            for (id, principal, filter, tx, lagged) in interested {
                let Ok(p) = principal.read().map(|p| p.clone()) else {
                    continue;
                };
                if !self.access.may_read(&view, &p) {
                    continue;
                }
                if let Some(f) = &filter
                    && !self.access.matches(&view, f, &p)
                {
                    continue;
                }
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    tx.try_send(Message::Event(event.clone()))
                {
                    lagged.store(true, Ordering::Release);
                    cut.push(id);
                }
            }
            for id in cut {
                self.unsubscribe(id);
            }
        }
    }

    /// Whether one subscriber may see one event (the replay's check).
    async fn admits(
        &self,
        event: &FeedEvent,
        principal: &Principal,
        collections: &HashMap<String, Option<Arc<Typed>>>,
    ) -> bool {
        let Some(filter) = collections.get(&event.envelope.collection) else {
            return false;
        };
        let record = event
            .envelope
            .data
            .clone()
            .or_else(|| event.envelope.previous.clone())
            .unwrap_or_default();
        let extra: Vec<&Typed> = filter.as_deref().into_iter().collect();
        let view = self
            .access
            .view(&event.envelope.collection, record, &extra)
            .await;
        self.access.may_read(&view, principal)
            && filter
                .as_ref()
                .is_none_or(|f| self.access.matches(&view, f, principal))
    }

    /// Whether [`Hub::close`] ran: a stream that ends now ends for shutdown.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// End every subscription (shutdown): their streams finish.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.clear();
        }
    }
}

/// One subscriber's stream: the replay from its cursor, then the live events.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    rx: mpsc::Receiver<Message>,
    lagged: Arc<AtomicBool>,
    principal: Arc<RwLock<Principal>>,
    collections: Arc<RwLock<HashMap<String, Option<Arc<Typed>>>>>,
    /// Still replaying from this position.
    replay: Option<Position>,
    /// The last position sent, or covered by the replay: live events at or before it
    /// are duplicates.
    last: Position,
    /// How far the replay has read.
    floor: Position,
    reset_first: bool,
    pending: std::collections::VecDeque<Arc<FeedEvent>>,
}

impl Subscription {
    /// The next message; `None` when the stream ends (shutdown, or cut off after a
    /// `Reset`). Cancel-safe: dropping the future (e.g. in `select!` beside a
    /// WebSocket's reads) loses no event.
    pub async fn next(&mut self) -> Option<Message> {
        if std::mem::take(&mut self.reset_first) {
            return Some(Message::Reset);
        }
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.last = e.position;
                return Some(Message::Event(e));
            }
            let Some(from) = self.replay else { break };
            let page = match feed::read_after(&self.hub.engine, from, 200).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: replay failed");
                    self.replay = None;
                    return Some(Message::Reset);
                }
            };
            if page.is_empty() {
                self.replay = None;
                break;
            }
            let read_to = page.last().map(|e| e.position);
            let principal = self.principal();
            let collections = self
                .collections
                .read()
                .map(|c| c.clone())
                .unwrap_or_default();
            let mut admitted = Vec::new();
            for e in page {
                if self.hub.admits(&e, &principal, &collections).await {
                    admitted.push(Arc::new(e));
                }
            }
            // Only now, after the last await: a caller that drops this future mid-page
            // (`select!`) loses nothing, the page is read again.
            self.replay = read_to;
            if let Some(p) = read_to {
                self.floor = p;
            }
            self.pending.extend(admitted);
        }
        loop {
            match self.rx.recv().await {
                Some(Message::Event(e)) if e.position <= self.last.max(self.floor) => continue,
                Some(Message::Event(e)) => {
                    self.last = e.position;
                    return Some(Message::Event(e));
                }
                Some(Message::Reset) => return Some(Message::Reset),
                None if self.lagged.swap(false, Ordering::AcqRel) => return Some(Message::Reset),
                None => return None,
            }
        }
    }

    /// Where the live stream is now: the cursor a client continues from after a
    /// `reset` (it refetches, then follows from here).
    pub fn live_cursor(&self) -> String {
        self.hub
            .position
            .lock()
            .map(|p| *p)
            .unwrap_or_default()
            .to_cursor()
    }

    /// The cursor of the last event sent.
    pub fn cursor(&self) -> String {
        self.last.to_cursor()
    }

    /// Whom the subscription reads as.
    pub fn principal(&self) -> Principal {
        self.principal.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// A fresh identity on a long-lived connection (a new access token).
    pub fn set_principal(&self, p: Principal) {
        if let Ok(mut cur) = self.principal.write() {
            *cur = p;
        }
    }

    /// Add or replace one collection's subscription (WebSocket `subscribe`).
    pub fn subscribe(&self, collection: String, filter: Option<Arc<Typed>>) {
        if let Ok(mut c) = self.collections.write() {
            c.insert(collection, filter);
        }
    }

    /// Stop following a collection (WebSocket `unsubscribe`).
    pub fn unsubscribe(&self, collection: &str) {
        if let Ok(mut c) = self.collections.write() {
            c.remove(collection);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}

//! The outbox read as a stream, once per node: woken by this node's commits and by
//! other nodes' (PostgreSQL `NOTIFY`), with a slow poll as the fallback, it reads the
//! events after its position in stream order and hands them to the hub. The same
//! reads serve a subscriber's replay from its cursor.

use crate::hub::Hub;
use keel_core::Engine;
use keel_events::Envelope;
use keel_spec::Storage;
use keel_store::StoreError;
use keel_store::events::{self, Position};
use serde_json::{Map, Value as Json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One event of the feed: its position (the subscriber's cursor) and its envelope,
/// records opened as a GET shows them (encrypted fields readable; hidden ones never
/// stored in the outbox).
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub position: Position,
    pub envelope: Envelope,
    /// The envelope as JSON, serialized once for every subscriber it goes to.
    json: std::sync::OnceLock<String>,
}

impl FeedEvent {
    pub fn new(position: Position, envelope: Envelope) -> Self {
        Self {
            position,
            envelope,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The envelope as JSON (what SSE's `data:` and a WebSocket's `event` carry).
    pub fn envelope_json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.envelope).unwrap_or_default())
    }
}

/// Read up to `limit` events after `after`, in stream order.
pub async fn read_after(
    engine: &Engine,
    after: Position,
    limit: i64,
) -> Result<Vec<FeedEvent>, StoreError> {
    let rows = engine.store().read_feed(after, limit).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| event_of(engine, row))
        .collect())
}

fn event_of(engine: &Engine, row: Vec<Json>) -> Option<FeedEvent> {
    let position = Position {
        tx: row[0].as_i64()?,
        seq: row[1].as_i64()?,
    };
    let collection = row[4].as_str()?.to_string();
    let record = |v: &Json| -> Option<Map<String, Json>> {
        match v
            .as_str()
            .and_then(|s| serde_json::from_str::<Json>(s).ok())?
        {
            Json::Object(m) => Some(engine.open_record(&collection, m)),
            _ => None,
        }
    };
    Some(FeedEvent::new(
        position,
        Envelope {
            id: uuid::Uuid::parse_str(row[2].as_str()?).ok()?,
            kind: row[3].as_str()?.to_string(),
            record_id: uuid::Uuid::parse_str(row[5].as_str()?).ok()?,
            actor: row[6].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()),
            data: record(&row[7]),
            previous: record(&row[8]),
            occurred_at: row[9].as_str()?.to_string(),
            collection,
        },
    ))
}

/// The newest settled position (where a live-only subscriber starts).
pub async fn head(engine: &Engine) -> Result<Position, StoreError> {
    position_of(engine, events::feed_head(engine.store().dialect())).await
}

/// The oldest position still kept, if any event is.
pub async fn oldest(engine: &Engine) -> Result<Option<Position>, StoreError> {
    let store = engine.store();
    let rows = store
        .query(
            &events::feed_oldest(store.dialect()),
            &[Storage::Int, Storage::Int],
        )
        .await?;
    Ok(rows.first().and_then(|r| {
        Some(Position {
            tx: r[0].as_i64()?,
            seq: r[1].as_i64()?,
        })
    }))
}

async fn position_of(engine: &Engine, stmt: keel_store::Stmt) -> Result<Position, StoreError> {
    let rows = engine
        .store()
        .query(&stmt, &[Storage::Int, Storage::Int])
        .await?;
    Ok(rows
        .first()
        .and_then(|r| {
            Some(Position {
                tx: r[0].as_i64()?,
                seq: r[1].as_i64()?,
            })
        })
        .unwrap_or_default())
}

/// The node's one reader of the outbox.
pub struct FeedReader {
    engine: Arc<Engine>,
    hub: Arc<Hub>,
    /// Poll at least this often (another node's commit when NOTIFY is lost).
    pub poll: Duration,
}

impl FeedReader {
    pub fn new(engine: Arc<Engine>, hub: Arc<Hub>) -> Self {
        Self {
            engine,
            hub,
            poll: Duration::from_secs(1),
        }
    }

    /// Read and publish until `shutdown` resolves; then close every subscription.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let wake = self.engine.feed_wake();
        let listener = self
            .engine
            .store()
            .listen(events::NOTIFY_CHANNEL, wake.clone());
        let mut position = Position::default();
        loop {
            // Only while someone subscribes: the first subscriber sets the head.
            if let Some(from) = self.hub.reader_position(position) {
                position = from;
                loop {
                    match read_after(&self.engine, position, 500).await {
                        Ok(batch) if batch.is_empty() => break,
                        Ok(batch) => {
                            if let Some(last) = batch.last() {
                                position = last.position;
                            }
                            self.hub.publish(batch).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "realtime: cannot read the feed");
                            break;
                        }
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        if let Some(l) = listener {
            l.abort();
        }
        self.hub.close();
    }
}

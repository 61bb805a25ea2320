//! Delivery outcomes written to the store many per transaction: each finished attempt
//! hands its statements to one writer task and waits for their commit, and the
//! attempts that finish while a commit is under way share the next one. A drain then
//! costs one transaction per batch instead of one per delivery, and per-record order
//! still holds: a record's next delivery is leased only once this one's outcome has
//! committed (it is pending until then).
//!
//! On SQLite the writer also stores the relay's position (see `fresh`): a first
//! attempt's row counts as written once its transaction commits, and the position
//! moves with the next transaction (or one of its own when none follows soon).

use crate::fresh::{FreshOutcome, Heads, lock};
use keel_store::{Stmt, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// At most this many outcomes in one transaction.
const MAX_BATCH: usize = 256;

/// How long the position a batch's rows allow waits to ride with the next batch
/// before it is written alone: under a stream of deliveries it always rides (one
/// writer transaction per batch, not two); a crash meanwhile costs the restart a
/// look at each delivered event's row, never a delivery.
const POSITION_LINGER: Duration = Duration::from_millis(100);

/// The outcome of one attempt, as statements, and who waits for their commit.
struct Entry {
    stmts: Vec<Stmt>,
    /// The first attempt these statements write, if fresh.
    fresh: Option<FreshOutcome>,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// The writer's handle: cheap to clone, one per relay run.
#[derive(Clone)]
pub(crate) struct OutcomeWriter {
    queue: mpsc::UnboundedSender<Entry>,
}

impl OutcomeWriter {
    /// Start the writer over `store`, storing the position of `heads` if given; it
    /// runs until every handle is dropped and the queue is written.
    pub(crate) fn spawn(store: Store, heads: Option<Arc<Mutex<Heads>>>) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, heads, rx));
        (Self { queue }, task)
    }

    /// Whether the writer has stopped (the relay is shutting down).
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Write `stmts` in one of the next transactions, and wait for its commit; `fresh`
    /// names the first attempt they settle.
    pub(crate) async fn write(
        &self,
        stmts: Vec<Stmt>,
        fresh: Option<FreshOutcome>,
    ) -> Result<(), Arc<StoreError>> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Entry { stmts, fresh, done })
            .map_err(|_| Arc::new(StoreError::Other("the relay is stopping".into())))?;
        committed
            .await
            .unwrap_or_else(|_| Err(Arc::new(StoreError::Other("the relay stopped".into()))))
    }
}

async fn run(
    store: Store,
    heads: Option<Arc<Mutex<Heads>>>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // A batch just committed: the position its rows allow is still to be stored.
    let mut carry = false;
    loop {
        let received = match &heads {
            Some(h) if carry => {
                match tokio::time::timeout(POSITION_LINGER, rx.recv_many(&mut batch, MAX_BATCH))
                    .await
                {
                    Ok(n) => n,
                    Err(_) => {
                        carry = false;
                        store_position(&store, h).await;
                        continue;
                    }
                }
            }
            _ => rx.recv_many(&mut batch, MAX_BATCH).await,
        };
        if received == 0 {
            if let Some(h) = &heads {
                store_position(&store, h).await;
            }
            return;
        }
        let position = heads.as_deref().and_then(|h| {
            let mut heads = lock(h);
            // Before the commit: once a pending row is visible, the walk must
            // already know to look for it.
            for f in batch.iter().filter_map(|e| e.fresh.as_ref()) {
                if f.pending {
                    heads.made_rows(&f.destination);
                }
            }
            heads.position_update()
        });
        let result = commit(&store, &batch, position.as_ref().map(|(_, s)| s))
            .await
            .map_err(Arc::new);
        if let (Some(heads), Ok(())) = (&heads, &result) {
            let mut heads = lock(heads);
            for f in batch.iter().filter_map(|e| e.fresh.as_ref()) {
                heads.settled(&f.destination, f.seq);
            }
            if let Some((seq, _)) = position {
                heads.wrote(seq);
            }
        }
        for entry in batch.drain(..) {
            let _ = entry.done.send(result.clone());
        }
        carry = true;
    }
}

/// Store the position the committed rows allow, if it moved: a restart then walks
/// from there instead of asking the store about each event it passes.
async fn store_position(store: &Store, heads: &Mutex<Heads>) {
    let update = lock(heads).position_update();
    if let Some((seq, stmt)) = update {
        match commit(store, &[], Some(&stmt)).await {
            Ok(()) => lock(heads).wrote(seq),
            Err(e) => tracing::warn!(error = %e, "events: cannot store the relay's position"),
        }
    }
}

async fn commit(store: &Store, batch: &[Entry], position: Option<&Stmt>) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    relaxed(&mut tx).await?;
    for stmt in batch.iter().flat_map(|e| &e.stmts).chain(position) {
        tx.execute(stmt).await?;
    }
    tx.commit().await
}

/// The relay's own transactions (leases, outcomes) need not wait for an fsync on
/// PostgreSQL: if one is lost in a crash, the delivery is simply made again under
/// the same event id, which at-least-once already allows. The events themselves
/// are written durably with the change.
pub(crate) async fn relaxed(tx: &mut keel_store::Tx<'_>) -> Result<(), StoreError> {
    if tx.dialect() == keel_store::Dialect::Postgres {
        tx.execute(&Stmt::new("SET LOCAL synchronous_commit TO OFF", vec![]))
            .await?;
    }
    Ok(())
}

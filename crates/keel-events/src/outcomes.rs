//! Delivery outcomes written to the store many per transaction: each finished attempt
//! hands its statements to one writer task and waits for their commit, and the
//! attempts that finish while a commit is under way share the next one. A drain then
//! costs one transaction per batch instead of one per delivery, and per-record order
//! still holds: a record's next delivery is leased only once this one's outcome has
//! committed (it is pending until then).

use keel_store::{Stmt, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// At most this many outcomes in one transaction.
const MAX_BATCH: usize = 256;

/// The outcome of one attempt, as statements, and who waits for their commit.
struct Entry {
    stmts: Vec<Stmt>,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// The writer's handle: cheap to clone, one per relay run.
#[derive(Clone)]
pub(crate) struct OutcomeWriter {
    queue: mpsc::UnboundedSender<Entry>,
}

impl OutcomeWriter {
    /// Start the writer over `store`; it runs until every handle is dropped and the
    /// queue is written.
    pub(crate) fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, rx));
        (Self { queue }, task)
    }

    /// Write `stmts` in one of the next transactions, and wait for its commit.
    pub(crate) async fn write(&self, stmts: Vec<Stmt>) -> Result<(), Arc<StoreError>> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Entry { stmts, done })
            .map_err(|_| Arc::new(StoreError::Other("the relay is stopping".into())))?;
        committed
            .await
            .unwrap_or_else(|_| Err(Arc::new(StoreError::Other("the relay stopped".into()))))
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Entry>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = commit(&store, &batch).await.map_err(Arc::new);
        for entry in batch.drain(..) {
            let _ = entry.done.send(result.clone());
        }
    }
}

async fn commit(store: &Store, batch: &[Entry]) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    relaxed(&mut tx).await?;
    for stmt in batch.iter().flat_map(|e| &e.stmts) {
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

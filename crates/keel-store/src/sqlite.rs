//! SQLite: one writer connection (SQLite allows one writer at a time anyway) and a
//! small pool of readers, all in WAL mode. Statements run inline on the calling task
//! with cached prepared statements: a local SQLite query takes microseconds, less
//! than a hop to another thread would.

use crate::bind::SqliteParam;
use crate::rows::{RowSink, Values};
use crate::{Row, Stmt, StoreError};
use keel_spec::Storage;
use rusqlite::{Connection, OpenFlags};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

/// At most this many transactions share one commit.
const MAX_GROUP: usize = 128;

/// A group of transactions committed together; its outcome, once known.
#[derive(Default)]
pub(crate) struct Group {
    outcome: OnceLock<Result<(), String>>,
    /// Woken when the outcome is set, so members wait without taking the writer.
    settled: tokio::sync::Notify,
}

impl Group {
    pub(crate) fn outcome(&self) -> Option<Result<(), StoreError>> {
        self.outcome
            .get()
            .map(|r| r.clone().map_err(StoreError::Other))
    }
}

/// The writer connection and the group open on it, if any.
pub struct WriterConn {
    pub(crate) conn: Connection,
    group: Option<Arc<Group>>,
    /// Transactions finished (released) inside the open group.
    members: usize,
    pub(crate) stats: WriteStats,
}

/// Counts since the store opened: how many transactions shared how many commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub transactions: u64,
    pub commits: u64,
}

impl WriterConn {
    /// Start a transaction: a savepoint in the open group, opening one if needed.
    pub(crate) fn begin(&mut self) -> Result<Arc<Group>, StoreError> {
        let group = match &self.group {
            Some(g) => g.clone(),
            None => {
                self.conn.execute_batch("BEGIN IMMEDIATE")?;
                let g = Arc::new(Group::default());
                self.group = Some(g.clone());
                self.members = 0;
                g
            }
        };
        if let Err(e) = self.conn.execute_batch("SAVEPOINT keel_tx") {
            self.abandon_if_empty();
            return Err(e.into());
        }
        Ok(group)
    }

    /// Finish a transaction's savepoint; `Ok(true)` when the caller should commit the
    /// group now rather than leave it to the writers queued behind it.
    pub(crate) fn release(&mut self, waiting: usize) -> Result<bool, StoreError> {
        if let Err(e) = self.conn.execute_batch("RELEASE keel_tx") {
            self.undo();
            return Err(e.into());
        }
        self.members += 1;
        self.stats.transactions += 1;
        Ok(waiting == 0 || self.members >= MAX_GROUP)
    }

    /// Undo a transaction's savepoint, keeping the rest of its group.
    pub(crate) fn undo(&mut self) {
        let _ = self
            .conn
            .execute_batch("ROLLBACK TO keel_tx; RELEASE keel_tx");
        if self.conn.is_autocommit() {
            // SQLite rolled the whole group back (e.g. an I/O error).
            self.settle(Err("the transaction group was rolled back".into()));
        } else {
            self.abandon_if_empty();
        }
    }

    /// A group nobody has finished into holds the write lock for nothing: end it.
    fn abandon_if_empty(&mut self) {
        if self.members == 0 && self.group.is_some() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.settle(Ok(()));
        }
    }

    /// Commit the open group (if any) and tell its members.
    pub(crate) fn commit_group(&mut self) -> Result<(), StoreError> {
        if self.group.is_none() {
            return Ok(());
        }
        // The commit waits for an fsync: on a multi-threaded runtime, let the other
        // tasks of this worker move elsewhere meanwhile instead of stalling behind it.
        let commit = || self.conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(commit),
            _ => commit(),
        };
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if result.is_ok() {
            self.stats.commits += 1;
        }
        self.settle(result.clone());
        result.map_err(StoreError::Other)
    }

    fn settle(&mut self, result: Result<(), String>) {
        if let Some(g) = self.group.take() {
            let _ = g.outcome.set(result);
            g.settled.notify_waiters();
        }
        self.members = 0;
    }
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub enum Location {
    File(std::path::PathBuf),
    /// A private in-memory database, shared by this store's connections.
    Memory(String),
}

pub struct SqliteDb {
    pub(crate) writer: tokio::sync::Mutex<WriterConn>,
    /// Transactions waiting for the writer: while there are some, a finished one
    /// leaves the group open for them to commit.
    pub(crate) arrivals: AtomicUsize,
    /// Idle readers. Invariant: the semaphore's permits never outnumber them, so
    /// a permit always finds a connection here.
    readers: Mutex<Vec<Reader>>,
    available: Semaphore,
    /// Bumped when the writer refreshed the planner statistics: a reader that saw an
    /// older one reloads them before its next statement.
    statistics: AtomicU64,
    /// Where a reader lost to a panic is opened again.
    location: Location,
}

/// An idle reader and the statistics epoch its planner has loaded.
struct Reader {
    conn: Connection,
    statistics: u64,
}

/// Reader connections: statements run inline on the runtime's workers, so one per
/// worker (and one spare for blocking threads) is all that can be busy at once; more
/// only spreads the page cache thinner.
fn readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)) + 1
}

/// How long a statement waits for another connection's lock (any process's).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn open(loc: &Location) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = match loc {
        Location::File(path) => Connection::open_with_flags(path, flags)?,
        Location::Memory(name) => {
            Connection::open_with_flags(format!("file:{name}?mode=memory&cache=shared"), flags)?
        }
    };
    // The busy handler comes first, before any statement touches the file.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Switching a fresh file to WAL writes its header under a read lock it already
    // holds; SQLite then answers SQLITE_BUSY at once, without calling the busy
    // handler, when another connection (another process starting) got there first.
    // So the switch is retried here, for as long as the busy handler would wait.
    let mode = retry_busy(|| {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
    })?;
    if matches!(loc, Location::File(_)) && !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            mode,
            "SQLite kept its journal mode instead of WAL: readers will wait for writers"
        );
    }
    // synchronous = FULL: a commit is on disk (the WAL fsynced) before anyone is told
    // it happened, so an acknowledged write survives a power cut, not only a crash of
    // Keel. Group commit pays that fsync once per group of writers, not per write.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    // One plan per statement, whatever values are bound. Without it (SQLite built with
    // STAT4, as bundled), rebinding a value compared with an indexed column expires the
    // statement and the next step parses and plans it again: every list paid a full
    // prepare despite the statement cache (a third of a rule-filtered list's time).
    // Keel binds every value, so value-dependent plans would never be reused anyway.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // 4 MB of page cache per connection: the OS page cache holds the file anyway;
    // 16 MB each put the process over 100 MB under load and served gets no faster.
    conn.execute_batch("PRAGMA cache_size = -4000;")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

impl SqliteDb {
    pub fn open(loc: &Location) -> Result<Self, StoreError> {
        if let Location::File(path) = loc
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        let writer = open(loc)?;
        let n = readers();
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let r = open(loc)?;
            readers.push(Reader {
                conn: r,
                statistics: 0,
            });
        }
        Ok(Self {
            writer: tokio::sync::Mutex::new(WriterConn {
                conn: writer,
                group: None,
                members: 0,
                stats: WriteStats::default(),
            }),
            arrivals: AtomicUsize::new(0),
            readers: Mutex::new(readers),
            available: Semaphore::new(n),
            statistics: AtomicU64::new(0),
            location: loc.clone(),
        })
    }

    /// The writer, once the transactions ahead have begun; counted as waiting so
    /// the one holding it leaves its group open for this one.
    pub(crate) async fn writer(&self) -> tokio::sync::MutexGuard<'_, WriterConn> {
        struct Arrival<'a>(&'a AtomicUsize);
        impl Drop for Arrival<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.arrivals.fetch_add(1, Ordering::SeqCst);
        let _arrival = Arrival(&self.arrivals);
        self.writer.lock().await
    }

    /// The writer with no group open: for statements that must run outside a
    /// transaction (PRAGMAs) or alone (DDL at start-up).
    pub(crate) async fn writer_alone(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, WriterConn>, StoreError> {
        let mut w = self.writer.lock().await;
        w.commit_group()?;
        Ok(w)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.arrivals.load(Ordering::SeqCst)
    }

    /// Wait for `group` to be committed: by a later member, or by this task if the
    /// members queued behind it went away. Runs as its own task so a caller that
    /// stops waiting cannot leave the group uncommitted.
    pub(crate) async fn settle(self: Arc<Self>, group: Arc<Group>) -> Result<(), StoreError> {
        let task = tokio::spawn(async move {
            let unknown = || Err(StoreError::Other("group not committed".into()));
            let settled = group.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if let Some(done) = group.outcome() {
                return done;
            }
            // Usually a later member commits the group and the notice comes first; the
            // writer is taken (behind everyone queued) only if they all went away.
            tokio::select! {
                biased;
                () = &mut settled => group.outcome().unwrap_or_else(unknown),
                mut w = self.writer.lock() => match group.outcome() {
                    Some(done) => done,
                    None => {
                        w.commit_group()?;
                        group.outcome().unwrap_or_else(unknown)
                    }
                },
            }
        });
        task.await
            .map_err(|e| StoreError::Other(format!("commit task failed: {e}")))?
    }

    /// Run `f` on a reader connection. A panic in `f` comes back as
    /// [`StoreError::Panicked`]; the connection returns to the pool (or a fresh one
    /// takes its place), so the pool keeps its size.
    pub async fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let permit = self
            .available
            .acquire()
            .await
            .map_err(|_| StoreError::Other("store closed".into()))?;
        let Reader {
            conn,
            mut statistics,
        } = self
            .idle()
            .pop()
            .ok_or_else(|| StoreError::Other("no reader available".into()))?;
        let current = self.statistics.load(Ordering::Acquire);
        if statistics != current && conn.execute_batch("ANALYZE sqlite_schema;").is_ok() {
            conn.flush_prepared_statement_cache();
            statistics = current;
        }
        // Nothing between the pop and the push awaits, so only a panic can keep the
        // connection from coming back.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&conn))) {
            Ok(result) => {
                self.idle().push(Reader { conn, statistics });
                result
            }
            Err(panic) => {
                match self.recover(conn) {
                    // A fresh connection loads the statistics as it opens.
                    Some(conn) => self.idle().push(Reader { conn, statistics }),
                    // No connection to give back: the permit goes with it.
                    None => permit.forget(),
                }
                Err(StoreError::Panicked(panic_message(panic.as_ref())))
            }
        }
    }

    /// Every reader loads the planner statistics the writer just refreshed (SQLite
    /// reloads them only on the connection that ran `ANALYZE`), and forgets the plans
    /// it cached, before its next statement.
    pub(crate) fn reload_statistics(&self) {
        self.statistics.fetch_add(1, Ordering::AcqRel);
    }

    /// The idle readers. The lock is never held while a caller's code runs, so a
    /// poisoned lock (impossible today) would still guard a consistent list.
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Reader>> {
        self.readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A reader whose closure panicked, fit to use again. Its statements were reset
    /// as they unwound; a transaction it left open is rolled back; failing that, a
    /// fresh connection replaces it.
    fn recover(&self, conn: Connection) -> Option<Connection> {
        if conn.is_autocommit() {
            return Some(conn);
        }
        if conn.execute_batch("ROLLBACK").is_ok() && conn.is_autocommit() {
            return Some(conn);
        }
        drop(conn);
        match open(&self.location) {
            Ok(fresh) => Some(fresh),
            Err(e) => {
                tracing::error!(error = %e, "cannot replace a SQLite reader lost to a panic");
                None
            }
        }
    }

    #[cfg(test)]
    fn idle_readers(&self) -> (usize, usize) {
        (self.idle().len(), self.available.available_permits())
    }
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Run `f` again while SQLite answers busy (a lock held by another connection), for
/// up to [`BUSY_TIMEOUT`]: for the statements during which SQLite does not call the
/// busy handler itself.
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T, StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// Run a query and decode each row by the given storage classes.
pub fn query(conn: &Connection, stmt: &Stmt, columns: &[Storage]) -> Result<Vec<Row>, StoreError> {
    let mut values = Values::new(columns);
    query_into(conn, stmt, &mut values)?;
    Ok(values.rows)
}

/// Run a query and hand each row to `sink`.
pub fn query_into(
    conn: &Connection,
    stmt: &Stmt,
    sink: &mut dyn RowSink,
) -> Result<(), StoreError> {
    let mut prepared = conn.prepare_cached(&stmt.sql)?;
    let params: Vec<SqliteParam<'_>> = stmt.values.iter().map(SqliteParam).collect();
    let mut rows = prepared.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        sink.sqlite(row)?;
    }
    Ok(())
}

/// Run a statement; the number of rows it changed.
pub fn execute(conn: &Connection, stmt: &Stmt) -> Result<u64, StoreError> {
    let mut prepared = conn.prepare_cached(&stmt.sql)?;
    let params: Vec<SqliteParam<'_>> = stmt.values.iter().map(SqliteParam).collect();
    Ok(prepared.execute(rusqlite::params_from_iter(params.iter()))? as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn memory() -> SqliteDb {
        SqliteDb::open(&Location::Memory(format!(
            "keel-test-{}",
            uuid::Uuid::now_v7().simple()
        )))
        .unwrap()
    }

    fn count(conn: &Connection) -> Result<i64, StoreError> {
        Ok(conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?)
    }

    #[tokio::test]
    async fn a_panicking_reader_closure_keeps_the_pool_whole() {
        let db = memory();
        let n = readers();
        assert_eq!(db.idle_readers(), (n, n));
        // More panics than readers: a lost connection would empty the pool.
        for i in 0..2 * n {
            let err = db
                .read(|_| -> Result<(), StoreError> { panic!("closure {i} broke") })
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Panicked(m) if m == &format!("closure {i} broke")),
                "{err:?}"
            );
            assert_eq!(db.idle_readers(), (n, n));
        }
        // Every reader still answers, all at once.
        let all = read_all_at_once(&db, n).await;
        assert!(all.iter().all(|r| *r == Ok(0)), "{all:?}");
    }

    #[tokio::test]
    async fn a_reader_left_inside_a_transaction_comes_back_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&Location::File(dir.path().join("r.db"))).unwrap();
        let n = readers();
        for _ in 0..n {
            let err = db
                .read(|c| -> Result<(), StoreError> {
                    c.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")?;
                    panic!("inside a transaction")
                })
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Panicked(_)), "{err:?}");
        }
        assert_eq!(db.idle_readers(), (n, n));
        for _ in 0..n {
            assert!(db.read(|c| Ok(c.is_autocommit())).await.unwrap());
        }
        // An open read transaction would pin the WAL; the writer checkpoints freely.
        let w = db.writer_alone().await.unwrap();
        w.conn.execute_batch("CREATE TABLE t (x)").unwrap();
        let (busy, _, _): (i64, i64, i64) = w
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(busy, 0);
    }

    /// `n` reads holding their connections at the same time.
    async fn read_all_at_once(db: &SqliteDb, n: usize) -> Vec<Result<i64, String>> {
        let barrier = std::sync::Barrier::new(n);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap()
                            .block_on(db.read(|c| {
                                barrier.wait();
                                count(c)
                            }))
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }
}

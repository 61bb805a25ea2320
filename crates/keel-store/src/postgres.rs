//! PostgreSQL through a deadpool pool of tokio-postgres clients, with each client's
//! prepared statements cached.

use crate::bind::PgParam;
use crate::rows::{RowSink, Values};
use crate::{Row, Stmt, StoreError};
use keel_spec::Storage;

pub fn pool(url: &str) -> Result<deadpool_postgres::Pool, StoreError> {
    let size = std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 4)
        .max(8);
    pool_with(config(url)?, size)
}

/// Connections shared by reads outside transactions, per store (see `pipelined`):
/// two keep both cores' backends busy, each pipelining many callers.
pub const PIPELINED_CONNECTIONS: usize = 2;

/// `config` with Keel's session options added to those the URL gives.
pub fn with_options(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    // No JIT: Keel's statements are short lookups and index walks, and a cost estimate
    // past `jit_above_cost` (a lease over a table analyzed while small) compiled
    // expressions for 12–200 ms to save microseconds. Options the URL gives are kept.
    let options = match config.get_options() {
        Some(given) if !given.is_empty() => format!("{given} -c jit=off"),
        _ => "-c jit=off".to_string(),
    };
    config.options(&options);
    config
}

/// A pool of at most `size` connections with `config`'s settings.
pub fn pool_with(
    config: tokio_postgres::Config,
    size: usize,
) -> Result<deadpool_postgres::Pool, StoreError> {
    let config = with_options(config);
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Pool(e.to_string()))
}

/// The connection settings of a `postgres://` URL.
pub fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    url.parse().map_err(|_| StoreError::InvalidUrl(redact(url)))
}

/// `LISTEN channel` on a connection of its own, notifying `wake` on every NOTIFY;
/// reconnects (with backoff, up to 5 s) when the connection is lost, and notifies
/// once on each reconnect so nothing sent while it was away waits for a poll.
pub fn listen(
    config: tokio_postgres::Config,
    channel: String,
    wake: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            match config.connect(tokio_postgres::NoTls).await {
                Ok((client, mut conn)) => {
                    let driver = tokio::spawn({
                        let wake = wake.clone();
                        async move {
                            while let Some(message) =
                                std::future::poll_fn(|cx| conn.poll_message(cx)).await
                            {
                                match message {
                                    Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                                        wake.notify_one()
                                    }
                                    Ok(_) => {}
                                    Err(_) => break,
                                }
                            }
                        }
                    });
                    if client
                        .batch_execute(&format!("LISTEN {channel}"))
                        .await
                        .is_ok()
                    {
                        backoff = std::time::Duration::from_millis(100);
                        wake.notify_one();
                        // Runs until the connection ends; the client must live as long.
                        let _ = driver.await;
                        drop(client);
                    } else {
                        driver.abort();
                    }
                    tracing::warn!(channel = %channel, "LISTEN connection lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, channel = %channel, "cannot LISTEN; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
    })
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub async fn query(
    client: &deadpool_postgres::Object,
    stmt: &Stmt,
    columns: &[Storage],
) -> Result<Vec<Row>, StoreError> {
    let mut values = Values::new(columns);
    query_into(client, stmt, &mut values).await?;
    Ok(values.rows)
}

/// Run a query and hand each row to `sink`.
pub async fn query_into(
    client: &deadpool_postgres::Object,
    stmt: &Stmt,
    sink: &mut dyn RowSink,
) -> Result<(), StoreError> {
    let prepared = client.prepare_cached(&stmt.sql).await?;
    for row in &rows(client, &prepared, stmt).await? {
        sink.postgres(row)?;
    }
    Ok(())
}

/// `stmt`'s rows, run as `prepared` (its SQL prepared on `client`) with its values.
pub async fn rows(
    client: &tokio_postgres::Client,
    prepared: &tokio_postgres::Statement,
    stmt: &Stmt,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let params: Vec<PgParam<'_>> = stmt.values.iter().map(PgParam).collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    Ok(client.query(prepared, &refs).await?)
}

pub async fn execute(client: &deadpool_postgres::Object, stmt: &Stmt) -> Result<u64, StoreError> {
    let prepared = client.prepare_cached(&stmt.sql).await?;
    let params: Vec<PgParam<'_>> = stmt.values.iter().map(PgParam).collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    Ok(client.execute(&prepared, &refs).await?)
}

//! Storage errors, with constraint violations lifted out so the core can answer
//! 409/422 instead of 500.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated on {columns:?}")]
    Unique {
        /// Columns named by the database, when it names them (SQLite does).
        columns: Vec<String>,
        /// Constraint name, when the database gives it (PostgreSQL does).
        constraint: Option<String>,
    },
    #[error("a referenced record does not exist, or is still referenced")]
    ForeignKey,
    #[error("the migration plan has destructive steps; rerun with --allow-destructive")]
    Destructive(crate::migrate::Plan),
    #[error("invalid database URL `{0}`: use sqlite://FILE, sqlite::memory: or postgres://…")]
    InvalidUrl(String),
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    #[error("postgres: {}", pg_message(.0))]
    Postgres(tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(String),
    #[error("could not decode column `{column}`: {message}")]
    Decode { column: String, message: String },
    /// Code run on a connection panicked; the connection was kept (or replaced).
    #[error("a database call panicked: {0}")]
    Panicked(String),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// Whether the database could not be reached (a connection refused, closed or
    /// shut down; no pooled connection to be had), as opposed to a statement it
    /// refused: the request may succeed later, so the edge answers 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Postgres(e) => match e.as_db_error() {
                // Class 08: connection exception; 57P01-57P03: the server is
                // shutting down or not yet accepting connections.
                Some(db) => {
                    let code = db.code().code();
                    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
                }
                None => true,
            },
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, msg) = &e {
            match code.extended_code {
                // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
                2067 | 1555 => {
                    let columns = msg
                        .as_deref()
                        .and_then(|m| m.split_once("failed: "))
                        .map(|(_, cols)| {
                            cols.split(", ")
                                .map(|c| c.rsplit('.').next().unwrap_or(c).to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    return StoreError::Unique {
                        columns,
                        constraint: None,
                    };
                }
                // SQLITE_CONSTRAINT_FOREIGNKEY
                787 => return StoreError::ForeignKey,
                _ if code.code == rusqlite::ErrorCode::ConstraintViolation
                    && msg.as_deref().is_some_and(|m| m.contains("FOREIGN KEY")) =>
                {
                    return StoreError::ForeignKey;
                }
                _ => {}
            }
        }
        StoreError::Sqlite(e)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            use tokio_postgres::error::SqlState;
            if *db.code() == SqlState::UNIQUE_VIOLATION {
                return StoreError::Unique {
                    columns: Vec::new(),
                    constraint: db.constraint().map(str::to_string),
                };
            }
            if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
                return StoreError::ForeignKey;
            }
        }
        StoreError::Postgres(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

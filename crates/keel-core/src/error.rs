//! What an operation can answer besides success. Knows nothing of HTTP: the HTTP edge
//! maps each variant to a status and a problem+json `type` in one exhaustive match.

use keel_store::StoreError;

/// One failing field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Why an operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("no collection named `{0}`")]
    UnknownCollection(String),
    #[error("no record `{id}` in `{collection}`")]
    NotFound { collection: String, id: String },
    /// The rules deny the operation. `anonymous` tells 401 (log in) from 403.
    #[error("{message}")]
    Denied { anonymous: bool, message: String },
    /// A request parameter (filter, sort, cursor, limit, fields, expand) is malformed.
    #[error("invalid `{param}`: {message}")]
    BadParam {
        param: &'static str,
        message: String,
        /// Byte offset in the parameter, for filters.
        position: Option<usize>,
    },
    #[error("the request body is invalid")]
    Validation(Vec<FieldError>),
    /// A unique key is taken, a ref points at nothing, or a record is still referenced.
    #[error("{message}")]
    Conflict {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("the record changed: its version is {current}, not the one in If-Match")]
    StaleVersion { current: i64 },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

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

/// The stable code of every failure any surface can answer with. REST maps it to a
/// status and a problem `type` (`/docs/errors#<slug>`), GraphQL to `extensions.code`:
/// one list, so a code cannot be misspelt on one surface and right on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MalformedRequest,
    InvalidParameter,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Timeout,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Validation,
    IdempotencyKeyReused,
    RateLimited,
    Internal,
    BadGateway,
    Unavailable,
}

impl ErrorCode {
    /// Every code, in the order of the public error table.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::MalformedRequest,
        ErrorCode::InvalidParameter,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Timeout,
        ErrorCode::Conflict,
        ErrorCode::PreconditionFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Validation,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::BadGateway,
        ErrorCode::Unavailable,
    ];

    /// The slug clients match on: the fragment of the problem `type`, GraphQL's
    /// `extensions.code`.
    pub const fn slug(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed-request",
            ErrorCode::InvalidParameter => "invalid-parameter",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not-found",
            ErrorCode::MethodNotAllowed => "method-not-allowed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition-failed",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::UnsupportedMediaType => "unsupported-media-type",
            ErrorCode::Validation => "validation",
            ErrorCode::IdempotencyKeyReused => "idempotency-key-reused",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Internal => "internal",
            ErrorCode::BadGateway => "bad-gateway",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl CoreError {
    /// The stable code of this error, for every surface.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::UnknownCollection(_) | CoreError::NotFound { .. } => ErrorCode::NotFound,
            CoreError::Denied {
                anonymous: true, ..
            } => ErrorCode::Unauthorized,
            CoreError::Denied { .. } => ErrorCode::Forbidden,
            CoreError::BadParam { .. } => ErrorCode::InvalidParameter,
            CoreError::Validation(_) => ErrorCode::Validation,
            CoreError::Conflict { .. } => ErrorCode::Conflict,
            CoreError::StaleVersion { .. } => ErrorCode::PreconditionFailed,
            CoreError::IdempotencyMismatch => ErrorCode::IdempotencyKeyReused,
            CoreError::Store(e) if e.is_unavailable() => ErrorCode::Unavailable,
            CoreError::Store(_) => ErrorCode::Internal,
        }
    }
}

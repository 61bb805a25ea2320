//! RFC 9457 problem details: the one error shape of the API, and the table of its
//! stable `type`s (served at `/docs/errors`). Every failure of every layer (core,
//! identity, OAuth) is converted here, once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_auth::AuthError;
use keel_auth::oauth::OAuthError;
use keel_core::{CoreError, ErrorCode, FieldError};
use serde::Serialize;

/// One row of the public error table.
#[derive(Debug, Clone, Copy)]
pub struct ProblemType {
    pub code: ErrorCode,
    pub slug: &'static str,
    pub status: u16,
    pub title: &'static str,
    pub when: &'static str,
}

/// The row of one code: exhaustive, so a new code does not compile until it has a
/// status, a title and a line for `/docs/errors`.
pub const fn problem_type(code: ErrorCode) -> ProblemType {
    let (status, title, when) = match code {
        ErrorCode::MalformedRequest => (
            400,
            "Malformed request",
            "The body is not valid JSON, or a header is malformed.",
        ),
        ErrorCode::InvalidParameter => (
            400,
            "Invalid parameter",
            "A query parameter (filter, sort, limit, cursor, fields, expand, count) is invalid; `errors[0].field` names it and, for filters, `position` points into it.",
        ),
        ErrorCode::Unauthorized => (401, "Unauthorized", "The operation needs a signed-in user."),
        ErrorCode::Forbidden => (
            403,
            "Forbidden",
            "The access rules do not allow this operation for this user.",
        ),
        ErrorCode::NotFound => (
            404,
            "Not found",
            "No such route, collection or record (or a record the caller may not read).",
        ),
        ErrorCode::MethodNotAllowed => (
            405,
            "Method not allowed",
            "The route exists but not with this method; `Allow` lists the methods.",
        ),
        ErrorCode::Timeout => (
            408,
            "Request timeout",
            "The request took longer than the server's time limit.",
        ),
        ErrorCode::Conflict => (
            409,
            "Conflict",
            "A unique constraint would be violated, or the record is still referenced.",
        ),
        ErrorCode::PreconditionFailed => (
            412,
            "Precondition failed",
            "If-Match names a version that is no longer current.",
        ),
        ErrorCode::PayloadTooLarge => {
            (413, "Payload too large", "The body exceeds the size limit.")
        }
        ErrorCode::UnsupportedMediaType => (
            415,
            "Unsupported media type",
            "The body is not `application/json`.",
        ),
        ErrorCode::Validation => (
            422,
            "Validation failed",
            "The body does not fit the collection; `errors` lists each failing field with a code.",
        ),
        ErrorCode::IdempotencyKeyReused => (
            409,
            "Idempotency key reused",
            "The Idempotency-Key was already used with a different request body.",
        ),
        ErrorCode::RateLimited => (
            429,
            "Too many requests",
            "A rate limit was reached; `Retry-After` says when to retry.",
        ),
        ErrorCode::Internal => (
            500,
            "Internal error",
            "A fault on the server; the details are in its log under the request id.",
        ),
        ErrorCode::BadGateway => (
            502,
            "Bad gateway",
            "An OAuth / OpenID Connect provider could not be reached or answered badly.",
        ),
        ErrorCode::Unavailable => (
            503,
            "Service unavailable",
            "The database is unreachable or migrations are pending.",
        ),
    };
    ProblemType {
        code,
        slug: code.slug(),
        status,
        title,
        when,
    }
}

/// Every problem `type` the API answers with, in table order.
pub fn problem_types() -> impl Iterator<Item = ProblemType> {
    ErrorCode::ALL.into_iter().map(problem_type)
}

/// A problem+json response (boxed: it travels in every `Result` of the HTTP layer).
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemDetails>);

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;
    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDetails {
        &mut self.0
    }
}

/// The RFC 9457 members, plus Keel's `request_id`, `errors` and `position`.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemDetails {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Byte offset into the failing parameter (filters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(skip)]
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of a type from the table, with a human detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        let t = problem_type(code);
        let ctx = crate::context::current();
        Self(Box::new(ProblemDetails {
            kind: format!("/docs/errors#{}", t.slug),
            title: t.title.into(),
            status: t.status,
            detail: detail.into(),
            instance: ctx.as_ref().map(|c| c.path.clone()),
            request_id: ctx.map(|c| c.request_id),
            errors: Vec::new(),
            position: None,
            headers: Vec::new(),
        }))
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "an internal error occurred; the server log has the details under this request id",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (k, v) in self.0.headers {
            res.headers_mut().insert(k, v);
        }
        res
    }
}

impl From<CoreError> for Problem {
    fn from(e: CoreError) -> Self {
        // The status and `type` come from the error's code; only the wording is here.
        let code = e.code();
        match e {
            CoreError::UnknownCollection(name) => {
                Problem::new(code, format!("there is no collection `{name}`"))
            }
            CoreError::NotFound { collection, id } => {
                Problem::new(code, format!("no `{collection}` record with id `{id}`"))
            }
            CoreError::Denied {
                anonymous: true,
                message,
            } => Problem::new(code, message).with_header(header::WWW_AUTHENTICATE, "Bearer"),
            CoreError::Denied { message, .. } => Problem::new(code, message),
            CoreError::BadParam {
                param,
                message,
                position,
            } => {
                let mut p = Problem::new(code, format!("invalid `{param}`: {message}"))
                    .with_errors(vec![FieldError::new(param, "invalid", message)]);
                p.position = position;
                p
            }
            CoreError::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| {
                        if e.field.is_empty() {
                            e.message.clone()
                        } else {
                            format!("`{}` {}", e.field, e.message)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                Problem::new(code, detail).with_errors(errors)
            }
            CoreError::Conflict { message, errors } => {
                Problem::new(code, message).with_errors(errors)
            }
            CoreError::StaleVersion { current } => Problem::new(
                code,
                format!("the record is now at version {current}; fetch it again and retry"),
            )
            .with_header(header::ETAG, &format!("\"{current}\"")),
            CoreError::IdempotencyMismatch => Problem::new(
                code,
                "this Idempotency-Key was already used with a different request body",
            ),
            CoreError::Store(e) if e.is_unavailable() => {
                tracing::error!(error = %e, "the database is unreachable");
                Problem::new(
                    code,
                    "the database is unreachable; retry shortly (the server log has the details under this request id)",
                )
                .with_header(header::RETRY_AFTER, "1")
            }
            CoreError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Problem::internal()
            }
        }
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::AccountExists => Problem::new(
                ErrorCode::Conflict,
                "an account with this email signs in with a password: sign in with it",
            ),
            AuthError::InvalidCredentials => {
                Problem::new(ErrorCode::Unauthorized, "invalid email or password")
            }
            AuthError::InvalidRefreshToken => Problem::new(
                ErrorCode::Unauthorized,
                "the refresh token is invalid, expired or revoked",
            ),
            AuthError::PasswordDisabled => Problem::new(
                ErrorCode::Forbidden,
                "password sign-in is disabled in keel.toml",
            ),
            AuthError::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("`{}` {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                Problem::new(ErrorCode::Validation, detail).with_errors(errors)
            }
            AuthError::UnknownRole(role) => {
                Problem::new(ErrorCode::Validation, format!("unknown role `{role}`")).with_errors(
                    vec![FieldError::new(
                        "role",
                        "invalid_enum",
                        "is not a role of keel.toml",
                    )],
                )
            }
            AuthError::Core(e) => e.into(),
            AuthError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Problem::internal()
            }
            AuthError::Internal(e) => {
                tracing::error!(error = %e, "auth error");
                Problem::internal()
            }
        }
    }
}

impl From<OAuthError> for Problem {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::UnknownProvider(name) => Problem::new(
                ErrorCode::NotFound,
                format!("there is no OAuth provider `{name}` in keel.toml"),
            ),
            OAuthError::BadRequest { param, message } => Problem::new(
                ErrorCode::InvalidParameter,
                format!("invalid `{param}`: {message}"),
            )
            .with_errors(vec![FieldError::new(param, "invalid", message)]),
            OAuthError::Denied(m) => Problem::new(ErrorCode::Unauthorized, m),
            OAuthError::Unreachable(m) => {
                tracing::warn!(error = %m, "OAuth provider unreachable");
                Problem::new(
                    ErrorCode::BadGateway,
                    "the sign-in provider could not be reached or answered badly; try again later",
                )
            }
            OAuthError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Problem::internal()
            }
            OAuthError::Internal(e) => {
                tracing::error!(error = %e, "OAuth error");
                Problem::internal()
            }
        }
    }
}

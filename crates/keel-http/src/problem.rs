//! RFC 9457 problem details: the one error shape of the API, and the table of its
//! stable `type`s (served at `/docs/errors`). Every failure is converted here, once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_core::{CoreError, FieldError};
use serde::Serialize;

/// One row of the public error table.
#[derive(Debug, Clone, Copy)]
pub struct ProblemType {
    pub slug: &'static str,
    pub status: u16,
    pub title: &'static str,
    pub when: &'static str,
}

/// Every problem `type` the API answers with. Adding one is adding a row here.
pub const PROBLEM_TYPES: &[ProblemType] = &[
    ProblemType {
        slug: "malformed-request",
        status: 400,
        title: "Malformed request",
        when: "The body is not valid JSON, or a header is malformed.",
    },
    ProblemType {
        slug: "invalid-parameter",
        status: 400,
        title: "Invalid parameter",
        when: "A query parameter (filter, sort, limit, cursor, fields, expand, count) is invalid; `errors[0].field` names it and, for filters, `position` points into it.",
    },
    ProblemType {
        slug: "unauthorized",
        status: 401,
        title: "Unauthorized",
        when: "The operation needs a signed-in user.",
    },
    ProblemType {
        slug: "forbidden",
        status: 403,
        title: "Forbidden",
        when: "The access rules do not allow this operation for this user.",
    },
    ProblemType {
        slug: "not-found",
        status: 404,
        title: "Not found",
        when: "No such route, collection or record (or a record the caller may not read).",
    },
    ProblemType {
        slug: "method-not-allowed",
        status: 405,
        title: "Method not allowed",
        when: "The route exists but not with this method; `Allow` lists the methods.",
    },
    ProblemType {
        slug: "timeout",
        status: 408,
        title: "Request timeout",
        when: "The request took longer than the server's time limit.",
    },
    ProblemType {
        slug: "conflict",
        status: 409,
        title: "Conflict",
        when: "A unique constraint would be violated, or the record is still referenced.",
    },
    ProblemType {
        slug: "precondition-failed",
        status: 412,
        title: "Precondition failed",
        when: "If-Match names a version that is no longer current.",
    },
    ProblemType {
        slug: "payload-too-large",
        status: 413,
        title: "Payload too large",
        when: "The body exceeds the size limit.",
    },
    ProblemType {
        slug: "unsupported-media-type",
        status: 415,
        title: "Unsupported media type",
        when: "The body is not `application/json`.",
    },
    ProblemType {
        slug: "validation",
        status: 422,
        title: "Validation failed",
        when: "The body does not fit the collection; `errors` lists each failing field with a code.",
    },
    ProblemType {
        slug: "idempotency-key-reused",
        status: 409,
        title: "Idempotency key reused",
        when: "The Idempotency-Key was already used with a different request body.",
    },
    ProblemType {
        slug: "rate-limited",
        status: 429,
        title: "Too many requests",
        when: "A rate limit was reached; `Retry-After` says when to retry.",
    },
    ProblemType {
        slug: "internal",
        status: 500,
        title: "Internal error",
        when: "A fault on the server; the details are in its log under the request id.",
    },
    ProblemType {
        slug: "bad-gateway",
        status: 502,
        title: "Bad gateway",
        when: "An OAuth / OpenID Connect provider could not be reached or answered badly.",
    },
    ProblemType {
        slug: "unavailable",
        status: 503,
        title: "Service unavailable",
        when: "The database is unreachable or migrations are pending.",
    },
];

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
    pub fn new(slug: &str, detail: impl Into<String>) -> Self {
        let t = PROBLEM_TYPES
            .iter()
            .find(|t| t.slug == slug)
            .or_else(|| PROBLEM_TYPES.iter().find(|t| t.slug == "internal"))
            .copied()
            .unwrap_or(PROBLEM_TYPES[0]);
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
            "internal",
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
        // Exhaustive: a new core error does not compile until it has a status here.
        match e {
            CoreError::UnknownCollection(name) => {
                Problem::new("not-found", format!("there is no collection `{name}`"))
            }
            CoreError::NotFound { collection, id } => Problem::new(
                "not-found",
                format!("no `{collection}` record with id `{id}`"),
            ),
            CoreError::Denied {
                anonymous: true,
                message,
            } => Problem::new("unauthorized", message)
                .with_header(header::WWW_AUTHENTICATE, "Bearer"),
            CoreError::Denied {
                anonymous: false,
                message,
            } => Problem::new("forbidden", message),
            CoreError::BadParam {
                param,
                message,
                position,
            } => {
                let mut p =
                    Problem::new("invalid-parameter", format!("invalid `{param}`: {message}"))
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
                Problem::new("validation", detail).with_errors(errors)
            }
            CoreError::Conflict { message, errors } => {
                Problem::new("conflict", message).with_errors(errors)
            }
            CoreError::StaleVersion { current } => Problem::new(
                "precondition-failed",
                format!("the record is now at version {current}; fetch it again and retry"),
            )
            .with_header(header::ETAG, &format!("\"{current}\"")),
            CoreError::IdempotencyMismatch => Problem::new(
                "idempotency-key-reused",
                "this Idempotency-Key was already used with a different request body",
            ),
            CoreError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Problem::internal()
            }
        }
    }
}

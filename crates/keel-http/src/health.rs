//! Liveness and readiness for load balancers and orchestrators.

use crate::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use keel_store::{Readiness, SchemaFingerprint};
use serde_json::json;

/// A service whose state `/readyz` reports without failing on it (a degraded mode,
/// e.g. Redis down: limits are counted per node).
pub trait ReadinessDetail: Send + Sync + std::fmt::Debug {
    /// The JSON field, e.g. `redis`.
    fn name(&self) -> &'static str;
    /// Its value, e.g. `up` or `down`.
    fn state(&self) -> &'static str;
}

/// The details, put on `/readyz` requests by the request layer.
#[derive(Debug, Clone)]
pub struct ReadinessDetails(pub Vec<std::sync::Arc<dyn ReadinessDetail>>);

/// The process is up.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The database answers and its last migration brought it to this node's schema.
/// Both are single reads on a reader (SQLite) or pooled (PostgreSQL) connection:
/// a probe neither waits for writers nor holds them up.
pub async fn readyz(
    State(state): State<AppState>,
    details: Option<Extension<ReadinessDetails>>,
) -> Response {
    let store = state.engine.store();
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Problem::new(ErrorCode::Unavailable, "the database is unreachable").into_response();
    }
    // Microseconds of hashing, no I/O.
    let expected = SchemaFingerprint::of(state.engine.model());
    match store.readiness(&expected).await {
        Ok(Readiness::Ready) => {
            let mut body = json!({"status": "ready", "database": "ok", "migrations": "applied"});
            for d in details.iter().flat_map(|d| d.0.0.iter()) {
                body[d.name()] = json!(d.state());
            }
            Json(body).into_response()
        }
        Ok(Readiness::NotMigrated) => Problem::new(
            ErrorCode::Unavailable,
            "no migration has been applied to this database; run `keel migrate`",
        )
        .into_response(),
        Ok(Readiness::Differs) => Problem::new(
            ErrorCode::Unavailable,
            "the database was last migrated to another schema than this node's; run `keel migrate`",
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read the schema");
            Problem::new(ErrorCode::Unavailable, "the database schema cannot be read")
                .into_response()
        }
    }
}

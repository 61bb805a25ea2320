//! Liveness and readiness for load balancers and orchestrators.

use crate::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use keel_store::{Readiness, SchemaFingerprint};
use serde_json::json;

/// The process is up.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The database answers and its last migration brought it to this node's schema.
/// Both are single reads on a reader (SQLite) or pooled (PostgreSQL) connection:
/// a probe neither waits for writers nor holds them up.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.engine.store();
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Problem::new(ErrorCode::Unavailable, "the database is unreachable").into_response();
    }
    // Microseconds of hashing, no I/O.
    let expected = SchemaFingerprint::of(state.engine.model());
    match store.readiness(&expected).await {
        Ok(Readiness::Ready) => {
            Json(json!({"status": "ready", "database": "ok", "migrations": "applied"}))
                .into_response()
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

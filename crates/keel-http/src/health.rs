//! Liveness and readiness for load balancers and orchestrators.

use crate::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use serde_json::json;

/// The process is up.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The database answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(e) = state.engine.store().ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Problem::new(ErrorCode::Unavailable, "the database is unreachable").into_response();
    }
    match state.engine.store().plan(state.engine.model()).await {
        Ok(plan) if plan.is_empty() => {
            Json(json!({"status": "ready", "database": "ok", "migrations": "applied"}))
                .into_response()
        }
        Ok(plan) => Problem::new(
            ErrorCode::Unavailable,
            format!(
                "{} migration step(s) are pending; run `keel migrate`",
                plan.steps.len()
            ),
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read the schema");
            Problem::new(ErrorCode::Unavailable, "the database schema cannot be read")
                .into_response()
        }
    }
}

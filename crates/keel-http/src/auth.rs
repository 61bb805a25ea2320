//! `/v1/auth/*`, `/v1/admin/*` and `/.well-known/jwks.json` over the identity service.

use crate::AppState;
use crate::extract::JsonBody;
use crate::extract::PathParams;
use crate::identity::Caller;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_auth::AuthService;
use keel_core::ErrorCode;
use keel_core::FieldError;
use serde_json::Value;
use std::sync::Arc;

fn service(state: &AppState) -> Result<&Arc<AuthService>, Problem> {
    state
        .auth
        .as_ref()
        .ok_or_else(|| Problem::new(ErrorCode::NotFound, "authentication is not enabled"))
}

/// A required string member of at most `max` characters (as the OpenAPI document says).
fn string_field<'a>(body: &'a Value, name: &str, max: usize) -> Result<&'a str, Problem> {
    match body.get(name) {
        Some(Value::String(s)) if s.chars().count() > max => Err(Problem::new(
            ErrorCode::Validation,
            format!("`{name}` must be at most {max} characters"),
        )
        .with_errors(vec![FieldError::new(
            name,
            "too_long",
            format!("must be at most {max} characters"),
        )])),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(
            Problem::new(ErrorCode::Validation, format!("`{name}` must be a string"))
                .with_errors(vec![FieldError::new(name, "type", "must be a string")]),
        ),
        None => Err(
            Problem::new(ErrorCode::Validation, format!("`{name}` is required"))
                .with_errors(vec![FieldError::new(name, "required", "is required")]),
        ),
    }
}

pub async fn signup(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let session = service(&state)?.signup(&body).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

pub async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let auth = service(&state)?;
    let email = string_field(&body, "email", 254)?;
    let password = string_field(&body, "password", 1024)?;
    if let Err(res) = crate::limits::login_attempt(&state.rate_limits, email).await {
        tracing::warn!(target: "audit", event = "login_throttled");
        return Ok(*res);
    }
    let session = auth.login(email, password).await?;
    Ok(Json(session).into_response())
}

pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let token = string_field(&body, "refresh_token", 512)?;
    let session = service(&state)?.refresh(token).await?;
    Ok(Json(session).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let token = string_field(&body, "refresh_token", 512)?;
    service(&state)?.logout(token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn logout_all(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Response, Problem> {
    if p.is_anonymous() {
        return Err(crate::identity::invalid_token("sign in first"));
    }
    service(&state)?.logout_all(&p).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn me(State(state): State<AppState>, Caller(p): Caller) -> Result<Response, Problem> {
    if p.is_anonymous() {
        return Err(crate::identity::invalid_token("sign in first"));
    }
    let user = service(&state)?.me(&p).await?;
    Ok(Json(user).into_response())
}

pub async fn jwks(State(state): State<AppState>) -> Result<Response, Problem> {
    let mut res = Json(service(&state)?.jwks()).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    Ok(res)
}

fn require_admin(p: &keel_core::Principal) -> Result<String, Problem> {
    match p.id {
        None => Err(crate::identity::invalid_token("sign in as an admin")),
        Some(_) if !p.has_role(keel_auth::ADMIN_ROLE) => Err(Problem::new(
            ErrorCode::Forbidden,
            "only admins may change roles",
        )),
        Some(id) => Ok(id.to_string()),
    }
}

pub async fn grant_role(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams(user_id): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let actor = require_admin(&p)?;
    let role = string_field(&body, "role", 64)?;
    let user = service(&state)?
        .set_role(&actor, &user_id, role, true)
        .await?;
    Ok(Json(user).into_response())
}

pub async fn revoke_role(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((user_id, role)): PathParams<(String, String)>,
) -> Result<Response, Problem> {
    let actor = require_admin(&p)?;
    let user = service(&state)?
        .set_role(&actor, &user_id, &role, false)
        .await?;
    Ok(Json(user).into_response())
}

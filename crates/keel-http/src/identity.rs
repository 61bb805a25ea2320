//! Who is calling: a bearer token becomes a [`Principal`] in the request's extensions
//! (the [`crate::edge`] puts it there);
//! no token means anonymous; a bad token (forged, expired, wrong issuer...) is a 401
//! at once, whatever the route.

use crate::AppState;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use keel_core::ErrorCode;
use keel_core::Principal;

/// The caller, as the identity layer established it.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller(Principal::anonymous())))
    }
}

pub fn invalid_token(detail: &str) -> Problem {
    Problem::new(ErrorCode::Unauthorized, detail)
        .with_header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")
}

/// The caller of a request with these headers: anonymous without a token; a bad
/// token (forged, expired, wrong issuer...) is the 401 to answer, whatever the route.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Principal::anonymous());
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(
            invalid_token("the Authorization header must be `Bearer <access token>`")
                .into_response(),
        );
    };
    let Some(auth) = state.auth.as_ref() else {
        return Err(invalid_token("this server does not accept tokens").into_response());
    };
    auth.authenticate(token).await.map_err(|e| {
        tracing::info!(target: "audit", event = "token_rejected", reason = %e);
        invalid_token("the access token is invalid or expired").into_response()
    })
}

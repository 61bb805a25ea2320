//! `GET /v1/auth/oauth/{provider}` (start: 302 to the provider) and
//! `GET /v1/auth/oauth/{provider}/callback` (finish: Keel's own tokens, as JSON, or
//! in the fragment of the allowed `redirect_to` the login was started with).

use crate::AppState;
use crate::extract::PathParams;
use crate::problem::Problem;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_auth::oauth::{BINDING_COOKIE, CallbackParams, OAuth, OAuthError, STATE_TTL_SECS};
use keel_core::ErrorCode;
use serde::Deserialize;
use std::sync::Arc;

fn service(state: &AppState) -> Result<&Arc<OAuth>, Problem> {
    match (&state.oauth, &state.auth) {
        (Some(o), Some(_)) => Ok(o),
        _ => Err(Problem::new(
            ErrorCode::NotFound,
            "no OAuth providers are configured ([auth.oauth.*] in keel.toml)",
        )),
    }
}

fn query_problem(e: &QueryRejection) -> Problem {
    Problem::new(
        ErrorCode::InvalidParameter,
        format!("invalid query: {}", e.body_text()),
    )
}

/// The binding cookie the browser sent, if any.
fn binding_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == BINDING_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// This server's callback URL for a provider: configured, or from the request's
/// `Host` (and `X-Forwarded-Proto: https` behind a TLS proxy).
fn callback_url(oauth: &OAuth, headers: &HeaderMap, provider: &str) -> Result<String, Problem> {
    if let Some(u) = oauth.configured_redirect_url(provider) {
        return Ok(u.to_string());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .ok_or_else(|| {
            Problem::new(
                ErrorCode::MalformedRequest,
                "the Host header is missing or invalid; set `redirect_url` for this provider",
            )
        })?;
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    Ok(format!(
        "{scheme}://{host}/v1/auth/oauth/{provider}/callback"
    ))
}

fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn found(location: &str) -> Result<Response, Problem> {
    let value = HeaderValue::from_str(location).map_err(|_| Problem::internal())?;
    let mut res = StatusCode::FOUND.into_response();
    res.headers_mut().insert(header::LOCATION, value);
    no_store(&mut res);
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    redirect_to: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    PathParams(provider): PathParams<String>,
    headers: HeaderMap,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let oauth = service(&state)?;
    let Query(q) = query.map_err(|e| query_problem(&e))?;
    let callback = callback_url(oauth, &headers, &provider)?;
    let binding = binding_cookie(&headers);
    let started = oauth
        .start(
            &provider,
            q.redirect_to.as_deref(),
            &callback,
            binding.as_deref(),
        )
        .await?;
    let mut res = found(&started.location)?;
    let secure = if callback.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BINDING_COOKIE}={}; Path=/v1/auth/oauth; Max-Age={STATE_TTL_SECS}; HttpOnly; SameSite=Lax{secure}",
        started.binding
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

pub async fn callback(
    State(state): State<AppState>,
    PathParams(provider): PathParams<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let oauth = service(&state)?;
    let auth = state.auth.as_ref().ok_or_else(Problem::internal)?;
    let Query(params) = query.map_err(|e| query_problem(&e))?;
    let completed = match oauth
        .callback(&provider, &params, binding_cookie(&headers).as_deref())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            if !matches!(e, OAuthError::UnknownProvider(_)) {
                tracing::warn!(target: "audit", event = "oauth_login_failed", provider = %provider, reason = %e);
            }
            return Err(e.into());
        }
    };
    let id = &completed.identity;
    let (session, _created) = auth
        .sign_in_verified(&id.provider, &id.email, id.name.as_deref())
        .await?;
    match completed.redirect_to {
        Some(to) => {
            let expires = session.expires_in.to_string();
            found(&keel_auth::oauth::with_fragment(
                &to,
                &[
                    ("access_token", session.access_token.as_str()),
                    ("token_type", session.token_type),
                    ("expires_in", expires.as_str()),
                    ("refresh_token", session.refresh_token.as_str()),
                    ("provider", id.provider.as_str()),
                ],
            ))
        }
        None => {
            let mut res = Json(session).into_response();
            no_store(&mut res);
            Ok(res)
        }
    }
}

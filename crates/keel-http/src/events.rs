//! `/v1/admin/events*`: see and re-drive event deliveries (admins only), the same
//! operations as `keel events list|retry|replay`.
//!
//! - `GET /v1/admin/events?state=&destination=&limit=`: deliveries, newest first, and
//!   where each destination stands (pending, dead, disabled);
//! - `POST /v1/admin/events/retry` `{"destination"?}`: dead deliveries become pending
//!   again and the destination(s) are enabled again (after a 410);
//! - `POST /v1/admin/events/replay` `{"destination", "since"}`: settled deliveries of
//!   the retained events since then become pending again, under the same event ids.
//!
//! After a retry or a replay the local relay is woken at once (other nodes by the
//! store's `NOTIFY` on PostgreSQL, or by their poll).

use crate::AppState;
use crate::extract::JsonBody;
use crate::identity::Caller;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use keel_core::{CoreError, ErrorCode, FieldError};
use keel_spec::Model;
use keel_store::events::ops;
use serde_json::{Value, json};

/// Deliveries a list shows unless `limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

/// The destination names keel.toml configures, as deliveries name them:
/// `webhook:<name>` per webhook, then `nats` and `rabbitmq` when configured.
pub fn configured_destinations(model: &Model) -> Vec<String> {
    let mut names: Vec<String> = model
        .webhooks
        .iter()
        .map(|h| keel_core::webhook_destination(&h.name))
        .collect();
    if model.events.nats.is_some() {
        names.push(keel_core::NATS_DESTINATION.into());
    }
    if model.events.rabbitmq.is_some() {
        names.push(keel_core::RABBITMQ_DESTINATION.into());
    }
    names
}

/// `Ok` when keel.toml configures `name`; else why not, naming those it does.
pub fn check_destination(model: &Model, name: &str) -> Result<(), String> {
    let known = configured_destinations(model);
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    let hint = if known.is_empty() {
        "keel.toml configures no event destination".to_string()
    } else {
        format!("keel.toml configures: {}", known.join(", "))
    };
    let guess = if !name.contains(':') && known.iter().any(|k| k == &format!("webhook:{name}")) {
        format!(" (did you mean `webhook:{name}`?)")
    } else {
        String::new()
    };
    Err(format!("unknown destination `{name}`{guess}; {hint}"))
}

fn require_admin(p: &keel_core::Principal) -> Result<(), Problem> {
    match p.id {
        None => Err(crate::identity::invalid_token("sign in as an admin")),
        Some(_) if !p.has_role(keel_auth::ADMIN_ROLE) => Err(Problem::new(
            ErrorCode::Forbidden,
            "only admins may see and re-drive event deliveries",
        )),
        Some(_) => Ok(()),
    }
}

fn bad_param(param: &'static str, message: String) -> Problem {
    Problem::from(CoreError::BadParam {
        param,
        message,
        position: None,
    })
}

fn invalid(field: &str, code: &str, message: String) -> Problem {
    Problem::new(ErrorCode::Validation, format!("`{field}`: {message}"))
        .with_errors(vec![FieldError::new(field, code, message)])
}

fn store_failed(e: keel_store::StoreError) -> Problem {
    tracing::error!(error = %e, "events admin: the store failed");
    Problem::internal()
}

/// `GET /v1/admin/events`
pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    uri: Uri,
) -> Result<Response, Problem> {
    require_admin(&p)?;
    let pairs: Vec<(String, String)> = axum::extract::Query::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| {
            Problem::new(
                ErrorCode::MalformedRequest,
                format!("the query string is malformed: {e}"),
            )
        })?;
    let mut filter_state: Option<&'static str> = None;
    let mut destination: Option<String> = None;
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in pairs {
        match k.as_str() {
            "state" => {
                filter_state = Some(ops::STATES.into_iter().find(|s| *s == v).ok_or_else(|| {
                    bad_param("state", format!("`{v}` is not pending, delivered or dead"))
                })?)
            }
            "destination" if v.chars().count() > 200 => {
                return Err(bad_param(
                    "destination",
                    "must be at most 200 characters".into(),
                ));
            }
            "destination" => destination = Some(v),
            "limit" => {
                limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad_param(
                            "limit",
                            format!("`{v}` is not a whole number from 1 to {MAX_LIMIT}"),
                        )
                    })?
            }
            _ => {}
        }
    }
    let store = state.engine.store();
    let items = ops::deliveries(store, filter_state, destination.as_deref(), limit)
        .await
        .map_err(store_failed)?;
    let configured = configured_destinations(state.engine.model());
    let destinations = ops::destinations(store, &configured)
        .await
        .map_err(store_failed)?;
    Ok(Json(json!({
        "items": items.iter().map(ops::Delivery::to_json).collect::<Vec<_>>(),
        "destinations": destinations
            .iter()
            .filter(|d| destination.as_deref().is_none_or(|n| n == d.name))
            .map(ops::DestinationStatus::to_json)
            .collect::<Vec<_>>(),
    }))
    .into_response())
}

/// A JSON object body, or `{}` when the request has none.
async fn optional_body(req: Request, state: &AppState) -> Result<Value, Problem> {
    let empty = !req.headers().contains_key(header::CONTENT_TYPE)
        && req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() == "0");
    if empty {
        return Ok(json!({}));
    }
    let JsonBody(body) = JsonBody::from_request(req, state).await?;
    if !body.is_object() {
        return Err(Problem::new(
            ErrorCode::Validation,
            "the body must be a JSON object",
        ));
    }
    Ok(body)
}

/// An optional string member naming a configured destination.
fn destination_field(
    model: &Model,
    body: &Value,
    required: bool,
) -> Result<Option<String>, Problem> {
    match body.get("destination") {
        None if !required => Ok(None),
        None => Err(invalid("destination", "required", "is required".into())),
        Some(Value::String(name)) => check_destination(model, name)
            .map(|()| Some(name.clone()))
            .map_err(|e| invalid("destination", "unknown", e)),
        Some(_) => Err(invalid("destination", "type", "must be a string".into())),
    }
}

/// `POST /v1/admin/events/retry`
pub async fn retry(
    State(state): State<AppState>,
    Caller(p): Caller,
    req: Request,
) -> Result<Response, Problem> {
    require_admin(&p)?;
    let body = optional_body(req, &state).await?;
    let model = state.engine.model();
    let targets = match destination_field(model, &body, false)? {
        Some(name) => vec![name],
        None => configured_destinations(model),
    };
    let changed = ops::retry(state.engine.store(), &targets)
        .await
        .map_err(store_failed)?;
    state.engine.deliveries_made();
    let total: u64 = changed.iter().map(|r| r.deliveries).sum();
    tracing::info!(target: "audit", event = "events_retry", actor = ?p.id, retried = total);
    Ok(Json(json!({
        "retried": total,
        "destinations": changed.iter().map(ops::Retried::to_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `POST /v1/admin/events/replay`
pub async fn replay(
    State(state): State<AppState>,
    Caller(p): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    require_admin(&p)?;
    let model = state.engine.model();
    let Some(destination) = destination_field(model, &body, true)? else {
        return Err(invalid("destination", "required", "is required".into()));
    };
    let since = match body.get("since") {
        Some(Value::String(s)) => {
            let now = std::time::SystemTime::now().into();
            ops::parse_since(s, now).map_err(|e| invalid("since", "invalid", e))?
        }
        Some(_) => return Err(invalid("since", "type", "must be a string".into())),
        None => return Err(invalid("since", "required", "is required".into())),
    };
    let replayed = ops::replay(state.engine.store(), &destination, since)
        .await
        .map_err(store_failed)?;
    state.engine.deliveries_made();
    tracing::info!(target: "audit", event = "events_replay", actor = ?p.id, destination = %destination, replayed);
    Ok(Json(json!({
        "destination": destination,
        "since": keel_expr::format_datetime(since),
        "replayed": replayed,
    }))
    .into_response())
}

//! REST over the operation core: `/v1/{collection}` and `/v1/{collection}/{id}`.
//! Each handler reads the request, calls one `Engine` operation, and shapes the
//! answer (status, Location, ETag); all rules and validation live in the core.

use crate::AppState;
use crate::extract::PathParams;
use crate::extract::{JsonBody, ListQueryString, RecordQuery, idempotency_key, if_match};
use crate::identity::Caller;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn etag(record: &serde_json::Value) -> Option<HeaderValue> {
    record
        .get("version")
        .and_then(|v| v.as_i64())
        .and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok())
}

pub async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    PathParams(collection): PathParams<String>,
    ListQueryString(text): ListQueryString,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let query = state.engine.list_query(&collection, &text)?;
    let page = state
        .engine
        .list_text(&principal, &collection, &query)
        .await?;
    Ok(crate::conditional::json_answer(
        &headers,
        page.into_json(),
        None,
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(principal): Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    query: RecordQuery,
) -> Result<Response, Problem> {
    let projection = state.engine.projection(
        &collection,
        query.fields.as_deref(),
        query.expand.as_deref(),
    )?;
    let record = state
        .engine
        .get_text(&principal, &collection, &id, &projection)
        .await?;
    // The version tags the record; with `expand` the answer also holds other
    // records, whose changes do not move it: then a weak tag over the bytes does.
    let version = record
        .version
        .filter(|_| query.expand.as_deref().is_none_or(str::is_empty));
    Ok(crate::conditional::json_answer(
        &headers,
        record.json,
        version,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    PathParams(collection): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let created = state
        .engine
        .create(&principal, &collection, &body, key.as_deref())
        .await?;
    let tag = etag(&created.record);
    let mut res = (StatusCode::CREATED, Json(created.record)).into_response();
    let h = res.headers_mut();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/{collection}/{}", created.id)) {
        h.insert(header::LOCATION, loc);
    }
    if let Some(tag) = tag {
        h.insert(header::ETAG, tag);
    }
    if created.replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

pub async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let version = if_match(&headers)?;
    let record = state
        .engine
        .update(&principal, &collection, &id, &body, version.as_deref())
        .await?;
    let tag = etag(&record);
    let mut res = Json(record).into_response();
    if let Some(tag) = tag {
        res.headers_mut().insert(header::ETAG, tag);
    }
    Ok(res)
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let version = if_match(&headers)?;
    state
        .engine
        .delete(&principal, &collection, &id, version.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

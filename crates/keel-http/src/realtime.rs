//! `GET /v1/realtime`: the change feed of the collections asked for, filtered by the
//! caller's read rules, as Server-Sent Events (`id: <cursor>`, `event: <type>`,
//! `data: <envelope>`, a comment heartbeat every 15 s; `event: reset` when events were
//! missed) or as JSON messages over a WebSocket. `Last-Event-ID` or `since=` resumes.
//! Browsers' EventSource cannot send headers: `access_token=` in the query is accepted
//! (the access log never records query strings).

use crate::AppState;
use crate::identity::{Caller, invalid_token};
use crate::problem::Problem;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use keel_core::{ErrorCode, Principal};
use keel_realtime::{HubError, Message, Subscription, SubscriptionRequest};
use keel_store::events::Position;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub mod ws;

/// How often an idle SSE stream sends a comment, so proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The subscription a request asks for, checked: collections with their filters, the
/// resume cursor, the caller.
pub struct Asked {
    pub principal: Principal,
    pub collections: HashMap<String, Option<Arc<keel_expr::Typed>>>,
    pub since: Option<Position>,
}

/// A collection and its filter (the text of `filter.<collection>`), checked for this
/// caller: it must exist and have a read rule.
pub fn collection_filter(
    state: &AppState,
    principal: &Principal,
    collection: &str,
    filter: Option<&str>,
) -> Result<Option<Arc<keel_expr::Typed>>, Problem> {
    keel_realtime::access::subscription_filter(&state.engine, principal, collection, filter)
        .map_err(Problem::from)
}

/// A cursor from `Last-Event-ID` or `since`.
pub fn cursor(text: &str) -> Result<Position, Problem> {
    Position::from_cursor(text.trim()).ok_or_else(|| {
        Problem::from(keel_core::CoreError::BadParam {
            param: "since",
            message: format!("`{text}` is not a cursor of this feed"),
            position: None,
        })
    })
}

async fn asked(
    state: &AppState,
    caller: Principal,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Asked, Problem> {
    let principal = match (caller.is_anonymous(), query.get("access_token")) {
        (true, Some(token)) if !token.is_empty() => {
            let Some(auth) = state.auth.as_ref() else {
                return Err(invalid_token("this server does not accept tokens"));
            };
            auth.authenticate(token)
                .await
                .map_err(|_| invalid_token("the access token is invalid or expired"))?
        }
        _ => caller,
    };
    let names = query.get("collections").map(String::as_str).unwrap_or("");
    let mut collections = HashMap::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let filter = query.get(&format!("filter.{name}")).map(String::as_str);
        collections.insert(
            name.to_string(),
            collection_filter(state, &principal, name, filter)?,
        );
    }
    if collections.is_empty() {
        return Err(Problem::from(keel_core::CoreError::BadParam {
            param: "collections",
            message: "name the collections to follow, e.g. `collections=posts,comments`".into(),
            position: None,
        }));
    }
    let since = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("since").map(String::as_str))
    {
        Some(text) if !text.trim().is_empty() => Some(cursor(text)?),
        _ => None,
    };
    Ok(Asked {
        principal,
        collections,
        since,
    })
}

/// Subscribe on the node's hub; too many connections is a 429.
pub async fn subscribe(
    state: &AppState,
    asked: Asked,
    client_ip: String,
) -> Result<Subscription, Problem> {
    let Some(hub) = state.realtime.as_ref() else {
        return Err(Problem::new(
            ErrorCode::NotFound,
            "the realtime feed is not enabled",
        ));
    };
    hub.subscribe(SubscriptionRequest {
        principal: asked.principal,
        client_ip,
        collections: asked.collections,
        since: asked.since,
    })
    .await
    .map_err(|e| match e {
        HubError::TooMany(_) => Problem::new(ErrorCode::RateLimited, e.to_string())
            .with_header(axum::http::header::RETRY_AFTER, "5"),
        HubError::Store(e) => Problem::from(keel_core::CoreError::Store(e)),
    })
}

/// `GET /v1/realtime`: SSE, or a WebSocket when the request upgrades.
pub async fn feed(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
    request: axum::extract::Request,
) -> Result<Response, Problem> {
    let ip = crate::limits::client_ip(&request);
    if let Some(upgrade) = ws::upgrade(upgrade, &headers)? {
        return ws::open(state, caller, &headers, &query, ip, upgrade).await;
    }
    let asked = asked(&state, caller, &headers, &query).await?;
    let subscription = subscribe(&state, asked, ip).await?;
    Ok(sse(subscription).into_response())
}

/// The subscription as an SSE stream.
fn sse(subscription: Subscription) -> impl IntoResponse {
    let stream = futures_util::stream::unfold(Some(subscription), |state| async move {
        let mut sub = state?;
        match sub.next().await? {
            Message::Event(e) => {
                let event = Event::default()
                    .id(e.position.to_cursor())
                    .event(&e.envelope.kind)
                    .data(e.envelope_json());
                Some((Ok::<_, std::convert::Infallible>(event), Some(sub)))
            }
            // After a reset the stream ends; its id is where the live stream is, so
            // a browser EventSource reconnects from there (after refetching) instead
            // of asking again from the cursor that was too old.
            Message::Reset => {
                let event = Event::default()
                    .event("reset")
                    .id(sub.live_cursor())
                    .data("{}");
                Some((Ok(event), None))
            }
        }
    });
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response();
    // Never buffered or compressed by a proxy.
    res.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    res
}

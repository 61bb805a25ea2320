//! `GET /v1/realtime` upgraded to a WebSocket: the same feed as SSE, as JSON text
//! messages both ways.
//!
//! The upgrade request is checked like an SSE request, before the `101`: a bearer
//! header or `access_token=`, `collections=` (optional here), `filter.<collection>=`
//! and `since=` (with `collections=`); a problem answers it otherwise (a 429 over the
//! connection caps).
//!
//! Client messages:
//! - `{"type":"subscribe","collection":"posts","filter":"…","since":"<cursor>"}`
//!   (`filter` and `since` optional): follow a collection, or replace its filter;
//!   answered `{"type":"subscribed","collection":"posts"}` once it is in effect.
//! - `{"type":"unsubscribe","collection":"posts"}`: answered
//!   `{"type":"unsubscribed","collection":"posts"}`; no event of that collection
//!   follows the answer.
//! - `{"type":"auth","access_token":"…"}`: a fresh token on a long-lived socket; the
//!   feed reads as that principal from then on; answered `{"type":"authenticated"}`.
//!   A bad token: an `error`, then the socket closes with 1008 (policy violation).
//!
//! Server messages: `{"type":"event","cursor":"…","event":{envelope}}`,
//! `{"type":"reset"}`, the acknowledgements above, and
//! `{"type":"error","problem":"/docs/errors#…","title":…,"status":…,"detail":…}`:
//! the problem+json members, its `type` renamed `problem` (`type` names the message),
//! with `collection` when the error is about one. A malformed message (not JSON, an
//! unknown `type`, a missing member, a binary frame) gets an `error` and the socket
//! stays open; a message over 64 KiB closes it with 1009.
//!
//! Resume (`since`): a socket's events form one ordered stream with one cursor, so a
//! cursor applies to the whole socket. `since` in a `subscribe` is honoured only
//! while the socket has sent no event (nor `reset`): the feed then restarts from that
//! cursor for every collection followed so far plus this one, and replays what was
//! missed with no gap and no duplicate. Once events were sent it is refused with an
//! `error` (and the subscribe is not applied): reconnect with the last cursor instead.
//! To resume several collections at once, name them on the upgrade request
//! (`collections=posts,comments&since=<cursor>`), which is atomic. A cursor past the
//! retention window gets `reset`, then the live stream continues on the same socket.
//!
//! Heartbeats: a ping every 15 s; a client silent for 45 s (no pong, no message) is
//! dropped. A consumer that falls behind gets `reset`, then a close frame 1013
//! (try again later: refetch, then reconnect). At shutdown each socket gets a close
//! frame 1001 (going away).

use super::{Asked, HEARTBEAT, collection_filter, cursor, subscribe};
use crate::AppState;
use crate::identity::invalid_token;
use crate::problem::Problem;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use keel_core::{ErrorCode, Principal};
use keel_expr::Typed;
use keel_realtime::{Message, Subscription};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The largest client message accepted (they are a few hundred bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A client that has answered nothing (not even a pong) for this long is gone.
pub const IDLE: Duration = Duration::from_secs(3 * HEARTBEAT.as_secs());

/// A send that does not complete in this time (the peer stopped reading) drops the
/// socket.
const SEND_TIMEOUT: Duration = HEARTBEAT;

/// Close codes (RFC 6455 §7.4).
const GOING_AWAY: u16 = 1001;
const PROTOCOL: u16 = 1002;
const INVALID: u16 = 1007;
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const INTERNAL: u16 = 1011;
const TRY_AGAIN_LATER: u16 = 1013;

/// The upgrade, when the request asks for one: `None` for SSE; a problem when it
/// asks for a WebSocket badly (say, without `Sec-WebSocket-Key`).
pub fn upgrade(
    extracted: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
) -> Result<Option<WebSocketUpgrade>, Problem> {
    match extracted {
        Ok(u) => Ok(Some(u)),
        Err(e) if asks_websocket(headers) => {
            Err(Problem::new(ErrorCode::MalformedRequest, e.body_text()))
        }
        Err(_) => Ok(None),
    }
}

fn asks_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"))
}

/// Check the upgrade request, subscribe, then switch protocols.
pub async fn open(
    state: crate::AppState,
    caller: Principal,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    client_ip: String,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Problem> {
    let asked = asked(&state, caller, headers, query).await?;
    let collections = asked.collections.clone();
    let started = subscribe(&state, asked, client_ip.clone()).await?;
    let session = Session {
        state,
        client_ip,
        sub: Some(started),
        collections,
        sent: false,
    };
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session.run(socket))
        .into_response())
}

/// The principal a token stands for.
async fn authenticate(state: &AppState, token: &str) -> Result<Principal, Problem> {
    if token.is_empty() {
        return Err(invalid_token("the access token is empty"));
    }
    let Some(auth) = state.auth.as_ref() else {
        return Err(invalid_token("this server does not accept tokens"));
    };
    auth.authenticate(token)
        .await
        .map_err(|_| invalid_token("the access token is invalid or expired"))
}

/// The upgrade request's subscription: like SSE's, but `collections=` may be empty
/// (subscribe messages add them).
async fn asked(
    state: &AppState,
    caller: Principal,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Asked, Problem> {
    let principal = match query.get("access_token") {
        Some(token) if caller.is_anonymous() && !token.is_empty() => {
            authenticate(state, token).await?
        }
        _ => caller,
    };
    let mut collections = HashMap::new();
    let names = query.get("collections").map(String::as_str).unwrap_or("");
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let filter = query.get(&format!("filter.{name}")).map(String::as_str);
        collections.insert(
            name.to_string(),
            collection_filter(state, &principal, name, filter)?,
        );
    }
    let since = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("since").map(String::as_str))
    {
        Some(text) if !text.trim().is_empty() => Some(cursor(text)?),
        _ => None,
    };
    if since.is_some() && collections.is_empty() {
        return Err(Problem::from(keel_core::CoreError::BadParam {
            param: "since",
            message: "a cursor resumes the collections named with it: add `collections=`, \
                      or send `since` in a subscribe message"
                .into(),
            position: None,
        }));
    }
    Ok(Asked {
        principal,
        collections,
        since,
    })
}

/// What a client sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Subscribe {
        collection: String,
        #[serde(default)]
        filter: Option<String>,
        #[serde(default)]
        since: Option<String>,
    },
    Unsubscribe {
        collection: String,
    },
    Auth {
        access_token: String,
    },
}

/// An `event` message: `{"type":"event","cursor":…,"event":{envelope}}`, the
/// envelope's JSON serialized once for every subscriber.
fn event_message(e: &keel_realtime::FeedEvent) -> String {
    let cursor = Value::String(e.position.to_cursor()).to_string();
    let event = e.envelope_json();
    let mut out = String::with_capacity(event.len() + cursor.len() + 32);
    out.push_str(r#"{"type":"event","cursor":"#);
    out.push_str(&cursor);
    out.push_str(r#","event":"#);
    out.push_str(event);
    out.push('}');
    out
}

/// A problem as an `error` message.
fn error_message(problem: &Problem, collection: Option<&str>) -> String {
    let mut fields = match serde_json::to_value(&**problem) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    if let Some(kind) = fields.remove("type") {
        fields.insert("problem".into(), kind);
    }
    fields.insert("type".into(), json!("error"));
    if let Some(c) = collection {
        fields.insert("collection".into(), json!(c));
    }
    Value::Object(fields).to_string()
}

fn malformed(detail: impl Into<String>) -> String {
    error_message(&Problem::new(ErrorCode::MalformedRequest, detail), None)
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// What handling a client message leads to.
enum Outcome {
    Reply(String),
    /// Send this, then close with this frame.
    Close(String, CloseFrame),
}

/// One socket: its subscription, and what is needed to restart it from a cursor.
struct Session {
    state: AppState,
    client_ip: String,
    /// `None` only between dropping a subscription and starting its replacement.
    sub: Option<Subscription>,
    /// The collections followed and their filters (the hub holds the same).
    collections: HashMap<String, Option<Arc<Typed>>>,
    /// An event or a reset was sent: a cursor can no longer apply.
    sent: bool,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let end = self.serve(&mut socket).await;
        self.sub = None;
        if let Some(frame) = end {
            tracing::debug!(code = frame.code, reason = %frame.reason, "realtime: closing a WebSocket");
            if !send(&mut socket, Frame::Close(Some(frame))).await {
                return;
            }
        }
        linger(&mut socket).await;
    }

    /// Pump events and client messages until one side ends; the close frame to send,
    /// if any.
    async fn serve(&mut self, socket: &mut WebSocket) -> Option<CloseFrame> {
        let mut beat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let mut after_reset = false;
        loop {
            tokio::select! {
                // Client messages first: a subscribe or auth takes effect before the
                // next event is sent. `Subscription::next` is cancel-safe.
                biased;
                incoming = socket.recv() => {
                    heard = Instant::now();
                    let reply = match incoming {
                        // The client went away, or closed (tungstenite answers its close).
                        None | Some(Ok(Frame::Close(_))) => return None,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "realtime: WebSocket read failed");
                            return Some(read_error(&e));
                        }
                        Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                        Some(Ok(Frame::Binary(_))) => Outcome::Reply(malformed(
                            "send JSON text messages, not binary ones",
                        )),
                        Some(Ok(Frame::Text(text))) => self.handle(text.as_str()).await,
                    };
                    match reply {
                        Outcome::Reply(text) => {
                            if !send(socket, Frame::text(text)).await {
                                return None;
                            }
                        }
                        Outcome::Close(text, frame) => {
                            return send(socket, Frame::text(text)).await.then_some(frame);
                        }
                    }
                }
                next = next_message(&mut self.sub) => {
                    let text = match next {
                        // Queued before an unsubscribe: not after its acknowledgement.
                        Some(Message::Event(e))
                            if !self.collections.contains_key(&e.envelope.collection) =>
                        {
                            continue;
                        }
                        Some(Message::Event(e)) => {
                            after_reset = false;
                            event_message(&e)
                        }
                        Some(Message::Reset) => {
                            after_reset = true;
                            json!({"type": "reset"}).to_string()
                        }
                        // Cut off after a reset: the consumer fell behind.
                        None if after_reset => {
                            return Some(close_frame(
                                TRY_AGAIN_LATER,
                                "fell behind: refetch, then reconnect",
                            ));
                        }
                        None => return Some(close_frame(GOING_AWAY, "the server is shutting down")),
                    };
                    self.sent = true;
                    if !send(socket, Frame::text(text)).await {
                        return None;
                    }
                }
                _ = beat.tick() => {
                    if heard.elapsed() >= IDLE {
                        tracing::debug!("realtime: a WebSocket client stopped answering pings");
                        return Some(close_frame(GOING_AWAY, "no answer to pings"));
                    }
                    if !send(socket, Frame::Ping(Default::default())).await {
                        return None;
                    }
                }
            }
        }
    }

    /// One text message from the client.
    async fn handle(&mut self, text: &str) -> Outcome {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(m) => m,
            Err(e) => {
                let detail = if serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()) {
                    format!("malformed message: {e}")
                } else {
                    "malformed message: send a JSON object with a `type` (`subscribe`, \
                     `unsubscribe` or `auth`)"
                        .to_string()
                };
                return Outcome::Reply(malformed(detail));
            }
        };
        match message {
            ClientMessage::Subscribe {
                collection,
                filter,
                since,
            } => self.subscribe(collection, filter, since).await,
            ClientMessage::Unsubscribe { collection } => {
                if let Some(sub) = &self.sub {
                    sub.unsubscribe(&collection);
                }
                self.collections.remove(&collection);
                Outcome::Reply(
                    json!({"type": "unsubscribed", "collection": collection}).to_string(),
                )
            }
            ClientMessage::Auth { access_token } => {
                match authenticate(&self.state, &access_token).await {
                    Ok(principal) => {
                        if let Some(sub) = &self.sub {
                            sub.set_principal(principal);
                        }
                        Outcome::Reply(json!({"type": "authenticated"}).to_string())
                    }
                    Err(problem) => Outcome::Close(
                        error_message(&problem, None),
                        close_frame(POLICY, "invalid access token"),
                    ),
                }
            }
        }
    }

    async fn subscribe(
        &mut self,
        collection: String,
        filter: Option<String>,
        since: Option<String>,
    ) -> Outcome {
        let refuse = |p: Problem| Outcome::Reply(error_message(&p, Some(&collection)));
        let principal = self
            .sub
            .as_ref()
            .map(Subscription::principal)
            .unwrap_or_default();
        let filter =
            match collection_filter(&self.state, &principal, &collection, filter.as_deref()) {
                Ok(f) => f,
                Err(p) => return refuse(p),
            };
        let acked = json!({"type": "subscribed", "collection": collection}).to_string();
        let Some(since) = since.filter(|s| !s.trim().is_empty()) else {
            if let Some(sub) = &self.sub {
                sub.subscribe(collection.clone(), filter.clone());
            }
            self.collections.insert(collection, filter);
            return Outcome::Reply(acked);
        };
        let since = match cursor(&since) {
            Ok(s) => s,
            Err(p) => return refuse(p),
        };
        if self.sent {
            return refuse(Problem::from(keel_core::CoreError::BadParam {
                param: "since",
                message: "a cursor applies to the whole socket and only before its first \
                          event; events were already sent: reconnect with `since=` the last \
                          cursor received"
                    .into(),
                position: None,
            }));
        }
        // Restart the feed from the cursor, for every collection. The old subscription
        // goes first, so it does not count against the connection caps.
        let mut collections = self.collections.clone();
        collections.insert(collection.clone(), filter);
        self.sub = None;
        let asked = Asked {
            principal,
            collections: collections.clone(),
            since: Some(since),
        };
        match subscribe(&self.state, asked, self.client_ip.clone()).await {
            Ok(sub) => {
                self.sub = Some(sub);
                self.collections = collections;
                Outcome::Reply(acked)
            }
            Err(p) => {
                let code = if p.status == 429 {
                    TRY_AGAIN_LATER
                } else {
                    INTERNAL
                };
                Outcome::Close(
                    error_message(&p, Some(&collection)),
                    close_frame(code, "could not restart the feed"),
                )
            }
        }
    }
}

/// The close frame after a failed read (axum does not expose tungstenite's error).
fn read_error(e: &axum::Error) -> CloseFrame {
    let text = e.to_string();
    if text.contains("Space limit exceeded") {
        close_frame(TOO_BIG, "messages are limited to 64 KiB")
    } else if text.contains("UTF-8") {
        close_frame(INVALID, "a text message is not UTF-8")
    } else {
        close_frame(PROTOCOL, "WebSocket protocol error")
    }
}

/// The subscription's next message; `None` (the end) without one.
async fn next_message(sub: &mut Option<Subscription>) -> Option<Message> {
    match sub {
        Some(s) => s.next().await,
        None => None,
    }
}

/// Read on until the peer's close (or a short while): reading also flushes the
/// answer to a close the client sent, so the connection ends cleanly.
pub(crate) async fn linger(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

/// Send one frame; `false` when the socket is gone or the peer stopped reading.
pub(crate) async fn send(socket: &mut WebSocket, frame: Frame) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await,
        Ok(Ok(()))
    )
}

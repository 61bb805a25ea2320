//! `GET /graphql` upgraded to a WebSocket: GraphQL over the `graphql-transport-ws`
//! protocol (the one the `graphql-ws` client speaks). Subscriptions run on the
//! realtime feed; queries and mutations run too, one `next` each.
//!
//! The caller is the bearer token of the upgrade request, or the one in the
//! `connection_init` payload as `{"Authorization": "Bearer …"}` (`access_token` is
//! accepted as well); a bad token there closes the socket with 4403.
//!
//! The protocol's close codes: 4400 a malformed message, 4401 `subscribe` before
//! `connection_ack`, 4403 a refused `connection_init`, 4406 no acceptable
//! subprotocol, 4408 no `connection_init` within 10 s, 4409 a second operation under
//! an id still running, 4429 a second `connection_init`; 1009 a message over 64 KiB;
//! 1001 at shutdown. A request error (a syntax error, a query invalid against the
//! schema, over a limit) answers `error`; an operation's own errors travel in `next`.
//! A subscriber that falls behind gets an event of type `reset`, then `complete`.

use crate::AppState;
use crate::realtime::ws::{linger, send};
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use keel_core::Principal;
use keel_graphql::{GraphQl, async_graphql};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The subprotocol this endpoint speaks.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// How long a client may take to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest client message accepted.
const MAX_MESSAGE: usize = 64 * 1024;

/// Messages queued for the socket before running operations wait for it.
const OUTBOX: usize = 256;

/// Close codes of `graphql-transport-ws`, and RFC 6455's.
const BAD_REQUEST: u16 = 4400;
const UNAUTHORIZED: u16 = 4401;
const FORBIDDEN: u16 = 4403;
const NOT_ACCEPTABLE: u16 = 4406;
const INIT_TIMED_OUT: u16 = 4408;
const ALREADY_EXISTS: u16 = 4409;
const TOO_MANY_INITS: u16 = 4429;
const GOING_AWAY: u16 = 1001;
const TOO_BIG: u16 = 1009;

/// Switch protocols. A client that offers subprotocols, none of them this one, is
/// closed with 4406 once upgraded (the protocol's rule); one that offers none is
/// served.
pub fn open(
    state: AppState,
    graphql: Arc<GraphQl>,
    caller: Principal,
    client_ip: String,
    offered_protocols: bool,
    upgrade: WebSocketUpgrade,
) -> Response {
    let upgrade = upgrade
        .protocols([PROTOCOL])
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    let acceptable = !offered_protocols || upgrade.selected_protocol().is_some();
    upgrade
        .on_upgrade(move |socket| async move {
            let session = Session {
                state,
                graphql,
                principal: caller,
                client_ip,
                acknowledged: false,
                operations: HashMap::new(),
                generation: 0,
            };
            session.run(socket, acceptable).await;
        })
        .into_response()
}

/// What a client sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Json>,
    },
    Ping {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Json>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Json>,
    },
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    Complete {
        id: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribePayload {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Json>,
    #[serde(default)]
    #[allow(dead_code)]
    extensions: Option<Json>,
}

/// What a running operation hands the socket: tagged with its id and generation,
/// so nothing of an operation the client completed is sent after it.
enum Out {
    Next(String, u64, Json),
    Error(String, u64, Json),
    /// The operation's stream ended.
    Done(String, u64),
}

/// One socket.
struct Session {
    state: AppState,
    graphql: Arc<GraphQl>,
    principal: Principal,
    client_ip: String,
    acknowledged: bool,
    /// Running operations by id: their generation and task.
    operations: HashMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
}

/// A close frame; its reason cut to the 123 bytes a close frame can carry.
fn close_frame(code: u16, reason: impl Into<String>) -> CloseFrame {
    let mut reason = reason.into();
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// The `next` payload of one response: `data`, `errors`, `extensions`.
pub fn execution_result(response: &async_graphql::Response, with_data: bool) -> Json {
    let mut body = Map::new();
    if with_data {
        body.insert(
            "data".into(),
            serde_json::to_value(&response.data).unwrap_or(Json::Null),
        );
    }
    if !response.errors.is_empty() {
        body.insert(
            "errors".into(),
            serde_json::to_value(&response.errors).unwrap_or(Json::Null),
        );
    }
    if !response.extensions.is_empty() {
        body.insert(
            "extensions".into(),
            serde_json::to_value(&response.extensions).unwrap_or(Json::Null),
        );
    }
    Json::Object(body)
}

fn errors_of(response: &async_graphql::Response) -> Json {
    serde_json::to_value(&response.errors).unwrap_or_else(|_| json!([]))
}

impl Session {
    async fn run(mut self, mut socket: WebSocket, acceptable: bool) {
        let end = if acceptable {
            self.serve(&mut socket).await
        } else {
            Some(close_frame(NOT_ACCEPTABLE, "Subprotocol not acceptable"))
        };
        for (_, (_, task)) in self.operations.drain() {
            task.abort();
        }
        if let Some(frame) = end {
            tracing::debug!(code = frame.code, reason = %frame.reason, "graphql: closing a WebSocket");
            if !send(&mut socket, Frame::Close(Some(frame))).await {
                return;
            }
        }
        linger(&mut socket).await;
    }

    /// Pump client messages and operation results until one side ends; the close
    /// frame to send, if any.
    async fn serve(&mut self, socket: &mut WebSocket) -> Option<CloseFrame> {
        let (tx, mut rx) = mpsc::channel::<Out>(OUTBOX);
        let heartbeat = crate::realtime::HEARTBEAT;
        let mut beat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
        tokio::pin!(init_deadline);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                biased;
                incoming = socket.recv() => {
                    heard = Instant::now();
                    let text = match incoming {
                        None | Some(Ok(Frame::Close(_))) => return None,
                        Some(Err(e)) => {
                            let big = e.to_string().contains("Space limit exceeded");
                            return Some(if big {
                                close_frame(TOO_BIG, "messages are limited to 64 KiB")
                            } else {
                                close_frame(BAD_REQUEST, "WebSocket protocol error")
                            });
                        }
                        Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                        Some(Ok(Frame::Binary(_))) => {
                            return Some(close_frame(BAD_REQUEST, "send JSON text messages"));
                        }
                        Some(Ok(Frame::Text(text))) => text,
                    };
                    match self.handle(text.as_str(), &tx).await {
                        Ok(Some(reply)) => {
                            if !send(socket, Frame::text(reply.to_string())).await {
                                return None;
                            }
                        }
                        Ok(None) => {}
                        Err(frame) => return Some(frame),
                    }
                }
                Some(out) = rx.recv() => {
                    let message = match out {
                        Out::Next(id, generation, payload) if self.current(&id, generation) => {
                            json!({"id": id, "type": "next", "payload": payload})
                        }
                        Out::Error(id, generation, payload) if self.current(&id, generation) => {
                            self.operations.remove(&id);
                            json!({"id": id, "type": "error", "payload": payload})
                        }
                        Out::Done(id, generation) if self.current(&id, generation) => {
                            self.operations.remove(&id);
                            if self.state.realtime.as_ref().is_some_and(|h| h.is_closed()) {
                                return Some(close_frame(GOING_AWAY, "the server is shutting down"));
                            }
                            json!({"id": id, "type": "complete"})
                        }
                        // Of an operation the client completed: dropped.
                        _ => continue,
                    };
                    if !send(socket, Frame::text(message.to_string())).await {
                        return None;
                    }
                }
                () = &mut init_deadline, if !self.acknowledged => {
                    return Some(close_frame(INIT_TIMED_OUT, "Connection initialisation timeout"));
                }
                _ = beat.tick() => {
                    if heard.elapsed() >= 3 * heartbeat {
                        return Some(close_frame(GOING_AWAY, "no answer to pings"));
                    }
                    if !send(socket, Frame::Ping(Default::default())).await {
                        return None;
                    }
                }
            }
        }
    }

    fn current(&self, id: &str, generation: u64) -> bool {
        self.operations
            .get(id)
            .is_some_and(|(g, _)| *g == generation)
    }

    /// One client message: the reply to send, or the close frame that ends the socket.
    async fn handle(
        &mut self,
        text: &str,
        tx: &mpsc::Sender<Out>,
    ) -> Result<Option<Json>, CloseFrame> {
        let message = serde_json::from_str::<ClientMessage>(text)
            .map_err(|e| close_frame(BAD_REQUEST, format!("Invalid message received: {e}")))?;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.acknowledged {
                    return Err(close_frame(
                        TOO_MANY_INITS,
                        "Too many initialisation requests",
                    ));
                }
                if let Some(token) = payload.as_ref().and_then(token_of) {
                    self.principal = self.authenticate(&token).await?;
                }
                self.acknowledged = true;
                Ok(Some(json!({"type": "connection_ack"})))
            }
            ClientMessage::Ping { .. } => Ok(Some(json!({"type": "pong"}))),
            ClientMessage::Pong { .. } => Ok(None),
            ClientMessage::Subscribe { id, payload } => {
                if !self.acknowledged {
                    return Err(close_frame(UNAUTHORIZED, "Unauthorized"));
                }
                if self.operations.contains_key(&id) {
                    return Err(close_frame(
                        ALREADY_EXISTS,
                        format!("Subscriber for {id} already exists"),
                    ));
                }
                self.start(id, payload, tx);
                Ok(None)
            }
            ClientMessage::Complete { id } => {
                if let Some((_, task)) = self.operations.remove(&id) {
                    task.abort();
                }
                Ok(None)
            }
        }
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, CloseFrame> {
        let refused = || {
            close_frame(
                FORBIDDEN,
                "Forbidden: the access token is invalid or expired",
            )
        };
        let auth = self.state.auth.as_ref().ok_or_else(refused)?;
        auth.authenticate(token).await.map_err(|_| refused())
    }

    /// Run one operation in its own task; its results reach the socket through `tx`.
    fn start(&mut self, id: String, payload: SubscribePayload, tx: &mpsc::Sender<Out>) {
        self.generation += 1;
        let generation = self.generation;
        let mut request = async_graphql::Request::new(payload.query);
        if let Some(name) = payload.operation_name {
            request = request.operation_name(name);
        }
        if let Some(v @ Json::Object(_)) = payload.variables {
            request = request.variables(async_graphql::Variables::from_json(v));
        }
        let started =
            self.graphql
                .execute_stream(self.principal.clone(), self.client_ip.clone(), request);
        let tx = tx.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let id = task_id;
            let mut stream = match started {
                Ok(s) => s,
                Err(refused) => {
                    let _ = tx
                        .send(Out::Error(id, generation, errors_of(&refused.response)))
                        .await;
                    return;
                }
            };
            let mut first = true;
            while let Some(response) = stream.next().await {
                let out = if first && keel_graphql::is_request_error(&response) {
                    let _ = tx
                        .send(Out::Error(id, generation, errors_of(&response)))
                        .await;
                    return;
                } else {
                    Out::Next(id.clone(), generation, execution_result(&response, true))
                };
                first = false;
                if tx.send(out).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Out::Done(id, generation)).await;
        });
        self.operations.insert(id, (generation, task));
    }
}

/// The token of a `connection_init` payload: `Authorization: Bearer …` (any case),
/// or `access_token`.
fn token_of(payload: &Json) -> Option<String> {
    let object = payload.as_object()?;
    let header = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str());
    if let Some(h) = header {
        let h = h.trim();
        let token = h
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map_or(h, |_| &h[7..]);
        return Some(token.trim().to_string());
    }
    object
        .get("access_token")
        .and_then(Json::as_str)
        .map(str::to_string)
}

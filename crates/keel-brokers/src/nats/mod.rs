//! `[events.nats]`: events published to NATS JetStream with async-nats.
//!
//! - **Subject** `<subject_prefix>.<collection>.<created|updated|deleted>`, body the
//!   envelope's JSON, headers `Nats-Msg-Id` = the event id (JetStream drops a second
//!   copy published within the stream's duplicate window, 2 minutes by default) and
//!   `Content-Type: application/json`.
//! - **Delivered** only once the server's publish ack arrives (the message is stored
//!   in the stream). A publish error, no ack within the timeout (5 s by default) or a
//!   client that is not connected answers [`Outcome::Retry`] with the reason, at once
//!   when the client knows it is disconnected. A delivery never waits longer than
//!   twice the timeout (ensuring the stream, then the ack), whatever the client does.
//! - **The stream** `stream` is created if missing, capturing `<subject_prefix>.>`
//!   with file storage and the server's defaults otherwise (no limits: set `max_age`
//!   and friends on the stream as the operator). An existing stream is used as it is
//!   when one of its subjects already captures `<subject_prefix>.>`; otherwise
//!   `<subject_prefix>.>` is **added** to its subjects (its other subjects and
//!   settings are kept, a warning is logged). If the server refuses that — another
//!   stream already captures those subjects — it is a [`BrokerError::Stream`] naming
//!   both sides.
//! - **Connecting.** [`NatsSink::connect`] tries the server once: an unusable URL,
//!   refused credentials, a TLS failure or a stream conflict fail it. A server that
//!   cannot be reached (refused, timed out, DNS) does not: the sink is returned with a
//!   client that keeps connecting in the background, deliveries answer `Retry` until
//!   it is up, and the stream is ensured on the first delivery after that. Once
//!   connected, async-nats reconnects by itself after any loss, forever, with its
//!   backoff (up to 4 s between attempts); if the stream went missing (deleted by
//!   hand) it is ensured again on the next delivery.

use crate::BrokerError;
use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use keel_events::{Envelope, Outcome, Sink};
use keel_spec::model::NatsConfig;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream::Ensure;

mod stream;

/// How long one publish waits for its ack (and one stream request for its answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Events published to a JetStream stream. Cheap to share (`Arc` it); deliveries run
/// concurrently over one connection.
pub struct NatsSink {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream: String,
    subject_prefix: String,
    timeout: Duration,
    /// The stream is known to exist and capture our subjects.
    stream_ready: AtomicBool,
    /// Serialises ensuring the stream (one request at a time, not one per delivery).
    ensuring: tokio::sync::Mutex<()>,
    /// The client's last error event, for the `Retry` text while disconnected.
    last_error: Arc<Mutex<Option<String>>>,
}

impl NatsSink {
    /// Connect to `config.url` (one address or several, comma-separated) and ensure
    /// the stream; see the module docs for what fails and what is retried in the
    /// background.
    pub async fn connect(config: &NatsConfig) -> Result<NatsSink, BrokerError> {
        validate_names(&config.stream, &config.subject_prefix)?;
        let addrs = parse_addrs(&config.url)?;
        let last_error = Arc::new(Mutex::new(None));
        let first = options(&last_error, DEFAULT_TIMEOUT)
            .connect(addrs.clone())
            .await;
        let (client, connected) = match first {
            Ok(client) => (client, true),
            Err(e) => match e.kind() {
                ConnectErrorKind::Io | ConnectErrorKind::Dns | ConnectErrorKind::TimedOut => {
                    tracing::warn!(
                        error = %e,
                        "NATS not reachable: connecting in the background; deliveries are retried until it is up"
                    );
                    remember(&last_error, e.to_string());
                    let client = options(&last_error, DEFAULT_TIMEOUT)
                        .retry_on_initial_connect()
                        .connect(addrs)
                        .await
                        .map_err(|e| BrokerError::Connect {
                            broker: "NATS",
                            reason: e.to_string(),
                        })?;
                    (client, false)
                }
                _ => {
                    return Err(BrokerError::Connect {
                        broker: "NATS",
                        reason: e.to_string(),
                    });
                }
            },
        };
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(DEFAULT_TIMEOUT);
        let sink = NatsSink {
            client,
            js,
            stream: config.stream.clone(),
            subject_prefix: config.subject_prefix.clone(),
            timeout: DEFAULT_TIMEOUT,
            stream_ready: AtomicBool::new(false),
            ensuring: tokio::sync::Mutex::new(()),
            last_error,
        };
        if connected {
            match tokio::time::timeout(DEFAULT_TIMEOUT * 2, sink.ensure_stream()).await {
                Ok(Ok(())) => {}
                Ok(Err(Ensure::Refused(e))) => return Err(e),
                Ok(Err(Ensure::Unavailable(reason))) => {
                    tracing::warn!(%reason, stream = %sink.stream, "NATS stream not ensured yet: retried on the first delivery");
                }
                Err(_) => {
                    tracing::warn!(stream = %sink.stream, "NATS stream not ensured in time: retried on the first delivery");
                }
            }
        }
        Ok(sink)
    }

    /// Wait at most `timeout` for each publish ack (default [`DEFAULT_TIMEOUT`]); a
    /// whole delivery takes at most twice that (ensuring the stream, then the ack).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.js.set_timeout(timeout);
        self
    }

    /// Whether the client is connected to a server right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The subject an event is published to.
    pub fn subject(&self, event: &Envelope) -> String {
        format!(
            "{}.{}.{}",
            self.subject_prefix,
            event.collection,
            event.op()
        )
    }

    async fn publish(&self, event: &Envelope, body: &[u8]) -> Outcome {
        if !self.is_connected() {
            let last = self.last_error.lock().ok().and_then(|g| g.clone());
            return retry(match last {
                Some(e) => format!("not connected to NATS (last error: {e})"),
                None => "not connected to NATS".to_owned(),
            });
        }
        if !self.stream_ready.load(Ordering::Acquire) {
            let _one = self.ensuring.lock().await;
            if !self.stream_ready.load(Ordering::Acquire) {
                match self.ensure_stream().await {
                    Ok(()) => {}
                    Err(Ensure::Refused(e)) => return retry(e.to_string()),
                    Err(Ensure::Unavailable(e)) => return retry(e),
                }
            }
        }
        let message = PublishMessage::build()
            .payload(body.to_vec().into())
            .message_id(event.id.to_string())
            .header("Content-Type", "application/json");
        let ack = match self.js.send_publish(self.subject(event), message).await {
            Ok(ack) => ack,
            Err(e) => return self.publish_failed(e.kind(), &e.to_string()),
        };
        match ack.await {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(event = %event.id, seq = ack.sequence, "NATS: duplicate dropped by the stream");
                }
                Outcome::Delivered { status: None }
            }
            Err(e) => self.publish_failed(e.kind(), &e.to_string()),
        }
    }

    fn publish_failed(&self, kind: PublishErrorKind, text: &str) -> Outcome {
        if kind == PublishErrorKind::StreamNotFound {
            // Deleted behind our back: ensure it again on the next delivery.
            self.stream_ready.store(false, Ordering::Release);
        }
        retry(format!("NATS publish: {text}"))
    }

    /// Ensure the stream, and remember it is ready.
    async fn ensure_stream(&self) -> Result<(), Ensure> {
        stream::ensure(&self.js, &self.stream, &self.subject_prefix).await?;
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    fn deliver<'a>(
        &'a self,
        event: &'a Envelope,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            // Ensuring the stream and the ack each wait at most `timeout`; this bound
            // holds whatever the client does.
            match tokio::time::timeout(self.timeout * 2, self.publish(event, body)).await {
                Ok(outcome) => outcome,
                Err(_) => retry(format!("NATS: no answer within {:?}", self.timeout * 2)),
            }
        })
    }

    /// Acks are pipelined on one connection: many in flight hide the round trip.
    fn concurrency(&self) -> usize {
        32
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        status: None,
        error,
        after: None,
    }
}

fn remember(slot: &Mutex<Option<String>>, error: String) {
    if let Ok(mut slot) = slot.lock() {
        *slot = Some(error);
    }
}

fn options(last_error: &Arc<Mutex<Option<String>>>, timeout: Duration) -> ConnectOptions {
    let slot = last_error.clone();
    ConnectOptions::new()
        .name("keel")
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .max_reconnects(None)
        .event_callback(move |event| {
            let slot = slot.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if let Ok(mut s) = slot.lock() {
                            *s = None;
                        }
                    }
                    async_nats::Event::ServerError(e) => remember(&slot, e.to_string()),
                    async_nats::Event::ClientError(e) => remember(&slot, e.to_string()),
                    _ => {}
                }
            }
        })
}

/// `nats://host:4222`, `tls://…`, `host:4222`, several separated by commas.
fn parse_addrs(url: &str) -> Result<Vec<ServerAddr>, BrokerError> {
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ServerAddr>()
                .map_err(|e| BrokerError::InvalidUrl {
                    broker: "NATS",
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(BrokerError::InvalidUrl {
            broker: "NATS",
            reason: "empty".into(),
        });
    }
    Ok(addrs)
}

fn validate_names(stream: &str, prefix: &str) -> Result<(), BrokerError> {
    let bad = |c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\');
    if stream.is_empty() || stream.contains(bad) {
        return Err(BrokerError::Config(format!(
            "NATS stream name `{stream}` must be non-empty, without spaces, `.`, `*`, `>`, `/` or `\\`"
        )));
    }
    let bad_token =
        |t: &str| t.is_empty() || t == "*" || t == ">" || t.contains(char::is_whitespace);
    if prefix.split('.').any(bad_token) || prefix.contains(['*', '>']) {
        return Err(BrokerError::Config(format!(
            "NATS subject prefix `{prefix}` must be dot-separated literal tokens (no wildcards, spaces or empty tokens)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls_are_checked() {
        assert!(validate_names("KEEL_SOCIAL", "keel.social").is_ok());
        assert!(validate_names("KEEL.SOCIAL", "keel.social").is_err());
        assert!(validate_names("", "keel").is_err());
        assert!(validate_names("S", "keel.*").is_err());
        assert!(validate_names("S", "keel..x").is_err());
        assert!(validate_names("S", "keel.>").is_err());
        assert!(validate_names("S", "").is_err());
        assert!(parse_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223").is_ok());
        assert!(parse_addrs("").is_err());
        assert!(parse_addrs("http://[nope").is_err());
    }
}

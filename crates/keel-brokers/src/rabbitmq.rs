//! `[events.rabbitmq]`: events published to a RabbitMQ topic exchange with lapin.
//!
//! - **The exchange** `exchange` is declared durable, of type `topic` (declaring is
//!   idempotent; an existing exchange of another type or durability is a
//!   [`BrokerError::Exchange`]). Keel declares no queue: consumers bind their own.
//! - **Each event** is published with routing key `<collection>.<op>` (e.g.
//!   `posts.updated`), persistent (`delivery_mode` 2), `message_id` = the event id,
//!   `content_type` = `application/json`, `type` = the event type, body the envelope's
//!   JSON.
//! - **Delivered** only when the broker's publisher confirm (an ack) arrives: the
//!   channel is in confirm mode. A nack, a lost connection or no confirm within the
//!   timeout (5 s by default) answers [`Outcome::Retry`]. Messages are published
//!   without `mandatory`: an event no queue is bound for is acked by the broker and
//!   counts as delivered (a topic exchange routes by interest; nobody interested is
//!   not a failure, and `mandatory` would retry such events forever).
//! - **Connecting.** [`RabbitMqSink::connect`] tries the broker once: an unusable URL,
//!   refused credentials or vhost, or a conflicting exchange fail it; an unreachable
//!   broker does not (the sink connects on its first delivery). lapin does not
//!   reconnect by itself here (its experimental auto-recovery gives up after a fixed
//!   number of attempts), so the sink does: a delivery that finds the connection or
//!   channel gone opens a new one and declares the exchange again. Failed attempts
//!   back off exponentially with jitter (200 ms doubling to 10 s); deliveries that
//!   come within a back-off answer `Retry` at once, without touching the network.

use crate::BrokerError;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use keel_events::{Envelope, Outcome, Sink};
use keel_spec::model::RabbitMqConfig;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

/// How long connecting, and one publish's confirm, may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Events published to a topic exchange. Cheap to share (`Arc` it); deliveries run
/// concurrently on one confirm-mode channel.
pub struct RabbitMqSink {
    url: String,
    exchange: String,
    timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

/// The live connection, or when to try again.
struct State {
    live: Option<(Connection, Channel)>,
    retry_at: Option<Instant>,
    backoff: ExponentialBackoff,
    last_error: Option<String>,
}

enum Open {
    /// The broker answered no (credentials, vhost, exchange): a configuration problem.
    Refused(BrokerError),
    /// No usable answer (refused, reset, timed out): try again later.
    Unavailable(String),
}

impl RabbitMqSink {
    /// Connect to `config.url` (`amqp://user:pass@host:5672/%2f`, or `amqps://`),
    /// declare the exchange and enable publisher confirms; see the module docs for
    /// what fails and what is retried.
    pub async fn connect(config: &RabbitMqConfig) -> Result<RabbitMqSink, BrokerError> {
        config
            .url
            .parse::<AMQPUri>()
            .map_err(|reason| BrokerError::InvalidUrl {
                broker: "RabbitMQ",
                reason,
            })?;
        if config.exchange.is_empty() {
            return Err(BrokerError::Config(
                "the RabbitMQ exchange name must not be empty (the default exchange routes by queue name, not by topic)".into(),
            ));
        }
        let sink = RabbitMqSink {
            url: config.url.clone(),
            exchange: config.exchange.clone(),
            timeout: DEFAULT_TIMEOUT,
            state: tokio::sync::Mutex::new(State {
                live: None,
                retry_at: None,
                backoff: backoff(),
                last_error: None,
            }),
        };
        match sink.open().await {
            Ok(live) => sink.state.lock().await.live = Some(live),
            Err(Open::Refused(e)) => return Err(e),
            Err(Open::Unavailable(reason)) => {
                tracing::warn!(%reason, "RabbitMQ not reachable: connecting on the first delivery");
                sink.state.lock().await.last_error = Some(reason);
            }
        }
        Ok(sink)
    }

    /// Wait at most `timeout` for connecting and for each confirm (default
    /// [`DEFAULT_TIMEOUT`]); a whole delivery takes at most twice that.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the sink holds an open connection and channel right now.
    pub async fn is_connected(&self) -> bool {
        self.state
            .lock()
            .await
            .live
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
    }

    /// The routing key of an event: `<collection>.<op>`.
    pub fn routing_key(event: &Envelope) -> String {
        format!("{}.{}", event.collection, event.op())
    }

    /// Connect, open a channel in confirm mode and declare the exchange.
    async fn open(&self) -> Result<(Connection, Channel), Open> {
        let connect_error = |e: lapin::Error| match e.kind() {
            lapin::ErrorKind::ProtocolError(_) => Open::Refused(BrokerError::Connect {
                broker: "RabbitMQ",
                reason: e.to_string(),
            }),
            _ => Open::Unavailable(format!("RabbitMQ connection: {e}")),
        };
        let steps = async {
            let props = ConnectionProperties::default().with_connection_name("keel".into());
            let conn = Connection::connect(&self.url, props)
                .await
                .map_err(connect_error)?;
            let channel = conn.create_channel().await.map_err(connect_error)?;
            let declared = channel
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            declared.map_err(|e| match e.kind() {
                lapin::ErrorKind::ProtocolError(_) => Open::Refused(BrokerError::Exchange {
                    exchange: self.exchange.clone(),
                    reason: format!("cannot declare it as a durable topic exchange: {e}"),
                }),
                _ => Open::Unavailable(format!("RabbitMQ exchange declaration: {e}")),
            })?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(connect_error)?;
            Ok((conn, channel))
        };
        match tokio::time::timeout(self.timeout, steps).await {
            Ok(result) => result,
            Err(_) => Err(Open::Unavailable(format!(
                "RabbitMQ connection: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// The live channel, reconnecting if it is gone and the back-off allows.
    async fn channel(&self) -> Result<Channel, String> {
        let mut state = self.state.lock().await;
        if let Some((conn, channel)) = &state.live {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            tracing::warn!(
                exchange = %self.exchange,
                "RabbitMQ connection or channel lost: reconnecting"
            );
            state.live = None; // dropping the handles closes what is left of it
        }
        if let Some(at) = state.retry_at {
            let now = Instant::now();
            if now < at {
                let wait = at - now;
                return Err(format!(
                    "{}; next connection attempt in {} ms",
                    state
                        .last_error
                        .as_deref()
                        .unwrap_or("RabbitMQ connection lost"),
                    wait.as_millis()
                ));
            }
        }
        match self.open().await {
            Ok((conn, channel)) => {
                state.live = Some((conn, channel.clone()));
                state.retry_at = None;
                state.backoff = backoff();
                state.last_error = None;
                tracing::info!(exchange = %self.exchange, "RabbitMQ connected");
                Ok(channel)
            }
            Err(failed) => {
                let reason = match failed {
                    Open::Refused(e) => e.to_string(),
                    Open::Unavailable(reason) => reason,
                };
                let delay = state.backoff.next().unwrap_or(MAX_BACKOFF);
                state.retry_at = Some(Instant::now() + delay);
                state.last_error = Some(reason.clone());
                Err(reason)
            }
        }
    }

    /// Forget the connection this channel belongs to: the next delivery reconnects.
    async fn discard(&self, failed: &Channel) {
        let mut state = self.state.lock().await;
        if state
            .live
            .as_ref()
            .is_some_and(|(_, ch)| ch.id() == failed.id())
        {
            state.live = None;
        }
    }

    async fn publish(&self, event: &Envelope, body: &[u8]) -> Outcome {
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(e) => return retry(e),
        };
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(event.id.to_string().into())
            .with_content_type("application/json".into())
            .with_type(event.kind.as_str().into());
        let published = channel
            .basic_publish(
                self.exchange.as_str().into(),
                Self::routing_key(event).into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await;
        let mut confirm = match published {
            Ok(confirm) => confirm,
            Err(e) => {
                self.discard(&channel).await;
                return retry(format!("RabbitMQ publish: {e}"));
            }
        };
        match tokio::time::timeout(self.timeout, &mut confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => Outcome::Delivered { status: None },
            Ok(Ok(Confirmation::Nack(_))) => retry("RabbitMQ nacked the message".into()),
            Ok(Ok(Confirmation::NotRequested)) => {
                self.discard(&channel).await;
                retry("RabbitMQ channel lost confirm mode".into())
            }
            Ok(Err(e)) => {
                self.discard(&channel).await;
                retry(format!("RabbitMQ confirm: {e}"))
            }
            Err(_) => {
                // Keep awaiting it elsewhere: an abandoned confirm would be parked in
                // the channel until someone waits for all confirms.
                tokio::spawn(async move {
                    let _ = confirm.await;
                });
                retry(format!("RabbitMQ: no confirm within {:?}", self.timeout))
            }
        }
    }
}

impl Sink for RabbitMqSink {
    fn name(&self) -> &str {
        "rabbitmq"
    }

    fn deliver<'a>(
        &'a self,
        event: &'a Envelope,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            // Connecting and the confirm each wait at most `timeout`; this bound holds
            // whatever lapin does.
            match tokio::time::timeout(self.timeout * 2, self.publish(event, body)).await {
                Ok(outcome) => outcome,
                Err(_) => retry(format!("RabbitMQ: no answer within {:?}", self.timeout * 2)),
            }
        })
    }

    /// Confirms are pipelined on one channel: many in flight hide the round trip.
    fn concurrency(&self) -> usize {
        32
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        status: None,
        error,
        after: None,
    }
}

//! A destination events are delivered to, and how one delivery attempt ends. Which
//! events a destination receives is decided from the model when the change is
//! written (its deliveries are rows in the same transaction); the relay owns retries,
//! ordering, leases and the circuit breaker; a sink only attempts.

use crate::Envelope;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (a 2xx, a JetStream publish ack, a RabbitMQ confirm).
    Delivered { status: Option<u16> },
    /// Not accepted now; try again later (`after`: the destination's own
    /// `Retry-After`, else the relay's schedule).
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// The destination asked never to be called again (a webhook's 410): it is
    /// disabled until re-enabled.
    Gone { status: Option<u16> },
}

/// A destination: a webhook, a broker.
pub trait Sink: Send + Sync {
    /// The destination's stable name in the deliveries table and in metrics, e.g.
    /// `webhook:moderation`, `nats`, `rabbitmq`.
    fn name(&self) -> &str;

    /// Attempt one delivery. `body` is the envelope's JSON, already serialized.
    fn deliver<'a>(
        &'a self,
        event: &'a Envelope,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

    /// At most this many deliveries to this destination in flight at once.
    fn concurrency(&self) -> usize {
        8
    }
}

//! Keel's broker destinations for events, kept in their own crate because their
//! clients are heavy to build: the relay (in `keel-events`) stays quick to rebuild.
//!
//! - [`nats`]: [`NatsSink`], NATS JetStream (async-nats);
//! - [`rabbitmq`]: [`RabbitMqSink`], a RabbitMQ topic exchange (lapin).
//!
//! Both implement [`keel_events::Sink`]: an attempt answers `Delivered` only once the
//! broker has taken responsibility for the event (a JetStream publish ack, a RabbitMQ
//! publisher confirm), `Retry` otherwise, never hangs beyond its timeout, and both
//! come back by themselves after the broker does. The event id travels as the
//! message id (`Nats-Msg-Id`, AMQP `message_id`) so consumers deduplicate on it:
//! delivery is at least once.
//!
//! TLS (`tls://`, `amqps://`) goes through rustls with the aws-lc-rs provider, the
//! process's one provider: neither client pulls `ring`.

pub mod nats;
pub mod rabbitmq;

pub use nats::NatsSink;
pub use rabbitmq::RabbitMqSink;

/// Why a broker sink could not be set up. Only configuration problems are errors: a
/// broker that is down when Keel starts is not (the sink connects later).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid {broker} URL: {reason}")]
    InvalidUrl {
        broker: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{broker} refused the connection: {reason}")]
    Connect {
        broker: &'static str,
        reason: String,
    },
    #[error("NATS stream `{stream}`: {reason}")]
    Stream { stream: String, reason: String },
    #[error("RabbitMQ exchange `{exchange}`: {reason}")]
    Exchange { exchange: String, reason: String },
}

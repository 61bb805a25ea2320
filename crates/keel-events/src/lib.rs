//! Events: every committed change becomes one [`Envelope`], written to the outbox in
//! the change's transaction (by the core) and relayed after commit, at least once, to
//! every destination that wants it ([`Sink`]: a webhook, NATS JetStream, RabbitMQ).
//!
//! - [`envelope`]: the JSON every destination (and the realtime feed) receives;
//! - [`sink`]: what a destination is, and how a delivery attempt ends ([`Outcome`]).

pub mod envelope;
pub mod sink;

pub use envelope::Envelope;
pub use sink::{Outcome, Sink};

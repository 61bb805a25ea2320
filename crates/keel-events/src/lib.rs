//! Events: every committed change becomes one [`Envelope`], written to the outbox in
//! the change's transaction (by the core) and relayed after commit, at least once, to
//! every destination that wants it ([`Sink`]: a webhook, NATS JetStream, RabbitMQ).
//!
//! - [`envelope`]: the JSON every destination (and the realtime feed) receives;
//! - [`sink`]: what a destination is, and how a delivery attempt ends ([`Outcome`]);
//! - [`signature`]: Standard Webhooks secrets, signing and verification;
//! - [`schedule`]: the retry schedule (backoff, jitter, `Retry-After`);
//! - [`breaker`]: the circuit breaker of one endpoint;
//! - [`webhook`]: the webhook sink (signed, private addresses refused);
//! - [`relay`]: the outbox relay every node runs (its outcomes written in batches by
//!   `outcomes`; on SQLite first attempts made straight from the outbox, `fresh`);
//!   [`metrics`]: what it reports.

pub mod breaker;
pub mod envelope;
mod fresh;
pub mod metrics;
mod outcomes;
pub mod relay;
pub mod schedule;
pub mod signature;
pub mod sink;
pub mod webhook;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use envelope::Envelope;
pub use relay::{Relay, RelaySettings};
pub use schedule::RetrySchedule;
pub use signature::{SecretError, VerifyError, WebhookSecret, WebhookSecrets};
pub use sink::{Outcome, Sink};
pub use webhook::WebhookSink;

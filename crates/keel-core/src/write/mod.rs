//! The parts every write shares: input, guard, outbox, idempotency, constraints.

mod cascade;
mod constraint;
mod guard;
pub(crate) mod idempotency;
pub(crate) mod input;
pub(crate) mod outbox;

//! The parts every write shares: input, guard, outbox, idempotency, constraints.

mod constraint;
mod guard;
pub(crate) mod idempotency;
pub(crate) mod input;
mod outbox;

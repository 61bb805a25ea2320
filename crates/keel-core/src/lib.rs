//! The operation core: validate → authorize → execute in a transaction → outbox.
//! Knows nothing of HTTP; every surface (REST now, GraphQL and realtime later) calls
//! [`Engine`].

pub mod crypto;
pub mod cursor;
mod engine;
pub mod error;
pub mod principal;
pub mod ratelimit;
pub mod sql;
mod statements;
pub mod values;

pub use engine::{Created, DEFAULT_LIMIT, Engine, ListParams, MAX_LIMIT, Page};
pub use error::{CoreError, FieldError};
pub use principal::Principal;

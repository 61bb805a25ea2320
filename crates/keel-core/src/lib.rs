//! The operation core: validate → authorize → execute in a transaction → outbox.
//! Knows nothing of HTTP; every surface (REST now, GraphQL and realtime later) calls
//! [`Engine`].

pub mod cache;
pub mod crypto;
pub mod cursor;
mod engine;
pub mod error;
mod ops;
pub mod principal;
mod query;
pub mod ratelimit;
pub mod recent_writes;
mod record;
pub mod sql;
mod statements;
pub mod values;
mod write;

pub use engine::{Created, Engine};
pub use error::{CoreError, ErrorCode, FieldError};
pub use principal::Principal;
pub use query::{
    DEFAULT_LIMIT, ListQuery, ListText, MAX_LIMIT, Page, PageText, Projection, SortKey,
};
pub use record::RecordText;
pub use write::outbox::{NATS_DESTINATION, RABBITMQ_DESTINATION, webhook_destination};

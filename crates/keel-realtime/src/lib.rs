//! The realtime feed: every committed event, read once per node from the outbox in
//! stream order ([`feed`]), fanned out to the subscribers that may read its record
//! ([`hub`], [`access`]), each through a bounded queue; a subscriber that falls behind
//! is told to `reset` and dropped, never buffered without bound. SSE and WebSocket
//! (keel-http) and GraphQL subscriptions are adapters over a [`hub::Subscription`].

pub mod access;
pub mod feed;
pub mod hub;

pub use feed::{FeedEvent, FeedReader};
pub use hub::{Hub, HubError, Message, Subscription, SubscriptionRequest};

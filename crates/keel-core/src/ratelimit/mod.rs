//! Rate limits every surface shares: which quotas apply to what a caller asks
//! ([`policy`]), and where their state lives (a [`LimitStore`]: in this process by
//! default, Redis when many nodes must enforce one limit).

mod memory;
pub mod policy;

pub use memory::RateLimiter;
pub use policy::{AuthAction, LimitPolicy, LimitTarget, OpKind, RateLimits, Verdict};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// `requests` per `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Names the policy in `RateLimit-Policy`.
    pub name: String,
    pub requests: u32,
    pub period: Duration,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// Until the quota is whole again (RateLimit `t`), or, when refused, until the
    /// next request would be allowed (Retry-After).
    pub reset: Duration,
}

/// Where rate-limit state lives. A trait so the app is built with the in-process
/// store (one node) or a shared one (many nodes) without the surfaces knowing.
pub trait LimitStore: Send + Sync {
    /// Count one request for `key` under `quota`.
    fn check<'a>(
        &'a self,
        quota: &'a Quota,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;
}

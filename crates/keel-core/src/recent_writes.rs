//! Read-your-writes over replicas: who wrote in the last moments, so their reads go
//! to the primary while the replicas may not have their write yet. The window is the
//! replicas' allowed lag plus a probe, after which every replica in service has it.

use crate::cache::CacheFuture;
use crate::principal::Principal;
use std::time::Duration;

/// Who wrote recently. Shared by every node when it lives in Redis.
pub trait RecentWrites: Send + Sync {
    /// `who` has just committed a write.
    fn mark<'a>(&'a self, who: &'a str) -> CacheFuture<'a, ()>;
    /// Whether `who` wrote within the window (when unsure: yes).
    fn recent<'a>(&'a self, who: &'a str) -> CacheFuture<'a, bool>;
}

/// The key a caller's writes are noted under: its id, or one shared key for every
/// anonymous caller (so an anonymous writer reads its write too, at the cost of all
/// anonymous reads going to the primary for a moment). `None` for Keel itself.
pub fn writer_key(principal: &Principal) -> Option<String> {
    if principal.system {
        return None;
    }
    Some(
        principal
            .id
            .map_or_else(|| "anonymous".to_string(), |id| id.simple().to_string()),
    )
}

/// Recent writers noted in this process: read-your-writes on this node only.
pub struct LocalRecentWrites {
    writers: moka::sync::Cache<String, ()>,
}

impl LocalRecentWrites {
    /// Writers are remembered for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            writers: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(window)
                .build(),
        }
    }

    pub fn note(&self, who: &str) {
        self.writers.insert(who.to_string(), ());
    }

    pub fn contains(&self, who: &str) -> bool {
        self.writers.contains_key(who)
    }
}

impl RecentWrites for LocalRecentWrites {
    fn mark<'a>(&'a self, who: &'a str) -> CacheFuture<'a, ()> {
        self.note(who);
        Box::pin(std::future::ready(()))
    }

    fn recent<'a>(&'a self, who: &'a str) -> CacheFuture<'a, bool> {
        Box::pin(std::future::ready(self.contains(who)))
    }
}

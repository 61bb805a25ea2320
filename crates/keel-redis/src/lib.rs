//! What many nodes share through Redis: rate limits ([`RedisLimitStore`], one atomic
//! GCRA script per check) and the record cache ([`RedisRecordCache`], versioned
//! entries written through by every write), over one [`RedisLink`] per node. Redis
//! going away never fails a request: limits fall back to per-node counting and the
//! cache to the database, and both come back by themselves.

mod cache;
mod limits;
mod link;
mod recent_writes;

pub use cache::RedisRecordCache;
pub use limits::RedisLimitStore;
pub use link::{PROBE_EVERY, RedisHealth, RedisLink, RedisUrlError, validate_url};
pub use recent_writes::RedisRecentWrites;

/// How a client (an address, an email, a user id) is named in a Redis key: its
/// HMAC-SHA-256 under the secret every node shares, 128 bits in hex. The same client
/// is the same key on every node, and Redis never holds it in plain text (nor a plain
/// hash of it, which the small IPv4 space would give away).
pub(crate) fn client_mac(secret: &[u8], client: &str) -> String {
    use hmac::Mac;
    use std::fmt::Write;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(client.as_bytes());
    let mut out = String::with_capacity(32);
    for b in &mac.finalize().into_bytes()[..16] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

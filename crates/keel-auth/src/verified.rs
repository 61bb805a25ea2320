//! Access tokens already verified, so a client that sends the same token on every
//! request pays for one Ed25519 verification, not one per request. An entry is used
//! only while the token's own validity window holds; keys are only ever added to the
//! ring, never withdrawn, so a signature once good stays good for the token's life.

use crate::jwt::{self, TokenError};
use keel_core::Principal;
use std::collections::HashMap;
use std::sync::Mutex;

/// At most this many tokens are remembered; a full cache starts over (an attacker
/// can fill it only with tokens Keel itself signed).
const CAPACITY: usize = 4096;

struct Entry {
    principal: Principal,
    nbf: i64,
    exp: i64,
}

/// Verified tokens and the principals they name.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<Box<str>, Entry>>,
}

impl VerifiedTokens {
    /// The principal of a token verified before, if `now` is inside its window.
    /// `Err` when it was verified but has expired since.
    pub fn get(&self, token: &str, now: i64) -> Option<Result<Principal, TokenError>> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(token)?;
        Some(jwt::in_window(now, e.nbf, e.exp).map(|()| e.principal.clone()))
    }

    /// Remember a token that passed verification.
    pub fn insert(&self, token: &str, principal: &Principal, nbf: i64, exp: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            token.into(),
            Entry {
                principal: principal.clone(),
                nbf,
                exp,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            id: Some(uuid::Uuid::now_v7()),
            email: Some("alice@example.com".into()),
            roles: vec!["member".into()],
            system: false,
        }
    }

    #[test]
    fn a_remembered_token_holds_only_inside_its_window() {
        let cache = VerifiedTokens::default();
        assert!(cache.get("t", 1_000).is_none(), "nothing remembered yet");
        cache.insert("t", &alice(), 900, 1_100);
        let p = cache.get("t", 1_000).expect("remembered").expect("valid");
        assert_eq!(p.email.as_deref(), Some("alice@example.com"));
        assert_eq!(p.roles, vec!["member".to_string()]);
        let late = 1_100 + jwt::LEEWAY_SECS + 1;
        assert!(matches!(
            cache.get("t", late),
            Some(Err(TokenError::Expired))
        ));
        let early = 900 - jwt::LEEWAY_SECS - 1;
        assert!(matches!(
            cache.get("t", early),
            Some(Err(TokenError::NotYetValid))
        ));
        assert!(cache.get("other", 1_000).is_none());
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            cache.insert(&format!("t{i}"), &alice(), 0, 10);
        }
        assert!(cache.get("t0", 5).is_some());
        cache.insert("one-more", &alice(), 0, 10);
        assert!(cache.get("t0", 5).is_none(), "the cache was emptied");
        assert!(cache.get("one-more", 5).is_some());
    }
}

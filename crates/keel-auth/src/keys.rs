//! The signing keys, kept in the database so every node signs and verifies with the
//! same ones. The newest key signs; every key verifies, so rotating (`keel admin
//! rotate-key`) logs nobody out. Nodes reload the set when they meet an unknown `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use keel_spec::Storage;
use keel_store::{Dialect, Stmt, Store, StoreError};
use std::sync::RwLock;
use std::time::{Duration, Instant};

struct Key {
    kid: String,
    signing: SigningKey,
    /// The public half, derived once: deriving it is a scalar multiplication, too
    /// dear to repeat for every request that carries a token.
    verifying: VerifyingKey,
}

/// The set of signing keys.
pub struct KeyRing {
    store: Store,
    keys: RwLock<Vec<Key>>,
    last_reload: RwLock<Instant>,
}

fn p(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

impl KeyRing {
    /// Load the keys, creating the first one if there is none.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let ring = Self {
            store,
            keys: RwLock::new(Vec::new()),
            last_reload: RwLock::new(Instant::now()),
        };
        ring.reload().await?;
        if ring.keys.read().map(|k| k.is_empty()).unwrap_or(true) {
            ring.rotate().await?;
        }
        Ok(ring)
    }

    /// Read the keys again from the database.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let rows = self
            .store
            .query(
                &Stmt::new(
                    "SELECT kid, private_key FROM _keel_signing_keys ORDER BY created_at, kid",
                    vec![],
                ),
                &[Storage::Text, Storage::Text],
            )
            .await?;
        let keys: Vec<Key> = rows
            .iter()
            .filter_map(|r| {
                let kid = r.first()?.as_str()?.to_string();
                let seed: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(r.get(1)?.as_str()?)
                    .ok()?
                    .try_into()
                    .ok()?;
                let signing = SigningKey::from_bytes(&seed);
                Some(Key {
                    kid,
                    verifying: signing.verifying_key(),
                    signing,
                })
            })
            .collect();
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
        if let Ok(mut t) = self.last_reload.write() {
            *t = Instant::now();
        }
        Ok(())
    }

    /// Add a new key; it signs from now on. Returns its id.
    pub async fn rotate(&self) -> Result<String, StoreError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| StoreError::Other(e.to_string()))?;
        let kid = format!("k{}", uuid::Uuid::now_v7().simple());
        let d = self.store.dialect();
        let now = now_text();
        let mut tx = self.store.begin().await?;
        tx.execute(&Stmt::new(
            format!(
                "INSERT INTO _keel_signing_keys (kid, private_key, created_at) VALUES ({}, {}, {})",
                p(d, 1),
                p(d, 2),
                p(d, 3)
            ),
            vec![
                kid.clone().into(),
                URL_SAFE_NO_PAD.encode(seed).into(),
                now.into(),
            ],
        ))
        .await?;
        tx.commit().await?;
        self.reload().await?;
        tracing::info!(target: "audit", event = "signing_key_rotated", kid = %kid);
        Ok(kid)
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Option<(String, SigningKey)> {
        self.keys
            .read()
            .ok()?
            .last()
            .map(|k| (k.kid.clone(), k.signing.clone()))
    }

    /// The public key for `kid`, if known.
    pub fn verifying(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys
            .read()
            .ok()?
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.verifying)
    }

    /// Whether an unknown `kid` may trigger a reload (at most once every 10 s).
    pub fn may_reload(&self) -> bool {
        self.last_reload
            .read()
            .map(|t| t.elapsed() > Duration::from_secs(10))
            .unwrap_or(false)
    }

    /// The JSON Web Key Set other services verify tokens with.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .read()
            .map(|k| {
                k.iter()
                    .map(|k| crate::jwt::jwk(&k.kid, &k.verifying))
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({ "keys": keys })
    }
}

/// Now, in the canonical text form the auth tables store.
pub(crate) fn now_text() -> String {
    keel_expr::format_datetime(time::OffsetDateTime::now_utc())
}

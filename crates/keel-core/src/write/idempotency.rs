//! `Idempotency-Key`: the first outcome of a create, kept in its stored form (no
//! encrypted field in plaintext) and replayed to retries of the same request.

use crate::engine::{Created, Engine};
use crate::error::CoreError;
use crate::principal::Principal;
use keel_expr::Dialect;
use keel_spec::{Collection, Storage};
use keel_store::system::{self, IdempotentOutcome};
use keel_store::{Stmt, Tx};
use serde_json::{Map, Value as Json};

/// The key of one request within its scope (collection and caller).
pub(crate) struct IdempotencyKey<'k> {
    pub scope: String,
    pub key: &'k str,
    pub request_hash: String,
}

impl<'k> IdempotencyKey<'k> {
    pub(crate) fn new(key: &'k str, principal: &Principal, c: &Collection, body: &Json) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(body.to_string().as_bytes());
        Self {
            scope: format!(
                "{}:{}",
                c.name,
                principal
                    .id
                    .map_or_else(|| "anonymous".to_string(), |id| id.to_string())
            ),
            key,
            request_hash: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

impl Engine {
    /// The first outcome for this key, if there was one: the same request gets it
    /// again; a different request with the same key is refused.
    pub(crate) async fn idempotent_replay(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        key: &IdempotencyKey<'_>,
    ) -> Result<Option<Created>, CoreError> {
        if tx.dialect() == Dialect::Postgres {
            // Two concurrent requests with one key: the second waits for the first.
            tx.execute(&Stmt::new(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                vec![format!("{}\u{1f}{}", key.scope, key.key).into()],
            ))
            .await?;
        }
        let rows = tx
            .query(
                &system::idempotency_select(tx.dialect(), &key.scope, key.key),
                &[Storage::Text, Storage::Text, Storage::Text, Storage::Text],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        if row[0].as_str() != Some(key.request_hash.as_str()) {
            return Err(CoreError::IdempotencyMismatch);
        }
        let stored: Map<String, Json> = row[3]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default();
        Ok(Some(Created {
            record: Json::Object(self.open(c, stored)),
            id: row[2].as_str().unwrap_or_default().to_string(),
            replayed: true,
        }))
    }

    /// Keep the outcome of a create for retries, in the create's transaction.
    pub(crate) async fn remember_created(
        &self,
        tx: &mut Tx<'_>,
        key: &IdempotencyKey<'_>,
        id: uuid::Uuid,
        stored: &Map<String, Json>,
    ) -> Result<(), CoreError> {
        let outcome = IdempotentOutcome {
            request_hash: key.request_hash.clone(),
            outcome: "created".into(),
            record_id: id.hyphenated().to_string(),
            record: Json::Object(stored.clone()).to_string(),
        };
        tx.execute(&system::idempotency_insert(
            tx.dialect(),
            &key.scope,
            key.key,
            &outcome,
        ))
        .await?;
        Ok(())
    }
}

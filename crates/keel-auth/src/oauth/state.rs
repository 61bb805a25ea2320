//! Logins in progress, in `_keel_oauth_states` (so every node shares them): saved
//! when a login starts, keyed by a hash of `state`, and consumed exactly once by its
//! callback within ten minutes.

use super::{OAuth, OAuthError, STATE_TTL_SECS};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_spec::Storage;
use keel_store::{Dialect, Stmt};
use sha2::Digest;

/// A login in progress, as saved.
pub(super) struct StateRow {
    pub(super) provider: String,
    pub(super) verifier: String,
    pub(super) nonce: String,
    pub(super) redirect_uri: String,
    pub(super) redirect_to: Option<String>,
    pub(super) binding_hash: String,
}

pub(super) fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| OAuthError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

pub(super) fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ph(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

fn time_text(offset_secs: i64) -> String {
    keel_expr::format_datetime(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs),
    )
}

impl OAuth {
    /// Remember a started login under the hash of its `state`, clearing expired ones.
    pub(super) async fn save_state(
        &self,
        state_hash: &str,
        row: &StateRow,
    ) -> Result<(), OAuthError> {
        let d = self.store.dialect();
        let mut tx = self.store.begin().await?;
        tx.execute(&Stmt::new(
            format!(
                "DELETE FROM _keel_oauth_states WHERE expires_at < {}",
                ph(d, 1)
            ),
            vec![time_text(0).into()],
        ))
        .await?;
        tx.execute(&Stmt::new(
            format!(
                "INSERT INTO _keel_oauth_states (state_hash, provider, code_verifier, nonce, redirect_uri, redirect_to, binding_hash, created_at, expires_at) VALUES ({})",
                (1..=9).map(|n| ph(d, n)).collect::<Vec<_>>().join(", ")
            ),
            vec![
                state_hash.to_string().into(),
                row.provider.clone().into(),
                row.verifier.clone().into(),
                row.nonce.clone().into(),
                row.redirect_uri.clone().into(),
                row.redirect_to.clone().into(),
                row.binding_hash.clone().into(),
                time_text(0).into(),
                time_text(STATE_TTL_SECS).into(),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Take a login's state out (single use); `None` if unknown, used or expired.
    pub(super) async fn consume_state(&self, hash: &str) -> Result<Option<StateRow>, OAuthError> {
        let d = self.store.dialect();
        let mut tx = self.store.begin().await?;
        let rows = tx
            .query(
                &Stmt::new(
                    format!(
                        "SELECT provider, code_verifier, nonce, redirect_uri, redirect_to, binding_hash, expires_at FROM _keel_oauth_states WHERE state_hash = {}",
                        ph(d, 1)
                    ),
                    vec![hash.to_string().into()],
                ),
                &[Storage::Text; 7],
            )
            .await?;
        let deleted = tx
            .execute(&Stmt::new(
                format!(
                    "DELETE FROM _keel_oauth_states WHERE state_hash = {}",
                    ph(d, 1)
                ),
                vec![hash.to_string().into()],
            ))
            .await?;
        tx.commit().await?;
        // A concurrent callback with the same state deletes nothing: single use.
        if deleted != 1 {
            return Ok(None);
        }
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        let text = |i: usize| r.get(i).and_then(|v| v.as_str()).map(str::to_string);
        let (
            Some(provider),
            Some(verifier),
            Some(nonce),
            Some(redirect_uri),
            Some(binding_hash),
            Some(expires),
        ) = (text(0), text(1), text(2), text(3), text(5), text(6))
        else {
            return Ok(None);
        };
        if expires < time_text(0) {
            return Ok(None);
        }
        Ok(Some(StateRow {
            provider,
            verifier,
            nonce,
            redirect_uri,
            redirect_to: text(4),
            binding_hash,
        }))
    }
}

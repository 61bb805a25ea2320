//! Refresh tokens: opaque random strings, stored only as SHA-256 hashes. Each use
//! rotates the token (the old one is marked used, a new one of the same family is
//! issued). Presenting a used token again means it was stolen and replayed, or the
//! client was: the whole family is revoked, so the thief's copy dies too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_spec::Storage;
use keel_store::{Dialect, Stmt, Store, StoreError};
use sha2::Digest;

use crate::keys::now_text;

/// What presenting a refresh token led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// A fresh token for this user.
    Rotated { user_id: String, token: String },
    /// Unknown, expired or revoked.
    Invalid,
    /// A token already used: its family is now revoked.
    Reused { user_id: String },
}

fn hash(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn p(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn insert(d: Dialect, token: &str, family: &str, user_id: &str, ttl_secs: u64) -> Stmt {
    let expires = keel_expr::format_datetime(
        time::OffsetDateTime::now_utc()
            + time::Duration::seconds(ttl_secs.min(i64::MAX as u64) as i64),
    );
    Stmt::new(
        format!(
            "INSERT INTO _keel_refresh_tokens (token_hash, family, user_id, created_at, expires_at) VALUES ({}, {}, {}, {}, {})",
            p(d, 1),
            p(d, 2),
            p(d, 3),
            p(d, 4),
            p(d, 5)
        ),
        vec![
            hash(token).into(),
            family.into(),
            user_id.into(),
            now_text().into(),
            expires.into(),
        ],
    )
}

/// Start a new family for a user (a login); returns the token.
pub async fn issue(store: &Store, user_id: &str, ttl_secs: u64) -> Result<String, StoreError> {
    let token = new_token()?;
    let family = uuid::Uuid::now_v7().to_string();
    let mut tx = store.begin().await?;
    tx.execute(&insert(store.dialect(), &token, &family, user_id, ttl_secs))
        .await?;
    tx.commit().await?;
    Ok(token)
}

/// Use a token: rotate it, or detect its reuse.
pub async fn rotate(store: &Store, token: &str, ttl_secs: u64) -> Result<Rotation, StoreError> {
    let d = store.dialect();
    let lock = if d == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let mut tx = store.begin().await?;
    let rows = tx
        .query(
            &Stmt::new(
                format!(
                    "SELECT family, user_id, expires_at, used_at, revoked_at FROM _keel_refresh_tokens WHERE token_hash = {}{lock}",
                    p(d, 1)
                ),
                vec![hash(token).into()],
            ),
            &[Storage::Text; 5],
        )
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(Rotation::Invalid);
    };
    let text = |i: usize| row.get(i).and_then(|v| v.as_str()).map(str::to_string);
    let (Some(family), Some(user_id), Some(expires)) = (text(0), text(1), text(2)) else {
        return Ok(Rotation::Invalid);
    };
    if text(4).is_some() {
        return Ok(Rotation::Invalid);
    }
    if text(3).is_some() {
        tx.execute(&revoke_family_stmt(d, &family)).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused { user_id });
    }
    if expires < now_text() {
        return Ok(Rotation::Invalid);
    }
    tx.execute(&Stmt::new(
        format!(
            "UPDATE _keel_refresh_tokens SET used_at = {} WHERE token_hash = {}",
            p(d, 1),
            p(d, 2)
        ),
        vec![now_text().into(), hash(token).into()],
    ))
    .await?;
    let next = new_token()?;
    tx.execute(&insert(d, &next, &family, &user_id, ttl_secs))
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        user_id,
        token: next,
    })
}

fn revoke_family_stmt(d: Dialect, family: &str) -> Stmt {
    Stmt::new(
        format!(
            "UPDATE _keel_refresh_tokens SET revoked_at = {} WHERE family = {} AND revoked_at IS NULL",
            p(d, 1),
            p(d, 2)
        ),
        vec![now_text().into(), family.into()],
    )
}

/// Revoke the family of a token (logout). Unknown tokens are ignored.
pub async fn revoke(store: &Store, token: &str) -> Result<(), StoreError> {
    let d = store.dialect();
    let mut tx = store.begin().await?;
    tx.execute(&Stmt::new(
        format!(
            "UPDATE _keel_refresh_tokens SET revoked_at = {} WHERE revoked_at IS NULL AND family IN (SELECT family FROM _keel_refresh_tokens WHERE token_hash = {})",
            p(d, 1),
            p(d, 2)
        ),
        vec![now_text().into(), hash(token).into()],
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revoke every family of a user (logout everywhere).
pub async fn revoke_user(store: &Store, user_id: &str) -> Result<(), StoreError> {
    let d = store.dialect();
    let mut tx = store.begin().await?;
    tx.execute(&Stmt::new(
        format!(
            "UPDATE _keel_refresh_tokens SET revoked_at = {} WHERE user_id = {} AND revoked_at IS NULL",
            p(d, 1),
            p(d, 2)
        ),
        vec![now_text().into(), user_id.into()],
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}

//! Keel's own tables, beside the model's:
//! - `_keel_migrations`: what was applied, when, and which tables Keel manages;
//! - `_keel_events`, `_keel_deliveries`, `_keel_destinations`: the outbox (see
//!   [`crate::events`]);
//! - `_keel_idempotency_keys`: the first outcome of a request with an
//!   `Idempotency-Key` (the record in its stored form: encrypted fields stay
//!   ciphertext), replayed on retry (it replaced `_keel_idempotency`, which kept
//!   HTTP responses);
//! - `_keel_meta`: settings Keel generates and keeps (the cursor key, the fingerprint
//!   of the schema the last migration reached, which readiness compares);
//! - `_keel_signing_keys`: the Ed25519 keys that sign access tokens (newest signs,
//!   all verify), so every node shares them and a rotation logs nobody out;
//! - `_keel_refresh_tokens`: refresh tokens, stored only as SHA-256 hashes, grouped in
//!   families so the reuse of a rotated token revokes the whole family.
//! - `_keel_oauth_states`: OAuth logins in progress (PKCE verifier, nonce, where to
//!   return), keyed by a hash of `state`; single use, ten minutes, on every node.

use crate::Stmt;
use keel_expr::Dialect;
use sea_query::Value;

/// PostgreSQL advisory lock key taken while migrating ("keel" in ASCII).
pub const ADVISORY_LOCK: i64 = 0x6b65_656c;

/// Names no collection may use.
pub const PREFIX: &str = "_keel";

/// Tables whose DDL is the same on both databases (timestamps kept as canonical text).
const PORTABLE_DDL: &str = "
CREATE TABLE IF NOT EXISTS _keel_oauth_states (
  state_hash TEXT PRIMARY KEY,
  provider TEXT NOT NULL,
  code_verifier TEXT NOT NULL,
  nonce TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  redirect_to TEXT,
  binding_hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _keel_oauth_states_expires ON _keel_oauth_states (expires_at);
CREATE TABLE IF NOT EXISTS _keel_signing_keys (
  kid TEXT PRIMARY KEY,
  private_key TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _keel_refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  family TEXT NOT NULL,
  user_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS _keel_refresh_tokens_family ON _keel_refresh_tokens (family);
CREATE INDEX IF NOT EXISTS _keel_refresh_tokens_user ON _keel_refresh_tokens (user_id);
";

pub fn ddl(dialect: Dialect) -> String {
    let specific: String = match dialect {
        Dialect::Sqlite => "
CREATE TABLE IF NOT EXISTS _keel_migrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  applied_at TEXT NOT NULL,
  tables TEXT NOT NULL,
  statements TEXT NOT NULL
);
DROP TABLE IF EXISTS _keel_idempotency;
CREATE TABLE IF NOT EXISTS _keel_idempotency_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  outcome TEXT NOT NULL,
  record_id TEXT NOT NULL,
  record TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS _keel_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
"
        .into(),
        Dialect::Postgres => "
CREATE TABLE IF NOT EXISTS _keel_migrations (
  id BIGSERIAL PRIMARY KEY,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  tables TEXT NOT NULL,
  statements TEXT NOT NULL
);
DROP TABLE IF EXISTS _keel_idempotency;
CREATE TABLE IF NOT EXISTS _keel_idempotency_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  outcome TEXT NOT NULL,
  record_id TEXT NOT NULL,
  record TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS _keel_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
"
        .into(),
    };
    specific + PORTABLE_DDL + crate::events::ddl(dialect)
}

fn p(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

pub fn meta_insert(dialect: Dialect, key: &str, value: &str) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO _keel_meta (key, value) VALUES ({}, {}) ON CONFLICT (key) DO NOTHING",
            p(dialect, 1),
            p(dialect, 2)
        ),
        vec![key.into(), value.into()],
    )
}

pub fn meta_select(dialect: Dialect, key: &str) -> Stmt {
    Stmt::new(
        format!("SELECT value FROM _keel_meta WHERE key = {}", p(dialect, 1)),
        vec![key.into()],
    )
}

/// One change event, appended in the same transaction as the change.
/// The first outcome of an idempotent request: what the operation did, not how a
/// surface answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentOutcome {
    pub request_hash: String,
    /// What happened, e.g. `created`.
    pub outcome: String,
    pub record_id: String,
    /// The record in its stored form (encrypted fields as ciphertext), as JSON text.
    pub record: String,
}

/// `request_hash, outcome, record_id, record` of a key in a scope.
pub fn idempotency_select(dialect: Dialect, scope: &str, key: &str) -> Stmt {
    Stmt::new(
        format!(
            "SELECT request_hash, outcome, record_id, record FROM _keel_idempotency_keys WHERE scope = {} AND key = {}",
            p(dialect, 1),
            p(dialect, 2)
        ),
        vec![scope.into(), key.into()],
    )
}

pub fn idempotency_insert(dialect: Dialect, scope: &str, key: &str, r: &IdempotentOutcome) -> Stmt {
    let now = time::OffsetDateTime::now_utc();
    let at: Value = match dialect {
        Dialect::Sqlite => keel_expr::format_datetime(now).into(),
        Dialect::Postgres => Value::TimeDateTimeWithTimeZone(Some(now)),
    };
    Stmt::new(
        format!(
            "INSERT INTO _keel_idempotency_keys (scope, key, request_hash, outcome, record_id, record, created_at) VALUES ({}, {}, {}, {}, {}, {}, {})",
            p(dialect, 1),
            p(dialect, 2),
            p(dialect, 3),
            p(dialect, 4),
            p(dialect, 5),
            p(dialect, 6),
            p(dialect, 7)
        ),
        vec![
            scope.into(),
            key.into(),
            r.request_hash.clone().into(),
            r.outcome.clone().into(),
            r.record_id.clone().into(),
            r.record.clone().into(),
            at,
        ],
    )
}

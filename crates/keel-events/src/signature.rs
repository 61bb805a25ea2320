//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the `whsec_`
//! secrets a webhook is configured with, the `webhook-signature` header Keel sends, and
//! a verifier (for the signer's tests and for users who receive Keel's webhooks).
//!
//! A delivery carries three headers: [`WEBHOOK_ID`] (the event id, the same on every
//! retry), [`WEBHOOK_TIMESTAMP`] (unix seconds of this attempt) and
//! [`WEBHOOK_SIGNATURE`]: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one
//! per secret, space-separated, so that a secret can be rotated without downtime
//! (configure `"whsec_new whsec_old"`, move the receiver to the new one, drop the old).
//!
//! Secrets follow the spec and the official libraries: `whsec_` then the base64 key
//! (a bare base64 key is accepted too; padding is optional). The key must be 24 to 64
//! bytes (the spec: "at least 24 bytes (192 bits, 512 maximum)"). Asymmetric
//! (`whsk_`/`whpk_`, `v1a`) keys are not supported.
//!
//! Verification is stricter than some implementations: the signatures are compared in
//! constant time over their full 32 bytes, so an empty (`v1,`) or truncated signature
//! never matches; entries with another version (`v1a`, `v2`) are ignored; an entry
//! without a comma, a non-integer timestamp or an id containing `.` (which would make
//! `{id}.{timestamp}.{body}` ambiguous) are errors.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The header carrying the message id (Keel: the event id).
pub const WEBHOOK_ID: &str = "webhook-id";
/// The header carrying the attempt's unix timestamp, in seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The prefix of a serialized symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest key the spec allows, in bytes.
pub const MIN_SECRET_BYTES: usize = 24;
/// The longest key the spec allows, in bytes.
pub const MAX_SECRET_BYTES: usize = 64;
/// How far a timestamp may be from the verifier's clock, either way (the spec's 5 min).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The version tag of an HMAC-SHA256 signature.
const VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// Secrets are standard base64 with padding optional (as the official libraries accept).
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret (or a list of secrets) was refused. The secret itself is never in the
/// message; `index` is its 1-based position in a space-separated list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no webhook secret given (expected whsec_<base64>)")]
    Empty,
    #[error(
        "webhook secret {index} is an asymmetric `{prefix}` key; only symmetric `whsec_<base64>` secrets are supported"
    )]
    Asymmetric { index: usize, prefix: &'static str },
    #[error("webhook secret {index} is not base64 (expected whsec_<base64>)")]
    NotBase64 { index: usize },
    #[error(
        "webhook secret {index} is {len} bytes; Standard Webhooks secrets are {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
    )]
    Length { index: usize, len: usize },
}

/// Why a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing `{0}` header")]
    Missing(&'static str),
    #[error("malformed `{0}` header")]
    Malformed(&'static str),
    #[error("webhook timestamp too old (outside the tolerance)")]
    TooOld,
    #[error("webhook timestamp too far in the future (outside the tolerance)")]
    TooNew,
    #[error("no matching webhook signature")]
    NoMatch,
}

/// One HMAC-SHA256 signing key. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// The HMAC keyed with `key`, cloned for every signature.
    keyed: HmacSha256,
}

impl WebhookSecret {
    /// Parse `whsec_<base64>` (or a bare base64 key).
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        Self::parse_at(s, 1)
    }

    fn parse_at(s: &str, index: usize) -> Result<Self, SecretError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SecretError::Empty);
        }
        for prefix in ["whsk_", "whpk_"] {
            if s.starts_with(prefix) {
                return Err(SecretError::Asymmetric { index, prefix });
            }
        }
        let encoded = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64 { index })?;
        Self::checked(key, index)
    }

    /// A secret from raw key bytes (24 to 64 of them).
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        Self::checked(key.to_vec(), 1)
    }

    fn checked(key: Vec<u8>, index: usize) -> Result<Self, SecretError> {
        let length = SecretError::Length {
            index,
            len: key.len(),
        };
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(length);
        }
        let keyed = HmacSha256::new_from_slice(&key).map_err(|_| length)?;
        Ok(Self { key, keyed })
    }

    /// The secret serialized as the spec presents it: `whsec_<base64>`.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The HMAC over `{msg_id}.{timestamp}.{body}`, ready to finalize or compare.
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// This secret's signature entry: `v1,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        debug_assert!(!msg_id.contains('.'), "a webhook id must not contain `.`");
        let tag = self
            .mac(msg_id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("{VERSION},{}", STANDARD.encode(tag))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The secrets of one webhook: one, or several while rotating (every one signs).
/// Never empty. `Debug` never shows them.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

impl WebhookSecrets {
    /// Parse a config value: one or more `whsec_<base64>` separated by whitespace.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let secrets = s
            .split_whitespace()
            .enumerate()
            .map(|(i, one)| WebhookSecret::parse_at(one, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(secrets)
    }

    /// From already parsed secrets; refuses an empty list.
    pub fn new(secrets: Vec<WebhookSecret>) -> Result<Self, SecretError> {
        if secrets.is_empty() {
            Err(SecretError::Empty)
        } else {
            Ok(Self(secrets))
        }
    }

    /// The secrets, in configured order.
    pub fn as_slice(&self) -> &[WebhookSecret] {
        &self.0
    }
}

impl From<WebhookSecret> for WebhookSecrets {
    fn from(secret: WebhookSecret) -> Self {
        Self(vec![secret])
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets(<{} redacted>)", self.0.len())
    }
}

impl FromStr for WebhookSecrets {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `webhook-signature` header value: `v1,<base64>` for every secret, in order,
/// space-separated.
pub fn sign(secrets: &WebhookSecrets, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .0
        .iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three headers of one delivery attempt, as `(name, value)` pairs.
pub fn headers(
    secrets: &WebhookSecrets,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        (WEBHOOK_ID, msg_id.to_owned()),
        (WEBHOOK_TIMESTAMP, timestamp.to_string()),
        (WEBHOOK_SIGNATURE, sign(secrets, msg_id, timestamp, body)),
    ]
}

/// Verify one delivery: the headers' values, the raw body, the verifier's clock
/// (`now`, unix seconds) and how far the timestamp may be from it. Succeeds when any
/// `v1` signature matches any of `secrets`.
pub fn verify(
    secrets: &WebhookSecrets,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    if msg_id.is_empty() {
        return Err(VerifyError::Missing(WEBHOOK_ID));
    }
    if msg_id.contains('.') {
        return Err(VerifyError::Malformed(WEBHOOK_ID));
    }

    let timestamp_text = timestamp_header.trim();
    if timestamp_text.is_empty() {
        return Err(VerifyError::Missing(WEBHOOK_TIMESTAMP));
    }
    if !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::Malformed(WEBHOOK_TIMESTAMP));
    }
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| VerifyError::Malformed(WEBHOOK_TIMESTAMP))?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(timestamp) > tolerance {
        return Err(VerifyError::TooOld);
    }
    if timestamp.saturating_sub(now) > tolerance {
        return Err(VerifyError::TooNew);
    }

    // Parse the whole header first: a malformed entry is an error even beside a match.
    let mut candidates = Vec::new();
    let mut entries = 0;
    for entry in signature_header.split(' ').filter(|e| !e.is_empty()) {
        entries += 1;
        let (version, signature) = entry
            .split_once(',')
            .ok_or(VerifyError::Malformed(WEBHOOK_SIGNATURE))?;
        if version.is_empty() {
            return Err(VerifyError::Malformed(WEBHOOK_SIGNATURE));
        }
        if version != VERSION {
            continue; // another scheme (`v1a`, a future `v2`): not ours to check
        }
        // Undecodable or empty: kept out, so it can never match.
        if let Ok(bytes) = STANDARD.decode(signature)
            && !bytes.is_empty()
        {
            candidates.push(bytes);
        }
    }
    if entries == 0 {
        return Err(VerifyError::Missing(WEBHOOK_SIGNATURE));
    }

    for secret in &secrets.0 {
        let mac = secret.mac(msg_id, timestamp_text, body);
        // `verify_slice` refuses any length but the full 32 bytes, then compares in
        // constant time.
        if candidates
            .iter()
            .any(|c| mac.clone().verify_slice(c).is_ok())
        {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests;

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
mod tests {
    use super::*;

    /// The test vector published with the official libraries (Python, JS, Go, …).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn secrets(s: &str) -> WebhookSecrets {
        WebhookSecrets::parse(s).unwrap()
    }

    fn check(
        s: &WebhookSecrets,
        id: &str,
        ts: &str,
        sig: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        verify(s, id, ts, sig, body, now, DEFAULT_TOLERANCE)
    }

    #[test]
    fn signs_the_published_test_vector() {
        let s = secrets(SPEC_SECRET);
        assert_eq!(sign(&s, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        // The bare base64 key is the same key.
        let bare = secrets(SPEC_SECRET.trim_start_matches(SECRET_PREFIX));
        assert_eq!(sign(&bare, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert_eq!(
            check(
                &s,
                SPEC_ID,
                "1614265330",
                SPEC_SIGNATURE,
                SPEC_BODY,
                SPEC_TS
            ),
            Ok(())
        );
        // The official Rust library's vector.
        let s = secrets(OTHER_SECRET);
        assert_eq!(
            sign(
                &s,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn headers_carry_id_timestamp_and_signature() {
        let s = secrets(SPEC_SECRET);
        let h = headers(&s, SPEC_ID, SPEC_TS, SPEC_BODY);
        assert_eq!(h[0], ("webhook-id", SPEC_ID.to_owned()));
        assert_eq!(h[1], ("webhook-timestamp", "1614265330".to_owned()));
        assert_eq!(h[2], ("webhook-signature", SPEC_SIGNATURE.to_owned()));
    }

    #[test]
    fn rotation_signs_with_every_secret_and_each_verifies_alone() {
        let both = secrets(&format!("{SPEC_SECRET}  {OTHER_SECRET}\n"));
        assert_eq!(both.as_slice().len(), 2);
        let header = sign(&both, SPEC_ID, SPEC_TS, SPEC_BODY);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], SPEC_SIGNATURE);
        assert!(parts[1].starts_with("v1,") && parts[1] != SPEC_SIGNATURE);
        let ts = SPEC_TS.to_string();
        for alone in [SPEC_SECRET, OTHER_SECRET] {
            let alone = secrets(alone);
            assert_eq!(
                check(&alone, SPEC_ID, &ts, &header, SPEC_BODY, SPEC_TS),
                Ok(())
            );
        }
        // Each entry on its own verifies only under its own secret.
        let old = secrets(OTHER_SECRET);
        assert_eq!(
            check(&old, SPEC_ID, &ts, parts[0], SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(&old, SPEC_ID, &ts, parts[1], SPEC_BODY, SPEC_TS),
            Ok(())
        );
        // A third, unrelated secret matches neither.
        let stranger = WebhookSecrets::from(WebhookSecret::from_bytes(&[7; 32]).unwrap());
        assert_eq!(
            check(&stranger, SPEC_ID, &ts, &header, SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tampering_fails() {
        let s = secrets(SPEC_SECRET);
        let ts = SPEC_TS.to_string();
        let sig = SPEC_SIGNATURE;
        let no = Err(VerifyError::NoMatch);
        assert_eq!(
            check(&s, SPEC_ID, &ts, sig, br#"{"test": 2432232315}"#, SPEC_TS),
            no
        );
        assert_eq!(
            check(&s, SPEC_ID, &ts, sig, br#"{"test":2432232314}"#, SPEC_TS),
            no
        );
        assert_eq!(check(&s, SPEC_ID, &ts, sig, b"", SPEC_TS), no);
        assert_eq!(
            check(
                &s,
                "msg_p5jXN8AQM9LWM0D4loKWxJeK",
                &ts,
                sig,
                SPEC_BODY,
                SPEC_TS
            ),
            no
        );
        assert_eq!(
            check(&s, SPEC_ID, "1614265331", sig, SPEC_BODY, SPEC_TS),
            no
        );
        // Leading zeros change the signed text, so they do not match either.
        assert_eq!(
            check(&s, SPEC_ID, "01614265330", sig, SPEC_BODY, SPEC_TS),
            no
        );
        // A flipped bit of the signature itself.
        let flipped = sig.replace("1OE=", "1OA=");
        assert_eq!(check(&s, SPEC_ID, &ts, &flipped, SPEC_BODY, SPEC_TS), no);
    }

    #[test]
    fn empty_truncated_and_garbage_signatures_never_verify() {
        let s = secrets(SPEC_SECRET);
        let ts = SPEC_TS.to_string();
        let valid_b64 = SPEC_SIGNATURE.trim_start_matches("v1,");
        let truncated_b64 = STANDARD.encode(&STANDARD.decode(valid_b64).unwrap()[..16]);
        let longer_b64 = {
            let mut b = STANDARD.decode(valid_b64).unwrap();
            b.push(0);
            STANDARD.encode(b)
        };
        for bad in [
            "v1,".to_owned(),
            "v1,=".to_owned(),
            "v1,====".to_owned(),
            "v1,AAAA".to_owned(),
            "v1,garbage".to_owned(),
            "v1,!!not*base64!!".to_owned(),
            format!("v1,{}", &valid_b64[..1]),
            format!("v1,{}", &valid_b64[..20]),
            format!("v1,{truncated_b64}"),
            format!("v1,{longer_b64}"),
            format!("v1,{valid_b64}garbage"),
            format!("v1,{}", STANDARD.encode([0u8; 32])),
            "v1, v1,".to_owned(),
        ] {
            assert_eq!(
                check(&s, SPEC_ID, &ts, &bad, SPEC_BODY, SPEC_TS),
                Err(VerifyError::NoMatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_versions_are_ignored() {
        let s = secrets(SPEC_SECRET);
        let ts = SPEC_TS.to_string();
        let b64 = SPEC_SIGNATURE.trim_start_matches("v1,");
        for other in [
            format!("v1a,{b64}"),
            format!("v2,{b64}"),
            format!("V1,{b64}"),
        ] {
            assert_eq!(
                check(&s, SPEC_ID, &ts, &other, SPEC_BODY, SPEC_TS),
                Err(VerifyError::NoMatch),
                "{other}"
            );
        }
        // Beside a valid `v1`, unknown versions do no harm.
        let mixed = format!("v1a,{b64} v2,whatever {SPEC_SIGNATURE} v1,AAAA");
        assert_eq!(check(&s, SPEC_ID, &ts, &mixed, SPEC_BODY, SPEC_TS), Ok(()));
    }

    #[test]
    fn malformed_and_missing_headers_are_errors() {
        let s = secrets(SPEC_SECRET);
        let ts = SPEC_TS.to_string();
        let sig = SPEC_SIGNATURE;
        let e = |id: &str, t: &str, g: &str| check(&s, id, t, g, SPEC_BODY, SPEC_TS);
        assert_eq!(e("", &ts, sig), Err(VerifyError::Missing(WEBHOOK_ID)));
        assert_eq!(
            e("msg.1", &ts, sig),
            Err(VerifyError::Malformed(WEBHOOK_ID))
        );
        assert_eq!(
            e(SPEC_ID, "", sig),
            Err(VerifyError::Missing(WEBHOOK_TIMESTAMP))
        );
        for t in [
            "hello",
            "-1614265330",
            "+1614265330",
            "1614265330.0",
            "1e9",
            "99999999999999999999",
        ] {
            assert_eq!(
                e(SPEC_ID, t, sig),
                Err(VerifyError::Malformed(WEBHOOK_TIMESTAMP)),
                "{t}"
            );
        }
        for g in ["", " ", "   "] {
            assert_eq!(
                e(SPEC_ID, &ts, g),
                Err(VerifyError::Missing(WEBHOOK_SIGNATURE)),
                "{g:?}"
            );
        }
        let no_comma = SPEC_SIGNATURE.replace(',', "");
        for g in [no_comma.as_str(), ",abc", "v1", &format!("{sig} garbage")] {
            assert_eq!(
                e(SPEC_ID, &ts, g),
                Err(VerifyError::Malformed(WEBHOOK_SIGNATURE)),
                "{g}"
            );
        }
        // Extra spaces between entries are tolerated.
        assert_eq!(e(SPEC_ID, &ts, &format!("  v1a,x   {sig} ")), Ok(()));
    }

    #[test]
    fn timestamps_outside_the_tolerance_fail() {
        let s = secrets(SPEC_SECRET);
        let ts = SPEC_TS.to_string();
        let sig = SPEC_SIGNATURE;
        let at = |now: i64| check(&s, SPEC_ID, &ts, sig, SPEC_BODY, now);
        assert_eq!(at(SPEC_TS + 300), Ok(()));
        assert_eq!(at(SPEC_TS - 300), Ok(()));
        assert_eq!(at(SPEC_TS + 301), Err(VerifyError::TooOld));
        assert_eq!(at(SPEC_TS - 301), Err(VerifyError::TooNew));
        assert_eq!(at(i64::MAX), Err(VerifyError::TooOld));
        assert_eq!(at(i64::MIN), Err(VerifyError::TooNew));
        let strict = verify(
            &s,
            SPEC_ID,
            &ts,
            sig,
            SPEC_BODY,
            SPEC_TS + 2,
            Duration::from_secs(1),
        );
        assert_eq!(strict, Err(VerifyError::TooOld));
        // Outside the tolerance it fails even with a valid signature; inside, a bad
        // signature still fails.
        assert_eq!(
            check(&s, SPEC_ID, &ts, "v1,", SPEC_BODY, SPEC_TS + 10),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn secrets_parse_like_the_spec_says() {
        // Unpadded base64 is the same key as padded.
        let padded =
            WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        let unpadded =
            WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(padded.key, unpadded.key);
        assert_eq!(padded.key.len(), 32);
        assert_eq!(
            padded.to_whsec(),
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        assert_eq!(
            WebhookSecret::parse(SPEC_SECRET).unwrap().to_whsec(),
            SPEC_SECRET
        );
        assert!(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                .parse::<WebhookSecret>()
                .is_ok()
        );

        assert_eq!(WebhookSecrets::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(
            WebhookSecrets::parse(" \n\t").unwrap_err(),
            SecretError::Empty
        );
        assert_eq!(WebhookSecret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(WebhookSecrets::new(vec![]).unwrap_err(), SecretError::Empty);
        assert_eq!(
            WebhookSecrets::parse(&format!("{SPEC_SECRET} whsec_not-base64!")).unwrap_err(),
            SecretError::NotBase64 { index: 2 }
        );
        assert_eq!(
            WebhookSecrets::parse("whsec_").unwrap_err(),
            SecretError::Length { index: 1, len: 0 }
        );
        // A password is not a key: too short once decoded.
        assert_eq!(
            WebhookSecret::parse("hunter22").unwrap_err(),
            SecretError::Length { index: 1, len: 6 }
        );
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert_eq!(
            WebhookSecret::parse(&long).unwrap_err(),
            SecretError::Length { index: 1, len: 65 }
        );
        assert!(WebhookSecret::from_bytes(&[1; 64]).is_ok());
        assert!(WebhookSecret::from_bytes(&[1; 23]).is_err());
        assert_eq!(
            WebhookSecrets::parse(&format!("{SPEC_SECRET} whsk_AAAA")).unwrap_err(),
            SecretError::Asymmetric {
                index: 2,
                prefix: "whsk_"
            }
        );
        // URL-safe base64 is not the spec's alphabet.
        assert!(WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let s = secrets(&format!("{SPEC_SECRET} {OTHER_SECRET}"));
        let shown = format!("{s:?} {:?}", s.as_slice()[0]);
        assert!(
            !shown.contains("MfKQ") && !shown.contains("C2FV"),
            "{shown}"
        );
        assert_eq!(
            shown,
            "WebhookSecrets(<2 redacted>) WebhookSecret(<redacted>)"
        );
        let err = WebhookSecrets::parse(&format!("{SPEC_SECRET} MfKQ9r8GKYq!")).unwrap_err();
        assert!(!err.to_string().contains("MfKQ"), "{err}");
    }

    #[test]
    fn non_ascii_and_binary_bodies_sign_and_verify() {
        let s = secrets(SPEC_SECRET);
        for body in [
            "{\"name\":\"Zoë — 東京 🚀\"}".as_bytes(),
            b"{}",
            b"",
            &[0xff, 0x00, 0xfe],
        ] {
            let sig = sign(&s, "evt_1", 1_700_000_000, body);
            assert_eq!(
                check(&s, "evt_1", "1700000000", &sig, body, 1_700_000_000),
                Ok(())
            );
        }
    }
}

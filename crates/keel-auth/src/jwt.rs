//! Access tokens: compact JWS signed with Ed25519 (`alg: EdDSA`), each naming its key
//! (`kid`). Verification pins the algorithm and the key set: `alg: none`, HS256/RS256
//! confusion, unknown keys, wrong issuer or audience, expired, not-yet-valid and
//! tampered tokens are all refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Why a token was refused (logged, never sent to the client in detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm `{0}` is not accepted")]
    Algorithm(String),
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
}

/// Sign claims with a key.
pub fn sign(claims: &Claims, kid: &str, key: &SigningKey) -> String {
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{head}.{body}");
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// Verify a token against the key set, issuer, audience and time.
pub fn verify(
    token: &str,
    keys: &dyn Fn(&str) -> Option<VerifyingKey>,
    iss: &str,
    aud: &str,
    now: i64,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let key = header
        .kid
        .as_deref()
        .and_then(keys)
        .ok_or(TokenError::UnknownKey)?;
    let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(TokenError::Malformed)?;
    key.verify(
        format!("{head}.{body}").as_bytes(),
        &Signature::from_bytes(&sig_bytes),
    )
    .map_err(|_| TokenError::Signature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != iss {
        return Err(TokenError::Issuer);
    }
    if claims.aud != aud {
        return Err(TokenError::Audience);
    }
    in_window(now, claims.nbf, claims.exp)?;
    Ok(claims)
}

/// Whether `now` lies in a token's validity window (`nbf`..`exp`, with leeway).
pub fn in_window(now: i64, nbf: i64, exp: i64) -> Result<(), TokenError> {
    if now > exp + LEEWAY_SECS {
        return Err(TokenError::Expired);
    }
    if now + LEEWAY_SECS < nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The public half of a key as a JWK (RFC 8037, OKP / Ed25519).
pub fn jwk(kid: &str, key: &VerifyingKey) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.to_bytes()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "keel:test".into(),
            aud: "keel:test".into(),
            sub: "u1".into(),
            iat: now,
            nbf: now,
            exp: now + 900,
            jti: "j".into(),
            email: None,
            roles: vec!["member".into()],
        }
    }

    fn check(token: &str, now: i64) -> Result<Claims, TokenError> {
        let k = key(1).verifying_key();
        verify(
            token,
            &|kid| (kid == "k1").then_some(k),
            "keel:test",
            "keel:test",
            now,
        )
    }

    #[test]
    fn round_trip_and_every_forgery() {
        let now = 1_800_000_000;
        let t = sign(&claims(now), "k1", &key(1));
        assert_eq!(check(&t, now).unwrap(), claims(now));
        assert_eq!(
            check(&t, now + 900 + LEEWAY_SECS + 1),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check(&t, now - LEEWAY_SECS - 1),
            Err(TokenError::NotYetValid)
        );
        // Signed by another key under our kid.
        assert_eq!(
            check(&sign(&claims(now), "k1", &key(2)), now),
            Err(TokenError::Signature)
        );
        assert_eq!(
            check(&sign(&claims(now), "k9", &key(1)), now),
            Err(TokenError::UnknownKey)
        );
        // alg=none and HS256 headers with the same body.
        let body = t.split('.').nth(1).unwrap();
        for alg in ["none", "HS256", "RS256"] {
            let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
            assert_eq!(
                check(&format!("{head}.{body}."), now),
                Err(TokenError::Algorithm(alg.into()))
            );
        }
        // A changed claim breaks the signature.
        let mut c = claims(now);
        c.roles = vec!["admin".into()];
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[1] = &forged_body;
        assert_eq!(check(&parts.join("."), now), Err(TokenError::Signature));
        let mut c = claims(now);
        c.iss = "evil".into();
        assert_eq!(
            check(&sign(&c, "k1", &key(1)), now),
            Err(TokenError::Issuer)
        );
        let mut c = claims(now);
        c.aud = "other".into();
        assert_eq!(
            check(&sign(&c, "k1", &key(1)), now),
            Err(TokenError::Audience)
        );
        assert_eq!(check("a.b", now), Err(TokenError::Malformed));
        assert_eq!(check("", now), Err(TokenError::Malformed));
    }
}

//! OpenID Connect ID tokens: verified against the issuer's JWKS with the algorithm
//! pinned to the asymmetric ones the provider advertises (never `none`, never HMAC),
//! then `iss`, `aud` (and `azp`), `exp` and `nonce` are checked.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::HashSet;

/// Clock skew tolerated on `exp` / `nbf` / `iat`.
pub const LEEWAY_SECS: u64 = 60;

/// Algorithms an ID token may be signed with, whatever the provider advertises.
pub const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The claims Keel uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    #[serde(default)]
    pub aud: Json,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// A boolean, or (some providers) the string "true".
    #[serde(default)]
    pub email_verified: Option<Json>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token's algorithm is not accepted")]
    Algorithm,
    #[error("the ID token names an unknown key")]
    UnknownKey,
    #[error("the ID token is invalid: {0}")]
    Invalid(String),
    #[error("the ID token's nonce does not match this login")]
    Nonce,
    #[error("the ID token was issued to another client")]
    AuthorizedParty,
}

/// What a token must satisfy.
pub struct Expect<'a> {
    pub issuers: &'a [String],
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Algorithms the provider advertises (already limited to [`ASYMMETRIC`]).
    pub algorithms: &'a [Algorithm],
}

/// The key a token names (by `kid`; without one, the only key of the right family).
pub fn find_key<'k>(jwks: &'k JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'k Jwk> {
    match kid {
        Some(kid) => jwks.find(kid),
        None => {
            let family = alg.family();
            let mut fits = jwks.keys.iter().filter(|k| {
                DecodingKey::from_jwk(k)
                    .map(|d| d.family() == family)
                    .unwrap_or(false)
            });
            let first = fits.next();
            if fits.next().is_some() { None } else { first }
        }
    }
}

/// Verify `token`; `Err(UnknownKey)` means "fetch the key set again and retry".
pub fn verify(token: &str, jwks: &JwkSet, expect: &Expect<'_>) -> Result<IdClaims, IdTokenError> {
    let header = decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ASYMMETRIC.contains(&header.alg) || !expect.algorithms.contains(&header.alg) {
        return Err(IdTokenError::Algorithm);
    }
    let jwk = find_key(jwks, header.kid.as_deref(), header.alg).ok_or(IdTokenError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| IdTokenError::UnknownKey)?;
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(expect.issuers);
    v.set_audience(&[expect.client_id]);
    v.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    let claims = decode::<IdClaims>(token, &key, &v)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => IdTokenError::Algorithm,
            _ => IdTokenError::Invalid(e.to_string()),
        })?
        .claims;
    // OIDC Core 3.1.3.7: with several audiences, `azp` must be us.
    let several = claims.aud.as_array().is_some_and(|a| a.len() > 1);
    match claims.azp.as_deref() {
        Some(azp) if azp != expect.client_id => return Err(IdTokenError::AuthorizedParty),
        None if several => return Err(IdTokenError::AuthorizedParty),
        _ => {}
    }
    if claims.nonce.as_deref() != Some(expect.nonce) {
        return Err(IdTokenError::Nonce);
    }
    Ok(claims)
}

/// `email_verified` as providers send it.
pub fn is_verified(v: Option<&Json>) -> bool {
    matches!(v, Some(Json::Bool(true))) || matches!(v, Some(Json::String(s)) if s == "true")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn jwks(seed: u8, kid: &str) -> JwkSet {
        serde_json::from_value(json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(key(seed).verifying_key().to_bytes())
        }]}))
        .unwrap()
    }

    fn sign(header: Json, claims: Json, k: &SigningKey) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = k.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn claims() -> Json {
        json!({"iss": "https://idp.test", "aud": "keel", "sub": "u1", "exp": now() + 300,
               "iat": now(), "nonce": "n1", "email": "a@b.test", "email_verified": true})
    }

    fn check(token: &str) -> Result<IdClaims, IdTokenError> {
        let issuers = ["https://idp.test".to_string()];
        verify(
            token,
            &jwks(1, "k1"),
            &Expect {
                issuers: &issuers,
                client_id: "keel",
                nonce: "n1",
                algorithms: &[Algorithm::EdDSA, Algorithm::RS256],
            },
        )
    }

    fn with(field: &str, value: Json) -> Json {
        let mut c = claims();
        c[field] = value;
        c
    }

    #[test]
    fn a_good_token_and_every_forgery() {
        let h = json!({"alg": "EdDSA", "kid": "k1"});
        let ok = check(&sign(h.clone(), claims(), &key(1))).unwrap();
        assert_eq!(ok.sub, "u1");
        assert!(is_verified(ok.email_verified.as_ref()));
        // Without a kid, the only key of the family is used.
        assert!(check(&sign(json!({"alg": "EdDSA"}), claims(), &key(1))).is_ok());

        let bad = |c: Json| check(&sign(h.clone(), c, &key(1)));
        assert!(matches!(
            bad(with("iss", json!("https://evil.test"))),
            Err(IdTokenError::Invalid(_))
        ));
        assert!(matches!(
            bad(with("aud", json!("other-client"))),
            Err(IdTokenError::Invalid(_))
        ));
        assert!(matches!(
            bad(with("exp", json!(now() - 3600))),
            Err(IdTokenError::Invalid(_))
        ));
        assert_eq!(bad(with("nonce", json!("n2"))), Err(IdTokenError::Nonce));
        let mut no_nonce = claims();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert_eq!(bad(no_nonce), Err(IdTokenError::Nonce));
        assert_eq!(
            bad(with("aud", json!(["keel", "other"]))),
            Err(IdTokenError::AuthorizedParty)
        );
        assert_eq!(
            bad(with("azp", json!("other"))),
            Err(IdTokenError::AuthorizedParty)
        );
        // Another key under our kid; an unknown kid.
        assert!(matches!(
            check(&sign(h.clone(), claims(), &key(2))),
            Err(IdTokenError::Invalid(_))
        ));
        assert_eq!(
            check(&sign(
                json!({"alg": "EdDSA", "kid": "k9"}),
                claims(),
                &key(1)
            )),
            Err(IdTokenError::UnknownKey)
        );
        // alg none / HS256 with the same body; an algorithm not advertised.
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        for alg in ["none", "HS256"] {
            let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
            assert!(check(&format!("{head}.{body}.")).is_err(), "{alg}");
        }
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#);
        assert_eq!(
            check(&format!("{head}.{body}.AAAA")),
            Err(IdTokenError::Algorithm)
        );
        assert_eq!(check("not-a-token"), Err(IdTokenError::Malformed));
        assert!(!is_verified(Some(&json!(false))));
        assert!(is_verified(Some(&json!("true"))));
        assert!(!is_verified(None));
    }
}

//! Encryption at rest for fields marked `encrypted = true`: XChaCha20-Poly1305 with a
//! random 192-bit nonce per write, the column name as associated data (a ciphertext
//! moved to another column does not decrypt), and a key id in every value so keys can
//! rotate: new writes use the first key of `KEEL_ENCRYPTION_KEYS`, reads find theirs.
//!
//! Stored form: `enc:v1:<kid>:<base64url(nonce ‖ ciphertext)>`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The environment variable holding the keys: `kid:base64key[,kid:base64key…]`.
pub const KEYS_ENV: &str = "KEEL_ENCRYPTION_KEYS";

/// The keys that encrypt and decrypt fields.
pub struct FieldCipher {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "FieldCipher({ids:?})")
    }
}

impl FieldCipher {
    /// Parse `kid:base64key,…` (32-byte keys, standard or URL-safe base64).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, key) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}` is not `kid:base64key`"))?;
            if kid.is_empty()
                || !kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "key id `{kid}` must be letters, digits, `_` or `-`"
                ));
            }
            let bytes = URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .or_else(|_| base64::engine::general_purpose::STANDARD.decode(key))
                .map_err(|_| format!("key `{kid}` is not base64"))?;
            if bytes.len() != 32 {
                return Err(format!("key `{kid}` must be 32 bytes, not {}", bytes.len()));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())?;
            keys.push((kid.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(format!("{KEYS_ENV} holds no key"));
        }
        Ok(Self { keys })
    }

    /// Encrypt with the current key, bound to `column` (e.g. `users.ssn`).
    pub fn encrypt(&self, column: &str, plaintext: &[u8]) -> Result<String, String> {
        let (kid, cipher) = self.keys.first().ok_or("no key")?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| "encryption failed".to_string())?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("enc:v1:{kid}:{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Decrypt a stored value of `column`.
    pub fn decrypt(&self, column: &str, stored: &str) -> Result<Vec<u8>, String> {
        let rest = stored
            .strip_prefix("enc:v1:")
            .ok_or("not an encrypted value")?;
        let (kid, blob) = rest.split_once(':').ok_or("malformed encrypted value")?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .ok_or_else(|| format!("key `{kid}` is not in {KEYS_ENV}"))?;
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| "malformed encrypted value")?;
        if blob.len() < 24 {
            return Err("malformed encrypted value".into());
        }
        let (nonce, ct) = blob.split_at(24);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| "the value does not decrypt (wrong key or tampered)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const K2: &str = "k2:HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE";

    #[test]
    fn round_trip_rotation_and_tamper() {
        let old = FieldCipher::parse(K1).unwrap();
        let stored = old.encrypt("users.ssn", b"\"123\"").unwrap();
        assert!(stored.starts_with("enc:v1:k1:"));
        assert_ne!(
            stored,
            old.encrypt("users.ssn", b"\"123\"").unwrap(),
            "fresh nonce per write"
        );
        // Rotation: k2 writes, k1 still reads.
        let both = FieldCipher::parse(&format!("{K2},{K1}")).unwrap();
        assert_eq!(both.decrypt("users.ssn", &stored).unwrap(), b"\"123\"");
        assert!(
            both.encrypt("users.ssn", b"x")
                .unwrap()
                .starts_with("enc:v1:k2:")
        );
        // Another column, a flipped byte, an unknown key: refused.
        assert!(old.decrypt("users.other", &stored).is_err());
        let mut bad = stored.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(old.decrypt("users.ssn", &bad).is_err());
        assert!(
            FieldCipher::parse(K2)
                .unwrap()
                .decrypt("users.ssn", &stored)
                .is_err()
        );
        assert!(FieldCipher::parse("k1:c2hvcnQ").is_err());
        assert!(FieldCipher::parse("").is_err());
    }
}

//! Standard Webhooks 1.0 asymmetric signatures, scheme `v1a` (Ed25519), for partner webhooks
//! (SPEC §13). No crate implements `v1a`, so it is written here, from the spec:
//!
//! - keys: `whsk_<base64 of the 32-byte Ed25519 seed>` (secret) and
//!   `whpk_<base64 of the 32-byte public key>` (what the partner verifies with);
//! - signed content: `"{webhook-id}.{webhook-timestamp}.{body}"`, the timestamp in decimal Unix
//!   seconds and the body as the exact bytes sent;
//! - header `webhook-signature`: `v1a,<base64 of the 64-byte signature>`, several separated by
//!   one space (a key rotation sends both); a verifier accepts the message when any `v1a`
//!   signature verifies and ignores the schemes it does not know.
//!
//! No I/O; every parse of untrusted input is fallible.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// The prefix of a `v1a` secret key.
pub const SECRET_PREFIX: &str = "whsk_";
/// The prefix of a `v1a` public key.
pub const PUBLIC_PREFIX: &str = "whpk_";
/// The scheme of an asymmetric signature in `webhook-signature`.
pub const SCHEME: &str = "v1a";

/// Why a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSignatureError {
    #[error("not a {prefix} key: {detail}")]
    BadKey {
        prefix: &'static str,
        detail: String,
    },
    #[error("no v1a signature in the header verifies")]
    NoValidSignature,
    #[error("no randomness available: {0}")]
    Random(String),
}

/// An endpoint's signing key. Neither `Debug` nor `Display` shows the secret.
#[derive(Clone)]
pub struct WebhookKey(SigningKey);

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookKey").field(&self.public()).finish()
    }
}

impl WebhookKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, WebhookSignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| WebhookSignatureError::Random(e.to_string()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key a `whsk_` text names.
    pub fn from_secret(text: &str) -> Result<Self, WebhookSignatureError> {
        let seed: [u8; 32] = decode_key(text, SECRET_PREFIX)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// `whsk_…`: what the store keeps, never an answer or a log line.
    pub fn secret(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.0.to_bytes()))
    }

    /// `whpk_…`: what the partner verifies with.
    pub fn public(&self) -> String {
        format!(
            "{PUBLIC_PREFIX}{}",
            B64.encode(self.0.verifying_key().to_bytes())
        )
    }

    /// `v1a,<base64 signature>` over `"{id}.{timestamp}.{body}"`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self.0.sign(&signed_content(id, timestamp, body));
        format!("{SCHEME},{}", B64.encode(signature.to_bytes()))
    }
}

/// The `webhook-signature` header for `keys` (two during a rotation): their signatures,
/// space-separated, in the order given.
pub fn signature_header(keys: &[&WebhookKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| key.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a `webhook-signature` header with the `whpk_` key `public`: `Ok` when one of its
/// `v1a` signatures verifies over `"{id}.{timestamp}.{body}"`. Signatures of other schemes, and
/// malformed ones, are passed over.
pub fn verify(
    public: &str,
    header: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<(), WebhookSignatureError> {
    let key: [u8; 32] = decode_key(public, PUBLIC_PREFIX)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|e| WebhookSignatureError::BadKey {
        prefix: PUBLIC_PREFIX,
        detail: e.to_string(),
    })?;
    let content = signed_content(id, timestamp, body);
    let verifies = header
        .split(' ')
        .filter_map(|part| part.split_once(','))
        .filter(|(scheme, _)| *scheme == SCHEME)
        .filter_map(|(_, signature)| {
            let bytes: [u8; 64] = B64.decode(signature).ok()?.try_into().ok()?;
            Some(Signature::from_bytes(&bytes))
        })
        .any(|signature| key.verify(&content, &signature).is_ok());
    if verifies {
        Ok(())
    } else {
        Err(WebhookSignatureError::NoValidSignature)
    }
}

/// `"{id}.{timestamp}.{body}"` (Standard Webhooks, "Signature scheme").
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + 22 + body.len());
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

fn decode_key(text: &str, prefix: &'static str) -> Result<[u8; 32], WebhookSignatureError> {
    let bad = |detail: &str| WebhookSignatureError::BadKey {
        prefix,
        detail: detail.to_owned(),
    };
    let encoded = text
        .strip_prefix(prefix)
        .ok_or_else(|| bad("wrong prefix"))?;
    B64.decode(encoded)
        .map_err(|_| bad("not base64"))?
        .try_into()
        .map_err(|_| bad("not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const TS: i64 = 1_674_087_231;
    const BODY: &[u8] =
        br#"{"type":"consent.revoked","timestamp":"2026-12-04T10:00:00Z","data":{}}"#;

    #[test]
    fn a_signature_verifies_with_the_public_key_over_exactly_what_was_sent() {
        let key = WebhookKey::generate().expect("key");
        let header = key.sign(ID, TS, BODY);
        assert!(header.starts_with("v1a,"));
        assert_eq!(verify(&key.public(), &header, ID, TS, BODY), Ok(()));
        let refused = Err(WebhookSignatureError::NoValidSignature);
        assert_eq!(
            verify(&key.public(), &header, "msg_other", TS, BODY),
            refused
        );
        assert_eq!(verify(&key.public(), &header, ID, TS + 1, BODY), refused);
        assert_eq!(verify(&key.public(), &header, ID, TS, b"{}"), refused);
        let other = WebhookKey::generate().expect("key");
        assert_eq!(verify(&other.public(), &header, ID, TS, BODY), refused);
    }

    #[test]
    fn during_a_rotation_either_key_verifies_and_unknown_schemes_are_passed_over() {
        let (old, new) = (
            WebhookKey::generate().expect("key"),
            WebhookKey::generate().expect("key"),
        );
        let header = signature_header(&[&new, &old], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(verify(&old.public(), &header, ID, TS, BODY), Ok(()));
        assert_eq!(verify(&new.public(), &header, ID, TS, BODY), Ok(()));
        let mixed = format!(
            "v1,c2VjcmV0 v2a,xyz v1a,notbase64 {}",
            old.sign(ID, TS, BODY)
        );
        assert_eq!(verify(&old.public(), &mixed, ID, TS, BODY), Ok(()));
    }

    #[test]
    fn keys_round_trip_and_bad_keys_are_refused() {
        let key = WebhookKey::generate().expect("key");
        let again = WebhookKey::from_secret(&key.secret()).expect("secret");
        assert_eq!(again.public(), key.public());
        assert!(!format!("{key:?}").contains(&key.secret()));
        assert!(WebhookKey::from_secret(&key.public()).is_err());
        assert!(WebhookKey::from_secret("whsk_AAAA").is_err());
        assert!(verify("whpk_!!!", "v1a,AAAA", ID, TS, BODY).is_err());
    }

    #[test]
    fn the_signed_content_is_id_dot_timestamp_dot_body() {
        assert_eq!(
            signed_content("msg_1", 1_700_000_000, b"{}"),
            b"msg_1.1700000000.{}".to_vec()
        );
    }
}

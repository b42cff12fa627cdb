//! Commitments to personal fields (SPEC §12, docs/adr/0008): a leaf holds
//! `{"commitment":"<base64 SHA-256(salt ‖ UTF-8 value)>"}` where the event had a personal
//! value; the value and its 32-byte salt (the *opening*) live beside the log and can be erased.
//! A bundle discloses openings by JSON pointer into the leaf, and a verifier checks each one
//! against the commitment it opens.
//!
//! No I/O; every parse of untrusted input is fallible.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes of a salt: fresh per committed occurrence, so equal values commit differently and a
/// short value (a tracking number) cannot be found by hashing guesses.
pub const SALT_BYTES: usize = 32;

/// The member name of a commitment object in a leaf.
pub const COMMITMENT: &str = "commitment";

/// What opens a commitment: the value and its salt (base64 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opening {
    pub value: String,
    pub salt: String,
}

/// Why an opening does not open the commitment it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpeningError {
    #[error("{pointer}: not a JSON pointer into the leaf")]
    BadPointer { pointer: String },
    #[error("{pointer}: the leaf has no commitment there")]
    NoCommitment { pointer: String },
    #[error("{pointer}: the salt is not {SALT_BYTES} bytes of base64")]
    BadSalt { pointer: String },
    #[error("{pointer}: the value and salt do not open the leaf's commitment")]
    Mismatch { pointer: String },
}

/// A fresh salt from the operating system's randomness.
pub fn fresh_salt() -> Result<[u8; SALT_BYTES], getrandom::Error> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt)?;
    Ok(salt)
}

/// base64(SHA-256(salt ‖ UTF-8 value)).
pub fn commitment_of(salt: &[u8; SALT_BYTES], value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(value.as_bytes());
    B64.encode(h.finalize())
}

/// The commitment object a leaf holds in place of `value`, and its opening.
pub fn commit(value: &str, salt: &[u8; SALT_BYTES]) -> (serde_json::Value, Opening) {
    let commitment = serde_json::json!({ COMMITMENT: commitment_of(salt, value) });
    let opening = Opening {
        value: value.to_owned(),
        salt: B64.encode(salt),
    };
    (commitment, opening)
}

/// Checks that `opening` opens the commitment at `pointer` (RFC 6901) in `leaf`, the parsed leaf
/// data. Compares in constant time per byte of the hash, though a commitment is no secret.
pub fn check_opening(
    leaf: &serde_json::Value,
    pointer: &str,
    opening: &Opening,
) -> Result<(), OpeningError> {
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err(OpeningError::BadPointer {
            pointer: pointer.to_owned(),
        });
    }
    let committed = leaf
        .pointer(pointer)
        .and_then(|v| v.as_object())
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(COMMITMENT))
        .and_then(|c| c.as_str())
        .ok_or_else(|| OpeningError::NoCommitment {
            pointer: pointer.to_owned(),
        })?;
    let salt: [u8; SALT_BYTES] = B64
        .decode(opening.salt.as_bytes())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| OpeningError::BadSalt {
            pointer: pointer.to_owned(),
        })?;
    let expected = commitment_of(&salt, &opening.value);
    let same = expected.len() == committed.len()
        && expected
            .bytes()
            .zip(committed.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(OpeningError::Mismatch {
            pointer: pointer.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POINTER: &str = "/payload/ShipmentRegistered/tracking_number";

    fn leaf_with(commitment: serde_json::Value) -> serde_json::Value {
        json!({"payload": {"ShipmentRegistered": {"carrier": "DHL", "tracking_number": commitment}}})
    }

    #[test]
    fn an_opening_opens_its_commitment_and_nothing_else() {
        let salt = [7u8; SALT_BYTES];
        let (commitment, opening) = commit("JJD0001", &salt);
        let leaf = leaf_with(commitment);
        assert_eq!(check_opening(&leaf, POINTER, &opening), Ok(()));

        let wrong_value = Opening {
            value: "JJD0002".into(),
            ..opening.clone()
        };
        assert_eq!(
            check_opening(&leaf, POINTER, &wrong_value),
            Err(OpeningError::Mismatch {
                pointer: POINTER.into()
            })
        );
        let wrong_salt = Opening {
            salt: B64.encode([8u8; SALT_BYTES]),
            ..opening.clone()
        };
        assert!(matches!(
            check_opening(&leaf, POINTER, &wrong_salt),
            Err(OpeningError::Mismatch { .. })
        ));
        let short_salt = Opening {
            salt: B64.encode([7u8; 16]),
            ..opening.clone()
        };
        assert!(matches!(
            check_opening(&leaf, POINTER, &short_salt),
            Err(OpeningError::BadSalt { .. })
        ));
        assert!(matches!(
            check_opening(&leaf, "/payload/ShipmentRegistered/carrier", &opening),
            Err(OpeningError::NoCommitment { .. })
        ));
        assert!(matches!(
            check_opening(&leaf, "payload", &opening),
            Err(OpeningError::BadPointer { .. })
        ));
    }

    #[test]
    fn equal_values_commit_differently_under_fresh_salts() {
        let a = fresh_salt().expect("randomness");
        let b = fresh_salt().expect("randomness");
        assert_ne!(a, b);
        assert_ne!(commitment_of(&a, "JJD0001"), commitment_of(&b, "JJD0001"));
        // The hash input is salt then value, as SPEC §12 fixes it.
        let mut h = Sha256::new();
        h.update(a);
        h.update(b"JJD0001");
        assert_eq!(commitment_of(&a, "JJD0001"), B64.encode(h.finalize()));
    }

    #[test]
    fn an_object_with_more_than_the_commitment_is_no_commitment() {
        let salt = [1u8; SALT_BYTES];
        let (_, opening) = commit("x", &salt);
        let leaf = leaf_with(json!({"commitment": commitment_of(&salt, "x"), "value": "x"}));
        assert!(matches!(
            check_opening(&leaf, POINTER, &opening),
            Err(OpeningError::NoCommitment { .. })
        ));
    }
}

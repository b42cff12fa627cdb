//! Commitments to personal fields (SPEC §12, docs/adr/0008): a leaf holds
//! `{"commitment":"<base64 SHA-256(salt ‖ UTF-8 value)>"}` where the event had a personal
//! value; the value and its 32-byte salt (the *opening*) live beside the log and can be erased.
//! A bundle discloses openings by JSON pointer into the leaf, and a verifier checks each one
//! against the commitment it opens.
//!
//! No I/O; every parse of untrusted input is fallible.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a visitor answers for a string, number, boolean or null: `None` where a pointer
/// passes through or ends (it holds no commitment), `()` where a value is skipped.
macro_rules! scalars_answer {
    ($answer:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($answer)
        }
    };
}

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
    opens(commitment_at(leaf, pointer)?, pointer, opening)
}

/// The commitment standing at `pointer` in the parsed leaf `leaf`, if one does: an object whose
/// one member is the string [`COMMITMENT`].
pub fn commitment_at<'a>(
    leaf: &'a serde_json::Value,
    pointer: &str,
) -> Result<Option<&'a str>, OpeningError> {
    well_formed(pointer)?;
    Ok(leaf
        .pointer(pointer)
        .and_then(|v| v.as_object())
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(COMMITMENT))
        .and_then(|c| c.as_str()))
}

/// [`check_opening`] on the leaf `{"payload": <payload>}` that `audit-log` checks a kept opening
/// against, given the payload's stored text: read in one pass that keeps only the commitment at
/// `pointer`, instead of building the whole JSON tree (the tree of each sealed event was a tenth
/// of the command's CPU). `Err` when `payload` is not one JSON value; the inner result is what
/// [`check_opening`] answers on the parsed leaf.
pub fn check_opening_in_payload(
    payload: &str,
    pointer: &str,
    opening: &Opening,
) -> Result<Result<(), OpeningError>, serde_json::Error> {
    if let Err(e) = well_formed(pointer) {
        return Ok(Err(e));
    }
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut reader = serde_json::Deserializer::from_str(payload);
    let committed = match tokens.split_first() {
        Some((first, rest)) if first == "payload" => At(rest).deserialize(&mut reader)?,
        // The leaf's one member is `payload`: nothing else in it is a commitment, the leaf
        // itself neither; the payload is still read, to be one JSON value.
        _ => Skip.deserialize(&mut reader).map(|()| None)?,
    };
    reader.end()?;
    Ok(opens(committed.as_deref(), pointer, opening))
}

fn well_formed(pointer: &str) -> Result<(), OpeningError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(OpeningError::BadPointer {
            pointer: pointer.to_owned(),
        })
    }
}

/// Whether `opening` opens `committed`, the commitment found at `pointer` (`None`: none there).
fn opens(committed: Option<&str>, pointer: &str, opening: &Opening) -> Result<(), OpeningError> {
    let committed = committed.ok_or_else(|| OpeningError::NoCommitment {
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

/// Reads a JSON value, descending into the members and elements the pointer's remaining
/// `tokens` name and skipping every other, and answers the commitment string standing there,
/// as `serde_json::Value::pointer` would find it: the last of repeated members, an array
/// index without sign or leading zero.
struct At<'t>(&'t [String]);

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => reader.deserialize_any(CommitmentObject),
            Some((token, rest)) => reader.deserialize_any(Step { token, rest }),
        }
    }
}

/// One step of the pointer: the member or element `token` of an object or array.
struct Step<'t> {
    token: &'t str,
    rest: &'t [String],
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(named) = map.next_key_seed(KeyIs(self.token))? {
            if named {
                found = map.next_value_seed(At(self.rest))?;
            } else {
                map.next_value_seed(Skip)?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let index = array_index(self.token);
        let mut found = None;
        let mut at = 0usize;
        loop {
            let more = if Some(at) == index {
                seq.next_element_seed(At(self.rest))?.map(|c| found = c)
            } else {
                seq.next_element_seed(Skip)?
            };
            if more.is_none() {
                return Ok(found);
            }
            at += 1;
        }
    }

    scalars_answer!(None);
}

/// The value at the pointer: an object whose one member is the string [`COMMITMENT`].
struct CommitmentObject;

impl<'de> Visitor<'de> for CommitmentObject {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut commitment = None;
        let mut others = false;
        while let Some(named) = map.next_key_seed(KeyIs(COMMITMENT))? {
            if named {
                commitment = Some(map.next_value::<serde_json::Value>()?);
            } else {
                others = true;
                map.next_value_seed(Skip)?;
            }
        }
        Ok(match (others, commitment) {
            (false, Some(serde_json::Value::String(c))) => Some(c),
            _ => None,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(None)
    }

    scalars_answer!(None);
}

/// A value read and dropped: read as the parsed leaf reads it (every number in range, every
/// escape whole), so that a text refused there is refused here, but kept nowhere.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    scalars_answer!(());
}

/// Whether an object's key is `self.0`, compared unescaped and without keeping it.
struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<bool, D::Error> {
        reader.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// RFC 6901's array index as `serde_json::Value::pointer` reads it: digits, no sign, no leading
/// zero but for `0` itself.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
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

    /// What a serializer never writes but a stored payload could hold: repeated members (the
    /// last one counts, as in the parsed leaf), escaped keys, whitespace, arrays; and text that
    /// is not one JSON value, a member smuggled beside the payload among it.
    #[test]
    fn the_payload_is_read_as_the_parsed_leaf_is() {
        let salt = [9u8; SALT_BYTES];
        let (good, opening) = commit("JJD0001", &salt);
        let good = good.to_string();
        let bad = json!({COMMITMENT: commitment_of(&salt, "JJD0002")}).to_string();
        let cases = [
            (format!(r#"{{"f":{bad},"f":{good}}}"#), "/payload/f"),
            (format!(r#"{{"f":{good},"f":{bad}}}"#), "/payload/f"),
            (format!(r#"{{"a\u002fb":{good}}}"#), "/payload/a~1b"),
            (format!(r#"{{"~":{good}}}"#), "/payload/~0"),
            (format!(" [ 1 , {good} ] "), "/payload/1"),
            (format!("[1,{good}]"), "/payload/01"),
            (format!("[1,{good}]"), "/payload/+1"),
            (format!("[{good}]"), "/payload/1"),
            (
                r#"{"f":{"commitment":"x","commitment":"y"}}"#.to_owned(),
                "/payload/f",
            ),
            (good.clone(), "/payload"),
            (good.clone(), ""),
            (good.clone(), "/commitment"),
            (good.clone(), "payload"),
        ];
        for (text, pointer) in &cases {
            let payload: serde_json::Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(
                check_opening_in_payload(text, pointer, &opening).expect("JSON"),
                check_opening(&json!({ "payload": payload }), pointer, &opening),
                "{pointer:?} in {text}"
            );
        }
        let answers: Vec<_> = cases
            .iter()
            .map(|(text, pointer)| check_opening_in_payload(text, pointer, &opening).expect("JSON"))
            .collect();
        assert_eq!(answers[0], Ok(()));
        assert!(matches!(answers[1], Err(OpeningError::Mismatch { .. })));
        assert_eq!(answers[9], Ok(()));
        for broken in [
            format!("{good} x"),
            format!(r#"{{"f":1}}, "payload": {{"f":{good}}}"#),
            format!(r#"{{"f":{good}"#),
            "[1e400]".to_owned(),
            r#"{"f":tru}"#.to_owned(),
        ] {
            assert!(check_opening_in_payload(&broken, "/payload/f", &opening).is_err());
            assert!(check_opening_in_payload(&broken, "/other", &opening).is_err());
            assert!(serde_json::from_str::<serde_json::Value>(&broken).is_err());
        }
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

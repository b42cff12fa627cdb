//! Leaf data (SPEC §6): an event of the global log as RFC 8785 (JCS) canonical JSON, with its
//! position, stream, type, schema version, actor, request id and `recorded_at` inside it, so
//! that a leaf hash commits to all of them. Leaf index = global position.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::tree::{leaf_hash, Hash};

/// One event as it enters the tree. Borrowed, so the writer hashes without copying.
///
/// The fields are declared in RFC 8785 key order (sorted), so serde's output of this struct is
/// already canonical whenever the payload is (see [`leaf_data`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LeafEvent<'a> {
    pub actor: &'a str,
    pub event_type: &'a str,
    pub payload: &'a serde_json::Value,
    pub position: u64,
    #[serde(serialize_with = "rfc3339_micros")]
    pub recorded_at: DateTime<Utc>,
    pub request_id: &'a str,
    pub schema_version: u32,
    pub stream_id: &'a str,
    pub stream_type: &'a str,
    pub stream_version: u64,
}

fn rfc3339_micros<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The canonical JSON text of the event (RFC 8785): the leaf data.
///
/// Fast path: when every number in the payload is an integer and every object's keys are
/// ASCII and iterate in sorted order, plain serde_json output is byte-for-byte RFC 8785
/// (integers print alike; serde_json escapes strings exactly as JCS does; ASCII keys sort the
/// same in UTF-8 and UTF-16). The event's own fields are declared sorted. Otherwise the JCS
/// implementation does it (ten times slower: it re-sorts and re-formats every value). Tests
/// hold the two paths equal.
pub fn leaf_data(event: &LeafEvent<'_>) -> Result<Vec<u8>, serde_json::Error> {
    if plainly_canonical(event.payload)
        && event.position <= MAX_SAFE
        && event.stream_version <= MAX_SAFE
    {
        serde_json::to_vec(event)
    } else {
        serde_json_canonicalizer::to_vec(event)
    }
}

/// The largest integer a double holds exactly (ECMAScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE: u64 = (1 << 53) - 1;

fn plainly_canonical(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        // JCS numbers are IEEE doubles: integers print alike only up to 2^53.
        Value::Number(n) => {
            n.as_i64().is_some_and(|i| i.unsigned_abs() <= MAX_SAFE)
                || n.as_u64().is_some_and(|u| u <= MAX_SAFE)
        }
        Value::Array(items) => items.iter().all(plainly_canonical),
        Value::Object(map) => {
            let mut previous: Option<&String> = None;
            map.iter().all(|(key, value)| {
                let in_order = key.is_ascii() && previous.is_none_or(|p| p < key);
                previous = Some(key);
                in_order && plainly_canonical(value)
            })
        }
    }
}

/// SHA-256(0x00 ‖ leaf data), RFC 9162 §2.1.1.
pub fn event_leaf_hash(event: &LeafEvent<'_>) -> Result<Hash, serde_json::Error> {
    Ok(leaf_hash(&leaf_data(event)?))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn event(payload: &serde_json::Value) -> LeafEvent<'_> {
        LeafEvent {
            position: 1,
            stream_type: "access",
            stream_id: "01a21007-de21-7702-9e2c-d0516566304d",
            stream_version: 1,
            event_type: "TrackingAccessAllowed",
            schema_version: 1,
            actor: "gateway \u{7f} \u{1f} \u{2028} é 𝄞",
            request_id: "line\nbreak\t\"quote\" back\\slash /",
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap(),
            payload,
        }
    }

    #[test]
    fn the_fast_path_equals_the_jcs_implementation() {
        let payloads = [
            json!({"TrackingAccessAllowed": {"decision_id": "x", "granted": ["status_events"], "on_behalf_of": null,
                   "position": 9007199254740991u64, "neg": -9007199254740991i64, "flag": true, "ctrl": "\u{0}\u{8}\u{b}\u{1f}"}}),
            json!({"z": 1, "a": {"y": [1, 2, {"b": "c", "a": "d"}]}}),
            json!([]),
            json!("plain"),
        ];
        for payload in &payloads {
            assert!(plainly_canonical(payload), "{payload}");
            let e = event(payload);
            assert_eq!(
                String::from_utf8(serde_json::to_vec(&e).unwrap()).unwrap(),
                String::from_utf8(serde_json_canonicalizer::to_vec(&e).unwrap()).unwrap()
            );
        }
        // Floats and non-ASCII keys take the JCS implementation.
        for payload in [
            json!({"amount": 1.5e21}),
            json!({"é": 1, "z": 2}),
            json!({"x": 1.0}),
            json!({"big": u64::MAX}),
        ] {
            assert!(!plainly_canonical(&payload), "{payload}");
            assert_eq!(
                leaf_data(&event(&payload)).unwrap(),
                serde_json_canonicalizer::to_vec(&event(&payload)).unwrap()
            );
        }
    }

    #[test]
    fn leaf_data_is_canonical_json_with_sorted_keys_and_no_spaces() {
        let payload = json!({"b": 1.0, "a": "x", "c": [3, 2]});
        let event = LeafEvent {
            position: 7,
            stream_type: "consent",
            stream_id: "s",
            stream_version: 1,
            event_type: "ConsentGranted",
            schema_version: 1,
            actor: "u",
            request_id: "r",
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap(),
            payload: &payload,
        };
        let text = String::from_utf8(leaf_data(&event).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"actor":"u","event_type":"ConsentGranted","payload":{"a":"x","b":1,"c":[3,2]},"position":7,"recorded_at":"2026-01-02T03:04:05.000000Z","request_id":"r","schema_version":1,"stream_id":"s","stream_type":"consent","stream_version":1}"#
        );
        assert_eq!(event_leaf_hash(&event).unwrap(), leaf_hash(text.as_bytes()));
    }
}

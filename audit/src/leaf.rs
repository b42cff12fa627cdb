//! Leaf data (SPEC §6): an event of the global log as RFC 8785 (JCS) canonical JSON, with its
//! position, stream, type, schema version, actor, request id and `recorded_at` inside it, so
//! that a leaf hash commits to all of them. Leaf index = global position.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::tree::{leaf_hash, Hash};

/// One event as it enters the tree. Borrowed, so the writer hashes without copying.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LeafEvent<'a> {
    pub position: u64,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub actor: &'a str,
    pub request_id: &'a str,
    #[serde(serialize_with = "rfc3339_micros")]
    pub recorded_at: DateTime<Utc>,
    pub payload: &'a serde_json::Value,
}

fn rfc3339_micros<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The canonical JSON text of the event (RFC 8785): the leaf data.
pub fn leaf_data(event: &LeafEvent<'_>) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(event)
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

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

/// An event as the store keeps it: every field, the payload as its JSON text and `recorded_at`
/// as its RFC 3339 text, unparsed. For scans that hash millions of leaves (audit, export).
#[derive(Debug, Clone, Copy)]
pub struct StoredLeaf<'a> {
    pub actor: &'a str,
    pub event_type: &'a str,
    /// The payload's JSON text, as stored.
    pub payload: &'a str,
    pub position: u64,
    /// `recorded_at` as stored.
    pub recorded_at: &'a str,
    pub request_id: &'a str,
    pub schema_version: u32,
    pub stream_id: &'a str,
    pub stream_type: &'a str,
    pub stream_version: u64,
}

/// Writes into `out` (cleared first) the leaf data of a stored event with its payload and
/// `recorded_at` texts copied verbatim, parsing nothing.
///
/// This *is* the leaf data ([`leaf_data`] of the parsed event) whenever the store wrote the
/// payload as its canonical JSON and the time in the form leaves use — which it does for every
/// payload on the fast path of [`leaf_data`]. It is not otherwise (a float, a non-ASCII key),
/// and not if the text was altered: so the caller compares the hash with the stored leaf hash
/// and, when they differ, parses the event and takes [`leaf_data`], which decides.
pub fn stored_leaf_data(
    event: &StoredLeaf<'_>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    use std::io::Write;
    let io = serde_json::Error::io;
    out.clear();
    out.extend_from_slice(b"{\"actor\":");
    serde_json::to_writer(&mut *out, event.actor)?;
    out.extend_from_slice(b",\"event_type\":");
    serde_json::to_writer(&mut *out, event.event_type)?;
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(event.payload.as_bytes());
    write!(out, ",\"position\":{},\"recorded_at\":", event.position).map_err(io)?;
    serde_json::to_writer(&mut *out, event.recorded_at)?;
    out.extend_from_slice(b",\"request_id\":");
    serde_json::to_writer(&mut *out, event.request_id)?;
    write!(
        out,
        ",\"schema_version\":{},\"stream_id\":",
        event.schema_version
    )
    .map_err(io)?;
    serde_json::to_writer(&mut *out, event.stream_id)?;
    out.extend_from_slice(b",\"stream_type\":");
    serde_json::to_writer(&mut *out, event.stream_type)?;
    write!(out, ",\"stream_version\":{}}}", event.stream_version).map_err(io)?;
    Ok(())
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
    fn the_stored_texts_copied_verbatim_are_the_leaf_data_when_the_payload_is_plain() {
        let mut out = Vec::new();
        let plain = json!({"TrackingAccessAllowed": {"decision_id": "x", "granted": ["status_events"],
            "on_behalf_of": null, "n": -3, "ctrl": "\u{1}\u{7f}\u{2028}é"}});
        let floaty = json!({"b": 1.0, "a": "x"});
        for (payload, same) in [(&plain, true), (&floaty, false)] {
            let e = event(payload);
            // As the store writes them: Value::to_string and RFC 3339 with microseconds.
            let text = payload.to_string();
            let time = e.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
            let stored = StoredLeaf {
                actor: e.actor,
                event_type: e.event_type,
                payload: &text,
                position: e.position,
                recorded_at: &time,
                request_id: e.request_id,
                schema_version: e.schema_version,
                stream_id: e.stream_id,
                stream_type: e.stream_type,
                stream_version: e.stream_version,
            };
            stored_leaf_data(&stored, &mut out).unwrap();
            assert_eq!(out == leaf_data(&e).unwrap(), same, "{payload}");
            // A changed byte of the stored payload changes it.
            let altered = text.replacen('x', "y", 1);
            stored_leaf_data(
                &StoredLeaf {
                    payload: &altered,
                    ..stored
                },
                &mut out,
            )
            .unwrap();
            assert_ne!(out, leaf_data(&e).unwrap());
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

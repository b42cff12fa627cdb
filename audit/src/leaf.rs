//! Leaf data (SPEC §6): an event of the global log as RFC 8785 (JCS) canonical JSON, with its
//! position, stream, type, schema version, actor, request id and `recorded_at` inside it, so
//! that a leaf hash commits to all of them. Leaf index = global position.

use chrono::{DateTime, SecondsFormat, Utc};

use std::io::Write;

use sha2::{Digest, Sha256};

use crate::tree::{Hash, LEAF_HASH_PREFIX};

/// One event as it enters the tree. Borrowed, so the writer hashes without copying.
#[derive(Debug, Clone, Copy)]
pub struct LeafEvent<'a> {
    pub actor: &'a str,
    pub event_type: &'a str,
    /// The payload's RFC 8785 canonical JSON text, as [`canonical_text`] writes it; the store
    /// keeps payloads in this form, so it goes into the leaf as it is.
    pub payload: &'a str,
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
    pub request_id: &'a str,
    pub schema_version: u32,
    pub stream_id: &'a str,
    pub stream_type: &'a str,
    pub stream_version: u64,
}

/// The canonical JSON text of the event (RFC 8785): the leaf data.
///
/// The envelope is written directly, its keys in sorted order, strings escaped by serde_json
/// (which escapes exactly as JCS does), the payload embedded as the canonical text it already
/// is. Tests hold the result equal to a JCS implementation's output.
pub fn leaf_data(event: &LeafEvent<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(320 + event.payload.len());
    write_leaf(&mut out, event);
    out
}

/// Writes the leaf data of `event` ([`leaf_data`]) into `out`, piece by piece.
fn write_leaf(out: &mut impl Write, event: &LeafEvent<'_>) {
    write_head(out, event.actor, event.event_type, event.payload);
    write_tail(out, event);
}

/// The leaf data's keys before the position, `{"actor":…,"event_type":…,"payload":…`: what is
/// known of an event before the log gives it a place (most of its bytes: the payload).
fn write_head(out: &mut impl Write, actor: &str, event_type: &str, payload: &str) {
    put(out, b"{\"actor\":");
    push_str(out, actor);
    put(out, b",\"event_type\":");
    push_str(out, event_type);
    put(out, b",\"payload\":");
    put(out, payload.as_bytes());
}

/// The rest of the leaf data, from the position on: what the log stamps and the short fields.
fn write_tail(out: &mut impl Write, event: &LeafEvent<'_>) {
    put(out, b",\"position\":");
    push_number(out, event.position);
    put(out, b",\"recorded_at\":\"");
    push_time(out, event.recorded_at);
    put(out, b"\",\"request_id\":");
    push_str(out, event.request_id);
    put(out, b",\"schema_version\":");
    push_number(out, u64::from(event.schema_version));
    put(out, b",\"stream_id\":");
    push_str(out, event.stream_id);
    put(out, b",\"stream_type\":");
    push_str(out, event.stream_type);
    put(out, b",\"stream_version\":");
    push_number(out, event.stream_version);
    put(out, b"}");
}

/// Writing into a `Vec` or a hash cannot fail.
fn put(out: &mut impl Write, bytes: &[u8]) {
    let _ = out.write_all(bytes);
}

fn push_str(out: &mut impl Write, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// JCS numbers are IEEE doubles: integers print alike only up to 2^53; beyond that the JCS
/// implementation formats the double (never reached by positions or versions in practice).
fn push_number(out: &mut impl Write, n: u64) {
    if n <= MAX_SAFE {
        put(out, itoa::Buffer::new().format(n).as_bytes());
    } else if let Ok(text) = serde_json_canonicalizer::to_vec(&n) {
        put(out, &text);
    }
}

/// `recorded_at` as `to_rfc3339_opts(SecondsFormat::Micros, true)` writes it
/// (`2026-01-02T03:04:05.000000Z`), without the `String` it allocates: every leaf the writer
/// and `audit-log` hash carries one. A year outside 0–9999 or a leap second takes chrono's way.
fn push_time(out: &mut impl Write, at: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let nanos = at.nanosecond();
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999);
    let (Some(year), false) = (year, nanos >= 1_000_000_000) else {
        let chrono = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        put(out, chrono.as_bytes());
        return;
    };
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let fields = [
        (0..4, year),
        (5..7, at.month()),
        (8..10, at.day()),
        (11..13, at.hour()),
        (14..16, at.minute()),
        (17..19, at.second()),
        (20..26, nanos / 1_000),
    ];
    for (places, value) in fields {
        let mut value = value;
        for place in text.get_mut(places).into_iter().flatten().rev() {
            *place = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    put(out, &text);
}

/// A JSON value as RFC 8785 canonical text: what an event's payload is stored as.
///
/// Fast path: when every number is an integer within 2^53 and every object's keys are ASCII
/// and iterate in sorted order (serde_json's map is sorted), plain serde_json output is
/// byte-for-byte RFC 8785 (ASCII keys sort the same in UTF-8 and UTF-16). Otherwise the JCS
/// implementation does it (ten times slower). Tests hold the two paths equal.
pub fn canonical_text(value: &serde_json::Value) -> Result<String, serde_json::Error> {
    if plainly_canonical(value) {
        serde_json::to_string(value)
    } else {
        serde_json_canonicalizer::to_string(value)
    }
}

/// The largest integer a double holds exactly (ECMAScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE: u64 = (1 << 53) - 1;

fn plainly_canonical(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
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
pub fn event_leaf_hash(event: &LeafEvent<'_>) -> Hash {
    LeafHead::new(event.actor, event.event_type, event.payload).finish(event)
}

/// An event's leaf hash begun before the event has a position: SHA-256 run over `0x00` and
/// the leaf data's head (actor, event type and payload, [`write_head`]), so that whoever
/// stamps the event finishes the hash over the few bytes that follow, instead of hashing the
/// whole event. The group commit is the one serial stage of every write, and the head is most
/// of an event's bytes: its callers begin the hash, each on its own thread.
#[derive(Clone)]
pub struct LeafHead(Sha256);

impl LeafHead {
    pub fn new(actor: &str, event_type: &str, payload: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update([LEAF_HASH_PREFIX]);
        write_head(&mut LeafHasher(&mut hasher), actor, event_type, payload);
        Self(hasher)
    }

    /// The leaf hash of `event`, whose actor, event type and payload must be the ones this
    /// head was begun with (debug builds check it).
    pub fn finish(&self, event: &LeafEvent<'_>) -> Hash {
        debug_assert!(
            LeafHead::new(event.actor, event.event_type, event.payload)
                .0
                .finalize()
                == self.0.clone().finalize(),
            "a leaf hash finished from the head of another event"
        );
        let mut hasher = self.0.clone();
        // Gathered first and hashed in one call: a score of small writes into SHA-256 cost
        // more than the copy (a tail longer than the room, a long request id, goes straight in).
        let mut tail = Tail::default();
        write_tail(&mut tail, event);
        match tail.gathered() {
            Some(bytes) => hasher.update(bytes),
            None => write_tail(&mut LeafHasher(&mut hasher), event),
        }
        hasher.finalize().into()
    }
}

/// Room for a leaf's tail ([`write_tail`]): its fixed keys, numbers and time take ~130 bytes,
/// the rest is the request id, stream id and stream type.
const TAIL_ROOM: usize = 320;

/// A leaf's tail gathered on the stack; remembers whether it overflowed.
struct Tail {
    bytes: [u8; TAIL_ROOM],
    len: usize,
    overflowed: bool,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            bytes: [0; TAIL_ROOM],
            len: 0,
            overflowed: false,
        }
    }
}

impl Tail {
    /// The whole tail, unless it did not fit.
    fn gathered(&self) -> Option<&[u8]> {
        if self.overflowed {
            return None;
        }
        self.bytes.get(..self.len)
    }
}

impl Write for Tail {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.len + buf.len();
        match self.bytes.get_mut(self.len..end) {
            Some(room) if !self.overflowed => {
                room.copy_from_slice(buf);
                self.len = end;
            }
            _ => self.overflowed = true,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for LeafHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeafHead")
    }
}

/// The leaf data written straight into its hash, without building it first (the log's writer
/// and `audit-log` hash every event).
struct LeafHasher<'a>(&'a mut Sha256);

impl Write for LeafHasher<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Timelike};
    use serde::Serialize;
    use serde_json::json;

    use super::*;
    use crate::tree::leaf_hash;

    /// The event as a JCS implementation sees it: every field a JSON value.
    #[derive(Serialize)]
    struct Whole<'a> {
        actor: &'a str,
        event_type: &'a str,
        payload: &'a serde_json::Value,
        position: u64,
        recorded_at: String,
        request_id: &'a str,
        schema_version: u32,
        stream_id: &'a str,
        stream_type: &'a str,
        stream_version: u64,
    }

    const ACTOR: &str = "gateway \u{7f} \u{1f} \u{2028} é 𝄞";
    const REQUEST: &str = "line\nbreak\t\"quote\" back\\slash /";

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap()
    }

    fn event(payload: &str, position: u64) -> LeafEvent<'_> {
        LeafEvent {
            position,
            stream_type: "access",
            stream_id: "01a21007-de21-7702-9e2c-d0516566304d",
            stream_version: 1,
            event_type: "TrackingAccessAllowed",
            schema_version: 1,
            actor: ACTOR,
            request_id: REQUEST,
            recorded_at: at(),
            payload,
        }
    }

    fn by_jcs(payload: &serde_json::Value, position: u64) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(&Whole {
            actor: ACTOR,
            event_type: "TrackingAccessAllowed",
            payload,
            position,
            recorded_at: at().to_rfc3339_opts(SecondsFormat::Micros, true),
            request_id: REQUEST,
            schema_version: 1,
            stream_id: "01a21007-de21-7702-9e2c-d0516566304d",
            stream_type: "access",
            stream_version: 1,
        })
        .unwrap()
    }

    #[test]
    fn leaf_data_equals_the_jcs_implementation() {
        let payloads = [
            json!({"TrackingAccessAllowed": {"decision_id": "x", "granted": ["status_events"], "on_behalf_of": null,
                   "position": 9007199254740991u64, "neg": -9007199254740991i64, "flag": true, "ctrl": "\u{0}\u{8}\u{b}\u{1f}"}}),
            json!({"z": 1, "a": {"y": [1, 2, {"b": "c", "a": "d"}]}}),
            json!([]),
            json!("plain"),
            // These take the JCS implementation for the payload: floats, non-ASCII keys,
            // integers beyond 2^53.
            json!({"amount": 1.5e21}),
            json!({"é": 1, "z": 2}),
            json!({"x": 1.0}),
            json!({"big": u64::MAX}),
        ];
        for (i, payload) in payloads.iter().enumerate() {
            let text = canonical_text(payload).unwrap();
            assert_eq!(
                text.as_bytes(),
                serde_json_canonicalizer::to_vec(payload).unwrap(),
                "{payload}"
            );
            assert_eq!(plainly_canonical(payload), i < 4, "{payload}");
            for position in [0, 7, MAX_SAFE, MAX_SAFE + 1, u64::MAX] {
                assert_eq!(
                    String::from_utf8(leaf_data(&event(&text, position))).unwrap(),
                    String::from_utf8(by_jcs(payload, position)).unwrap()
                );
                // The hash written piece by piece is the hash of the whole leaf data.
                assert_eq!(
                    event_leaf_hash(&event(&text, position)),
                    leaf_hash(&by_jcs(payload, position))
                );
            }
        }
    }

    #[test]
    fn a_head_begun_before_the_position_finishes_as_the_whole_hash() {
        let text = canonical_text(&json!({"TrackingAccessAllowed": {"decision_id": "d \u{2028}"}}))
            .unwrap();
        let head = LeafHead::new(ACTOR, "TrackingAccessAllowed", &text);
        for position in [0, 1, 63, 64, MAX_SAFE, u64::MAX] {
            let event = event(&text, position);
            assert_eq!(head.finish(&event), leaf_hash(&leaf_data(&event)));
        }
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let mut times: Vec<DateTime<Utc>> = [
            (0, 1, 1, 0, 0, 0, 0),
            (1, 2, 3, 4, 5, 6, 7_000),
            (999, 12, 31, 23, 59, 59, 999_999_999),
            (1970, 1, 1, 0, 0, 0, 1),
            (2026, 12, 7, 6, 34, 12, 123_456_789),
            (9999, 12, 31, 23, 59, 59, 999_999_000),
        ]
        .into_iter()
        .map(|(y, mo, d, h, mi, s, n)| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
                .single()
                .unwrap()
                .with_nanosecond(n)
                .unwrap()
        })
        .collect();
        // Chrono's way: years it writes with a sign or five digits, and a leap second.
        times.push(Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).single().unwrap());
        times.push(
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
                .single()
                .unwrap(),
        );
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        times.push(leap);
        let mut at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
        for step in 0..2_000u32 {
            at += chrono::Duration::nanoseconds(i64::from(step) * 7_777_777_777);
            times.push(at);
        }
        for at in times {
            let mut written = Vec::new();
            push_time(&mut written, at);
            let chrono = at.to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(String::from_utf8(written).unwrap(), chrono);
        }
    }

    #[test]
    fn numbers_are_written_as_formatting_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), MAX_SAFE] {
            let mut written = Vec::new();
            push_number(&mut written, n);
            assert_eq!(String::from_utf8(written).unwrap(), n.to_string());
        }
    }

    #[test]
    fn a_tail_too_long_to_gather_is_hashed_as_it_is_written() {
        let text = canonical_text(&json!({"a": 1})).unwrap();
        let long = "r".repeat(TAIL_ROOM * 2);
        for request_id in ["short", &long[..TAIL_ROOM - 120], &long] {
            let event = LeafEvent {
                request_id,
                ..event(&text, 42)
            };
            let head = LeafHead::new(ACTOR, "TrackingAccessAllowed", &text);
            assert_eq!(head.finish(&event), leaf_hash(&leaf_data(&event)));
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "another event")]
    fn a_head_finished_for_another_event_is_caught() {
        let text = canonical_text(&json!({"a": 1})).unwrap();
        let other = canonical_text(&json!({"a": 2})).unwrap();
        LeafHead::new(ACTOR, "TrackingAccessAllowed", &other).finish(&event(&text, 1));
    }

    #[test]
    fn leaf_data_is_canonical_json_with_sorted_keys_and_no_spaces() {
        let payload = canonical_text(&json!({"b": 1.0, "a": "x", "c": [3, 2]})).unwrap();
        let event = LeafEvent {
            position: 7,
            stream_type: "consent",
            stream_id: "s",
            stream_version: 1,
            event_type: "ConsentGranted",
            schema_version: 1,
            actor: "u",
            request_id: "r",
            recorded_at: at(),
            payload: &payload,
        };
        let text = String::from_utf8(leaf_data(&event)).unwrap();
        assert_eq!(
            text,
            r#"{"actor":"u","event_type":"ConsentGranted","payload":{"a":"x","b":1,"c":[3,2]},"position":7,"recorded_at":"2026-01-02T03:04:05.000000Z","request_id":"r","schema_version":1,"stream_id":"s","stream_type":"consent","stream_version":1}"#
        );
        assert_eq!(event_leaf_hash(&event), leaf_hash(text.as_bytes()));
    }
}

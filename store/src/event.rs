//! What the log holds: events as written ([`NewEvent`]) and as committed ([`StoredEvent`]).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A global log position: 0, 1, 2, … with no gaps, in commit order (SPEC §4).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = u64)]
pub struct Position(u64);

impl Position {
    pub const ZERO: Position = Position(0);

    pub fn new(p: u64) -> Self {
        Self(p)
    }
    pub fn get(self) -> u64 {
        self.0
    }
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
    /// The position as SQL's signed 64-bit integer.
    pub(crate) fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
    pub(crate) fn from_i64(p: i64) -> Self {
        Self(u64::try_from(p).unwrap_or(0))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event's payload, kept as the RFC 8785 canonical JSON text it is stored as and hashed
/// into its Merkle leaf (SPEC §6). Made once, when the event is; cloning it is a reference
/// count, and no layer turns it into a tree of JSON values and back again.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

impl Payload {
    /// Any serialisable value, as canonical JSON text.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_value(value)?;
        Ok(Self(
            consent_ledger_audit::leaf::canonical_text(&value)?.into(),
        ))
    }

    /// A value whose plain serde_json output is canonical already: every struct's fields
    /// declared in sorted order, integers only, no maps with unsorted keys — the hot path's
    /// access events. Debug builds (every test) check it against [`Payload::encode`].
    pub fn encode_presorted<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(value)?;
        debug_assert_eq!(
            Some(text.as_str()),
            Self::encode(value).ok().as_ref().map(Payload::as_str),
            "encode_presorted of a value that is not canonical as written"
        );
        Ok(Self(text.into()))
    }

    /// Text read back from the store, as it was written.
    pub fn stored(text: String) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the payload into a typed event.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The payload as a JSON value tree.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event ready to append; the store assigns its position and `recorded_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub stream_type: String,
    pub stream_id: String,
    /// 1 for a stream's first event.
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Payload,
}

impl NewEvent {
    /// A cqrs-es domain event as the `version`th event of stream (`stream_type`, `stream_id`).
    pub fn from_domain<E: cqrs_es::DomainEvent>(
        event: &E,
        stream_type: &str,
        stream_id: &str,
        version: u64,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            stream_version: version,
            event_type: event.event_type(),
            schema_version: event.event_version().parse().unwrap_or(1),
            payload: Payload::encode(event)?,
        })
    }

    /// Like [`NewEvent::from_domain`] for an event type whose serde output is canonical as
    /// written (see [`Payload::encode_presorted`]): one serialisation, no value tree.
    pub fn from_presorted_domain<E: cqrs_es::DomainEvent>(
        event: &E,
        stream_type: &str,
        stream_id: &str,
        version: u64,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            stream_version: version,
            event_type: event.event_type(),
            schema_version: event.event_version().parse().unwrap_or(1),
            payload: Payload::encode_presorted(event)?,
        })
    }
}

/// Who caused a write and under which request, recorded with every event of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The acting principal's id, or `cli` for the offline command line.
    pub actor: String,
    pub request_id: String,
}

/// One atomic append: all of `events` commit together or none do.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub events: Vec<NewEvent>,
    pub provenance: Provenance,
    pub idempotency: Option<IdempotencyClaim>,
    /// Values that must be unique across the whole log, e.g. `tracking:DHL/JJD0001`.
    pub unique_claims: Vec<String>,
    /// A bearer-token digest this append issues, kept beside the log (never in a leaf) and
    /// written in the same transaction; its principal is the append's first stream.
    pub credential: Option<Credential>,
    /// How this append orders against restrictions (SPEC §5.2).
    pub guard: Guard,
}

/// A principal's current bearer-token digest (hex SHA-256), as the `credentials` table keeps it:
/// written with the event that issued it, at that event's position (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub principal_id: String,
    pub token_sha256: String,
}

/// The credential a token digest belongs to: its principal and the position of the event that
/// issued it (a registration or a rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredential {
    pub principal_id: String,
    pub issued_at: Position,
}

/// Revocation is effective at commit (SPEC §5.2): an append that *restricts* access (a consent
/// revoked, a partner suspended) moves the log's restriction fence to its position; an append
/// that was *decided on* the state before some position (an allowed access) commits only if no
/// restriction committed at or after that position, and is otherwise refused as
/// [`crate::StoreError::Stale`] so the caller decides again on fresher state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Guard {
    pub restricts: bool,
    /// The position the decision's state had applied up to (all events before it).
    pub decided_before: Option<Position>,
}

/// An `Idempotency-Key` claimed by an append (SPEC §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// Who sent the key and to which route; keys of different principals never collide.
    pub scope: String,
    pub key: String,
    /// A digest of the request, so that a key reused for another request is refused.
    pub fingerprint: String,
}

/// What an earlier request with the same key committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub first_position: Position,
    pub last_position: Position,
}

/// An event as committed to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: Position,
    pub stream_type: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub actor: String,
    pub request_id: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: Payload,
}

impl StoredEvent {
    /// The event as a Merkle leaf (SPEC §6): every field, the position included.
    pub fn leaf(&self) -> consent_ledger_audit::leaf::LeafEvent<'_> {
        consent_ledger_audit::leaf::LeafEvent {
            position: self.position.get(),
            stream_type: &self.stream_type,
            stream_id: &self.stream_id,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            actor: &self.actor,
            request_id: &self.request_id,
            recorded_at: self.recorded_at,
            payload: self.payload.as_str(),
        }
    }
}

/// An event as stored, its payload left as the JSON text it is kept as: for readers that parse
/// it straight into a typed event, or not at all (replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub position: Position,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
    pub actor: String,
    pub payload: String,
}

/// A coarse pre-selection of one stream type's events made in SQL, for scans that want few of
/// the log's events (an export of one shipment's or one partner's decisions): the events a
/// reader would throw away never cross into Rust. It may let through events the reader still
/// rejects (a text found elsewhere in a payload); it never holds back one that matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionScan {
    /// The stream type scanned (e.g. `access`).
    pub stream_type: String,
    /// Only events of this type, if given.
    pub event_type: Option<String>,
    /// Texts the payload contains: at least one of every group (ids and tracking numbers are
    /// stored as they are written, so their text finds them).
    pub payload_contains: Vec<Vec<String>>,
    /// Only events whose payload has this string field with a value whose first characters
    /// lie in a range (e.g. a time to the second, which orders as text).
    pub text_field: Option<TextFieldRange>,
    /// Also the events of this one stream (type, id), whatever their type.
    pub also: Option<(String, String)>,
}

/// A range of a string field's leading characters (see [`DecisionScan::text_field`]). The field
/// is found by its first `"key":"` in the payload text: the scan is meant for payloads where
/// that is the field itself (no string before it could hold those characters unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFieldRange {
    pub key: String,
    /// Characters of the value compared.
    pub chars: usize,
    pub min: Option<String>,
    pub max: Option<String>,
}

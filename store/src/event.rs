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

/// The opening of one personal field of an event (SPEC §12, docs/adr/0008): the value its
/// leaf commits to and the salt, kept in the store's `openings` table beside the log until an
/// erasure deletes it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedField {
    /// The JSON pointer (RFC 6901) of the commitment in the leaf, e.g.
    /// `/payload/ShipmentRegistered/tracking_number`.
    pub pointer: String,
    pub value: String,
    /// base64 of the 32-byte salt.
    pub salt: String,
}

/// Personal values are never logged: a debug print names the pointer only.
impl fmt::Debug for OpenedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedField")
            .field("pointer", &self.pointer)
            .finish_non_exhaustive()
    }
}

/// The leaf pointer of a field at `pointer` in the payload.
const PAYLOAD: &str = "/payload";

/// Replaces each personal field of `payload` that holds a value with its commitment, and
/// returns the openings: a fresh salt per field (SPEC §12).
fn seal(
    payload: &mut serde_json::Value,
    event_type: &str,
) -> Result<Vec<OpenedField>, serde_json::Error> {
    use consent_ledger_audit::commitment::{commit, fresh_salt};
    let mut openings = Vec::new();
    for pointer in consent_ledger_domain::personal::pointers(event_type) {
        let Some(slot) = payload.pointer_mut(pointer) else {
            continue;
        };
        let serde_json::Value::String(value) = slot else {
            continue;
        };
        let salt = fresh_salt().map_err(<serde_json::Error as serde::ser::Error>::custom)?;
        let (commitment, opening) = commit(value, &salt);
        openings.push(OpenedField {
            pointer: format!("{PAYLOAD}{pointer}"),
            value: opening.value,
            salt: opening.salt,
        });
        *slot = commitment;
    }
    Ok(openings)
}

/// The payload with `openings` put back in place of their commitments; commitments without one
/// (erased) stay, and decode as `Personal::Erased`.
fn open(payload: &str, openings: &[OpenedField]) -> Result<serde_json::Value, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_str(payload)?;
    for opened in openings {
        let pointer = opened
            .pointer
            .strip_prefix(PAYLOAD)
            .unwrap_or(&opened.pointer);
        if let Some(slot) = value.pointer_mut(pointer) {
            *slot = serde_json::Value::String(opened.value.clone());
        }
    }
    Ok(value)
}

/// Parses a stored payload into a typed event, its personal fields opened.
pub fn decode_opened<T: serde::de::DeserializeOwned>(
    payload: &str,
    openings: &[OpenedField],
) -> Result<T, serde_json::Error> {
    if openings.is_empty() {
        return serde_json::from_str(payload);
    }
    match open_text(payload, openings) {
        Some(text) => serde_json::from_str(&text),
        None => serde_json::from_value(open(payload, openings)?),
    }
}

/// [`open`] as a text substitution, for replay: each commitment object replaced by its value
/// as a JSON string, found by its field's name, without building a tree of values. Sound
/// because payloads are canonical JSON (RFC 8785: no whitespace) and each personal field's
/// name occurs once in its event (SPEC §12 fields sit one level under the event's name);
/// a name inside a string value is escaped (`\"reason\"`) and cannot match. `None` when a
/// field is not found so: the caller opens the tree instead.
fn open_text(payload: &str, openings: &[OpenedField]) -> Option<String> {
    let mut text = payload.to_owned();
    for opened in openings {
        let name = opened.pointer.rsplit('/').next()?;
        if name.contains('~') {
            return None;
        }
        let head = format!(r#""{name}":{{"commitment":""#);
        let start = text.find(&head)? + head.len() - r#"{"commitment":""#.len();
        let end = start + text[start..].find(r#""}"#)? + 2;
        let value = serde_json::to_string(&opened.value).ok()?;
        text.replace_range(start..end, &value);
    }
    Some(text)
}

/// Whether a stored payload holds a commitment: only then can it have openings.
pub(crate) fn is_sealed(payload: &str) -> bool {
    payload.contains(r#"{"commitment":""#)
}

/// The pointers (into the leaf) of every commitment in `leaf_payload` that `openings` does not
/// open: the fields erased.
pub fn erased_pointers(event_type: &str, payload: &str, openings: &[OpenedField]) -> Vec<String> {
    if !is_sealed(payload) {
        return Vec::new();
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    consent_ledger_domain::personal::pointers(event_type)
        .iter()
        .filter(|p| {
            value
                .pointer(p)
                .and_then(|v| v.get(consent_ledger_audit::commitment::COMMITMENT))
                .is_some()
        })
        .map(|p| format!("{PAYLOAD}{p}"))
        .filter(|p| !openings.iter().any(|o| &o.pointer == p))
        .collect()
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
    /// As it is stored and hashed into the leaf: personal fields sealed.
    pub payload: Payload,
    /// The openings of the sealed fields, written in the append's transaction.
    pub openings: Vec<OpenedField>,
}

impl NewEvent {
    /// A cqrs-es domain event as the `version`th event of stream (`stream_type`, `stream_id`).
    pub fn from_domain<E: cqrs_es::DomainEvent>(
        event: &E,
        stream_type: &str,
        stream_id: &str,
        version: u64,
    ) -> Result<Self, serde_json::Error> {
        let event_type = event.event_type();
        let mut value = serde_json::to_value(event)?;
        let openings = seal(&mut value, &event_type)?;
        Ok(Self {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            stream_version: version,
            schema_version: event.event_version().parse().unwrap_or(1),
            event_type,
            payload: Payload(consent_ledger_audit::leaf::canonical_text(&value)?.into()),
            openings,
        })
    }

    /// Like [`NewEvent::from_domain`] for an event type whose serde output is canonical as
    /// written (see [`Payload::encode_presorted`]) and that holds no personal value (its
    /// personal fields are absent or null): one serialisation, no value tree. Debug builds
    /// check that there was nothing to seal.
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
            openings: Vec::new(),
        })
        .inspect(|e| {
            debug_assert!(
                serde_json::to_value(event)
                    .ok()
                    .and_then(|mut v| seal(&mut v, &e.event_type).ok())
                    .is_some_and(|o| o.is_empty()),
                "from_presorted_domain of an event with a personal value"
            );
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
    /// What this append erases (SPEC §12), deleted in its transaction.
    pub erasure: Option<Erasure>,
    /// A webhook endpoint's new signing key (SPEC §13), kept beside the log in the same
    /// transaction; its endpoint is the append's first stream.
    pub webhook_key: Option<WebhookKeyRow>,
    /// Webhook messages this append causes (SPEC §13), queued in its transaction, each at the
    /// position of the event it names ([`OutboxMessage::cause`]).
    pub outbox: Vec<OutboxMessage>,
    /// Tracking updates kept in its transaction (SPEC §14), with the decisions and messages of
    /// their fan-out; one the store already holds (same shipment, time and status) refuses the
    /// append as a taken claim, so that an update fans out once.
    pub tracking: Vec<TrackingUpdateRow>,
    /// A bearer-token digest this append issues, kept beside the log (never in a leaf) and
    /// written in the same transaction; its principal is the append's first stream.
    pub credential: Option<Credential>,
    /// How this append orders against restrictions (SPEC §5.2).
    pub guard: Guard,
}

impl Append {
    /// An append of `events` and nothing beside them: no idempotency key, unique claim,
    /// credential, webhook key or message, tracking update or erasure, and no ordering against
    /// restrictions.
    pub fn plain(events: Vec<NewEvent>, provenance: Provenance) -> Append {
        Append {
            events,
            provenance,
            idempotency: None,
            unique_claims: Vec::new(),
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            erasure: None,
            guard: Guard::default(),
        }
    }

    /// For the crate's unit tests: version `version` of stream `("test", stream_id)`, one
    /// event, claiming `claim:{stream_id}:{version}`.
    #[cfg(test)]
    pub(crate) fn for_test(stream_id: &str, version: u64) -> Append {
        let event = NewEvent {
            stream_type: "test".to_owned(),
            stream_id: stream_id.to_owned(),
            stream_version: version,
            event_type: "Happened".to_owned(),
            schema_version: 1,
            payload: Payload::encode(&serde_json::json!({ "v": version }))
                .expect("a JSON object encodes"),
            openings: Vec::new(),
        };
        let provenance = Provenance {
            actor: "actor".to_owned(),
            request_id: "req".to_owned(),
        };
        let mut append = Append::plain(vec![event], provenance);
        append.unique_claims = vec![format!("claim:{stream_id}:{version}")];
        append
    }
}

/// The personal data an erasure deletes, in the transaction that records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erasure {
    /// Streams (type, id) whose openings are deleted: the shipments', and those of consents
    /// and requests scoped to one of them.
    pub streams: Vec<(String, String)>,
    /// Unique claims that hold an erased value (`tracking:CARRIER/NUMBER`).
    pub claims: Vec<String>,
    /// Digests of the recipient references erased, so that a subject access request can still
    /// say that and when (see [`subject_digest`]).
    pub subjects: Vec<String>,
    /// Events whose every opening is deleted (denials that recorded an erased number).
    pub positions: Vec<Position>,
    /// Openings of denials of unknown parcels recorded before this position are deleted
    /// (retention).
    pub asked_before: Option<Position>,
}

/// What a subject access request looks an erased recipient reference up by: hex SHA-256 of a
/// fixed label and the reference. Kept only in the `erased_subjects` table, never in a leaf.
pub fn subject_digest(recipient_ref: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"consent-ledger erased subject\0");
    h.update(recipient_ref.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook endpoint's key as the `webhook_keys` table keeps it. `Debug` never shows the
/// secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookKeyRow {
    pub endpoint_id: String,
    pub public_key: String,
    pub secret: String,
}

impl fmt::Debug for WebhookKeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookKeyRow")
            .field("endpoint_id", &self.endpoint_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// A webhook message to queue (SPEC §13, docs/adr/0010).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// `msg_<uuid>`: the `webhook-id` of every attempt.
    pub message_id: String,
    pub endpoint_id: String,
    /// e.g. `consent.granted`.
    pub event_type: String,
    /// RFC 3339: the time of the event, the body's `timestamp`.
    pub occurred_at: String,
    /// The message's `data` as JSON text, without the event's position (added at delivery).
    pub data: String,
    /// Which event of its append causes it (0: the first), whose position it is queued at: a
    /// fan-out queues each message at its own decision (SPEC §14).
    pub cause: usize,
    /// The shipment whose tracking update it carries (`tracking.updated`), so that an erasure
    /// or the tracking retention deletes it with the update (SPEC §12, §14).
    pub shipment_id: Option<String>,
}

/// One tracking update as kept (SPEC §14), beside the log: [`crate::tracking`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingUpdateRow {
    pub update_id: String,
    pub shipment_id: String,
    /// SPEC §14's vocabulary (`in_transit`, `delivered`, …).
    pub status: String,
    /// RFC 3339 UTC with microseconds.
    pub occurred_at: String,
    /// Unix milliseconds.
    pub received_at: i64,
    /// JSON: the optional parts (description, location, proof of delivery, recipient contact).
    pub details: String,
}

/// A queued webhook message as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub position: Position,
    pub data: String,
    pub attempts: u32,
    pub state: String,
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
    /// Exactly the leaf's payload: personal fields as commitments.
    pub payload: Payload,
    /// The openings of its sealed fields that are not erased.
    pub openings: Vec<OpenedField>,
}

impl StoredEvent {
    /// The payload as a typed event, its personal fields opened (erased ones decode as
    /// `Personal::Erased`).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        decode_opened(self.payload.as_str(), &self.openings)
    }

    /// The payload as a JSON value for a view: personal fields opened, and an erased one as
    /// `{"erased":true}` in place of its commitment (SPEC §12).
    pub fn opened_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        let mut value = open(self.payload.as_str(), &self.openings)?;
        for pointer in erased_pointers(&self.event_type, self.payload.as_str(), &self.openings) {
            let pointer = pointer.strip_prefix(PAYLOAD).unwrap_or(&pointer);
            if let Some(slot) = value.pointer_mut(pointer) {
                *slot = serde_json::json!({ "erased": true });
            }
        }
        Ok(value)
    }

    /// The pointers into the leaf of its erased fields.
    pub fn erased(&self) -> Vec<String> {
        erased_pointers(&self.event_type, self.payload.as_str(), &self.openings)
    }

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

/// An event as `audit-log` checks it ([`crate::Store::read_leaves`]): its position, the leaf
/// hash of its stored content, and, where its payload holds sealed fields, the event itself
/// with their openings, to be checked against its leaf. Boxed: nine events in ten have none,
/// and a page of 16,384 leaves is 0.8 MB this way instead of 5 MB, which the allocator took
/// fresh from the kernel (zeroed) for every page `audit-log` read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadLeaf {
    pub position: Position,
    pub leaf: consent_ledger_audit::tree::Hash,
    pub sealed: Option<Box<StoredEvent>>,
}

impl ReadLeaf {
    /// The leaf of an event read whole (its openings attached).
    pub fn of(event: StoredEvent) -> Self {
        Self {
            position: event.position,
            leaf: consent_ledger_audit::leaf::event_leaf_hash(&event.leaf()),
            sealed: is_sealed(event.payload.as_str()).then(|| Box::new(event)),
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
    /// The openings of its sealed fields that are not erased.
    pub openings: Vec<OpenedField>,
}

impl RawEvent {
    /// The payload as a typed event, its personal fields opened.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        decode_opened(&self.payload, &self.openings)
    }
}

/// An event as read, whose openings the store attaches after reading its row.
pub(crate) trait Sealable {
    fn position(&self) -> Position;
    fn payload_text(&self) -> &str;
    fn openings_mut(&mut self) -> &mut Vec<OpenedField>;
}

impl Sealable for StoredEvent {
    fn position(&self) -> Position {
        self.position
    }
    fn payload_text(&self) -> &str {
        self.payload.as_str()
    }
    fn openings_mut(&mut self) -> &mut Vec<OpenedField> {
        &mut self.openings
    }
}

impl<E: Sealable> Sealable for Box<E> {
    fn position(&self) -> Position {
        (**self).position()
    }
    fn payload_text(&self) -> &str {
        (**self).payload_text()
    }
    fn openings_mut(&mut self) -> &mut Vec<OpenedField> {
        (**self).openings_mut()
    }
}

impl Sealable for RawEvent {
    fn position(&self) -> Position {
        self.position
    }
    fn payload_text(&self) -> &str {
        &self.payload
    }
    fn openings_mut(&mut self) -> &mut Vec<OpenedField> {
        &mut self.openings
    }
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
    /// Also every event of these stream types, whatever its type and payload (a DSAR reads
    /// the registrations and erasures the GDPR projection has not applied in one scan).
    pub also_types: Vec<String>,
}

impl DecisionScan {
    /// Every event of `stream_type`; the other fields narrow it.
    pub fn of(stream_type: impl Into<String>) -> Self {
        Self {
            stream_type: stream_type.into(),
            event_type: None,
            payload_contains: Vec::new(),
            text_field: None,
            also: None,
            also_types: Vec::new(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use consent_ledger_domain::consent::ConsentEvent;
    use consent_ledger_domain::personal::Personal;
    use consent_ledger_domain::shipment::ShipmentEvent;
    use consent_ledger_domain::values::{
        CarrierCode, CountryCode, PrincipalId, Reason, RecipientRef, ShipmentId, ShipperId,
        TrackingNumber,
    };

    fn registration() -> ShipmentEvent {
        ShipmentEvent::ShipmentRegistered {
            id: ShipmentId::from_uuid(uuid::Uuid::from_u128(1)),
            shipper: ShipperId::from_uuid(uuid::Uuid::from_u128(2)),
            carrier: CarrierCode::parse("DHL").expect("carrier"),
            tracking_number: TrackingNumber::parse("JJD1").expect("number").into(),
            destination_country: CountryCode::parse("DE").expect("country"),
            recipient_ref: Some(RecipientRef::parse("crm:4711").expect("ref").into()),
            registered_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_sealed_event_holds_no_value_and_opens_back_to_itself() {
        let event = registration();
        let sealed = NewEvent::from_domain(&event, "shipment", "s", 1).expect("seal");
        assert_eq!(sealed.schema_version, 2);
        assert_eq!(sealed.openings.len(), 2);
        assert!(!sealed.payload.as_str().contains("JJD1"));
        assert!(!sealed.payload.as_str().contains("crm:"));
        // The text substitution and the tree agree, on every event type with personal fields.
        let by_text = open_text(sealed.payload.as_str(), &sealed.openings).expect("by text");
        let by_tree = open(sealed.payload.as_str(), &sealed.openings).expect("by tree");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&by_text).expect("JSON"),
            by_tree
        );
        let opened: ShipmentEvent =
            decode_opened(sealed.payload.as_str(), &sealed.openings).expect("open");
        assert_eq!(opened, event);
        let revoked = ConsentEvent::ConsentRevoked {
            revoked_by: PrincipalId::from_uuid(uuid::Uuid::from_u128(3)),
            reason: Reason::parse("the \"reason\":{\"commitment\":\" in a text")
                .expect("reason")
                .into(),
            revoked_at: chrono::DateTime::UNIX_EPOCH,
        };
        let sealed = NewEvent::from_domain(&revoked, "consent", "c", 2).expect("seal");
        let opened: ConsentEvent =
            decode_opened(sealed.payload.as_str(), &sealed.openings).expect("open");
        assert_eq!(opened, revoked);
    }

    #[test]
    fn a_field_whose_opening_is_gone_reads_erased() {
        let sealed = NewEvent::from_domain(&registration(), "shipment", "s", 1).expect("seal");
        let kept: Vec<OpenedField> = sealed
            .openings
            .iter()
            .filter(|o| o.pointer.ends_with("recipient_ref"))
            .cloned()
            .collect();
        let ShipmentEvent::ShipmentRegistered {
            tracking_number,
            recipient_ref,
            ..
        } = decode_opened(sealed.payload.as_str(), &kept).expect("open");
        assert_eq!(tracking_number, Personal::Erased);
        assert!(matches!(recipient_ref, Some(Personal::Known(_))));
        assert_eq!(
            erased_pointers("ShipmentRegistered", sealed.payload.as_str(), &kept),
            vec!["/payload/ShipmentRegistered/tracking_number".to_owned()]
        );
    }
}

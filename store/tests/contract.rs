//! The event store's contract (SPEC §4, §5, §9), run against real databases.
//!
//! Every case is an `async fn` that takes the [`StoreLocation`] of a fresh, empty store and
//! owns nothing backend-specific, so another backend reuses the whole suite by adding one
//! `#[tokio::test]` per case that hands it a fresh location of its own (see `mod sqlite` at
//! the end). Nothing is mocked, and nothing waits on time: concurrency is driven by barriers
//! and by the store's own answers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use consent_ledger_domain::principal::{
    PartnerProfile, Principal, PrincipalCommand, PrincipalError, PrincipalEvent,
};
use consent_ledger_domain::testing::{services, t0};
use consent_ledger_domain::values::{
    CountryCode, DisplayName, DpaRef, PartnerKind, PrincipalId, Reason, Role,
};
use consent_ledger_store::cqrs::{CommandBus, CommandError, CommandMeta, LedgerEventStore};
use consent_ledger_store::{
    migrate, Append, IdempotencyClaim, IdempotencyRecord, NewEvent, Payload, Position, Provenance,
    Store, StoreError, StoreLocation, StoredEvent,
};
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use serde_json::json;
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn open(location: &StoreLocation) -> Store {
    Store::open(location)
        .await
        .unwrap_or_else(|e| panic!("open {location:?}: {e}"))
}

fn new_event(
    stream_type: &str,
    stream_id: &str,
    stream_version: u64,
    event_type: &str,
    payload: serde_json::Value,
) -> NewEvent {
    NewEvent {
        stream_type: stream_type.to_owned(),
        stream_id: stream_id.to_owned(),
        stream_version,
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: payload_of(&payload),
        openings: Vec::new(),
    }
}

/// A JSON value as the canonical payload text the store keeps.
fn payload_of(value: &serde_json::Value) -> Payload {
    Payload::encode(value).expect("encodable")
}

fn provenance(actor: &str, request_id: &str) -> Provenance {
    Provenance {
        actor: actor.to_owned(),
        request_id: request_id.to_owned(),
    }
}

/// An append of `events` with no idempotency key and no unique claims.
fn plain(events: Vec<NewEvent>) -> Append {
    Append::plain(events, provenance("actor-1", "req-1"))
}

/// A one-event append of version `version` of `("test", stream_id)`.
fn one(stream_id: &str, version: u64, payload: serde_json::Value) -> Append {
    plain(vec![new_event(
        "test", stream_id, version, "Happened", payload,
    )])
}

fn idempotency_claim(scope: &str, key: &str, fingerprint: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: scope.to_owned(),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
    }
}

async fn append_ok(store: &Store, append: Append) -> Vec<StoredEvent> {
    store
        .append(append.clone())
        .await
        .unwrap_or_else(|e| panic!("append {append:?} refused: {e}"))
}

/// The whole log, read in pages that are deliberately small so paging is exercised too.
async fn whole_log(store: &Store) -> Vec<StoredEvent> {
    let mut log: Vec<StoredEvent> = Vec::new();
    loop {
        let from = Position::new(log.len() as u64);
        let page = store.read_range(from, 7).await.expect("read_range");
        if page.is_empty() {
            return log;
        }
        assert!(page.len() <= 7, "read_range returned more than its limit");
        log.extend(page);
    }
}

fn positions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.get()).collect()
}

/// Asserts the log holds exactly `len` events at positions `0..len`, in order, and that
/// `next_position` agrees. Returns the log.
async fn assert_gapless(store: &Store, len: u64) -> Vec<StoredEvent> {
    let log = whole_log(store).await;
    assert_eq!(
        positions(&log),
        (0..len).collect::<Vec<_>>(),
        "the log must hold positions 0..{len} exactly once, in order"
    );
    assert_eq!(
        store.next_position().await.expect("next_position"),
        Position::new(len),
        "next_position must equal the number of events"
    );
    log
}

/// SQLite keeps `recorded_at` to the microsecond (see `recorded_at_round_trips_exactly`); this
/// compares everything else exactly and `recorded_at` to that precision.
fn as_read_back(event: &StoredEvent) -> StoredEvent {
    StoredEvent {
        recorded_at: event.recorded_at.trunc_subsecs(6),
        ..event.clone()
    }
}

fn assert_same_events(read: &[StoredEvent], written: &[StoredEvent]) {
    let read: Vec<_> = read.iter().map(as_read_back).collect();
    let written: Vec<_> = written.iter().map(as_read_back).collect();
    assert_eq!(
        read, written,
        "events read back differ from what append answered"
    );
}

fn assert_recorded_between(event: &StoredEvent, before: DateTime<Utc>, after: DateTime<Utc>) {
    assert!(
        before.trunc_subsecs(6) <= event.recorded_at && event.recorded_at <= after,
        "recorded_at {} of position {} is not the time of its append ({before} ..= {after})",
        event.recorded_at,
        event.position
    );
}

fn principal_id() -> PrincipalId {
    PrincipalId::from_uuid(uuid::Uuid::now_v7())
}

fn partner_profile() -> PartnerProfile {
    PartnerProfile {
        kind: PartnerKind::Insurer,
        country: CountryCode::parse("DE").expect("country"),
        dpa_ref: DpaRef::parse("DPA-1").expect("dpa ref"),
    }
}

fn register_partner(id: PrincipalId) -> PrincipalCommand {
    PrincipalCommand::RegisterPrincipal {
        id,
        role: Role::Partner,
        name: DisplayName::parse("Acme Insurance").expect("name"),
        partner: Some(partner_profile()),
    }
}

fn registered_partner(id: PrincipalId) -> PrincipalEvent {
    PrincipalEvent::PrincipalRegistered {
        id,
        role: Role::Partner,
        name: DisplayName::parse("Acme Insurance").expect("name"),
        partner: Some(partner_profile()),
        token_sha256: None,
        registered_at: t0(),
    }
}

fn suspend() -> PrincipalCommand {
    PrincipalCommand::Suspend {
        reason: Reason::parse("contract ended").expect("reason"),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Positions
// ---------------------------------------------------------------------------------------------

/// Positions start at 0, have no gaps, follow commit order, and every field round-trips.
pub async fn positions_start_at_zero_and_are_gapless(location: StoreLocation) {
    let store = open(&location).await;
    assert_eq!(store.next_position().await.unwrap(), Position::ZERO);
    assert!(store
        .read_range(Position::ZERO, 100)
        .await
        .unwrap()
        .is_empty());

    let mut written = Vec::new();

    // A one-event append.
    let before = Utc::now();
    let first = append_ok(
        &store,
        Append::plain(
            vec![NewEvent {
                stream_type: "consent".into(),
                stream_id: "c-1".into(),
                stream_version: 1,
                event_type: "ConsentGranted".into(),
                schema_version: 3,
                payload: payload_of(&json!({"partner": "p-1", "purposes": ["insurance"], "n": -7})),
                openings: Vec::new(),
            }],
            provenance("shipper-1", "req-a"),
        ),
    )
    .await;
    let after = Utc::now();
    assert_eq!(positions(&first), vec![0]);
    assert_recorded_between(&first[0], before, after);
    written.extend(first);

    // A multi-event append spanning two streams takes the next consecutive positions.
    let second = append_ok(
        &store,
        Append::plain(
            vec![
                NewEvent {
                    stream_type: "consent".into(),
                    stream_id: "c-1".into(),
                    stream_version: 2,
                    event_type: "ConsentSuspended".into(),
                    schema_version: 1,
                    payload: payload_of(&json!({"reason": "ünïcødé ✓ \"quoted\" \n newline"})),
                    openings: Vec::new(),
                },
                NewEvent {
                    stream_type: "consent".into(),
                    stream_id: "c-1".into(),
                    stream_version: 3,
                    event_type: "ConsentRevoked".into(),
                    schema_version: 2,
                    payload: payload_of(
                        &json!({"nested": {"list": [1, 2.5, null, true], "big": u64::MAX}}),
                    ),
                    openings: Vec::new(),
                },
                NewEvent {
                    stream_type: "principal".into(),
                    stream_id: "p-1".into(),
                    stream_version: 1,
                    event_type: "PrincipalRegistered".into(),
                    schema_version: 1,
                    payload: payload_of(&json!({})),
                    openings: Vec::new(),
                },
            ],
            provenance("admin", "req-b"),
        ),
    )
    .await;
    assert_eq!(positions(&second), vec![1, 2, 3]);
    assert_eq!(
        second.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![2, 3, 1]
    );
    assert!(second
        .iter()
        .all(|e| e.actor == "admin" && e.request_id == "req-b"));
    written.extend(second);

    // Several more single-event appends.
    for i in 0..4u64 {
        let events = append_ok(&store, one("t-1", i + 1, json!({ "i": i }))).await;
        assert_eq!(positions(&events), vec![4 + i]);
        written.extend(events);
    }

    let log = assert_gapless(&store, 8).await;
    assert_same_events(&log, &written);
    // Spot-check every field of one event explicitly, not only through equality.
    let e = &log[2];
    assert_eq!(e.position, Position::new(2));
    assert_eq!(e.stream_type, "consent");
    assert_eq!(e.stream_id, "c-1");
    assert_eq!(e.stream_version, 3);
    assert_eq!(e.event_type, "ConsentRevoked");
    assert_eq!(e.schema_version, 2);
    assert_eq!(e.actor, "admin");
    assert_eq!(e.request_id, "req-b");
    // Kept as RFC 8785 canonical text: keys sorted, numbers as ECMAScript prints doubles.
    assert_eq!(
        e.payload.as_str(),
        r#"{"nested":{"big":18446744073709552000,"list":[1,2.5,null,true]}}"#
    );
    assert_eq!(log[0].recorded_at, written[0].recorded_at.trunc_subsecs(6));

    // A range in the middle, and a range past the end.
    let middle = store.read_range(Position::new(2), 3).await.unwrap();
    assert_eq!(positions(&middle), vec![2, 3, 4]);
    assert_same_events(&middle, &written[2..5]);
    assert!(store
        .read_range(Position::new(8), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read_range(Position::ZERO, 0)
        .await
        .unwrap()
        .is_empty());

    // A stream reads back in stream order, only its own events.
    let stream = store.read_stream("consent", "c-1").await.unwrap();
    assert_eq!(
        stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(positions(&stream), vec![0, 1, 2]);
    assert_same_events(&stream, &written[0..3]);
    assert!(store
        .read_stream("principal", "c-1")
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read_stream("consent", "nope")
        .await
        .unwrap()
        .is_empty());
}

/// What `append` answers is exactly what is read back later, `recorded_at` included.
pub async fn recorded_at_round_trips_exactly(location: StoreLocation) {
    let store = open(&location).await;
    let mut written = Vec::new();
    for v in 1..=20 {
        written.extend(append_ok(&store, one("s", v, json!(v))).await);
    }
    let log = whole_log(&store).await;
    assert_eq!(
        log, written,
        "append must answer the events exactly as they are stored"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Optimistic concurrency
// ---------------------------------------------------------------------------------------------

pub async fn a_stream_version_is_written_once(location: StoreLocation) {
    let store = open(&location).await;
    let winner = append_ok(&store, one("s-1", 1, json!("first"))).await;
    assert_eq!(positions(&winner), vec![0]);

    // The same version again is a conflict, and carries everything that must not be stored.
    let refused = store
        .append(Append {
            idempotency: Some(idempotency_claim("scope", "key-1", "fp-1")),
            unique_claims: vec!["claim:1".into()],
            ..Append::plain(
                vec![new_event("test", "s-1", 1, "Happened", json!("second"))],
                provenance("actor-2", "req-2"),
            )
        })
        .await;
    match refused {
        Err(StoreError::Conflict { stream }) => assert_eq!(stream, "s-1"),
        other => panic!("expected Conflict, got {other:?}"),
    }

    // A multi-event append whose last event conflicts writes none of its events.
    let refused = store
        .append(plain(vec![
            new_event("test", "other", 1, "Happened", json!("o1")),
            new_event("test", "s-1", 2, "Happened", json!("ok")),
            new_event("test", "s-1", 1, "Happened", json!("dup")),
        ]))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { ref stream }) if stream == "s-1"),
        "expected Conflict on s-1, got {refused:?}"
    );

    assert!(store.read_stream("test", "other").await.unwrap().is_empty());
    let s1 = store.read_stream("test", "s-1").await.unwrap();
    assert_eq!(s1.len(), 1);
    assert_eq!(s1[0].payload.as_str(), r#""first""#);
    assert_eq!(s1[0].actor, "actor-1");
    // The refused append's idempotency key and unique claim were not recorded.
    assert_eq!(store.idempotency("scope", "key-1").await.unwrap(), None);
    assert_gapless(&store, 1).await;

    // The next append takes position 1: refusals leave no hole.
    let next = append_ok(
        &store,
        Append {
            idempotency: Some(idempotency_claim("scope", "key-1", "fp-3")),
            unique_claims: vec!["claim:1".into()],
            ..Append::plain(
                vec![
                    new_event("test", "s-1", 2, "Happened", json!("v2")),
                    new_event("test", "other", 1, "Happened", json!("o1")),
                ],
                provenance("actor-3", "req-3"),
            )
        },
    )
    .await;
    assert_eq!(positions(&next), vec![1, 2]);
    let log = assert_gapless(&store, 3).await;
    assert_same_events(&log, &[winner, next].concat());

    // An already written version stays refused.
    assert!(matches!(
        store.append(one("s-1", 2, json!("again"))).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_gapless(&store, 3).await;
}

/// An append without events commits nothing: no position, no idempotency key, no claim. (A key
/// or claim recorded for it would point at the position of the next, unrelated event.)
pub async fn an_empty_append_records_nothing(location: StoreLocation) {
    let store = open(&location).await;
    let empty = store
        .append(Append {
            idempotency: Some(idempotency_claim("scope", "key-empty", "fp")),
            unique_claims: vec!["claim:empty".into()],
            ..Append::plain(Vec::new(), provenance("actor-1", "req-empty"))
        })
        .await;
    if let Ok(events) = &empty {
        assert!(
            events.is_empty(),
            "an empty append answered events: {events:?}"
        );
    }
    let next = append_ok(
        &store,
        Append {
            unique_claims: vec!["claim:empty".into()],
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            erasure: None,
            ..one("s", 1, json!("someone else's event"))
        },
    )
    .await;
    assert_eq!(positions(&next), vec![0]);
    assert_eq!(
        store.idempotency("scope", "key-empty").await.unwrap(),
        None,
        "the key of an empty append points at another request's event"
    );
    assert_gapless(&store, 1).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Unique claims
// ---------------------------------------------------------------------------------------------

pub async fn a_unique_claim_is_taken_once(location: StoreLocation) {
    let store = open(&location).await;
    let claim = "tracking:DHL/JJD0001".to_owned();
    let first = append_ok(
        &store,
        Append {
            unique_claims: vec![claim.clone()],
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            erasure: None,
            ..one("shipment-1", 1, json!("registered"))
        },
    )
    .await;
    assert_eq!(positions(&first), vec![0]);

    // Another stream claiming the same value is refused and writes nothing.
    let refused = store
        .append(Append {
            idempotency: Some(idempotency_claim("scope", "key", "fp")),
            unique_claims: vec![claim.clone()],
            ..Append::plain(
                vec![
                    new_event("test", "shipment-2", 1, "Happened", json!("a")),
                    new_event("test", "shipment-2", 2, "Happened", json!("b")),
                ],
                provenance("actor-2", "req-2"),
            )
        })
        .await;
    match refused {
        Err(StoreError::ClaimTaken { claim: taken }) => assert_eq!(taken, claim),
        other => panic!("expected ClaimTaken, got {other:?}"),
    }
    assert!(store
        .read_stream("test", "shipment-2")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.idempotency("scope", "key").await.unwrap(), None);
    assert_gapless(&store, 1).await;

    // One fresh and one taken claim: refused as a whole, so the fresh one stays free.
    let refused = store
        .append(Append {
            unique_claims: vec!["tracking:UPS/1Z999".into(), claim.clone()],
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            erasure: None,
            ..one("shipment-2", 1, json!("c"))
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::ClaimTaken { claim: ref taken }) if *taken == claim),
        "expected ClaimTaken for {claim}, got {refused:?}"
    );
    assert_gapless(&store, 1).await;

    // Both fresh claims in one append, then each is taken.
    let ok = append_ok(
        &store,
        Append {
            unique_claims: vec!["tracking:UPS/1Z999".into(), "tracking:GLS/42".into()],
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            erasure: None,
            ..one("shipment-2", 1, json!("d"))
        },
    )
    .await;
    assert_eq!(positions(&ok), vec![1]);
    for taken in ["tracking:UPS/1Z999", "tracking:GLS/42"] {
        let refused = store
            .append(Append {
                unique_claims: vec![taken.into()],
                credential: None,
                webhook_key: None,
                outbox: Vec::new(),
                tracking: Vec::new(),
                erasure: None,
                ..one("shipment-3", 1, json!("e"))
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::ClaimTaken { claim: ref c }) if c == taken),
            "expected ClaimTaken for {taken}, got {refused:?}"
        );
    }
    // Claims are compared exactly: a different value is free.
    let ok2 = append_ok(
        &store,
        Append {
            unique_claims: vec!["tracking:DHL/JJD0002".into()],
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            erasure: None,
            ..one("shipment-3", 1, json!("f"))
        },
    )
    .await;
    assert_eq!(positions(&ok2), vec![2]);
    let log = assert_gapless(&store, 3).await;
    assert_same_events(&log, &[first, ok, ok2].concat());
}

// ---------------------------------------------------------------------------------------------
// 4. Idempotency keys
// ---------------------------------------------------------------------------------------------

pub async fn an_idempotency_key_records_its_first_answer(location: StoreLocation) {
    let store = open(&location).await;
    // Something before, so the key's positions do not start at 0.
    append_ok(&store, one("before", 1, json!(0))).await;

    let scope = "principal-1 POST /consents";
    assert_eq!(store.idempotency(scope, "key-1").await.unwrap(), None);
    let first = append_ok(
        &store,
        Append {
            idempotency: Some(idempotency_claim(scope, "key-1", "sha256:AAA")),
            ..Append::plain(
                vec![
                    new_event("test", "c-1", 1, "Happened", json!(1)),
                    new_event("test", "c-1", 2, "Happened", json!(2)),
                    new_event("test", "c-1", 3, "Happened", json!(3)),
                ],
                provenance("principal-1", "req-1"),
            )
        },
    )
    .await;
    assert_eq!(positions(&first), vec![1, 2, 3]);
    let record = IdempotencyRecord {
        fingerprint: "sha256:AAA".into(),
        first_position: Position::new(1),
        last_position: Position::new(3),
    };
    assert_eq!(
        store.idempotency(scope, "key-1").await.unwrap(),
        Some(record.clone())
    );

    // The same scope and key again — with another request, on another stream — is refused with
    // the first answer's record, and writes nothing.
    let retry = store
        .append(Append {
            idempotency: Some(idempotency_claim(scope, "key-1", "sha256:BBB")),
            unique_claims: vec!["claim:x".into()],
            ..Append::plain(
                vec![new_event("test", "c-2", 1, "Happened", json!("x"))],
                provenance("principal-1", "req-2"),
            )
        })
        .await;
    match retry {
        Err(StoreError::IdempotencyKeyUsed(got)) => assert_eq!(got, record),
        other => panic!("expected IdempotencyKeyUsed, got {other:?}"),
    }
    assert!(store.read_stream("test", "c-2").await.unwrap().is_empty());
    assert_eq!(
        store.idempotency(scope, "key-1").await.unwrap(),
        Some(record.clone()),
        "a refused retry must not overwrite the record"
    );
    assert_gapless(&store, 4).await;

    // The same key under another scope is independent.
    let other_scope = "principal-2 POST /consents";
    assert_eq!(store.idempotency(other_scope, "key-1").await.unwrap(), None);
    let other = append_ok(
        &store,
        Append {
            idempotency: Some(idempotency_claim(other_scope, "key-1", "sha256:CCC")),
            unique_claims: vec!["claim:x".into()],
            ..Append::plain(
                vec![new_event("test", "c-2", 1, "Happened", json!("y"))],
                provenance("principal-2", "req-3"),
            )
        },
    )
    .await;
    assert_eq!(positions(&other), vec![4]);
    assert_eq!(
        store.idempotency(other_scope, "key-1").await.unwrap(),
        Some(IdempotencyRecord {
            fingerprint: "sha256:CCC".into(),
            first_position: Position::new(4),
            last_position: Position::new(4),
        })
    );
    assert_eq!(
        store.idempotency(scope, "key-1").await.unwrap(),
        Some(record)
    );
    // Another key in the first scope is independent too.
    assert_eq!(store.idempotency(scope, "key-2").await.unwrap(), None);
    let log = assert_gapless(&store, 5).await;
    assert_same_events(&log[1..], &[first, other].concat());
}

// ---------------------------------------------------------------------------------------------
// 5. Group commit under concurrency
// ---------------------------------------------------------------------------------------------

const TASKS: usize = 64;
const APPENDS_PER_TASK: usize = 20;

/// Events in append `j` of task `t`: 1, 2 or 3, so batches mix single and multi-event appends.
fn events_in(t: usize, j: usize) -> u64 {
    1 + ((t + j) % 3) as u64
}

pub async fn concurrent_appends_get_every_position_once(location: StoreLocation) {
    let store = open(&location).await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("task-{t}");
            barrier.wait().await;
            let mut answers = Vec::with_capacity(APPENDS_PER_TASK);
            let mut version = 0;
            for j in 0..APPENDS_PER_TASK {
                let events = (0..events_in(t, j))
                    .map(|k| {
                        version += 1;
                        new_event(
                            "load",
                            &stream,
                            version,
                            "Loaded",
                            json!({"task": t, "append": j, "event": k}),
                        )
                    })
                    .collect();
                let append = Append {
                    events,
                    provenance: provenance(&format!("actor-{t}"), &format!("req-{t}-{j}")),
                    idempotency: Some(idempotency_claim(
                        &format!("task-{t}"),
                        &format!("key-{j}"),
                        &format!("fp-{t}-{j}"),
                    )),
                    unique_claims: vec![format!("claim:{t}:{j}")],
                    credential: None,
                    webhook_key: None,
                    outbox: Vec::new(),
                    tracking: Vec::new(),
                    erasure: None,
                    guard: Default::default(),
                };
                let answer = store
                    .append(append)
                    .await
                    .unwrap_or_else(|e| panic!("task {t} append {j} refused: {e}"));
                answers.push(answer);
            }
            answers
        }));
    }
    let mut by_task = Vec::with_capacity(TASKS);
    for task in tasks {
        by_task.push(task.await.expect("task panicked"));
    }

    let total: u64 = (0..TASKS)
        .flat_map(|t| (0..APPENDS_PER_TASK).map(move |j| events_in(t, j)))
        .sum();
    let mut seen = HashSet::new();
    for (t, answers) in by_task.iter().enumerate() {
        let mut last: Option<Position> = None;
        for (j, answer) in answers.iter().enumerate() {
            assert_eq!(answer.len() as u64, events_in(t, j));
            // One append's events are consecutive.
            let start = answer[0].position.get();
            assert_eq!(
                positions(answer),
                (start..start + answer.len() as u64).collect::<Vec<_>>(),
                "task {t} append {j} did not get consecutive positions"
            );
            for e in answer {
                assert!(
                    last.is_none_or(|l| e.position > l),
                    "task {t}: positions must increase in the order it appended"
                );
                last = Some(e.position);
                assert!(
                    seen.insert(e.position.get()),
                    "position {} given twice",
                    e.position
                );
                assert_eq!(e.stream_id, format!("task-{t}"));
                assert_eq!(e.request_id, format!("req-{t}-{j}"));
            }
            assert_eq!(
                store
                    .idempotency(&format!("task-{t}"), &format!("key-{j}"))
                    .await
                    .unwrap(),
                Some(IdempotencyRecord {
                    fingerprint: format!("fp-{t}-{j}"),
                    first_position: answer[0].position,
                    last_position: answer[answer.len() - 1].position,
                })
            );
        }
    }
    assert_eq!(seen.len() as u64, total);
    assert_eq!(seen, (0..total).collect::<HashSet<_>>());

    // The log holds exactly what the writers were told, at the positions they were told.
    let log = assert_gapless(&store, total).await;
    let mut answered: Vec<StoredEvent> = by_task.iter().flatten().flatten().cloned().collect();
    answered.sort_by_key(|e| e.position);
    assert_same_events(&log, &answered);

    // Each stream is complete and in version order.
    for (t, answers) in by_task.iter().enumerate() {
        let stream = store
            .read_stream("load", &format!("task-{t}"))
            .await
            .unwrap();
        let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
        let expected: Vec<u64> = (1..=answers.iter().map(Vec::len).sum::<usize>() as u64).collect();
        assert_eq!(versions, expected, "stream task-{t}");
        assert!(stream.windows(2).all(|w| w[0].position < w[1].position));
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Conflicts inside concurrent batches
// ---------------------------------------------------------------------------------------------

const RACERS: usize = 32;
const ROUNDS: usize = 3;

pub async fn racing_writers_of_one_stream_version_one_wins(location: StoreLocation) {
    let store = open(&location).await;
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let contested = format!("contested-{round}");
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::with_capacity(RACERS);
        for racer in 0..RACERS {
            let store = store.clone();
            let barrier = barrier.clone();
            let contested = contested.clone();
            tasks.push(tokio::spawn(async move {
                let race = Append {
                    events: vec![new_event(
                        "test",
                        &contested,
                        1,
                        "Won",
                        json!({"round": round, "racer": racer}),
                    )],
                    provenance: provenance(&format!("racer-{racer}"), &format!("req-{round}")),
                    idempotency: Some(idempotency_claim(
                        &format!("racer-{racer}"),
                        &format!("round-{round}"),
                        "fp",
                    )),
                    unique_claims: vec![format!("prize:{round}:{racer}")],
                    credential: None,
                    webhook_key: None,
                    outbox: Vec::new(),
                    tracking: Vec::new(),
                    erasure: None,
                    guard: Default::default(),
                };
                // A non-conflicting append queued beside it, so batches mix both outcomes.
                let own = one(
                    &format!("own-{racer}"),
                    round as u64 + 1,
                    json!({"round": round, "racer": racer}),
                );
                barrier.wait().await;
                let (race, own) = tokio::join!(store.append(race), store.append(own));
                (racer, race, own)
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            let (racer, race, own) = task.await.expect("racer panicked");
            let own = own.unwrap_or_else(|e| panic!("racer {racer}'s own append refused: {e}"));
            assert_eq!(own.len(), 1);
            match race {
                Ok(events) => won.push((racer, events)),
                Err(StoreError::Conflict { stream }) => assert_eq!(stream, contested),
                Err(other) => panic!("racer {racer}: expected Ok or Conflict, got {other:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one writer must win");
        let (winner, events) = won.pop().expect("one winner");

        let stream = store.read_stream("test", &contested).await.unwrap();
        assert_same_events(&stream, &events);
        assert_eq!(
            stream[0].payload.to_value().expect("JSON"),
            json!({"round": round, "racer": winner})
        );
        for racer in 0..RACERS {
            let record = store
                .idempotency(&format!("racer-{racer}"), &format!("round-{round}"))
                .await
                .unwrap();
            if racer == winner {
                assert_eq!(
                    record,
                    Some(IdempotencyRecord {
                        fingerprint: "fp".into(),
                        first_position: events[0].position,
                        last_position: events[0].position,
                    })
                );
            } else {
                assert_eq!(record, None, "a losing racer's key must not be recorded");
                // …nor its unique claim: it is still free.
                append_ok(
                    &store,
                    Append {
                        unique_claims: vec![format!("prize:{round}:{racer}")],
                        credential: None,
                        webhook_key: None,
                        outbox: Vec::new(),
                        tracking: Vec::new(),
                        erasure: None,
                        ..one(&format!("late-{round}-{racer}"), 1, json!(null))
                    },
                )
                .await;
            }
        }
        winners.push(winner);
    }
    // Per round: 1 winner + RACERS own appends + (RACERS - 1) late claims.
    let total = (ROUNDS * (1 + RACERS + RACERS - 1)) as u64;
    assert_gapless(&store, total).await;
    assert_eq!(winners.len(), ROUNDS);
}

// ---------------------------------------------------------------------------------------------
// 7. Restart
// ---------------------------------------------------------------------------------------------

pub async fn a_reopened_store_continues_where_it_stopped(location: StoreLocation) {
    let store = open(&location).await;
    let mut written = Vec::new();
    written.extend(append_ok(&store, one("s-1", 1, json!("a"))).await);
    written.extend(
        append_ok(
            &store,
            Append {
                idempotency: Some(idempotency_claim("scope", "key", "fp")),
                unique_claims: vec!["claim:once".into()],
                ..Append::plain(
                    vec![
                        new_event("test", "s-1", 2, "Happened", json!("b")),
                        new_event("test", "s-2", 1, "Happened", json!("c")),
                    ],
                    provenance("actor-9", "req-9"),
                )
            },
        )
        .await,
    );
    drop(store);

    let store = open(&location).await;
    let log = assert_gapless(&store, 3).await;
    assert_same_events(&log, &written);
    assert_eq!(
        store.idempotency("scope", "key").await.unwrap(),
        Some(IdempotencyRecord {
            fingerprint: "fp".into(),
            first_position: Position::new(1),
            last_position: Position::new(2),
        })
    );
    // Stream versions, claims and keys written before the restart still guard appends.
    assert!(matches!(
        store.append(one("s-1", 2, json!("dup"))).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .append(Append {
                unique_claims: vec!["claim:once".into()],
                credential: None,
                webhook_key: None,
                outbox: Vec::new(),
                tracking: Vec::new(),
                erasure: None,
                ..one("s-3", 1, json!("d"))
            })
            .await,
        Err(StoreError::ClaimTaken { .. })
    ));
    assert!(matches!(
        store
            .append(Append {
                idempotency: Some(idempotency_claim("scope", "key", "fp")),
                ..one("s-3", 1, json!("d"))
            })
            .await,
        Err(StoreError::IdempotencyKeyUsed(_))
    ));
    let next = append_ok(&store, one("s-1", 3, json!("after restart"))).await;
    assert_eq!(positions(&next), vec![3]);
    written.extend(next);
    drop(store);

    // And once more, to see the post-restart append survive a restart too.
    let store = open(&location).await;
    let log = assert_gapless(&store, 4).await;
    assert_same_events(&log, &written);
    assert_eq!(
        positions(&append_ok(&store, one("s-2", 2, json!("e"))).await),
        vec![4]
    );
}

/// Two handles on one database (the server and the offline CLI) share one gapless log.
pub async fn two_handles_on_one_database_share_the_log(location: StoreLocation) {
    let a = open(&location).await;
    let b = open(&location).await;
    let mut written = Vec::new();
    for v in 1..=5u64 {
        let (from_a, from_b) = tokio::join!(
            a.append(one("from-a", v, json!(v))),
            b.append(one("from-b", v, json!(v)))
        );
        written.extend(from_a.expect("append through a"));
        written.extend(from_b.expect("append through b"));
    }
    // Both handles see one version space per stream.
    assert!(matches!(
        b.append(one("from-a", 1, json!("dup"))).await,
        Err(StoreError::Conflict { .. })
    ));
    written.sort_by_key(|e| e.position);
    let log_a = assert_gapless(&a, 10).await;
    let log_b = assert_gapless(&b, 10).await;
    assert_eq!(log_a, log_b);
    assert_same_events(&log_a, &written);
}

// ---------------------------------------------------------------------------------------------
// 8. cqrs-es runs unchanged on the store
// ---------------------------------------------------------------------------------------------

pub async fn cqrs_framework_runs_on_the_ledger_event_store(location: StoreLocation) {
    let store = open(&location).await;
    let events = LedgerEventStore::<Principal>::new(store.clone());
    let cqrs = CqrsFramework::new(events.clone(), vec![], services());
    let id = principal_id();
    let aggregate_id = id.to_string();

    cqrs.execute_with_metadata(
        &aggregate_id,
        register_partner(id),
        CommandMeta::new("actor", "req-1").into_metadata(),
    )
    .await
    .expect("register");
    cqrs.execute_with_metadata(
        &aggregate_id,
        suspend(),
        CommandMeta::new("actor", "req-2").into_metadata(),
    )
    .await
    .expect("suspend: the aggregate must load in its registered state");

    // A refused command records nothing.
    let refused = cqrs
        .execute_with_metadata(
            &aggregate_id,
            register_partner(id),
            CommandMeta::new("actor", "req-3").into_metadata(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(AggregateError::UserError(PrincipalError::AlreadyRegistered))
        ),
        "expected AlreadyRegistered, got {refused:?}"
    );

    let envelopes = events
        .load_events(&aggregate_id)
        .await
        .expect("load_events");
    assert_eq!(envelopes.len(), 2);
    for (i, envelope) in envelopes.iter().enumerate() {
        assert_eq!(envelope.aggregate_id, aggregate_id);
        assert_eq!(envelope.sequence, i + 1);
        assert_eq!(envelope.metadata.get("position"), Some(&i.to_string()));
        assert_eq!(
            envelope.metadata.get("actor").map(String::as_str),
            Some("actor")
        );
        assert_eq!(
            envelope.metadata.get("request_id"),
            Some(&format!("req-{}", i + 1))
        );
    }
    assert_eq!(envelopes[0].payload, registered_partner(id));
    assert_eq!(
        envelopes[1].payload,
        PrincipalEvent::PrincipalSuspended {
            reason: Reason::parse("contract ended").unwrap(),
            suspended_at: t0(),
        }
    );

    // The rows behind them, as the rest of the product reads them.
    let log = assert_gapless(&store, 2).await;
    assert!(log
        .iter()
        .all(|e| e.stream_type == "principal" && e.stream_id == aggregate_id));
    assert_eq!(
        log.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["PrincipalRegistered", "PrincipalSuspended"]
    );
    assert!(log
        .iter()
        .all(|e| e.schema_version == 1 && e.actor == "actor"));
    assert_eq!(
        log[0].payload.decode::<PrincipalEvent>().unwrap(),
        registered_partner(id)
    );

    // Two commits from the same loaded version: the second is a cqrs-es conflict.
    let other = principal_id().to_string();
    let first = events.load_aggregate(&other).await.unwrap();
    let stale = events.load_aggregate(&other).await.unwrap();
    let metadata = CommandMeta::new("actor", "req-4").into_metadata();
    let committed = events
        .commit(vec![registered_partner(id)], first, metadata.clone())
        .await
        .expect("first commit");
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].metadata.get("position"), Some(&"2".to_owned()));
    let conflict = events
        .commit(vec![registered_partner(id)], stale, metadata.clone())
        .await;
    assert!(
        matches!(conflict, Err(AggregateError::AggregateConflict)),
        "expected AggregateConflict, got {conflict:?}"
    );
    // Committing no events writes nothing.
    let empty = events.load_aggregate(&other).await.unwrap();
    assert!(events
        .commit(vec![], empty, metadata)
        .await
        .unwrap()
        .is_empty());
    assert_gapless(&store, 3).await;
}

// ---------------------------------------------------------------------------------------------
// 9. CommandBus
// ---------------------------------------------------------------------------------------------

pub async fn the_command_bus_returns_committed_events(location: StoreLocation) {
    let store = open(&location).await;
    let bus = CommandBus::<Principal>::new(store.clone(), services());
    append_ok(&store, one("unrelated", 1, json!(0))).await;

    let id = principal_id();
    let aggregate_id = id.to_string();
    let mut meta = CommandMeta::new("admin-1", "req-1");
    meta.idempotency = Some(idempotency_claim("admin-1 POST /principals", "k-1", "fp-1"));
    meta.unique_claims = vec![format!("token:{}", "ab".repeat(32))];
    let registered = bus
        .execute(&aggregate_id, register_partner(id), meta)
        .await
        .expect("register");
    assert_eq!(registered.len(), 1);
    let e = &registered[0];
    assert_eq!(e.position, Position::new(1));
    assert_eq!(e.stream_type, "principal");
    assert_eq!(e.stream_id, aggregate_id);
    assert_eq!(e.stream_version, 1);
    assert_eq!(e.event_type, "PrincipalRegistered");
    assert_eq!(e.schema_version, 1);
    assert_eq!(e.actor, "admin-1");
    assert_eq!(e.request_id, "req-1");
    assert_eq!(
        e.payload.decode::<PrincipalEvent>().unwrap(),
        registered_partner(id)
    );
    assert_eq!(
        store
            .idempotency("admin-1 POST /principals", "k-1")
            .await
            .unwrap(),
        Some(IdempotencyRecord {
            fingerprint: "fp-1".into(),
            first_position: Position::new(1),
            last_position: Position::new(1),
        })
    );

    let suspended = bus
        .execute(
            &aggregate_id,
            suspend(),
            CommandMeta::new("admin-1", "req-2"),
        )
        .await
        .expect("suspend");
    assert_eq!(positions(&suspended), vec![2]);
    assert_eq!(suspended[0].stream_version, 2);
    assert_eq!(suspended[0].event_type, "PrincipalSuspended");

    // A rejected command is the aggregate's error and records nothing, not even its key.
    let mut meta = CommandMeta::new("admin-1", "req-3");
    meta.idempotency = Some(idempotency_claim("admin-1 POST /principals", "k-3", "fp-3"));
    meta.unique_claims = vec!["token:rejected".into()];
    let rejected = bus.execute(&aggregate_id, register_partner(id), meta).await;
    assert!(
        matches!(
            rejected,
            Err(CommandError::Rejected(PrincipalError::AlreadyRegistered))
        ),
        "expected Rejected(AlreadyRegistered), got {rejected:?}"
    );
    let rejected = bus
        .execute(
            &aggregate_id,
            suspend(),
            CommandMeta::new("admin-1", "req-4"),
        )
        .await;
    assert!(
        matches!(
            rejected,
            Err(CommandError::Rejected(PrincipalError::AlreadySuspended))
        ),
        "expected Rejected(AlreadySuspended), got {rejected:?}"
    );
    assert_eq!(
        store
            .idempotency("admin-1 POST /principals", "k-3")
            .await
            .unwrap(),
        None
    );

    // A store refusal comes back as a store error: the unique claim of the first command.
    let other = principal_id();
    let mut meta = CommandMeta::new("admin-1", "req-5");
    meta.unique_claims = vec![format!("token:{}", "ab".repeat(32))];
    let taken = bus
        .execute(&other.to_string(), register_partner(other), meta)
        .await;
    assert!(
        matches!(
            taken,
            Err(CommandError::Store(StoreError::ClaimTaken { .. }))
        ),
        "expected Store(ClaimTaken), got {taken:?}"
    );

    let log = assert_gapless(&store, 3).await;
    assert_same_events(&log[1..], &[registered, suspended].concat());
    let loaded = bus.load(&aggregate_id).await.expect("load");
    assert_ne!(loaded, Principal::default());
    assert_eq!(
        bus.load(&other.to_string()).await.expect("load"),
        Principal::default()
    );
}

/// `create` handles a command that makes an aggregate without reading its stream; on an id
/// whose stream has events it loses to the log's version check, records nothing of that
/// attempt (not even its idempotency key), and handles the command again on the aggregate as
/// read, which refuses a second registration.
pub async fn the_command_bus_creates_without_reading_and_falls_back_to_the_stream(
    location: StoreLocation,
) {
    let store = open(&location).await;
    let bus = CommandBus::<Principal>::new(store.clone(), services());
    let id = principal_id();
    let aggregate_id = id.to_string();
    let created = bus
        .create(
            &aggregate_id,
            register_partner(id),
            CommandMeta::new("admin-1", "req-1"),
        )
        .await
        .expect("create");
    assert_eq!(positions(&created), vec![0]);
    assert_eq!(created[0].stream_version, 1);
    assert_eq!(
        created[0].payload.decode::<PrincipalEvent>().unwrap(),
        registered_partner(id)
    );

    // The id is not new: its registration breaks the aggregate's rule once read.
    let mut meta = CommandMeta::new("admin-1", "req-2");
    meta.idempotency = Some(idempotency_claim("admin-1 POST /principals", "k-2", "fp-2"));
    let again = bus.create(&aggregate_id, register_partner(id), meta).await;
    assert!(
        matches!(
            again,
            Err(CommandError::Rejected(PrincipalError::AlreadyRegistered))
        ),
        "expected Rejected(AlreadyRegistered), got {again:?}"
    );
    assert_eq!(
        store
            .idempotency("admin-1 POST /principals", "k-2")
            .await
            .unwrap(),
        None,
        "the refused attempt recorded its key"
    );

    let log = assert_gapless(&store, 1).await;
    assert_same_events(&log, &created);
}

/// A credential is written with the event that issues it, beside the log: a rotation replaces
/// it (the old digest finds nothing), a refused command writes none, and no digest reaches an
/// event.
pub async fn credentials_are_kept_beside_the_log(location: StoreLocation) {
    let store = open(&location).await;
    let bus = CommandBus::<Principal>::new(store.clone(), services());
    let id = principal_id();
    let first = "11".repeat(32);
    let mut meta = CommandMeta::new("admin-1", "req-1");
    meta.credential = Some(first.clone());
    let registered = bus
        .execute(&id.to_string(), register_partner(id), meta)
        .await
        .expect("register");
    let issued = store.credential(&first).await.unwrap().expect("issued");
    assert_eq!(issued.principal_id, id.to_string());
    assert_eq!(issued.issued_at, registered[0].position);

    let second = "22".repeat(32);
    let mut meta = CommandMeta::new("admin-1", "req-2");
    meta.credential = Some(second.clone());
    let rotated = bus
        .execute(&id.to_string(), PrincipalCommand::RotateToken, meta)
        .await
        .expect("rotate");
    assert_eq!(rotated[0].event_type, "PrincipalTokenRotated");
    assert_eq!(store.credential(&first).await.unwrap(), None);
    let issued = store.credential(&second).await.unwrap().expect("rotated");
    assert_eq!(issued.issued_at, rotated[0].position);

    // Refused by the domain: no event, and the credential is not touched.
    let mut meta = CommandMeta::new("admin-1", "req-3");
    meta.credential = Some("33".repeat(32));
    let refused = bus
        .execute(&id.to_string(), register_partner(id), meta)
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(PrincipalError::AlreadyRegistered))
    ));
    assert_eq!(store.credential(&"33".repeat(32)).await.unwrap(), None);
    assert!(store.credential(&second).await.unwrap().is_some());

    let log = assert_gapless(&store, 2).await;
    for e in &log {
        let text = e.payload.as_str();
        assert!(
            !text.contains(&first) && !text.contains(&second),
            "a token digest reached the log: {text}"
        );
    }
}

/// Losers of a race are retried on the winner's state, so they see the domain's answer.
pub async fn the_command_bus_retries_lost_races(location: StoreLocation) {
    const RACERS: usize = 16;
    let store = open(&location).await;
    let bus = Arc::new(CommandBus::<Principal>::new(store.clone(), services()));
    let id = principal_id();
    let aggregate_id = id.to_string();
    bus.execute(
        &aggregate_id,
        register_partner(id),
        CommandMeta::new("a", "r"),
    )
    .await
    .expect("register");

    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let bus = bus.clone();
        let barrier = barrier.clone();
        let aggregate_id = aggregate_id.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            bus.execute(
                &aggregate_id,
                suspend(),
                CommandMeta::new(format!("racer-{racer}"), "r"),
            )
            .await
        }));
    }
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for task in tasks {
        let outcome = task.await.expect("racer panicked");
        let kind = match outcome {
            Ok(events) => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].position, Position::new(1));
                "suspended"
            }
            Err(CommandError::Rejected(PrincipalError::AlreadySuspended)) => "already suspended",
            Err(other) => panic!("unexpected outcome {other:?}"),
        };
        *outcomes.entry(kind).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([("already suspended", RACERS - 1), ("suspended", 1)])
    );
    assert_gapless(&store, 2).await;
}

// ---------------------------------------------------------------------------------------------
// 10. Migrations
// ---------------------------------------------------------------------------------------------

pub async fn migrate_creates_a_usable_store(location: StoreLocation) {
    migrate(&location).await.expect("migrate a fresh database");
    migrate(&location)
        .await
        .expect("migrate an up-to-date database");

    let store = open(&location).await;
    assert_gapless(&store, 0).await;
    let written = append_ok(&store, one("s", 1, json!("first"))).await;
    assert_eq!(positions(&written), vec![0]);
    drop(store);

    // Opening again (migrations applied) keeps the data; so does migrating again.
    let store = open(&location).await;
    let log = assert_gapless(&store, 1).await;
    assert_same_events(&log, &written);
    drop(store);
    migrate(&location).await.expect("migrate a used database");
    let store = open(&location).await;
    assert_eq!(
        positions(&append_ok(&store, one("s", 2, json!("second"))).await),
        vec![1]
    );
    assert_gapless(&store, 2).await;
}

pub async fn open_migrates_a_fresh_database(location: StoreLocation) {
    // No `migrate` first: `open` creates and migrates.
    let store = open(&location).await;
    store.ping().await.expect("ping");
    assert_gapless(&store, 0).await;
    append_ok(&store, one("s", 1, json!(1))).await;
    // A second handle while the first is open finds the schema in place.
    let again = open(&location).await;
    assert_gapless(&again, 1).await;
    drop(store);
    drop(again);
    let store = open(&location).await;
    assert_gapless(&store, 1).await;
}

/// Two processes (the server and `consent-ledger migrate`) opening one fresh database at once
/// must both succeed.
pub async fn concurrent_opens_of_a_fresh_database_both_succeed(location: StoreLocation) {
    let (a, b) = tokio::join!(Store::open(&location), Store::open(&location));
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!(
            "concurrent opens of a fresh database: {:?} / {:?}",
            a.err(),
            b.err()
        ),
    };
    append_ok(&a, one("s", 1, json!("a"))).await;
    append_ok(&b, one("s", 2, json!("b"))).await;
    assert_gapless(&a, 2).await;
}

// ---------------------------------------------------------------------------------------------
// SQLite: one test per case, each on a fresh file in its own temporary directory.
// ---------------------------------------------------------------------------------------------

mod sqlite {
    use super::*;

    /// A fresh database file; the directory (and file) live as long as the returned guard.
    fn fresh() -> (tempfile::TempDir, StoreLocation) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let location = StoreLocation::SqliteFile(dir.path().join("ledger.db"));
        (dir, location)
    }

    #[tokio::test]
    async fn the_baselines_write_the_ledger_table() {
        let (_dir, location) = fresh();
        super::the_baselines_write_the_ledger_table(location).await;
    }

    #[tokio::test]
    async fn a_subscriber_learns_of_commits() {
        let (_dir, location) = fresh();
        super::a_subscriber_learns_of_commits(location).await;
    }

    #[tokio::test]
    async fn the_outbox_is_announced_when_messages_may_be_due() {
        let (_dir, location) = fresh();
        super::the_outbox_is_announced_when_messages_may_be_due(location).await;
    }

    #[tokio::test]
    async fn a_restriction_fences_off_older_decisions() {
        let (_dir, location) = fresh();
        super::a_restriction_fences_off_older_decisions(location).await;
    }

    #[tokio::test]
    async fn the_commit_hook_sees_commits_before_answers() {
        let (_dir, location) = fresh();
        super::the_commit_hook_sees_commits_before_answers(location).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_merkle_tree_follows_the_log() {
        let (_dir, location) = fresh();
        super::the_merkle_tree_follows_the_log(location).await;
    }

    /// A file whose subtree hashes were kept by level (before migration 0016) has them moved
    /// into tiles, and its leaves into their rowid table (0017), when it is opened: every root
    /// and proof is the same as before, every leaf is kept, and the log appends on from the
    /// moved tree.
    #[tokio::test]
    async fn a_tree_kept_by_level_is_moved_into_tiles() {
        use consent_ledger_audit::leaf::event_leaf_hash;
        use consent_ledger_audit::tree::MemoryTree;
        use sqlx::Connection as _;

        let (dir, location) = fresh();
        let store = super::open(&location).await;
        let total = 1_000u64;
        super::numbered_log(&store, "tiles", total).await;
        let positions: Vec<u64> = (0..total).collect();
        let sizes = [16, 17, 256, 511, 999, total];
        let mut before = Vec::new();
        for size in sizes {
            before.push((
                store.tree_root(size).await.expect("root"),
                store
                    .inclusion_proofs(&positions[..size as usize], size)
                    .await
                    .expect("proofs"),
            ));
        }
        drop(store);

        // The file as migration 0015 left it: every kept node in `merkle_nodes`.
        let path = dir.path().join("ledger.db");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        async fn count(db: &mut sqlx::SqliteConnection, sql: &'static str) -> i64 {
            sqlx::query_scalar(sql)
                .fetch_one(db)
                .await
                .expect("a count")
        }
        let subtrees = count(&mut db, "SELECT COUNT(*) FROM merkle_subtrees").await;
        assert!(subtrees > 60, "levels 4–9 of 1,000 leaves: {subtrees} rows");
        for sql in [
            "DROP VIEW merkle_nodes",
            "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, \
             hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID",
            "INSERT INTO merkle_nodes (level, idx, hash) SELECT 0, idx, hash FROM merkle_leaves",
            "INSERT INTO merkle_nodes (level, idx, hash) \
             SELECT level, idx, hash FROM merkle_subtrees",
            "DROP TABLE merkle_leaves",
            "DROP TABLE merkle_subtrees",
            "DELETE FROM _sqlx_migrations WHERE version IN (16, 17)",
        ] {
            sqlx::query(sql).execute(&mut db).await.expect(sql);
        }
        db.close().await.expect("close");

        let store = super::open(&location).await;
        for (size, (root, proofs)) in sizes.into_iter().zip(&before) {
            assert_eq!(&store.tree_root(size).await.expect("root"), root, "{size}");
            assert_eq!(
                &store
                    .inclusion_proofs(&positions[..size as usize], size)
                    .await
                    .expect("proofs"),
                proofs,
                "{size}"
            );
        }
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        assert_eq!(
            count(&mut db, "SELECT COUNT(*) FROM merkle_subtrees").await,
            subtrees
        );
        assert_eq!(
            count(&mut db, "SELECT COUNT(*) FROM merkle_nodes WHERE level > 0").await,
            0
        );
        assert_eq!(
            count(&mut db, "SELECT COUNT(*) FROM merkle_nodes").await,
            total as i64
        );
        assert_eq!(
            count(&mut db, "SELECT COUNT(*) FROM merkle_leaves").await,
            total as i64
        );
        db.close().await.expect("close");

        // The writer resumes from the moved tree.
        super::numbered_log(&store, "after", 40).await;
        let log = store
            .read_range(Position::ZERO, u32::MAX)
            .await
            .expect("log");
        let leaves: Vec<_> = log.iter().map(|e| event_leaf_hash(&e.leaf())).collect();
        let size = leaves.len() as u64;
        assert_eq!(size, total + 40);
        let reference = MemoryTree::new(leaves);
        assert_eq!(store.tree_root(size).await.expect("root"), reference.root());
        let proofs = store
            .inclusion_proofs(&[0, 517, size - 1], size)
            .await
            .expect("proofs");
        for (proof, p) in proofs.iter().zip([0, 517, size - 1]) {
            assert_eq!(proof.path, reference.inclusion_path(p).expect("path"));
        }
    }

    /// The log's table as migration 0001 made it (UNIQUE on every stream version) is made again
    /// with the partial stream index when opened (migration 0018); the cancellations' index
    /// with it.
    #[tokio::test]
    async fn the_stream_index_is_moved_off_decisions() {
        use sqlx::Connection as _;

        let (dir, location) = fresh();
        let path = dir.path().join("ledger.db");
        let url = format!("sqlite://{}", path.display());
        super::the_stream_index_is_moved_off_decisions(location, async || {
            let mut db = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            // The table as 0001 made it and the cancellations' index as 0015 did, from the
            // migrations themselves.
            let statement = |migration: &str, head: &str| {
                let start = migration.find(head).expect(head);
                let end = start + migration[start..].find(';').expect("the statement's end");
                migration[start..end].to_owned()
            };
            let table = statement(
                include_str!("../../migrations/sqlite/0001_events.sql"),
                "CREATE TABLE events (",
            )
            .replacen("CREATE TABLE events (", "CREATE TABLE events_0001 (", 1);
            let cancelled = statement(
                include_str!("../../migrations/sqlite/0015_events_cancelled_at.sql"),
                "CREATE INDEX events_cancelled_at",
            );
            for sql in [
                table.as_str(),
                "INSERT INTO events_0001 SELECT * FROM events",
                "DROP TABLE events",
                "ALTER TABLE events_0001 RENAME TO events",
                cancelled.as_str(),
                "DELETE FROM _sqlx_migrations WHERE version = 18",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut db)
                    .await
                    .expect(sql);
            }
            db.close().await.expect("close");
        })
        .await;

        let mut db = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
             ORDER BY name",
        )
        .fetch_all(&mut db)
        .await
        .expect("indexes");
        let names: Vec<&str> = indexes.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            ["events_cancelled_at", "events_stream"],
            "{indexes:?}"
        );
        assert!(
            indexes[1]
                .1
                .ends_with("WHERE stream_type <> 'access' OR stream_version > 1"),
            "{indexes:?}"
        );
        db.close().await.expect("close");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_proofs_at_once_equal_the_proofs_one_by_one() {
        let (_dir, location) = fresh();
        super::many_proofs_at_once_equal_the_proofs_one_by_one(location).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_read_by_position_are_the_logs() {
        let (_dir, location) = fresh();
        super::events_read_by_position_are_the_logs(location).await;
    }

    #[tokio::test]
    async fn a_decision_scan_pre_selects_in_sql() {
        let (_dir, location) = fresh();
        super::a_decision_scan_pre_selects_in_sql(location).await;
    }

    #[tokio::test]
    async fn cancellations_are_found_by_their_second() {
        let (_dir, location) = fresh();
        super::cancellations_are_found_by_their_second(location).await;
    }

    #[tokio::test]
    async fn an_access_decision_is_read_by_position_and_its_later_events_by_stream() {
        let (_dir, location) = fresh();
        super::an_access_decision_is_read_by_position_and_its_later_events_by_stream(location)
            .await;
    }

    #[tokio::test]
    async fn positions_start_at_zero_and_are_gapless() {
        let (_dir, location) = fresh();
        super::positions_start_at_zero_and_are_gapless(location).await;
    }

    #[tokio::test]
    async fn recorded_at_round_trips_exactly() {
        let (_dir, location) = fresh();
        super::recorded_at_round_trips_exactly(location).await;
    }

    #[tokio::test]
    async fn a_stream_version_is_written_once() {
        let (_dir, location) = fresh();
        super::a_stream_version_is_written_once(location).await;
    }

    #[tokio::test]
    async fn an_empty_append_records_nothing() {
        let (_dir, location) = fresh();
        super::an_empty_append_records_nothing(location).await;
    }

    #[tokio::test]
    async fn a_unique_claim_is_taken_once() {
        let (_dir, location) = fresh();
        super::a_unique_claim_is_taken_once(location).await;
    }

    #[tokio::test]
    async fn an_idempotency_key_records_its_first_answer() {
        let (_dir, location) = fresh();
        super::an_idempotency_key_records_its_first_answer(location).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_get_every_position_once() {
        let (_dir, location) = fresh();
        super::concurrent_appends_get_every_position_once(location).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_writers_of_one_stream_version_one_wins() {
        let (_dir, location) = fresh();
        super::racing_writers_of_one_stream_version_one_wins(location).await;
    }

    #[tokio::test]
    async fn a_reopened_store_continues_where_it_stopped() {
        let (_dir, location) = fresh();
        super::a_reopened_store_continues_where_it_stopped(location).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_on_one_database_share_the_log() {
        let (_dir, location) = fresh();
        super::two_handles_on_one_database_share_the_log(location).await;
    }

    #[tokio::test]
    async fn cqrs_framework_runs_on_the_ledger_event_store() {
        let (_dir, location) = fresh();
        super::cqrs_framework_runs_on_the_ledger_event_store(location).await;
    }

    #[tokio::test]
    async fn the_command_bus_returns_committed_events() {
        let (_dir, location) = fresh();
        super::the_command_bus_returns_committed_events(location).await;
    }

    #[tokio::test]
    async fn the_command_bus_creates_without_reading_and_falls_back_to_the_stream() {
        let (_dir, location) = fresh();
        super::the_command_bus_creates_without_reading_and_falls_back_to_the_stream(location).await;
    }

    #[tokio::test]
    async fn credentials_are_kept_beside_the_log() {
        let (_dir, location) = fresh();
        super::credentials_are_kept_beside_the_log(location).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_command_bus_retries_lost_races() {
        let (_dir, location) = fresh();
        super::the_command_bus_retries_lost_races(location).await;
    }

    #[tokio::test]
    async fn migrate_creates_a_usable_store() {
        let (dir, location) = fresh();
        super::migrate_creates_a_usable_store(location).await;
        assert!(dir.path().join("ledger.db").is_file());
    }

    #[tokio::test]
    async fn open_migrates_a_fresh_database() {
        let (_dir, location) = fresh();
        super::open_migrates_a_fresh_database(location).await;
    }

    /// The GDPR file is written without fsync (the store's `unsynced` module): a clean stop
    /// leaves no marker; a marker of another boot (the machine crashed while the file was
    /// written) makes the next open discard the projection, to be rebuilt from the log, which
    /// is untouched.
    #[tokio::test]
    async fn the_gdpr_file_is_rebuilt_after_a_crash_of_the_machine_and_kept_after_a_clean_stop() {
        let (dir, location) = fresh();
        let markers = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .expect("list")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("ledger.audit.db.unsynced-"))
                .collect();
            names.sort();
            names
        };
        let own_prefix = format!("ledger.audit.db.unsynced-{}.", std::process::id());
        let is_own = |names: Vec<String>| names.len() == 1 && names[0].starts_with(&own_prefix);
        let store = open(&location).await;
        append_ok(&store, one("s", 1, json!("a"))).await;
        let applied = store
            .gdpr_apply(Position::new(0), Position::new(1), &Default::default())
            .await
            .expect("apply");
        assert!(applied);
        assert!(is_own(markers()), "{:?}", markers());
        store.close().await;
        drop(store);
        assert!(markers().is_empty(), "a clean stop removes the marker");

        let store = open(&location).await;
        assert_eq!(store.gdpr_position().await.expect("position").get(), 1);
        store.close().await;
        drop(store);

        // What a process of an earlier boot that never stopped cleanly leaves behind.
        std::fs::write(
            dir.path().join("ledger.audit.db.unsynced-1"),
            "00000000-0000-0000-0000-000000000000",
        )
        .expect("marker");
        let store = open(&location).await;
        assert_eq!(store.gdpr_position().await.expect("position").get(), 0);
        assert_gapless(&store, 1).await;
        assert!(
            is_own(markers()),
            "the earlier boot's marker went with the file: {:?}",
            markers()
        );
    }

    /// The projection's catch-up reads the log and writes its rows on threads of their own
    /// at a lower CPU priority, so that on a busy machine the decision path goes first; what
    /// it reads is what `read_range` reads.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_gdpr_projection_reads_and_writes_at_a_lower_cpu_priority() {
        let (_dir, location) = fresh();
        let store = open(&location).await;
        append_ok(&store, one("s", 1, json!("a"))).await;
        append_ok(&store, one("s", 2, json!("b"))).await;
        let behind = store
            .read_range_behind(Position::new(0), 10)
            .await
            .expect("read behind");
        let rows = store.read_range(Position::new(0), 10).await.expect("read");
        assert_eq!(behind.len(), 2);
        assert_eq!(behind, rows);
        assert!(store
            .gdpr_apply(Position::new(0), Position::new(2), &Default::default())
            .await
            .expect("apply"));
        let priority_of = |comm: &str| -> Vec<(i32, i32)> {
            std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .filter_map(|task| {
                    let task = task.ok()?;
                    let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
                    // `comm` itself, or one of a pool's threads `comm-N`.
                    let name = name.trim_end();
                    let numbered = name
                        .strip_prefix(comm)
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|n| n.parse::<u64>().is_ok());
                    if name != comm && !numbered {
                        return None;
                    }
                    // Fields 19 and 41 of stat are the nice value and the scheduling policy;
                    // the name (field 2) may hold spaces.
                    let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
                    Some((fields.get(16)?.parse().ok()?, fields.get(38)?.parse().ok()?))
                })
                .collect()
        };
        let nice_of = |comm: &str| -> Vec<i32> { priority_of(comm).iter().map(|p| p.0).collect() };
        // The projection's threads run at nice 10 under SCHED_IDLE (policy 5): only on a core
        // that no thread of the decision path wants.
        let idle = (10, 5);
        let writers = priority_of("gdpr-writer");
        assert!(!writers.is_empty(), "the writer's thread is named");
        assert!(writers.iter().all(|&p| p == idle), "{writers:?}");
        let readers = priority_of("gdpr-reader");
        assert_eq!(
            readers,
            vec![idle],
            "one reader connection, at the lower priority"
        );
        // A catch-up a request waits on writes through a connection of the decisions' priority.
        assert!(store
            .gdpr_apply_now(Position::new(2), Position::new(2), &Default::default())
            .await
            .expect("apply now"));
        assert_eq!(priority_of("gdpr-writer-now"), vec![(0, 0)]);
        // The decision path's threads: the group commit's, SQLite's writer and the log's read
        // connections.
        let log_threads = || {
            [
                nice_of("log-commit"),
                nice_of("log-writer"),
                nice_of("log-reader"),
            ]
            .concat()
        };
        let log = log_threads();
        assert!(
            ["log-commit", "log-writer", "log-reader"]
                .iter()
                .all(|name| !nice_of(name).is_empty()),
            "the log's threads are named"
        );
        assert!(log.iter().all(|&nice| nice == 0), "{log:?}");
        let normal: Vec<(i32, i32)> = ["log-commit", "log-writer", "log-reader"]
            .iter()
            .flat_map(|name| priority_of(name))
            .collect();
        assert!(normal.iter().all(|&p| p == (0, 0)), "{normal:?}");
        let lowered = std::thread::spawn(|| {
            consent_ledger_store::lower_thread_priority();
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            let after_name = stat.rsplit_once(") ").expect("name").1.to_owned();
            let fields: Vec<String> = after_name.split(' ').map(str::to_owned).collect();
            (fields.get(16).cloned(), fields.get(38).cloned())
        })
        .join()
        .expect("thread");
        assert_eq!(
            (lowered.0.as_deref(), lowered.1.as_deref()),
            (Some("10"), Some("5")),
            "the calling thread is lowered: nice 10, SCHED_IDLE"
        );
        assert!(
            log_threads().iter().all(|&nice| nice == 0),
            "lowering one thread leaves the others"
        );
    }

    /// The race is narrow, so it is run on many fresh files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_of_a_fresh_database_both_succeed() {
        for _ in 0..50 {
            let (_dir, location) = fresh();
            super::concurrent_opens_of_a_fresh_database_both_succeed(location).await;
        }
    }

    #[test]
    fn a_database_url_names_the_sqlite_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("from-url.db");
        let url = format!("sqlite://{}", path.display());
        assert_eq!(
            StoreLocation::from_url(&url).expect("sqlite url"),
            StoreLocation::SqliteFile(path.clone())
        );
        assert_eq!(
            StoreLocation::in_data_dir(dir.path()),
            StoreLocation::SqliteFile(dir.path().join("ledger.db"))
        );
        assert!(matches!(
            StoreLocation::from_url("mysql://localhost/ledger"),
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}

/// SPEC §5.2: an append decided on state before a restriction is refused as stale; one decided
/// after it commits; the fence survives a restart.
pub async fn a_restriction_fences_off_older_decisions(location: StoreLocation) {
    let store = open(&location).await;
    let decided = |stream: &str, before: u64| {
        let mut a = one(stream, 1, json!("allow"));
        a.guard = consent_ledger_store::Guard {
            restricts: false,
            decided_before: Some(Position::new(before)),
        };
        a
    };
    append_ok(&store, decided("d0", 0)).await;
    let mut revoke = one("r", 1, json!("revoke"));
    revoke.guard.restricts = true;
    let revoked_at = append_ok(&store, revoke).await[0].position;
    assert_eq!(revoked_at, Position::new(1));
    match store.append(decided("d1", 1)).await {
        Err(StoreError::Stale { restricted_at }) => assert_eq!(restricted_at, revoked_at),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_gapless(&store, 2).await;
    append_ok(&store, decided("d2", 2)).await;
    drop(store);
    let store = open(&location).await;
    assert!(matches!(
        store.append(decided("d3", 1)).await,
        Err(StoreError::Stale { .. })
    ));
    append_ok(&store, decided("d4", 3)).await;
    assert_gapless(&store, 4).await;
}

/// The commit hook sees every committed batch, in log order, before the appender is answered.
pub async fn the_commit_hook_sees_commits_before_answers(location: StoreLocation) {
    struct Seen(std::sync::Mutex<Vec<u64>>);
    impl consent_ledger_store::CommitHook for Seen {
        fn committed(&self, events: &mut dyn Iterator<Item = &StoredEvent>) {
            self.0
                .lock()
                .unwrap()
                .extend(events.map(|e| e.position.get()));
        }
    }
    let store = open(&location).await;
    let seen = std::sync::Arc::new(Seen(Default::default()));
    store.set_commit_hook(seen.clone());
    for i in 0..5u64 {
        let committed = append_ok(&store, one(&format!("h{i}"), 1, json!(i))).await;
        assert_eq!(
            seen.0.lock().unwrap().last().copied(),
            Some(committed[0].position.get())
        );
    }
    // A refused append is not reported.
    assert!(store.append(one("h0", 1, json!("again"))).await.is_err());
    assert_eq!(*seen.0.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

/// SPEC §6: the Merkle tree follows the log. Every root, from stored subtree hashes, equals
/// MTH over the leaf hashes recomputed from the events as read back, across batches of
/// concurrent appends, a restart, and a second writer on the same database.
pub async fn the_merkle_tree_follows_the_log(location: StoreLocation) {
    use consent_ledger_audit::leaf::event_leaf_hash;
    use consent_ledger_audit::tree::{empty_root, mth};

    async fn check(store: &Store) {
        let log = store
            .read_range(Position::ZERO, u32::MAX)
            .await
            .expect("log");
        let leaves: Vec<_> = log.iter().map(|e| event_leaf_hash(&e.leaf())).collect();
        for size in 0..=leaves.len() {
            assert_eq!(
                store.tree_root(size as u64).await.expect("root"),
                mth(&leaves[..size]),
                "root of the first {size} of {} events",
                leaves.len()
            );
        }
    }

    let store = open(&location).await;
    assert_eq!(store.tree_root(0).await.expect("empty"), empty_root());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..5u64 {
                let events = (0..=(j % 3))
                    .map(|k| {
                        new_event(
                            "merkle",
                            &format!("t{t}-{j}"),
                            k + 1,
                            "Appended",
                            json!({"t": t, "j": j, "k": k}),
                        )
                    })
                    .collect();
                store.append(plain(events)).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    check(&store).await;
    // A refused append adds no leaf.
    let again = plain(vec![new_event(
        "merkle",
        "t0-0",
        1,
        "Appended",
        json!("again"),
    )]);
    assert!(matches!(
        store.append(again).await,
        Err(StoreError::Conflict { .. })
    ));
    check(&store).await;
    // One append of more subtree hashes than PostgreSQL's writer puts into its commit's text
    // (it binds them as arrays then), and a small one after it (written into the text again).
    let many = (0..300u64)
        .map(|k| new_event("merkle", "large", k + 1, "Appended", json!(k)))
        .collect();
    store.append(plain(many)).await.expect("large append");
    append_ok(&store, one("after-large", 1, json!(0))).await;
    check(&store).await;
    drop(store);
    let store = open(&location).await;
    append_ok(&store, one("after-restart", 1, json!(1))).await;
    let other = open(&location).await;
    append_ok(&other, one("other-writer", 1, json!(2))).await;
    append_ok(&store, one("first-writer-again", 1, json!(3))).await;
    check(&store).await;
}

/// SPEC §11's baselines write the ledger's own table on either backend: raw batched INSERTs
/// read back as the same events (and a store opened on them hashes them into its tree), and
/// the naive per-command cqrs-es store appends after them at the next position.
pub async fn the_baselines_write_the_ledger_table(location: StoreLocation) {
    use consent_ledger_store::baseline::{batched_insert_at, PerCommandStore};
    let recorded_at = Utc::now().trunc_subsecs(6);
    let rows: Vec<StoredEvent> = (0..5u64)
        .map(|i| StoredEvent {
            position: Position::new(i),
            stream_type: "bench".into(),
            stream_id: format!("b-{i}"),
            stream_version: 1,
            event_type: "Measured".into(),
            schema_version: 1,
            actor: "bench".into(),
            request_id: format!("r-{i}"),
            recorded_at,
            payload: payload_of(&json!({"i": i})),
            openings: Vec::new(),
        })
        .collect();
    batched_insert_at(&location, &rows, 2)
        .await
        .expect("batched insert");

    let naive = PerCommandStore::<Principal>::open_at(&location)
        .await
        .expect("naive store");
    let cqrs = CqrsFramework::new(naive, vec![], services());
    let id = principal_id();
    cqrs.execute_with_metadata(
        &id.to_string(),
        register_partner(id),
        CommandMeta::new("actor", "req-1").into_metadata(),
    )
    .await
    .expect("naive command");

    let store = open(&location).await;
    let log = assert_gapless(&store, 6).await;
    assert_eq!(log[..5], rows[..]);
    assert_eq!(log[5].stream_id, id.to_string());
    // The first append through the ledger hashes the baseline's rows into the tree.
    append_ok(&store, one("after-baselines", 1, json!(1))).await;
    let log = assert_gapless(&store, 7).await;
    let leaves: Vec<_> = log
        .iter()
        .map(|e| consent_ledger_audit::leaf::event_leaf_hash(&e.leaf()))
        .collect();
    assert_eq!(
        store.tree_root(7).await.expect("root"),
        consent_ledger_audit::tree::mth(&leaves)
    );
}

// ---------------------------------------------------------------------------------------------
// Several processes on one PostgreSQL database. Each `Store` handle has its own writer, read
// pool and frontier, exactly as a separate `serve` process would; nothing is shared in memory.
// ---------------------------------------------------------------------------------------------

/// SPEC §4 across processes: two writers appending at once keep one gapless log in commit
/// order, and the Merkle tree each writer extends stays the tree of that log (each reloads its
/// frontier when the other appended).
pub async fn two_writers_interleave_into_one_gapless_log(location: StoreLocation) {
    const TASKS: usize = 4;
    const APPENDS: u64 = 12;
    let handles = [open(&location).await, open(&location).await];
    let start = Arc::new(Barrier::new(2 * TASKS));
    let mut tasks = Vec::new();
    for (h, store) in handles.iter().enumerate() {
        for t in 0..TASKS {
            let store = store.clone();
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let mut written = Vec::new();
                for j in 0..APPENDS {
                    // One to three events per append, so batches of both writers mix sizes.
                    let events = (0..=(j % 3))
                        .map(|k| {
                            new_event(
                                "proc",
                                &format!("h{h}-t{t}-{j}"),
                                k + 1,
                                "Appended",
                                json!({"h": h, "t": t, "j": j, "k": k}),
                            )
                        })
                        .collect();
                    written.extend(store.append(plain(events)).await.expect("append"));
                }
                written
            }));
        }
    }
    let mut written = Vec::new();
    for task in tasks {
        written.extend(task.await.expect("task"));
    }
    written.sort_by_key(|e| e.position);
    let total = written.len() as u64;
    assert_eq!(total, 2 * TASKS as u64 * (APPENDS / 3) * (1 + 2 + 3));
    let log_a = assert_gapless(&handles[0], total).await;
    let log_b = assert_gapless(&handles[1], total).await;
    assert_eq!(log_a, log_b);
    assert_same_events(&log_a, &written);
    // Commit order: a later position was never recorded before an earlier one (both writers
    // read the clock only once they hold the log head).
    for pair in log_a.windows(2) {
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "position {} recorded after position {}",
            pair[0].position,
            pair[1].position
        );
    }
    let leaves: Vec<_> = log_a
        .iter()
        .map(|e| consent_ledger_audit::leaf::event_leaf_hash(&e.leaf()))
        .collect();
    for size in 0..=leaves.len() {
        let expected = consent_ledger_audit::tree::mth(&leaves[..size]);
        for store in &handles {
            assert_eq!(
                store.tree_root(size as u64).await.expect("root"),
                expected,
                "root of the first {size} of {total} events"
            );
        }
    }
}

/// SPEC §5.2 across processes: a restriction committed through one handle refuses, as stale,
/// a decision appended through another handle that was decided on state before it.
pub async fn a_restriction_through_one_writer_fences_another(location: StoreLocation) {
    let a = open(&location).await;
    let b = open(&location).await;
    let decided = |stream: &str, before: Position| {
        let mut append = one(stream, 1, json!("allow"));
        append.guard.decided_before = Some(before);
        append
    };
    append_ok(&b, one("setup", 1, json!("consent granted"))).await;
    let seen = b.next_position().await.expect("next");
    append_ok(&b, decided("d-before", seen)).await;
    let mut revoke = one("r", 1, json!("revoke"));
    revoke.guard.restricts = true;
    let revoked_at = append_ok(&a, revoke).await[0].position;
    match b.append(decided("d-stale", seen)).await {
        Err(StoreError::Stale { restricted_at }) => assert_eq!(restricted_at, revoked_at),
        other => panic!("expected Stale through the other writer, got {other:?}"),
    }
    append_ok(&b, decided("d-fresh", revoked_at.next())).await;
    assert_gapless(&a, 4).await;
}

/// SPEC §5.2 under a race: while one writer commits a restriction, the other keeps appending
/// decisions made on state before it. Every decision that committed lies before the
/// restriction; every one after it was refused.
pub async fn no_decision_made_before_a_restriction_commits_after_it(location: StoreLocation) {
    const DECIDERS: usize = 4;
    let a = open(&location).await;
    let b = open(&location).await;
    append_ok(&a, one("setup", 1, json!("consent granted"))).await;
    let seen = b.next_position().await.expect("next");
    let start = Arc::new(Barrier::new(DECIDERS + 1));
    let mut deciders = Vec::new();
    for t in 0..DECIDERS {
        let b = b.clone();
        let start = start.clone();
        deciders.push(tokio::spawn(async move {
            start.wait().await;
            let mut committed = Vec::new();
            for j in 0..40 {
                let mut append = one(&format!("d{t}-{j}"), 1, json!("allow"));
                append.guard.decided_before = Some(seen);
                match b.append(append).await {
                    Ok(events) => committed.extend(events.into_iter().map(|e| e.position)),
                    Err(StoreError::Stale { .. }) => {}
                    Err(e) => panic!("decision failed: {e}"),
                }
            }
            committed
        }));
    }
    start.wait().await;
    tokio::task::yield_now().await;
    let mut revoke = one("r", 1, json!("revoke"));
    revoke.guard.restricts = true;
    let revoked_at = append_ok(&a, revoke).await[0].position;
    let mut committed = Vec::new();
    for d in deciders {
        committed.extend(d.await.expect("decider"));
    }
    assert!(
        committed.iter().all(|p| *p < revoked_at),
        "a decision made before the restriction at {revoked_at} committed after it: {committed:?}"
    );
    assert_gapless(&a, 2 + committed.len() as u64).await;
}

/// SPEC §5.5 across processes: a key used through one handle answers `IdempotencyKeyUsed`
/// through another, with the first answer's positions.
pub async fn an_idempotency_key_holds_across_writers(location: StoreLocation) {
    let a = open(&location).await;
    let b = open(&location).await;
    let keyed = |stream: &str| Append {
        idempotency: Some(idempotency_claim(
            "principal-1 POST /v1/consents",
            "k-1",
            "fp-1",
        )),
        ..one(stream, 1, json!("keyed"))
    };
    let first = append_ok(&a, keyed("first")).await;
    match b.append(keyed("second")).await {
        Err(StoreError::IdempotencyKeyUsed(record)) => {
            assert_eq!(record.first_position, first[0].position);
            assert_eq!(record.last_position, first[0].position);
            assert_eq!(record.fingerprint, "fp-1");
        }
        other => panic!("expected IdempotencyKeyUsed through the other writer, got {other:?}"),
    }
    assert_gapless(&b, 1).await;
}

/// A subscriber learns of each commit of its own process: the announced size is the log's.
pub async fn a_subscriber_learns_of_commits(location: StoreLocation) {
    let store = open(&location).await;
    append_ok(&store, one("before", 1, json!(0))).await;
    let mut committed = store.subscribe();
    assert_eq!(*committed.borrow_and_update(), Position::new(1));
    let events = append_ok(&store, one("after", 1, json!(1))).await;
    // Announced before the append is answered, so no waiting is needed.
    assert!(committed.has_changed().expect("store alive"));
    assert_eq!(*committed.borrow_and_update(), events[0].position.next());
    // A refused append announces nothing.
    assert!(store.append(one("after", 1, json!("again"))).await.is_err());
    assert!(!committed.has_changed().expect("store alive"));
}

/// The webhook worker's wake-up: a commit that queued messages and a redelivery announce the
/// outbox; on SQLite a commit that queued none does not (on PostgreSQL every commit does, as
/// other processes' announcements cannot say what they queued).
pub async fn the_outbox_is_announced_when_messages_may_be_due(location: StoreLocation) {
    let store = open(&location).await;
    let mut outbox = store.subscribe_outbox();
    outbox.borrow_and_update();
    append_ok(&store, one("quiet", 1, json!(0))).await;
    assert_eq!(
        outbox.has_changed().expect("store alive"),
        !store.is_embedded(),
        "a commit that queued no message"
    );
    outbox.borrow_and_update();
    let mut queuing = one("queuing", 1, json!(1));
    queuing.outbox.push(consent_ledger_store::OutboxMessage {
        message_id: "msg_outbox_announced".to_owned(),
        endpoint_id: "we_outbox_announced".to_owned(),
        event_type: "consent.granted".to_owned(),
        occurred_at: "2026-12-05T08:00:00Z".to_owned(),
        data: "{}".to_owned(),
        cause: 0,
        shipment_id: None,
    });
    let events = append_ok(&store, queuing).await;
    // Announced before the append is answered, so no waiting is needed.
    assert!(outbox.has_changed().expect("store alive"));
    assert_eq!(*outbox.borrow_and_update(), events[0].position.next());
    assert!(store
        .redeliver("msg_outbox_announced", 0)
        .await
        .expect("redeliver"));
    assert!(outbox.has_changed().expect("store alive"), "a redelivery");
    outbox.borrow_and_update();
    assert!(!store
        .redeliver("msg_never_queued", 0)
        .await
        .expect("redeliver"));
    assert!(
        !outbox.has_changed().expect("store alive"),
        "nothing made due"
    );
}

/// Followers across processes: a subscriber on one handle learns of what another handle
/// commits (LISTEN/NOTIFY), promptly and without polling.
pub async fn a_subscriber_learns_of_another_writers_commits(location: StoreLocation) {
    let a = open(&location).await;
    let b = open(&location).await;
    let mut committed = b.subscribe();
    for v in 1..=3u64 {
        let events = append_ok(&a, one("through-a", v, json!(v))).await;
        let wanted = events[0].position.next();
        // A bound on failure, not a wait: the notification normally arrives in microseconds.
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            committed.wait_for(|size| *size >= wanted),
        )
        .await
        .unwrap_or_else(|_| panic!("no announcement of size {wanted} within 10 s"))
        .expect("store alive");
    }
    assert_eq!(b.next_position().await.expect("size"), Position::new(3));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: every case above, each on a database of its own (`DATABASE_URL` names the
// server; without it these tests are skipped with a notice, except in CI where they fail).
// ---------------------------------------------------------------------------------------------

mod postgres {
    use super::*;
    use consent_ledger_store::testing::{postgres_server, ScratchDatabase};
    use consent_ledger_store::PostgresUrl;

    async fn fresh(case: &str) -> Option<ScratchDatabase> {
        let server = postgres_server(&format!("store contract case {case}"))?;
        Some(
            ScratchDatabase::create(&server)
                .await
                .unwrap_or_else(|e| panic!("creating a database on {server}: {e}")),
        )
    }

    /// One `#[tokio::test]` per case, each handed a fresh database that is dropped after it.
    macro_rules! on_postgres {
        ($($(#[$attr:meta])* $case:ident;)*) => {$(
            $(#[$attr])*
            async fn $case() {
                let Some(db) = fresh(stringify!($case)).await else { return };
                super::$case(db.location().clone()).await;
            }
        )*};
    }

    on_postgres! {
        #[tokio::test]
        a_decision_scan_pre_selects_in_sql;
        #[tokio::test]
        cancellations_are_found_by_their_second;
        #[tokio::test]
        an_access_decision_is_read_by_position_and_its_later_events_by_stream;
        #[tokio::test]
        a_restriction_fences_off_older_decisions;
        #[tokio::test]
        the_commit_hook_sees_commits_before_answers;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        the_merkle_tree_follows_the_log;
        #[tokio::test]
        positions_start_at_zero_and_are_gapless;
        #[tokio::test]
        recorded_at_round_trips_exactly;
        #[tokio::test]
        a_stream_version_is_written_once;
        #[tokio::test]
        an_empty_append_records_nothing;
        #[tokio::test]
        a_unique_claim_is_taken_once;
        #[tokio::test]
        an_idempotency_key_records_its_first_answer;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        concurrent_appends_get_every_position_once;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        racing_writers_of_one_stream_version_one_wins;
        #[tokio::test]
        a_reopened_store_continues_where_it_stopped;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        two_handles_on_one_database_share_the_log;
        #[tokio::test]
        cqrs_framework_runs_on_the_ledger_event_store;
        #[tokio::test]
        the_command_bus_returns_committed_events;
        #[tokio::test]
        the_command_bus_creates_without_reading_and_falls_back_to_the_stream;
        #[tokio::test]
        credentials_are_kept_beside_the_log;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        the_command_bus_retries_lost_races;
        #[tokio::test]
        migrate_creates_a_usable_store;
        #[tokio::test]
        open_migrates_a_fresh_database;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        two_writers_interleave_into_one_gapless_log;
        #[tokio::test]
        a_restriction_through_one_writer_fences_another;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        no_decision_made_before_a_restriction_commits_after_it;
        #[tokio::test]
        an_idempotency_key_holds_across_writers;
        #[tokio::test]
        a_subscriber_learns_of_commits;
        #[tokio::test]
        the_outbox_is_announced_when_messages_may_be_due;
        #[tokio::test]
        a_subscriber_learns_of_another_writers_commits;
        #[tokio::test]
        the_baselines_write_the_ledger_table;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        many_proofs_at_once_equal_the_proofs_one_by_one;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        events_read_by_position_are_the_logs;
    }

    /// The log's table as migration 0001 made it (UNIQUE on every stream version) moves onto
    /// the partial stream index when opened (migration 0021).
    #[tokio::test]
    async fn the_stream_index_is_moved_off_decisions() {
        use sqlx::Connection as _;

        let Some(db) = fresh("the_stream_index_is_moved_off_decisions").await else {
            return;
        };
        let url = db.url_text().to_owned();
        super::the_stream_index_is_moved_off_decisions(db.location().clone(), async || {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            for sql in [
                "DROP INDEX events_stream",
                "ALTER TABLE events ADD UNIQUE (stream_type, stream_id, stream_version)",
                "DELETE FROM _sqlx_migrations WHERE version = 21",
            ] {
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
            }
            conn.close().await.expect("close");
        })
        .await;

        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        let constraints: Vec<String> = sqlx::query_scalar(
            "SELECT conname::text FROM pg_constraint \
             WHERE conrelid = 'events'::regclass AND contype = 'u'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("constraints");
        assert!(constraints.is_empty(), "{constraints:?}");
        let index: String =
            sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'events_stream'")
                .fetch_one(&mut conn)
                .await
                .expect("the stream index");
        assert!(
            index.starts_with("CREATE UNIQUE INDEX events_stream")
                && index.contains("stream_type <> 'access'")
                && index.contains("stream_version > 1"),
            "{index}"
        );
        conn.close().await.expect("close");
    }

    /// The race is narrow, so it is run on several fresh databases (fewer than on SQLite:
    /// each costs a CREATE DATABASE).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_of_a_fresh_database_both_succeed() {
        for _ in 0..5 {
            let Some(db) = fresh("concurrent_opens_of_a_fresh_database_both_succeed").await else {
                return;
            };
            super::concurrent_opens_of_a_fresh_database_both_succeed(db.location().clone()).await;
        }
    }

    #[test]
    fn a_database_url_names_the_postgres_database_and_hides_its_password() {
        let url = "postgres://ledger:s3cret@db.example:5432/ledger?sslmode=disable";
        let location = StoreLocation::from_url(url).expect("postgres url");
        let StoreLocation::Postgres(parsed) = &location else {
            panic!("expected a PostgreSQL location, got {location:?}");
        };
        assert_eq!(
            parsed.to_string(),
            "postgres://ledger:***@db.example:5432/ledger?sslmode=disable"
        );
        assert!(!format!("{location:?}").contains("s3cret"));
        assert_eq!(
            parsed
                .with_database("cl_test_1")
                .expect("renamed")
                .to_string(),
            "postgres://ledger:***@db.example:5432/cl_test_1?sslmode=disable"
        );
        assert!(parsed.with_database("x; DROP").is_err());
        assert!(matches!(
            StoreLocation::from_url("postgresql://ledger@localhost/ledger"),
            Ok(StoreLocation::Postgres(_))
        ));
        let refused = StoreLocation::from_url("mysql://root:hunter2@localhost/ledger")
            .expect_err("mysql is not a backend");
        assert!(!refused.to_string().contains("hunter2"), "{refused}");
        assert_eq!(
            PostgresUrl::parse("postgres://u@h/db")
                .expect("no password")
                .to_string(),
            "postgres://u@h/db"
        );
    }
}

/// SPEC §6: proofs made many at once (a block of 2^14 leaves read and hashed in memory, the path
/// above it fetched once) equal the RFC 9162 paths over the leaves recomputed from the events,
/// and the proofs made one by one: for dense and sparse selections, across block boundaries,
/// in full blocks and in the cut last block, for several tree sizes.
pub async fn many_proofs_at_once_equal_the_proofs_one_by_one(location: StoreLocation) {
    use consent_ledger_audit::leaf::event_leaf_hash;
    use consent_ledger_audit::tree::MemoryTree;

    const BLOCK: u64 = 1 << 14;
    let store = open(&location).await;
    let total = 2 * BLOCK + 300;
    let log = numbered_log(&store, "proof", total).await;
    let leaves: Vec<_> = log.iter().map(|e| event_leaf_hash(&e.leaf())).collect();
    // The stored leaves read back in a range are those.
    assert_eq!(
        store.leaf_range(5..BLOCK + 9).await.expect("leaves"),
        leaves[5..(BLOCK + 9) as usize]
    );
    assert!(store.leaf_range(total - 1..total + 1).await.is_err());
    for size in [BLOCK, BLOCK + 1, 2 * BLOCK + 117, total] {
        let reference = MemoryTree::new(leaves[..size as usize].to_vec());
        // Every position (dense blocks, including the cut last one), a stride that leaves
        // fewer than 64 per block (one by one), and a few unsorted.
        let dense: Vec<u64> = (0..size).collect();
        let sparse: Vec<u64> = (0..size).step_by(977).collect();
        let unsorted = vec![size - 1, 5, size / 2, 3, size - 2];
        // Lone positions before and after a dense block, in one call: each proof in its place.
        let mixed: Vec<u64> = [3, 700]
            .into_iter()
            .chain(BLOCK..BLOCK + 100)
            .chain([size - 1, 9])
            .filter(|&p| p < size)
            .collect();
        for positions in [dense, sparse, unsorted, mixed] {
            let proofs = store
                .inclusion_proofs(&positions, size)
                .await
                .expect("proofs");
            assert_eq!(proofs.len(), positions.len());
            for (&p, proof) in positions.iter().zip(&proofs) {
                assert_eq!(
                    proof.path,
                    reference.inclusion_path(p).expect("path"),
                    "PATH({p}, D[{size}])"
                );
                assert_eq!(proof.leaf, leaves[p as usize], "leaf {p}");
            }
            for &p in positions.iter().step_by(4099) {
                assert_eq!(
                    store.inclusion_proof(p, size).await.expect("one proof"),
                    reference.inclusion_path(p).expect("path")
                );
            }
        }
    }
}

/// Appends `total` one-event streams of `stream_type`, a thousand an append, and reads the
/// log back.
async fn numbered_log(store: &Store, stream_type: &str, total: u64) -> Vec<StoredEvent> {
    for chunk in 0..total.div_ceil(1000) {
        let events = (chunk * 1000..((chunk + 1) * 1000).min(total))
            .map(|i| {
                new_event(
                    stream_type,
                    &format!("e{i}"),
                    1,
                    "Appended",
                    json!({ "i": i }),
                )
            })
            .collect();
        store.append(plain(events)).await.expect("append");
    }
    store
        .read_range(Position::ZERO, u32::MAX)
        .await
        .expect("log")
}

/// The events read by position are the log's, in log order, however the positions lie: far
/// apart (read in parts side by side), neighbours, one, none.
pub async fn events_read_by_position_are_the_logs(location: StoreLocation) {
    let store = open(&location).await;
    let total = 3_000u64;
    let log = numbered_log(&store, "read", total).await;
    let far: Vec<u64> = (0..total).step_by(293).collect();
    let near: Vec<u64> = (1_000..1_200).collect();
    let both: Vec<u64> = [0, 700]
        .into_iter()
        .chain(1_000..1_010)
        .chain([2_999])
        .collect();
    for positions in [far, near, both, vec![1_234], Vec::new()] {
        let read = store.read_positions(&positions).await.expect("read");
        let expected: Vec<_> = positions.iter().map(|&p| log[p as usize].clone()).collect();
        assert_eq!(read, expected, "the events at {positions:?}");
    }
}

/// A log written before the stream index left access decisions out (a UNIQUE constraint on
/// every event's stream version), put back in that form by `revert`, is moved onto the partial
/// index when opened: every event kept in order, streams read as before, and stream versions
/// still refused twice — a cancellation's and any other stream's.
async fn the_stream_index_is_moved_off_decisions(
    location: StoreLocation,
    revert: impl AsyncFnOnce(),
) {
    let store = open(&location).await;
    let access = |id: &str, version: u64| {
        new_event("access", id, version, "Happened", json!({ "decision": id }))
    };
    append_ok(
        &store,
        plain(vec![
            access("d0", 1),
            new_event("test", "s", 1, "Happened", json!("s1")),
            access("d0", 2),
            access("d1", 1),
            new_event("test", "s", 2, "Happened", json!("s2")),
        ]),
    )
    .await;
    let before = assert_gapless(&store, 5).await;
    drop(store);

    revert().await;

    let store = open(&location).await;
    assert_eq!(assert_gapless(&store, 5).await, before);
    assert_eq!(
        store.read_stream("test", "s").await.expect("read_stream"),
        vec![before[1].clone(), before[4].clone()]
    );
    assert_eq!(
        store
            .read_stream("access", "d0")
            .await
            .expect("read_stream"),
        vec![before[2].clone()]
    );
    for (stream_type, id, version) in [("test", "s", 2), ("access", "d0", 2)] {
        let refused = store
            .append(plain(vec![new_event(
                stream_type,
                id,
                version,
                "Happened",
                json!("again"),
            )]))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict { ref stream }) if stream == id),
            "{stream_type} {id} {version}: {refused:?}"
        );
    }
    let next = append_ok(
        &store,
        plain(vec![new_event("test", "s", 3, "Happened", json!(3))]),
    )
    .await;
    assert_eq!(positions(&next), vec![5]);
}

/// An access decision's stream is read by stream from its second event on (a delivery's
/// cancellation): the decision, whose stream id is drawn fresh for it, is not in the stream
/// index and is read by its position. A second cancellation of one delivery, and a second
/// event of any other stream's version, are refused as before.
pub async fn an_access_decision_is_read_by_position_and_its_later_events_by_stream(
    location: StoreLocation,
) {
    let store = open(&location).await;
    let access = |id: &str, version: u64, event_type: &str| {
        new_event(
            "access",
            id,
            version,
            event_type,
            json!({ event_type: {"decision_id": id} }),
        )
    };
    let recorded = append_ok(
        &store,
        plain(vec![
            access("d0", 1, "TrackingAccessAllowed"),
            access("d1", 1, "TrackingAccessAllowed"),
            new_event("test", "s", 1, "Happened", json!("s1")),
            access("d0", 2, "TrackingDeliveryCancelled"),
        ]),
    )
    .await;
    assert_eq!(positions(&recorded), vec![0, 1, 2, 3]);

    let later = store
        .read_stream("access", "d0")
        .await
        .expect("read_stream");
    assert_eq!(later, vec![recorded[3].clone()], "the cancellation alone");
    assert!(store
        .read_stream("access", "d1")
        .await
        .expect("read_stream")
        .is_empty());
    let ids = ["d0".to_owned(), "d1".to_owned(), "d9".to_owned()];
    assert_eq!(
        store
            .read_streams("access", &ids, 4)
            .await
            .expect("read_streams"),
        vec![recorded[3].clone()]
    );
    assert!(store
        .read_streams("access", &ids, 3)
        .await
        .expect("read_streams")
        .is_empty());
    assert_eq!(
        store.read_positions(&[0, 1]).await.expect("read_positions"),
        recorded[..2].to_vec(),
        "the decisions, by position"
    );
    assert_eq!(
        store.read_stream("test", "s").await.expect("read_stream"),
        vec![recorded[2].clone()]
    );

    for refused in [
        plain(vec![access("d0", 2, "TrackingDeliveryCancelled")]),
        plain(vec![new_event("test", "s", 1, "Happened", json!("again"))]),
    ] {
        let stream = refused.events[0].stream_id.clone();
        match store.append(refused).await {
            Err(StoreError::Conflict { stream: s }) => assert_eq!(s, stream),
            other => panic!("expected Conflict on {stream}, got {other:?}"),
        }
    }
    assert_gapless(&store, 4).await;
}

/// The deliveries' cancellations (SPEC §14) are found by the second of their own time, below a
/// position, in log order, through the log's index of them: whatever else the log holds at that
/// second (decisions, another event type whose payload names the same key) is not.
pub async fn cancellations_are_found_by_their_second(location: StoreLocation) {
    let store = open(&location).await;
    let cancelled = |id: &str, at: &str| {
        new_event(
            "access",
            id,
            2,
            "TrackingDeliveryCancelled",
            json!({"TrackingDeliveryCancelled": {"cancelled_at": at, "decision_id": id,
                "partner": "p", "reason": "consent_revoked", "shipment": "s"}}),
        )
    };
    let decided = |id: &str, at: &str| {
        new_event(
            "access",
            id,
            1,
            "TrackingAccessAllowed",
            json!({"TrackingAccessAllowed": {"decided_at": at, "decision_id": id}}),
        )
    };
    let events = vec![
        decided("d0", "2026-03-01T12:00:00Z"),
        decided("d1", "2026-03-01T12:00:01Z"),
        cancelled("d0", "2026-03-01T12:00:01.75Z"),
        decided("d2", "2026-03-01T12:00:02Z"),
        // Recorded later than the next one, with an earlier time: the index orders by time.
        cancelled("d2", "2026-03-01T12:00:05Z"),
        cancelled("d1", "2026-03-01T12:00:03.5Z"),
        new_event(
            "other",
            "o",
            1,
            "TrackingDeliveryCancelled",
            json!({"cancelled_at": "2026-03-01T12:00:03Z"}),
        ),
        new_event(
            "access",
            "d3",
            1,
            "Happened",
            json!({"cancelled_at": "2026-03-01T12:00:03Z"}),
        ),
    ];
    store.append(plain(events)).await.expect("append");
    for (from, to, before, expected) in [
        (None, None, 8, vec![2, 4, 5, 6]),
        (
            Some("2026-03-01T12:00:01"),
            Some("2026-03-01T12:00:01"),
            8,
            vec![2],
        ),
        (Some("2026-03-01T12:00:02"), None, 8, vec![4, 5, 6]),
        (
            Some("2026-03-01T12:00:03"),
            Some("2026-03-01T12:00:04"),
            8,
            vec![5, 6],
        ),
        (None, Some("2026-03-01T12:00:03"), 8, vec![2, 5, 6]),
        (None, None, 5, vec![2, 4]),
        (Some("2026-03-01T12:00:06"), None, 8, vec![]),
    ] {
        assert_eq!(
            store
                .cancellations(from, to, before)
                .await
                .expect("cancellations"),
            expected,
            "{from:?}..={to:?} before {before}"
        );
    }
}

/// A decision scan lets through, of one stream type, the events of the type asked for whose
/// payload holds a text of every group, and the events of the one other stream asked for; within
/// the range of positions asked for, in order.
pub async fn a_decision_scan_pre_selects_in_sql(location: StoreLocation) {
    use consent_ledger_store::DecisionScan;

    let store = open(&location).await;
    let events = vec![
        new_event(
            "access",
            "d0",
            1,
            "Allowed",
            json!({"p": "alpha", "s": "one", "t": "2026-03-01T12:00:00.5Z"}),
        ),
        new_event(
            "access",
            "d1",
            1,
            "Denied",
            json!({"p": "alpha", "s": "two", "t": "2026-03-01T12:00:01Z"}),
        ),
        new_event("shipment", "one", 1, "Registered", json!({"id": "one"})),
        new_event(
            "access",
            "d2",
            1,
            "Allowed",
            json!({"p": "beta", "s": "one", "t": "2026-03-01T12:00:02.25Z"}),
        ),
        new_event(
            "other",
            "o",
            1,
            "Allowed",
            json!({"p": "alpha", "s": "one"}),
        ),
        new_event(
            "access",
            "d3",
            1,
            "Allowed",
            json!({"p": "alpha", "s": "three", "t": "2026-03-01T12:00:09Z"}),
        ),
        new_event("access", "d4", 1, "Allowed", json!({"p": "gamma"})),
    ];
    store.append(plain(events)).await.expect("append");
    let scan = |event_type: Option<&str>, groups: &[&[&str]], also: Option<&str>| DecisionScan {
        stream_type: "access".into(),
        event_type: event_type.map(str::to_owned),
        payload_contains: groups
            .iter()
            .map(|g| g.iter().map(|t| (*t).to_owned()).collect())
            .collect(),
        text_field: None,
        also: also.map(|id| ("shipment".to_owned(), id.to_owned())),
        also_types: Vec::new(),
    };
    let seconds = |min: Option<&str>, max: Option<&str>| DecisionScan {
        text_field: Some(consent_ledger_store::TextFieldRange {
            key: "t".into(),
            chars: 19,
            min: min.map(str::to_owned),
            max: max.map(str::to_owned),
        }),
        ..scan(None, &[], Some("one"))
    };
    let positions = |events: Vec<StoredEvent>| positions(&events);
    for (scan, range, expected) in [
        (scan(None, &[], None), 0..6, vec![0, 1, 3, 5]),
        (scan(Some("Allowed"), &[], None), 0..6, vec![0, 3, 5]),
        (scan(None, &[&["alpha"]], None), 0..6, vec![0, 1, 5]),
        (
            scan(None, &[&["alpha"], &["one", "two"]], None),
            0..6,
            vec![0, 1],
        ),
        (
            scan(None, &[&["beta", "three"]], Some("one")),
            0..6,
            vec![2, 3, 5],
        ),
        (
            scan(Some("Denied"), &[&["alpha"]], Some("one")),
            0..6,
            vec![1, 2],
        ),
        (scan(None, &[], None), 1..4, vec![1, 3]),
        (scan(None, &[&["nowhere"]], None), 0..6, vec![]),
        // Times compared to the second, as text; the other stream passes regardless.
        (
            seconds(Some("2026-03-01T12:00:01"), None),
            0..6,
            vec![1, 2, 3, 5],
        ),
        (
            seconds(None, Some("2026-03-01T12:00:01")),
            0..6,
            vec![0, 1, 2],
        ),
        (
            seconds(Some("2026-03-01T12:00:00"), Some("2026-03-01T12:00:02")),
            0..6,
            vec![0, 1, 2, 3],
        ),
        (seconds(Some("2026-03-01T12:00:10"), None), 0..6, vec![2]),
        // A payload without the field is left to the reader.
        (seconds(Some("2026-03-01T12:00:10"), None), 0..7, vec![2, 6]),
        // Every event of the other stream types asked for.
        (
            DecisionScan {
                also_types: vec!["other".into(), "shipment".into()],
                ..scan(None, &[&["nowhere"]], None)
            },
            0..7,
            vec![2, 4],
        ),
        (
            DecisionScan {
                also_types: vec!["other".into()],
                ..scan(Some("Denied"), &[], Some("one"))
            },
            0..7,
            vec![1, 2, 4],
        ),
    ] {
        assert_eq!(
            positions(
                store
                    .read_decisions(range.clone(), &scan)
                    .await
                    .expect("scan")
            ),
            expected,
            "{scan:?} over {range:?}"
        );
    }
}

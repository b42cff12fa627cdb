//! What every backend's [`super::LogWriter`] must do, run by each backend's tests against its
//! own database.

use chrono::{SubsecRound, Utc};
use consent_ledger_audit::tree::{Frontier, Hash, NodeId};

use super::tree::{kept_of, leaf_of};
use super::{commit_batch, BatchOutcome, LogWriter, Stamped};
use crate::error::is_unique_violation;
use crate::event::{Append, IdempotencyClaim, Position};

/// What every backend's [`LogWriter::append_whole`] must do, for its tests: a first batch goes
/// the general way and leaves the head known; a call against a moved head or with a taken
/// stream version writes nothing (and leaves the connection usable); a call against the head
/// writes the events, keys, claims, subtree hashes and fence; the general way follows on from
/// it. `value` answers a query of one integer on another connection.
pub(crate) async fn one_call_contract<W: LogWriter>(
    writer: &mut W,
    value: impl AsyncFn(&'static str) -> i64,
) {
    let events = "SELECT COUNT(*) FROM events";
    let mut frontier = None;
    assert_eq!(
        writer.expected_fence(),
        None,
        "no head known before a commit"
    );
    let first = [Append::for_test("a", 1)];
    assert!(matches!(
        commit_batch(writer, &first, &[], &mut frontier).await,
        BatchOutcome::Done(_)
    ));
    assert_eq!(
        writer.expected_fence(),
        Some(-1),
        "the head the commit left"
    );
    assert_eq!(frontier.as_ref().map(Frontier::size), Some(1));

    let mut keyed = Append::for_test("a", 2);
    keyed.idempotency = Some(IdempotencyClaim {
        scope: "scope".to_owned(),
        key: "key".to_owned(),
        fingerprint: "f".to_owned(),
    });
    let batch = [keyed, Append::for_test("b", 1)];
    let at = Utc::now().trunc_subsecs(6);
    let time = W::time(at);
    let stamp = |next: u64| {
        let mut fence = -1;
        Stamped::new(&batch, Position::new(next), &mut fence, at)
    };
    let none: Vec<&(NodeId, Hash)> = Vec::new();

    let stale = stamp(5);
    let moved = writer
        .append_whole((Position::new(5), -1), &stale, &time, &none, None, None)
        .await
        .expect("a call against a moved head");
    assert!(!moved, "a moved head writes nothing");
    assert_eq!(value(events).await, 1);

    let taken = [Append::for_test("a", 1)];
    let mut fence = -1;
    let refused = Stamped::new(&taken, Position::new(1), &mut fence, at);
    let err = writer
        .append_whole((Position::new(1), -1), &refused, &time, &none, None, None)
        .await
        .expect_err("a taken stream version");
    assert!(is_unique_violation(&err), "{err}");
    assert_eq!(value(events).await, 1);

    let current = stamp(1);
    let mut edge = frontier.clone().expect("the edge of the first batch");
    let mut nodes = Vec::new();
    for e in current.events() {
        nodes.extend(edge.push(leaf_of(e)));
    }
    let kept = kept_of(&nodes);
    let written = writer
        .append_whole(
            (Position::new(1), -1),
            &current,
            &time,
            &kept,
            Some(2),
            Some(Position::new(3)),
        )
        .await
        .expect("a call against the head");
    assert!(written);
    assert_eq!(value(events).await, 3);
    assert_eq!(value("SELECT COUNT(*) FROM unique_claims").await, 3);
    assert_eq!(value("SELECT COUNT(*) FROM idempotency_keys").await, 1);
    assert_eq!(
        value("SELECT COUNT(*) FROM merkle_nodes WHERE level = 0").await,
        3,
        "a leaf hash per event"
    );
    assert_eq!(
        value("SELECT position FROM fences WHERE name = 'restriction'").await,
        2
    );

    // The general way reads the head the call left and goes on from it.
    let mut reloaded = None;
    let next = [Append::for_test("c", 1)];
    let BatchOutcome::Done(results) = commit_batch(writer, &next, &[], &mut reloaded).await else {
        panic!("the general way after the call");
    };
    let positions: Vec<u64> = results
        .iter()
        .flat_map(|r| {
            r.as_ref()
                .expect("committed")
                .iter()
                .map(|e| e.position.get())
        })
        .collect();
    assert_eq!(positions, [3]);
    assert_eq!(reloaded.as_ref().map(Frontier::size), Some(4));
}

/// What every backend's [`LogWriter::append_whole`] must also write: what a batch keeps beside
/// its events — a sealed field's opening (SPEC §12), a tracking update (SPEC §14), a webhook
/// message (SPEC §13) — and a tracking update already held fails the call as a unique violation
/// with nothing written (the general path then refuses that append alone). Leaves the log at
/// two events. `value` answers a query of one integer on another connection.
pub(crate) async fn rows_beside_contract<W: LogWriter>(
    writer: &mut W,
    value: impl AsyncFn(&'static str) -> i64,
) {
    use crate::event::{OpenedField, OutboxMessage, TrackingUpdateRow};

    let mut frontier = None;
    let first = [Append::for_test("a", 1)];
    assert!(matches!(
        commit_batch(writer, &first, &[], &mut frontier).await,
        BatchOutcome::Done(_)
    ));
    let update = TrackingUpdateRow {
        update_id: "u1".to_owned(),
        shipment_id: "s1".to_owned(),
        status: "in_transit".to_owned(),
        occurred_at: "2026-12-05T00:00:00.000000Z".to_owned(),
        received_at: 1,
        details: "{}".to_owned(),
    };
    let mut rich = Append::for_test("a", 2);
    rich.events[0].openings.push(OpenedField {
        pointer: "/TrackingAccessAllowed/tracking_number".to_owned(),
        value: "v".to_owned(),
        salt: "s".to_owned(),
    });
    rich.tracking.push(update.clone());
    rich.outbox.push(OutboxMessage {
        message_id: "m1".to_owned(),
        endpoint_id: "e1".to_owned(),
        event_type: "tracking.updated".to_owned(),
        occurred_at: "2026-12-05T00:00:00Z".to_owned(),
        data: "{}".to_owned(),
        cause: 0,
        shipment_id: Some("s1".to_owned()),
    });
    let at = Utc::now().trunc_subsecs(6);
    let time = W::time(at);
    let none: Vec<&(NodeId, Hash)> = Vec::new();

    let batch = [rich];
    let mut fence = -1;
    let stamped = Stamped::new(&batch, Position::new(1), &mut fence, at);
    let written = writer
        .append_whole((Position::new(1), -1), &stamped, &time, &none, None, None)
        .await
        .expect("a call against the head");
    assert!(written);
    assert_eq!(
        value("SELECT COUNT(*) FROM openings WHERE position = 1 AND stream_id = 'a'").await,
        1
    );
    assert_eq!(
        value("SELECT COUNT(*) FROM tracking_updates WHERE received_at = 1").await,
        1
    );
    assert_eq!(
        value("SELECT COUNT(*) FROM webhook_outbox WHERE position = 1 AND shipment_id = 's1'")
            .await,
        1
    );

    let mut again = Append::for_test("b", 1);
    again.tracking.push(update);
    let batch = [again];
    let mut fence = -1;
    let stamped = Stamped::new(&batch, Position::new(2), &mut fence, at);
    let err = writer
        .append_whole((Position::new(2), -1), &stamped, &time, &none, None, None)
        .await
        .expect_err("a tracking update already held");
    assert!(is_unique_violation(&err), "{err}");
    assert_eq!(value("SELECT COUNT(*) FROM events").await, 2);
    assert_eq!(value("SELECT COUNT(*) FROM tracking_updates").await, 1);
}

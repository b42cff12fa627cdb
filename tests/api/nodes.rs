//! SPEC §5 and §9 with several nodes on one store: each node is a full app (its own read
//! model, group-commit writer, data directory with a copy of the signing key), as separate
//! `serve` processes sharing a PostgreSQL database would be. On SQLite the nodes share the
//! file, which SQLite serialises the same way; only announcements (LISTEN/NOTIFY) are
//! PostgreSQL's alone.

use actix_web::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consent_ledger_audit::tree::{verify_consistency, Hash};
use serde_json::{json, Value};

use crate::helpers::{backend, consent_for, expect, shipment_body, spawn_app, Backend, TestApp};

const DECIDE: &str = "/v1/decisions";

fn ask(shipment: &str) -> Value {
    json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]})
}

/// Node A with a shipper, a partner, a shipment and a consent; node B on the same store.
struct TwoNodes {
    a: TestApp,
    b: TestApp,
    shipper_id: String,
    shipper: String,
    partner: String,
    shipment: String,
    consent: String,
    granted_at: u64,
}

async fn two_nodes() -> TwoNodes {
    let a = spawn_app().await;
    let b = a.second_node().await;
    let (shipper_id, shipper) = a.principal("shipper", "Shop").await;
    let (partner_id, partner) = a.partner("Insure").await;
    let shipment = a.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let granted = a
        .post(
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
    let body = expect(&granted, StatusCode::CREATED);
    TwoNodes {
        consent: body["id"].as_str().expect("consent id").to_owned(),
        granted_at: granted.position(),
        a,
        b,
        shipper_id,
        shipper,
        partner,
        shipment,
    }
}

/// SPEC §5.2: a grant written through node A is seen by node B when the caller names its
/// position (`at_least_as_fresh`, the explicit form).
#[actix_web::test]
async fn at_least_as_fresh_makes_another_node_see_a_write() {
    let n = two_nodes().await;
    let mut q = ask(&n.shipment);
    q["at_least_as_fresh"] = json!(n.granted_at);
    let r = n.b.post(DECIDE, &n.partner, q).await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body["allowed"], true, "{body}");
    assert_eq!(body["consent_ids"], json!([n.consent]));
}

/// SPEC §5.2: once a revoke through node A has returned, node B denies through that consent
/// at once — even when B's read model had not heard of the revoke yet: its allow is refused
/// at commit by the restriction fence, and B decides again on the caught-up model.
#[actix_web::test]
async fn a_revocation_through_one_node_denies_on_the_other_at_once() {
    let n = two_nodes().await;
    let mut q = ask(&n.shipment);
    q["at_least_as_fresh"] = json!(n.granted_at);
    let before = n.b.post(DECIDE, &n.partner, q).await;
    assert_eq!(expect(&before, StatusCode::OK)["allowed"], true);

    let revoked =
        n.a.post(
            &format!("/v1/consents/{}/revoke", n.consent),
            &n.shipper,
            json!({"reason": "contract ended"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let revoked_at = revoked.position();

    // No at_least_as_fresh: the fence alone guarantees the deny.
    let after = n.b.post(DECIDE, &n.partner, ask(&n.shipment)).await;
    let body = expect(&after, StatusCode::OK);
    assert_eq!(body["allowed"], false, "{body}");
    assert_eq!(body["reason"], "consent_revoked", "{body}");
    assert!(after.position() > revoked_at, "{body}");
    // Every decision allowed through the consent was committed before the revoke.
    for event in n.b.log().await {
        if event.event_type == "TrackingAccessAllowed" {
            assert!(
                event.position.get() < revoked_at,
                "allow at {}",
                event.position
            );
        }
    }
}

/// SPEC §5.5: a retry sent to another node with the same Idempotency-Key returns the first
/// answer and records nothing twice.
#[actix_web::test]
async fn an_idempotency_key_holds_across_nodes() {
    let n = two_nodes().await;
    let key = [("Idempotency-Key", "shipment-2")];
    let body = shipment_body(&n.shipper_id, "DHL", "JJD2", "FR");
    let first =
        n.a.post_with("/v1/shipments", &n.a.admin, body.clone(), &key)
            .await;
    let first_body = expect(&first, StatusCode::CREATED).clone();
    let size = n.a.log_size().await;

    let retry = n.b.post_with("/v1/shipments", &n.b.admin, body, &key).await;
    assert_eq!(expect(&retry, StatusCode::CREATED), &first_body);
    assert_eq!(
        retry
            .headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(n.b.log_size().await, size, "the retry recorded nothing");
}

fn hash(v: &Value) -> Hash {
    let bytes = B64
        .decode(v.as_str().expect("base64 string"))
        .expect("base64");
    Hash::try_from(bytes.as_slice()).expect("32 bytes")
}

/// Signs a checkpoint on `node` (admin) and opens it with `vkey`.
async fn sign(node: &TestApp, vkey: &str) -> consent_ledger_audit::note::Checkpoint {
    let r = node
        .post_raw("/v1/log/checkpoint", Some(&node.admin), b"", &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    consent_ledger_audit::note::open_checkpoint(r.body.as_str().expect("note"), vkey)
        .expect("the note verifies with the vkey")
}

/// The newest checkpoint `node` answers.
async fn newest(node: &TestApp, token: &str) -> String {
    node.get("/v1/log/checkpoint", token)
        .await
        .body
        .as_str()
        .expect("note")
        .to_owned()
}

/// SPEC §6: checkpoints signed by either node are statements about one tree: both verify
/// with the one vkey, and a consistency proof from either node links them.
#[actix_web::test]
async fn checkpoints_signed_by_either_node_are_consistent() {
    let n = two_nodes().await;
    let vkey =
        n.a.get_anonymous("/v1/log/vkey")
            .await
            .body
            .as_str()
            .expect("text")
            .trim()
            .to_owned();
    assert_eq!(
        n.b.get_anonymous("/v1/log/vkey")
            .await
            .body
            .as_str()
            .map(str::trim),
        Some(vkey.as_str()),
        "every node signs with the operator's one key"
    );
    let first = sign(&n.a, &vkey).await;
    for i in 0..3 {
        n.b.shipment(&n.shipper, "UPS", &format!("1Z{i}"), "NL")
            .await;
    }
    let second = sign(&n.b, &vkey).await;
    assert!(second.size() > first.size());
    for node in [&n.a, &n.b] {
        let proof = node
            .get(
                &format!(
                    "/v1/log/proof/consistency?from={}&to={}",
                    first.size(),
                    second.size()
                ),
                &n.shipper,
            )
            .await;
        let path: Vec<Hash> = proof.body["consistency_proof"]
            .as_array()
            .expect("proof")
            .iter()
            .map(hash)
            .collect();
        verify_consistency(
            first.size(),
            second.size(),
            first.root(),
            second.root(),
            &path,
        )
        .expect("checkpoints of the two nodes are consistent");
    }
    // Both nodes keep and answer the same newest checkpoint.
    assert_eq!(
        newest(&n.a, &n.shipper).await,
        newest(&n.b, &n.shipper).await
    );
}

/// Followers (PostgreSQL): node B's read model applies node A's commits as soon as they are
/// announced, without any request to B and without waiting for a periodic catch-up.
#[actix_web::test]
async fn a_node_follows_the_others_commits() {
    if backend() != Backend::Postgres {
        // SQLite announces no other process's commits; `serve` catches up once a second there.
        return;
    }
    let n = two_nodes().await;
    let wanted = n.a.log_size().await;
    // A bound on failure, not a pause: the model normally follows within a round trip.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while n.b.state.projector.read().next_position().get() < wanted {
        assert!(
            std::time::Instant::now() < deadline,
            "node B's model did not follow node A's commits"
        );
        tokio::task::yield_now().await;
    }
    assert!(n
        .b
        .state
        .projector
        .read()
        .consents
        .values()
        .any(|c| c.id.to_string() == n.consent));
}

//! Access decisions over HTTP (SPEC §3 "Access decision", §5, §7): every deny reason and its
//! precedence, data minimisation, shipper-wide scopes, who may ask, batches, consistency
//! tokens, idempotency, "who may see this shipment" as of any time, restarts, and revocation
//! racing decisions. Every answer is checked against the event the log holds for it.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use consent_ledger_store::StoredEvent;
use serde_json::{json, Value};

use crate::helpers::{
    assert_gapless, consent_for, expect, problem, rfc3339, sorted, spawn_app, spawn_app_in,
    start_time, strings, time, Reply, TestApp,
};

const DECIDE: &str = "/v1/decisions";
const BATCH: &str = "/v1/decisions/batch";
const ALLOWED: &str = "TrackingAccessAllowed";
const DENIED: &str = "TrackingAccessDenied";

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Asserts a 422 `invalid-field` answer naming `field`.
fn invalid(r: &Reply, field: &str) {
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    assert_eq!(r.field(), field, "{}", r.body);
}

fn keys(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    out.sort();
    out
}

fn position_of(answer: &Value) -> u64 {
    answer["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("no position in {answer}"))
}

fn decision_id_of(answer: &Value) -> String {
    let id = answer["decision_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no decision_id in {answer}"));
    let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("bad decision_id {id}: {e}"));
    assert_eq!(parsed.get_version_num(), 7, "decision ids are UUIDv7: {id}");
    id.to_owned()
}

/// A decision asking about a shipment by id.
fn ask(shipment: &str, purpose: &str, categories: &[&str]) -> Value {
    json!({ "shipment_id": shipment, "purpose": purpose, "data_categories": categories })
}

/// A decision asking about a shipment by carrier and tracking number.
fn ask_tracking(carrier: &str, tracking: &str, purpose: &str, categories: &[&str]) -> Value {
    json!({ "carrier": carrier, "tracking_number": tracking, "purpose": purpose,
        "data_categories": categories })
}

/// The same question, asked by the gateway on behalf of `partner`.
fn for_partner(mut body: Value, partner: &str) -> Value {
    body["partner_id"] = json!(partner);
    body
}

fn listed(shipments: &[&str]) -> Value {
    json!({ "type": "shipments", "shipment_ids": shipments })
}

fn consent(partner: &str, scope: Value, purposes: &[&str], categories: &[&str]) -> Value {
    json!({
        "partner_id": partner,
        "scope": scope,
        "purposes": purposes,
        "data_categories": categories,
        "legal_basis": "contract"
    })
}

/// Asserts the exact shape of a deny answer.
fn assert_denied(answer: &Value, reason: &str) {
    assert_eq!(
        keys(answer),
        sorted(&[
            "allowed",
            "authorization_ids",
            "consent_ids",
            "data_categories",
            "decision_id",
            "position",
            "reason"
        ]),
        "{answer}"
    );
    assert_eq!(answer["allowed"], false, "{answer}");
    assert_eq!(answer["reason"], reason, "{answer}");
    assert_eq!(answer["consent_ids"], json!([]), "{answer}");
    assert_eq!(answer["authorization_ids"], json!([]), "{answer}");
    assert_eq!(answer["data_categories"], json!([]), "{answer}");
    decision_id_of(answer);
    position_of(answer);
}

/// Asserts the exact shape of an allow answer.
fn assert_allowed(answer: &Value, consents: &[&str], categories: &[&str]) {
    assert_eq!(
        keys(answer),
        sorted(&[
            "allowed",
            "authorization_ids",
            "consent_ids",
            "data_categories",
            "decision_id",
            "position"
        ]),
        "{answer}"
    );
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(
        strings(&answer["consent_ids"]),
        sorted(consents),
        "{answer}"
    );
    assert_eq!(
        strings(&answer["data_categories"]),
        sorted(categories),
        "{answer}"
    );
    decision_id_of(answer);
    position_of(answer);
}

/// The event that recorded a decision: at the answer's position, in the `access` stream of the
/// answer's decision id, of the answer's outcome, and the only event carrying that decision id.
/// Returns the event's payload (the inner object).
fn recorded(log: &[StoredEvent], answer: &Value) -> Value {
    let position = position_of(answer);
    let id = decision_id_of(answer);
    let event = log
        .get(usize::try_from(position).unwrap_or(usize::MAX))
        .unwrap_or_else(|| panic!("no event at position {position} for {answer}"));
    assert_eq!(event.position.get(), position);
    let ty = if answer["allowed"] == true {
        ALLOWED
    } else {
        DENIED
    };
    assert_eq!(event.event_type, ty, "{answer} vs {:?}", event);
    assert_eq!(event.stream_type, "access", "{:?}", event);
    assert_eq!(event.stream_id, id, "{:?}", event);
    let whole = event.payload.to_value().expect("payload is JSON");
    let payload = whole[ty].clone();
    assert_eq!(payload["decision_id"], id.as_str(), "{}", event.payload);
    if ty == ALLOWED {
        assert_eq!(
            strings(&payload["consents"]),
            strings(&answer["consent_ids"])
        );
        assert_eq!(
            strings(&payload["granted"]),
            strings(&answer["data_categories"])
        );
    } else {
        // The record keeps the true reason; the answer is the reason as told to the caller,
        // which for a partner hides whether the parcel exists (see `denied`).
        let told = &answer["reason"];
        assert!(
            payload["reason"] == *told
                || (payload["reason"] == "unknown_shipment" && told == "no_consent"),
            "recorded {} but answered {told}",
            event.payload
        );
    }
    let carrying = log
        .iter()
        .filter(|e| e.stream_type == "access" && e.stream_id == id)
        .count();
    assert_eq!(carrying, 1, "decision {id} recorded {carrying} times");
    payload
}

/// POSTs one decision, expects 200 and returns the answer, checked against the log.
async fn decide(app: &TestApp, token: &str, body: Value) -> (Value, Value) {
    let r = app.post(DECIDE, token, body).await;
    let answer = expect(&r, StatusCode::OK).clone();
    let log = app.log().await;
    let payload = recorded(&log, &answer).clone();
    (answer, payload)
}

/// The reason a caller of `role` is told for a denial recorded as `reason` (SPEC §2: a partner
/// cannot tell another tenant's parcel from no parcel; the gateway, the carrier's own system,
/// is told the truth).
fn told(role: &str, reason: &str) -> String {
    match (role, reason) {
        ("partner", "unknown_shipment") => "no_consent".into(),
        _ => reason.into(),
    }
}

/// A decision that must be denied and recorded for `reason`, answered as the caller is told
/// it; returns the recorded payload. The decision is recorded for `partner` with the purpose
/// and categories asked.
async fn denied(app: &TestApp, token: &str, partner: &str, body: Value, reason: &str) -> Value {
    let me = app.get("/v1/me", token).await;
    let role = expect(&me, StatusCode::OK)["role"].clone();
    let (answer, payload) = decide(app, token, body.clone()).await;
    assert_eq!(payload["reason"], reason, "{payload}");
    assert_denied(&answer, &told(role.as_str().unwrap_or_default(), reason));
    assert_eq!(payload["partner"], partner, "{payload}");
    assert_eq!(payload["purpose"], body["purpose"], "{payload}");
    assert_eq!(
        strings(&payload["requested"]),
        strings(&body["data_categories"])
    );
    payload
}

/// A decision that must be allowed through exactly `consents`, granting exactly `categories`.
async fn allowed(
    app: &TestApp,
    token: &str,
    partner: &str,
    body: Value,
    consents: &[&str],
    categories: &[&str],
) -> Value {
    let (answer, payload) = decide(app, token, body.clone()).await;
    assert_allowed(&answer, consents, categories);
    assert_eq!(payload["partner"], partner, "{payload}");
    assert_eq!(payload["purpose"], body["purpose"], "{payload}");
    assert_eq!(
        strings(&payload["requested"]),
        strings(&body["data_categories"])
    );
    payload
}

/// Grants a consent; returns its id and position.
async fn grant(app: &TestApp, shipper: &str, body: Value) -> (String, u64) {
    let r = app.post("/v1/consents", shipper, body).await;
    expect(&r, StatusCode::CREATED);
    (r.id(), r.position())
}

/// Revokes a consent; returns the revocation's position.
async fn revoke(app: &TestApp, shipper: &str, consent: &str) -> u64 {
    let r = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            shipper,
            json!({"reason": "the customer objected"}),
        )
        .await;
    expect(&r, StatusCode::OK);
    r.position()
}

/// A partner principal of another kind than the helpers' insurer.
async fn partner_of_kind(app: &TestApp, name: &str, kind: &str) -> (String, String) {
    let body = json!({ "role": "partner", "name": name,
        "partner": { "kind": kind, "country": "NL", "dpa_ref": format!("DPA-{name}") } });
    let r = app.post("/v1/principals", &app.admin, body).await;
    expect(&r, StatusCode::CREATED);
    (r.id(), r.token())
}

/// A shipper, a partner, the gateway and one DHL shipment to Germany.
struct World {
    app: TestApp,
    shipper_id: String,
    shipper: String,
    partner_id: String,
    partner: String,
    gateway: String,
    shipment: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, gateway) = app.principal("gateway", "Tracking API").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD0001", "DE").await;
    World {
        app,
        shipper_id,
        shipper,
        partner_id,
        partner,
        gateway,
        shipment,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Deny reasons
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn every_deny_reason_is_answered_in_spec_order_and_recorded_before_the_answer() {
    let w = world().await;
    let (app, p, pid) = (&w.app, w.partner.as_str(), w.partner_id.as_str());
    let status = ["status_events"];

    // unknown_shipment, by id: the reference asked for is kept in the record.
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let payload = denied(
        app,
        p,
        pid,
        ask(&unknown_id, "insurance_claim", &status),
        "unknown_shipment",
    )
    .await;
    assert_eq!(payload["carrier"], Value::Null, "{payload}");
    assert_eq!(payload["tracking_number"], Value::Null, "{payload}");
    assert_eq!(payload["on_behalf_of"], Value::Null, "{payload}");
    assert_eq!(time(&payload["decided_at"]), start_time());
    assert!(
        payload.to_string().contains(&unknown_id),
        "the record of a decision on an unknown shipment id must keep the id asked for \
         (domain/src/access.rs: \"then the reference asked for is kept\"): {payload}"
    );

    // unknown_shipment, by carrier and tracking number: both are kept (as normalised).
    let payload = denied(
        app,
        p,
        pid,
        ask_tracking("gls", "zz0009", "insurance_claim", &status),
        "unknown_shipment",
    )
    .await;
    assert_eq!(payload["shipment"], Value::Null, "{payload}");
    assert_eq!(payload["carrier"], "GLS", "{payload}");
    // SPEC §12: the number asked for is personal; the leaf holds its commitment only.
    assert!(
        payload["tracking_number"]["commitment"].is_string(),
        "{payload}"
    );
    assert!(!payload.to_string().contains("ZZ0009"), "{payload}");
    // A known carrier with an unknown number is unknown too.
    let payload = denied(
        app,
        p,
        pid,
        ask_tracking("DHL", "JJD9999", "insurance_claim", &status),
        "unknown_shipment",
    )
    .await;
    assert_eq!(payload["carrier"], "DHL", "{payload}");
    assert!(
        payload["tracking_number"]["commitment"].is_string(),
        "{payload}"
    );
    assert!(!payload.to_string().contains("JJD9999"), "{payload}");

    // no_consent: nothing granted yet, and a consent of another partner does not count.
    let payload = denied(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &status),
        "no_consent",
    )
    .await;
    assert_eq!(payload["shipment"], w.shipment.as_str(), "{payload}");
    assert_eq!(payload["carrier"], Value::Null, "{payload}");
    let (other, _) = app.partner("Other insurer").await;
    grant(app, &w.shipper, consent_for(&other, &w.shipment)).await;
    denied(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &status),
        "no_consent",
    )
    .await;
    // By tracking number the known shipment is resolved and recorded by id.
    let payload = denied(
        app,
        p,
        pid,
        ask_tracking("DHL", "JJD0001", "insurance_claim", &status),
        "no_consent",
    )
    .await;
    assert_eq!(payload["shipment"], w.shipment.as_str(), "{payload}");

    // The partner's own consent: insurance_claim, status_events + proof_of_delivery.
    let (consent, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
    allowed(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &status),
        &[&consent],
        &status,
    )
    .await;
    denied(
        app,
        p,
        pid,
        ask(&w.shipment, "fraud_prevention", &status),
        "purpose_not_covered",
    )
    .await;
    denied(
        app,
        p,
        pid,
        ask(
            &w.shipment,
            "insurance_claim",
            &["location", "recipient_contact"],
        ),
        "category_not_covered",
    )
    .await;

    // consent_revoked once revoked; purpose and category checks still come first (SPEC §3).
    revoke(app, &w.shipper, &consent).await;
    denied(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &status),
        "consent_revoked",
    )
    .await;
    denied(
        app,
        p,
        pid,
        ask(
            &w.shipment,
            "insurance_claim",
            &["location", "proof_of_delivery"],
        ),
        "consent_revoked",
    )
    .await;
    denied(
        app,
        p,
        pid,
        ask(&w.shipment, "fraud_prevention", &status),
        "purpose_not_covered",
    )
    .await;
    denied(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &["location"]),
        "category_not_covered",
    )
    .await;
    // The gateway asking for the partner gets the same answer, recorded for the partner.
    let payload = denied(
        app,
        &w.gateway,
        pid,
        for_partner(ask(&w.shipment, "insurance_claim", &status), pid),
        "consent_revoked",
    )
    .await;
    assert_eq!(payload["shipment"], w.shipment.as_str(), "{payload}");

    assert_gapless(&app.log().await);
}

#[actix_web::test]
async fn validity_windows_decide_not_yet_valid_and_expired_and_the_latest_grant_speaks() {
    let w = world().await;
    let (app, p, pid) = (&w.app, w.partner.as_str(), w.partner_id.as_str());
    let q = || ask(&w.shipment, "insurance_claim", &["status_events"]);
    let day = Duration::days(1);

    // Valid from tomorrow until day 10.
    let mut body = consent_for(pid, &w.shipment);
    body["valid_from"] = json!(rfc3339(start_time() + day));
    body["valid_until"] = json!(rfc3339(start_time() + day * 10));
    let (first, _) = grant(app, &w.shipper, body).await;
    let payload = denied(app, p, pid, q(), "consent_not_yet_valid").await;
    assert_eq!(time(&payload["decided_at"]), start_time());

    app.clock.advance(day);
    let payload = allowed(app, p, pid, q(), &[&first], &["status_events"]).await;
    assert_eq!(time(&payload["decided_at"]), start_time() + day);

    app.clock.set(start_time() + day * 9);
    allowed(app, p, pid, q(), &[&first], &["status_events"]).await;

    app.clock.set(start_time() + day * 10 + Duration::hours(1));
    let payload = denied(app, p, pid, q(), "consent_expired").await;
    assert_eq!(payload["shipment"], w.shipment.as_str(), "{payload}");
    assert_eq!(
        time(&payload["decided_at"]),
        start_time() + day * 10 + Duration::hours(1)
    );

    // A newer grant starting on day 12: the most recently granted consent's state answers.
    let mut body = consent_for(pid, &w.shipment);
    body["valid_from"] = json!(rfc3339(start_time() + day * 12));
    let (second, _) = grant(app, &w.shipper, body).await;
    denied(app, p, pid, q(), "consent_not_yet_valid").await;

    // A still newer grant, in force at once, then revoked: now it is the one that speaks.
    let (third, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
    allowed(app, p, pid, q(), &[&third], &["status_events"]).await;
    revoke(app, &w.shipper, &third).await;
    denied(app, p, pid, q(), "consent_revoked").await;

    // Day 12: the second consent is in force; the expired and the revoked ones are not listed.
    app.clock.set(start_time() + day * 12);
    allowed(
        app,
        p,
        pid,
        ask(
            &w.shipment,
            "insurance_claim",
            &["status_events", "proof_of_delivery", "location"],
        ),
        &[&second],
        &["status_events", "proof_of_delivery"],
    )
    .await;
    assert_gapless(&app.log().await);
}

// ---------------------------------------------------------------------------------------------
// 2. Allowed: every consent in force, data minimisation
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn an_allow_lists_every_consent_in_force_and_only_the_categories_granted() {
    let w = world().await;
    let (app, p, pid) = (&w.app, w.partner.as_str(), w.partner_id.as_str());
    let (other, _) = app.partner("Other insurer").await;

    // Two consents in force for this partner and purpose: one listing the shipment, one over
    // the whole shipper; together they grant status_events and location.
    let (by_list, _) = grant(
        app,
        &w.shipper,
        consent(
            pid,
            listed(&[&w.shipment]),
            &["insurance_claim"],
            &["status_events"],
        ),
    )
    .await;
    let (by_shipper, _) = grant(
        app,
        &w.shipper,
        consent(
            pid,
            json!({"type": "shipper"}),
            &["insurance_claim", "customer_service"],
            &["location"],
        ),
    )
    .await;
    // Not listed for insurance_claim: another purpose only, a revoked one, another partner's.
    let (service, _) = grant(
        app,
        &w.shipper,
        consent(
            pid,
            listed(&[&w.shipment]),
            &["customer_service"],
            &["status_events", "proof_of_delivery"],
        ),
    )
    .await;
    let (revoked, _) = grant(
        app,
        &w.shipper,
        consent(
            pid,
            listed(&[&w.shipment]),
            &["insurance_claim"],
            &["proof_of_delivery"],
        ),
    )
    .await;
    revoke(app, &w.shipper, &revoked).await;
    grant(
        app,
        &w.shipper,
        consent(
            &other,
            listed(&[&w.shipment]),
            &["insurance_claim"],
            &["proof_of_delivery", "recipient_contact"],
        ),
    )
    .await;

    let three = ["status_events", "location", "proof_of_delivery"];
    let payload = allowed(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &three),
        &[&by_list, &by_shipper],
        &["status_events", "location"],
    )
    .await;
    assert_eq!(payload["shipment"], w.shipment.as_str(), "{payload}");
    assert_eq!(payload["on_behalf_of"], Value::Null, "{payload}");
    assert_eq!(time(&payload["decided_at"]), start_time());

    // Only what is asked is granted, even if more is allowed.
    allowed(
        app,
        p,
        pid,
        ask(&w.shipment, "insurance_claim", &["location"]),
        &[&by_shipper],
        &["location"],
    )
    .await;
    // For the other purpose, the shipper-wide consent and the customer-service one cover it.
    allowed(
        app,
        p,
        pid,
        ask(&w.shipment, "customer_service", &three),
        &[&by_shipper, &service],
        &three,
    )
    .await;
    allowed(
        app,
        p,
        pid,
        ask(
            &w.shipment,
            "customer_service",
            &["recipient_contact", "proof_of_delivery"],
        ),
        &[&service],
        &["proof_of_delivery"],
    )
    .await;

    // The gateway asks for the partner, on behalf of another partner: recorded as such.
    let body = json!({
        "partner_id": pid,
        "carrier": "dhl",
        "tracking_number": "jjd0001",
        "purpose": "insurance_claim",
        "data_categories": three,
        "on_behalf_of": other,
    });
    let payload = allowed(
        app,
        &w.gateway,
        pid,
        body,
        &[&by_list, &by_shipper],
        &["status_events", "location"],
    )
    .await;
    assert_eq!(payload["on_behalf_of"], other.as_str(), "{payload}");
    assert_eq!(payload["shipment"], w.shipment.as_str(), "{payload}");

    // The DSAR names the partner the data was read for.
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let dsar = app
        .get("/v1/audit/dsar?carrier=dhl&tracking_number=jjd0001", &dpo)
        .await;
    let dsar = expect(&dsar, StatusCode::OK);
    let relayed: Vec<&Value> = dsar["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["accesses"].as_array().into_iter().flatten())
        .filter(|a| a["on_behalf_of"] == other.as_str())
        .collect();
    assert_eq!(relayed.len(), 1, "{dsar}");

    // Reading for a suspended partner is denied, and recorded, as if that partner asked.
    let r = app.suspend(&other, "DPA lapsed").await;
    expect(&r, StatusCode::OK);
    let body = json!({
        "partner_id": pid,
        "carrier": "dhl",
        "tracking_number": "jjd0001",
        "purpose": "insurance_claim",
        "data_categories": three,
        "on_behalf_of": other,
    });
    denied(app, &w.gateway, pid, body, "partner_suspended").await;
    assert_gapless(&app.log().await);
}

// ---------------------------------------------------------------------------------------------
// 3. Shipper-wide scopes with filters
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_shipper_wide_consent_filters_by_carrier_and_country_and_covers_later_shipments() {
    let w = world().await;
    let (app, p, pid) = (&w.app, w.partner.as_str(), w.partner_id.as_str());
    let ups_de = app.shipment(&w.shipper, "UPS", "1Z0002", "DE").await;
    let dhl_fr = app.shipment(&w.shipper, "DHL", "JJD0003", "FR").await;
    let (_, other_shipper) = app.principal("shipper", "Other shop").await;
    let foreign = app.shipment(&other_shipper, "DHL", "JJD0004", "DE").await;

    let (c, _) = grant(
        app,
        &w.shipper,
        consent(
            pid,
            json!({"type": "shipper", "carriers": ["dhl"], "destination_countries": ["DE", "AT"]}),
            &["insurance_claim"],
            &["status_events", "location"],
        ),
    )
    .await;
    let q = |s: &str| ask(s, "insurance_claim", &["status_events"]);

    allowed(app, p, pid, q(&w.shipment), &[&c], &["status_events"]).await;
    denied(app, p, pid, q(&ups_de), "no_consent").await;
    denied(app, p, pid, q(&dhl_fr), "no_consent").await;
    denied(app, p, pid, q(&foreign), "no_consent").await;

    // A shipment registered after the grant is covered, by id and by tracking number in any case.
    let later = app.shipment(&w.shipper, "DHL", "JJD0005", "AT").await;
    allowed(app, p, pid, q(&later), &[&c], &["status_events"]).await;
    for (carrier, tracking) in [("dhl", "jjd0005"), ("Dhl", "Jjd0005"), ("DHL", "JJD0005")] {
        let payload = allowed(
            app,
            p,
            pid,
            ask_tracking(
                carrier,
                tracking,
                "insurance_claim",
                &["location", "recipient_contact"],
            ),
            &[&c],
            &["location"],
        )
        .await;
        assert_eq!(payload["shipment"], later.as_str(), "{payload}");
    }
    // The same tracking number at another carrier is another (unknown) shipment.
    denied(
        app,
        p,
        pid,
        ask_tracking("ups", "jjd0005", "insurance_claim", &["status_events"]),
        "unknown_shipment",
    )
    .await;
    // A later shipment outside the filters is not.
    let later_fr = app.shipment(&w.shipper, "dhl", "JJD0006", "FR").await;
    denied(app, p, pid, q(&later_fr), "no_consent").await;
    let later_ups = app.shipment(&w.shipper, "ups", "1Z0007", "AT").await;
    denied(
        app,
        p,
        pid,
        ask_tracking("UPS", "1z0007", "insurance_claim", &["status_events"]),
        "no_consent",
    )
    .await;
    denied(app, p, pid, q(&later_ups), "no_consent").await;
    assert_gapless(&app.log().await);
}

// ---------------------------------------------------------------------------------------------
// 4. Who may ask, and malformed questions
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn who_may_ask_and_malformed_questions_record_nothing() {
    let w = world().await;
    let (app, pid) = (&w.app, w.partner_id.as_str());
    let (other_id, other) = app.partner("Other insurer").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let q = || ask(&w.shipment, "insurance_claim", &["status_events"]);
    let size = app.log_size().await;

    // The gateway must name a partner, and a partner it must be.
    invalid(&app.post(DECIDE, &w.gateway, q()).await, "partner_id");
    invalid(
        &app.post(DECIDE, &w.gateway, for_partner(q(), &w.shipper_id))
            .await,
        "partner_id",
    );
    invalid(
        &app.post(
            DECIDE,
            &w.gateway,
            for_partner(q(), &uuid::Uuid::now_v7().to_string()),
        )
        .await,
        "partner_id",
    );
    // A partner asks for itself only.
    invalid(
        &app.post(DECIDE, &w.partner, for_partner(q(), &other_id))
            .await,
        "partner_id",
    );
    invalid(
        &app.post(DECIDE, &other, for_partner(q(), pid)).await,
        "partner_id",
    );
    // on_behalf_of must be a partner.
    let mut body = q();
    body["on_behalf_of"] = json!(w.shipper_id);
    invalid(&app.post(DECIDE, &w.partner, body).await, "on_behalf_of");

    // Other roles may not ask.
    for token in [&w.shipper, &regulator, &officer, &app.admin] {
        problem(
            &app.post(DECIDE, token, for_partner(q(), pid)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        problem(
            &app.post(BATCH, token, json!({"items": [for_partner(q(), pid)]}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    problem(
        &app.post_raw(DECIDE, None, q().to_string().as_bytes(), &[])
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // The shipment is named one way only.
    let mut both = q();
    both["carrier"] = json!("DHL");
    invalid(
        &app.post(DECIDE, &w.partner, both.clone()).await,
        "shipment_id",
    );
    both["tracking_number"] = json!("JJD0001");
    invalid(&app.post(DECIDE, &w.partner, both).await, "shipment_id");
    let no_tracking = json!({"carrier": "DHL", "purpose": "insurance_claim",
        "data_categories": ["status_events"]});
    invalid(
        &app.post(DECIDE, &w.partner, no_tracking).await,
        "tracking_number",
    );
    let no_carrier = json!({"tracking_number": "JJD0001", "purpose": "insurance_claim",
        "data_categories": ["status_events"]});
    invalid(&app.post(DECIDE, &w.partner, no_carrier).await, "carrier");
    let neither = json!({"purpose": "insurance_claim", "data_categories": ["status_events"]});
    invalid(&app.post(DECIDE, &w.partner, neither).await, "shipment_id");

    // Bad values name their field.
    let mut bad = q();
    bad["purpose"] = json!("curiosity");
    invalid(&app.post(DECIDE, &w.partner, bad).await, "purpose");
    let mut bad = q();
    bad["data_categories"] = json!([]);
    invalid(&app.post(DECIDE, &w.partner, bad).await, "data_categories");
    let mut bad = q();
    bad["data_categories"] = json!(["status_events", "dna"]);
    invalid(
        &app.post(DECIDE, &w.partner, bad).await,
        "data_categories[1]",
    );
    let mut bad = q();
    bad["shipment_id"] = json!("not-an-id");
    invalid(&app.post(DECIDE, &w.partner, bad).await, "shipment_id");
    let mut bad = q();
    bad["reason"] = json!("no_consent");
    invalid(&app.post(DECIDE, &w.partner, bad).await, "reason");
    assert_eq!(
        app.log_size().await,
        size,
        "refused questions recorded nothing"
    );

    // A partner naming itself is fine; so is the gateway naming it.
    denied(app, &w.partner, pid, for_partner(q(), pid), "no_consent").await;
    denied(app, &w.gateway, pid, for_partner(q(), pid), "no_consent").await;
    assert_eq!(app.log_size().await, size + 2);

    // A suspended partner is denied every decision, and each denial is recorded.
    let (c, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
    allowed(app, &w.partner, pid, q(), &[&c], &["status_events"]).await;
    let r = app.suspend(pid, "DPA lapsed").await;
    expect(&r, StatusCode::OK);
    let before = app.log_size().await;
    // Its own token is refused outright (SPEC §2), and that records nothing.
    let r = app.post(DECIDE, &w.partner, q()).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.log_size().await, before);
    // The gateway asking for it is denied, and each denial is recorded.
    denied(
        app,
        &w.gateway,
        pid,
        for_partner(q(), pid),
        "partner_suspended",
    )
    .await;
    denied(
        app,
        &w.gateway,
        pid,
        for_partner(ask(&w.shipment, "fraud_prevention", &["location"]), pid),
        "partner_suspended",
    )
    .await;
    // unknown_shipment comes first.
    denied(
        app,
        &w.gateway,
        pid,
        for_partner(
            ask_tracking("DHL", "NOPE", "insurance_claim", &["status_events"]),
            pid,
        ),
        "unknown_shipment",
    )
    .await;
    assert_eq!(
        app.log_size().await,
        before + 3,
        "every denial was recorded"
    );
    // Another partner is not affected.
    denied(app, &other, &other_id, q(), "no_consent").await;

    let r = app
        .post(
            &format!("/v1/principals/{pid}/reactivate"),
            &app.admin,
            json!({}),
        )
        .await;
    expect(&r, StatusCode::OK);
    allowed(app, &w.partner, pid, q(), &[&c], &["status_events"]).await;
    assert_gapless(&app.log().await);
}

// ---------------------------------------------------------------------------------------------
// 5. Batches
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_batch_answers_in_order_in_consecutive_positions_or_records_nothing() {
    let w = world().await;
    let (app, pid) = (&w.app, w.partner_id.as_str());
    let (other_id, _) = app.partner("Other insurer").await;
    let second = app.shipment(&w.shipper, "UPS", "1Z0002", "FR").await;
    let (c, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;

    // A partner's batch: allow, deny, deny.
    let items = vec![
        ask(
            &w.shipment,
            "insurance_claim",
            &["status_events", "location"],
        ),
        ask(&second, "insurance_claim", &["status_events"]),
        ask_tracking("gls", "x1", "insurance_claim", &["status_events"]),
    ];
    let size = app.log_size().await;
    let r = app.post(BATCH, &w.partner, json!({ "items": items })).await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(keys(body), ["results"], "{body}");
    let results = body["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 3, "{body}");
    assert_allowed(&results[0], &[&c], &["status_events"]);
    assert_denied(&results[1], "no_consent");
    // An unknown parcel is no_consent to a partner (SPEC §2); the record says unknown_shipment.
    assert_denied(&results[2], "no_consent");
    let log = app.log().await;
    let positions: Vec<u64> = results.iter().map(position_of).collect();
    assert_eq!(positions, [size, size + 1, size + 2]);
    let mut ids: Vec<String> = results.iter().map(decision_id_of).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct decision ids: {body}");
    for (answer, item) in results.iter().zip(&items) {
        let payload = recorded(&log, answer);
        assert_eq!(payload["partner"], pid, "{payload}");
        assert_eq!(payload["purpose"], item["purpose"], "{payload}");
    }
    assert_eq!(recorded(&log, &results[2])["carrier"], "GLS");
    assert_eq!(recorded(&log, &results[2])["reason"], "unknown_shipment");
    assert_eq!(app.log_size().await, size + 3);

    // The gateway's batch names a partner per item.
    let items = vec![
        for_partner(ask(&second, "insurance_claim", &["status_events"]), pid),
        for_partner(
            ask(&w.shipment, "insurance_claim", &["proof_of_delivery"]),
            pid,
        ),
        for_partner(
            ask(&w.shipment, "insurance_claim", &["proof_of_delivery"]),
            &other_id,
        ),
    ];
    let r = app.post(BATCH, &w.gateway, json!({ "items": items })).await;
    let results = expect(&r, StatusCode::OK)["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 3, "{}", r.body);
    assert_denied(&results[0], "no_consent");
    assert_allowed(&results[1], &[&c], &["proof_of_delivery"]);
    assert_denied(&results[2], "no_consent");
    let log = app.log().await;
    assert_eq!(
        results.iter().map(position_of).collect::<Vec<_>>(),
        [size + 3, size + 4, size + 5]
    );
    assert_eq!(recorded(&log, &results[2])["partner"], other_id.as_str());
    assert_eq!(recorded(&log, &results[1])["partner"], pid);

    // Refused batches record nothing.
    let size = app.log_size().await;
    let one = || ask(&w.shipment, "insurance_claim", &["status_events"]);
    invalid(
        &app.post(BATCH, &w.partner, json!({"items": []})).await,
        "items",
    );
    let too_many: Vec<Value> = (0..1001).map(|_| one()).collect();
    invalid(
        &app.post(BATCH, &w.partner, json!({ "items": too_many }))
            .await,
        "items",
    );
    invalid(&app.post(BATCH, &w.partner, json!({})).await, "items");
    let mut bad = one();
    bad["purpose"] = json!("curiosity");
    invalid(
        &app.post(BATCH, &w.partner, json!({"items": [one(), bad, one()]}))
            .await,
        "items[1].purpose",
    );
    invalid(
        &app.post(
            BATCH,
            &w.partner,
            json!({"items": [one(), one(), for_partner(one(), &other_id)]}),
        )
        .await,
        "items[2].partner_id",
    );
    let mut both = one();
    both["carrier"] = json!("DHL");
    invalid(
        &app.post(BATCH, &w.partner, json!({"items": [one(), both]}))
            .await,
        "items[1].shipment_id",
    );
    invalid(
        &app.post(
            BATCH,
            &w.gateway,
            json!({"items": [for_partner(one(), pid), one()]}),
        )
        .await,
        "items[1].partner_id",
    );
    assert_eq!(
        app.log_size().await,
        size,
        "refused batches recorded nothing"
    );

    // 1,000 is the limit, and allowed.
    let thousand: Vec<Value> = (0..1000).map(|_| one()).collect();
    let r = app
        .post(BATCH, &w.partner, json!({ "items": thousand }))
        .await;
    let results = expect(&r, StatusCode::OK)["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 1000);
    let log = app.log().await;
    let mut ids = Vec::new();
    for (i, answer) in results.iter().enumerate() {
        assert_allowed(answer, &[&c], &["status_events"]);
        assert_eq!(position_of(answer), size + i as u64);
        recorded(&log, answer);
        ids.push(decision_id_of(answer));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "distinct decision ids");
    assert_eq!(app.log_size().await, size + 1000);
    assert_gapless(&log);
}

// ---------------------------------------------------------------------------------------------
// 6. at_least_as_fresh
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn at_least_as_fresh_accepts_committed_positions_and_refuses_later_ones() {
    let w = world().await;
    let (app, pid) = (&w.app, w.partner_id.as_str());
    let (c, granted_at) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
    let fresh = |position: Value| {
        let mut body = ask(&w.shipment, "insurance_claim", &["status_events"]);
        body["at_least_as_fresh"] = position;
        body
    };
    allowed(
        app,
        &w.partner,
        pid,
        fresh(json!(granted_at)),
        &[&c],
        &["status_events"],
    )
    .await;
    allowed(
        app,
        &w.gateway,
        pid,
        for_partner(fresh(json!(0)), pid),
        &[&c],
        &["status_events"],
    )
    .await;
    // The position of the newest event is committed.
    let newest = app.log_size().await - 1;
    allowed(
        app,
        &w.partner,
        pid,
        fresh(json!(newest)),
        &[&c],
        &["status_events"],
    )
    .await;
    // A revoke's position makes the answer reflect the revoke.
    let revoked_at = revoke(app, &w.shipper, &c).await;
    denied(
        app,
        &w.partner,
        pid,
        fresh(json!(revoked_at)),
        "consent_revoked",
    )
    .await;

    let size = app.log_size().await;
    for beyond in [json!(size), json!(size + 1000), json!(u64::MAX)] {
        invalid(
            &app.post(DECIDE, &w.partner, fresh(beyond.clone())).await,
            "at_least_as_fresh",
        );
        let r = app
            .post(
                BATCH,
                &w.partner,
                json!({ "items": [fresh(json!(0)), fresh(beyond)] }),
            )
            .await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
        assert!(
            r.field().ends_with("at_least_as_fresh"),
            "names at_least_as_fresh: {}",
            r.body
        );
    }
    invalid(
        &app.post(DECIDE, &w.partner, fresh(json!(-1))).await,
        "at_least_as_fresh",
    );
    invalid(
        &app.post(DECIDE, &w.partner, fresh(json!("3"))).await,
        "at_least_as_fresh",
    );
    assert_eq!(
        app.log_size().await,
        size,
        "refused questions recorded nothing"
    );
    assert_gapless(&app.log().await);
}

// ---------------------------------------------------------------------------------------------
// 7. Idempotency
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_retried_decision_returns_the_first_answer_and_records_nothing_twice() {
    let w = world().await;
    let (app, pid) = (&w.app, w.partner_id.as_str());
    let (c, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
    let q = ask(&w.shipment, "insurance_claim", &["status_events"]);
    let key = [("Idempotency-Key", "decision-1")];

    let first = app.post_with(DECIDE, &w.partner, q.clone(), &key).await;
    let first_body = expect(&first, StatusCode::OK).clone();
    assert_allowed(&first_body, &[&c], &["status_events"]);
    assert!(first.headers.get("Idempotent-Replayed").is_none());
    recorded(&app.log().await, &first_body);
    let size = app.log_size().await;

    let again = app.post_with(DECIDE, &w.partner, q.clone(), &key).await;
    assert_eq!(expect(&again, StatusCode::OK), &first_body);
    assert_eq!(
        again
            .headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(app.log_size().await, size, "the retry recorded nothing");

    // After the revoke returned, the retry may not say allowed again (docs/adr/0003): it is
    // refused naming the key, and records nothing. (Before, it replayed the allow: a stale
    // allow after a revocation.)
    revoke(app, &w.shipper, &c).await;
    let size = app.log_size().await;
    let again = app.post_with(DECIDE, &w.partner, q.clone(), &key).await;
    problem(&again, StatusCode::CONFLICT, "decision-superseded");
    assert_eq!(again.body["field"], "Idempotency-Key", "{}", again.body);
    assert_eq!(app.log_size().await, size);
    // Without the key it is a new decision.
    denied(app, &w.partner, pid, q.clone(), "consent_revoked").await;
    let size = app.log_size().await;

    // The key reused for another question is refused, recording nothing.
    let r = app
        .post_with(
            DECIDE,
            &w.partner,
            ask(&w.shipment, "insurance_claim", &["location"]),
            &key,
        )
        .await;
    problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    assert_eq!(app.log_size().await, size);

    // Keys are per principal: the gateway's same key is its own decision.
    let r = app
        .post_with(DECIDE, &w.gateway, for_partner(q.clone(), pid), &key)
        .await;
    let gateway_answer = expect(&r, StatusCode::OK).clone();
    assert_denied(&gateway_answer, "consent_revoked");
    assert_ne!(gateway_answer["decision_id"], first_body["decision_id"]);
    recorded(&app.log().await, &gateway_answer);
    assert_eq!(app.log_size().await, size + 1);

    // A batch retried answers the same results.
    let batch = json!({"items": [q.clone(), ask_tracking("dhl", "jjd0001", "fraud_prevention", &["location"])]});
    let bkey = [("Idempotency-Key", "batch-1")];
    let first = app.post_with(BATCH, &w.partner, batch.clone(), &bkey).await;
    let first_batch = expect(&first, StatusCode::OK).clone();
    let size = app.log_size().await;
    let again = app.post_with(BATCH, &w.partner, batch, &bkey).await;
    assert_eq!(expect(&again, StatusCode::OK), &first_batch);
    assert_eq!(app.log_size().await, size);
    let log = app.log().await;
    for answer in first_batch["results"].as_array().into_iter().flatten() {
        recorded(&log, answer);
    }
    assert_gapless(&log);
}

/// No answer that says allowed, replayed or not, follows a suspension that returned, and a
/// decision's key replays for 24 hours only (docs/adr/0003); a replayed denial stays a denial.
#[actix_web::test]
async fn a_retried_allow_is_refused_after_a_suspension_and_keys_expire_after_a_day() {
    let w = world().await;
    let (app, pid) = (&w.app, w.partner_id.as_str());
    let (c, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
    // The gateway asks for the partner: a suspended partner's own token is refused outright.
    let q = for_partner(ask(&w.shipment, "insurance_claim", &["status_events"]), pid);
    let key = [("Idempotency-Key", "suspended-1")];
    let first = app.post_with(DECIDE, &w.gateway, q.clone(), &key).await;
    assert_allowed(expect(&first, StatusCode::OK), &[&c], &["status_events"]);
    // A batch holding that allow, and a denial under a key of its own.
    let batch = json!({"items": [q.clone()]});
    let bkey = [("Idempotency-Key", "suspended-batch")];
    expect(
        &app.post_with(BATCH, &w.gateway, batch.clone(), &bkey).await,
        StatusCode::OK,
    );
    let nope = for_partner(
        ask_tracking("DHL", "NOPE", "insurance_claim", &["status_events"]),
        pid,
    );
    let dkey = [("Idempotency-Key", "denied-1")];
    let denial = app.post_with(DECIDE, &w.gateway, nope.clone(), &dkey).await;
    let denial = expect(&denial, StatusCode::OK).clone();
    assert_denied(&denial, "unknown_shipment");

    let r = app.suspend(pid, "DPA lapsed").await;
    expect(&r, StatusCode::OK);
    let size = app.log_size().await;
    let own = app.post_with(DECIDE, &w.partner, q.clone(), &key).await;
    problem(&own, StatusCode::UNAUTHORIZED, "unauthorized");
    let again = app.post_with(DECIDE, &w.gateway, q.clone(), &key).await;
    problem(&again, StatusCode::CONFLICT, "decision-superseded");
    let again = app.post_with(BATCH, &w.gateway, batch.clone(), &bkey).await;
    problem(&again, StatusCode::CONFLICT, "decision-superseded");
    // A denial replays as it was.
    let again = app.post_with(DECIDE, &w.gateway, nope.clone(), &dkey).await;
    assert_eq!(expect(&again, StatusCode::OK), &denial);
    assert_eq!(app.log_size().await, size, "refused retries record nothing");

    // A day and a second later the key replays nothing: the caller asks anew.
    app.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    let again = app.post_with(DECIDE, &w.gateway, nope, &dkey).await;
    problem(&again, StatusCode::CONFLICT, "idempotency-key-expired");
    assert_eq!(again.body["field"], "Idempotency-Key", "{}", again.body);
    assert_eq!(app.log_size().await, size);
}

// ---------------------------------------------------------------------------------------------
// 8. Authorized parties as of any time
// ---------------------------------------------------------------------------------------------

fn parties_path(shipment: &str, as_of: Option<DateTime<Utc>>) -> String {
    match as_of {
        Some(t) => format!(
            "/v1/shipments/{shipment}/authorized-parties?as_of={}",
            rfc3339(t)
        ),
        None => format!("/v1/shipments/{shipment}/authorized-parties"),
    }
}

/// The parties answered, checked for shape; returns them keyed by consent id, sorted.
fn parties(r: &Reply, shipment: &str, as_of: DateTime<Utc>) -> Vec<Value> {
    let body = expect(r, StatusCode::OK);
    assert_eq!(
        keys(body),
        ["as_of", "intermediaries", "parties", "shipment_id"],
        "{body}"
    );
    assert_eq!(
        body["intermediaries"],
        json!([]),
        "no authorization: {body}"
    );
    assert_eq!(body["shipment_id"], shipment, "{body}");
    assert_eq!(time(&body["as_of"]), as_of, "{body}");
    let mut list = body["parties"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no parties in {body}"));
    list.sort_by_key(|p| p["consent_id"].as_str().unwrap_or_default().to_owned());
    list
}

#[actix_web::test]
async fn authorized_parties_follow_grants_revocations_and_expiry_as_of_any_time() {
    let w = world().await;
    let app = &w.app;
    let (pid, s) = (w.partner_id.as_str(), w.shipment.as_str());
    let (lender_id, lender) = partner_of_kind(app, "Lender", "bnpl").await;
    let (notifier_id, _) = partner_of_kind(app, "Notify", "notifications").await;
    let (_, other_shipper) = app.principal("shipper", "Other shop").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let h = Duration::hours(1);
    let t0 = start_time();

    // Before any grant: nobody.
    assert_eq!(
        parties(&app.get(&parties_path(s, None), &w.shipper).await, s, t0),
        Vec::<Value>::new()
    );

    // t0+1h: the insurer gets the listed shipment; the lender the whole shipper until day 10;
    // the notifier a shipper-wide grant filtered to another carrier.
    app.clock.set(t0 + h);
    let (insure, _) = grant(app, &w.shipper, consent_for(pid, s)).await;
    let mut lend = consent(
        &lender_id,
        json!({"type": "shipper"}),
        &["bnpl_financing", "payment_risk"],
        &["status_events"],
    );
    let until = t0 + Duration::days(10);
    lend["valid_until"] = json!(rfc3339(until));
    let (lending, _) = grant(app, &w.shipper, lend).await;
    grant(
        app,
        &w.shipper,
        consent(
            &notifier_id,
            json!({"type": "shipper", "carriers": ["UPS"]}),
            &["shipment_notifications"],
            &["status_events"],
        ),
    )
    .await;

    let insurer_party = json!({
        "partner_id": pid,
        "name": "Insure",
        "kind": "insurer",
        "consent_id": insure,
        "purposes": ["insurance_claim"],
        "data_categories": ["proof_of_delivery", "status_events"],
        "valid_until": null,
    });
    let check = |got: &[Value], want: &[&Value]| {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                keys(g),
                sorted(&[
                    "consent_id",
                    "data_categories",
                    "kind",
                    "name",
                    "partner_id",
                    "purposes",
                    "valid_until"
                ]),
                "{g}"
            );
            for field in ["partner_id", "name", "kind", "consent_id"] {
                assert_eq!(g[field], w[field], "{field} of {g}");
            }
            for field in ["purposes", "data_categories"] {
                assert_eq!(strings(&g[field]), strings(&w[field]), "{field} of {g}");
            }
            match w["valid_until"].as_str() {
                Some(_) => assert_eq!(time(&g["valid_until"]), time(&w["valid_until"])),
                None => assert_eq!(g["valid_until"], Value::Null, "{g}"),
            }
        }
    };
    let lender_party = json!({
        "partner_id": lender_id,
        "name": "Lender",
        "kind": "bnpl",
        "consent_id": lending,
        "purposes": ["bnpl_financing", "payment_risk"],
        "data_categories": ["status_events"],
        "valid_until": rfc3339(until),
    });
    let mut both = [&insurer_party, &lender_party];
    both.sort_by_key(|p| p["consent_id"].as_str().unwrap_or_default().to_owned());

    // Now (default) and as of any time after the grants: both, for every viewer allowed.
    for token in [&w.shipper, &w.gateway, &regulator, &officer] {
        let got = parties(&app.get(&parties_path(s, None), token).await, s, t0 + h);
        check(&got, &both);
    }
    let got = parties(
        &app.get(&parties_path(s, Some(t0 + h * 2)), &w.shipper)
            .await,
        s,
        t0 + h * 2,
    );
    check(&got, &both);
    // An offset time is read as the instant it names.
    let r = app
        .get(
            &format!("/v1/shipments/{s}/authorized-parties?as_of=2026-03-01T15:00:00%2B01:00"),
            &w.shipper,
        )
        .await;
    check(&parties(&r, s, t0 + h * 2), &both);

    // t0+3h: the insurer's consent is revoked.
    app.clock.set(t0 + h * 3);
    revoke(app, &w.shipper, &insure).await;

    // Before the grants: nobody. Between grant and revoke: both. After the revoke: the lender.
    let at = |t: DateTime<Utc>| parties_path(s, Some(t));
    check(&parties(&app.get(&at(t0), &w.shipper).await, s, t0), &[]);
    check(
        &parties(
            &app.get(&at(t0 + Duration::minutes(30)), &w.shipper).await,
            s,
            t0 + Duration::minutes(30),
        ),
        &[],
    );
    check(
        &parties(&app.get(&at(t0 + h * 2), &w.shipper).await, s, t0 + h * 2),
        &both,
    );
    check(
        &parties(&app.get(&at(t0 + h * 4), &w.shipper).await, s, t0 + h * 4),
        &[&lender_party],
    );
    check(
        &parties(
            &app.get(&parties_path(s, None), &w.shipper).await,
            s,
            t0 + h * 3,
        ),
        &[&lender_party],
    );
    // After the lender's valid_until: nobody.
    check(
        &parties(&app.get(&at(until), &w.shipper).await, s, until),
        &[],
    );
    check(
        &parties(&app.get(&at(until + h), &w.shipper).await, s, until + h),
        &[],
    );
    check(
        &parties(&app.get(&at(until - h), &w.shipper).await, s, until - h),
        &[&lender_party],
    );

    // A shipment of the shipper registered later is covered by the shipper-wide grant only.
    let later = app.shipment(&w.shipper, "DHL", "JJD0002", "DE").await;
    check(
        &parties(
            &app.get(&parties_path(&later, None), &w.shipper).await,
            &later,
            t0 + h * 3,
        ),
        &[&lender_party],
    );
    let ups = app.shipment(&w.shipper, "UPS", "1Z0003", "DE").await;
    let got = parties(
        &app.get(&parties_path(&ups, None), &w.shipper).await,
        &ups,
        t0 + h * 3,
    );
    assert_eq!(got.len(), 2, "lender and notifier: {got:?}");
    let names: Vec<&str> = got.iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(
        names.contains(&"Lender") && names.contains(&"Notify"),
        "{got:?}"
    );

    // Who may not ask: another shipper, partners (even one listed). Unknown shipment: 404.
    for token in [&other_shipper, &w.partner, &lender] {
        problem(
            &app.get(&parties_path(s, None), token).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
    }
    problem(
        &app.get(
            &parties_path(&uuid::Uuid::now_v7().to_string(), None),
            &w.gateway,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    // Bad input names its parameter.
    for bad in ["yesterday", "2026-03-01", "2026-13-01T00:00:00Z", ""] {
        invalid(
            &app.get(
                &format!("/v1/shipments/{s}/authorized-parties?as_of={bad}"),
                &w.shipper,
            )
            .await,
            "as_of",
        );
    }
    invalid(
        &app.get(
            &format!("/v1/shipments/{s}/authorized-parties?at=2026-03-01T00:00:00Z"),
            &w.shipper,
        )
        .await,
        "at",
    );
    invalid(
        &app.get("/v1/shipments/not-an-id/authorized-parties", &w.shipper)
            .await,
        "id",
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Restart
// ---------------------------------------------------------------------------------------------

/// The outcome of an answer, without its decision id and position.
fn outcome(answer: &Value) -> (Value, Value, Vec<String>, Vec<String>) {
    (
        answer["allowed"].clone(),
        answer["reason"].clone(),
        strings(&answer["consent_ids"]),
        strings(&answer["data_categories"]),
    )
}

#[actix_web::test]
async fn decisions_answer_the_same_after_a_restart_and_the_log_stays_gapless() {
    let w = world().await;
    let pid = w.partner_id.clone();
    let second = w.app.shipment(&w.shipper, "UPS", "1Z0002", "FR").await;
    let third = w.app.shipment(&w.shipper, "DHL", "JJD0003", "AT").await;
    let (c, _) = grant(&w.app, &w.shipper, consent_for(&pid, &w.shipment)).await;
    let (r, _) = grant(&w.app, &w.shipper, consent_for(&pid, &second)).await;
    revoke(&w.app, &w.shipper, &r).await;
    let mut later = consent_for(&pid, &third);
    later["valid_from"] = json!(rfc3339(start_time() + Duration::days(2)));
    grant(&w.app, &w.shipper, later).await;
    let suspended = w.app.partner("Suspended").await;
    let r_s = w.app.suspend(&suspended.0, "DPA lapsed").await;
    expect(&r_s, StatusCode::OK);

    let questions: Vec<(String, Value)> = vec![
        (
            w.partner.clone(),
            ask(
                &w.shipment,
                "insurance_claim",
                &["status_events", "location"],
            ),
        ),
        (
            w.gateway.clone(),
            for_partner(
                ask_tracking("dhl", "jjd0001", "insurance_claim", &["proof_of_delivery"]),
                &pid,
            ),
        ),
        (
            w.partner.clone(),
            ask(&second, "insurance_claim", &["status_events"]),
        ),
        (
            w.partner.clone(),
            ask(&third, "insurance_claim", &["status_events"]),
        ),
        (
            w.partner.clone(),
            ask(&w.shipment, "fraud_prevention", &["status_events"]),
        ),
        (
            w.partner.clone(),
            ask_tracking("GLS", "NONE1", "insurance_claim", &["status_events"]),
        ),
        (
            w.gateway.clone(),
            for_partner(
                ask(&w.shipment, "insurance_claim", &["status_events"]),
                &suspended.0,
            ),
        ),
    ];
    let expected = [
        (
            json!(true),
            Value::Null,
            sorted(&[&c]),
            sorted(&["status_events"]),
        ),
        (
            json!(true),
            Value::Null,
            sorted(&[&c]),
            sorted(&["proof_of_delivery"]),
        ),
        (json!(false), json!("consent_revoked"), vec![], vec![]),
        (json!(false), json!("consent_not_yet_valid"), vec![], vec![]),
        (json!(false), json!("purpose_not_covered"), vec![], vec![]),
        // As told to the partner; recorded as unknown_shipment.
        (json!(false), json!("no_consent"), vec![], vec![]),
        (json!(false), json!("partner_suspended"), vec![], vec![]),
    ];
    let mut before = Vec::new();
    for (token, body) in &questions {
        let (answer, _) = decide(&w.app, token, body.clone()).await;
        before.push(outcome(&answer));
    }
    assert_eq!(before, expected);
    let log_before = w.app.log().await;
    assert_gapless(&log_before);

    let (dir, clock, admin) = w.app.stop().await;
    let app = spawn_app_in(dir, clock, Some(admin)).await;
    let size = app.log_size().await;
    assert_eq!(size, log_before.len() as u64);
    for (i, (token, body)) in questions.iter().enumerate() {
        let (answer, _) = decide(&app, token, body.clone()).await;
        assert_eq!(
            outcome(&answer),
            expected[i],
            "question {i} after the restart"
        );
        assert_eq!(position_of(&answer), size + i as u64);
    }
    // Time still moves the answers after the restart.
    app.clock.advance(Duration::days(2));
    let (answer, _) = decide(&app, &questions[3].0, questions[3].1.clone()).await;
    assert_eq!(answer["allowed"], true, "{answer}");

    let log = app.log().await;
    assert_eq!(
        &log[..log_before.len()],
        &log_before[..],
        "history unchanged"
    );
    assert_gapless(&log);
}

// ---------------------------------------------------------------------------------------------
// 10. Revocation racing decisions (SPEC §5.2)
// ---------------------------------------------------------------------------------------------

/// Keeps asking until three requests were sent after the revoke returned. Each answer is
/// paired with whether its request was sent after the revoke's answer had arrived.
async fn keep_deciding(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &Value,
    revoked: &AtomicBool,
) -> Vec<(bool, Value)> {
    let mut answers = Vec::new();
    let mut sent_after = 0;
    for _ in 0..5_000 {
        let after = revoked.load(Ordering::SeqCst);
        let r = app.post(path, token, body.clone()).await;
        let body = expect(&r, StatusCode::OK);
        match body["results"].as_array() {
            Some(results) => answers.extend(results.iter().map(|a| (after, a.clone()))),
            None => answers.push((after, body.clone())),
        }
        if after {
            sent_after += 1;
            if sent_after == 3 {
                return answers;
            }
        }
    }
    panic!("the revoke never returned");
}

/// Asks a few times itself (so that the others are under way), then revokes and raises the flag
/// as soon as the revoke's answer arrived. Returns the revocation's position and the answers.
async fn revoke_midway(
    app: &TestApp,
    partner: &str,
    body: &Value,
    shipper: &str,
    consent: &str,
    revoked: &AtomicBool,
) -> (u64, Vec<Value>) {
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = app.post(DECIDE, partner, body.clone()).await;
        answers.push(expect(&r, StatusCode::OK).clone());
    }
    let r = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            shipper,
            json!({"reason": "the customer objected"}),
        )
        .await;
    revoked.store(true, Ordering::SeqCst);
    expect(&r, StatusCode::OK);
    (r.position(), answers)
}

#[actix_web::test]
async fn no_decision_sent_after_a_revoke_returned_is_allowed() {
    for round in 0..5 {
        let w = world().await;
        let (app, pid) = (&w.app, w.partner_id.as_str());
        let (c, _) = grant(app, &w.shipper, consent_for(pid, &w.shipment)).await;
        let q = ask(&w.shipment, "insurance_claim", &["status_events"]);
        let via_gateway = for_partner(q.clone(), pid);
        let batch = json!({"items": [q.clone(), q.clone(), q.clone(), q.clone()]});
        let gateway_batch = json!({"items": [via_gateway.clone(), via_gateway.clone()]});
        let revoked = AtomicBool::new(false);
        let flag = &revoked;

        let (a, b, c2, d, e, f, g, h, (revoked_at, first)) = tokio::join!(
            keep_deciding(app, &w.partner, DECIDE, &q, flag),
            keep_deciding(app, &w.partner, DECIDE, &q, flag),
            keep_deciding(app, &w.partner, DECIDE, &q, flag),
            keep_deciding(app, &w.gateway, DECIDE, &via_gateway, flag),
            keep_deciding(app, &w.gateway, DECIDE, &via_gateway, flag),
            keep_deciding(app, &w.gateway, DECIDE, &via_gateway, flag),
            keep_deciding(app, &w.partner, BATCH, &batch, flag),
            keep_deciding(app, &w.gateway, BATCH, &gateway_batch, flag),
            revoke_midway(app, &w.partner, &q, &w.shipper, &c, flag),
        );

        let log = app.log().await;
        assert_gapless(&log);
        let revocation = &log[usize::try_from(revoked_at).unwrap_or(usize::MAX)];
        assert_eq!(revocation.event_type, "ConsentRevoked", "round {round}");
        assert_eq!(revocation.stream_id, c, "round {round}");

        for answer in &first {
            assert_allowed(answer, &[&c], &["status_events"]);
            assert!(position_of(answer) < revoked_at);
            recorded(&log, answer);
        }
        let mut after = 0;
        for (sent_after, answer) in [a, b, c2, d, e, f, g, h].into_iter().flatten() {
            recorded(&log, &answer);
            if sent_after {
                after += 1;
                assert_eq!(
                    answer["reason"], "consent_revoked",
                    "round {round}: a decision sent after the revoke returned (position \
                     {revoked_at}) answered {answer}"
                );
                assert_denied(&answer, "consent_revoked");
                assert!(position_of(&answer) > revoked_at, "round {round}: {answer}");
            } else if answer["allowed"] == true {
                assert_allowed(&answer, &[&c], &["status_events"]);
                assert!(
                    position_of(&answer) < revoked_at,
                    "round {round}: allowed after the revoke committed: {answer}"
                );
            } else {
                assert_denied(&answer, "consent_revoked");
                assert!(position_of(&answer) > revoked_at, "round {round}: {answer}");
            }
        }
        assert!(
            after >= 24,
            "round {round}: {after} decisions sent after the revoke"
        );
        let late_allows: Vec<u64> = log
            .iter()
            .filter(|e| e.event_type == ALLOWED && e.position.get() > revoked_at)
            .map(|e| e.position.get())
            .collect();
        assert_eq!(
            late_allows,
            Vec::<u64>::new(),
            "round {round}: allows committed after the revocation at {revoked_at}"
        );
    }
}

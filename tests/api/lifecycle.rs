//! The life of consents and consent requests over HTTP, end to end: grants, requests and the
//! rules of their approval, expiry by time, tenancy (SPEC §2), idempotency (SPEC §5.5),
//! suspended partners, shipments — and that all of it reads the same after a restart.

use actix_web::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{
    assert_gapless, consent_for, expect, field_problem, problem, rfc3339, sorted, spawn_app,
    spawn_app_in, start_time, strings, time, Reply, TestApp,
};

/// Asserts a problem+json answer that names the field at fault.
/// The ids of a 200 list answer `{items: [...]}`, in the order answered.
fn item_ids(r: &Reply) -> Vec<String> {
    expect(r, StatusCode::OK)["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", r.body))
        .iter()
        .map(|i| {
            i["id"]
                .as_str()
                .unwrap_or_else(|| panic!("item without id: {i}"))
                .to_owned()
        })
        .collect()
}

/// Owned copies of ids, to compare with [`item_ids`].
fn list(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

fn event_types(detail: &Value) -> Vec<String> {
    detail["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history in {detail}"))
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A consent-request body addressed to `shipper`.
fn request_body(
    shipper: &str,
    scope: Value,
    purposes: &[&str],
    categories: &[&str],
    valid_until: Option<DateTime<Utc>>,
) -> Value {
    let mut body = json!({
        "shipper_id": shipper,
        "scope": scope,
        "purposes": purposes,
        "data_categories": categories,
        "legal_basis": "contract",
        "justification": "we handle this shipper's lost-parcel claims",
    });
    if let Some(until) = valid_until {
        body["valid_until"] = json!(rfc3339(until));
    }
    body
}

fn whole_shipper() -> Value {
    json!({ "type": "shipper" })
}

/// The partner holding `token` submits `body`; returns the request id and its position.
async fn submit(app: &TestApp, token: &str, body: Value) -> (String, u64) {
    let r = app.post("/v1/consent-requests", token, body).await;
    expect(&r, StatusCode::CREATED);
    (r.id(), r.position())
}

fn assert_strictly_increasing(positions: &[u64]) {
    for pair in positions.windows(2) {
        assert!(
            pair[0] < pair[1],
            "write positions are not strictly increasing: {positions:?}"
        );
    }
}

#[actix_web::test]
async fn the_whole_consent_lifecycle_survives_a_restart() {
    let app = spawn_app().await;
    let mut positions = Vec::new();

    // The admin registers a shipper, a gateway and two partners.
    let principal = |r: Reply| {
        let body = expect(&r, StatusCode::CREATED).clone();
        assert!(
            body["token"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        (r.id(), r.token())
    };
    let (shipper, shipper_token) = principal(
        app.post(
            "/v1/principals",
            &app.admin,
            json!({"role": "shipper", "name": "Shop"}),
        )
        .await,
    );
    let (_, gateway_token) = principal(
        app.post(
            "/v1/principals",
            &app.admin,
            json!({"role": "gateway", "name": "Tracking API"}),
        )
        .await,
    );
    let partner_body = |name: &str| json!({"role": "partner", "name": name, "partner": {"kind": "insurer", "country": "DE", "dpa_ref": format!("DPA-{name}")}});
    let (partner1, partner1_token) = principal(
        app.post("/v1/principals", &app.admin, partner_body("Insure"))
            .await,
    );
    let (partner2, partner2_token) = principal(
        app.post("/v1/principals", &app.admin, partner_body("Claims"))
            .await,
    );

    // Shipments: one by the admin, one by the gateway, each naming the shipper (the carrier,
    // not the shipper, says who shipped what).
    let r = app
        .post(
            "/v1/shipments",
            &app.admin,
            json!({"carrier": "DHL", "tracking_number": "JJD0001", "destination_country": "DE", "shipper_id": shipper}),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let shipment1 = r.id();
    positions.push(r.position());
    let r = app
        .post(
            "/v1/shipments",
            &gateway_token,
            json!({"carrier": "UPS", "tracking_number": "1Z0002", "destination_country": "FR", "shipper_id": shipper}),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let shipment2 = r.id();
    positions.push(r.position());
    let r = app
        .get(&format!("/v1/shipments/{shipment2}"), &shipper_token)
        .await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body["shipper_id"], shipper.as_str());
    assert_eq!(body["carrier"], "UPS");
    assert_eq!(body["tracking_number"], "1Z0002");
    assert_eq!(body["destination_country"], "FR");

    // Consent A: explicit shipments to partner 1.
    let body_a = json!({
        "partner_id": partner1,
        "scope": {"type": "shipments", "shipment_ids": [shipment1, shipment2]},
        "purposes": ["insurance_claim"],
        "data_categories": ["status_events", "proof_of_delivery"],
        "legal_basis": "contract"
    });
    let r = app.post("/v1/consents", &shipper_token, body_a).await;
    expect(&r, StatusCode::CREATED);
    let consent_a = r.id();
    positions.push(r.position());

    // Consent B: the whole shipper, filtered, to partner 2.
    let body_b = json!({
        "partner_id": partner2,
        "scope": {"type": "shipper", "carriers": ["DHL"], "destination_countries": ["DE", "FR"]},
        "purposes": ["customer_service", "shipment_notifications"],
        "data_categories": ["status_events"],
        "legal_basis": "legitimate_interests",
        "dpa_ref": "DPA-2026-7"
    });
    let r = app.post("/v1/consents", &shipper_token, body_b).await;
    expect(&r, StatusCode::CREATED);
    let consent_b = r.id();
    positions.push(r.position());
    let r = app
        .get(&format!("/v1/consents/{consent_b}"), &shipper_token)
        .await;
    let b = expect(&r, StatusCode::OK);
    assert_eq!(b["status"], "active");
    assert_eq!(b["scope"]["type"], "shipper");
    assert_eq!(strings(&b["scope"]["carriers"]), ["DHL"]);
    assert_eq!(strings(&b["scope"]["destination_countries"]), ["DE", "FR"]);
    assert_eq!(b["dpa_ref"], "DPA-2026-7");
    assert_eq!(b["legal_basis"], "legitimate_interests");
    assert_eq!(b["request_id"], Value::Null);
    assert_eq!(b["request"], Value::Null);
    assert_eq!(b["request_history"], json!([]));
    assert_eq!(
        b["narrowing"],
        Value::Null,
        "granted directly, nothing asked"
    );
    assert_eq!(time(&b["valid_from"]), start_time());

    // Partner 1 asks for more; the shipper approves narrower than asked.
    let until = start_time() + Duration::days(90);
    let (request1, p) = submit(
        &app,
        &partner1_token,
        request_body(
            &shipper,
            whole_shipper(),
            &["insurance_claim", "customer_service"],
            &["status_events", "location"],
            Some(until),
        ),
    )
    .await;
    positions.push(p);
    let r = app
        .get(&format!("/v1/consent-requests/{request1}"), &shipper_token)
        .await;
    let pending = expect(&r, StatusCode::OK);
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["partner_id"], partner1.as_str());
    assert_eq!(pending["shipper_id"], shipper.as_str());
    assert_eq!(
        pending["justification"],
        "we handle this shipper's lost-parcel claims"
    );
    assert_eq!(
        time(&pending["expires_at"]),
        start_time() + Duration::days(30)
    );

    let r = app
        .post(
            &format!("/v1/consent-requests/{request1}/approve"),
            &shipper_token,
            json!({"purposes": ["insurance_claim"], "data_categories": ["status_events"]}),
        )
        .await;
    let approved = expect(&r, StatusCode::OK);
    let consent_c = approved["consent_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no consent_id in {approved}"))
        .to_owned();
    assert_eq!(approved.as_object().map(|o| o.len()), Some(2), "{approved}");
    positions.push(r.position());

    let r = app
        .get(&format!("/v1/consents/{consent_c}"), &partner1_token)
        .await;
    let c = expect(&r, StatusCode::OK);
    assert_eq!(c["id"], consent_c.as_str());
    assert_eq!(c["status"], "active");
    assert_eq!(c["shipper_id"], shipper.as_str());
    assert_eq!(c["partner_id"], partner1.as_str());
    assert_eq!(c["scope"], json!({"type": "shipper"}));
    assert_eq!(strings(&c["purposes"]), ["insurance_claim"]);
    assert_eq!(strings(&c["data_categories"]), ["status_events"]);
    assert_eq!(c["legal_basis"], "contract");
    assert_eq!(
        c["dpa_ref"], "DPA-Insure",
        "defaults to the partner's DPA reference"
    );
    assert_eq!(time(&c["valid_until"]), until);
    assert_eq!(c["request_id"], request1.as_str());
    assert_eq!(c["request"]["id"], request1.as_str());
    assert_eq!(c["request"]["status"], "approved");
    assert_eq!(c["request"]["consent_id"], consent_c.as_str());
    assert_eq!(
        strings(&c["request"]["purposes"]),
        sorted(&["insurance_claim", "customer_service"])
    );
    assert_eq!(event_types(c), ["ConsentGranted"]);
    assert_eq!(c["history"][0]["actor"], shipper.as_str());
    // What the approval took away from the ask, and the request's own history with its actors.
    assert_eq!(
        c["narrowing"],
        json!({
            "purposes_removed": ["customer_service"],
            "data_categories_removed": ["location"],
            "valid_until": null,
        }),
        "the end asked for was kept"
    );
    let request_history: Vec<(&str, &str)> = c["request_history"]
        .as_array()
        .unwrap_or_else(|| panic!("no request_history in {c}"))
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap_or_default(),
                e["actor"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        request_history,
        [
            ("ConsentRequestSubmitted", partner1.as_str()),
            ("ConsentRequestApproved", shipper.as_str()),
        ]
    );
    assert_eq!(
        c["request_history"][1]["event"]["consent_id"],
        consent_c.as_str()
    );

    let r = app
        .get(&format!("/v1/consent-requests/{request1}"), &partner1_token)
        .await;
    let req1 = expect(&r, StatusCode::OK);
    assert_eq!(req1["status"], "approved");
    assert_eq!(req1["consent_id"], consent_c.as_str());
    assert_eq!(
        event_types(req1),
        ["ConsentRequestSubmitted", "ConsentRequestApproved"]
    );

    // Partner 2 asks; the shipper denies, with a reason both sides can read.
    let (request2, p) = submit(
        &app,
        &partner2_token,
        request_body(
            &shipper,
            whole_shipper(),
            &["fraud_prevention", "payment_risk"],
            &["status_events", "location"],
            None,
        ),
    )
    .await;
    positions.push(p);
    let r = app
        .post(
            &format!("/v1/consent-requests/{request2}/deny"),
            &shipper_token,
            json!({"reason": "no fraud screening wanted"}),
        )
        .await;
    assert_eq!(
        expect(&r, StatusCode::OK).as_object().map(|o| o.len()),
        Some(1),
        "{}",
        r.body
    );
    positions.push(r.position());
    for token in [&shipper_token, &partner2_token] {
        let r = app
            .get(&format!("/v1/consent-requests/{request2}"), token)
            .await;
        let denied = expect(&r, StatusCode::OK);
        assert_eq!(denied["status"], "denied");
        assert_eq!(denied["reason"], "no fraud screening wanted");
        assert_eq!(denied["consent_id"], Value::Null);
        assert_eq!(
            event_types(denied),
            ["ConsentRequestSubmitted", "ConsentRequestDenied"]
        );
    }

    // Partner 1 asks again, then thinks better of it.
    let (request3, p) = submit(
        &app,
        &partner1_token,
        request_body(
            &shipper,
            whole_shipper(),
            &["returns_management", "customer_service"],
            &["status_events", "recipient_contact"],
            None,
        ),
    )
    .await;
    positions.push(p);
    let r = app
        .post(
            &format!("/v1/consent-requests/{request3}/withdraw"),
            &partner1_token,
            json!({}),
        )
        .await;
    expect(&r, StatusCode::OK);
    positions.push(r.position());
    let r = app
        .get(&format!("/v1/consent-requests/{request3}"), &shipper_token)
        .await;
    let withdrawn = expect(&r, StatusCode::OK);
    assert_eq!(withdrawn["status"], "withdrawn");
    assert_eq!(
        event_types(withdrawn),
        ["ConsentRequestSubmitted", "ConsentRequestWithdrawn"]
    );

    // The shipper revokes consent A.
    let r = app
        .post(
            &format!("/v1/consents/{consent_a}/revoke"),
            &shipper_token,
            json!({"reason": "the customer objected"}),
        )
        .await;
    assert_eq!(
        expect(&r, StatusCode::OK).as_object().map(|o| o.len()),
        Some(1),
        "{}",
        r.body
    );
    positions.push(r.position());
    let r = app
        .get(&format!("/v1/consents/{consent_a}"), &shipper_token)
        .await;
    let a = expect(&r, StatusCode::OK);
    assert_eq!(a["status"], "revoked");
    assert_eq!(a["revocation"]["reason"], "the customer objected");
    assert_eq!(a["revocation"]["revoked_by"], shipper.as_str());
    assert_eq!(a["revocation"]["position"], positions[positions.len() - 1]);
    assert_eq!(time(&a["revocation"]["revoked_at"]), start_time());
    assert_eq!(
        strings(&a["scope"]["shipment_ids"]),
        sorted(&[shipment1.as_str(), shipment2.as_str()])
    );
    assert_eq!(event_types(a), ["ConsentGranted", "ConsentRevoked"]);
    assert_eq!(a["history"][1]["actor"], shipper.as_str());
    assert_eq!(a["history"][1]["event"]["reason"], "the customer objected");
    assert_eq!(a["history"][1]["position"], positions[positions.len() - 1]);

    // The lists, per viewer.
    assert_eq!(
        item_ids(&app.get("/v1/consents", &shipper_token).await),
        list(&[&consent_a, &consent_b, &consent_c])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents", &partner1_token).await),
        list(&[&consent_a, &consent_c])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents", &partner2_token).await),
        list(&[&consent_b])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=active", &shipper_token).await),
        list(&[&consent_b, &consent_c])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=revoked", &shipper_token).await),
        list(&[&consent_a])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consent-requests", &shipper_token).await),
        list(&[&request1, &request2, &request3])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consent-requests", &partner1_token).await),
        list(&[&request1, &request3])
    );
    assert_eq!(
        item_ids(
            &app.get("/v1/consent-requests?status=denied", &shipper_token)
                .await
        ),
        list(&[&request2])
    );

    // Every write answered a strictly increasing position, and the log has no gaps.
    assert_strictly_increasing(&positions);
    let log = app.log().await;
    assert_gapless(&log);
    let size = app.log_size().await;
    assert_eq!(size, log.len() as u64);
    assert_eq!(
        positions.last().copied(),
        Some(size - 1),
        "the last write is the last event"
    );

    // Everything a user reads, before and after a restart.
    let reads: Vec<(String, String)> = vec![
        ("/v1/consents".into(), shipper_token.clone()),
        (
            format!("/v1/consents?shipper_id={shipper}"),
            shipper_token.clone(),
        ),
        ("/v1/consents".into(), partner1_token.clone()),
        ("/v1/consents".into(), partner2_token.clone()),
        (format!("/v1/consents/{consent_a}"), shipper_token.clone()),
        (format!("/v1/consents/{consent_b}"), partner2_token.clone()),
        (format!("/v1/consents/{consent_c}"), partner1_token.clone()),
        ("/v1/consent-requests".into(), shipper_token.clone()),
        (
            format!("/v1/consent-requests/{request1}"),
            shipper_token.clone(),
        ),
        (
            format!("/v1/consent-requests/{request2}"),
            partner2_token.clone(),
        ),
        (
            format!("/v1/consent-requests/{request3}"),
            partner1_token.clone(),
        ),
        (format!("/v1/shipments/{shipment1}"), shipper_token.clone()),
        (format!("/v1/shipments/{shipment2}"), gateway_token.clone()),
        ("/v1/partners".into(), shipper_token.clone()),
        ("/v1/me".into(), shipper_token.clone()),
        ("/v1/me".into(), gateway_token.clone()),
        ("/v1/me".into(), partner1_token.clone()),
        ("/v1/me".into(), partner2_token.clone()),
        ("/v1/me".into(), app.admin.clone()),
    ];
    let mut before = Vec::new();
    for (path, token) in &reads {
        let r = app.get(path, token).await;
        before.push(expect(&r, StatusCode::OK).clone());
    }

    let (dir, clock, admin) = app.stop().await;
    let app = spawn_app_in(dir, clock, Some(admin)).await;

    for ((path, token), old) in reads.iter().zip(&before) {
        let r = app.get(path, token).await;
        assert_eq!(
            expect(&r, StatusCode::OK),
            old,
            "GET {path} differs after the restart"
        );
    }
    assert_eq!(app.log_size().await, size);
    let r = app
        .get(&format!("/v1/consent-requests/{request1}"), &shipper_token)
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "approved");

    // Positions go on where they stopped.
    let r = app
        .post(
            &format!("/v1/consents/{consent_c}/revoke"),
            &shipper_token,
            json!({"reason": "contract ended"}),
        )
        .await;
    expect(&r, StatusCode::OK);
    assert_eq!(r.position(), size);
    let r = app
        .post(
            "/v1/shipments",
            &gateway_token,
            json!({"carrier": "DHL", "tracking_number": "JJD0003", "destination_country": "AT", "shipper_id": shipper}),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    assert_eq!(r.position(), size + 1);
    assert_gapless(&app.log().await);
    let r = app
        .get(&format!("/v1/consents/{consent_c}"), &partner1_token)
        .await;
    let c = expect(&r, StatusCode::OK);
    assert_eq!(c["status"], "revoked");
    assert_eq!(event_types(c), ["ConsentGranted", "ConsentRevoked"]);
}

/// A shipper, a second shipper, a partner and a pending request of the partner to the shipper
/// (two purposes, two categories, valid for 90 days).
struct PendingRequest {
    app: TestApp,
    shipper: String,
    other_shipper: String,
    partner: String,
    request: String,
}

async fn pending_request() -> PendingRequest {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (_, other_shipper) = app.principal("shipper", "Other shop").await;
    let (_, partner) = app.partner("Insure").await;
    let (request, _) = submit(
        &app,
        &partner,
        request_body(
            &shipper_id,
            whole_shipper(),
            &["insurance_claim", "customer_service"],
            &["status_events", "location"],
            Some(start_time() + Duration::days(90)),
        ),
    )
    .await;
    PendingRequest {
        app,
        shipper,
        other_shipper,
        partner,
        request,
    }
}

#[actix_web::test]
async fn approval_narrows_but_never_widens_and_only_the_right_party_acts() {
    let PendingRequest {
        app,
        shipper,
        other_shipper,
        partner,
        request,
    } = pending_request().await;
    let approve = format!("/v1/consent-requests/{request}/approve");
    let size = app.log_size().await;

    let r = app
        .post(
            &approve,
            &shipper,
            json!({"purposes": ["fraud_prevention"]}),
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "purposes",
    );
    let r = app
        .post(
            &approve,
            &shipper,
            json!({"purposes": ["insurance_claim", "fraud_prevention"]}),
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "purposes",
    );
    let r = app
        .post(
            &approve,
            &shipper,
            json!({"data_categories": ["status_events", "recipient_contact"]}),
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "data_categories",
    );
    let later = rfc3339(start_time() + Duration::days(91));
    let r = app
        .post(&approve, &shipper, json!({"valid_until": later}))
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "valid_until",
    );

    // The wrong parties: the shipper cannot withdraw, the partner cannot approve or deny,
    // another shipper does not even see the request.
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/withdraw"),
            &shipper,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = app.post(&approve, &partner, json!({})).await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/deny"),
            &partner,
            json!({"reason": "no"}),
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = app.post(&approve, &other_shipper, json!({})).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/deny"),
            &other_shipper,
            json!({"reason": "no"}),
        )
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = app
        .get(&format!("/v1/consent-requests/{request}"), &other_shipper)
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");

    assert_eq!(app.log_size().await, size, "refused calls recorded nothing");
    let r = app
        .get(&format!("/v1/consent-requests/{request}"), &shipper)
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "pending");
    assert_eq!(
        item_ids(&app.get("/v1/consents", &shipper).await),
        Vec::<String>::new(),
        "no consent was granted"
    );

    // A valid narrowing: shorter, fewer purposes.
    let until = start_time() + Duration::days(60);
    let r = app
        .post(
            &approve,
            &shipper,
            json!({"purposes": ["customer_service"], "valid_until": rfc3339(until)}),
        )
        .await;
    let consent_id = expect(&r, StatusCode::OK)["consent_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        r.position(),
        size + 1,
        "the grant and the approval, nothing else"
    );
    let r = app
        .get(&format!("/v1/consents/{consent_id}"), &partner)
        .await;
    let c = expect(&r, StatusCode::OK);
    assert_eq!(strings(&c["purposes"]), ["customer_service"]);
    assert_eq!(
        strings(&c["data_categories"]),
        sorted(&["status_events", "location"]),
        "not narrowed: as asked"
    );
    assert_eq!(time(&c["valid_until"]), until);
    assert_eq!(
        c["narrowing"],
        json!({
            "purposes_removed": ["insurance_claim"],
            "data_categories_removed": [],
            "valid_until": {
                "requested": rfc3339(start_time() + Duration::days(90)),
                "granted": rfc3339(until),
            },
        })
    );
    let size = app.log_size().await;

    // Once approved, it is no longer pending for anyone.
    let r = app.post(&approve, &shipper, json!({})).await;
    problem(&r, StatusCode::CONFLICT, "request-not-pending");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/deny"),
            &shipper,
            json!({"reason": "changed my mind"}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "request-not-pending");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/withdraw"),
            &partner,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "request-not-pending");
    assert_eq!(app.log_size().await, size, "refused calls recorded nothing");
    assert_eq!(
        item_ids(&app.get("/v1/consents", &shipper).await),
        list(&[&consent_id]),
        "exactly one consent"
    );
    let r = app
        .get(&format!("/v1/consent-requests/{request}"), &shipper)
        .await;
    let req = expect(&r, StatusCode::OK);
    assert_eq!(req["status"], "approved");
    assert_eq!(req["consent_id"], consent_id.as_str());
    assert_gapless(&app.log().await);
}

#[actix_web::test]
async fn a_request_left_pending_expires_after_thirty_days() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (_, partner) = app.partner("Insure").await;
    let (request, _) = submit(
        &app,
        &partner,
        request_body(
            &shipper_id,
            whole_shipper(),
            &["insurance_claim", "customer_service"],
            &["status_events", "location"],
            None,
        ),
    )
    .await;

    app.clock.advance(Duration::days(29));
    let r = app
        .get(&format!("/v1/consent-requests/{request}"), &shipper)
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "pending");

    app.clock.advance(Duration::days(2));
    let size = app.log_size().await;
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/approve"),
            &shipper,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "request-expired");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/deny"),
            &shipper,
            json!({"reason": "too late"}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "request-expired");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/withdraw"),
            &partner,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "request-expired");
    assert_eq!(
        app.log_size().await,
        size,
        "the failed calls recorded nothing"
    );

    for token in [&shipper, &partner] {
        let r = app
            .get(&format!("/v1/consent-requests/{request}"), token)
            .await;
        let body = expect(&r, StatusCode::OK);
        assert_eq!(body["status"], "expired");
        assert_eq!(body["consent_id"], Value::Null);
        assert_eq!(time(&body["expires_at"]), start_time() + Duration::days(30));
    }
    assert_eq!(
        item_ids(
            &app.get("/v1/consent-requests?status=expired", &shipper)
                .await
        ),
        list(&[&request])
    );
    assert_eq!(
        item_ids(
            &app.get("/v1/consent-requests?status=pending", &shipper)
                .await
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents", &shipper).await),
        Vec::<String>::new(),
        "no consent was granted"
    );
}

#[actix_web::test]
async fn a_consent_expires_by_time_without_an_event() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD0001", "DE").await;
    let mut body = consent_for(&partner_id, &shipment);
    body["valid_until"] = json!(rfc3339(start_time() + Duration::days(10)));
    let r = app.post("/v1/consents", &shipper, body).await;
    expect(&r, StatusCode::CREATED);
    let consent = r.id();
    let path = format!("/v1/consents/{consent}");

    let r = app.get(&path, &partner).await;
    let c = expect(&r, StatusCode::OK);
    assert_eq!(c["status"], "active");
    assert_eq!(time(&c["valid_until"]), start_time() + Duration::days(10));
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=active", &shipper).await),
        list(&[&consent])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=expired", &shipper).await),
        Vec::<String>::new()
    );

    let size = app.log_size().await;
    app.clock.advance(Duration::days(11));
    let r = app.get(&path, &shipper).await;
    let c = expect(&r, StatusCode::OK);
    assert_eq!(c["status"], "expired");
    assert_eq!(c["revocation"], Value::Null);
    assert_eq!(
        event_types(c),
        ["ConsentGranted"],
        "expiry is time, not an event"
    );
    assert_eq!(app.log_size().await, size);
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=expired", &shipper).await),
        list(&[&consent])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=expired", &partner).await),
        list(&[&consent])
    );
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=active", &shipper).await),
        Vec::<String>::new()
    );

    // A grant that would already be over is refused, naming valid_until.
    let mut body = consent_for(&partner_id, &shipment);
    body["valid_until"] = json!(rfc3339(start_time() + Duration::days(10)));
    let r = app.post("/v1/consents", &shipper, body).await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "valid_until",
    );
    assert_eq!(app.log_size().await, size);
}

#[actix_web::test]
async fn each_tenant_sees_only_its_own_and_others_get_404() {
    let app = spawn_app().await;
    let (shipper1_id, shipper1) = app.principal("shipper", "Shop one").await;
    let (_, shipper2) = app.principal("shipper", "Shop two").await;
    let (partner1_id, partner1) = app.partner("Insure").await;
    let (partner2_id, partner2) = app.partner("Lender").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let (_, regulator) = app.principal("regulator", "Authority").await;
    let shipment1 = app.shipment(&shipper1, "DHL", "JJD0001", "DE").await;
    let shipment2 = app.shipment(&shipper2, "DHL", "JJD0002", "DE").await;

    let r = app
        .post(
            "/v1/consents",
            &shipper1,
            consent_for(&partner1_id, &shipment1),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let consent1 = r.id();
    let r = app
        .post(
            "/v1/consents",
            &shipper2,
            consent_for(&partner2_id, &shipment2),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let consent2 = r.id();
    let (request1, _) = submit(
        &app,
        &partner1,
        request_body(
            &shipper1_id,
            whole_shipper(),
            &["insurance_claim", "customer_service"],
            &["status_events", "location"],
            None,
        ),
    )
    .await;

    // One consent, read by everyone.
    let path = format!("/v1/consents/{consent1}");
    let unknown = format!("/v1/consents/{}", uuid::Uuid::now_v7());
    let hidden = app.get(&path, &shipper2).await;
    problem(&hidden, StatusCode::NOT_FOUND, "not-found");
    let missing = app.get(&unknown, &shipper2).await;
    problem(&missing, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        hidden.body, missing.body,
        "another tenant's consent reads exactly like a missing one"
    );
    problem(
        &app.get(&path, &partner2).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    for token in [&shipper1, &partner1, &officer, &regulator] {
        let r = app.get(&path, token).await;
        assert_eq!(expect(&r, StatusCode::OK)["id"], consent1.as_str());
    }

    // Lists return only what each may see, even when asked for someone else's.
    let consents = |token: &str, query: &str| {
        let app = &app;
        let path = format!("/v1/consents{query}");
        let token = token.to_owned();
        async move { item_ids(&app.get(&path, &token).await) }
    };
    assert_eq!(consents(&shipper1, "").await, list(&[&consent1]));
    assert_eq!(consents(&shipper2, "").await, list(&[&consent2]));
    assert_eq!(consents(&partner1, "").await, list(&[&consent1]));
    assert_eq!(consents(&partner2, "").await, list(&[&consent2]));
    assert_eq!(consents(&officer, "").await, list(&[&consent1, &consent2]));
    assert_eq!(
        consents(&regulator, "").await,
        list(&[&consent1, &consent2])
    );
    assert_eq!(
        consents(&regulator, &format!("?partner_id={partner2_id}")).await,
        list(&[&consent2])
    );
    assert_eq!(
        consents(&shipper2, &format!("?shipper_id={shipper1_id}")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        consents(&partner2, &format!("?partner_id={partner1_id}")).await,
        Vec::<String>::new()
    );

    let requests = |token: &str| {
        let app = &app;
        let token = token.to_owned();
        async move { item_ids(&app.get("/v1/consent-requests", &token).await) }
    };
    assert_eq!(requests(&shipper1).await, list(&[&request1]));
    assert_eq!(requests(&partner1).await, list(&[&request1]));
    assert_eq!(requests(&officer).await, list(&[&request1]));
    assert_eq!(requests(&regulator).await, list(&[&request1]));
    assert_eq!(requests(&shipper2).await, Vec::<String>::new());
    assert_eq!(requests(&partner2).await, Vec::<String>::new());
    let request_path = format!("/v1/consent-requests/{request1}");
    problem(
        &app.get(&request_path, &shipper2).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get(&request_path, &partner2).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    expect(&app.get(&request_path, &officer).await, StatusCode::OK);

    // Revoking: the partner may read but not revoke; another shipper does not see it at all.
    let size = app.log_size().await;
    let revoke = format!("/v1/consents/{consent1}/revoke");
    problem(
        &app.post(&revoke, &partner1, json!({"reason": "mine"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    problem(
        &app.post(&revoke, &shipper2, json!({"reason": "mine"}))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.post(&revoke, &partner2, json!({"reason": "mine"}))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.post(&revoke, &officer, json!({"reason": "mine"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(
        app.log_size().await,
        size,
        "refused revocations recorded nothing"
    );
    assert_eq!(
        expect(&app.get(&path, &shipper1).await, StatusCode::OK)["status"],
        "active"
    );

    // Shipments.
    let shipment_path = format!("/v1/shipments/{shipment1}");
    let hidden = app.get(&shipment_path, &shipper2).await;
    problem(&hidden, StatusCode::NOT_FOUND, "not-found");
    let missing = app
        .get(
            &format!("/v1/shipments/{}", uuid::Uuid::now_v7()),
            &shipper2,
        )
        .await;
    assert_eq!(hidden.body, missing.body);
    problem(
        &app.get(&shipment_path, &partner1).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    for token in [&shipper1, &officer, &regulator] {
        let r = app.get(&shipment_path, token).await;
        assert_eq!(
            expect(&r, StatusCode::OK)["shipper_id"],
            shipper1_id.as_str()
        );
    }
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_answer_and_records_nothing_twice() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (_, shipper2) = app.principal("shipper", "Other shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD0001", "DE").await;
    let shipment2 = app.shipment(&shipper2, "DHL", "JJD0002", "DE").await;
    let key = [("Idempotency-Key", "k1")];

    // A grant, retried.
    let size = app.log_size().await;
    let body = consent_for(&partner_id, &shipment);
    let first = app
        .post_with("/v1/consents", &shipper, body.clone(), &key)
        .await;
    expect(&first, StatusCode::CREATED);
    assert!(
        first.headers.get("Idempotent-Replayed").is_none(),
        "the first answer is no replay"
    );
    assert_eq!(app.log_size().await, size + 1);
    let second = app
        .post_with("/v1/consents", &shipper, body.clone(), &key)
        .await;
    assert_eq!(expect(&second, StatusCode::CREATED), &first.body);
    assert_eq!(
        second
            .headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(app.log_size().await, size + 1, "the retry recorded nothing");
    let consent = first.id();
    assert_eq!(
        item_ids(&app.get("/v1/consents", &shipper).await),
        list(&[&consent])
    );

    // The same key for a different body is refused.
    let mut other = body.clone();
    other["purposes"] = json!(["customer_service"]);
    let r = app.post_with("/v1/consents", &shipper, other, &key).await;
    problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    assert_eq!(app.log_size().await, size + 1);

    // Another principal's k1 is its own.
    let r = app
        .post_with(
            "/v1/consents",
            &shipper2,
            consent_for(&partner_id, &shipment2),
            &key,
        )
        .await;
    expect(&r, StatusCode::CREATED);
    assert!(r.headers.get("Idempotent-Replayed").is_none());
    assert_ne!(r.id(), consent);
    assert_eq!(app.log_size().await, size + 2);

    // A revocation, retried: the same position, not "already revoked".
    let revoke = format!("/v1/consents/{consent}/revoke");
    let reason = json!({"reason": "the customer objected"});
    let first_revoke = app
        .post_with(
            &revoke,
            &shipper,
            reason.clone(),
            &[("Idempotency-Key", "r1")],
        )
        .await;
    expect(&first_revoke, StatusCode::OK);
    let again = app
        .post_with(
            &revoke,
            &shipper,
            reason.clone(),
            &[("Idempotency-Key", "r1")],
        )
        .await;
    assert_eq!(expect(&again, StatusCode::OK), &first_revoke.body);
    assert_eq!(
        again
            .headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(app.log_size().await, size + 3);
    let r = app.post(&revoke, &shipper, reason.clone()).await;
    problem(&r, StatusCode::CONFLICT, "already-revoked");

    // An approval, retried: the same consent, not a second one.
    let (request, _) = submit(
        &app,
        &partner,
        request_body(
            &shipper_id,
            whole_shipper(),
            &["insurance_claim", "customer_service"],
            &["status_events", "location"],
            None,
        ),
    )
    .await;
    let approve = format!("/v1/consent-requests/{request}/approve");
    let narrow = json!({"purposes": ["insurance_claim"]});
    let first_approve = app
        .post_with(
            &approve,
            &shipper,
            narrow.clone(),
            &[("Idempotency-Key", "a1")],
        )
        .await;
    expect(&first_approve, StatusCode::OK);
    let size_after_approve = app.log_size().await;
    let again = app
        .post_with(
            &approve,
            &shipper,
            narrow.clone(),
            &[("Idempotency-Key", "a1")],
        )
        .await;
    assert_eq!(expect(&again, StatusCode::OK), &first_approve.body);
    assert_eq!(app.log_size().await, size_after_approve);
    assert_eq!(
        item_ids(&app.get("/v1/consents?status=active", &shipper).await).len(),
        1
    );

    // A principal, retried: one principal, and the token is not shown twice.
    let size = app.log_size().await;
    let new_partner = json!({"role": "partner", "name": "Retried partner",
        "partner": {"kind": "bnpl", "country": "NL", "dpa_ref": "DPA-R"}});
    let pkey = [("Idempotency-Key", "p1")];
    let made = app
        .post_with("/v1/principals", &app.admin, new_partner.clone(), &pkey)
        .await;
    expect(&made, StatusCode::CREATED);
    let made_id = made.id();
    let retry = app
        .post_with("/v1/principals", &app.admin, new_partner.clone(), &pkey)
        .await;
    problem(&retry, StatusCode::CONFLICT, "token-shown-once");
    assert!(
        retry.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&made_id),
        "{}",
        retry.body
    );
    assert_eq!(app.log_size().await, size + 1, "one principal was created");
    let r = app.get("/v1/partners", &shipper).await;
    let named: Vec<&Value> = expect(&r, StatusCode::OK)
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", r.body))
        .iter()
        .filter(|p| p["name"] == "Retried partner")
        .collect();
    assert_eq!(named.len(), 1, "{}", r.body);
    assert_eq!(named[0]["id"], made_id.as_str());
    let r = app.get("/v1/me", &made.token()).await;
    assert_eq!(expect(&r, StatusCode::OK)["id"], made_id.as_str());

    // After a restart, the retries still replay.
    let size = app.log_size().await;
    let (dir, clock, admin) = app.stop().await;
    let app = spawn_app_in(dir, clock, Some(admin)).await;
    let r = app
        .post_with("/v1/consents", &shipper, body.clone(), &key)
        .await;
    assert_eq!(expect(&r, StatusCode::CREATED), &first.body);
    assert_eq!(
        r.headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let r = app
        .post_with(
            &revoke,
            &shipper,
            reason.clone(),
            &[("Idempotency-Key", "r1")],
        )
        .await;
    assert_eq!(expect(&r, StatusCode::OK), &first_revoke.body);
    let r = app
        .post_with(&approve, &shipper, narrow, &[("Idempotency-Key", "a1")])
        .await;
    assert_eq!(expect(&r, StatusCode::OK), &first_approve.body);
    let r = app
        .post_with("/v1/principals", &app.admin, new_partner, &pkey)
        .await;
    problem(&r, StatusCode::CONFLICT, "token-shown-once");
    let mut other = body;
    other["purposes"] = json!(["customer_service"]);
    let r = app.post_with("/v1/consents", &shipper, other, &key).await;
    problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    assert_eq!(app.log_size().await, size, "no replay recorded anything");
    assert_gapless(&app.log().await);
}

#[actix_web::test]
async fn a_suspended_partner_receives_no_grant_until_reactivated() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (other_id, _) = app.partner("Lender").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD0001", "DE").await;

    // A request made while active, to approve later.
    let (request, _) = submit(
        &app,
        &partner,
        request_body(
            &shipper_id,
            whole_shipper(),
            &["insurance_claim", "customer_service"],
            &["status_events", "location"],
            None,
        ),
    )
    .await;

    let suspend = format!("/v1/principals/{partner_id}/suspend");
    problem(
        &app.post(&suspend, &shipper, json!({"reason": "DPA lapsed"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = app
        .post(&suspend, &app.admin, json!({"reason": "DPA lapsed"}))
        .await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert_eq!(r.position(), app.log_size().await - 1);
    problem(
        &app.post(&suspend, &app.admin, json!({"reason": "again"}))
            .await,
        StatusCode::CONFLICT,
        "invalid-state",
    );

    let r = app.get("/v1/partners", &shipper).await;
    let list = expect(&r, StatusCode::OK)
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status_of = |list: &[Value], id: &str| {
        list.iter()
            .find(|p| p["id"] == id)
            .map(|p| p["status"].clone())
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    assert_eq!(list.len(), 2, "only partners are listed: {list:?}");
    assert_eq!(status_of(&list, &partner_id), "suspended");
    assert_eq!(status_of(&list, &other_id), "active");
    assert!(
        list.iter()
            .all(|p| p["role"] == "partner" && p["partner"]["dpa_ref"].is_string()),
        "{list:?}"
    );

    // No grant, no approval, no new request while suspended — and nothing recorded.
    let size = app.log_size().await;
    let r = app
        .post(
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
    field_problem(&r, StatusCode::CONFLICT, "partner-suspended", "partner_id");
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/approve"),
            &shipper,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "partner-suspended");
    let r = app
        .post(
            "/v1/consent-requests",
            &partner,
            request_body(
                &shipper_id,
                whole_shipper(),
                &["insurance_claim", "customer_service"],
                &["status_events", "location"],
                None,
            ),
        )
        .await;
    // A suspended principal's token is refused outright (SPEC §2).
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.log_size().await, size, "refused calls recorded nothing");
    assert_eq!(
        item_ids(&app.get("/v1/consents", &shipper).await),
        Vec::<String>::new()
    );
    let r = app
        .get(&format!("/v1/consent-requests/{request}"), &shipper)
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "pending");

    // Reactivated, it can be granted again.
    let r = app
        .post(
            &format!("/v1/principals/{partner_id}/reactivate"),
            &app.admin,
            json!({}),
        )
        .await;
    expect(&r, StatusCode::OK);
    assert_eq!(r.position(), size);
    // Partners do not read the directory of other partners.
    app.get("/v1/partners", &partner)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let r = app.get("/v1/partners", &app.admin).await;
    assert_eq!(
        status_of(
            expect(&r, StatusCode::OK)
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
            &partner_id
        ),
        "active"
    );
    let r = app
        .post(
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let r = app
        .post(
            &format!("/v1/consent-requests/{request}/approve"),
            &shipper,
            json!({}),
        )
        .await;
    expect(&r, StatusCode::OK);
    assert_gapless(&app.log().await);
}

/// SPEC §7: the carrier is the authority on who shipped what. The gateway or an admin
/// registers a shipment naming its shipper; a shipper cannot claim a tracking number, not even
/// for itself (security issue: a shipper that registers a parcel number first owns its
/// consents and its audit trail).
#[actix_web::test]
async fn shipments_are_unique_per_carrier_and_registered_by_the_gateway_or_an_admin() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (other_shipper_id, other_shipper) = app.principal("shipper", "Other shop").await;
    let (_, gateway) = app.principal("gateway", "Tracking API").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let shipment = |carrier: &str, tracking: &str, owner: &str| json!({"carrier": carrier, "tracking_number": tracking, "destination_country": "DE", "shipper_id": owner});

    let r = app
        .post(
            "/v1/shipments",
            &gateway,
            shipment("DHL", "JJD0001", &shipper_id),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let first = r.id();
    let size = app.log_size().await;

    for (token, carrier, owner) in [
        (&gateway, "DHL", &shipper_id),
        (&app.admin, "dhl", &shipper_id),
        (&gateway, "Dhl", &other_shipper_id),
    ] {
        let r = app
            .post("/v1/shipments", token, shipment(carrier, "JJD0001", owner))
            .await;
        field_problem(
            &r,
            StatusCode::CONFLICT,
            "already-exists",
            "tracking_number",
        );
    }
    assert_eq!(app.log_size().await, size, "duplicates recorded nothing");

    // The carrier code is stored upper-cased; the same number at another carrier is another shipment.
    let r = app
        .post(
            "/v1/shipments",
            &app.admin,
            shipment("ups", "JJD0001", &shipper_id),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let r = app
        .get(&format!("/v1/shipments/{}", r.id()), &shipper)
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["carrier"], "UPS");
    let r = app.get(&format!("/v1/shipments/{first}"), &shipper).await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body["carrier"], "DHL");
    assert_eq!(body["tracking_number"], "JJD0001");
    assert_eq!(body["shipper_id"], shipper_id.as_str());
    let size = app.log_size().await;

    // Who may register for whom: the gateway and an admin must name a shipper.
    for token in [&gateway, &app.admin] {
        let mut unnamed = shipment("DHL", "JJD0002", "");
        unnamed
            .as_object_mut()
            .expect("an object")
            .remove("shipper_id");
        let r = app.post("/v1/shipments", token, unnamed).await;
        field_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "shipper_id",
        );
    }
    let r = app
        .post(
            "/v1/shipments",
            &gateway,
            shipment("DHL", "JJD0004", &partner_id),
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "shipper_id",
    );
    // A shipper registers nothing: not for itself, named or not, nor for another; the answer
    // names the roles that may.
    let mut unnamed = shipment("DHL", "JJD0005", "");
    unnamed
        .as_object_mut()
        .expect("an object")
        .remove("shipper_id");
    for (token, body) in [
        (&shipper, unnamed),
        (&shipper, shipment("DHL", "JJD0006", &shipper_id)),
        (&shipper, shipment("DHL", "JJD0007", &other_shipper_id)),
        (&partner, shipment("DHL", "JJD0008", &shipper_id)),
    ] {
        let r = app.post("/v1/shipments", token, body).await;
        problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("gateway") && detail.contains("admin"),
            "{}",
            r.body
        );
    }
    assert_eq!(
        app.log_size().await,
        size,
        "refused registrations recorded nothing"
    );

    // The gateway registers for the shipper it names.
    let r = app
        .post(
            "/v1/shipments",
            &gateway,
            shipment("DHL", "JJD0009", &other_shipper_id),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let r = app
        .get(&format!("/v1/shipments/{}", r.id()), &other_shipper)
        .await;
    assert_eq!(
        expect(&r, StatusCode::OK)["shipper_id"],
        other_shipper_id.as_str()
    );
    assert_eq!(app.log_size().await, size + 1);
    assert_gapless(&app.log().await);
}

/// Regression (approval granted its consent before the approval committed): two approvals of
/// one request sent at once must leave exactly one approval and one consent, and the refused
/// one must record nothing.
#[actix_web::test]
async fn concurrent_approvals_of_one_request_grant_one_consent() {
    for _ in 0..5 {
        let p = pending_request().await;
        let before = p.app.log_size().await;
        let path = format!("/v1/consent-requests/{}/approve", p.request);
        let (a, b) = tokio::join!(
            p.app.post(&path, &p.shipper, json!({})),
            p.app.post(&path, &p.shipper, json!({}))
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{} / {}", a.body, b.body);
        let events: Vec<String> = p.app.log().await[before as usize..]
            .iter()
            .map(|e| e.event_type.clone())
            .collect();
        assert_eq!(events, ["ConsentRequestApproved", "ConsentGranted"]);
        let consents = p.app.get("/v1/consents", &p.shipper).await;
        assert_eq!(
            consents.body["items"].as_array().map(Vec::len),
            Some(1),
            "{}",
            consents.body
        );
    }
}

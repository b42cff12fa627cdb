//! SPEC §14 subscriptions: a partner subscribes to shipments it names, each decided as a read
//! and recorded with `"channel":"webhook"` (allowed ones accepted, the others rejected with the
//! reason it is told), or to every shipment its consents cover (`scope: consented`); lists,
//! reads and deletions are its own; bad input names the field and records nothing; they
//! outlive a restart.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{consent_for, expect, field_problem, problem, spawn_app, spawn_app_in};

const SUBSCRIPTIONS: &str = "/v1/subscriptions";

#[actix_web::test]
async fn each_named_shipment_is_decided_recorded_and_accepted_or_rejected() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, other) = app.partner("Other").await;
    let covered = app.shipment(&shipper, "DHL", "JJD-SUB-1", "DE").await;
    let uncovered = app.shipment(&shipper, "DHL", "JJD-SUB-2", "DE").await;
    let r = app
        .post("/v1/consents", &shipper, consent_for(&partner_id, &covered))
        .await;
    expect(&r, StatusCode::CREATED);
    let size = app.log_size().await;
    let body = json!({
        "purpose": "insurance_claim",
        "data_categories": ["status_events"],
        "shipments": [
            { "shipment_id": covered },
            { "shipment_id": uncovered },
            { "carrier": "DHL", "tracking_number": "JJD-NOBODY" },
            { "carrier": "DHL", "tracking_number": "JJD-SUB-1" },
        ]
    });
    let r = app.post(SUBSCRIPTIONS, &partner, body).await;
    let made = expect(&r, StatusCode::CREATED).clone();
    let id = made["id"].as_str().expect("id").to_owned();
    let accepted: Vec<(u64, &str)> = made["accepted"]
        .as_array()
        .expect("accepted")
        .iter()
        .map(|a| {
            (
                a["index"].as_u64().expect("index"),
                a["shipment_id"].as_str().expect("id"),
            )
        })
        .collect();
    assert_eq!(
        accepted,
        vec![(0, covered.as_str()), (3, covered.as_str())],
        "{made}"
    );
    let rejected = made["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 2, "{made}");
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["reason"], "no_consent");
    assert_eq!(rejected[1]["index"], 2);
    assert_eq!(
        rejected[1]["reason"], "no_consent",
        "an unknown parcel reads as no consent"
    );
    assert_eq!(
        app.log_size().await,
        size + 5,
        "four decisions and the subscription"
    );
    let log = app.log().await;
    let webhook_decisions = log
        .iter()
        .filter(|e| e.position.get() >= size && e.stream_type == "access")
        .filter(|e| {
            let payload: Value = serde_json::from_str(e.payload.as_str()).expect("payload");
            payload
                .as_object()
                .and_then(|o| o.values().next())
                .is_some_and(|d| d["channel"] == "webhook")
        })
        .count();
    assert_eq!(webhook_decisions, 4);

    let r = app.get(&format!("{SUBSCRIPTIONS}/{id}"), &partner).await;
    let view = expect(&r, StatusCode::OK).clone();
    assert_eq!(view["status"], "active");
    assert_eq!(view["partner_id"], partner_id.as_str());
    assert_eq!(view["scope"]["type"], "shipments");
    assert_eq!(view["scope"]["shipment_ids"], json!([covered, covered]));
    let r = app.get(&format!("{SUBSCRIPTIONS}/{id}"), &other).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = app.get(SUBSCRIPTIONS, &other).await;
    assert_eq!(expect(&r, StatusCode::OK)["items"], json!([]));

    // Nothing allowed: nothing made.
    let size = app.log_size().await;
    let r = app
        .post(
            SUBSCRIPTIONS,
            &other,
            json!({ "purpose": "insurance_claim", "data_categories": ["status_events"],
                "shipments": [{ "shipment_id": covered }] }),
        )
        .await;
    let nothing = expect(&r, StatusCode::OK);
    assert!(nothing.get("id").is_none(), "{nothing}");
    assert_eq!(nothing["rejected"][0]["reason"], "no_consent");
    assert_eq!(
        app.log_size().await,
        size + 1,
        "the denial is recorded, nothing else"
    );

    // Deleted once; a second delete is a conflict; a restart keeps it deleted.
    let r = app
        .request_with(
            "DELETE",
            &format!("{SUBSCRIPTIONS}/{id}"),
            Some(&partner),
            None,
        )
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "deleted");
    let r = app
        .request_with(
            "DELETE",
            &format!("{SUBSCRIPTIONS}/{id}"),
            Some(&partner),
            None,
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "already-deleted");
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    let r = app.get(&format!("{SUBSCRIPTIONS}/{id}"), &partner).await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "deleted");
}

#[actix_web::test]
async fn a_consented_subscription_names_no_shipment_and_bad_input_records_nothing() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Returns").await;
    let (_, gateway) = app.principal("gateway", "Carrier API").await;
    let r = app
        .post(
            SUBSCRIPTIONS,
            &gateway,
            json!({ "partner_id": partner_id, "purpose": "returns_management",
                "data_categories": ["status_events", "location"], "scope": "consented" }),
        )
        .await;
    let made = expect(&r, StatusCode::CREATED).clone();
    assert_eq!(made["accepted"], json!([]));
    let r = app.get(SUBSCRIPTIONS, &partner).await;
    let items = expect(&r, StatusCode::OK)["items"].clone();
    assert_eq!(items[0]["scope"], json!({ "type": "consented" }), "{items}");
    assert_eq!(items[0]["partner_id"], partner_id.as_str());

    let (_, shipper) = app.principal("shipper", "Shop").await;
    let size = app.log_size().await;
    let base = || json!({ "purpose": "insurance_claim", "data_categories": ["status_events"] });
    let with = |field: &str, value: Value| {
        let mut b = base();
        b[field] = value;
        b
    };
    let many: Vec<Value> = (0..101)
        .map(|_| json!({ "shipment_id": "00000000-0000-7000-8000-000000000000" }))
        .collect();
    for (body, field) in [
        (base(), "shipments"),
        (with("shipments", json!([])), "shipments"),
        (with("shipments", json!(many)), "shipments"),
        (with("scope", json!("everything")), "scope"),
    ] {
        let r = app.post(SUBSCRIPTIONS, &partner, body).await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", field);
    }
    let mut both = with("scope", json!("consented"));
    both["shipments"] = json!([{ "shipment_id": "00000000-0000-7000-8000-000000000000" }]);
    let r = app.post(SUBSCRIPTIONS, &partner, both).await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "scope",
    );
    let r = app
        .post(SUBSCRIPTIONS, &gateway, with("scope", json!("consented")))
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "partner_id",
    );
    let r = app
        .post(SUBSCRIPTIONS, &shipper, with("scope", json!("consented")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.log_size().await, size, "no refusal recorded anything");
}

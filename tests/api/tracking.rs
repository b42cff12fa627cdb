//! SPEC §14 tracking updates in: the carrier's gateway (or an admin) sends up to 1,000 a call;
//! each is checked on its own and a refused one names its field without echoing its value; the
//! accepted ones are kept beside the log (the log does not grow), once each, through a restart,
//! and an erasure of the shipment deletes them with its commit.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect, field_problem, spawn_app, spawn_app_in, TestApp};

const EVENTS: &str = "/v1/tracking-events";

struct World {
    gateway: String,
    shipper: String,
    shipment: String,
}

async fn world(app: &TestApp) -> World {
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-TRACK-7", "DE").await;
    World {
        gateway,
        shipper,
        shipment,
    }
}

/// The tracking updates the store keeps for `shipment`.
async fn kept_updates(
    app: &TestApp,
    shipment: &str,
) -> Vec<consent_ledger_store::tracking::TrackingUpdateRow> {
    app.state
        .store
        .tracking_of(shipment)
        .await
        .expect("tracking updates")
}

fn full_update(shipment: &str) -> Value {
    json!({
        "shipment_id": shipment,
        "status": "delivered",
        "occurred_at": "2026-03-01T11:30:00Z",
        "description": "Handed to the neighbour at no. 12",
        "location": { "city": "Bonn", "postal_code": "53111", "country": "DE" },
        "proof_of_delivery": { "signed_by": "R. Neighbour", "photo_url": "https://pod.example/p/1.jpg" },
        "recipient_contact": { "email": "erika@example.org", "phone": "+49 228 123456" }
    })
}

#[actix_web::test]
async fn the_gateway_sends_updates_that_are_kept_beside_the_log_once_each() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let size = app.log_size().await;
    let by_number = json!({
        "carrier": "DHL", "tracking_number": "JJD-TRACK-7",
        "status": "in_transit", "occurred_at": "2026-03-01T08:00:00Z"
    });
    let body = json!({ "events": [by_number, full_update(&w.shipment)] });
    let r = app.post(EVENTS, &w.gateway, body.clone()).await;
    let answer = expect(&r, StatusCode::OK);
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"], json!([]));
    assert_eq!(app.log_size().await, size, "updates are not in the log");

    let kept = kept_updates(&app, &w.shipment).await;
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].status, "in_transit");
    assert_eq!(kept[1].status, "delivered");
    let details: Value = serde_json::from_str(&kept[1].details).expect("details");
    assert_eq!(details["location"]["city"], "Bonn");
    assert_eq!(details["recipient_contact"]["email"], "erika@example.org");

    // Sent again (a gateway's retry): accepted, kept once.
    let r = app.post(EVENTS, &w.gateway, body).await;
    assert_eq!(expect(&r, StatusCode::OK)["accepted"], 2);
    let kept_again = kept_updates(&app, &w.shipment).await;
    assert_eq!(kept_again, kept);

    // A restart finds them.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    assert_eq!(kept_updates(&app, &w.shipment).await, kept);
}

#[actix_web::test]
async fn each_refused_update_names_its_field_and_never_its_value() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let good = |status: &str| json!({ "shipment_id": w.shipment, "status": status, "occurred_at": "2026-03-01T09:00:00Z" });
    let mut unknown_number = good("in_transit");
    unknown_number["shipment_id"] = Value::Null;
    unknown_number["carrier"] = json!("DHL");
    unknown_number["tracking_number"] = json!("SECRET-NUMBER-99");
    let with = |field: &str, value: Value| {
        let mut u = good("in_transit");
        u[field] = value;
        u
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("status", json!("lost_in_space")), "status"),
        (with("occurred_at", json!("yesterday")), "occurred_at"),
        (unknown_number, "tracking_number"),
        (
            with("shipment_id", json!("00000000-0000-7000-8000-000000000000")),
            "shipment_id",
        ),
        (
            with("location", json!({"city": "Bonn"})),
            "location.country",
        ),
        (
            with("location", json!({"country": "Germany"})),
            "location.country",
        ),
        (
            with("recipient_contact", json!({"email": "erika-at-example"})),
            "recipient_contact.email",
        ),
        (
            with("recipient_contact", json!({"phone": "call me maybe"})),
            "recipient_contact.phone",
        ),
        (
            with(
                "proof_of_delivery",
                json!({"photo_url": "http://pod.example/p.jpg"}),
            ),
            "proof_of_delivery.photo_url",
        ),
        (with("description", json!("x".repeat(501))), "description"),
        (with("colour", json!("blue")), "colour"),
        (json!("not an object"), "events"),
    ];
    let mut events: Vec<Value> = cases.iter().map(|(u, _)| u.clone()).collect();
    events.push(good("out_for_delivery"));
    let r = app
        .post(EVENTS, &w.gateway, json!({ "events": events }))
        .await;
    let answer = expect(&r, StatusCode::OK).clone();
    assert_eq!(answer["accepted"], 1, "{answer}");
    let rejected = answer["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), cases.len(), "{answer}");
    for (i, (_, field)) in cases.iter().enumerate() {
        assert_eq!(rejected[i]["index"], i, "{answer}");
        assert_eq!(rejected[i]["field"], *field, "case {i}: {answer}");
        assert!(rejected[i]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
    let text = answer.to_string();
    for personal in [
        "SECRET-NUMBER-99",
        "erika-at-example",
        "call me maybe",
        "Germany",
    ] {
        assert!(!text.contains(personal), "{personal} echoed: {text}");
    }
    let kept = kept_updates(&app, &w.shipment).await;
    assert_eq!(kept.len(), 1, "only the good one");
}

#[actix_web::test]
async fn a_bad_envelope_or_caller_is_refused_and_nothing_is_kept() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let one = json!({ "shipment_id": w.shipment, "status": "in_transit", "occurred_at": "2026-03-01T09:00:00Z" });
    let too_many: Vec<Value> = (0..1001).map(|_| one.clone()).collect();
    for body in [
        json!({ "events": [] }),
        json!({ "events": too_many }),
        json!({ "events": "all of them" }),
        json!({}),
    ] {
        let r = app.post(EVENTS, &w.gateway, body).await;
        field_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "events",
        );
    }
    let r = app
        .post(EVENTS, &w.gateway, json!({ "events": [one], "extra": 1 }))
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "extra",
    );
    let r = app
        .post(EVENTS, &w.shipper, json!({ "events": [one] }))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let (_, partner) = app.partner("Nosy").await;
    let r = app.post(EVENTS, &partner, json!({ "events": [one] })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(kept_updates(&app, &w.shipment).await.is_empty());
}

#[actix_web::test]
async fn erasing_a_shipment_deletes_its_tracking_updates_in_the_same_commit() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let r = app
        .post(
            EVENTS,
            &w.gateway,
            json!({ "events": [full_update(&w.shipment)] }),
        )
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["accepted"], 1);
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let r = app
        .post(
            &format!("/v1/shipments/{}/erase", w.shipment),
            &dpo,
            json!({ "reason": "Art. 17 request" }),
        )
        .await;
    expect(&r, StatusCode::OK);
    assert!(
        kept_updates(&app, &w.shipment).await.is_empty(),
        "the erasure deleted the updates"
    );
    // And an update for it by number is now for an unknown parcel.
    let r = app
        .post(
            EVENTS,
            &w.gateway,
            json!({ "events": [{ "carrier": "DHL", "tracking_number": "JJD-TRACK-7",
                "status": "exception", "occurred_at": "2026-03-01T12:00:00Z" }] }),
        )
        .await;
    let answer = expect(&r, StatusCode::OK);
    assert_eq!(answer["accepted"], 0, "{answer}");
    assert_eq!(answer["rejected"][0]["field"], "tracking_number");
}

/// The decision event a pull recorded at `position`.
async fn recorded(app: &TestApp, position: u64) -> Value {
    let log = app.log().await;
    let event = log
        .iter()
        .find(|e| e.position.get() == position)
        .expect("the decision is in the log");
    serde_json::from_str(event.payload.as_str()).expect("payload")
}

#[actix_web::test]
async fn a_pull_is_decided_recorded_and_minimised_to_what_was_granted() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, stranger) = app.partner("Stranger").await;
    let r = app
        .post(
            "/v1/consents",
            &w.shipper,
            crate::helpers::consent_for(&partner_id, &w.shipment),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let r = app
        .post(EVENTS, &w.gateway, json!({ "events": [full_update(&w.shipment),
            { "shipment_id": w.shipment, "status": "out_for_delivery", "occurred_at": "2026-03-01T07:00:00Z" }] }))
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["accepted"], 2);

    // Granted status events and proof of delivery: asked for those, it gets them and nothing
    // of the location or the contact.
    let path = format!(
        "/v1/shipments/{}/tracking?purpose=insurance_claim&data_categories=status_events,proof_of_delivery",
        w.shipment
    );
    let r = app.get(&path, &partner).await;
    let pulled = expect(&r, StatusCode::OK).clone();
    assert_eq!(pulled["allowed"], true, "{pulled}");
    let updates = pulled["updates"].as_array().expect("updates");
    assert_eq!(updates.len(), 2, "{pulled}");
    assert_eq!(updates[0]["status"], "out_for_delivery", "oldest first");
    assert_eq!(updates[1]["status"], "delivered");
    assert_eq!(
        updates[1]["description"],
        "Handed to the neighbour at no. 12"
    );
    assert_eq!(updates[1]["proof_of_delivery"]["signed_by"], "R. Neighbour");
    let text = pulled.to_string();
    for never in [
        "Bonn",
        "53111",
        "erika@example.org",
        "228 123456",
        "location",
        "recipient_contact",
    ] {
        assert!(!text.contains(never), "{never} was not granted: {text}");
    }
    let event = recorded(&app, pulled["position"].as_u64().expect("position")).await;
    assert_eq!(event["TrackingAccessAllowed"]["channel"], "pull", "{event}");

    // Asking for a category it was not granted: denied, nothing sent, recorded too.
    let path = format!(
        "/v1/shipments/{}/tracking?purpose=insurance_claim&data_categories=location",
        w.shipment
    );
    let r = app.get(&path, &partner).await;
    let denied = expect(&r, StatusCode::OK).clone();
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied.get("updates").is_none(), "{denied}");
    let event = recorded(&app, denied["position"].as_u64().expect("position")).await;
    assert_eq!(event["TrackingAccessDenied"]["channel"], "pull", "{event}");

    // Without a consent: denied, told only `no_consent`.
    let by_number = "/v1/tracking?carrier=DHL&tracking_number=JJD-TRACK-7&purpose=insurance_claim&data_categories=status_events";
    let r = app.get(by_number, &stranger).await;
    let denied = expect(&r, StatusCode::OK);
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["reason"], "no_consent");
    assert!(denied.get("updates").is_none());
    // By number, for the partner with the consent.
    let r = app.get(by_number, &partner).await;
    let pulled = expect(&r, StatusCode::OK);
    assert_eq!(
        pulled["updates"].as_array().map(Vec::len),
        Some(2),
        "{pulled}"
    );
    assert!(
        pulled["updates"][1].get("proof_of_delivery").is_none(),
        "asked for status events only: {pulled}"
    );

    // The gateway pulls for a partner it names; bad queries name the parameter, record nothing.
    let path = format!(
        "/v1/shipments/{}/tracking?purpose=insurance_claim&data_categories=status_events&partner_id={partner_id}",
        w.shipment
    );
    let r = app.get(&path, &w.gateway).await;
    assert_eq!(expect(&r, StatusCode::OK)["allowed"], true);
    let size = app.log_size().await;
    for (query, field) in [
        ("data_categories=status_events", "purpose"),
        ("purpose=insurance_claim", "data_categories"),
        (
            "purpose=insurance_claim&data_categories=status_events,colour",
            "data_categories",
        ),
        ("purpose=gossip&data_categories=status_events", "purpose"),
        (
            "purpose=insurance_claim&data_categories=status_events&since=1",
            "since",
        ),
    ] {
        let r = app
            .get(
                &format!("/v1/shipments/{}/tracking?{query}", w.shipment),
                &partner,
            )
            .await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", field);
    }
    let r = app
        .get(
            "/v1/tracking?carrier=DHL&purpose=insurance_claim&data_categories=status_events",
            &partner,
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "tracking_number",
    );
    let r = app.get(&path, &w.shipper).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.log_size().await, size, "refusals record nothing");

    // The shipment's access history lists the pulls with their channel, beside a decision
    // the gateway served itself (no channel).
    let r = app
        .post(
            "/v1/decisions",
            &partner,
            json!({ "shipment_id": w.shipment, "purpose": "insurance_claim",
                "data_categories": ["status_events"] }),
        )
        .await;
    let plain = expect(&r, StatusCode::OK)["position"].clone();
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let r = app
        .get(
            &format!("/v1/audit/access?shipment_id={}", w.shipment),
            &dpo,
        )
        .await;
    let history = expect(&r, StatusCode::OK)["items"].clone();
    let items = history.as_array().expect("items");
    let pulls = items.iter().filter(|i| i["channel"] == "pull").count();
    assert_eq!(
        pulls, 5,
        "every pull of the shipment (allowed or denied): {history}"
    );
    let decision = items
        .iter()
        .find(|i| i["position"] == plain)
        .expect("the plain decision");
    assert!(decision.get("channel").is_none(), "{decision}");
}

#[actix_web::test]
async fn retention_deletes_the_updates_received_before_its_period() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let r = app
        .post(
            EVENTS,
            &w.gateway,
            json!({ "events": [full_update(&w.shipment)] }),
        )
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["accepted"], 1);
    // A period of 90 days keeps what came in now…
    let deleted = consent_ledger_app::tracking::sweep_retention(&app.state, 90)
        .await
        .expect("sweep");
    assert_eq!(deleted, 0);
    assert_eq!(kept_updates(&app, &w.shipment).await.len(), 1);
    // … and a period of none deletes everything received before this instant.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
    let deleted = consent_ledger_app::tracking::sweep_retention(&app.state, 0)
        .await
        .expect("sweep");
    assert_eq!(deleted, 1);
    assert!(kept_updates(&app, &w.shipment).await.is_empty());
}

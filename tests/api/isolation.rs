//! SPEC §2, existence does not leak: a partner cannot tell another tenant's parcel from no
//! parcel at all — not by a decision's answer, not in its access view, not by a consent
//! request's error — while the carrier's privacy officer and gateway see the true reason.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect, spawn_app, Reply};

const DECIDE: &str = "/v1/decisions";

/// The answer without what differs between any two decisions (id, position).
fn comparable(answer: &Value) -> Value {
    let mut a = answer.clone();
    if let Some(o) = a.as_object_mut() {
        o.remove("decision_id");
        o.remove("position");
    }
    a
}

/// An access record without what differs between any two decisions.
fn comparable_row(row: &Value) -> Value {
    let mut r = row.clone();
    if let Some(o) = r.as_object_mut() {
        for varying in ["decision_id", "position", "decided_at"] {
            o.remove(varying);
        }
    }
    r
}

fn items(r: &Reply) -> Vec<Value> {
    expect(r, StatusCode::OK)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_partner_cannot_tell_another_tenants_parcel_from_no_parcel() {
    let app = spawn_app().await;
    let (mine_id, _) = app.principal("shipper", "My shop").await;
    let (theirs_id, theirs) = app.principal("shipper", "Their shop").await;
    let (_, gateway) = app.principal("gateway", "Tracking API").await;
    let (_, auditor) = app.principal("privacy_officer", "DPO").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let foreign = app.shipment(&theirs, "DHL", "JJD0001", "DE").await;
    let nowhere = uuid::Uuid::now_v7().to_string();
    let ask = |shipment: Value| -> Value {
        let mut q = json!({"purpose": "insurance_claim", "data_categories": ["status_events"]});
        if let (Some(o), Some(s)) = (q.as_object_mut(), shipment.as_object()) {
            o.extend(s.clone());
        }
        q
    };
    let by_tracking = |t: &str| ask(json!({"carrier": "DHL", "tracking_number": t}));
    let by_id = |id: &str| ask(json!({ "shipment_id": id }));

    // The answers: the same for the other tenant's parcel and for none, by tracking number and
    // by id, one at a time and in a batch.
    let mut answers = Vec::new();
    for q in [
        by_tracking("JJD0001"),
        by_tracking("JJD9999"),
        by_id(&foreign),
        by_id(&nowhere),
    ] {
        let r = app.post(DECIDE, &partner, q).await;
        answers.push(comparable(expect(&r, StatusCode::OK)));
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "a partner could tell them apart: {answers:?}"
    );
    assert_eq!(answers[0]["reason"], "no_consent");
    let r = app
        .post(
            "/v1/decisions/batch",
            &partner,
            json!({"items": [by_tracking("JJD0001"), by_tracking("JJD9999")]}),
        )
        .await;
    let batch = expect(&r, StatusCode::OK)["results"].clone();
    assert_eq!(comparable(&batch[0]), comparable(&batch[1]), "{batch}");

    // The partner's own access view: the rows read the same, and name no parcel or shipper.
    let r = app.get("/v1/audit/access", &partner).await;
    let rows = items(&r);
    assert_eq!(rows.len(), 6, "{rows:?}");
    for row in &rows {
        assert_eq!(row["reason"], "no_consent", "{row}");
        for hidden in ["shipment_id", "shipper_id", "carrier", "tracking_number"] {
            assert!(
                row[hidden].is_null(),
                "{hidden} shown to the partner: {row}"
            );
        }
    }
    let first = comparable_row(&rows[0]);
    assert!(
        rows.iter().all(|row| comparable_row(row) == first),
        "{rows:?}"
    );
    // Asked about one parcel, its view finds nothing for either.
    for query in [
        "carrier=DHL&tracking_number=JJD0001".to_owned(),
        "carrier=DHL&tracking_number=JJD9999".to_owned(),
        format!("shipment_id={foreign}"),
        format!("shipment_id={nowhere}"),
    ] {
        let r = app
            .get(&format!("/v1/audit/access?{query}"), &partner)
            .await;
        assert_eq!(items(&r), Vec::<Value>::new(), "{query}");
    }
    let csv = app.get("/v1/audit/access?format=csv", &partner).await;
    let csv = csv.body.as_str().unwrap_or_default();
    assert!(csv.lines().count() == 7, "{csv}");
    assert!(
        !csv.contains(&foreign) && !csv.contains(&theirs_id),
        "{csv}"
    );

    // The privacy officer sees the truth of each record.
    let r = app
        .get(
            &format!("/v1/audit/access?partner_id={partner_id}"),
            &auditor,
        )
        .await;
    let truth: Vec<(Value, Value)> = items(&r)
        .iter()
        .map(|row| (row["reason"].clone(), row["shipper_id"].clone()))
        .collect();
    assert_eq!(
        truth[..4],
        [
            (json!("no_consent"), json!(theirs_id)),
            (json!("unknown_shipment"), Value::Null),
            (json!("no_consent"), json!(theirs_id)),
            (json!("unknown_shipment"), Value::Null),
        ]
    );
    // The gateway, the carrier's own system, is told the true reason.
    let mut q = by_tracking("JJD9999");
    q["partner_id"] = json!(partner_id);
    let r = app.post(DECIDE, &gateway, q).await;
    assert_eq!(expect(&r, StatusCode::OK)["reason"], "unknown_shipment");

    // Consent requests: one answer whether the id is no shipper, not a shipper, or the
    // shipment is another shipper's or none; nothing recorded.
    let size = app.log_size().await;
    let request = |shipper: &str, shipments: &[&str]| {
        json!({"shipper_id": shipper,
               "scope": {"type": "shipments", "shipment_ids": shipments},
               "purposes": ["insurance_claim"], "data_categories": ["status_events"],
               "legal_basis": "contract", "justification": "lost-parcel claims"})
    };
    let mut refusals = Vec::new();
    for body in [
        request(&mine_id, &[&foreign]),
        request(&mine_id, &[&nowhere]),
        request(&partner_id, &[&foreign]),
        request(&nowhere, &[&foreign]),
    ] {
        let r = app.post("/v1/consent-requests", &partner, body).await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
        refusals.push((r.field().to_owned(), r.body["detail"].clone()));
    }
    assert!(
        refusals.iter().all(|r| *r == refusals[0]),
        "request errors tell them apart: {refusals:?}"
    );
    assert_eq!(refusals[0].0, "shipper_id");
    assert_eq!(
        app.log_size().await,
        size,
        "refused requests recorded nothing"
    );
    // The real owner accepts the same request.
    let r = app
        .post(
            "/v1/consent-requests",
            &partner,
            request(&theirs_id, &[&foreign]),
        )
        .await;
    expect(&r, StatusCode::CREATED);
}

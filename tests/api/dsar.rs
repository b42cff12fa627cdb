//! Art. 15 asks for every recipient of a subject's data: a DSAR lists the whole history, page
//! after page of the GDPR tables, however long it is (it used to stop silently at a cap), and
//! the same when the GDPR projection is far behind the log and the log answers for the rest.

use actix_web::http::StatusCode;
use consent_ledger_app::state::ServiceConfig;
use serde_json::{json, Value};

use crate::helpers::{
    consent_for, expect, spawn_app, spawn_app_configured, spawn_app_with, TestApp,
};

#[actix_web::test]
async fn a_dsar_lists_every_access_past_a_page_of_the_gdpr_tables() {
    every_access_past_a_page(spawn_app().await, 10).await;
}

/// The same history read from the log, page after page, while the projection has applied none
/// of it (`audit_tail_after` 0: every lag is far behind): the subject's decisions held in
/// memory once for the DSAR's passes.
#[actix_web::test]
async fn a_dsar_far_behind_the_log_lists_every_access_past_a_page() {
    far_behind_every_access_past_a_page(10).await;
}

/// And past the 50,000 decisions a DSAR holds in memory (read 16,384 positions at a time: 70,003
/// decisions go past it with more to read): each pass reads the log itself.
#[actix_web::test]
async fn a_dsar_far_behind_the_log_lists_more_accesses_than_it_holds() {
    far_behind_every_access_past_a_page(70).await;
}

async fn far_behind_every_access_past_a_page(thousands: usize) {
    let app = spawn_app_with(ServiceConfig {
        audit_tail_after: 0,
        ..ServiceConfig::default()
    })
    .await;
    let applied = app.state.store.gdpr_position().await.expect("position");
    let app = every_access_past_a_page(app, thousands).await;
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        applied,
        "read from the log: the projection is where it was"
    );
}

/// `thousands` × 1,000 + 3 reads of one parcel, all listed by its DSAR in order, in JSON and CSV.
async fn every_access_past_a_page(app: TestApp, thousands: usize) -> TestApp {
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let r = app
        .post("/v1/consents", &shipper, consent_for(&insurer, &shipment))
        .await;
    expect(&r, StatusCode::CREATED);
    // 10,003 reads and more: more than one page (10,000 rows) of the GDPR tables.
    let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    let mut decided = 0usize;
    for batch in std::iter::repeat_n(1_000usize, thousands).chain([3]) {
        let items: Vec<Value> = (0..batch).map(|_| ask.clone()).collect();
        let r = app
            .post(
                "/v1/decisions/batch",
                &insurer_token,
                json!({ "items": items }),
            )
            .await;
        let results = expect(&r, StatusCode::OK)["results"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        assert_eq!(results, batch);
        decided += batch;
    }

    let r = app
        .get("/v1/audit/dsar?carrier=DHL&tracking_number=JJD1", &dpo)
        .await;
    // Streamed as it is read (SPEC §11: bounded memory): chunked, with no length up front.
    assert!(!r.headers.contains_key("content-length"), "{:?}", r.headers);
    assert_eq!(
        r.headers
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );
    let d = expect(&r, StatusCode::OK);
    let recipients = d["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 1, "{}", recipients.len());
    let accesses = recipients[0]["accesses"].as_array().expect("accesses");
    assert_eq!(accesses.len(), decided, "every access is listed");
    let positions: Vec<u64> = accesses
        .iter()
        .map(|a| a["position"].as_u64().expect("position"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in log order, none twice"
    );

    // The CSV form streams the same history: a header, then one row per access.
    let r = app
        .get(
            "/v1/audit/dsar?carrier=DHL&tracking_number=JJD1&format=csv",
            &dpo,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let csv = r.body.as_str().expect("CSV text");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("section,"), "{}", lines[0]);
    assert_eq!(lines.len(), decided + 1);
    assert!(lines[1..].iter().all(|l| l.starts_with("recipient,")));
    app
}

/// Registers a shipment of `shipper_id` with a recipient reference; returns its id.
async fn register(app: &TestApp, shipper_id: &str, tracking: &str, subject: &str) -> String {
    let body = json!({"carrier": "DHL", "tracking_number": tracking, "destination_country": "DE",
        "recipient_ref": subject, "shipper_id": shipper_id});
    expect(
        &app.post("/v1/shipments", &app.admin, body).await,
        StatusCode::CREATED,
    )["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Under a load the audit projection cannot keep up with, a DSAR caught it up first and waited
/// for the whole lag. Past `audit_tail_after` events (0 here) it answers from the projection's
/// rows and the log after them: the subject's shipments registered since, less those erased
/// since, and every access to them. Every DSAR — by reference and by parcel, registered and
/// unregistered, erased since, as auditors and as a shipper, JSON and CSV — must be what the
/// projection answers once it has caught up, before and after a restart.
#[actix_web::test]
async fn a_dsar_far_behind_the_log_answers_what_the_caught_up_projection_answers() {
    let config = || ServiceConfig {
        audit_tail_after: 0,
        ..ServiceConfig::default()
    };
    let app = spawn_app_with(config()).await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (_, other_shipper) = app.principal("shipper", "Other").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (lender, lender_token) = app.partner("Lender").await;
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let read = |shipment: &str| json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    let by_number = |tracking: &str| json!({"carrier": "DHL", "tracking_number": tracking, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    let decide = async |token: &str, body: Value| {
        expect(
            &app.post("/v1/decisions", token, body).await,
            StatusCode::OK,
        )["allowed"]
            .clone()
    };
    let grant = async |shipment: &str| {
        let r = app
            .post("/v1/consents", &shipper, consent_for(&insurer, shipment))
            .await;
        expect(&r, StatusCode::CREATED);
    };

    // What the projection applies.
    let a = register(&app, &shipper_id, "JJD1", "crm:1").await;
    let b = register(&app, &shipper_id, "JJD2", "crm:1").await;
    let e = register(&app, &shipper_id, "JJD7", "crm:2").await;
    for s in [&a, &b, &e] {
        grant(s).await;
    }
    assert_eq!(decide(&insurer_token, read(&a)).await, true);
    assert_eq!(decide(&lender_token, read(&a)).await, false);
    assert_eq!(decide(&insurer_token, read(&b)).await, true);
    assert_eq!(decide(&insurer_token, read(&e)).await, true);
    assert_eq!(decide(&insurer_token, by_number("JJD5")).await, false);
    let size = app.state.store.next_position().await.expect("size");
    app.state.gdpr.catch_up_to(size).await.expect("catch up");
    let applied = app.state.store.gdpr_position().await.expect("position");

    // What only the log holds: a parcel of the subject registered (under a number asked for
    // before), reads of it and of one projected, a denial by number, two erasures — whose
    // clean-up, which blanks the projection's rows at once, is held back until the DSARs below
    // have been asked once.
    let held = app.state.scrubbing.lock().await;
    let c = register(&app, &shipper_id, "JJD5", "crm:1").await;
    grant(&c).await;
    assert_eq!(decide(&insurer_token, read(&c)).await, true);
    assert_eq!(decide(&lender_token, read(&c)).await, false);
    assert_eq!(decide(&insurer_token, read(&a)).await, true);
    assert_eq!(decide(&lender_token, by_number("JJD9")).await, false);
    let r = app
        .post(
            &format!("/v1/shipments/{b}/erase"),
            &dpo,
            json!({"reason": "the recipient asked"}),
        )
        .await;
    expect(&r, StatusCode::OK);
    let r = app
        .post(
            "/v1/subjects/erase",
            &app.admin,
            json!({"recipient_ref": "crm:2", "reason": "Art. 17 by e-mail"}),
        )
        .await;
    expect(&r, StatusCode::OK);

    let mut asked: Vec<(&str, String)> = Vec::new();
    for subject in [
        "recipient_ref=crm:1",
        "recipient_ref=crm:2",
        "carrier=DHL&tracking_number=JJD1",
        "carrier=DHL&tracking_number=JJD2",
        "carrier=DHL&tracking_number=JJD5",
        "carrier=DHL&tracking_number=JJD9",
    ] {
        for format in ["json", "csv"] {
            asked.push((&dpo, format!("/v1/audit/dsar?{subject}&format={format}")));
        }
        asked.push((&regulator, format!("/v1/audit/dsar?{subject}")));
        asked.push((&shipper, format!("/v1/audit/dsar?{subject}")));
        asked.push((&other_shipper, format!("/v1/audit/dsar?{subject}")));
    }
    async fn answers(app: &TestApp, asked: &[(&str, String)]) -> Vec<Value> {
        let mut all = Vec::new();
        for (token, path) in asked {
            let r = app.get(path, token).await;
            all.push(json!({"path": path, "status": r.status.as_u16(), "body": r.body}));
        }
        all
    }
    let from_the_log = answers(&app, &asked).await;
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        applied,
        "the DSARs read the log and left the projection where it was"
    );
    // What the log answered: the subject's parcels but the one erased since, with the reads
    // of them on either side of the projection's position.
    let d = &from_the_log[0]["body"];
    let ids: Vec<&str> = d["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .filter_map(|s| s["shipment_id"].as_str())
        .collect();
    assert_eq!(ids, [a.as_str(), c.as_str()], "{d}");
    let recipients = d["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 1, "{d}");
    assert_eq!(recipients[0]["partner_id"], insurer.as_str());
    assert_eq!(
        recipients[0]["accesses"].as_array().map(Vec::len),
        Some(3),
        "{d}"
    );
    let denied = d["denied_attempts"].as_array().expect("denied");
    assert_eq!(denied.len(), 2, "{d}");
    assert!(
        denied.iter().all(|x| x["partner_id"] == lender.as_str()),
        "{d}"
    );
    let by_parcel = &from_the_log[4 * 5]["body"];
    assert_eq!(
        by_parcel["denied_attempts"].as_array().map(Vec::len),
        Some(2),
        "the denial by number before the parcel was registered, and the lender's: {by_parcel}"
    );
    // Once the clean-up has blanked the projection's erased rows, the same.
    drop(held);
    app.scrubbed().await;
    assert_eq!(
        answers(&app, &asked).await,
        from_the_log,
        "after the clean-up"
    );

    // A restart finds the projection where it was and answers the same from the log.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_configured(backing, clock, Some(admin), config()).await;
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        applied
    );
    assert_eq!(answers(&app, &asked).await, from_the_log, "after a restart");

    let size = app.state.store.next_position().await.expect("size");
    app.state.gdpr.catch_up_to(size).await.expect("catch up");
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        size
    );
    let caught_up = answers(&app, &asked).await;
    for (log, projection) in from_the_log.iter().zip(&caught_up) {
        assert_eq!(
            log, projection,
            "read from the log, then from the caught-up projection"
        );
    }
}

//! Art. 15 asks for every recipient of a subject's data: a DSAR lists the whole history, page
//! after page of the GDPR tables, however long it is (it used to stop silently at a cap).

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{consent_for, expect, spawn_app};

#[actix_web::test]
async fn a_dsar_lists_every_access_past_a_page_of_the_gdpr_tables() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let r = app
        .post("/v1/consents", &shipper, consent_for(&insurer, &shipment))
        .await;
    expect(&r, StatusCode::CREATED);
    // 10,003 reads: more than one page (10,000 rows) of the GDPR tables.
    let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    let mut decided = 0usize;
    for batch in [1_000usize; 10].into_iter().chain([3]) {
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
}

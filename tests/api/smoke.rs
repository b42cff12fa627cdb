use actix_web::http::StatusCode;

use crate::helpers::{assert_gapless, consent_for, spawn_app};

#[actix_web::test]
async fn a_shipper_grants_and_revokes_and_positions_are_gapless() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, _) = app.partner("Insure").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let grant = app
        .post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);
    let revoke = app
        .post(
            &format!("/v1/consents/{}/revoke", grant.id()),
            &shipper,
            serde_json::json!({"reason": "objection"}),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.body);
    assert_eq!(revoke.position(), grant.position() + 1);
    assert_gapless(&app.log().await);
}

#[actix_web::test]
async fn health_readiness_and_the_openapi_document_answer() {
    let app = spawn_app().await;
    let health = app.get_anonymous("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = app.get_anonymous("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["log_size"], app.log_size().await);

    let doc = app.get_anonymous("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/v1/principals",
        "/v1/shipments",
        "/v1/consents",
        "/v1/consents/{id}",
        "/v1/consents/{id}/revoke",
        "/v1/consent-requests",
        "/v1/consent-requests/{id}/approve",
        "/v1/consent-requests/{id}/deny",
        "/v1/consent-requests/{id}/withdraw",
        "/v1/decisions",
        "/v1/decisions/batch",
        "/v1/shipments/{id}/authorized-parties",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc.body["paths"][path].is_object(),
            "openapi.json lacks {path}"
        );
    }
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(
        doc.body["components"]["schemas"]["GrantConsent"]["properties"]["partner_id"].is_object()
    );
}

use actix_web::http::StatusCode;

use crate::helpers::{assert_gapless, consent_for, problem, spawn_app};

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
    // Readiness is anyone's to ask, so it says ready and nothing more: the log's size and the
    // model's counts are the admin's, on /metrics (security issue: counts leaked unauthenticated).
    let ready = app.get_anonymous("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body, serde_json::json!({ "status": "ready" }));

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

#[actix_web::test]
async fn metrics_count_decisions_and_group_commits() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let grant = app
        .post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);
    let ask = |purpose: &str| serde_json::json!({"shipment_id": shipment, "purpose": purpose, "data_categories": ["status_events"]});
    assert_eq!(
        app.post("/v1/decisions", &partner_token, ask("insurance_claim"))
            .await
            .body["allowed"],
        true
    );
    assert_eq!(
        app.post("/v1/decisions", &partner_token, ask("fraud_prevention"))
            .await
            .body["allowed"],
        false
    );

    // The counts are the operator's: no token 401, any role but admin 403.
    problem(
        &app.get_anonymous("/metrics").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for token in [&shipper, &partner_token] {
        problem(
            &app.get("/metrics", token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let metrics = app.get("/metrics", &app.admin).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    let value = |line: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(line)
                    .map(|v| v.trim().parse().unwrap_or(u64::MAX))
            })
            .unwrap_or_else(|| panic!("no `{line}` in\n{text}"))
    };
    assert_eq!(
        value("consent_ledger_decisions_total{outcome=\"allowed\"}"),
        1
    );
    assert_eq!(
        value("consent_ledger_decisions_total{outcome=\"denied\"}"),
        1
    );
    assert_eq!(
        value("consent_ledger_read_model_position"),
        app.log_size().await
    );
    assert_eq!(value("consent_ledger_consents{state=\"granted\"}"), 1);
    assert_eq!(value("consent_ledger_principals"), 3);
    assert_eq!(value("consent_ledger_consent_requests"), 0);
    let events = value("consent_ledger_group_commit_events_total");
    assert!(
        events >= 6,
        "every write of this test went through the group commit: {events}"
    );
    assert!(value("consent_ledger_group_commit_batches_total") >= 1);
    let log_size = app.log_size().await;
    assert_eq!(value("consent_ledger_log_size"), log_size);
    // The test app runs no follower and nothing here read the audit views: the projection
    // has applied none of this test's events yet.
    assert!(value("consent_ledger_audit_projection_position") < log_size);
    // Once the audit projection has caught up, it stands at the log's size.
    app.state.gdpr.catch_up().await.expect("catch up");
    let metrics = app.get("/metrics", &app.admin).await;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l == format!("consent_ledger_audit_projection_position {log_size}")),
        "{text}"
    );
}

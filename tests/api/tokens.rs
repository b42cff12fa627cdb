//! SPEC §2 token lifecycle: a token rotated or a principal suspended is refused at once, on
//! every node sharing the store, for every role; each change is an event; token digests live in
//! the credentials table beside the log and never in it.

use actix_web::http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{
    consent_for, expect, field_problem, problem, spawn_app, spawn_app_in, TestApp,
};

const ME: &str = "/v1/me";
const DECIDE: &str = "/v1/decisions";

fn rotate_path(id: &str) -> String {
    format!("/v1/principals/{id}/rotate-token")
}

async fn rotate(app: &TestApp, id: &str, by: &str) -> String {
    let r = app.post(&rotate_path(id), by, json!({})).await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body["id"], id, "{body}");
    body["token"].as_str().expect("a new token").to_owned()
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    app.get(ME, token).await.status
}

/// The event types the log recorded for principal `id`, in order.
async fn principal_events(app: &TestApp, id: &str) -> Vec<String> {
    app.log()
        .await
        .into_iter()
        .filter(|e| e.stream_type == "principal" && e.stream_id == id)
        .map(|e| e.event_type)
        .collect()
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// No token, and no digest of one, is anywhere in the log.
async fn assert_no_credential_in_log(app: &TestApp, tokens: &[&str]) {
    for e in app.log().await {
        let text = e.payload.as_str();
        for token in tokens {
            assert!(
                !text.contains(token) && !text.contains(&digest(token)),
                "a credential reached position {}: {text}",
                e.position
            );
        }
    }
}

#[actix_web::test]
async fn a_rotated_token_is_refused_at_once_and_the_new_one_works() {
    let app = spawn_app().await;
    let (gateway_id, gateway) = app.principal("gateway", "Tracking API").await;
    assert_eq!(me_status(&app, &gateway).await, StatusCode::OK);

    // An admin rotates anyone's token.
    let size = app.log_size().await;
    let second = rotate(&app, &gateway_id, &app.admin).await;
    assert_eq!(
        app.log_size().await,
        size + 1,
        "one event records the rotation"
    );
    let old = app.get(ME, &gateway).await;
    problem(&old, StatusCode::UNAUTHORIZED, "unauthorized");
    let me = app.get(ME, &second).await;
    assert_eq!(expect(&me, StatusCode::OK)["id"], gateway_id.as_str());

    // A principal rotates its own token; the one it used is refused from then on.
    let third = rotate(&app, &gateway_id, &second).await;
    assert_eq!(me_status(&app, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &third).await, StatusCode::OK);

    // Nobody else's: another principal's id is 404, as if it did not exist; nothing recorded.
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let size = app.log_size().await;
    let r = app
        .post(&rotate_path(&gateway_id), &shipper, json!({}))
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = app.post(&rotate_path(&shipper_id), &third, json!({})).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(me_status(&app, &shipper).await, StatusCode::OK);
    assert_eq!(me_status(&app, &third).await, StatusCode::OK);
    // No such principal, a malformed id, a body where none is taken, no token at all.
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = app
        .post(&rotate_path(&unknown), &app.admin, json!({}))
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = app.post(&rotate_path("nope"), &app.admin, json!({})).await;
    field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "id");
    let r = app
        .post(
            &rotate_path(&shipper_id),
            &app.admin,
            json!({"token": "mine"}),
        )
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.post(&rotate_path(&shipper_id), "", json!({})).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.log_size().await, size, "refused calls recorded nothing");

    // A retry with the same key rotates nothing more and cannot show the token again.
    let key = [("Idempotency-Key", "rotate-1")];
    let r = app
        .post_with(&rotate_path(&shipper_id), &app.admin, json!({}), &key)
        .await;
    let fourth = expect(&r, StatusCode::OK)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let size = app.log_size().await;
    let r = app
        .post_with(&rotate_path(&shipper_id), &app.admin, json!({}), &key)
        .await;
    problem(&r, StatusCode::CONFLICT, "token-shown-once");
    assert_eq!(app.log_size().await, size);
    assert_eq!(me_status(&app, &fourth).await, StatusCode::OK);
    assert_eq!(me_status(&app, &shipper).await, StatusCode::UNAUTHORIZED);

    assert_eq!(
        principal_events(&app, &gateway_id).await,
        [
            "PrincipalRegistered",
            "PrincipalTokenRotated",
            "PrincipalTokenRotated"
        ]
    );
    assert_no_credential_in_log(&app, &[&gateway, &second, &third, &shipper, &fourth]).await;

    // After a restart the credentials are where they were.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    for (token, status) in [
        (&gateway, StatusCode::UNAUTHORIZED),
        (&second, StatusCode::UNAUTHORIZED),
        (&third, StatusCode::OK),
        (&shipper, StatusCode::UNAUTHORIZED),
        (&fourth, StatusCode::OK),
    ] {
        assert_eq!(me_status(&app, token).await, status);
    }
}

#[actix_web::test]
async fn every_role_can_be_suspended_and_reactivated_and_its_token_answers_401_meanwhile() {
    let app = spawn_app().await;
    let mut principals: Vec<(String, String, String)> = Vec::new();
    for role in [
        "shipper",
        "gateway",
        "privacy_officer",
        "regulator",
        "admin",
    ] {
        let (id, token) = app.principal(role, &format!("A {role}")).await;
        principals.push((role.to_owned(), id, token));
    }
    let (id, token) = app.partner("Insure").await;
    principals.push(("partner".into(), id, token));

    for (role, id, token) in &principals {
        assert_eq!(me_status(&app, token).await, StatusCode::OK, "{role}");
        let r = app.suspend(id, "token leaked").await;
        expect(&r, StatusCode::OK);
        let r = app.get(ME, token).await;
        problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        // A suspended principal cannot rotate its way back in.
        let r = app.post(&rotate_path(id), token, json!({})).await;
        problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        let r = app
            .post(
                &format!("/v1/principals/{id}/reactivate"),
                &app.admin,
                json!({}),
            )
            .await;
        expect(&r, StatusCode::OK);
        assert_eq!(me_status(&app, token).await, StatusCode::OK, "{role}");
        assert_eq!(
            principal_events(&app, id).await,
            [
                "PrincipalRegistered",
                "PrincipalSuspended",
                "PrincipalReactivated"
            ],
            "{role}"
        );
    }
    // The directory shows a status for every principal it lists.
    let r = app.get("/v1/partners", &app.admin).await;
    assert!(expect(&r, StatusCode::OK)
        .as_array()
        .is_some_and(|list| list.iter().all(|p| p["status"] == "active")));

    // An admin cannot lock itself out; only an admin suspends; twice is a conflict.
    let me = app.get(ME, &app.admin).await;
    let admin_id = expect(&me, StatusCode::OK)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let size = app.log_size().await;
    let r = app.suspend(&admin_id, "oops").await;
    field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "id");
    let (_, shipper_id, shipper) = &principals[0];
    let r = app
        .post(
            &format!("/v1/principals/{admin_id}/suspend"),
            shipper,
            json!({"reason": "coup"}),
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = app
        .post(
            &format!("/v1/principals/{shipper_id}/reactivate"),
            &app.admin,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "invalid-state");
    assert_eq!(app.log_size().await, size, "refused calls recorded nothing");
}

/// SPEC §2 on every node: a rotation or suspension through node A is refused by node B at once,
/// though B's read model has not seen it — for reads, writes and decisions alike.
#[actix_web::test]
async fn a_rotation_or_suspension_on_one_node_is_refused_on_another_at_once() {
    let a = spawn_app().await;
    let b = a.second_node().await;
    let (gateway_id, gateway) = a.principal("gateway", "Tracking API").await;
    let (shipper_id, shipper) = a.principal("shipper", "Shop").await;
    let (partner_id, partner) = a.partner("Insure").await;
    let shipment = a.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let r = a
        .post(
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let ask = |partner: &str| -> Value {
        json!({"partner_id": partner, "shipment_id": shipment, "purpose": "insurance_claim",
               "data_categories": ["status_events"], "at_least_as_fresh": r.position()})
    };
    // B knows every token: each has been used on B.
    for token in [&gateway, &shipper, &partner] {
        assert_eq!(me_status(&b, token).await, StatusCode::OK);
    }
    let allowed = b.post(DECIDE, &gateway, ask(&partner_id)).await;
    assert_eq!(expect(&allowed, StatusCode::OK)["allowed"], true);

    // A rotation through A: B refuses the old token for a decision (the hot path, checked
    // under the §5.2 fence) and for a read, and records nothing for it.
    let new_gateway = rotate(&a, &gateway_id, &a.admin).await;
    let size = a.log_size().await;
    let r = b.post(DECIDE, &gateway, ask(&partner_id)).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        a.log_size().await,
        size,
        "a refused decision records nothing"
    );
    assert_eq!(me_status(&b, &gateway).await, StatusCode::UNAUTHORIZED);
    let allowed = b.post(DECIDE, &new_gateway, ask(&partner_id)).await;
    assert_eq!(expect(&allowed, StatusCode::OK)["allowed"], true);

    // A suspension through A: B refuses the shipper's token for a write and a read.
    let r = a.suspend(&shipper_id, "account closed").await;
    expect(&r, StatusCode::OK);
    let size = a.log_size().await;
    let r = b
        .post(
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(me_status(&b, &shipper).await, StatusCode::UNAUTHORIZED);
    // And the partner's own decisions, once it is suspended through A.
    let r = a.suspend(&partner_id, "DPA lapsed").await;
    expect(&r, StatusCode::OK);
    let size_after = a.log_size().await;
    assert_eq!(size_after, size + 1);
    let own = json!({"shipment_id": shipment, "purpose": "insurance_claim",
                     "data_categories": ["status_events"]});
    let r = b.post(DECIDE, &partner, own).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        a.log_size().await,
        size_after,
        "refused calls recorded nothing"
    );
}

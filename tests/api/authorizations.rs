//! SPEC §16 carrier authorizations of tracking intermediaries: the admin authorizes a partner
//! under a DPA of the register in force (a class of shipments by carrier, destination country
//! and shipper, purposes, categories, a legal basis other than consent, a period); its
//! decisions are allowed without any shipper's consent and name the authorization and the DPA
//! relied on, in the answer and in the record; a shipper sees the authorizations that can cover
//! its shipments, objects (effective at commit, on every node) and withdraws its objection; a
//! DPA that ended, a revocation and an expiry deny with their own reasons; a relayed read
//! reaches only a recipient on the DPA or with a grant of its own, and the DSAR lists the
//! chain; bad input names the field and records nothing; it outlives a restart.

use actix_web::http::StatusCode;
use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::{
    expect, field_problem, problem, rfc3339, spawn_app, spawn_app_in, start_time, TestApp,
};

const AUTHORIZATIONS: &str = "/v1/authorizations";
const DPAS: &str = "/v1/dpas";
const DECIDE: &str = "/v1/decisions";
const ALLOWED: &str = "TrackingAccessAllowed";
/// A public address written as a literal: registration checks it without name resolution.
const HOOK: &str = "https://93.184.215.14/hooks/authorizations";

/// A DPA of `partner` as a processor, signed before the test clock starts.
fn dpa(partner: &str, sub_processors: Value, valid_until: Option<String>) -> Value {
    let mut body = json!({
        "partner_id": partner,
        "reference": format!("DPA-REG-{partner}"),
        "role": "processor",
        "signed_at": "2026-01-15T00:00:00Z",
        "sub_processors": sub_processors,
        "transfer_mechanism": "scc",
    });
    if let Some(until) = valid_until {
        body["valid_until"] = json!(until);
    }
    body
}

/// Registers a DPA through the admin; returns its id.
async fn register_dpa(app: &TestApp, body: Value) -> String {
    let r = app.post(DPAS, &app.admin, body).await;
    expect(&r, StatusCode::CREATED);
    r.id()
}

/// An authorization of `partner` under `dpa` for DHL's shipments: supply-chain visibility of
/// status events, on legitimate interests.
fn authorization(partner: &str, dpa: &str) -> Value {
    json!({
        "partner_id": partner,
        "dpa_id": dpa,
        "scope": { "carriers": ["DHL"] },
        "purposes": ["supply_chain_visibility"],
        "data_categories": ["status_events"],
        "legal_basis": "legitimate_interests"
    })
}

/// Authorizes through the admin; returns the new authorization's id.
async fn authorize(app: &TestApp, body: Value) -> String {
    let r = app.post(AUTHORIZATIONS, &app.admin, body).await;
    let created = expect(&r, StatusCode::CREATED);
    assert!(created["position"].as_u64().is_some(), "{created}");
    r.id()
}

/// A question about `shipment` for supply-chain visibility, asking for more categories than
/// the authorizations grant (the answer is minimised to status events).
fn ask(shipment: &str) -> Value {
    json!({
        "shipment_id": shipment,
        "purpose": "supply_chain_visibility",
        "data_categories": ["status_events", "location"]
    })
}

/// [`ask`] for a read relayed to `recipient`.
fn relayed(shipment: &str, recipient: &str) -> Value {
    let mut body = ask(shipment);
    body["on_behalf_of"] = json!(recipient);
    body
}

async fn decide(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post(DECIDE, token, body).await;
    expect(&r, StatusCode::OK).clone()
}

/// Asserts an allow through `authorization` alone, relying on `dpa`, minimised.
fn assert_authorized(answer: &Value, authorization: &str, dpa: &str) {
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(
        answer["authorization_ids"],
        json!([authorization]),
        "{answer}"
    );
    assert_eq!(answer["consent_ids"], json!([]), "{answer}");
    assert_eq!(answer["dpa_id"], dpa, "{answer}");
    assert_eq!(
        answer["data_categories"],
        json!(["status_events"]),
        "{answer}"
    );
}

fn assert_denied(answer: &Value, reason: &str) {
    assert_eq!(answer["allowed"], false, "{answer}");
    assert_eq!(answer["reason"], reason, "{answer}");
    assert_eq!(answer["authorization_ids"], json!([]), "{answer}");
    assert_eq!(answer["data_categories"], json!([]), "{answer}");
    assert!(answer.get("dpa_id").is_none(), "{answer}");
}

/// The ids of a list answer's items, in order.
fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|i| i["id"].as_str().expect("an id").to_owned())
        .collect()
}

async fn listed(app: &TestApp, path: &str, token: &str) -> Vec<String> {
    ids(expect(&app.get(path, token).await, StatusCode::OK))
}

fn objection(id: &str) -> String {
    format!("{AUTHORIZATIONS}/{id}/objection")
}

/// `DELETE /v1/authorizations/{id}/objection`.
async fn withdraw(app: &TestApp, id: &str, token: &str) -> crate::helpers::Reply {
    app.request_with("DELETE", &objection(id), Some(token), None)
        .await
}

#[actix_web::test]
async fn an_authorized_intermediary_reads_a_parcel_without_the_shippers_consent() {
    let app = spawn_app().await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (other_id, other) = app.partner("Insure").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let subs = json!([{ "name": "Carrier Desk", "country": "DE" }]);
    let dpa_id = register_dpa(&app, dpa(&relay_id, subs, None)).await;
    let id = authorize(&app, authorization(&relay_id, &dpa_id)).await;
    let dhl = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let ups = app.shipment(&shipper, "UPS", "1Z1", "FR").await;

    // The shipper granted nothing: the authorization alone allows, minimised to its categories.
    let answer = decide(&app, &relay, ask(&dhl)).await;
    assert_authorized(&answer, &id, &dpa_id);
    // The record names the authorization and the DPA relied on.
    let log = app.log().await;
    let event = log.last().expect("the decision's event");
    assert_eq!(
        event.position.get(),
        answer["position"].as_u64().expect("position")
    );
    assert_eq!(event.event_type, ALLOWED);
    let payload = event.payload.to_value().expect("payload is JSON")[ALLOWED].clone();
    assert_eq!(payload["authorizations"], json!([id]), "{payload}");
    assert_eq!(payload["dpa"], dpa_id.as_str(), "{payload}");
    assert_eq!(payload["consents"], json!([]), "{payload}");
    assert_eq!(payload["granted"], json!(["status_events"]), "{payload}");

    // The gateway asking for the intermediary gets the same answer.
    let mut q = ask(&dhl);
    q["partner_id"] = json!(relay_id);
    assert_authorized(&decide(&app, &gateway, q).await, &id, &dpa_id);
    // Outside its class of shipments (another carrier): as if nothing covered it.
    assert_denied(&decide(&app, &relay, ask(&ups)).await, "no_consent");
    // Another partner holds nothing through it.
    assert_denied(&decide(&app, &other, ask(&dhl)).await, "no_consent");
    let mut q = ask(&dhl);
    q["partner_id"] = json!(other_id);
    assert_denied(&decide(&app, &gateway, q).await, "no_consent");

    // The intermediary reads its own authorization.
    let one = expect(
        &app.get(&format!("{AUTHORIZATIONS}/{id}"), &relay).await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["status"], "active", "{one}");
    assert_eq!(one["dpa_id"], dpa_id.as_str());
    assert_eq!(one["partner_id"], relay_id.as_str());
    assert_eq!(one["legal_basis"], "legitimate_interests");
    assert_eq!(one["scope"]["carriers"], json!(["DHL"]));
    assert_eq!(listed(&app, AUTHORIZATIONS, &relay).await, vec![id.clone()]);
    assert!(listed(&app, AUTHORIZATIONS, &other).await.is_empty());

    // A restart keeps it: the next decision is still allowed through it.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    assert_authorized(&decide(&app, &relay, ask(&dhl)).await, &id, &dpa_id);
    let one = expect(
        &app.get(&format!("{AUTHORIZATIONS}/{id}"), &app.admin).await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["status"], "active", "{one}");
}

#[actix_web::test]
async fn the_shipper_sees_the_authorization_objects_and_the_next_decision_is_denied() {
    let app = spawn_app().await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (wide_id, _) = app.partner("Wide Relay").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let (a_id, shop_a) = app.principal("shipper", "Shop A").await;
    let (_, shop_b) = app.principal("shipper", "Shop B").await;
    let (c_id, shop_c) = app.principal("shipper", "Shop C").await;
    // The intermediary's endpoint, subscribed to its authorizations' messages.
    let r = app
        .post(
            "/v1/webhook-endpoints",
            &relay,
            json!({ "url": HOOK, "event_types":
                ["authorization.granted", "authorization.revoked", "authorization.objected"] }),
        )
        .await;
    expect(&r, StatusCode::CREATED);
    let endpoint = r.id();

    let dpa_id = register_dpa(&app, dpa(&relay_id, json!([]), None)).await;
    let mut body = authorization(&relay_id, &dpa_id);
    body["scope"]["shipper_ids"] = json!([a_id, c_id]);
    let id = authorize(&app, body).await;
    // Another intermediary's authorization names no shipper: it can cover anyone's parcels.
    let wide_dpa = register_dpa(&app, dpa(&wide_id, json!([]), None)).await;
    let wide = authorize(&app, authorization(&wide_id, &wide_dpa)).await;
    let parcel_a = app.shipment(&shop_a, "DHL", "JJD-A1", "DE").await;
    let parcel_c = app.shipment(&shop_c, "DHL", "JJD-C1", "DE").await;

    let queued = app.state.store.outbox_of(&endpoint).await.expect("outbox");
    assert_eq!(
        queued.len(),
        1,
        "one authorization.granted, for its partner only"
    );
    assert_eq!(queued[0].event_type, "authorization.granted");
    let data: Value = serde_json::from_str(&queued[0].data).expect("data");
    assert_eq!(data["authorization_id"], id.as_str(), "{data}");
    assert_eq!(data["dpa_id"], dpa_id.as_str(), "{data}");

    // Transparency: a shipper sees every authorization that can cover its shipments; one whose
    // shippers it is not among is missing to it.
    let seen_by_a = listed(&app, AUTHORIZATIONS, &shop_a).await;
    assert!(
        seen_by_a.contains(&id) && seen_by_a.contains(&wide),
        "{seen_by_a:?}"
    );
    assert_eq!(
        listed(&app, AUTHORIZATIONS, &shop_b).await,
        vec![wide.clone()]
    );
    let path = format!("{AUTHORIZATIONS}/{id}");
    problem(
        &app.get(&path, &shop_b).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.post(&objection(&id), &shop_b, json!({"reason": "not mine"}))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get(AUTHORIZATIONS, &gateway).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_authorized(&decide(&app, &relay, ask(&parcel_a)).await, &id, &dpa_id);

    // Only a shipper objects: the intermediary and the admin, who see it, are refused.
    for token in [&relay, &app.admin] {
        problem(
            &app.post(&objection(&id), token, json!({"reason": "x"}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }

    // Shipper A objects (Art. 21): the very next decision on its parcel is denied; shipper C's
    // parcel is still covered.
    let reason = "We never agreed to share our parcels with Relay";
    let r = app
        .post(&objection(&id), &shop_a, json!({ "reason": reason }))
        .await;
    let objected_at = expect(&r, StatusCode::OK)["position"]
        .as_u64()
        .expect("position");
    let denied = decide(&app, &relay, ask(&parcel_a)).await;
    assert_denied(&denied, "shipper_objected");
    assert!(denied["position"].as_u64().expect("position") > objected_at);
    assert_authorized(&decide(&app, &relay, ask(&parcel_c)).await, &id, &dpa_id);

    // The partner sees that shipper A objected, never its words; shipper A sees its own, with
    // its words; shipper C none but its own (none).
    let partners = expect(&app.get(&path, &relay).await, StatusCode::OK).clone();
    assert_eq!(
        partners["objections"].as_array().map(Vec::len),
        Some(1),
        "{partners}"
    );
    assert_eq!(partners["objections"][0]["shipper_id"], a_id.as_str());
    assert!(!partners.to_string().contains(reason), "{partners}");
    let own = expect(&app.get(&path, &shop_a).await, StatusCode::OK).clone();
    assert_eq!(own["objections"][0]["reason"], reason, "{own}");
    let c_view = expect(&app.get(&path, &shop_c).await, StatusCode::OK).clone();
    assert_eq!(c_view["objections"], json!([]), "{c_view}");
    let all = expect(&app.get(&path, &officer).await, StatusCode::OK).clone();
    assert_eq!(all["objections"].as_array().map(Vec::len), Some(1), "{all}");
    // The partner is told, without the shipper's words.
    let queued = app.state.store.outbox_of(&endpoint).await.expect("outbox");
    let told: Vec<_> = queued
        .iter()
        .filter(|m| m.event_type == "authorization.objected")
        .collect();
    assert_eq!(told.len(), 1, "{queued:?}");
    assert_eq!(
        told[0].position.get(),
        objected_at,
        "queued in the objection's commit"
    );
    assert!(!told[0].data.contains(reason), "{}", told[0].data);
    let data: Value = serde_json::from_str(&told[0].data).expect("data");
    assert_eq!(data["shipper_id"], a_id.as_str(), "{data}");

    // Once only.
    problem(
        &app.post(&objection(&id), &shop_a, json!({ "reason": "again" }))
            .await,
        StatusCode::CONFLICT,
        "already-objected",
    );

    // Withdrawn: covered again; a second withdrawal has nothing to withdraw.
    let r = withdraw(&app, &id, &shop_a).await;
    assert!(expect(&r, StatusCode::OK)["position"].as_u64().is_some());
    assert_authorized(&decide(&app, &relay, ask(&parcel_a)).await, &id, &dpa_id);
    problem(
        &withdraw(&app, &id, &shop_a).await,
        StatusCode::CONFLICT,
        "no-objection",
    );
    problem(
        &withdraw(&app, &id, &shop_b).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let own = expect(&app.get(&path, &shop_a).await, StatusCode::OK).clone();
    assert!(own["objections"][0]["withdrawn_at"].is_string(), "{own}");
}

#[actix_web::test]
async fn an_expired_or_terminated_dpa_denies_dpa_missing() {
    let app = spawn_app().await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (second_id, second) = app.partner("Relay Two").await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let parcel = app.shipment(&shipper, "DHL", "JJD1", "DE").await;

    // Relay's agreement ends three days after the clock starts.
    let until = rfc3339(start_time() + Duration::days(3));
    let ending = register_dpa(&app, dpa(&relay_id, json!([]), Some(until))).await;
    let id = authorize(&app, authorization(&relay_id, &ending)).await;
    assert_authorized(&decide(&app, &relay, ask(&parcel)).await, &id, &ending);

    // Relay Two's agreement is terminated: denied from the termination's commit on.
    let terminated = register_dpa(&app, dpa(&second_id, json!([]), None)).await;
    let second_auth = authorize(&app, authorization(&second_id, &terminated)).await;
    assert_authorized(
        &decide(&app, &second, ask(&parcel)).await,
        &second_auth,
        &terminated,
    );
    let r = app
        .post(
            &format!("{DPAS}/{terminated}/terminate"),
            &app.admin,
            json!({"reason": "contract ended"}),
        )
        .await;
    expect(&r, StatusCode::OK);
    assert_denied(&decide(&app, &second, ask(&parcel)).await, "dpa_missing");
    // Nothing new rests on it.
    let size = app.log_size().await;
    field_problem(
        &app.post(
            AUTHORIZATIONS,
            &app.admin,
            authorization(&second_id, &terminated),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "dpa_id",
    );
    assert_eq!(app.log_size().await, size, "nothing recorded");

    // Past its valid_until, Relay's agreement is in force no more.
    assert_authorized(&decide(&app, &relay, ask(&parcel)).await, &id, &ending);
    app.clock.advance(Duration::days(4));
    assert_denied(&decide(&app, &relay, ask(&parcel)).await, "dpa_missing");
    let size = app.log_size().await;
    field_problem(
        &app.post(
            AUTHORIZATIONS,
            &app.admin,
            authorization(&relay_id, &ending),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "dpa_id",
    );
    assert_eq!(app.log_size().await, size, "nothing recorded");
}

#[actix_web::test]
async fn revocation_and_expiry_of_an_authorization() {
    let app = spawn_app().await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (second_id, second) = app.partner("Relay Two").await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let parcel = app.shipment(&shipper, "DHL", "JJD1", "DE").await;

    // Revoked (only by the admin): denied from the revocation's commit on, once only.
    let dpa_id = register_dpa(&app, dpa(&relay_id, json!([]), None)).await;
    let revoked = authorize(&app, authorization(&relay_id, &dpa_id)).await;
    assert_authorized(&decide(&app, &relay, ask(&parcel)).await, &revoked, &dpa_id);
    let revoke = format!("{AUTHORIZATIONS}/{revoked}/revoke");
    for token in [&relay, &shipper] {
        problem(
            &app.post(&revoke, token, json!({})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let r = app
        .post(&revoke, &app.admin, json!({"reason": "contract ended"}))
        .await;
    let revoked_at = expect(&r, StatusCode::OK)["position"]
        .as_u64()
        .expect("position");
    let denied = decide(&app, &relay, ask(&parcel)).await;
    assert_denied(&denied, "authorization_revoked");
    assert!(denied["position"].as_u64().expect("position") > revoked_at);
    problem(
        &app.post(&revoke, &app.admin, json!({})).await,
        StatusCode::CONFLICT,
        "already-revoked",
    );
    problem(
        &app.post(&objection(&revoked), &shipper, json!({"reason": "late"}))
            .await,
        StatusCode::CONFLICT,
        "already-revoked",
    );
    let one = expect(
        &app.get(&format!("{AUTHORIZATIONS}/{revoked}"), &relay)
            .await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["status"], "revoked", "{one}");
    assert_eq!(one["revocation_reason"], "contract ended", "{one}");
    assert!(one["revoked_at"].is_string(), "{one}");

    // Valid for two days: expired by time, without any event.
    let second_dpa = register_dpa(&app, dpa(&second_id, json!([]), None)).await;
    let mut body = authorization(&second_id, &second_dpa);
    body["valid_until"] = json!(rfc3339(start_time() + Duration::days(2)));
    let expiring = authorize(&app, body).await;
    assert_authorized(
        &decide(&app, &second, ask(&parcel)).await,
        &expiring,
        &second_dpa,
    );
    let by_status = |s: &str| format!("{AUTHORIZATIONS}?status={s}");
    assert_eq!(
        listed(&app, &by_status("active"), &app.admin).await,
        vec![expiring.clone()]
    );
    app.clock.advance(Duration::days(3));
    assert_denied(
        &decide(&app, &second, ask(&parcel)).await,
        "authorization_expired",
    );
    let one = expect(
        &app.get(&format!("{AUTHORIZATIONS}/{expiring}"), &second)
            .await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["status"], "expired", "{one}");
    assert_eq!(
        listed(&app, &by_status("expired"), &app.admin).await,
        vec![expiring.clone()]
    );
    assert_eq!(
        listed(&app, &by_status("revoked"), &app.admin).await,
        vec![revoked.clone()]
    );
    assert!(listed(&app, &by_status("active"), &app.admin)
        .await
        .is_empty());
    field_problem(
        &app.get(&by_status("lapsed"), &app.admin).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "status",
    );
    // Not yet valid: listed so; it covers nothing yet.
    let mut body = authorization(&relay_id, &dpa_id);
    body["valid_from"] = json!(rfc3339(start_time() + Duration::days(30)));
    let later = authorize(&app, body).await;
    assert_eq!(
        listed(&app, &by_status("not_yet_valid"), &app.admin).await,
        vec![later]
    );
    assert_denied(
        &decide(&app, &relay, ask(&parcel)).await,
        "authorization_revoked",
    );
}

#[actix_web::test]
async fn a_relayed_read_reaches_only_a_recipient_on_the_dpa_or_with_its_own_grant() {
    let app = spawn_app().await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (desk_id, _) = app.partner("Carrier Desk").await;
    let (shop_app_id, _) = app.partner("Shop App").await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let subs = json!([{ "name": "Carrier Desk", "country": "DE", "partner_id": desk_id }]);
    let dpa_id = register_dpa(&app, dpa(&relay_id, subs, None)).await;
    let id = authorize(&app, authorization(&relay_id, &dpa_id)).await;
    let parcel = app.shipment(&shipper, "DHL", "JJD1", "DE").await;

    // For itself, and for a sub-processor its DPA names: allowed.
    assert_authorized(&decide(&app, &relay, ask(&parcel)).await, &id, &dpa_id);
    let answer = decide(&app, &relay, relayed(&parcel, &desk_id)).await;
    assert_authorized(&answer, &id, &dpa_id);
    let log = app.log().await;
    let event = log.last().expect("the decision's event");
    let payload = event.payload.to_value().expect("payload is JSON")[ALLOWED].clone();
    assert_eq!(payload["on_behalf_of"], desk_id.as_str(), "{payload}");
    // For a partner neither on the DPA nor holding a grant of its own: denied.
    assert_denied(
        &decide(&app, &relay, relayed(&parcel, &shop_app_id)).await,
        "dpa_missing",
    );
    // For something that is no partner: the field is named, nothing recorded.
    let size = app.log_size().await;
    field_problem(
        &app.post(DECIDE, &relay, relayed(&parcel, &shipper_id))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "on_behalf_of",
    );
    assert_eq!(app.log_size().await, size, "nothing recorded");

    // The shipper grants Shop App the same read of its own: the relayed read is allowed.
    let grant = json!({
        "partner_id": shop_app_id,
        "scope": { "type": "shipments", "shipment_ids": [parcel] },
        "purposes": ["supply_chain_visibility"],
        "data_categories": ["status_events"],
        "legal_basis": "consent"
    });
    expect(
        &app.post("/v1/consents", &shipper, grant).await,
        StatusCode::CREATED,
    );
    assert_authorized(
        &decide(&app, &relay, relayed(&parcel, &shop_app_id)).await,
        &id,
        &dpa_id,
    );
    // A suspended recipient is read for no more.
    expect(&app.suspend(&shop_app_id, "audit").await, StatusCode::OK);
    assert_denied(
        &decide(&app, &relay, relayed(&parcel, &shop_app_id)).await,
        "partner_suspended",
    );

    // The shipper's Art. 15 answer: the intermediary is the recipient, and each relayed access
    // names whom it read for — the chain intermediary → recipient.
    let r = app
        .get("/v1/audit/dsar?carrier=DHL&tracking_number=JJD1", &shipper)
        .await;
    let dsar = expect(&r, StatusCode::OK).clone();
    let recipients = dsar["recipients"].as_array().expect("recipients");
    let intermediary = recipients
        .iter()
        .find(|p| p["partner_id"] == relay_id.as_str())
        .unwrap_or_else(|| panic!("Relay is a recipient: {dsar}"));
    let accesses = intermediary["accesses"].as_array().expect("accesses");
    let behalf: Vec<&Value> = accesses.iter().map(|a| &a["on_behalf_of"]).collect();
    assert_eq!(
        behalf,
        vec![&Value::Null, &json!(desk_id), &json!(shop_app_id)],
        "{dsar}"
    );
    for a in accesses {
        assert_eq!(a["authorization_ids"], json!([id]), "{a}");
        assert_eq!(a["dpa_id"], dpa_id.as_str(), "{a}");
        assert_eq!(a["legal_bases"], json!(["legitimate_interests"]), "{a}");
        let chain: Vec<(&Value, &Value)> = a["chain"]
            .as_array()
            .unwrap_or_else(|| panic!("no chain in {a}"))
            .iter()
            .map(|link| (&link["partner_id"], &link["role"]))
            .collect();
        match a["on_behalf_of"].as_str() {
            None => assert!(chain.is_empty(), "{a}"),
            Some(recipient) => assert_eq!(
                chain,
                vec![
                    (&json!(relay_id), &json!("intermediary")),
                    (&json!(recipient), &json!("recipient"))
                ],
                "{a}"
            ),
        }
    }
    // The refused relays are recorded with whom they were for.
    let refused: Vec<(&Value, &Value)> = dsar["denied_attempts"]
        .as_array()
        .expect("denied attempts")
        .iter()
        .filter(|d| d["partner_id"] == relay_id.as_str())
        .map(|d| (&d["on_behalf_of"], &d["reason"]))
        .collect();
    assert_eq!(
        refused,
        vec![
            (&json!(shop_app_id), &json!("dpa_missing")),
            (&json!(shop_app_id), &json!("partner_suspended"))
        ],
        "{dsar}"
    );
}

/// SPEC §5.2 for objections: once the objection through node A has returned, node B denies
/// at once, even if its read model had not heard of it yet (the fence refuses B's allow at
/// commit). Two nodes on one database: SQLite here, PostgreSQL again in CI.
#[actix_web::test]
async fn an_objection_is_effective_at_commit_on_a_second_node() {
    let a = spawn_app().await;
    let b = a.second_node().await;
    let (relay_id, relay) = a.partner("Relay").await;
    let (_, shipper) = a.principal("shipper", "Shop").await;
    let dpa_id = register_dpa(&a, dpa(&relay_id, json!([]), None)).await;
    let id = authorize(&a, authorization(&relay_id, &dpa_id)).await;
    let parcel = a.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let written = a.log_size().await - 1;

    // Node B's model holds the authorization: allowed there.
    let mut q = ask(&parcel);
    q["at_least_as_fresh"] = json!(written);
    assert_authorized(&decide(&b, &relay, q).await, &id, &dpa_id);

    let r = a
        .post(&objection(&id), &shipper, json!({"reason": "no"}))
        .await;
    let objected_at = expect(&r, StatusCode::OK)["position"]
        .as_u64()
        .expect("position");

    // No at_least_as_fresh, no waiting: the fence alone guarantees the deny.
    let denied = decide(&b, &relay, ask(&parcel)).await;
    assert_denied(&denied, "shipper_objected");
    assert!(denied["position"].as_u64().expect("position") > objected_at);
    for event in b.log().await {
        if event.event_type == ALLOWED {
            assert!(
                event.position.get() < objected_at,
                "allow at {}",
                event.position
            );
        }
    }
}

#[actix_web::test]
async fn bad_authorization_input_names_the_field_and_records_nothing() {
    let app = spawn_app().await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (other_id, _) = app.partner("Insure").await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let dpa_id = register_dpa(&app, dpa(&relay_id, json!([]), None)).await;
    let others = register_dpa(&app, dpa(&other_id, json!([]), None)).await;
    let terminated = register_dpa(&app, dpa(&relay_id, json!([]), None)).await;
    let r = app
        .post(
            &format!("{DPAS}/{terminated}/terminate"),
            &app.admin,
            json!({}),
        )
        .await;
    expect(&r, StatusCode::OK);
    let until = rfc3339(start_time() + Duration::days(1));
    let ended = register_dpa(&app, dpa(&relay_id, json!([]), Some(until))).await;
    let id = authorize(&app, authorization(&relay_id, &dpa_id)).await;
    app.clock.advance(Duration::days(2));

    let with = |field: &str, value: Value| {
        let mut body = authorization(&relay_id, &dpa_id);
        body[field] = value;
        body
    };
    let missing = "01a24104-1d59-706b-bad1-e26333ab5ca9";
    let later = rfc3339(start_time() + Duration::days(10));
    let size = app.log_size().await;
    for (body, field) in [
        (with("partner_id", json!(shipper_id)), "partner_id"),
        (with("partner_id", json!(missing)), "partner_id"),
        (with("partner_id", json!("Relay")), "partner_id"),
        (with("dpa_id", json!(missing)), "dpa_id"),
        (with("dpa_id", json!(others)), "dpa_id"),
        (with("dpa_id", json!(terminated)), "dpa_id"),
        (with("dpa_id", json!(ended)), "dpa_id"),
        (
            with("scope", json!({ "shipper_ids": [shipper_id, relay_id] })),
            "scope.shipper_ids[1]",
        ),
        (
            with("scope", json!({ "carriers": ["DHL"], "planets": ["Mars"] })),
            "scope.planets",
        ),
        (with("legal_basis", json!("consent")), "legal_basis"),
        (with("legal_basis", json!("whim")), "legal_basis"),
        (with("purposes", json!([])), "purposes"),
        (with("purposes", json!(["world_domination"])), "purposes[0]"),
        (
            with("data_categories", json!(["status_events", "dna"])),
            "data_categories[1]",
        ),
        (
            {
                let mut body = with("valid_from", json!(later));
                body["valid_until"] = json!(later);
                body
            },
            "valid_until",
        ),
        // valid_from defaults to now, which is past this.
        (
            with("valid_until", json!(rfc3339(start_time()))),
            "valid_until",
        ),
        (with("valid_from", json!("tomorrow")), "valid_from"),
        (with("surprise", json!(1)), "surprise"),
    ] {
        let r = app.post(AUTHORIZATIONS, &app.admin, body).await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", field);
    }
    problem(
        &app.post_raw(AUTHORIZATIONS, Some(&app.admin), b"{\"partner_id\":", &[])
            .await,
        StatusCode::BAD_REQUEST,
        "malformed-json",
    );
    // Forbidden before the body is read.
    problem(
        &app.post(AUTHORIZATIONS, &relay, authorization(&relay_id, &dpa_id))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // The other routes: an unknown id is 404, a malformed one names `id`, a bad body its field.
    for path in [
        format!("{AUTHORIZATIONS}/{missing}/revoke"),
        objection(missing),
    ] {
        let token = if path.ends_with("revoke") {
            &app.admin
        } else {
            &shipper
        };
        problem(
            &app.post(&path, token, json!({"reason": "x"})).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
    }
    problem(
        &withdraw(&app, missing, &shipper).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get(&format!("{AUTHORIZATIONS}/{missing}"), &app.admin)
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    field_problem(
        &app.get(&format!("{AUTHORIZATIONS}/not-a-uuid"), &app.admin)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "id",
    );
    field_problem(
        &app.get(&format!("{AUTHORIZATIONS}?partner_id=Relay"), &app.admin)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "partner_id",
    );
    let revoke = format!("{AUTHORIZATIONS}/{id}/revoke");
    field_problem(
        &app.post(&revoke, &app.admin, json!({"why": "x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "why",
    );
    for body in [json!({}), json!({"reason": ""})] {
        field_problem(
            &app.post(&objection(&id), &shipper, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "reason",
        );
    }
    assert_eq!(app.log_size().await, size, "nothing recorded");
}

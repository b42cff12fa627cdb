//! SPEC §16 DPA register: the admin registers a partner's data processing agreement (role,
//! validity, sub-processors, transfer mechanism, the signed document's SHA-256) and terminates
//! it; a partner reads its own, privacy officers and regulators all; the partner's `dpa_ref`
//! links to it; the RoPA lists it; bad input names the field and records nothing; it outlives a
//! restart.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect, field_problem, problem, spawn_app, spawn_app_in};

const DPAS: &str = "/v1/dpas";

fn dpa(partner: &str, reference: &str) -> Value {
    json!({
        "partner_id": partner,
        "reference": reference,
        "role": "processor",
        "signed_at": "2026-01-15T00:00:00Z",
        "valid_until": "2027-01-15T00:00:00Z",
        "sub_processors": [
            { "name": "Relay Logistics GmbH", "country": "DE" },
            { "name": "Parcel Data Inc.", "country": "US" }
        ],
        "transfer_mechanism": "scc",
        "document_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    })
}

#[actix_web::test]
async fn the_admin_registers_and_terminates_partners_read_their_own_and_officers_all() {
    let app = spawn_app().await;
    let (insurer_id, insurer) = app.partner("Insurer").await;
    let (relay_id, relay) = app.partner("Relay").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let (_, regulator) = app.principal("regulator", "Authority").await;
    let (_, shipper) = app.principal("shipper", "Shop").await;

    // The helper registers partners with dpa_ref "DPA-<name>": the register's entry of that
    // reference becomes the partner's link.
    let r = app
        .post(DPAS, &app.admin, dpa(&insurer_id, "DPA-Insurer"))
        .await;
    let created = expect(&r, StatusCode::CREATED).clone();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(created["position"].as_u64().is_some(), "{created}");
    let other = app
        .post(DPAS, &app.admin, dpa(&relay_id, "DPA-Relay"))
        .await
        .id();

    let one = expect(
        &app.get(&format!("{DPAS}/{id}"), &insurer).await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["role"], "processor");
    assert_eq!(one["status"], "active");
    assert_eq!(one["transfer_mechanism"], "scc");
    assert_eq!(one["sub_processors"][1]["country"], "US");
    assert_eq!(one["valid_until"], "2027-01-15T00:00:00Z");
    // A partner reads its own only; the other's is missing to it.
    problem(
        &app.get(&format!("{DPAS}/{other}"), &insurer).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let mine = expect(&app.get(DPAS, &insurer).await, StatusCode::OK).clone();
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");
    for token in [&officer, &regulator, &app.admin] {
        let all = expect(&app.get(DPAS, token).await, StatusCode::OK).clone();
        assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
    }
    let path = format!("{DPAS}?partner_id={relay_id}");
    let relays = expect(&app.get(&path, &officer).await, StatusCode::OK).clone();
    assert_eq!(relays["items"][0]["id"], other.as_str());
    problem(
        &app.get(DPAS, &shipper).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    problem(
        &app.post(DPAS, &officer, dpa(&insurer_id, "X")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // The partner's dpa_ref links to its entry, in force.
    let me = expect(&app.get("/v1/me", &insurer).await, StatusCode::OK).clone();
    assert_eq!(me["dpa"]["id"], id.as_str(), "{me}");
    assert_eq!(me["dpa"]["href"], format!("/v1/dpas/{id}"));
    assert_eq!(me["dpa"]["in_force"], true);

    // The RoPA lists it with its role, sub-processors and transfer mechanism.
    let path = "/v1/audit/ropa?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z";
    let ropa = expect(&app.get(path, &officer).await, StatusCode::OK).clone();
    let entry = ropa["partners"]
        .as_array()
        .and_then(|p| p.iter().find(|e| e["partner_id"] == insurer_id.as_str()))
        .expect("the insurer's entry")
        .clone();
    assert_eq!(entry["dpas"][0]["role"], "processor", "{entry}");
    assert_eq!(
        entry["dpas"][0]["sub_processors"][0]["name"],
        "Relay Logistics GmbH"
    );
    let csv = app.get(&format!("{path}&format=csv"), &officer).await;
    let text = csv.body.as_str().expect("CSV").to_owned();
    assert!(text
        .lines()
        .next()
        .is_some_and(|h| h.contains("dpa_sub_processors")));
    assert!(text.contains("DPA-Insurer:processor"), "{text}");
    assert!(text.contains("Parcel Data Inc. (US)"), "{text}");

    // Terminated: once, then 409; the link says it is no longer in force.
    let terminate = format!("{DPAS}/{id}/terminate");
    problem(
        &app.post(&terminate, &insurer, json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = app
        .post(&terminate, &app.admin, json!({"reason": "contract ended"}))
        .await;
    expect(&r, StatusCode::OK);
    problem(
        &app.post(&terminate, &app.admin, json!({})).await,
        StatusCode::CONFLICT,
        "already-terminated",
    );
    let one = expect(
        &app.get(&format!("{DPAS}/{id}"), &officer).await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["status"], "terminated");
    assert_eq!(one["termination_reason"], "contract ended");
    let me = expect(&app.get("/v1/me", &insurer).await, StatusCode::OK).clone();
    assert_eq!(me["dpa"]["in_force"], false, "{me}");
    let _ = relay;

    // A restart keeps the register.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    let one = expect(
        &app.get(&format!("{DPAS}/{id}"), &officer).await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(one["status"], "terminated");
    assert_eq!(one["sub_processors"].as_array().map(Vec::len), Some(2));
}

#[actix_web::test]
async fn bad_input_names_the_field_and_records_nothing() {
    let app = spawn_app().await;
    let (partner_id, _) = app.partner("Insurer").await;
    let (shipper_id, _) = app.principal("shipper", "Shop").await;
    let with = |field: &str, value: Value| {
        let mut body = dpa(&partner_id, "DPA-Insurer");
        body[field] = value;
        body
    };
    let size = app.log_size().await;
    for (body, field) in [
        (with("partner_id", json!(shipper_id)), "partner_id"),
        (with("role", json!("owner")), "role"),
        (with("signed_at", json!("yesterday")), "signed_at"),
        (
            with("valid_until", json!("2025-01-01T00:00:00Z")),
            "valid_until",
        ),
        (
            with("transfer_mechanism", json!("handshake")),
            "transfer_mechanism",
        ),
        (with("document_sha256", json!("ABC")), "document_sha256"),
        (with("reference", json!("")), "reference"),
        (
            with(
                "sub_processors",
                json!([{ "name": "X", "country": "Atlantis" }]),
            ),
            "sub_processors[0].country",
        ),
        (
            with(
                "sub_processors",
                json!([{ "name": "X", "country": "DE", "partner_id": shipper_id }]),
            ),
            "sub_processors[0].partner_id",
        ),
        (with("surprise", json!(1)), "surprise"),
    ] {
        let r = app.post(DPAS, &app.admin, body).await;
        assert!(
            r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::BAD_REQUEST,
            "{field}: {} {}",
            r.status,
            r.body
        );
        assert_eq!(r.field(), field, "{}", r.body);
    }
    let missing = format!("{DPAS}/01a24104-1d59-706b-bad1-e26333ab5ca9/terminate");
    problem(
        &app.post(&missing, &app.admin, json!({})).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    field_problem(
        &app.get(&format!("{DPAS}/not-a-uuid"), &app.admin).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "id",
    );
    assert_eq!(app.log_size().await, size, "nothing recorded");
}

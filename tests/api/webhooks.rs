//! SPEC §13 webhook endpoint management: a partner registers, lists, reads, disables, enables
//! and rotates the key of its own endpoints, an admin of any partner's; every other role is
//! refused; URLs are `https` to public addresses only; the secret `whsk_` key never reaches an
//! answer nor the log; every refusal records nothing and every change exactly one event;
//! endpoints outlive a restart.

use actix_web::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{
    expect, field_problem, problem, sorted, spawn_app, spawn_app_in, strings, Reply, TestApp,
};

const ENDPOINTS: &str = "/v1/webhook-endpoints";
/// A public IPv4 literal: accepted without any name resolution (no DNS on test machines).
const HOOK: &str = "https://93.184.215.14/hooks/consent";
/// Another public literal, IPv6.
const HOOK_V6: &str = "https://[2606:4700::1111]/hooks/consent";
const INVALID: &str = "invalid-field";
/// Every event type of SPEC §13: the default subscription.
const EVENT_TYPES: [&str; 12] = [
    "consent.granted",
    "consent.revoked",
    "consent.expiring",
    "consent.expired",
    "consent_request.approved",
    "consent_request.denied",
    "consent_request.expired",
    "tracking.updated",
    "authorization.granted",
    "authorization.revoked",
    "authorization.objected",
    "webhook.test",
];
/// The prefix of a secret key: never in an answer nor in the log.
const SECRET_PREFIX: &str = "whsk_";

fn endpoint(id: &str) -> String {
    format!("{ENDPOINTS}/{id}")
}

fn action(id: &str, verb: &str) -> String {
    format!("{ENDPOINTS}/{id}/{verb}")
}

/// The `whpk_` key of an endpoint answer, checked: base64 of 32 bytes (an Ed25519 public key).
fn public_key(body: &Value, field: &str) -> String {
    let key = body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"));
    let encoded = key
        .strip_prefix("whpk_")
        .unwrap_or_else(|| panic!("{field} is not a whpk_ key: {body}"));
    let bytes = B64
        .decode(encoded)
        .unwrap_or_else(|e| panic!("{field} is not base64 ({e}): {body}"));
    assert_eq!(bytes.len(), 32, "{field} is not 32 bytes: {body}");
    key.to_owned()
}

/// Checks the fields every endpoint answer carries, and returns its id.
fn assert_endpoint(body: &Value, partner_id: &str, url: &str, status: &str) -> String {
    let id = body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"));
    let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("bad id {id}: {e}"));
    assert_eq!(parsed.get_version_num(), 7, "endpoint ids are UUIDv7: {id}");
    assert_eq!(body["partner_id"], partner_id, "{body}");
    assert_eq!(body["url"], url, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["event_types"].is_array(), "{body}");
    public_key(body, "public_key");
    id.to_owned()
}

/// The answer without `position` (what the item of a list or a GET shows).
fn without_position(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("position");
    }
    b
}

/// The endpoint a 200 answer shows, compared less its `position` (whether a GET carries one is
/// checked on its own, in [`a_partner_sees_only_its_own_endpoints_and_an_admin_sees_every_one`]).
fn shown(r: &Reply) -> Value {
    without_position(expect(r, StatusCode::OK))
}

fn items(r: &Reply) -> Vec<Value> {
    expect(r, StatusCode::OK)["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", r.body))
        .clone()
}

/// The ids of a list answer, sorted (a list is compared as a set).
fn item_ids(r: &Reply) -> Vec<String> {
    let mut ids: Vec<String> = items(r)
        .iter()
        .map(|i| {
            i["id"]
                .as_str()
                .unwrap_or_else(|| panic!("item without id: {i}"))
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn ids(list: &[&str]) -> Vec<String> {
    sorted(list)
}

/// Registers `body` with `token`, expecting 201 and exactly one event at the answer's position.
async fn register(app: &TestApp, token: &str, body: Value) -> Value {
    let size = app.log_size().await;
    let r = app.post(ENDPOINTS, token, body).await;
    let created = expect(&r, StatusCode::CREATED).clone();
    assert_eq!(
        app.log_size().await,
        size + 1,
        "a registration is one event"
    );
    assert_eq!(
        r.position(),
        size,
        "position is the registration's: {created}"
    );
    assert_no_secret(&r);
    created
}

/// A partner's own endpoint at the public literal [`HOOK`].
async fn own_endpoint(app: &TestApp, token: &str) -> (String, Value) {
    let created = register(app, token, json!({ "url": HOOK })).await;
    (created["id"].as_str().expect("id").to_owned(), created)
}

/// No `whsk_` in an answer: its body and its headers.
fn assert_no_secret(r: &Reply) {
    let body = match &r.body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert!(
        !body.contains(SECRET_PREFIX),
        "a secret key in an answer: {body}"
    );
    for (name, value) in &r.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains(SECRET_PREFIX),
            "a secret key in header {name}: {value}"
        );
    }
}

/// No `whsk_` in any event of the log.
async fn assert_no_secret_in_log(app: &TestApp) {
    for e in app.log().await {
        let text = e.payload.as_str();
        assert!(
            !text.contains(SECRET_PREFIX),
            "a secret key reached position {}: {text}",
            e.position
        );
    }
}

#[actix_web::test]
async fn a_partner_registers_an_endpoint_for_itself_subscribed_to_every_type_by_default() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;

    let created = register(&app, &partner, json!({ "url": HOOK })).await;
    let id = assert_endpoint(&created, &partner_id, HOOK, "enabled");
    assert_eq!(
        strings(&created["event_types"]),
        sorted(&EVENT_TYPES),
        "every type by default: {created}"
    );
    assert!(
        created["description"].is_null(),
        "no description was given: {created}"
    );

    // Chosen types and a description are kept as given; each endpoint has its own key pair.
    let chosen = ["consent.granted", "consent.revoked", "webhook.test"];
    let second = register(
        &app,
        &partner,
        json!({ "url": HOOK_V6, "event_types": chosen, "description": "claims system" }),
    )
    .await;
    let second_id = assert_endpoint(&second, &partner_id, HOOK_V6, "enabled");
    assert_eq!(strings(&second["event_types"]), sorted(&chosen), "{second}");
    assert_eq!(second["description"], "claims system", "{second}");
    assert_ne!(second_id, id);
    assert_ne!(
        public_key(&second, "public_key"),
        public_key(&created, "public_key"),
        "each endpoint has a key pair of its own"
    );

    // Each is read back as it was answered, less the position.
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&created));
    let r = app.get(&endpoint(&second_id), &partner).await;
    assert_eq!(shown(&r), without_position(&second));
    let r = app.get(ENDPOINTS, &partner).await;
    let mut listed: Vec<Value> = items(&r).iter().map(without_position).collect();
    listed.sort_by_key(|i| i["id"].as_str().unwrap_or_default().to_owned());
    let mut expected = vec![without_position(&created), without_position(&second)];
    expected.sort_by_key(|i| i["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(listed, expected);
    assert_no_secret_in_log(&app).await;
}

#[actix_web::test]
async fn an_admin_registers_for_a_partner_it_names_and_only_an_admin_names_one() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (shipper_id, _) = app.principal("shipper", "Shop").await;

    let created = register(
        &app,
        &app.admin,
        json!({ "partner_id": partner_id, "url": HOOK, "description": "set up by ops" }),
    )
    .await;
    let id = assert_endpoint(&created, &partner_id, HOOK, "enabled");
    assert_eq!(strings(&created["event_types"]), sorted(&EVENT_TYPES));
    // The partner sees it as its own.
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&created));
    assert_eq!(item_ids(&app.get(ENDPOINTS, &partner).await), ids(&[&id]));

    let size = app.log_size().await;
    // An admin must name the partner.
    let r = app
        .post(ENDPOINTS, &app.admin, json!({ "url": HOOK }))
        .await;
    field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "partner_id");
    // A partner never names one, not even itself.
    for named in [&partner_id, &shipper_id] {
        let r = app
            .post(
                ENDPOINTS,
                &partner,
                json!({ "partner_id": named, "url": HOOK }),
            )
            .await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "partner_id");
    }
    // The partner an admin names must be a partner: not a shipper, not an unknown id, not a
    // malformed one.
    let unknown = uuid::Uuid::now_v7().to_string();
    for named in [shipper_id.as_str(), unknown.as_str(), "not-a-uuid"] {
        let r = app
            .post(
                ENDPOINTS,
                &app.admin,
                json!({ "partner_id": named, "url": HOOK }),
            )
            .await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "partner_id");
    }
    assert_eq!(app.log_size().await, size, "refused calls recorded nothing");
    assert_eq!(item_ids(&app.get(ENDPOINTS, &partner).await), ids(&[&id]));
    assert_eq!(item_ids(&app.get(ENDPOINTS, &app.admin).await), ids(&[&id]));
}

#[actix_web::test]
async fn every_other_role_is_refused_and_an_anonymous_caller_too() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (id, created) = own_endpoint(&app, &partner).await;

    let size = app.log_size().await;
    for role in ["shipper", "gateway", "privacy_officer", "regulator"] {
        let (_, token) = app.principal(role, &format!("A {role}")).await;
        let size = app.log_size().await;
        let r = app.post(ENDPOINTS, &token, json!({ "url": HOOK })).await;
        problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let r = app
            .post(
                ENDPOINTS,
                &token,
                json!({ "partner_id": partner_id, "url": HOOK }),
            )
            .await;
        problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let r = app.get(ENDPOINTS, &token).await;
        problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let r = app.get(&endpoint(&id), &token).await;
        problem(&r, StatusCode::FORBIDDEN, "forbidden");
        for verb in ["disable", "enable", "rotate-key"] {
            let r = app.post(&action(&id, verb), &token, json!({})).await;
            problem(&r, StatusCode::FORBIDDEN, "forbidden");
        }
        assert_eq!(
            app.log_size().await,
            size,
            "{role}: refusals record nothing"
        );
    }
    let size_roles = app.log_size().await;
    assert_eq!(
        size_roles,
        size + 4,
        "only the four principals were recorded"
    );

    // No token at all.
    let r = app
        .post_raw(
            ENDPOINTS,
            None,
            json!({ "url": HOOK }).to_string().as_bytes(),
            &[],
        )
        .await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = app.get_anonymous(ENDPOINTS).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = app.get_anonymous(&endpoint(&id)).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = app
        .post_raw(&action(&id, "rotate-key"), None, b"{}", &[])
        .await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.log_size().await, size_roles);

    // The endpoint is as it was registered: the only endpoint, enabled, with its first key.
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&created));
    assert_eq!(item_ids(&app.get(ENDPOINTS, &app.admin).await), ids(&[&id]));
}

#[actix_web::test]
async fn a_url_must_be_https_to_a_public_address_without_credentials() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;
    let refused = [
        // Not https (the insecure-loopback switch is off).
        "http://93.184.215.14/hooks/consent",
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "ftp://93.184.215.14/hooks",
        // Loopback, private, link-local, multicast and other special-purpose literals.
        "https://127.0.0.1/",
        "https://127.0.0.1:8443/hook",
        "https://[::1]/",
        "https://10.0.0.1/h",
        "https://172.16.5.4/h",
        "https://192.168.1.1/h",
        "https://169.254.169.254/",
        "https://[fe80::1]/h",
        "https://[fd12:3456::1]/h",
        "https://224.0.0.1/h",
        "https://[ff02::1]/h",
        "https://0.0.0.0/h",
        "https://[::ffff:127.0.0.1]/h",
        "https://[::ffff:169.254.169.254]/h",
        "https://2130706433/h",
        // A name that resolves to loopback.
        "https://localhost/hook",
        "https://localhost:8443/hook",
        // Credentials in the URL.
        "https://user:secret@93.184.215.14/hooks/consent",
        "https://user@93.184.215.14/hooks/consent",
        // Not a URL.
        "not a url",
        "/hooks/consent",
        "",
    ];
    let size = app.log_size().await;
    for url in refused {
        let r = app.post(ENDPOINTS, &partner, json!({ "url": url })).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url:?} must be refused: {}",
            r.body
        );
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "url");
        assert_no_secret(&r);
    }
    // The same rules when an admin registers for a partner.
    for url in [
        "http://93.184.215.14/hooks/consent",
        "https://10.0.0.1/h",
        "https://localhost/hook",
    ] {
        let r = app
            .post(
                ENDPOINTS,
                &app.admin,
                json!({ "partner_id": partner_id, "url": url }),
            )
            .await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "url");
    }
    // No URL at all, or not a string.
    for body in [
        json!({}),
        json!({ "url": null }),
        json!({ "url": 443 }),
        json!({ "event_types": ["consent.granted"] }),
    ] {
        let r = app.post(ENDPOINTS, &partner, body.clone()).await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "url");
    }
    assert_eq!(app.log_size().await, size, "refused URLs recorded nothing");
    assert!(items(&app.get(ENDPOINTS, &partner).await).is_empty());
    assert!(items(&app.get(ENDPOINTS, &app.admin).await).is_empty());

    // Public literals, IPv4 and IPv6, with a port, are accepted.
    for url in [HOOK, HOOK_V6, "https://8.8.8.8:8443/in"] {
        let created = register(&app, &partner, json!({ "url": url })).await;
        assert_endpoint(&created, &partner_id, url, "enabled");
    }
}

#[actix_web::test]
async fn an_unknown_event_type_or_field_is_named_and_nothing_is_recorded() {
    let app = spawn_app().await;
    let (_, partner) = app.partner("Insure").await;
    let size = app.log_size().await;
    let cases = [
        (json!(["consent.nope"]), "event_types[0]"),
        (json!(["consent.granted", "consent.nope"]), "event_types[1]"),
        (
            json!(["consent.granted", "consent.revoked", "Consent.Expired"]),
            "event_types[2]",
        ),
        (json!(["consent.granted", "*"]), "event_types[1]"),
    ];
    for (types, field) in cases {
        let r = app
            .post(
                ENDPOINTS,
                &partner,
                json!({ "url": HOOK, "event_types": types }),
            )
            .await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, field);
    }
    let r = app
        .post(
            ENDPOINTS,
            &partner,
            json!({ "url": HOOK, "event_types": "consent.granted" }),
        )
        .await;
    field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "event_types");
    // Unknown fields (SPEC §10), among them a key or a status a caller might try to set.
    for unknown in ["secret", "public_key", "status", "colour"] {
        let mut body = json!({ "url": HOOK });
        body[unknown] = json!("x");
        let r = app.post(ENDPOINTS, &partner, body).await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, unknown);
    }
    assert_eq!(app.log_size().await, size, "refusals recorded nothing");
    assert!(items(&app.get(ENDPOINTS, &partner).await).is_empty());

    // Every type of the spec is accepted by name.
    let created = register(
        &app,
        &partner,
        json!({ "url": HOOK, "event_types": EVENT_TYPES }),
    )
    .await;
    assert_eq!(strings(&created["event_types"]), sorted(&EVENT_TYPES));

    // A type that is not a string is valid JSON with a wrong value (SPEC §10): named too.
    let size = app.log_size().await;
    let r = app
        .post(
            ENDPOINTS,
            &partner,
            json!({ "url": HOOK, "event_types": ["consent.granted", 7] }),
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        INVALID,
        "event_types[1]",
    );
    assert_eq!(app.log_size().await, size);
}

#[actix_web::test]
async fn a_partner_sees_only_its_own_endpoints_and_an_admin_sees_every_one() {
    let app = spawn_app().await;
    let (a_id, a) = app.partner("Insure").await;
    let (b_id, b) = app.partner("Returns").await;
    let (a1, a1_body) = own_endpoint(&app, &a).await;
    let a2 = register(
        &app,
        &app.admin,
        json!({ "partner_id": a_id, "url": HOOK_V6 }),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (b1, b1_body) = own_endpoint(&app, &b).await;
    assert_eq!(b1_body["partner_id"], b_id.as_str());

    assert_eq!(item_ids(&app.get(ENDPOINTS, &a).await), ids(&[&a1, &a2]));
    assert_eq!(item_ids(&app.get(ENDPOINTS, &b).await), ids(&[&b1]));
    assert_eq!(
        item_ids(&app.get(ENDPOINTS, &app.admin).await),
        ids(&[&a1, &a2, &b1])
    );
    assert_eq!(
        item_ids(
            &app.get(&format!("{ENDPOINTS}?partner_id={a_id}"), &app.admin)
                .await
        ),
        ids(&[&a1, &a2])
    );
    assert_eq!(
        item_ids(
            &app.get(&format!("{ENDPOINTS}?partner_id={b_id}"), &app.admin)
                .await
        ),
        ids(&[&b1])
    );
    // A list item is the registration's answer less its position, for the owner and an admin.
    for token in [&a, &app.admin] {
        let listed = items(&app.get(ENDPOINTS, token).await);
        let item = listed
            .iter()
            .find(|i| i["id"] == a1.as_str())
            .unwrap_or_else(|| panic!("{a1} not listed"));
        assert_eq!(without_position(item), without_position(&a1_body));
    }
    let r = app.get(&endpoint(&b1), &app.admin).await;
    assert_eq!(shown(&r), without_position(&b1_body));

    // Another partner's endpoint answers as a missing one does; a malformed id is named.
    let size = app.log_size().await;
    let missing = uuid::Uuid::now_v7().to_string();
    for (token, id) in [(&a, &b1), (&b, &a1), (&b, &a2), (&a, &missing)] {
        let r = app.get(&endpoint(id), token).await;
        problem(&r, StatusCode::NOT_FOUND, "not-found");
        for verb in ["disable", "enable", "rotate-key"] {
            let r = app.post(&action(id, verb), token, json!({})).await;
            problem(&r, StatusCode::NOT_FOUND, "not-found");
        }
    }
    let r = app.get(&endpoint(&missing), &app.admin).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    for verb in ["disable", "enable", "rotate-key"] {
        let r = app
            .post(&action(&missing, verb), &app.admin, json!({}))
            .await;
        problem(&r, StatusCode::NOT_FOUND, "not-found");
    }
    for token in [&a, &app.admin] {
        let r = app.get(&endpoint("not-an-id"), token).await;
        field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "id");
        for verb in ["disable", "enable", "rotate-key"] {
            let r = app.post(&action("not-an-id", verb), token, json!({})).await;
            field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "id");
        }
    }
    assert_eq!(app.log_size().await, size, "refusals recorded nothing");
    // Nothing the other partner tried changed B's endpoint.
    let r = app.get(&endpoint(&b1), &b).await;
    assert_eq!(shown(&r), without_position(&b1_body));

    // A list item and a GET carry the position of the endpoint's latest event, as every
    // view does (here its registration: nothing changed it).
    for (token, id, body) in [
        (&a, &a1, &a1_body),
        (&app.admin, &a1, &a1_body),
        (&b, &b1, &b1_body),
    ] {
        let r = app.get(&endpoint(id), token).await;
        let shown = expect(&r, StatusCode::OK);
        assert_eq!(shown["position"], body["position"], "GET {id}: {shown}");
        for item in items(&app.get(ENDPOINTS, token).await) {
            assert!(item["position"].is_u64(), "list item: {item}");
        }
    }
}

#[actix_web::test]
async fn disabling_and_enabling_change_the_status_once_each() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, other) = app.partner("Returns").await;
    let (id, created) = own_endpoint(&app, &partner).await;
    let key = public_key(&created, "public_key");

    // The owner disables it, saying why: one event; the endpoint shows it.
    let size = app.log_size().await;
    let r = app
        .post(
            &action(&id, "disable"),
            &partner,
            json!({ "reason": "maintenance window" }),
        )
        .await;
    let disabled = expect(&r, StatusCode::OK).clone();
    assert_no_secret(&r);
    assert_endpoint(&disabled, &partner_id, HOOK, "disabled");
    assert_eq!(disabled["id"], id.as_str());
    assert_eq!(disabled["disabled_reason"], "maintenance window");
    assert_eq!(public_key(&disabled, "public_key"), key);
    assert_eq!(app.log_size().await, size + 1, "a disable is one event");
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&disabled));
    let listed = items(&app.get(ENDPOINTS, &partner).await);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "disabled");

    // Twice is a conflict; another partner cannot tell it exists; nothing recorded.
    let r = app.post(&action(&id, "disable"), &partner, json!({})).await;
    problem(&r, StatusCode::CONFLICT, "already-disabled");
    let r = app
        .post(
            &action(&id, "disable"),
            &app.admin,
            json!({ "reason": "again" }),
        )
        .await;
    problem(&r, StatusCode::CONFLICT, "already-disabled");
    let r = app.post(&action(&id, "enable"), &other, json!({})).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    // An unknown field in the body is named.
    let r = app
        .post(&action(&id, "enable"), &partner, json!({ "force": true }))
        .await;
    field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "force");
    assert_eq!(app.log_size().await, size + 1, "refusals recorded nothing");
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "disabled");

    // The owner enables it again: one event.
    let r = app.post(&action(&id, "enable"), &partner, json!({})).await;
    let enabled = expect(&r, StatusCode::OK).clone();
    assert_endpoint(&enabled, &partner_id, HOOK, "enabled");
    assert_eq!(enabled["id"], id.as_str());
    assert_eq!(public_key(&enabled, "public_key"), key);
    assert_eq!(app.log_size().await, size + 2, "an enable is one event");
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&enabled));
    let r = app.post(&action(&id, "enable"), &partner, json!({})).await;
    problem(&r, StatusCode::CONFLICT, "already-enabled");
    let r = app
        .post(&action(&id, "enable"), &app.admin, json!({}))
        .await;
    problem(&r, StatusCode::CONFLICT, "already-enabled");
    let r = app.post(&action(&id, "disable"), &other, json!({})).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(app.log_size().await, size + 2, "refusals recorded nothing");

    // An admin disables (without a reason) and enables any partner's endpoint.
    let r = app
        .post(&action(&id, "disable"), &app.admin, json!({}))
        .await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body["status"], "disabled", "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(app.log_size().await, size + 3);
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "disabled");
    let r = app
        .post(&action(&id, "enable"), &app.admin, json!({}))
        .await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "enabled");
    assert_eq!(app.log_size().await, size + 4);
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "enabled");
    assert_no_secret_in_log(&app).await;
}

#[actix_web::test]
async fn rotating_the_key_answers_a_new_public_key_and_keeps_the_old_one_as_previous() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, other) = app.partner("Returns").await;
    let (id, created) = own_endpoint(&app, &partner).await;
    let first = public_key(&created, "public_key");

    let size = app.log_size().await;
    let r = app
        .post(&action(&id, "rotate-key"), &partner, json!({}))
        .await;
    let rotated = expect(&r, StatusCode::OK).clone();
    assert_no_secret(&r);
    assert_endpoint(&rotated, &partner_id, HOOK, "enabled");
    assert_eq!(rotated["id"], id.as_str());
    let second = public_key(&rotated, "public_key");
    assert_ne!(second, first, "a rotation makes a new key pair");
    assert_eq!(public_key(&rotated, "previous_public_key"), first);
    assert_eq!(app.log_size().await, size + 1, "a rotation is one event");
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&rotated));
    let listed: Vec<Value> = items(&app.get(ENDPOINTS, &partner).await)
        .iter()
        .map(without_position)
        .collect();
    assert_eq!(listed, vec![without_position(&rotated)]);

    // Another partner cannot; nothing recorded, the keys unchanged.
    let r = app
        .post(&action(&id, "rotate-key"), &other, json!({}))
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    // The body takes no key material.
    let r = app
        .post(
            &action(&id, "rotate-key"),
            &partner,
            json!({ "public_key": first }),
        )
        .await;
    field_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, INVALID, "public_key");
    assert_eq!(app.log_size().await, size + 1);
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&rotated));

    // An admin rotates it again: the previous key is now the second one.
    let r = app
        .post(&action(&id, "rotate-key"), &app.admin, json!({}))
        .await;
    let again = expect(&r, StatusCode::OK).clone();
    let third = public_key(&again, "public_key");
    assert!(third != first && third != second, "{again}");
    assert_eq!(public_key(&again, "previous_public_key"), second);
    assert_eq!(app.log_size().await, size + 2);
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(shown(&r), without_position(&again));

    // A disabled endpoint's key can be rotated too, and it stays disabled.
    let r = app.post(&action(&id, "disable"), &partner, json!({})).await;
    expect(&r, StatusCode::OK);
    let r = app
        .post(&action(&id, "rotate-key"), &partner, json!({}))
        .await;
    let fourth = expect(&r, StatusCode::OK).clone();
    assert_eq!(fourth["status"], "disabled", "{fourth}");
    assert_eq!(public_key(&fourth, "previous_public_key"), third);
    assert_eq!(app.log_size().await, size + 4);
    assert_no_secret_in_log(&app).await;
}

#[actix_web::test]
async fn no_secret_key_is_in_any_answer_or_event() {
    let app = spawn_app().await;
    let (partner_id, partner) = app.partner("Insure").await;
    let size = app.log_size().await;
    let mut answers: Vec<Reply> = Vec::new();
    let r = app
        .post(
            ENDPOINTS,
            &partner,
            json!({ "url": HOOK, "description": "claims" }),
        )
        .await;
    let id = expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    answers.push(r);
    answers.push(
        app.post(
            ENDPOINTS,
            &app.admin,
            json!({ "partner_id": partner_id, "url": HOOK_V6 }),
        )
        .await,
    );
    answers.push(
        app.post_with(
            ENDPOINTS,
            &partner,
            json!({ "url": HOOK }),
            &[("Idempotency-Key", "secret-check")],
        )
        .await,
    );
    answers.push(
        app.post_with(
            ENDPOINTS,
            &partner,
            json!({ "url": HOOK }),
            &[("Idempotency-Key", "secret-check")],
        )
        .await,
    );
    for token in [&partner, &app.admin] {
        answers.push(app.get(ENDPOINTS, token).await);
        answers.push(app.get(&endpoint(&id), token).await);
    }
    for verb in [
        "rotate-key",
        "disable",
        "disable",
        "enable",
        "enable",
        "rotate-key",
    ] {
        answers.push(app.post(&action(&id, verb), &partner, json!({})).await);
        answers.push(app.get(&endpoint(&id), &partner).await);
    }
    answers.push(
        app.post(&action(&id, "rotate-key"), &app.admin, json!({}))
            .await,
    );
    answers.push(
        app.get(&format!("{ENDPOINTS}?partner_id={partner_id}"), &app.admin)
            .await,
    );
    for r in &answers {
        assert_no_secret(r);
    }
    assert_no_secret_in_log(&app).await;
    // The answers checked were the endpoint's (or the two expected conflicts), not refusals.
    for r in &answers {
        assert!(
            r.status.is_success() || r.status == StatusCode::CONFLICT,
            "{r:?}"
        );
    }
    // Each answer that shows the endpoint shows public keys only.
    let last = app.get(&endpoint(&id), &partner).await;
    let body = expect(&last, StatusCode::OK);
    public_key(body, "public_key");
    public_key(body, "previous_public_key");
    // The check above read the changes: three registrations (a fourth one replayed), three
    // rotations, and one disable and one enable (their repetitions were refused).
    assert_eq!(app.log_size().await, size + 8);
}

#[actix_web::test]
async fn endpoints_outlive_a_restart_with_their_keys_and_status() {
    let app = spawn_app().await;
    let (_, partner) = app.partner("Insure").await;
    let (kept, _) = own_endpoint(&app, &partner).await;
    let (off, _) = own_endpoint(&app, &partner).await;
    let (rotated, _) = own_endpoint(&app, &partner).await;
    let r = app
        .post(
            &action(&off, "disable"),
            &partner,
            json!({ "reason": "paused" }),
        )
        .await;
    expect(&r, StatusCode::OK);
    let r = app
        .post(&action(&rotated, "rotate-key"), &partner, json!({}))
        .await;
    expect(&r, StatusCode::OK);
    let mut before = Vec::new();
    for id in [&kept, &off, &rotated] {
        let r = app.get(&endpoint(id), &partner).await;
        before.push(expect(&r, StatusCode::OK).clone());
    }
    let listed_before = item_ids(&app.get(ENDPOINTS, &app.admin).await);
    let size = app.log_size().await;

    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    assert_eq!(app.log_size().await, size);
    for (id, was) in [&kept, &off, &rotated].into_iter().zip(&before) {
        let r = app.get(&endpoint(id), &partner).await;
        assert_eq!(expect(&r, StatusCode::OK), was, "{id} after a restart");
    }
    assert_eq!(before[0]["status"], "enabled");
    assert_eq!(before[1]["status"], "disabled");
    assert_eq!(before[1]["disabled_reason"], "paused");
    public_key(&before[2], "previous_public_key");
    assert_eq!(item_ids(&app.get(ENDPOINTS, &partner).await), listed_before);
    assert_eq!(
        item_ids(&app.get(ENDPOINTS, &app.admin).await),
        listed_before
    );

    // And they are still managed as before: the disabled one enables, the state is kept.
    let r = app
        .post(&action(&kept, "enable"), &partner, json!({}))
        .await;
    problem(&r, StatusCode::CONFLICT, "already-enabled");
    let r = app
        .post(&action(&off, "disable"), &partner, json!({}))
        .await;
    problem(&r, StatusCode::CONFLICT, "already-disabled");
    let r = app.post(&action(&off, "enable"), &partner, json!({})).await;
    assert_eq!(expect(&r, StatusCode::OK)["status"], "enabled");
    let r = app
        .post(&action(&rotated, "rotate-key"), &partner, json!({}))
        .await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(
        body["previous_public_key"], before[2]["public_key"],
        "the key from before the restart signs until the next rotation"
    );
    assert_eq!(app.log_size().await, size + 2);
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_registration() {
    let app = spawn_app().await;
    let (_, partner) = app.partner("Insure").await;
    let (_, other) = app.partner("Returns").await;
    let key = [("Idempotency-Key", "hook-1")];
    let body = json!({ "url": HOOK, "event_types": ["consent.granted"] });

    let size = app.log_size().await;
    let first = app.post_with(ENDPOINTS, &partner, body.clone(), &key).await;
    expect(&first, StatusCode::CREATED);
    assert!(
        first.headers.get("Idempotent-Replayed").is_none(),
        "the first answer is no replay"
    );
    assert_eq!(app.log_size().await, size + 1);
    let second = app.post_with(ENDPOINTS, &partner, body.clone(), &key).await;
    assert_eq!(expect(&second, StatusCode::CREATED), &first.body);
    assert_eq!(second.id(), first.id());
    assert_eq!(
        second
            .headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(app.log_size().await, size + 1, "the retry recorded nothing");
    assert_eq!(
        item_ids(&app.get(ENDPOINTS, &partner).await),
        ids(&[&first.id()])
    );

    // The same key for another body is refused.
    let r = app
        .post_with(ENDPOINTS, &partner, json!({ "url": HOOK_V6 }), &key)
        .await;
    problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    assert_eq!(app.log_size().await, size + 1);

    // Another partner's key of the same text is its own.
    let r = app.post_with(ENDPOINTS, &other, body.clone(), &key).await;
    expect(&r, StatusCode::CREATED);
    assert!(r.headers.get("Idempotent-Replayed").is_none());
    assert_ne!(r.id(), first.id());
    assert_eq!(app.log_size().await, size + 2);
    assert_eq!(
        item_ids(&app.get(ENDPOINTS, &partner).await),
        ids(&[&first.id()])
    );

    // A retried key rotation rotates once: the retry shows the key the first one made.
    let id = first.id();
    let rotate = [("Idempotency-Key", "rotate-1")];
    let r = app
        .post_with(&action(&id, "rotate-key"), &partner, json!({}), &rotate)
        .await;
    let rotated = expect(&r, StatusCode::OK).clone();
    assert_eq!(app.log_size().await, size + 3);
    let r = app
        .post_with(&action(&id, "rotate-key"), &partner, json!({}), &rotate)
        .await;
    assert_eq!(expect(&r, StatusCode::OK), &rotated);
    assert_eq!(
        r.headers
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(app.log_size().await, size + 3, "the retry rotated nothing");
    let r = app.get(&endpoint(&id), &partner).await;
    assert_eq!(
        shown(&r)["public_key"],
        rotated["public_key"],
        "the key the partner was shown is the one in use"
    );

    // The registration's retry still answers what the first registration answered (its key
    // then, not the endpoint's key now).
    let again = app.post_with(ENDPOINTS, &partner, body, &key).await;
    assert_eq!(expect(&again, StatusCode::CREATED), &first.body);
    assert_eq!(app.log_size().await, size + 3);
}

/// The id of an endpoint `token` registers with `body`.
async fn registered_id(app: &TestApp, token: &str, body: Value) -> String {
    register(app, token, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// SPEC §13 durable outbox: a grant queues `consent.granted` and a revocation
/// `consent.revoked`, in the same commit as the event, for each enabled endpoint of the partner
/// concerned that subscribed to the type — nobody else's, and not a disabled one's.
#[actix_web::test]
async fn consent_events_queue_messages_for_the_partners_subscribed_endpoints_only() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, other) = app.partner("Returns").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-HOOK-1", "DE").await;
    let granted = registered_id(
        &app,
        &partner,
        json!({"url": HOOK, "event_types": ["consent.granted"]}),
    )
    .await;
    let revoked = registered_id(
        &app,
        &partner,
        json!({"url": HOOK, "event_types": ["consent.revoked"]}),
    )
    .await;
    let disabled = registered_id(&app, &partner, json!({"url": HOOK})).await;
    let r = app
        .post(&action(&disabled, "disable"), &partner, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let foreign = registered_id(&app, &other, json!({"url": HOOK})).await;
    let outbox = |id: String| {
        let store = app.state.store.clone();
        async move { store.outbox_of(&id).await.expect("outbox") }
    };

    let grant = app
        .post(
            "/v1/consents",
            &shipper,
            crate::helpers::consent_for(&partner_id, &shipment),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);
    let consent = grant.id();
    let queued = outbox(granted.clone()).await;
    assert_eq!(
        queued.len(),
        1,
        "one consent.granted for the subscribed endpoint"
    );
    let message = &queued[0];
    assert_eq!(message.event_type, "consent.granted");
    assert_eq!(
        message.position.get(),
        grant.position(),
        "queued in the grant's commit"
    );
    assert_eq!(message.state, "pending");
    assert!(
        message.message_id.starts_with("msg_"),
        "{}",
        message.message_id
    );
    let data: Value = serde_json::from_str(&message.data).expect("data");
    assert_eq!(data["consent_id"], consent.as_str(), "{data}");
    assert_eq!(data["partner_id"], partner_id.as_str(), "{data}");
    assert_eq!(
        data["scope"]["shipment_ids"][0],
        shipment.as_str(),
        "{data}"
    );
    assert!(data["valid_from"].is_string(), "{data}");
    for id in [&revoked, &disabled, &foreign] {
        assert!(outbox(id.clone()).await.is_empty(), "nothing for {id}");
    }

    let revoke = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            &shipper,
            json!({"reason": "the customer objected in writing"}),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.body);
    let queued = outbox(revoked.clone()).await;
    assert_eq!(
        queued.len(),
        1,
        "one consent.revoked for the subscribed endpoint"
    );
    assert_eq!(queued[0].event_type, "consent.revoked");
    assert_eq!(queued[0].position.get(), revoke.position());
    assert!(
        !queued[0].data.contains("objected"),
        "the reason is personal free text and stays out of the message: {}",
        queued[0].data
    );
    assert_eq!(
        outbox(granted).await.len(),
        1,
        "no revocation for a granted-only endpoint"
    );
    for id in [&disabled, &foreign] {
        assert!(outbox(id.clone()).await.is_empty(), "nothing for {id}");
    }
}

//! SPEC §15 the partner's and the admin's console pages over real HTTP (the browser of
//! tests/api/console.rs): a partner asks a shipper for consent through the form and the request
//! is there through the API with the fields sent, and follows it (and withdraws it) in its list;
//! a form without the session's CSRF token is refused and records nothing; an admin registers
//! a partner through the form and the token shown once works on the API, rotates a token, and
//! suspends and reactivates a principal whose token the API then refuses and accepts; a shipper
//! is refused the admin's page and form as the API refuses it (403); a partner sees only its own
//! webhook endpoints, with their delivery attempts, and its own subscriptions.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::json;

use crate::console::{open, Browser, Page};
use crate::helpers::{expect, spawn_app, Backing, TestApp};
use crate::receiver::{loopback_app, Receiver};

/// Every visible form control of the page has an id and a `<label for>` naming it (SPEC §15:
/// accessible).
fn assert_labelled(page: &Page) {
    let text = &page.text;
    for tag in ["<input", "<select", "<textarea"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(tag) {
            let start = from + at;
            let end = start + text[start..].find('>').expect("end of tag");
            let element = &text[start..end];
            from = end;
            if element.contains("type=\"hidden\"") {
                continue;
            }
            let id = element
                .split("id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("a control without an id: {element}"));
            assert!(
                text.contains(&format!("for=\"{id}\"")),
                "no <label for=\"{id}\"> in {text}"
            );
        }
    }
}

/// The text of the element whose id is `id` (up to its first tag).
fn element_text(page: &Page, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let at = page
        .text
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {}", page.text));
    let rest = &page.text[at + marker.len()..];
    rest[..rest.find('<').expect("end of element")].to_owned()
}

/// The request list of `token`'s caller through the API.
async fn requests_of(app: &TestApp, token: &str) -> Vec<serde_json::Value> {
    let r = app.get("/v1/consent-requests", token).await;
    expect(&r, StatusCode::OK)["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[actix_web::test]
async fn a_partner_requests_consent_by_form_and_the_request_is_there_through_the_api() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insurer").await;
    let mut browser = Browser::new(&app);
    let home = browser.sign_in(&partner).await;
    for link in [
        "/console/consent-requests",
        "/console/subscriptions",
        "/console/webhooks",
    ] {
        assert!(home.text.contains(link), "navigation: {}", home.text);
    }
    let form = browser.get("/console/consent-requests/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert_labelled(&form);
    for value in [
        "proof_of_shipping",
        "supply_chain_visibility",
        "recipient_contact",
        "legitimate_interests",
    ] {
        assert!(
            form.text.contains(&format!("value=\"{value}\"")),
            "{value}: {}",
            form.text
        );
    }

    // Not a single purpose ticked: the API's own 422, naming the field; nothing recorded.
    let size = app.log_size().await;
    let csrf = form.csrf();
    let justification = "we settle this shipper's lost-parcel claims";
    let bad = browser
        .post(
            "/console/consent-requests",
            &[
                ("csrf", csrf.as_str()),
                ("shipper_id", shipper_id.as_str()),
                ("data_categories", "status_events"),
                ("legal_basis", "contract"),
                ("justification", justification),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("purposes"), "{}", bad.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");

    let sent = browser
        .post(
            "/console/consent-requests",
            &[
                ("csrf", csrf.as_str()),
                ("shipper_id", shipper_id.as_str()),
                ("carriers", "DHL, UPS"),
                ("destination_countries", ""),
                ("purposes", "proof_of_shipping"),
                ("purposes", "insurance_claim"),
                ("data_categories", "status_events"),
                ("data_categories", "proof_of_delivery"),
                ("legal_basis", "contract"),
                ("dpa_ref", ""),
                ("valid_until", "2027-01-31T12:30"),
                ("justification", justification),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text);
    assert_eq!(sent.location.as_deref(), Some("/console/consent-requests"));
    assert_eq!(app.log_size().await, size + 1, "one request recorded");

    // The shipper asked sees it through the API, with the fields sent.
    let items = requests_of(&app, &shipper).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let r = &items[0];
    assert_eq!(r["partner_id"], partner_id.as_str(), "{r}");
    assert_eq!(r["shipper_id"], shipper_id.as_str(), "{r}");
    assert_eq!(
        r["scope"],
        json!({"type": "shipper", "carriers": ["DHL", "UPS"]})
    );
    assert_eq!(
        r["purposes"],
        json!(["proof_of_shipping", "insurance_claim"])
    );
    assert_eq!(
        r["data_categories"],
        json!(["status_events", "proof_of_delivery"])
    );
    assert_eq!(r["legal_basis"], "contract");
    assert_eq!(r["justification"], justification);
    assert_eq!(r["valid_until"], "2027-01-31T12:30:00Z");
    assert_eq!(r["status"], "pending");
    let id = r["id"].as_str().expect("id").to_owned();

    // The partner's list shows it pending; it withdraws it there.
    let listed = browser.get("/console/consent-requests").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(listed.text.contains(&id), "{}", listed.text);
    assert!(listed.text.contains("pending"), "{}", listed.text);
    let withdrawn = browser
        .post(
            &format!("/console/consent-requests/{id}/withdraw"),
            &[("csrf", &listed.csrf())],
        )
        .await;
    assert_eq!(
        withdrawn.status,
        StatusCode::SEE_OTHER,
        "{}",
        withdrawn.text
    );
    assert_eq!(requests_of(&app, &shipper).await[0]["status"], "withdrawn");
    let listed = browser.get("/console/consent-requests").await;
    assert!(listed.text.contains("withdrawn"), "{}", listed.text);

    // A shipper may not ask: the form and its answer are 403, as on the API.
    let mut other = Browser::new(&app);
    let home = other.sign_in(&shipper).await;
    let page = other.get("/console/consent-requests/new").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    let size = app.log_size().await;
    let r = other
        .post(
            "/console/consent-requests",
            &[("csrf", &home.csrf()), ("shipper_id", &shipper_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");
}

#[actix_web::test]
async fn a_form_without_the_sessions_csrf_token_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    let (shipper_id, _) = app.principal("shipper", "Shop").await;
    let (_, partner) = app.partner("Insurer").await;
    let mut partner_browser = Browser::new(&app);
    partner_browser.sign_in(&partner).await;
    let mut admin_browser = Browser::new(&app);
    admin_browser.sign_in(&app.admin).await;
    let size = app.log_size().await;

    let request = [
        ("shipper_id", shipper_id.as_str()),
        ("purposes", "insurance_claim"),
        ("data_categories", "status_events"),
        ("legal_basis", "contract"),
        ("justification", "claims"),
    ];
    let mut forged = request.to_vec();
    forged.push(("csrf", "forged"));
    for fields in [&request[..], &forged[..]] {
        let r = partner_browser
            .post("/console/consent-requests", fields)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.text.contains("CSRF"), "{}", r.text);
    }
    let create = [("role", "shipper"), ("name", "Forged shop")];
    let r = admin_browser.post("/console/principals", &create).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(!r.text.contains("cl_"), "no token shown: {}", r.text);
    for action in ["suspend", "reactivate", "rotate-token"] {
        let r = admin_browser
            .post(
                &format!("/console/principals/{shipper_id}/{action}"),
                &[("reason", "forged")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{action}: {}", r.text);
    }
    // Another session's token is not this one's.
    let partners_token = partner_browser.get("/console/consent-requests/new").await;
    let r = admin_browser
        .post(
            &format!("/console/principals/{shipper_id}/suspend"),
            &[("csrf", &partners_token.csrf()), ("reason", "forged")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");
    assert_eq!(requests_of(&app, &partner).await.len(), 0);
}

/// Registers the insurer "Claims Co" (DPA-7) in `country` through the admin's form.
async fn register_claims_co(browser: &mut Browser, csrf: &str, country: &str) -> Page {
    let fields = [
        ("csrf", csrf),
        ("role", "partner"),
        ("name", "Claims Co"),
        ("kind", "insurer"),
        ("country", country),
        ("dpa_ref", "DPA-7"),
    ];
    browser.post("/console/principals", &fields).await
}

#[actix_web::test]
async fn an_admin_registers_a_partner_by_form_and_the_token_shown_once_works_on_the_api() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let home = browser.sign_in(&app.admin).await;
    assert!(home.text.contains("/console/principals"), "{}", home.text);
    let page = browser.get("/console/principals").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Test admin"), "{}", page.text);
    assert_labelled(&page);
    let csrf = page.csrf();

    // A partner without its country: the API's 422, naming the field; nothing recorded.
    let size = app.log_size().await;
    let r = register_claims_co(&mut browser, &csrf, "").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("country"), "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");

    let created = register_claims_co(&mut browser, &csrf, "DE").await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(app.log_size().await, size + 1, "one principal recorded");
    let token = element_text(&created, "new-token");
    let id = element_text(&created, "principal-id");
    assert!(token.starts_with("cl_"), "{token}");
    assert_eq!(created.text.matches(&token).count(), 1, "shown once");
    let me = app.get("/v1/me", &token).await;
    let me = expect(&me, StatusCode::OK);
    assert_eq!(me["id"], id.as_str(), "{me}");
    assert_eq!(me["role"], "partner", "{me}");
    assert_eq!(me["name"], "Claims Co", "{me}");
    assert_eq!(
        me["partner"],
        json!({"kind": "insurer", "country": "DE", "dpa_ref": "DPA-7"})
    );
    // The list names it, and never shows its token again.
    let page = browser.get("/console/principals").await;
    assert!(page.text.contains("Claims Co"), "{}", page.text);
    assert!(!page.text.contains(&token), "the token is not kept");

    // Rotated through the form: the new token works, the old one is refused.
    let rotated = browser
        .post(
            &format!("/console/principals/{id}/rotate-token"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let fresh = element_text(&rotated, "new-token");
    assert_ne!(fresh, token);
    expect(&app.get("/v1/me", &fresh).await, StatusCode::OK);
    let old = app.get("/v1/me", &token).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.body);
}

#[actix_web::test]
async fn an_admin_suspends_a_principal_by_form_and_the_api_refuses_its_token() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    expect(&app.get("/v1/me", &shipper).await, StatusCode::OK);
    let (mut browser, page) = open(&app, &app.admin, "/console/principals").await;
    let suspend = format!("/console/principals/{shipper_id}/suspend");
    assert!(page.text.contains(&suspend), "{}", page.text);

    // Without a reason: the API's 422; nothing recorded.
    let size = app.log_size().await;
    let r = browser.post(&suspend, &[("csrf", &page.csrf())]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");

    let r = browser
        .post(
            &suspend,
            &[("csrf", &page.csrf()), ("reason", "unpaid invoices")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location.as_deref(), Some("/console/principals"));
    let refused = app.get("/v1/me", &shipper).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let page = browser.get("/console/principals").await;
    assert!(page.text.contains("suspended"), "{}", page.text);
    let reactivate = format!("/console/principals/{shipper_id}/reactivate");
    assert!(page.text.contains(&reactivate), "{}", page.text);

    // Suspending it again is the use case's conflict, as on the API.
    let r = browser
        .post(&suspend, &[("csrf", &page.csrf()), ("reason", "twice")])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    let r = browser.post(&reactivate, &[("csrf", &page.csrf())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    expect(&app.get("/v1/me", &shipper).await, StatusCode::OK);
}

#[actix_web::test]
async fn a_shipper_is_refused_the_principals_page_and_its_forms() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (other_id, _) = app.principal("shipper", "Other shop").await;
    let mut browser = Browser::new(&app);
    let home = browser.sign_in(&shipper).await;
    assert!(!home.text.contains("/console/principals"), "{}", home.text);
    let page = browser.get("/console/principals").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(!page.text.contains("Other shop"), "{}", page.text);
    let size = app.log_size().await;
    let csrf = home.csrf();
    let r = browser
        .post(
            "/console/principals",
            &[("csrf", &csrf), ("role", "admin"), ("name", "Me too")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = browser
        .post(
            &format!("/console/principals/{other_id}/suspend"),
            &[("csrf", &csrf), ("reason", "competitor")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Another principal's token: 404, as on the API (existence does not leak).
    let r = browser
        .post(
            &format!("/console/principals/{other_id}/rotate-token"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");
    // A partner's pages are not a shipper's either.
    for path in ["/console/webhooks", "/console/subscriptions"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.text);
    }
}

/// Registers a webhook endpoint to `url` for the partner holding `token`; its id.
async fn endpoint(app: &TestApp, token: &str, url: &str) -> String {
    let r = app
        .post("/v1/webhook-endpoints", token, json!({ "url": url }))
        .await;
    expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Subscribes the partner holding `token` to every shipment its consents cover; the id.
async fn subscription(app: &TestApp, token: &str, purpose: &str) -> String {
    let r = app
        .post(
            "/v1/subscriptions",
            token,
            json!({ "purpose": purpose, "data_categories": ["status_events"], "scope": "consented" }),
        )
        .await;
    expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The webhooks page of `browser` once it lists an attempt in `state` (the worker delivers
/// in the background; a moment is allowed for a slow machine).
async fn webhooks_with(browser: &mut Browser, state: &str) -> Page {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = browser.get("/console/webhooks").await;
        if page.text.contains(&format!("<td>{state}</td>")) {
            return page;
        }
        assert!(Instant::now() < deadline, "never {state}: {}", page.text);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_partner_sees_only_its_own_webhook_endpoints_with_their_delivery_attempts() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let (_, partner) = app.partner("Insurer").await;
    let (_, other) = app.partner("Marketplace").await;
    let mine = endpoint(&app, &partner, &format!("{}/mine", receiver.url)).await;
    let theirs = endpoint(&app, &other, &format!("{}/theirs", receiver.url)).await;
    let r = app
        .post(
            &format!("/v1/webhook-endpoints/{mine}/test"),
            &partner,
            json!({}),
        )
        .await;
    let message = expect(&r, StatusCode::ACCEPTED)["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();

    let mut browser = Browser::new(&app);
    browser.sign_in(&partner).await;
    let page = webhooks_with(&mut browser, "delivered").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(&mine), "{}", page.text);
    assert!(page.text.contains(&message), "{}", page.text);
    assert!(page.text.contains("webhook.test"), "{}", page.text);
    assert!(page.text.contains("HTTP 204"), "{}", page.text);
    assert!(
        !page.text.contains(&theirs),
        "not another partner's: {}",
        page.text
    );
    assert!(!page.text.contains("/theirs"), "{}", page.text);

    let (_, page) = open(&app, &other, "/console/webhooks").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(&theirs), "{}", page.text);
    assert!(!page.text.contains(&mine), "{}", page.text);
    assert!(
        page.text.contains("No delivery attempt yet"),
        "{}",
        page.text
    );

    // Subscriptions: its own only.
    let page = browser.get("/console/subscriptions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("No subscription yet"), "{}", page.text);
    let own = subscription(&app, &partner, "insurance_claim").await;
    let foreign = subscription(&app, &other, "proof_of_shipping").await;
    let page = browser.get("/console/subscriptions").await;
    assert!(page.text.contains(&own), "{}", page.text);
    assert!(page.text.contains("insurance_claim"), "{}", page.text);
    assert!(
        page.text.contains("every shipment your consents cover"),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains(&foreign),
        "not another partner's: {}",
        page.text
    );
}

//! SPEC §15 in a real headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! `.ci/run`), driven over WebDriver: each role signs in through the form; a shipper approves a
//! partner's request by clicking (narrowed by unticking a category) and the consent is there
//! through the API; a form whose CSRF field was removed in the page is refused and records
//! nothing; another tenant's consent is not reachable by URL; a privacy officer filters the
//! access log and sees the plot; a regulator verifies a bundle in the page and is told the line
//! of a tampered one. Without chromedriver (and outside CI) each test says it was skipped.
//!
//! `CONSENT_LEDGER_SCREENSHOTS=<dir>` keeps a screenshot of each role's main page there (the
//! README's come from `docs/console/`).

use actix_web::http::StatusCode;
use serde_json::json;

use crate::console::{consent, decide, request_consent};
use crate::helpers::{expect, spawn_app, TestApp};
use crate::webdriver::{chromedriver, Browser};

/// A started browser, or `None` with a line saying why the test is skipped.
async fn browser(test: &str) -> Option<Browser> {
    match chromedriver() {
        Some(path) => Some(Browser::start(&path).await),
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test} needs chromium and chromedriver (apt: chromium chromium-driver)"
            );
            None
        }
    }
}

fn base(app: &TestApp) -> String {
    format!("http://{}", app.socket_address())
}

async fn sign_in(b: &Browser, app: &TestApp, token: &str) {
    b.goto(&format!("{}/console/sign-in", base(app))).await;
    b.type_into("#token", token).await;
    b.click("form button[type=submit]").await;
    b.wait_text("main h1", "Welcome").await;
}

async fn sign_out(b: &Browser) {
    b.click("form.sign-out button").await;
    b.wait_text("main h1", "Sign in").await;
}

/// A role's main page: every form control on it has a label (SPEC §15: accessible), and a
/// screenshot is kept when asked for (`CONSENT_LEDGER_SCREENSHOTS`), checked to be a PNG either
/// way.
async fn screenshot(b: &Browser, name: &str) {
    let unlabelled = b
        .run(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')] \
               .filter(e => e.labels.length === 0).map(e => e.id || e.name);",
        )
        .await;
    assert_eq!(
        unlabelled,
        json!([]),
        "controls without a label on {name}'s page"
    );
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Ok(dir) = std::env::var("CONSENT_LEDGER_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(format!("{dir}/{name}.png"), png).expect("screenshot written");
    }
}

#[actix_web::test]
async fn roles_sign_in_a_shipper_approves_by_clicking_and_forms_need_their_token() {
    let Some(b) = browser("roles_sign_in_a_shipper_approves_by_clicking").await else {
        return;
    };
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Parcel Shop").await;
    let (_, other_shipper) = app.principal("shipper", "Other Shop").await;
    let (partner_id, partner) = app.partner("Claims Insurer").await;
    request_consent(
        &app,
        &partner,
        &shipper_id,
        "we settle this shop's lost-parcel claims",
    )
    .await;

    // The partner's home, and the admin's principals.
    sign_in(&b, &app, &partner).await;
    screenshot(&b, "partner").await;
    sign_out(&b).await;
    sign_in(&b, &app, &app.admin).await;
    b.click("nav a[href='/console/principals']").await;
    b.wait_text("main", "Claims Insurer").await;
    screenshot(&b, "admin").await;
    sign_out(&b).await;

    // The shipper answers by clicking: proof_of_delivery unticked, then Approve.
    sign_in(&b, &app, &shipper).await;
    b.click("nav a[href='/console/requests']").await;
    b.wait_text("main", "lost-parcel claims").await;
    screenshot(&b, "shipper").await;
    b.click("input[value=proof_of_delivery]").await;
    b.click("form[action$='/approve'] button").await;
    b.wait_text("main h1", "Consents").await;
    let consents = app
        .get(&format!("/v1/consents?partner_id={partner_id}"), &partner)
        .await;
    let items = expect(&consents, StatusCode::OK)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["data_categories"], json!(["status_events"]));
    let consent = items[0]["id"].as_str().expect("id").to_owned();

    // A revocation form whose CSRF field was taken out of the page: refused, nothing recorded.
    b.goto(&format!("{}/console/consents/{consent}", base(&app)))
        .await;
    b.run("document.querySelector('form.card input[name=csrf]').remove()")
        .await;
    b.type_into("#reason", "testing the form").await;
    let size = app.log_size().await;
    b.click("form.card button").await;
    let refused = b.wait_text("main", "CSRF").await;
    assert!(refused.contains("CSRF"), "{refused}");
    assert_eq!(app.log_size().await, size, "nothing recorded");
    let still = app.get(&format!("/v1/consents/{consent}"), &shipper).await;
    assert_eq!(expect(&still, StatusCode::OK)["status"], "active");
    b.goto(&format!("{}/console/", base(&app))).await;
    sign_out(&b).await;

    // Another shipper reaches none of it by URL.
    sign_in(&b, &app, &other_shipper).await;
    b.goto(&format!("{}/console/consents/{consent}", base(&app)))
        .await;
    b.wait_text("main h1", "Not Found").await;
    let page = b.text("main").await;
    assert!(!page.contains(&partner_id), "{page}");
}

#[actix_web::test]
async fn an_officer_sees_the_plot_and_a_regulator_verifies_bundles_in_the_page() {
    let Some(b) = browser("an_officer_sees_the_plot_and_a_regulator_verifies_bundles").await else {
        return;
    };
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Parcel Shop").await;
    let (_, officer) = app
        .principal("privacy_officer", "Data Protection Office")
        .await;
    let (_, regulator) = app.principal("regulator", "Supervisory Authority").await;
    let (insurer_id, insurer) = app.partner("Claims Insurer").await;
    let (_, market) = app.partner("Marketplace").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-BROWSER-1", "DE").await;
    consent(&app, &shipper, &insurer_id, &shipment).await;
    decide(&app, &[&insurer, &insurer, &market], &shipment).await;

    // The officer filters by partner and sees the plot of what is left.
    sign_in(&b, &app, &officer).await;
    b.click("nav a[href='/console/access']").await;
    b.wait_text("main", "3 shown").await;
    b.find("svg.timeline rect.denied").await;
    // Drawn, not only present: each partner's row and every bar has a size on the screen.
    let drawn = b
        .run(
            "const s = e => e.getBoundingClientRect(); \
             return [document.querySelectorAll('svg.timeline text.partner').length, \
               [...document.querySelectorAll('svg.timeline text.partner, svg.timeline rect')] \
                 .every(e => s(e).width > 0 && s(e).height > 0)];",
        )
        .await;
    assert_eq!(
        drawn,
        json!([2, true]),
        "two partners' rows, every bar drawn"
    );
    screenshot(&b, "privacy_officer").await;
    b.type_into("#f-partner_id", &insurer_id).await;
    b.click("form.filters button").await;
    b.wait_text("main", "2 shown").await;
    b.find("svg.timeline rect.allowed").await;
    let page = b.text("main table").await;
    assert!(!page.contains("Marketplace"), "{page}");
    sign_out(&b).await;

    // The regulator verifies the parcel's bundle in the page, then a tampered copy.
    let export = app
        .get(
            &format!("/v1/audit/export?shipment_id={shipment}"),
            &regulator,
        )
        .await;
    assert_eq!(export.status, StatusCode::OK);
    let bundle = export.body.as_str().expect("NDJSON").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("parcel.ndjson");
    std::fs::write(&good, &bundle).expect("write");
    let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 3, "{bundle}");
    lines[2] = lines[2].replacen("insurance_claim", "fraud_prevention", 1);
    let bad = dir.path().join("tampered.ndjson");
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");

    sign_in(&b, &app, &regulator).await;
    b.click("nav a[href='/console/verify']").await;
    b.type_into("#bundle", &good.to_string_lossy()).await;
    b.click("#verify button").await;
    let verdict = b.wait_text("#verdict", "verified").await;
    assert!(!verdict.contains("line"), "{verdict}");
    screenshot(&b, "regulator").await;
    b.type_into("#bundle", &bad.to_string_lossy()).await;
    b.click("#verify button").await;
    let verdict = b.wait_text("#verdict", "line 3").await;
    assert!(
        verdict.contains("not in the checkpoint's tree"),
        "{verdict}"
    );
}

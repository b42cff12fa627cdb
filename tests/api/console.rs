//! SPEC §15 the console over real HTTP (the browser's requests, made by hand): `/` leads to
//! the console; signing in exchanges a token for an `HttpOnly`, `SameSite=Strict` session cookie
//! (not `Secure` on loopback) and needs the sign-in form's own CSRF token; every form needs the
//! session's; a shipper approves a partner's request by form, narrowed, and the consent is there
//! through the API; another tenant's consent is not reachable by URL; an officer filters the
//! access log and gets the per-day plot; signing out or a rotated token ends the session.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{consent_for, expect, spawn_app, TestApp};

/// A browser of one person: its own cookies, no redirects followed.
pub(crate) struct Browser {
    client: awc::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) csp: Option<String>,
    /// `Content-Disposition`, for a download.
    pub(crate) disposition: Option<String>,
    pub(crate) text: String,
}

impl Page {
    /// The first `csrf` hidden field of the page.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.text));
        let rest = &self.text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("end of value")].to_owned()
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        Browser {
            client: awc::Client::builder().disable_redirects().finish(),
            base: format!("http://{}", app.socket_address()),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: awc::ClientRequest, form: Option<String>) -> Page {
        let req = req.insert_header(("Cookie", self.cookie_header()));
        let mut res = match form {
            Some(body) => {
                req.insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                    .send_body(body)
                    .await
            }
            None => req.send().await,
        }
        .expect("request sent");
        let set_cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (location, csp) = (header("location"), header("content-security-policy"));
        let disposition = header("content-disposition");
        let bytes = res.body().limit(8 * 1024 * 1024).await.expect("body");
        Page {
            status: res.status(),
            location,
            set_cookies,
            csp,
            disposition,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req, None).await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).expect("form");
        let req = self.client.post(format!("{}{path}", self.base));
        self.send(req, Some(body)).await
    }

    /// Signs in with `token` through the sign-in form; the home page.
    pub(crate) async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let csrf = form.csrf();
        let r = self
            .post("/console/sign-in", &[("csrf", &csrf), ("token", token)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        self.get("/console/").await
    }
}

/// Opens a browser signed in with `token` and visits `path`: the browser and that page.
pub(crate) async fn open(app: &TestApp, token: &str, path: &str) -> (Browser, Page) {
    let mut browser = Browser::new(app);
    browser.sign_in(token).await;
    let page = browser.get(path).await;
    (browser, page)
}

/// The shipper holding `shipper` consents to `partner_id` reading `shipment` through the API;
/// the consent's id.
pub(crate) async fn consent(
    app: &TestApp,
    shipper: &str,
    partner_id: &str,
    shipment: &str,
) -> String {
    let r = app
        .post("/v1/consents", shipper, consent_for(partner_id, shipment))
        .await;
    expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The partner holding `partner` asks `shipper_id` through the API for its parcels' status
/// events and proofs of delivery (insurance claims), saying `justification`; the request's id.
pub(crate) async fn request_consent(
    app: &TestApp,
    partner: &str,
    shipper_id: &str,
    justification: &str,
) -> String {
    let r = app
        .post(
            "/v1/consent-requests",
            partner,
            json!({
                "shipper_id": shipper_id,
                "scope": { "type": "shipper" },
                "purposes": ["insurance_claim"],
                "data_categories": ["status_events", "proof_of_delivery"],
                "legal_basis": "contract",
                "justification": justification
            }),
        )
        .await;
    expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Each partner of `tokens` reads `shipment`'s status events for an insurance claim through
/// the API, in turn; each read is answered.
pub(crate) async fn decide(app: &TestApp, tokens: &[&str], shipment: &str) {
    let ask = json!({
        "shipment_id": shipment,
        "purpose": "insurance_claim",
        "data_categories": ["status_events"]
    });
    for token in tokens {
        expect(
            &app.post("/v1/decisions", token, ask.clone()).await,
            StatusCode::OK,
        );
    }
}

/// The admin registers a processor DPA for `partner_id` and authorizes it, under that DPA, to
/// read DHL parcels' status events for supply-chain visibility; the authorization's id.
async fn authorize_dhl_relay(app: &TestApp, partner_id: &str) -> String {
    let r = app
        .post(
            "/v1/dpas",
            &app.admin,
            json!({"partner_id": partner_id, "reference": "DPA-Relay", "role": "processor",
                   "signed_at": "2026-01-15T00:00:00Z", "sub_processors": []}),
        )
        .await;
    let dpa = expect(&r, StatusCode::CREATED)["id"].clone();
    let r = app
        .post(
            "/v1/authorizations",
            &app.admin,
            json!({"partner_id": partner_id, "dpa_id": dpa, "scope": {"carriers": ["DHL"]},
                   "purposes": ["supply_chain_visibility"], "data_categories": ["status_events"],
                   "legal_basis": "legitimate_interests"}),
        )
        .await;
    expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[actix_web::test]
async fn signing_in_gives_a_strict_session_and_only_the_forms_own_token_signs_in() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let mut browser = Browser::new(&app);

    let root = browser.get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.location.as_deref(), Some("/console/"));
    let home = browser.get("/console/").await;
    assert_eq!(home.location.as_deref(), Some("/console/sign-in"));

    // Without the sign-in form's token, a right token signs no one in (login CSRF).
    let r = browser
        .post("/console/sign-in", &[("token", shipper.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(!browser.cookies.iter().any(|(k, _)| k == "cl_session"));
    let form = browser.get("/console/sign-in").await;
    assert!(form
        .csp
        .as_deref()
        .is_some_and(|c| c.contains("script-src 'self'")));
    let r = browser
        .post(
            "/console/sign-in",
            &[("csrf", &form.csrf()), ("token", "cl_not-a-token")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("not valid"), "{}", r.text);

    let form = browser.get("/console/sign-in").await;
    let r = browser
        .post(
            "/console/sign-in",
            &[("csrf", &form.csrf()), ("token", shipper.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let session = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with("cl_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "loopback: not Secure: {session}"
    );
    assert!(
        !session.contains(shipper.as_str()),
        "the token is not the cookie"
    );
    let home = browser.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.text);
    assert!(home.text.contains("shipper"), "{}", home.text);
    assert!(home.text.contains("/console/requests"), "{}", home.text);

    // Signing out needs the session's token too; then the cookie leads to sign-in again.
    let r = browser.post("/console/sign-out", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let csrf = home.csrf();
    let r = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = browser.get("/console/").await;
    assert_eq!(after.location.as_deref(), Some("/console/sign-in"));

    // A rotated token ends the sessions it opened (SPEC §2, as on the API).
    browser.sign_in(&shipper).await;
    let r = app
        .post(
            &format!("/v1/principals/{shipper_id}/rotate-token"),
            &app.admin,
            json!({}),
        )
        .await;
    expect(&r, StatusCode::OK);
    let after = browser.get("/console/").await;
    assert_eq!(after.location.as_deref(), Some("/console/sign-in"));
}

#[actix_web::test]
async fn a_shipper_approves_a_request_by_form_and_the_consent_is_there_through_the_api() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insurer").await;
    let justification = "we settle this shipper's lost-parcel claims";
    let request = request_consent(&app, &partner, &shipper_id, justification).await;
    let (mut browser, page) = open(&app, &shipper, "/console/requests").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Insurer"), "{}", page.text);
    assert!(page.text.contains("lost-parcel claims"), "{}", page.text);
    let approve = format!("/console/requests/{request}/approve");

    // Without the session's CSRF token: refused, nothing recorded.
    let size = app.log_size().await;
    let r = browser
        .post(&approve, &[("data_categories", "status_events")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("CSRF"), "{}", r.text);
    let r = browser
        .post(
            &approve,
            &[("csrf", "forged"), ("data_categories", "status_events")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");

    // Approved narrowed to one category, by the form.
    let r = browser
        .post(
            &approve,
            &[("csrf", &page.csrf()), ("data_categories", "status_events")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let consents = app
        .get(&format!("/v1/consents?partner_id={partner_id}"), &partner)
        .await;
    let items = expect(&consents, StatusCode::OK)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["data_categories"], json!(["status_events"]));
    assert_eq!(items[0]["request_id"], request.as_str());
    let listed = browser.get("/console/consents").await;
    assert!(
        listed
            .text
            .contains(items[0]["id"].as_str().expect("consent id")),
        "{}",
        listed.text
    );
}

#[actix_web::test]
async fn another_tenants_consent_is_not_reachable_by_url() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, other) = app.principal("shipper", "Other shop").await;
    let (partner_id, _) = app.partner("Insurer").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-CONSOLE-1", "DE").await;
    let consent = consent(&app, &shipper, &partner_id, &shipment).await;

    let (_, mine) = open(&app, &shipper, &format!("/console/consents/{consent}")).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert!(mine.text.contains("Revoke"), "{}", mine.text);

    let mut intruder = Browser::new(&app);
    let home = intruder.sign_in(&other).await;
    let theirs = intruder.get(&format!("/console/consents/{consent}")).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.text);
    assert!(!theirs.text.contains(&partner_id), "{}", theirs.text);
    let size = app.log_size().await;
    let r = intruder
        .post(
            &format!("/console/consents/{consent}/revoke"),
            &[("csrf", &home.csrf()), ("reason", "mine now")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");
    // Pages of other roles are refused, as their routes are.
    let access = intruder.get("/console/access").await;
    assert_eq!(access.status, StatusCode::FORBIDDEN, "{}", access.text);
}

#[actix_web::test]
async fn an_officer_filters_the_access_log_and_sees_the_plot() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let (insurer_id, insurer) = app.partner("Insurer").await;
    let (_, other) = app.partner("Marketplace").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-CONSOLE-2", "DE").await;
    consent(&app, &shipper, &insurer_id, &shipment).await;
    decide(&app, &[&insurer, &insurer, &other], &shipment).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&officer).await;
    let everyone = wait_for_rows(&mut browser, "/console/access", 3).await;
    assert!(everyone.text.contains("<svg"), "{}", everyone.text);
    assert!(everyone.text.contains("Marketplace"), "{}", everyone.text);
    let only = wait_for_rows(
        &mut browser,
        &format!("/console/access?partner_id={insurer_id}"),
        2,
    )
    .await;
    assert!(only.text.contains("Insurer"), "{}", only.text);
    assert!(
        !only.text.contains("Marketplace"),
        "filtered to one partner: {}",
        only.text
    );
    assert!(
        only.text.contains("2 allowed"),
        "the plot's bar: {}",
        only.text
    );
    let bad = browser.get("/console/access?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("from"), "{}", bad.text);
}

/// The access page, which lists `n` decisions (it catches the audit projection up to the log
/// first; a moment is allowed for a slow machine).
async fn wait_for_rows(browser: &mut Browser, path: &str, n: usize) -> Page {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = browser.get(path).await;
        if page.text.contains(&format!("{n} shown")) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {n} rows: {}",
            page.text
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_shipper_objects_in_the_console_and_sees_who_may_see_its_parcel() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, other) = app.principal("shipper", "Other shop").await;
    let (relay_id, relay) = app.partner("Relay").await;
    let authorization = authorize_dhl_relay(&app, &relay_id).await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-CONSOLE-3", "DE").await;
    let ask = json!({"shipment_id": shipment, "purpose": "supply_chain_visibility",
                     "data_categories": ["status_events"]});

    let (mut browser, page) = open(&app, &shipper, "/console/authorizations").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Relay"), "{}", page.text);
    let objection = format!("/console/authorizations/{authorization}/objection");
    let size = app.log_size().await;
    let r = browser.post(&objection, &[("reason", "no relays")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");
    let r = browser
        .post(
            &objection,
            &[("csrf", &page.csrf()), ("reason", "no relays")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let denied = app.post("/v1/decisions", &relay, ask.clone()).await;
    assert_eq!(
        expect(&denied, StatusCode::OK)["reason"],
        "shipper_objected"
    );
    let page = browser.get("/console/authorizations").await;
    assert!(page.text.contains("You object"), "{}", page.text);
    let parties = format!("/console/parties?shipment_id={shipment}");
    let seen = browser.get(&parties).await;
    assert!(
        !seen.text.contains("carrier authorization"),
        "objected: {}",
        seen.text
    );
    let r = browser
        .post(
            &format!("/console/authorizations/{authorization}/withdraw"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let allowed = app.post("/v1/decisions", &relay, ask).await;
    assert_eq!(expect(&allowed, StatusCode::OK)["allowed"], true);
    let seen = browser.get(&parties).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert!(seen.text.contains("Relay"), "{}", seen.text);
    assert!(seen.text.contains(&authorization), "{}", seen.text);

    // Another shipper: the parcel is not reachable, the authorization still visible to it.
    let (_, theirs) = open(&app, &other, &parties).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.text);
}

#[actix_web::test]
async fn auditors_get_reports_as_pages_and_downloads_and_the_bundle_verifies() {
    use consent_ledger_audit::bundle::verify_bundle;
    use consent_ledger_audit::note::VerifierKey;

    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let (insurer_id, insurer) = app.partner("Insurer").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-CONSOLE-4", "DE").await;
    consent(&app, &shipper, &insurer_id, &shipment).await;
    decide(&app, &[&insurer], &shipment).await;

    let dsar = "/console/audit/dsar?carrier=DHL&tracking_number=JJD-CONSOLE-4";
    let (mut browser, page) = open(&app, &officer, dsar).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Insurer"), "{}", page.text);
    assert!(page.text.contains("insurance_claim"), "{}", page.text);
    let csv = browser.get(&format!("{dsar}&format=csv")).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert!(csv
        .disposition
        .as_deref()
        .is_some_and(|d| d.contains("attachment")));
    assert!(csv.text.starts_with("section,partner_id"), "{}", csv.text);
    assert!(csv.text.contains("recipient,"), "{}", csv.text);

    let ropa = "/console/audit/ropa?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z";
    let page = browser.get(ropa).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Insurer"), "{}", page.text);
    let csv = browser.get(&format!("{ropa}&format=csv")).await;
    assert!(csv.text.starts_with("partner_id,name"), "{}", csv.text);

    let bundle = browser
        .get(&format!("/console/audit/export?shipment_id={shipment}"))
        .await;
    assert_eq!(bundle.status, StatusCode::OK, "{}", bundle.text);
    assert!(bundle
        .disposition
        .as_deref()
        .is_some_and(|d| d.contains("bundle.ndjson")));
    let vkey_text = app.get_anonymous("/v1/log/vkey").await.body;
    let vkey: VerifierKey = vkey_text
        .as_str()
        .expect("text")
        .trim()
        .parse()
        .expect("vkey");
    let verified = verify_bundle(&bundle.text, &vkey).expect("the downloaded bundle verifies");
    assert_eq!(
        verified.events, 2,
        "the parcel's registration and its decision: {}",
        bundle.text
    );
    let log = browser.get("/console/log").await;
    assert!(
        log.text.contains(vkey_text.as_str().expect("text").trim()),
        "{}",
        log.text
    );

    // A shipper is refused the record of processing, as on the API.
    let (_, refused) = open(&app, &shipper, ropa).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
}

#[actix_web::test]
async fn a_shipper_grants_a_consent_by_form_and_the_partner_holds_it() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insurer").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-CONSOLE-5", "DE").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&shipper).await;
    let listed = browser.get("/console/consents").await;
    assert!(listed.text.contains("/console/grant"), "{}", listed.text);
    let form = browser.get("/console/grant").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(
        form.text.contains("Insurer"),
        "the partner directory: {}",
        form.text
    );
    let fields = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("partner_id".to_owned(), partner_id.clone()),
            ("shipment_ids".to_owned(), shipment.clone()),
            ("purposes".to_owned(), "insurance_claim".to_owned()),
            ("data_categories".to_owned(), "status_events".to_owned()),
            ("data_categories".to_owned(), "location".to_owned()),
            ("legal_basis".to_owned(), "consent".to_owned()),
            ("valid_until".to_owned(), "2027-03-01T00:00".to_owned()),
        ]
    };

    // No purpose ticked: the API's own error, naming the field; nothing recorded.
    let size = app.log_size().await;
    let mut missing = fields(&form.csrf());
    missing.retain(|(k, _)| k != "purposes");
    let pairs: Vec<(&str, &str)> = missing
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = browser.post("/console/grant", &pairs).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("purposes"), "{}", r.text);
    assert_eq!(app.log_size().await, size, "nothing recorded");

    let all = fields(&form.csrf());
    let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = browser.post("/console/grant", &pairs).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let held = app
        .get(&format!("/v1/consents?partner_id={partner_id}"), &partner)
        .await;
    let items = expect(&held, StatusCode::OK)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["scope"]["shipment_ids"], json!([shipment]));
    assert_eq!(
        items[0]["data_categories"],
        json!(["status_events", "location"])
    );
    assert_eq!(items[0]["valid_until"], "2027-03-01T00:00:00Z");
    let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim",
                     "data_categories": ["location"]});
    let allowed = app.post("/v1/decisions", &partner, ask).await;
    assert_eq!(expect(&allowed, StatusCode::OK)["allowed"], true);
    // A partner has no grant form.
    let mut other = Browser::new(&app);
    other.sign_in(&partner).await;
    let refused = other.get("/console/grant").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
}

/// Sessions live in the node's memory: a restart signs the browser out (its cookie leads to
/// sign-in, nothing else), and signing in again works on the restarted node, whose consents are
/// all there.
#[actix_web::test]
async fn a_restart_signs_the_browser_out_and_signing_in_again_works() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, _) = app.partner("Insurer").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-CONSOLE-6", "DE").await;
    let r = app
        .post(
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
    let consent = expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut browser = Browser::new(&app);
    browser.sign_in(&shipper).await;
    let (backing, clock, admin) = app.stop().await;
    let app = crate::helpers::spawn_app_in(backing, clock, Some(admin)).await;
    browser.base = format!("http://{}", app.socket_address());
    let page = browser.get("/console/consents").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/console/sign-in"),
        "{}",
        page.text
    );
    assert!(!page.text.contains(&consent), "{}", page.text);
    browser.sign_in(&shipper).await;
    let page = browser.get("/console/consents").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(&consent), "{}", page.text);
}

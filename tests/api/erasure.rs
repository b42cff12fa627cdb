//! SPEC §12: personal data out of the log. Leaves hold commitments; erasure of a shipment or a
//! data subject deletes the openings (the store's rows are gone after the call, on either
//! backend), decisions by an erased tracking number answer `unknown_shipment`, views show
//! `{"erased":true}`, a DSAR says when and by which record, and bundles exported before and
//! after verify; a bundle with a changed opening is refused naming its line.

use actix_web::http::StatusCode;
use consent_ledger_audit::bundle::{verify_bundle, BundleErrorKind};
use serde_json::{json, Value};

use crate::helpers::{expect, field_problem, problem, shipment_body, spawn_app, TestApp};

const TRACKING: &str = "ERASE-TRK-0001";
const SUBJECT: &str = "crm-subject-77";
const POINTER: &str = "/payload/ShipmentRegistered/tracking_number";

async fn export(app: &TestApp, token: &str, shipment: &str) -> String {
    let r = app
        .get(&format!("/v1/audit/export?shipment_id={shipment}"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body.as_str().expect("NDJSON").to_owned()
}

/// The bundle line of the shipment's registration.
fn registration_line(bundle: &str) -> (usize, Value) {
    bundle
        .lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| (i + 1, serde_json::from_str::<Value>(l).expect("line")))
        .find(|(_, l)| {
            l["leaf"]
                .as_str()
                .is_some_and(|leaf| leaf.contains("ShipmentRegistered"))
        })
        .expect("the registration's line")
}

async fn register(app: &TestApp, shipper_id: &str, tracking: &str, subject: &str) -> String {
    let mut body = shipment_body(shipper_id, "DHL", tracking, "DE");
    body["recipient_ref"] = json!(subject);
    let r = app.post("/v1/shipments", &app.admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

async fn decide_by_number(app: &TestApp, partner: &str, tracking: &str) -> Value {
    let ask = json!({"carrier": "DHL", "tracking_number": tracking,
        "purpose": "insurance_claim", "data_categories": ["status_events"]});
    expect(
        &app.post("/v1/decisions", partner, ask).await,
        StatusCode::OK,
    )
    .clone()
}

#[actix_web::test]
async fn an_erased_shipment_keeps_its_proofs_and_loses_its_personal_data() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    // Asked for before it was registered: a denial that records the number (sealed).
    decide_by_number(&app, &partner, TRACKING).await;
    let asked = app.log().await.pop().expect("the denial");
    assert_eq!(
        asked.openings.len(),
        1,
        "the number asked for, beside the log"
    );
    let shipment = register(&app, &shipper_id, TRACKING, SUBJECT).await;
    let consent = app
        .post(
            "/v1/consents",
            &shipper,
            crate::helpers::consent_for(&partner_id, &shipment),
        )
        .await
        .id();
    assert_eq!(
        decide_by_number(&app, &partner, TRACKING).await["allowed"],
        true
    );
    let revoked = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            &shipper,
            json!({"reason": "the customer objected by phone"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);

    // The leaves commit; the values are only beside the log.
    for event in app.log().await {
        let text = event.payload.as_str();
        assert!(!text.contains(TRACKING), "{text}");
        assert!(!text.contains(SUBJECT), "{text}");
        assert!(!text.contains("objected by phone"), "{text}");
    }
    let before = export(&app, &regulator, &shipment).await;
    let (_, line) = registration_line(&before);
    assert_eq!(line["openings"][POINTER]["value"], TRACKING, "{line}");

    // Only privacy officers and admins erase; a reason is required and nothing is recorded
    // without one.
    let path = format!("/v1/shipments/{shipment}/erase");
    let size = app.log_size().await;
    problem(
        &app.post(&path, &regulator, json!({"reason": "x"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    problem(
        &app.post(&path, &shipper, json!({"reason": "x"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    field_problem(
        &app.post(&path, &officer, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "reason",
    );
    field_problem(
        &app.post(&path, &officer, json!({"reason": ""})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "reason",
    );
    assert_eq!(
        app.log_size().await,
        size,
        "a refused erasure records nothing"
    );

    let erased = app
        .post(&path, &officer, json!({"reason": "Art. 17 request #42"}))
        .await;
    let body = expect(&erased, StatusCode::OK);
    assert_eq!(body["shipments"], 1, "{body}");
    let position = body["position"].as_u64().expect("position");
    assert_eq!(position, size, "the erasure is the next event");

    // The store's rows are gone after the call, on either backend.
    let stream = app
        .state
        .store
        .read_stream("shipment", &shipment)
        .await
        .expect("read");
    assert!(stream[0].openings.is_empty(), "openings deleted");
    assert!(app
        .state
        .store
        .recipient_shipments(SUBJECT)
        .await
        .expect("lookup")
        .is_empty());
    let consent_stream = app
        .state
        .store
        .read_stream("consent", &consent)
        .await
        .expect("read");
    assert!(
        consent_stream.iter().all(|e| e.openings.is_empty()),
        "the revocation reason of a consent scoped to the shipment is erased too"
    );
    let denial = app
        .state
        .store
        .read_range(asked.position, 1)
        .await
        .expect("read");
    assert!(
        denial[0].openings.is_empty(),
        "the number a denial recorded before registration is erased with the shipment"
    );
    // The erasure's record holds no personal data either.
    let record = &app.log().await[usize::try_from(position).expect("index")];
    assert_eq!(record.event_type, "PersonalDataErased");
    assert!(!record.payload.as_str().contains("Art. 17 request"));

    // Decisions by the number: unknown; views: erased.
    let answer = decide_by_number(&app, &partner, TRACKING).await;
    assert_eq!(answer["allowed"], false, "{answer}");
    let recorded = app.log().await.pop().expect("the decision's record");
    let recorded: Value = recorded.opened_value().expect("payload");
    assert_eq!(
        recorded["TrackingAccessDenied"]["reason"], "unknown_shipment",
        "recorded as unknown (the partner is told no_consent, SPEC §2): {recorded}"
    );
    let view = expect(
        &app.get(&format!("/v1/shipments/{shipment}"), &shipper)
            .await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(view["tracking_number"], json!({"erased": true}), "{view}");
    assert_eq!(view["recipient_ref"], json!({"erased": true}), "{view}");
    let consent_view = expect(
        &app.get(&format!("/v1/consents/{consent}"), &shipper).await,
        StatusCode::OK,
    )
    .clone();
    assert_eq!(
        consent_view["revocation"]["reason"],
        json!({"erased": true}),
        "{consent_view}"
    );
    assert!(
        !consent_view.to_string().contains("objected by phone"),
        "the history shows the reason erased too: {consent_view}"
    );

    // A second erasure finds nothing left to erase.
    problem(
        &app.post(&path, &officer, json!({"reason": "again"})).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    // The number is free again: the carrier may reuse it.
    register(&app, &shipper_id, TRACKING, "crm-subject-78").await;

    // Bundles: the one exported before still verifies; a new one says what was erased.
    let key = app.vkey().await;
    verify_bundle(&before, &key).expect("the bundle exported before the erasure verifies");
    let after = export(&app, &regulator, &shipment).await;
    let verified = verify_bundle(&after, &key).expect("a bundle exported after verifies");
    assert!(
        verified.erased >= 2,
        "tracking number and recipient reference"
    );
    let (_, line) = registration_line(&after);
    assert!(line.get("openings").is_none(), "{line}");
    let erased: Vec<&str> = line["erased"]
        .as_array()
        .expect("erased")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(erased.contains(&POINTER), "{line}");
    assert!(!after.contains(TRACKING) && !after.contains(SUBJECT));
}

#[actix_web::test]
async fn a_changed_opening_in_a_bundle_is_refused_naming_its_line() {
    let app = spawn_app().await;
    let (shipper_id, _) = app.principal("shipper", "Shop").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = register(&app, &shipper_id, TRACKING, SUBJECT).await;
    let bundle = export(&app, &regulator, &shipment).await;
    let key = app.vkey().await;
    let verified = verify_bundle(&bundle, &key).expect("verifies");
    assert_eq!(
        verified.openings, 2,
        "tracking number and recipient reference"
    );
    let (n, mut line) = registration_line(&bundle);
    line["openings"][POINTER]["value"] = json!("ERASE-TRK-0002");
    let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
    lines[n - 1] = line.to_string();
    let err = verify_bundle(&lines.join("\n"), &key).expect_err("a changed opening");
    assert_eq!(err.line, n);
    assert!(matches!(err.kind, BundleErrorKind::Opening(_)), "{err}");
}

#[actix_web::test]
async fn a_subject_erasure_erases_every_shipment_of_the_reference_and_the_dsar_says_so() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let a = register(&app, &shipper_id, "SUBJ-A-1", SUBJECT).await;
    let b = register(&app, &shipper_id, "SUBJ-B-1", SUBJECT).await;
    let other = register(&app, &shipper_id, "SUBJ-C-1", "crm-someone-else").await;

    field_problem(
        &app.post("/v1/subjects/erase", &officer, json!({"reason": "x"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "recipient_ref",
    );
    let erased = app
        .post(
            "/v1/subjects/erase",
            &app.admin,
            json!({"recipient_ref": SUBJECT, "reason": "Art. 17 by e-mail"}),
        )
        .await;
    let body = expect(&erased, StatusCode::OK).clone();
    assert_eq!(body["shipments"], 2, "{body}");
    for (id, gone) in [(&a, true), (&b, true), (&other, false)] {
        let view = expect(
            &app.get(&format!("/v1/shipments/{id}"), &shipper).await,
            StatusCode::OK,
        )
        .clone();
        assert_eq!(
            view["tracking_number"] == json!({"erased": true}),
            gone,
            "{view}"
        );
    }

    // The DSAR for the reference answers that it was erased, when and by which record.
    let dsar = app
        .get(&format!("/v1/audit/dsar?recipient_ref={SUBJECT}"), &officer)
        .await;
    let dsar = expect(&dsar, StatusCode::OK).clone();
    assert_eq!(dsar["shipments"], json!([]), "{dsar}");
    assert_eq!(dsar["erasures"][0]["position"], body["position"], "{dsar}");
    assert!(dsar["erasures"][0]["erased_at"].is_string(), "{dsar}");
    // A reference never erased has no erasures.
    let dsar = app
        .get("/v1/audit/dsar?recipient_ref=crm-someone-else", &officer)
        .await;
    assert_eq!(expect(&dsar, StatusCode::OK)["erasures"], json!([]));

    // Erasing a reference with nothing left is recorded all the same, and answers 0.
    let again = app
        .post(
            "/v1/subjects/erase",
            &officer,
            json!({"recipient_ref": SUBJECT, "reason": "repeated request"}),
        )
        .await;
    assert_eq!(expect(&again, StatusCode::OK)["shipments"], 0);
}

/// `serve --retention-days N` (SPEC §12, Art. 5(1)(e)): a sweep erases, recorded, every
/// shipment with no event for more than N days, and keeps one a partner read since.
#[actix_web::test]
async fn retention_erases_shipments_with_no_event_in_the_period_and_keeps_the_others() {
    let app = spawn_app().await;
    let (shipper_id, shipper) = app.principal("shipper", "Shop").await;
    let (partner_id, partner) = app.partner("Insure").await;
    let old = register(&app, &shipper_id, "RET-OLD-1", "crm-ret-1").await;
    // A number nobody registered, asked for: it belongs to no shipment, and ages out too.
    decide_by_number(&app, &partner, "RET-NOBODY-1").await;
    let asked = app.log().await.pop().expect("the denial");
    assert_eq!(asked.openings.len(), 1);
    let read = register(&app, &shipper_id, "RET-READ-1", "crm-ret-2").await;
    app.post(
        "/v1/consents",
        &shipper,
        crate::helpers::consent_for(&partner_id, &read),
    )
    .await;
    // Forty days on, the partner reads one of them.
    app.clock
        .set(chrono::Utc::now() + chrono::Duration::days(40));
    assert_eq!(
        decide_by_number(&app, &partner, "RET-READ-1").await["allowed"],
        true
    );
    let size = app.log_size().await;

    let erased = consent_ledger_app::erasure::sweep_retention(&app.state, 30)
        .await
        .expect("sweep");
    assert_eq!(erased, 1, "only the shipment nobody read in 30 days");
    let log = app.log().await;
    let denial = &log[usize::try_from(asked.position.get()).expect("index")];
    assert!(
        denial.openings.is_empty(),
        "the old denial's number is erased"
    );
    let last = log.last().expect("the denials' erasure");
    let payload = last.opened_value().expect("payload");
    assert_eq!(
        payload["PersonalDataErased"]["shipments"],
        json!([]),
        "{payload}"
    );
    assert!(
        payload["PersonalDataErased"]["asked_before"].is_u64(),
        "{payload}"
    );
    let record = &log[usize::try_from(size).expect("index")];
    assert_eq!(record.event_type, "PersonalDataErased");
    assert_eq!(record.actor, "retention");
    let payload = record.opened_value().expect("payload");
    assert_eq!(
        payload["PersonalDataErased"]["cause"], "retention",
        "{payload}"
    );
    assert_eq!(
        payload["PersonalDataErased"]["retention_days"], 30,
        "{payload}"
    );
    assert_eq!(
        payload["PersonalDataErased"]["shipments"],
        json!([old]),
        "{payload}"
    );
    for (id, gone) in [(&old, true), (&read, false)] {
        let view = expect(
            &app.get(&format!("/v1/shipments/{id}"), &shipper).await,
            StatusCode::OK,
        )
        .clone();
        assert_eq!(
            view["tracking_number"] == json!({"erased": true}),
            gone,
            "{view}"
        );
    }
    // A second sweep finds nothing more; the operator sees the count.
    let again = consent_ledger_app::erasure::sweep_retention(&app.state, 30)
        .await
        .expect("sweep");
    assert_eq!(again, 0);
    assert_eq!(
        app.log_size().await,
        size + 2,
        "the shipments' erasure and the denials' one; nothing recorded for nothing erased"
    );
    let metrics = app.get("/metrics", &app.admin).await;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(
        text.contains("consent_ledger_retention_erased_shipments_total 1"),
        "{text}"
    );
}

/// The files of `dir` (not descending) that hold `value`'s bytes.
fn files_holding(dir: &std::path::Path, value: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter(|e| {
            std::fs::read(e.path())
                .expect("read a file")
                .windows(value.len())
                .any(|w| w == value.as_bytes())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The GDPR projection's rows `filter` selects.
async fn rows(
    app: &TestApp,
    filter: &consent_ledger_store::gdpr::AccessFilter,
) -> Vec<consent_ledger_store::gdpr::GdprAccess> {
    app.state
        .store
        .gdpr_access(filter, None, 100)
        .await
        .expect("rows")
}

/// SPEC §12's 60 s under a load the GDPR audit projection cannot keep up with (issue 18): the
/// erasure's clean-up blanks the rows the projection holds at once, without waiting for it to
/// reach the erasure in log order, and applying the rest later brings no erased value back.
#[actix_web::test]
async fn an_erasure_blanks_the_audit_projection_however_far_behind_the_log_it_is() {
    use consent_ledger_store::gdpr::{AccessFilter, SubjectKey};

    let app = spawn_app().await;
    let (shipper_id, _) = app.principal("shipper", "Shop").await;
    let (_, partner) = app.partner("Insure").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let number = "BEHIND-TRK-0001";
    // Asked for before it was registered, then after.
    decide_by_number(&app, &partner, number).await;
    let shipment = register(&app, &shipper_id, number, "crm-behind-1").await;
    decide_by_number(&app, &partner, number).await;
    let store = &app.state.store;
    let size = store.next_position().await.expect("size");
    app.state.gdpr.catch_up_to(size).await.expect("catch up");
    let key = SubjectKey::Tracking {
        carrier: "DHL".into(),
        tracking_number: number.into(),
    };
    let by_number = AccessFilter {
        carrier_tracking: Some(("DHL".into(), number.into())),
        ..AccessFilter::default()
    };
    assert_eq!(
        store.gdpr_shipments(&key).await.expect("shipments").len(),
        1
    );
    assert_eq!(
        rows(&app, &by_number)
            .await
            .iter()
            .filter(|r| r.tracking_number.as_deref() == Some(number))
            .count(),
        2,
        "the projection holds the number in both decisions' rows"
    );

    // The projection is left behind: decisions it has not applied, then the erasure.
    register(&app, &shipper_id, "BEHIND-TRK-0002", "crm-behind-2").await;
    for _ in 0..3 {
        decide_by_number(&app, &partner, "BEHIND-TRK-0002").await;
    }
    let erased = app
        .post(
            &format!("/v1/shipments/{shipment}/erase"),
            &officer,
            json!({"reason": "the recipient asked (Art. 17)"}),
        )
        .await;
    let erased = expect(&erased, StatusCode::OK)["position"]
        .as_u64()
        .expect("position");
    app.scrubbed().await;

    let applied = store.gdpr_position().await.expect("position").get();
    assert!(
        applied <= erased,
        "the clean-up did not catch the projection up to the erasure ({applied} > {erased})"
    );
    let shipment_rows = AccessFilter {
        shipment_id: Some(shipment.clone()),
        ..AccessFilter::default()
    };
    for _ in 0..2 {
        assert!(store
            .gdpr_shipments(&key)
            .await
            .expect("shipments")
            .is_empty());
        assert!(
            rows(&app, &by_number).await.is_empty(),
            "no row is found by the erased number"
        );
        let kept = rows(&app, &shipment_rows).await;
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept.iter().all(|r| r.tracking_number.is_none()), "{kept:?}");
        assert_eq!(
            files_holding(app.data_dir(), number),
            Vec::<String>::new(),
            "no file holds the erased number"
        );
        // Then the projection applies the rest, the erasure among it.
        let size = store.next_position().await.expect("size");
        app.state.gdpr.catch_up_to(size).await.expect("catch up");
        app.state
            .store
            .scrub(std::time::Duration::from_secs(10))
            .await
            .expect("scrub");
    }
}

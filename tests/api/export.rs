//! SPEC §6: a one-shipment export bundle verifies offline with the vkey alone and holds no
//! other shipment's events; an altered line, a dropped proof hash and another key are refused.

use actix_web::http::StatusCode;
use consent_ledger_audit::bundle::{verify_bundle, BundleErrorKind};
use consent_ledger_audit::note::VerifierKey;
use serde_json::{json, Value};

use crate::helpers::{consent_for, spawn_app};

#[actix_web::test]
async fn a_one_shipment_bundle_verifies_offline_and_holds_only_that_shipment() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let a = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let b = app.shipment(&shipper, "DHL", "JJD2", "DE").await;
    app.post("/v1/consents", &shipper, consent_for(&partner, &a))
        .await;
    for shipment in [&a, &b, &a, &b, &a] {
        let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
        assert_eq!(
            app.post("/v1/decisions", &partner_token, ask).await.status,
            StatusCode::OK
        );
    }
    let vkey_text = app
        .get_anonymous("/v1/log/vkey")
        .await
        .body
        .as_str()
        .expect("text")
        .trim()
        .to_owned();
    let vkey: VerifierKey = vkey_text.parse().expect("vkey");

    app.get(&format!("/v1/audit/export?shipment_id={a}"), &shipper)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let export = app
        .get(&format!("/v1/audit/export?shipment_id={a}"), &regulator)
        .await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.content_type, "application/x-ndjson");
    let bundle = export.body.as_str().expect("NDJSON text").to_owned();
    let verified = verify_bundle(&bundle, &vkey).expect("the bundle verifies");
    assert_eq!(
        verified.events, 4,
        "the registration and three decisions of shipment A"
    );
    assert_eq!(verified.checkpoint.size(), app.log_size().await);
    let header: Value =
        serde_json::from_str(bundle.lines().next().expect("header")).expect("header JSON");
    assert_eq!(header["format"], "consent-ledger-bundle/1");
    assert_eq!(header["vkey"], vkey_text.as_str());
    for line in bundle.lines().skip(1) {
        let line: Value = serde_json::from_str(line).expect("line JSON");
        let leaf = line["leaf"].as_str().expect("leaf");
        assert!(leaf.contains(&a), "only shipment A: {leaf}");
        assert!(!leaf.contains(&b), "never shipment B: {leaf}");
    }

    // One changed character of an event: refused, naming its line.
    let lines: Vec<&str> = bundle.lines().collect();
    let altered = lines[2].replacen("insurance_claim", "insurance_claik", 1);
    let tampered = [lines[0], lines[1], &altered, lines[3], lines[4]].join("\n");
    let err = verify_bundle(&tampered, &vkey).expect_err("an altered event");
    assert_eq!(err.line, 3);
    assert!(matches!(err.kind, BundleErrorKind::NotIncluded(_)), "{err}");
    // A dropped proof hash: refused.
    let mut line: Value = serde_json::from_str(lines[1]).expect("line");
    line["inclusion_proof"].as_array_mut().expect("proof").pop();
    let dropped = [lines[0].to_owned(), line.to_string()].join("\n");
    assert_eq!(
        verify_bundle(&dropped, &vkey)
            .expect_err("a dropped hash")
            .line,
        2
    );
    // Another log's key: the checkpoint does not open.
    let other = consent_ledger_audit::LogKey::generate("consent-ledger.local/log").expect("key");
    let other: VerifierKey = other.vkey().parse().expect("vkey");
    let err = verify_bundle(&bundle, &other).expect_err("another key");
    assert_eq!(err.line, 1);
    assert!(matches!(err.kind, BundleErrorKind::Checkpoint(_)), "{err}");

    // The command line does the same, offline, from files.
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("bundle.ndjson"), &bundle).expect("write");
    std::fs::write(dir.path().join("altered.ndjson"), &tampered).expect("write");
    let run = |file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
            .env_remove("DATABASE_URL")
            .args(["verify", file, "--vkey", &vkey_text])
            .current_dir(dir.path())
            .output()
            .expect("run verify")
    };
    let ok = run("bundle.ndjson");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run("altered.ndjson");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

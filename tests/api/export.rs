//! SPEC §6: a one-shipment export bundle verifies offline with the vkey alone and holds no
//! other shipment's events; an altered line, a dropped proof hash and another key are refused.

use actix_web::http::StatusCode;
use consent_ledger_audit::bundle::{verify_bundle, BundleErrorKind};
use consent_ledger_audit::note::VerifierKey;
use serde_json::{json, Value};

use chrono::Duration;

use crate::helpers::{consent_for, problem, rfc3339, spawn_app, start_time};

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
    assert_eq!(header["format"], "consent-ledger-bundle/2");
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

/// One recorded decision: its position, when, by whom, about what, and how it went.
struct Recorded {
    position: u64,
    label: &'static str,
}

/// The positions and labels of a bundle's event lines, after checking it verifies with `vkey`
/// and holds `events` lines.
fn bundle_positions(bundle: &str, vkey: &VerifierKey) -> Vec<u64> {
    let verified = verify_bundle(bundle, vkey).expect("the bundle verifies");
    let positions: Vec<u64> = bundle
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line JSON")["position"]
                .as_u64()
                .expect("position")
        })
        .collect();
    assert_eq!(verified.events, positions.len());
    positions
}

/// The positions of the bundle `query` exports for `token`, the same whether the GDPR
/// projection has applied none of the log (the export scans it) or all of it (the export
/// selects through its indexes).
pub async fn export_positions(app: &crate::helpers::TestApp, token: &str, query: &str) -> Vec<u64> {
    let vkey: VerifierKey = app.vkey().await;
    let mut found = Vec::new();
    for coverage in ["none", "all"] {
        if coverage == "none" {
            app.state.store.gdpr_reset().await.expect("reset");
        } else {
            app.state.gdpr.catch_up().await.expect("catch up");
        }
        let r = app.get(&format!("/v1/audit/export?{query}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        let bundle = match &r.body {
            Value::String(text) => text.clone(),
            header => header.to_string(),
        };
        found.push(bundle_positions(&bundle, &vkey));
    }
    assert_eq!(found[0], found[1], "?{query}: scanned, then indexed");
    found.remove(0)
}

/// SPEC §7: `/v1/audit/export` takes the access filters of `/v1/audit/access` — shipment_id,
/// carrier + tracking_number, partner_id, shipper_id, from, to (on the decision's time) and
/// outcome — and every filtered bundle verifies offline and holds exactly the decisions asked
/// for (and, when one shipment is named without a partner, its registration).
#[actix_web::test]
async fn every_access_filter_selects_exactly_its_decisions_and_the_bundle_verifies() {
    let app = spawn_app().await;
    let (shop_a, shop_a_token) = app.principal("shipper", "Shop A").await;
    let (shop_b, shop_b_token) = app.principal("shipper", "Shop B").await;
    let (p1, p1_token) = app.partner("Insure").await;
    let (p2, p2_token) = app.partner("Pay").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let a = app.shipment(&shop_a_token, "DHL", "JJD1", "DE").await;
    let b = app.shipment(&shop_a_token, "UPS", "1Z2", "FR").await;
    let c = app.shipment(&shop_b_token, "DHL", "JJD3", "NL").await;
    for (token, partner, shipment) in [
        (&shop_a_token, &p1, &a),
        (&shop_a_token, &p1, &b),
        (&shop_b_token, &p2, &c),
    ] {
        assert_eq!(
            app.post("/v1/consents", token, consent_for(partner, shipment))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let registration = |events: &[consent_ledger_store::StoredEvent], id: &str| {
        events
            .iter()
            .find(|e| e.stream_type == "shipment" && e.stream_id == id)
            .map(|e| e.position.get())
            .expect("registered")
    };

    // Seven decisions, one a minute from t1 on.
    let t1 = start_time() + Duration::minutes(10);
    let mut recorded = Vec::new();
    let decide = |label: &'static str, token: String, ask: Value| {
        let app = &app;
        async move {
            let r = app.post("/v1/decisions", &token, ask).await;
            assert_eq!(r.status, StatusCode::OK, "{label}: {}", r.body);
            assert_eq!(
                r.body["allowed"],
                label.ends_with("allowed"),
                "{label}: {}",
                r.body
            );
            Recorded {
                position: r.position(),
                label,
            }
        }
    };
    let ask = |shipment: &str| json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    let by_tracking = |carrier: &str, tracking: &str| json!({"carrier": carrier, "tracking_number": tracking, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    app.clock.set(t1);
    recorded.push(decide("t1 p1 a allowed", p1_token.clone(), ask(&a)).await);
    app.clock.set(t1 + Duration::minutes(1));
    recorded.push(decide("t2 p1 c denied", p1_token.clone(), ask(&c)).await);
    app.clock.set(t1 + Duration::minutes(2));
    recorded.push(decide("t3 p2 c allowed", p2_token.clone(), ask(&c)).await);
    app.clock.set(t1 + Duration::minutes(3));
    recorded.push(decide("t4 p2 a denied", p2_token.clone(), ask(&a)).await);
    // The GDPR projection applies the log up to here: an export selects this part through its
    // indexes and scans the rest.
    let midway = app.state.gdpr.catch_up().await.expect("catch up").get();
    app.clock.set(t1 + Duration::minutes(4));
    recorded.push(
        decide(
            "t5 p1 DHL/JJD9 unknown",
            p1_token.clone(),
            by_tracking("DHL", "JJD9"),
        )
        .await,
    );
    let d = app.shipment(&shop_b_token, "DHL", "JJD9", "AT").await;
    app.clock.set(t1 + Duration::minutes(5));
    recorded.push(decide("t6 p1 d denied", p1_token.clone(), ask(&d)).await);
    app.clock.set(t1 + Duration::minutes(6));
    recorded.push(decide("t7 p1 b allowed", p1_token.clone(), ask(&b)).await);
    let events = app.log().await;
    let at = |labels: &[&str]| -> Vec<u64> {
        let mut positions: Vec<u64> = labels
            .iter()
            .map(|l| {
                recorded
                    .iter()
                    .find(|r| r.label.starts_with(l))
                    .unwrap_or_else(|| panic!("no decision {l}"))
                    .position
            })
            .collect();
        positions.sort_unstable();
        positions
    };
    let with = |mut positions: Vec<u64>, extra: u64| {
        positions.push(extra);
        positions.sort_unstable();
        positions
    };
    let vkey: VerifierKey = app.vkey().await;
    let time = |m: i64| rfc3339(t1 + Duration::minutes(m));

    let cases: Vec<(String, Vec<u64>)> = vec![
        (
            String::new(),
            at(&["t1", "t2", "t3", "t4", "t5", "t6", "t7"]),
        ),
        (
            format!("shipment_id={a}"),
            with(at(&["t1", "t4"]), registration(&events, &a)),
        ),
        (
            "carrier=DHL&tracking_number=JJD9".into(),
            with(at(&["t5", "t6"]), registration(&events, &d)),
        ),
        // Carrier codes and tracking numbers are case-insensitive.
        (
            "carrier=dhl&tracking_number=jjd1".into(),
            with(at(&["t1", "t4"]), registration(&events, &a)),
        ),
        (
            format!("partner_id={p1}"),
            at(&["t1", "t2", "t5", "t6", "t7"]),
        ),
        (format!("shipper_id={shop_a}"), at(&["t1", "t4", "t7"])),
        (format!("shipper_id={shop_b}"), at(&["t2", "t3", "t6"])),
        // from ≤ decided_at < to.
        (
            format!("from={}&to={}", time(2), time(5)),
            at(&["t3", "t4", "t5"]),
        ),
        (format!("from={}", time(6)), at(&["t7"])),
        (format!("to={}", time(1)), at(&["t1"])),
        ("outcome=denied".into(), at(&["t2", "t4", "t5", "t6"])),
        ("outcome=allowed".into(), at(&["t1", "t3", "t7"])),
        (
            format!("partner_id={p1}&outcome=denied&shipper_id={shop_b}"),
            at(&["t2", "t6"]),
        ),
        // A partner's view of one shipment holds its decisions only.
        (format!("shipment_id={a}&partner_id={p2}"), at(&["t4"])),
        // The shipment and the tracking number name different shipments: nothing.
        (
            format!("shipment_id={a}&carrier=UPS&tracking_number=1Z2"),
            Vec::new(),
        ),
        (format!("shipment_id={b}&shipper_id={shop_b}"), Vec::new()),
    ];
    // Each filter selects the same, whether the GDPR projection has applied part of the log
    // (index, then scan), none of it (scan) or all of it (index).
    let size = app.log_size().await;
    assert!(0 < midway && midway < size, "{midway} of {size}");
    for coverage in ["part", "none", "all"] {
        match coverage {
            "none" => app.state.store.gdpr_reset().await.expect("reset"),
            "all" => {
                app.state.gdpr.catch_up().await.expect("catch up");
            }
            _ => {}
        }
        for (query, expected) in &cases {
            for token in [&regulator, &officer] {
                let r = app.get(&format!("/v1/audit/export?{query}"), token).await;
                assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
                assert_eq!(r.content_type, "application/x-ndjson");
                // A bundle of the header alone is one JSON object, which the helper parses.
                let bundle = match &r.body {
                    Value::String(text) => text.clone(),
                    header => header.to_string(),
                };
                assert_eq!(
                    &bundle_positions(&bundle, &vkey),
                    expected,
                    "?{query} ({coverage} of the log projected)"
                );
            }
        }
    }
    app.get("/v1/audit/export", &shop_a_token)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // A partner exports its own reads (SPEC §14, proof of lawful receipt): they verify, name it
    // alone, and leave out the denials that hid a parcel from it; another partner's is 404.
    let own = app.get("/v1/audit/export", &p1_token).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let bundle = own.body.as_str().expect("NDJSON").to_owned();
    let positions = bundle_positions(&bundle, &vkey);
    assert!(!positions.is_empty(), "{bundle}");
    for line in bundle.lines().skip(1) {
        let line: Value = serde_json::from_str(line).expect("line");
        let leaf: Value = serde_json::from_str(line["leaf"].as_str().expect("leaf")).expect("leaf");
        let (_, decision) = leaf["payload"]
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("a decision");
        assert_eq!(decision["partner"], p1.as_str(), "{leaf}");
        assert!(
            !matches!(
                decision["reason"].as_str(),
                Some("no_consent" | "unknown_shipment")
            ),
            "{leaf}"
        );
    }
    app.get(&format!("/v1/audit/export?partner_id={p2}"), &p1_token)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

/// A selection denser than the index pays for (a partner's thousands of reads in a row) is
/// scanned from where that shows: the bundle holds the same, whether the GDPR projection
/// applied the log or not, for the dense partner, the sparse one and their shipment.
#[actix_web::test]
async fn a_dense_selection_switches_from_the_index_to_the_scan_and_loses_nothing() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (busy, busy_token) = app.partner("Busy").await;
    let (quiet, quiet_token) = app.partner("Quiet").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-DENSE", "DE").await;
    for partner in [&busy, &quiet] {
        let r = app
            .post("/v1/consents", &shipper, consent_for(partner, &shipment))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    for _ in 0..5 {
        let items: Vec<Value> = (0..1_000).map(|_| ask.clone()).collect();
        let r = app
            .post(
                "/v1/decisions/batch",
                &busy_token,
                json!({ "items": items }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = app.post("/v1/decisions", &quiet_token, ask.clone()).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let export = |query: String| {
        let (app, regulator) = (&app, &regulator);
        async move { export_positions(app, regulator, &query).await.len() }
    };
    assert_eq!(export(format!("partner_id={busy}")).await, 5_000);
    assert_eq!(export(format!("partner_id={quiet}")).await, 5);
    assert_eq!(
        export(format!("shipment_id={shipment}")).await,
        5_006,
        "the registration and every decision"
    );
    assert_eq!(
        export(format!("shipment_id={shipment}&partner_id={quiet}")).await,
        5
    );
}

/// The positions of a page of two rows of `/v1/audit/access?{query}` after `cursor`, and the
/// cursor of the next page.
async fn access_page(
    app: &crate::helpers::TestApp,
    token: &str,
    query: &str,
    cursor: Option<String>,
) -> (Vec<u64>, Option<String>) {
    let after = cursor.map(|c| format!("&after={c}")).unwrap_or_default();
    let r = app
        .get(&format!("/v1/audit/access?{query}&limit=2{after}"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    let positions = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["position"].as_u64().expect("position"))
        .collect();
    (positions, r.body["next_after"].as_str().map(str::to_owned))
}

/// A time window's decisions are found through the GDPR projection's time index as the span of
/// the log that holds them, whatever order their times came in (a decision's time is taken
/// before it commits, so two decisions may commit in the other order): the bundle holds exactly
/// those decided in the window, whether the projection applied the log or not.
#[actix_web::test]
async fn a_time_window_holds_its_decisions_whatever_order_their_times_came_in() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-WINDOW", "DE").await;
    let r = app
        .post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let t0 = start_time() + Duration::minutes(10);
    let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    // (seconds after t0, position), in log order.
    let mut decided = Vec::new();
    for seconds in [300, 60, 180, 120, 240, 360, 0, 190, 150] {
        app.clock.set(t0 + Duration::seconds(seconds));
        let r = app.post("/v1/decisions", &partner_token, ask.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        decided.push((seconds, r.position()));
    }
    let at = |s: i64| rfc3339(t0 + Duration::seconds(s));
    for (from, to) in [
        (Some(120), Some(240)),
        (Some(150), Some(190)),
        (Some(181), None),
        (None, Some(61)),
        (Some(400), None),
        (None, Some(0)),
        (Some(0), Some(361)),
    ] {
        let mut query = Vec::new();
        query.extend(from.map(|s| format!("from={}", at(s))));
        query.extend(to.map(|s| format!("to={}", at(s))));
        let query = query.join("&");
        let expected: Vec<u64> = decided
            .iter()
            .filter(|(s, _)| from.is_none_or(|f| *s >= f) && to.is_none_or(|t| *s < t))
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(
            export_positions(&app, &regulator, &query).await,
            expected,
            "?{query}"
        );
        // The access view, two rows a page, walks the same span (SPEC §7).
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let (positions, next) = access_page(&app, &regulator, &query, after).await;
            paged.extend(positions);
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, expected, "/v1/audit/access?{query}");
    }
    // A window still open: what is decided in it while a reader pages through it is on the
    // later pages.
    let query = format!("from={}", at(100));
    let (mut paged, mut after) = access_page(&app, &regulator, &query, None).await;
    for seconds in [500, 110] {
        app.clock.set(t0 + Duration::seconds(seconds));
        let r = app.post("/v1/decisions", &partner_token, ask.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        decided.push((seconds, r.position()));
    }
    while let Some(cursor) = after.take() {
        let (positions, next) = access_page(&app, &regulator, &query, Some(cursor)).await;
        paged.extend(positions);
        after = next;
    }
    let expected: Vec<u64> = decided
        .iter()
        .filter(|(s, _)| *s >= 100)
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(
        paged, expected,
        "/v1/audit/access?{query}, decisions made meanwhile"
    );
}

/// SPEC §7, §10: a bad filter value is a 422 problem naming the field, and nothing is exported.
#[actix_web::test]
async fn bad_export_filters_are_422_naming_the_field() {
    let app = spawn_app().await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let size = app.log_size().await;
    for (query, field) in [
        ("shipment_id=nope", "shipment_id"),
        ("carrier=DHL", "tracking_number"),
        ("tracking_number=JJD1", "carrier"),
        ("carrier=D%20HL&tracking_number=JJD1", "carrier"),
        ("carrier=DHL&tracking_number=JJ%2FD1", "tracking_number"),
        ("partner_id=12", "partner_id"),
        ("shipper_id=x", "shipper_id"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "to"),
        ("outcome=maybe", "outcome"),
        ("outcome=Allowed", "outcome"),
        ("since=-1", "since"),
        ("since=ten", "since"),
        ("color=red", "color"),
    ] {
        let r = app
            .get(&format!("/v1/audit/export?{query}"), &regulator)
            .await;
        problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
        assert_eq!(r.field(), field, "?{query}: {}", r.body);
    }
    // A size past the log's end.
    let r = app
        .get(
            &format!("/v1/audit/export?since={}", size + 100),
            &regulator,
        )
        .await;
    problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    assert_eq!(r.field(), "since");
}

/// Runs the real binary; returns (success, stdout, stderr).
fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run consent-ledger");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SPEC §6, §8: `consent-ledger verify BUNDLE --vkey VKEY --since OLD_CHECKPOINT` shows, offline,
/// that the bundle's checkpoint extends an older checkpoint the verifier trusts, from the
/// consistency proof an export made with `since` (HTTP) or `--since-size` (command line)
/// carries; it refuses an old checkpoint with another root re-signed by the log's own key, a
/// bundle without the proof, and a checkpoint signed by another key, naming line 1.
#[actix_web::test]
async fn verify_since_an_older_checkpoint_through_the_real_binary() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    app.post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
    for _ in 0..3 {
        assert_eq!(
            app.post("/v1/decisions", &partner_token, ask.clone())
                .await
                .status,
            StatusCode::OK
        );
    }
    // The regulator keeps the checkpoint of today …
    let signed = app.post("/v1/log/checkpoint", &app.admin, json!({})).await;
    assert_eq!(signed.status, StatusCode::OK);
    let old_note = signed.body.as_str().expect("note").to_owned();
    let vkey_text = app
        .get_anonymous("/v1/log/vkey")
        .await
        .body
        .as_str()
        .expect("vkey")
        .trim()
        .to_owned();
    let vkey: VerifierKey = vkey_text.parse().expect("vkey");
    let old = vkey.open_checkpoint(&old_note).expect("the old note opens");
    // … and the log grows.
    for _ in 0..5 {
        app.post("/v1/decisions", &partner_token, ask.clone()).await;
    }
    let old_size = old.size();
    assert!(old_size < app.log_size().await);

    let export = |query: String| {
        let app = &app;
        let regulator = regulator.clone();
        async move {
            let r = app
                .get(&format!("/v1/audit/export?{query}"), &regulator)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body.as_str().expect("NDJSON").to_owned()
        }
    };
    let with_proof = export(format!("shipment_id={shipment}&since={old_size}")).await;
    let without_proof = export(format!("shipment_id={shipment}")).await;
    let header: Value =
        serde_json::from_str(with_proof.lines().next().expect("header")).expect("header");
    assert_eq!(header["consistency"]["from_size"], old_size);
    assert!(!header["consistency"]["proof"]
        .as_array()
        .expect("proof")
        .is_empty());
    let header: Value =
        serde_json::from_str(without_proof.lines().next().expect("header")).expect("header");
    assert!(header.get("consistency").is_none(), "{header}");

    // The old checkpoint rewritten to another root and re-signed by the log's own key.
    let key = consent_ledger_audit::LogKey::load(&app.data_dir().join("log.key")).expect("key");
    let forged = consent_ledger_audit::Checkpoint::new(
        old.origin(),
        old_size,
        consent_ledger_audit::tree::leaf_hash(b"another history"),
    )
    .expect("checkpoint")
    .sign(&key);
    assert!(vkey.open_checkpoint(&forged).is_ok(), "validly signed");
    // The genuine old checkpoint signed by another key only.
    let stranger = consent_ledger_audit::LogKey::generate(old.origin()).expect("key");
    let foreign = old.sign(&stranger);

    let dir = tempfile::tempdir().expect("dir");
    let files = [
        ("with-proof.ndjson", with_proof.as_str()),
        ("without-proof.ndjson", without_proof.as_str()),
        ("old.note", old_note.as_str()),
        ("forged.note", forged.as_str()),
        ("foreign.note", foreign.as_str()),
        ("log.vkey", vkey_text.as_str()),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let verify = |bundle: &str, since: &str| {
        run(
            dir.path(),
            &["verify", bundle, "--vkey", "log.vkey", "--since", since],
        )
    };

    let (ok, stdout, stderr) = verify("with-proof.ndjson", "old.note");
    assert!(ok, "{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(summary["verified"], true);
    assert_eq!(summary["consistent_with_size"], old_size);
    assert_eq!(summary["tree_size"], app.log_size().await);
    // The note's text works as well as its file.
    let (ok, _, stderr) = verify("with-proof.ndjson", &old_note);
    assert!(ok, "{stderr}");

    let (ok, _, stderr) = verify("with-proof.ndjson", "forged.note");
    assert!(!ok, "a rewritten old checkpoint must be refused");
    assert!(
        stderr.contains("line 1:") && stderr.contains("not consistent"),
        "{stderr}"
    );
    let (ok, _, stderr) = verify("without-proof.ndjson", "old.note");
    assert!(!ok, "a bundle without a consistency proof must be refused");
    assert!(
        stderr.contains("line 1:") && stderr.contains("no consistency proof"),
        "{stderr}"
    );
    let (ok, _, stderr) = verify("with-proof.ndjson", "foreign.note");
    assert!(!ok, "another key's checkpoint must be refused");
    assert!(
        stderr.contains("--since") && stderr.contains("does not verify"),
        "{stderr}"
    );
    // Without --since the bundle without a proof is still a good bundle.
    let (ok, _, stderr) = run(
        dir.path(),
        &["verify", "without-proof.ndjson", "--vkey", "log.vkey"],
    );
    assert!(ok, "{stderr}");

    // The command line exports the same lines, with the same options.
    let data = app.data_dir().to_path_buf();
    let (backing, _, _) = app.stop().await;
    let out = dir.path().join("cli.ndjson");
    // On the same store the app ran on: its data dir, and its database on PostgreSQL.
    let mut args = vec!["--data-dir", data.to_str().expect("path")];
    let database_url = backing.options().database_url;
    if let Some(url) = &database_url {
        args.extend(["--database-url", url.as_str()]);
    }
    let since = old_size.to_string();
    args.extend([
        "export",
        "--shipment-id",
        &shipment,
        "--since-size",
        &since,
        "--out",
        out.to_str().expect("path"),
    ]);
    let (ok, _, stderr) = run(dir.path(), &args);
    assert!(ok, "{stderr}");
    let cli = std::fs::read_to_string(&out).expect("bundle");
    assert_eq!(
        cli.lines().skip(1).collect::<Vec<_>>(),
        with_proof.lines().skip(1).collect::<Vec<_>>(),
        "the same events with the same proofs"
    );
    let (ok, _, stderr) = verify("cli.ndjson", "old.note");
    assert!(ok, "{stderr}");

    // Bad options name themselves, and no bundle is left behind.
    let bad = dir.path().join("bad.ndjson");
    for (args, named) in [
        (vec!["--from", "yesterday"], "--from"),
        (vec!["--carrier", "DHL"], "--tracking-number"),
        (vec!["--outcome", "maybe"], "--outcome"),
        (vec!["--since-size", "999999"], "--since-size"),
    ] {
        let mut full = vec!["--data-dir", data.to_str().expect("path")];
        if let Some(url) = &database_url {
            full.extend(["--database-url", url.as_str()]);
        }
        full.extend(["export", "--out", bad.to_str().expect("path")]);
        full.extend(args);
        let (ok, _, stderr) = run(dir.path(), &full);
        assert!(!ok, "{full:?}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(!bad.exists(), "{full:?} left a file");
    }
}

/// `/openapi.json` describes every query parameter the export takes.
#[actix_web::test]
async fn the_openapi_document_names_every_export_parameter() {
    let app = spawn_app().await;
    let doc = app.get_anonymous("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let names: Vec<&str> = doc.body["paths"]["/v1/audit/export"]["get"]["parameters"]
        .as_array()
        .expect("export parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in consent_ledger_app::gdpr::filter::FILTER_NAMES
        .iter()
        .chain(&["since"])
    {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
}

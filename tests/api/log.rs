//! SPEC §6 over HTTP: inclusion and consistency proofs from the stored tree verify, with an
//! RFC 9162 verifier, against leaf hashes recomputed from the entries' leaf data.

use actix_web::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consent_ledger_audit::tree::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use serde_json::{json, Value};

use crate::helpers::{consent_for, spawn_app};

fn hash(v: &Value) -> Hash {
    let bytes = B64
        .decode(v.as_str().expect("base64 string"))
        .expect("base64");
    Hash::try_from(bytes.as_slice()).expect("32 bytes")
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().expect("array").iter().map(hash).collect()
}

#[actix_web::test]
async fn proofs_from_the_stored_tree_verify_against_the_entries() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, partner_token) = app.partner("Insure").await;
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    app.post("/v1/consents", &shipper, consent_for(&partner, &shipment))
        .await;
    for _ in 0..20 {
        let ask = json!({"shipment_id": shipment, "purpose": "insurance_claim", "data_categories": ["status_events"]});
        assert_eq!(
            app.post("/v1/decisions", &partner_token, ask).await.status,
            StatusCode::OK
        );
    }
    let size = app.log_size().await;

    let entries = app
        .get(&format!("/v1/log/entries?start=0&end={size}"), &regulator)
        .await;
    assert_eq!(entries.status, StatusCode::OK, "{}", entries.body);
    let leaves: Vec<Hash> = entries.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e["position"], i as u64);
            let leaf = e["leaf"].as_str().expect("leaf");
            let parsed: Value = serde_json::from_str(leaf).expect("leaf is JSON");
            assert_eq!(
                parsed["position"], i as u64,
                "the position is inside the leaf"
            );
            leaf_hash(leaf.as_bytes())
        })
        .collect();
    assert_eq!(leaves.len() as u64, size);

    for tree_size in [1, 2, 3, 7, 8, 9, 16, 17, size] {
        let root = {
            let r = app
                .get(
                    &format!("/v1/log/proof/inclusion?position=0&tree_size={tree_size}"),
                    &partner_token,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            hash(&r.body["root_hash"])
        };
        for position in 0..tree_size {
            let r = app
                .get(
                    &format!("/v1/log/proof/inclusion?position={position}&tree_size={tree_size}"),
                    &partner_token,
                )
                .await;
            assert_eq!(r.body["tree_size"], tree_size);
            verify_inclusion(
                &leaves[position as usize],
                position,
                tree_size,
                &hashes(&r.body["inclusion_proof"]),
                &root,
            )
            .unwrap_or_else(|e| panic!("inclusion of {position} in {tree_size}: {e}"));
        }
        for from in [0, 1, tree_size / 2, tree_size] {
            let r = app
                .get(
                    &format!("/v1/log/proof/consistency?from={from}&to={tree_size}"),
                    &partner_token,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(hash(&r.body["root_hash"]), root);
            verify_consistency(
                from,
                tree_size,
                &hash(&r.body["old_root_hash"]),
                &root,
                &hashes(&r.body["consistency_proof"]),
            )
            .unwrap_or_else(|e| panic!("consistency {from} → {tree_size}: {e}"));
        }
    }

    // A proof of a changed leaf does not verify.
    let r = app
        .get(
            &format!("/v1/log/proof/inclusion?position=3&tree_size={size}"),
            &partner_token,
        )
        .await;
    let mut forged = leaves[3];
    forged[0] ^= 1;
    assert!(verify_inclusion(
        &forged,
        3,
        size,
        &hashes(&r.body["inclusion_proof"]),
        &hash(&r.body["root_hash"])
    )
    .is_err());

    // Bad input names the parameter; the whole log is for auditors.
    app.get(
        &format!("/v1/log/proof/inclusion?position={size}&tree_size={size}"),
        &partner_token,
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .get(
            &format!("/v1/log/proof/inclusion?position=0&tree_size={}", size + 1),
            &partner_token,
        )
        .await;
    assert_eq!(r.field(), "tree_size");
    let r = app
        .get("/v1/log/proof/consistency?from=5&to=2", &partner_token)
        .await;
    assert_eq!(r.field(), "from");
    app.get("/v1/log/entries?start=0&end=5", &shipper)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let r = app
        .get("/v1/log/entries?start=0&end=5000", &regulator)
        .await;
    assert_eq!(r.field(), "end");
}

#[actix_web::test]
async fn the_checkpoint_is_a_signed_note_over_the_stored_root() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let vkey = app.get_anonymous("/v1/log/vkey").await;
    assert_eq!(vkey.status, StatusCode::OK);
    let vkey = vkey.body.as_str().expect("text").trim().to_owned();
    assert!(vkey.starts_with("consent-ledger.local/log+"), "{vkey}");

    let note = app.get("/v1/log/checkpoint", &shipper).await;
    assert_eq!(note.status, StatusCode::OK);
    let note = note.body.as_str().expect("text").to_owned();
    let checkpoint = consent_ledger_audit::note::open_checkpoint(&note, &vkey)
        .expect("the note verifies with the vkey");
    let size = app.log_size().await;
    assert_eq!(checkpoint.size(), size);
    assert_eq!(checkpoint.origin(), "consent-ledger.local/log");
    let proof = app
        .get(
            &format!("/v1/log/proof/inclusion?position=0&tree_size={size}"),
            &shipper,
        )
        .await;
    assert_eq!(*checkpoint.root(), hash(&proof.body["root_hash"]));
    // One changed byte and it no longer opens.
    let forged = note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
    assert!(consent_ledger_audit::note::open_checkpoint(&forged, &vkey).is_err());
    app.get_anonymous("/v1/log/checkpoint")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);

    // The key survives a restart.
    let (dir, clock, admin) = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir, clock, Some(admin)).await;
    assert_eq!(
        app.get_anonymous("/v1/log/vkey")
            .await
            .body
            .as_str()
            .map(str::trim),
        Some(vkey.as_str())
    );
}

/// SPEC §6 and issue 4: checkpoints are kept; a consistency proof between two stored
/// checkpoints verifies against the roots their signed notes carry.
#[actix_web::test]
async fn two_kept_checkpoints_are_consistent() {
    let app = spawn_app().await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let vkey = app
        .get_anonymous("/v1/log/vkey")
        .await
        .body
        .as_str()
        .expect("text")
        .trim()
        .to_owned();
    let open =
        |note: &str| consent_ledger_audit::note::open_checkpoint(note, &vkey).expect("opens");

    let first = app
        .get("/v1/log/checkpoint", &shipper)
        .await
        .body
        .as_str()
        .expect("text")
        .to_owned();
    let first = open(&first);
    for i in 0..5 {
        app.shipment(&shipper, "DHL", &format!("JJD{i}"), "DE")
            .await;
    }
    // Until a new one is signed, the kept one is answered.
    let again = open(
        app.get("/v1/log/checkpoint", &shipper)
            .await
            .body
            .as_str()
            .expect("text"),
    );
    assert_eq!(again.size(), first.size());
    app.post_raw("/v1/log/checkpoint", Some(&shipper), b"", &[])
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let signed = app
        .post_raw("/v1/log/checkpoint", Some(&app.admin), b"", &[])
        .await;
    assert_eq!(signed.status, StatusCode::OK);
    let second = open(signed.body.as_str().expect("text"));
    assert_eq!(second.size(), app.log_size().await);
    assert!(second.size() > first.size());
    let latest = open(
        app.get("/v1/log/checkpoint", &shipper)
            .await
            .body
            .as_str()
            .expect("text"),
    );
    assert_eq!(latest.size(), second.size());

    let proof = app
        .get(
            &format!(
                "/v1/log/proof/consistency?from={}&to={}",
                first.size(),
                second.size()
            ),
            &shipper,
        )
        .await;
    verify_consistency(
        first.size(),
        second.size(),
        first.root(),
        second.root(),
        &hashes(&proof.body["consistency_proof"]),
    )
    .expect("the two checkpoints are consistent");
}

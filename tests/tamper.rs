//! SPEC §5.4: changing, deleting, reordering or inserting any stored event is detected by
//! `consent-ledger audit-log` (the real binary), naming the first bad position. The tampering
//! is done with plain SQL on the real SQLite file, as an operator with database access could.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use consent_ledger_app::principals::{register, CreatePrincipal};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_domain::shipment::ShipmentCommand;
use consent_ledger_domain::values::{
    CarrierCode, CountryCode, DisplayName, Role, ShipmentId, TrackingNumber,
};
use consent_ledger_domain::SystemClock;
use consent_ledger_store::cqrs::CommandMeta;
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");

/// A log of 12 events with a signed checkpoint after the 8th.
async fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let options = StoreOptions {
        data_dir: dir.path().to_path_buf(),
        database_url: None,
    };
    let state = AppState::open(&options, Arc::new(SystemClock), ServiceConfig::default())
        .await
        .expect("open");
    let input = CreatePrincipal {
        role: Role::Shipper,
        name: DisplayName::parse("Shop").expect("name"),
        partner: None,
    };
    let (shipper, _) = register(&state, input, CommandMeta::new("test", "t"))
        .await
        .expect("shipper");
    for i in 0..11 {
        if i == 7 {
            consent_ledger_app::checkpoint::sign_checkpoint(&state)
                .await
                .expect("checkpoint");
        }
        let id = ShipmentId::from_uuid(Uuid::now_v7());
        let command = ShipmentCommand::RegisterShipment {
            id,
            shipper: shipper.id.as_shipper(),
            carrier: CarrierCode::parse("DHL").expect("carrier"),
            tracking_number: TrackingNumber::parse(format!("JJD{i}")).expect("tracking"),
            destination_country: CountryCode::parse("DE").expect("country"),
            recipient_ref: None,
        };
        state
            .shipments
            .execute(&id.to_string(), command, CommandMeta::new("test", "t"))
            .await
            .expect("shipment");
    }
    assert_eq!(state.store.next_position().await.expect("size").get(), 12);
    drop(state);
    dir
}

async fn sql(dir: &Path, statements: &[&str]) {
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    let mut conn = SqliteConnection::connect(&url).await.expect("connect");
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
            .execute(&mut conn)
            .await
            .expect("tamper");
    }
}

/// Runs `audit-log`; returns (success, stdout, stderr).
fn audit(dir: &Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .env_remove("DATABASE_URL")
        .arg("--data-dir")
        .arg(dir)
        .arg("audit-log")
        .output()
        .expect("run audit-log");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_detected_at(dir: &Path, position: u64) {
    let (ok, _, stderr) = audit(dir);
    assert!(!ok, "audit-log must fail");
    assert!(
        stderr.contains(&format!("first bad position {position}:")),
        "expected position {position}: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_log_audits_clean_against_its_checkpoint() {
    let dir = fixture().await;
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON summary");
    assert_eq!(summary["events"], 12);
    assert_eq!(summary["checkpoints_checked"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_byte_is_found_at_its_position() {
    let dir = fixture().await;
    sql(
        dir.path(),
        &[r#"UPDATE events SET payload = replace(payload, '"carrier":"DHL"', '"carrier":"DHM"') WHERE position = 5"#],
    )
    .await;
    assert_detected_at(dir.path(), 5);
}

/// SPEC §12: the tracking number lives beside the log, as the opening of a commitment in the
/// leaf; an opening changed in the store is found as surely as a changed event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_opening_is_found_at_its_position() {
    let dir = fixture().await;
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON summary");
    assert_eq!(
        summary["openings_checked"], 11,
        "one tracking number per shipment"
    );
    sql(
        dir.path(),
        &["UPDATE openings SET value = 'JJD5' WHERE position = 5"],
    )
    .await;
    assert_detected_at(dir.path(), 5);
    let (_, _, stderr) = audit(dir.path());
    assert!(
        stderr.contains("/payload/ShipmentRegistered/tracking_number"),
        "names the field: {stderr}"
    );
    assert!(!stderr.contains("JJD5"), "never prints the value: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_event_is_found_at_its_position() {
    let dir = fixture().await;
    sql(dir.path(), &["DELETE FROM events WHERE position = 7"]).await;
    assert_detected_at(dir.path(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_swapped_events_are_found_at_the_first() {
    let dir = fixture().await;
    sql(
        dir.path(),
        &[
            "UPDATE events SET position = -1 WHERE position = 3",
            "UPDATE events SET position = 3 WHERE position = 4",
            "UPDATE events SET position = 4 WHERE position = -1",
        ],
    )
    .await;
    assert_detected_at(dir.path(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inserted_event_is_found_at_its_position() {
    let dir = fixture().await;
    sql(
        dir.path(),
        &["INSERT INTO events SELECT 12, stream_type, 'forged', 1, event_type, schema_version, actor, request_id, recorded_at, payload FROM events WHERE position = 11"],
    )
    .await;
    assert_detected_at(dir.path(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_with_its_leaf_rewritten_is_caught_by_the_signed_checkpoint() {
    let dir = fixture().await;
    // Change event 2 and rewrite its stored leaf to match: the leaves no longer tell, but the
    // checkpoint signed over the first 8 events does.
    sql(
        dir.path(),
        &["UPDATE events SET actor = 'someone else' WHERE position = 2"],
    )
    .await;
    let store = consent_ledger_store::Store::open(
        &consent_ledger_store::StoreLocation::SqliteFile(dir.path().join("ledger.db")),
    )
    .await
    .expect("open");
    let changed = store
        .read_range(consent_ledger_store::Position::new(2), 1)
        .await
        .expect("read")
        .remove(0);
    let leaf = consent_ledger_audit::leaf::event_leaf_hash(&changed.leaf());
    drop(store);
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let mut conn = SqliteConnection::connect(&url).await.expect("connect");
    sqlx::query("UPDATE merkle_leaves SET hash = ? WHERE idx = 2")
        .bind(leaf.as_slice())
        .execute(&mut conn)
        .await
        .expect("rewrite leaf");
    drop(conn);
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("do not hash to the signed checkpoint of size 8"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_no_longer_parses_is_found_at_its_position() {
    // audit-log hashes the stored payload text as it is, without parsing it: a payload cut
    // into invalid JSON must still be reported as tampering, at its place.
    let dir = fixture().await;
    sql(
        dir.path(),
        &["UPDATE events SET payload = substr(payload, 2) WHERE position = 6"],
    )
    .await;
    assert_detected_at(dir.path(), 6);
}

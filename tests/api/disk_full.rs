//! SPEC §10: when the disk is full the store is unavailable: 503 problem+json with Retry-After,
//! nothing partial is recorded, and once space is back the same request succeeds. The data
//! directory lives on a real 2 MiB tmpfs that the test fills with a file until ENOSPC.

use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use actix_web::http::StatusCode;

use crate::helpers::{assert_gapless, consent_for, spawn_app_in, start_time};

/// A tmpfs mounted for the test's lifetime.
struct Mount(tempfile::TempDir);

impl Mount {
    fn new(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Self(dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: the store's connections close asynchronously after the app stops.
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Writes zeros into `path` until the filesystem refuses.
fn fill(path: &std::path::Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let block = vec![0u8; 16 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[actix_web::test]
async fn a_full_disk_answers_503_and_records_nothing() {
    // Mounting needs root, which this project's machines and CI have (see .library/env).
    let mount = match Mount::new("2m") {
        Ok(m) => m,
        Err(e) => panic!("cannot mount a tmpfs for the disk-full test (needs root): {e}"),
    };
    let dir = tempfile::tempdir_in(mount.0.path()).expect("data dir on the tmpfs");
    let clock = Arc::new(consent_ledger_domain::ManualClock::new(start_time()));
    let app = spawn_app_in(dir, clock, None).await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (partner, _) = app.partner("Insure").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD1", "DE").await;
    let before = app.log_size().await;

    let filler = mount.0.path().join("filler");
    fill(&filler);
    // A body large enough that SQLite must grow the WAL.
    let mut body = consent_for(&partner, &shipment);
    body["dpa_ref"] = serde_json::json!("D".repeat(100));
    let mut refused = None;
    for _ in 0..50 {
        let r = app.post("/v1/consents", &shipper, body.clone()).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let refused = refused.expect("a full disk must eventually refuse a write");
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.problem_type().ends_with("/unavailable"));
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let during = app.log_size().await;
    assert!(during >= before);

    std::fs::remove_file(&filler).expect("free space");
    let r = app.post("/v1/consents", &shipper, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.position(),
        during,
        "the refused write left no position behind"
    );
    let log = app.log().await;
    assert_gapless(&log);
    let (dir, _, _) = app.stop().await;
    drop(dir);
}

//! SPEC §12 against the real binary on its embedded store: after `POST /v1/shipments/{id}/erase`
//! no file of the data directory (`ledger.db`, its `-wal`, `ledger.audit.db` and its `-wal`,
//! the read-model snapshot, anything else there) holds a byte sequence of an erased value
//! within 60 s of the answer; `audit-log` still passes; a bundle exported before the erasure and
//! one exported after both verify offline with `consent-ledger verify`, the later one naming the
//! erased field; a changed opening is refused naming its line; and decisions by the erased
//! tracking number answer `unknown_shipment`, before and after a restart. And, on SQLite and on
//! PostgreSQL (skipped with a notice without `DATABASE_URL`): erasures of one shipment asked for
//! at the same moment record it erased once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::Serve;
use consent_ledger_store::testing::{postgres_server, ScratchDatabase};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");

const TRACKING: &str = "ERASEME7731QX";
const SUBJECT: &str = "subject-ref-5521-zq";
const FREE_TEXT: &str = "free text 9931 about the parcel";
/// Asked for by number, belongs to no shipment: a shipment's erasure does not erase it.
const UNKNOWN: &str = "UNKNOWNNUM4417";
/// A shipment registered beside it and never erased: what the searches must still find.
const KEPT: &str = "KEEPME2284RT";
const KEPT_SUBJECT: &str = "subject-ref-keep-8812";
const POINTER: &str = "/payload/ShipmentRegistered/tracking_number";
/// SPEC §12: the bytes are gone from every file within 60 s of the answer.
const SCRUB_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the binary on `data` with nothing from the environment choosing another store.
fn command(data: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .arg("--data-dir")
        .arg(data);
    cmd
}

fn run(data: &Path, args: &[&str]) -> Output {
    let out = command(data)
        .args(args)
        .output()
        .expect("run consent-ledger");
    assert!(
        out.status.success(),
        "consent-ledger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One client of one node: real HTTP.
struct Api {
    client: awc::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Self {
        Self {
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
            url: url.to_owned(),
        }
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let mut res = self
            .client
            .post(format!("{}{path}", self.url))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_json(&body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = res.status().as_u16();
        let bytes = res.body().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// POST that must answer `status`; its body.
    async fn expect(&self, path: &str, token: &str, body: Value, status: u16) -> Value {
        let (got, answer) = self.post(path, token, body).await;
        assert_eq!(got, status, "POST {path}: {answer}");
        answer
    }

    async fn get_text(&self, path: &str, token: &str) -> (u16, String) {
        let mut res = self
            .client
            .get(format!("{}{path}", self.url))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = res.status().as_u16();
        let bytes = res.body().limit(64 << 20).await.expect("body");
        (
            status,
            String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
        )
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, text) = self.get_text(path, token).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Every event of the log (`GET /v1/log/entries`, a privacy officer's or regulator's):
    /// (position, leaf data parsed).
    async fn log(&self, token: &str) -> Vec<(u64, Value)> {
        let mut all = Vec::new();
        loop {
            let start = all.len();
            let page = self
                .get(
                    &format!("/v1/log/entries?start={start}&end={}", start + 1000),
                    token,
                )
                .await;
            let entries = page["entries"].as_array().expect("entries");
            for entry in entries {
                let leaf = entry["leaf"].as_str().expect("leaf");
                let leaf: Value = serde_json::from_str(leaf).expect("leaf JSON");
                all.push((entry["position"].as_u64().expect("position"), leaf));
            }
            if entries.len() < 1000 {
                return all;
            }
        }
    }

    async fn principal(&self, admin: &str, body: Value) -> (String, String) {
        let made = self.expect("/v1/principals", admin, body, 201).await;
        (
            made["id"].as_str().expect("id").to_owned(),
            made["token"].as_str().expect("token").to_owned(),
        )
    }

    /// The gateway's decision for `partner` by carrier and tracking number (the gateway is told
    /// the true reason of a denial; a partner is told `no_consent` for an unknown parcel).
    async fn decide_by_number(&self, gateway: &str, partner: &str, tracking: &str) -> Value {
        self.expect(
            "/v1/decisions",
            gateway,
            json!({"partner_id": partner, "carrier": "DHL", "tracking_number": tracking,
                "purpose": "insurance_claim", "data_categories": ["status_events"]}),
            200,
        )
        .await
    }
}

/// Every regular file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("listing {}: {e}", dir.display()),
        };
        for entry in entries {
            let entry = entry.expect("directory entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// What a search looks for: a label for messages, and the bytes.
type Needle = (String, Vec<u8>);
/// Where a search found what: the file and the needle's label.
type Found = (PathBuf, String);

/// The UTF-8 bytes of each value, labelled by the value.
fn texts(values: &[&str]) -> Vec<Needle> {
    values
        .iter()
        .map(|v| (format!("{v:?}"), v.as_bytes().to_vec()))
        .collect()
}

/// The read model's index key of a tracking number (projections/src/decider.rs `fingerprint`:
/// the first 128 bits of SHA-256(carrier ‖ 0x00 ‖ number), written little-endian into the
/// snapshot), in both byte orders, so that a snapshot holding it is found whichever way.
fn fingerprints(carrier: &str, tracking: &str) -> Vec<Needle> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(carrier.as_bytes());
    h.update([0u8]);
    h.update(tracking.as_bytes());
    let first: Vec<u8> = h.finalize()[..16].to_vec();
    let reversed: Vec<u8> = first.iter().rev().copied().collect();
    vec![
        (
            format!("the index fingerprint of {tracking:?} (big-endian)"),
            first,
        ),
        (
            format!("the index fingerprint of {tracking:?} (little-endian)"),
            reversed,
        ),
    ]
}

/// Every (file, needle label) such that the file's raw bytes contain the needle, with the size
/// of each file read. A file removed between listing and reading (a snapshot renamed into
/// place) is skipped: the next search reads its successor.
fn occurrences(dir: &Path, needles: &[Needle]) -> (Vec<Found>, Vec<(PathBuf, usize)>) {
    let mut found = Vec::new();
    let mut read = Vec::new();
    for file in files_under(dir) {
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("reading {}: {e}", file.display()),
        };
        for (label, needle) in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                found.push((file.clone(), label.clone()));
            }
        }
        read.push((file, bytes.len()));
    }
    (found, read)
}

fn describe(found: &[Found]) -> String {
    found
        .iter()
        .map(|(file, what)| format!("{what} in {}", file.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The bundle line (1-based number, parsed) of the shipment's registration.
fn registration_line(bundle: &str) -> (usize, Value) {
    bundle
        .lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| {
            (
                i + 1,
                serde_json::from_str::<Value>(l).expect("bundle line"),
            )
        })
        .find(|(_, l)| {
            l["leaf"]
                .as_str()
                .is_some_and(|leaf| leaf.contains("\"ShipmentRegistered\""))
        })
        .unwrap_or_else(|| panic!("no registration line in the bundle:\n{bundle}"))
}

/// `consent-ledger verify BUNDLE --vkey VKEY`, offline: no store option, run in a directory of
/// its own.
fn verify(bundle: &Path, vkey: &Path) -> Output {
    let cwd = bundle.parent().expect("bundle directory");
    Command::new(BIN)
        .env_remove("DATABASE_URL")
        .current_dir(cwd)
        .arg("verify")
        .arg(bundle)
        .arg("--vkey")
        .arg(vkey)
        .output()
        .expect("run consent-ledger verify")
}

fn assert_verifies(bundle: &Path, vkey: &Path) -> Value {
    let out = verify(bundle, vkey);
    assert!(
        out.status.success(),
        "verify {}: {}",
        bundle.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify prints JSON");
    assert_eq!(report["verified"], true, "{report}");
    report
}

#[actix_web::test]
async fn erased_values_leave_every_file_of_the_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let admin: Value = serde_json::from_slice(
        &run(
            &data,
            &["principal", "create", "--role", "admin", "--name", "Ops"],
        )
        .stdout,
    )
    .expect("admin json");
    let admin = admin["token"].as_str().expect("token").to_owned();

    let node = Serve::start_with(command(&data));
    let api = Api::new(&node.url);
    let (shipper_id, shipper) = api
        .principal(&admin, json!({"role": "shipper", "name": "Shop"}))
        .await;
    let (partner_id, partner) = api
        .principal(
            &admin,
            json!({"role": "partner", "name": "Insure",
                "partner": {"kind": "insurer", "country": "DE", "dpa_ref": "DPA-1"}}),
        )
        .await;
    let (_, officer) = api
        .principal(&admin, json!({"role": "privacy_officer", "name": "DPO"}))
        .await;
    let (_, gateway) = api
        .principal(&admin, json!({"role": "gateway", "name": "Tracking API"}))
        .await;

    let shipment = api
        .expect(
            "/v1/shipments",
            &admin,
            json!({"carrier": "DHL", "tracking_number": TRACKING, "destination_country": "DE",
                "recipient_ref": SUBJECT, "shipper_id": shipper_id}),
            201,
        )
        .await;
    let shipment = shipment["id"].as_str().expect("shipment id").to_owned();
    api.expect(
        "/v1/shipments",
        &admin,
        json!({"carrier": "DHL", "tracking_number": KEPT, "destination_country": "DE",
            "recipient_ref": KEPT_SUBJECT, "shipper_id": shipper_id}),
        201,
    )
    .await;
    let consent = api
        .expect(
            "/v1/consents",
            &shipper,
            json!({"partner_id": partner_id,
                "scope": {"type": "shipments", "shipment_ids": [shipment]},
                "purposes": ["insurance_claim"], "data_categories": ["status_events"],
                "legal_basis": "contract"}),
            201,
        )
        .await;
    let consent = consent["id"].as_str().expect("consent id").to_owned();
    // The partner asks by number while the consent holds.
    let allowed = api
        .expect(
            "/v1/decisions",
            &partner,
            json!({"carrier": "DHL", "tracking_number": TRACKING, "purpose": "insurance_claim",
                "data_categories": ["status_events"]}),
            200,
        )
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let decided = allowed["position"].as_u64().expect("position");
    api.expect(
        &format!("/v1/consents/{consent}/revoke"),
        &shipper,
        json!({"reason": FREE_TEXT}),
        200,
    )
    .await;
    let unknown = api.decide_by_number(&gateway, &partner_id, UNKNOWN).await;
    assert_eq!(unknown["reason"], "unknown_shipment", "{unknown}");

    // The GDPR audit projection follows the log in the background: wait until it lists the
    // shipment's decision, so that its file holds the shipment's row before the erasure.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = api
            .get(
                &format!("/v1/audit/access?shipment_id={shipment}&limit=100"),
                &officer,
            )
            .await;
        let listed: Vec<u64> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["position"].as_u64())
            .collect();
        if listed.contains(&decided) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the audit view never listed decision {decided}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, vkey) = api.get_text("/v1/log/vkey", &officer).await;
    assert_eq!(status, 200, "{vkey}");
    let export = format!("/v1/audit/export?shipment_id={shipment}");
    let (status, before) = api.get_text(&export, &officer).await;
    assert_eq!(status, 200, "{before}");
    let (_, line) = registration_line(&before);
    assert_eq!(line["openings"][POINTER]["value"], TRACKING, "{line}");

    // Before the erasure the search finds every value somewhere (it can fail).
    let personal = [TRACKING, SUBJECT, FREE_TEXT];
    let (found, _) = occurrences(&data, &texts(&personal));
    for (value, _) in texts(&personal) {
        assert!(
            found.iter().any(|(_, v)| *v == value),
            "before the erasure no file of {} holds {value}; found only: {}",
            data.display(),
            describe(&found)
        );
    }
    let mut erased_bytes = texts(&personal);
    erased_bytes.extend(fingerprints("DHL", TRACKING));

    let erased = api
        .expect(
            &format!("/v1/shipments/{shipment}/erase"),
            &officer,
            json!({"reason": "Art. 17 request 42"}),
            200,
        )
        .await;
    let answered = Instant::now();
    assert_eq!(erased["shipments"], 1, "{erased}");
    assert!(erased["position"].is_u64(), "{erased}");

    // Within 60 s of the answer no file of the data directory holds any erased value.
    let mut first_seen: Option<String> = None;
    loop {
        let (found, read) = occurrences(&data, &erased_bytes);
        if found.is_empty() {
            eprintln!(
                "erased values gone from every file {:?} after the answer (at the first \
                 search: {}); files read: {read:?}",
                answered.elapsed(),
                first_seen.as_deref().unwrap_or("none left"),
            );
            break;
        }
        first_seen.get_or_insert_with(|| describe(&found));
        assert!(
            answered.elapsed() < SCRUB_DEADLINE,
            "{:?} after the erasure was answered: {}",
            answered.elapsed(),
            describe(&found)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The same search still finds what was not erased: the kept shipment's values in the
    // store, and its index key in the snapshot the clean-up rewrote.
    let mut kept = texts(&[KEPT, KEPT_SUBJECT]);
    kept.extend(fingerprints("DHL", KEPT));
    let (found, _) = occurrences(&data, &kept);
    for (what, _) in texts(&[KEPT, KEPT_SUBJECT]) {
        assert!(
            found.iter().any(|(_, w)| *w == what),
            "the kept shipment's {what} is in no file: {}",
            describe(&found)
        );
    }
    let snapshot = data.join("projections.snapshot");
    assert!(
        found
            .iter()
            .any(|(file, what)| *file == snapshot && what.starts_with("the index fingerprint")),
        "the rewritten snapshot does not hold the kept shipment's index key: {}",
        describe(&found)
    );

    // Asking by the erased number from here on records the number again (an unknown parcel
    // asked for), so every file search is above.
    let answer = api.decide_by_number(&gateway, &partner_id, TRACKING).await;
    assert_eq!(answer["allowed"], false, "{answer}");
    assert_eq!(answer["reason"], "unknown_shipment", "{answer}");
    let view = api
        .get(&format!("/v1/shipments/{shipment}"), &officer)
        .await;
    assert_eq!(view["tracking_number"], json!({"erased": true}), "{view}");
    assert_eq!(view["recipient_ref"], json!({"erased": true}), "{view}");

    let (status, after) = api.get_text(&export, &officer).await;
    assert_eq!(status, 200, "{after}");
    drop(api);
    node.stop();

    // The log still audits clean.
    let audit: Value =
        serde_json::from_slice(&run(&data, &["audit-log"]).stdout).expect("audit-log JSON");
    assert!(audit["events"].as_u64() > Some(0), "{audit}");
    assert!(audit["openings_checked"].is_u64(), "{audit}");

    // Both bundles verify offline; the later one says the field was erased and discloses none
    // of the values.
    let files = tempfile::tempdir().expect("temp dir");
    let vkey_file = files.path().join("log.vkey");
    std::fs::write(&vkey_file, &vkey).expect("write vkey");
    let before_file = files.path().join("before.ndjson");
    std::fs::write(&before_file, &before).expect("write bundle");
    let after_file = files.path().join("after.ndjson");
    std::fs::write(&after_file, &after).expect("write bundle");
    assert_verifies(&before_file, &vkey_file);
    assert_verifies(&after_file, &vkey_file);
    let (_, line) = registration_line(&after);
    let erased_pointers: Vec<&str> = line["erased"]
        .as_array()
        .unwrap_or_else(|| panic!("no `erased` in the registration line after: {line}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(erased_pointers.contains(&POINTER), "{line}");
    assert!(
        line["openings"].get(POINTER).is_none(),
        "an erased field is not opened: {line}"
    );
    for value in personal {
        assert!(
            !after.contains(value),
            "the bundle exported after the erasure holds {value:?}"
        );
    }

    // A changed opening in the bundle exported before is refused, naming its line.
    let (n, mut line) = registration_line(&before);
    line["openings"][POINTER]["value"] = json!("ERASEME7731QY");
    let mut lines: Vec<String> = before.lines().map(str::to_owned).collect();
    lines[n - 1] = line.to_string();
    let tampered_file = files.path().join("tampered.ndjson");
    std::fs::write(&tampered_file, lines.join("\n") + "\n").expect("write bundle");
    let out = verify(&tampered_file, &vkey_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a changed opening verified: {stderr}"
    );
    assert!(
        stderr.contains(&format!("line {n}:")),
        "the refusal names line {n}: {stderr}"
    );

    // After a restart the erased number is still unknown.
    let node = Serve::start_with(command(&data));
    let api = Api::new(&node.url);
    let answer = api.decide_by_number(&gateway, &partner_id, TRACKING).await;
    assert_eq!(answer["reason"], "unknown_shipment", "{answer}");
    let view = api
        .get(&format!("/v1/shipments/{shipment}"), &officer)
        .await;
    assert_eq!(view["tracking_number"], json!({"erased": true}), "{view}");
    drop(api);
    node.stop();
}

/// A store for the race test: an SQLite file in a data directory, or a scratch PostgreSQL
/// database handed to every child as `--database-url`.
struct Ledger {
    data: PathBuf,
    postgres: Option<ScratchDatabase>,
}

impl Ledger {
    fn command(&self) -> Command {
        let mut cmd = command(&self.data);
        if let Some(db) = &self.postgres {
            cmd.arg("--database-url").arg(db.url_text());
        }
        cmd
    }
}

#[actix_web::test]
async fn concurrent_erasures_of_one_shipment_record_one_erasure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger {
        data: dir.path().join("data"),
        postgres: None,
    };
    concurrent_erasures_record_one_erasure(&ledger).await;
}

#[actix_web::test]
async fn concurrent_erasures_of_one_shipment_record_one_erasure_on_postgresql() {
    let Some(server) = postgres_server("the erasure race test on PostgreSQL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger {
        data: dir.path().join("data"),
        postgres: Some(
            ScratchDatabase::create(&server)
                .await
                .expect("scratch database"),
        ),
    };
    concurrent_erasures_record_one_erasure(&ledger).await;
}

/// Shipments per phase of the race test.
const RACED: usize = 6;

/// An erasure is recorded once however many ask for it at the same moment: per shipment, 4
/// requests `POST /v1/shipments/{id}/erase` at once, or 2 of them and 2 `POST /v1/subjects/erase`
/// of its recipient reference at once. Exactly one of them erases it (answered 200 naming it:
/// `"shipments":1`); the others find nothing left (404, or a subject erasure answered
/// `"shipments":0`); and the log holds exactly one `PersonalDataErased` naming it.
async fn concurrent_erasures_record_one_erasure(ledger: &Ledger) {
    let admin: Value = serde_json::from_slice(
        &ledger
            .command()
            .args(["principal", "create", "--role", "admin", "--name", "Ops"])
            .output()
            .expect("principal create")
            .stdout,
    )
    .expect("admin json");
    let admin = admin["token"].as_str().expect("token").to_owned();
    let node = Serve::start_with(ledger.command());
    let api = std::rc::Rc::new(Api::new(&node.url));
    let (shipper_id, _) = api
        .principal(&admin, json!({"role": "shipper", "name": "Shop"}))
        .await;
    let (_, officer) = api
        .principal(&admin, json!({"role": "privacy_officer", "name": "DPO"}))
        .await;
    let mut parcels = Vec::new();
    for i in 0..2 * RACED {
        let subject = format!("race-subject-{i:02}");
        let made = api
            .expect(
                "/v1/shipments",
                &admin,
                json!({"carrier": "DHL", "tracking_number": format!("RACE{i:04}NUM"),
                    "destination_country": "DE", "recipient_ref": subject,
                    "shipper_id": shipper_id}),
                201,
            )
            .await;
        parcels.push((made["id"].as_str().expect("id").to_owned(), subject));
    }

    // Every request of both phases at once: (parcel, what was asked, the handle).
    let mut asked = Vec::new();
    for (i, (id, subject)) in parcels.iter().enumerate() {
        for k in 0..4 {
            let by_subject = i >= RACED && k % 2 == 1;
            let (path, body) = if by_subject {
                (
                    "/v1/subjects/erase".to_owned(),
                    json!({"recipient_ref": subject, "reason": format!("Art. 17 request {i}/{k}")}),
                )
            } else {
                (
                    format!("/v1/shipments/{id}/erase"),
                    json!({"reason": format!("Art. 17 request {i}/{k}")}),
                )
            };
            let (api, officer) = (api.clone(), officer.clone());
            let what = if by_subject {
                "by subject"
            } else {
                "by shipment"
            };
            asked.push((
                i,
                what,
                actix_web::rt::spawn(async move { api.post(&path, &officer, body).await }),
            ));
        }
    }
    let mut answers: Vec<Vec<String>> = vec![Vec::new(); parcels.len()];
    let mut erased_by_answer = vec![0usize; parcels.len()];
    let mut wrong = Vec::new();
    for (i, what, handle) in asked {
        let (status, answer) = handle.await.expect("request task");
        let shown = match answer["type"].as_str() {
            Some(problem) => problem.rsplit('/').next().unwrap_or(problem).to_owned(),
            None => answer.to_string(),
        };
        answers[i].push(format!("{what} → {status} {shown}"));
        match (status, answer["shipments"].as_u64()) {
            (200, Some(1)) => erased_by_answer[i] += 1,
            (200, Some(0)) if what == "by subject" => {}
            (404, _) if what == "by shipment" => {}
            _ => wrong.push(format!("parcel {i}: {what} → {status} {answer}")),
        }
    }

    let log = api.log(&officer).await;
    let mut records: Vec<Vec<u64>> = vec![Vec::new(); parcels.len()];
    for (position, leaf) in &log {
        if leaf["event_type"] != "PersonalDataErased" {
            continue;
        }
        for named in leaf["payload"]["PersonalDataErased"]["shipments"]
            .as_array()
            .expect("shipments")
        {
            if let Some(i) = parcels.iter().position(|(id, _)| named == id.as_str()) {
                records[i].push(*position);
            }
        }
    }
    for i in 0..parcels.len() {
        if erased_by_answer[i] != 1 || records[i].len() != 1 {
            wrong.push(format!(
                "parcel {i}: {} answers erased it, PersonalDataErased naming it at {:?}; \
                 answers: {:?}",
                erased_by_answer[i], records[i], answers[i]
            ));
        }
    }
    drop(api);
    node.stop();
    let out = ledger
        .command()
        .arg("audit-log")
        .output()
        .expect("audit-log");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wrong.is_empty(),
        "{} of {} shipments erased other than once:\n{}",
        wrong.len(),
        parcels.len(),
        wrong.join("\n")
    );
}

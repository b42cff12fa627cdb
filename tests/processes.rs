//! SPEC §9 with real processes: two `consent-ledger serve` processes and the offline CLI share
//! one PostgreSQL database (a fresh one on the `DATABASE_URL` server; without it this test is
//! skipped with a notice, except in CI where it fails). Every child is handed its
//! `DATABASE_URL` explicitly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use consent_ledger_store::testing::{postgres_server, ScratchDatabase};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");

fn command(data: &Path, database_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .arg("--data-dir")
        .arg(data);
    cmd
}

fn run(data: &Path, database_url: &str, args: &[&str]) -> String {
    let out = command(data, database_url)
        .args(args)
        .output()
        .expect("run consent-ledger");
    assert!(
        out.status.success(),
        "consent-ledger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `serve` process that is sent SIGTERM (and waited for) when dropped, even if the test
/// failed.
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(data: &Path, database_url: &str) -> Self {
        let mut child = command(data, database_url)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn consent-ledger serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("consent-ledger listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    async fn post(&self, path: &str, token: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut req = awc::Client::default()
            .post(format!("{}{path}", self.url))
            .insert_header(("Authorization", format!("Bearer {token}")));
        if let Some(key) = key {
            req = req.insert_header(("Idempotency-Key", key));
        }
        let mut res = req.send_json(&body).await.expect("request");
        let json = res.json::<Value>().await.unwrap_or(Value::Null);
        (res.status().as_u16(), json)
    }

    async fn get(&self, path: &str, token: &str) -> u16 {
        awc::Client::default()
            .get(format!("{}{path}", self.url))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait for serve");
        assert!(
            status.success() || std::thread::panicking(),
            "serve exits 0 on SIGTERM, got {status}"
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

fn token(principal: &str) -> String {
    let v: Value = serde_json::from_str(principal).expect("principal create prints JSON");
    v["token"].as_str().expect("token").to_owned()
}

fn id(principal: &str) -> String {
    let v: Value = serde_json::from_str(principal).expect("principal create prints JSON");
    v["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn two_serve_processes_share_one_postgresql_log() {
    let Some(server) = postgres_server("two serve processes on one PostgreSQL database") else {
        return;
    };
    let db = ScratchDatabase::create(&server)
        .await
        .expect("scratch database");
    let url = db.url_text().to_owned();
    let dirs = tempfile::tempdir().expect("temp dir");
    let (data_a, data_b) = (dirs.path().join("a"), dirs.path().join("b"));

    run(&data_a, &url, &["migrate"]);
    let vkey = run(&data_a, &url, &["keygen"]);
    std::fs::create_dir_all(&data_b).expect("data dir b");
    std::fs::copy(data_a.join("log.key"), data_b.join("log.key")).expect("share the key");
    // A third process, the offline CLI, registers the principals.
    let admin = token(&run(
        &data_a,
        &url,
        &["principal", "create", "--role", "admin", "--name", "Ops"],
    ));
    let shipper = run(
        &data_a,
        &url,
        &["principal", "create", "--role", "shipper", "--name", "Shop"],
    );
    let (shipper_id, shipper) = (id(&shipper), token(&shipper));
    let partner = run(
        &data_b,
        &url,
        &[
            "principal",
            "create",
            "--role",
            "partner",
            "--name",
            "Insure",
            "--kind",
            "insurer",
            "--country",
            "DE",
            "--dpa-ref",
            "DPA-1",
        ],
    );
    let (partner_id, partner) = (id(&partner), token(&partner));

    let a = Node::start(&data_a, &url);
    let b = Node::start(&data_b, &url);

    // The carrier registers the parcel for the shipper (SPEC §7).
    let (status, shipment) = a
        .post(
            "/v1/shipments",
            &admin,
            json!({"carrier": "DHL", "tracking_number": "JJD1", "destination_country": "DE", "shipper_id": shipper_id}),
            Some("shipment-1"),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    // Idempotency-Key across processes: the retry on B replays A's answer.
    let (status, replayed) = b
        .post(
            "/v1/shipments",
            &admin,
            json!({"carrier": "DHL", "tracking_number": "JJD1", "destination_country": "DE", "shipper_id": shipper_id}),
            Some("shipment-1"),
        )
        .await;
    assert_eq!((status, &replayed), (201, &shipment));
    let shipment_id = shipment["id"].as_str().expect("shipment id").to_owned();

    let (status, consent) = a
        .post(
            "/v1/consents",
            &shipper,
            json!({"partner_id": partner_id,
                   "scope": {"type": "shipments", "shipment_ids": [shipment_id]},
                   "purposes": ["insurance_claim"], "data_categories": ["status_events"],
                   "legal_basis": "contract"}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{consent}");
    let consent_id = consent["id"].as_str().expect("consent id").to_owned();

    // B follows A's commits by itself (LISTEN/NOTIFY): the consent appears there without an
    // explicit freshness demand. A bound on failure, not a pause.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.get(&format!("/v1/consents/{consent_id}"), &shipper).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "B did not follow A's grant"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ask = json!({"shipment_id": shipment_id, "purpose": "insurance_claim",
                     "data_categories": ["status_events"]});
    let (status, allowed) = b.post("/v1/decisions", &partner, ask.clone(), None).await;
    assert_eq!(
        (status, &allowed["allowed"]),
        (200, &json!(true)),
        "{allowed}"
    );

    // SPEC §5.2: revoked through A, denied through B at once.
    let (status, revoked) = a
        .post(
            &format!("/v1/consents/{consent_id}/revoke"),
            &shipper,
            json!({"reason": "contract ended 8812"}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let (status, denied) = b.post("/v1/decisions", &partner, ask, None).await;
    assert_eq!(status, 200, "{denied}");
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["reason"], "consent_revoked", "{denied}");

    // SPEC §12 across processes: B's snapshot holds the revocation's reason (a free text about
    // the parcel); an erasure recorded through A makes B rewrite it without, within 60 s.
    b.stop();
    let snapshot = data_b.join("projections.snapshot");
    let holds = |needle: &str| {
        std::fs::read(&snapshot)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    };
    assert!(
        holds("contract ended 8812"),
        "B's snapshot holds the reason"
    );
    let b = Node::start(&data_b, &url);
    let officer = token(&run(
        &data_a,
        &url,
        &[
            "principal",
            "create",
            "--role",
            "privacy_officer",
            "--name",
            "DPO",
        ],
    ));
    let (status, erased) = a
        .post(
            &format!("/v1/shipments/{shipment_id}/erase"),
            &officer,
            json!({"reason": "Art. 17"}),
            None,
        )
        .await;
    assert_eq!((status, &erased["shipments"]), (200, &json!(1)), "{erased}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while holds("contract ended 8812") {
        assert!(
            std::time::Instant::now() < deadline,
            "B's snapshot still holds the erased reason 60 s after the erasure"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Checkpoints signed by both processes, then the whole log audited by a fourth process.
    for node in [&a, &b] {
        let (status, _) = node
            .post("/v1/log/checkpoint", &admin, json!(null), None)
            .await;
        assert_eq!(status, 200);
    }
    a.stop();
    b.stop();
    let audit = command(&data_a, &url)
        .arg("audit-log")
        .output()
        .expect("audit-log");
    assert!(
        audit.status.success(),
        "audit-log over the log both processes wrote: {}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(vkey.starts_with("consent-ledger.local/log+"), "{vkey}");
}

//! SPEC §5.1 and §5.3 against the real binary, on SQLite and on PostgreSQL: under a stream of
//! decisions the process is killed with SIGKILL; after a restart on the same store every
//! decision that was answered 2xx is in the log at the position it was answered with,
//! positions are gapless, the Merkle tree recomputed from the events matches the stored one
//! (`consent-ledger audit-log`), and the restarted read model agrees with a full
//! `consent-ledger replay`.
//!
//! The PostgreSQL run uses a fresh database on the `DATABASE_URL` server; without it that test
//! is skipped with a notice, except in CI where it fails (`store::testing`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::rc::Rc;

mod common;

use common::Serve;
use consent_ledger_store::testing::{postgres_server, ScratchDatabase};
use consent_ledger_store::{Position, Store, StoreLocation};
use serde_json::{json, Value};
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");

/// The store a test's processes share: an SQLite file in the data directory, or a scratch
/// PostgreSQL database handed to every child as `--database-url`.
struct Ledger {
    data: PathBuf,
    postgres: Option<ScratchDatabase>,
}

impl Ledger {
    /// A store in a fresh data directory (kept while the directory lives).
    fn sqlite() -> (tempfile::TempDir, Self) {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger {
            data: dir.path().join("data"),
            postgres: None,
        };
        (dir, ledger)
    }

    /// A fresh database on the `DATABASE_URL` server, or `None` (skipped with a notice; a
    /// failure in CI) when there is none.
    async fn postgres(what: &str) -> Option<(tempfile::TempDir, Self)> {
        let server = postgres_server(what)?;
        let dir = tempfile::tempdir().expect("temp dir");
        let database = ScratchDatabase::create(&server)
            .await
            .expect("scratch database");
        let ledger = Ledger {
            data: dir.path().join("data"),
            postgres: Some(database),
        };
        Some((dir, ledger))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        // The child sees exactly this test's store, never the server the tests were given.
        cmd.env_remove("DATABASE_URL")
            .env("RUST_LOG", "error")
            .arg("--data-dir")
            .arg(&self.data);
        if let Some(db) = &self.postgres {
            cmd.arg("--database-url").arg(db.url_text());
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command()
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

    fn location(&self) -> StoreLocation {
        match &self.postgres {
            Some(db) => db.location().clone(),
            None => StoreLocation::in_data_dir(&self.data),
        }
    }

    fn serve(&self) -> Serve {
        Serve::start_with(self.command())
    }

    /// After a SIGKILL the server may still be finishing what the dead process sent (a COMMIT
    /// already on the wire commits, unacknowledged). Waits until every session of the dead
    /// process has ended, so the log read next is the one the restart finds. A bound on
    /// failure, not a pause. SQLite commits inside the process: nothing to wait for.
    async fn settle_after_kill(&self) {
        let Some(db) = &self.postgres else {
            return;
        };
        let mut conn = sqlx::PgConnection::connect(db.url_text())
            .await
            .expect("connect to the test database");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut conn)
            .await
            .expect("pg_stat_activity");
            if others == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the killed node's {others} sessions did not end"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = conn.close().await;
    }
}

/// The first admin's token, made offline as a newcomer does.
fn admin_token(ledger: &Ledger) -> String {
    let admin = ledger.run(&["principal", "create", "--role", "admin", "--name", "Ops"]);
    let admin: Value = serde_json::from_slice(&admin.stdout).expect("admin json");
    admin["token"].as_str().expect("token").to_owned()
}

/// A principal the admin makes over HTTP: (id, token).
async fn principal(client: &awc::Client, url: &str, admin: &str, body: Value) -> (String, String) {
    let (status, made) = post(client, &format!("{url}/v1/principals"), admin, body)
        .await
        .expect("principal");
    assert_eq!(status, 201, "{made}");
    (
        made["id"].as_str().expect("id").to_owned(),
        made["token"].as_str().expect("token").to_owned(),
    )
}

async fn post(
    client: &awc::Client,
    url: &str,
    token: &str,
    body: Value,
) -> Result<(u16, Value), String> {
    let mut res = client
        .post(url)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_json(&body)
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let bytes = res.body().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn get(client: &awc::Client, url: &str) -> Value {
    let mut res = client.get(url).send().await.expect("get");
    res.json::<Value>().limit(1 << 20).await.expect("json")
}

/// The read model's counts from the admin's `/metrics`, shaped as `replay` prints its summary.
async fn model_counts(client: &awc::Client, url: &str, admin: &str) -> Value {
    let mut res = client
        .get(format!("{url}/metrics"))
        .insert_header(("Authorization", format!("Bearer {admin}")))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status().as_u16(), 200);
    let bytes = res.body().limit(1 << 20).await.expect("metrics text");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in\n{text}"))
    };
    json!({
        "log_size": value("consent_ledger_read_model_position"),
        "principals": value("consent_ledger_principals"),
        "shipments": value("consent_ledger_shipments"),
        "consents": value("consent_ledger_consents{state=\"granted\"}"),
        "revoked_consents": value("consent_ledger_consents{state=\"revoked\"}"),
        "requests": value("consent_ledger_consent_requests"),
    })
}

/// The positions `GET /v1/audit/access?<filter>` lists, page after page.
async fn audit_positions(client: &awc::Client, url: &str, token: &str, filter: &str) -> Vec<u64> {
    let mut listed = Vec::new();
    let mut after = String::new();
    loop {
        let mut res = client
            .get(format!("{url}/v1/audit/access?{filter}&limit=250{after}"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("audit access");
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().limit(16 << 20).await.expect("json");
        for item in body["items"].as_array().expect("items") {
            listed.push(item["position"].as_u64().expect("position"));
        }
        match body["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return listed,
        }
    }
}

/// Acknowledged decisions: decision id → position.
type Acked = Rc<RefCell<HashMap<String, u64>>>;

#[actix_web::test]
async fn decisions_acknowledged_before_a_sigkill_survive_it() {
    let (_dir, ledger) = Ledger::sqlite();
    acknowledged_decisions_survive_a_sigkill(&ledger).await;
}

#[actix_web::test]
async fn decisions_acknowledged_before_a_sigkill_survive_it_on_postgresql() {
    let Some((_dir, ledger)) = Ledger::postgres("the crash test on PostgreSQL").await else {
        return;
    };
    acknowledged_decisions_survive_a_sigkill(&ledger).await;
}

async fn acknowledged_decisions_survive_a_sigkill(ledger: &Ledger) {
    let admin = admin_token(ledger);

    let mut node = ledger.serve();
    let url = node.url.clone();
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .finish();
    let (_, shipper) = post(
        &client,
        &format!("{url}/v1/principals"),
        &admin,
        json!({"role": "shipper", "name": "Shop"}),
    )
    .await
    .expect("shipper");
    let (_, partner) = post(&client, &format!("{url}/v1/principals"), &admin,
        json!({"role": "partner", "name": "Insure", "partner": {"kind": "insurer", "country": "DE", "dpa_ref": "DPA-1"}})).await.expect("partner");
    let (_, dpo) = post(
        &client,
        &format!("{url}/v1/principals"),
        &admin,
        json!({"role": "privacy_officer", "name": "DPO"}),
    )
    .await
    .expect("privacy officer");
    let dpo = dpo["token"].as_str().expect("t").to_owned();
    let (st, pt) = (
        shipper["token"].as_str().expect("t").to_owned(),
        partner["token"].as_str().expect("t").to_owned(),
    );
    let (_, shipment) = post(
        &client,
        &format!("{url}/v1/shipments"),
        &admin,
        json!({"carrier": "DHL", "tracking_number": "JJD1", "destination_country": "DE", "shipper_id": shipper["id"]}),
    )
    .await
    .expect("shipment");
    let (status, _) = post(
        &client,
        &format!("{url}/v1/consents"),
        &st,
        json!({
        "partner_id": partner["id"], "scope": {"type": "shipper"}, "purposes": ["insurance_claim"],
        "data_categories": ["status_events"], "legal_basis": "contract"}),
    )
    .await
    .expect("grant");
    assert_eq!(status, 201);

    // 16 clients decide in a loop; the process is killed once 600 decisions are acknowledged,
    // while requests are still in flight.
    let acked: Acked = Rc::default();
    let killed = Rc::new(RefCell::new(false));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (client, url, pt, acked, killed) = (
            client.clone(),
            url.clone(),
            pt.clone(),
            acked.clone(),
            killed.clone(),
        );
        let body = json!({"shipment_id": shipment["id"], "purpose": if c % 2 == 0 { "insurance_claim" } else { "fraud_prevention" },
                          "data_categories": ["status_events"]});
        clients.push(actix_web::rt::spawn(async move {
            while !*killed.borrow() {
                match post(&client, &format!("{url}/v1/decisions"), &pt, body.clone()).await {
                    Ok((200, answer)) => {
                        let id = answer["decision_id"]
                            .as_str()
                            .expect("decision id")
                            .to_owned();
                        acked
                            .borrow_mut()
                            .insert(id, answer["position"].as_u64().expect("position"));
                    }
                    Ok((status, answer)) => panic!("unexpected {status}: {answer}"),
                    Err(_) => break,
                }
            }
        }));
    }
    while acked.borrow().len() < 600 {
        actix_web::rt::task::yield_now().await;
    }
    node.signal("-KILL");
    *killed.borrow_mut() = true;
    for c in clients {
        let _ = c.await;
    }
    let acked = acked.borrow().clone();
    assert!(acked.len() >= 600);
    ledger.settle_after_kill().await;

    // Every acknowledged decision is in the log where it was answered; no gap.
    let store = Store::open(&ledger.location()).await.expect("open store");
    let log = store
        .read_range(Position::ZERO, u32::MAX)
        .await
        .expect("log");
    for (i, event) in log.iter().enumerate() {
        assert_eq!(event.position.get(), i as u64, "gap at {i}");
    }
    let recorded: HashMap<String, u64> = log
        .iter()
        .filter(|e| e.stream_type == "access")
        .map(|e| (e.stream_id.clone(), e.position.get()))
        .collect();
    for (decision, position) in &acked {
        assert_eq!(
            recorded.get(decision),
            Some(position),
            "acknowledged decision {decision} lost or moved"
        );
    }
    drop(store);
    // The Merkle tree the killed process left matches the events, leaf for leaf, and every
    // checkpoint it signed (SPEC §5.4).
    let audit = ledger.run(&["audit-log"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).expect("audit-log json");
    assert_eq!(audit["events"], json!(log.len()), "{audit}");

    // The restarted service's read model equals a full replay of the log.
    let mut node = ledger.serve();
    let url = node.url.clone();
    let ready = get(&client, &format!("{url}/readyz")).await;
    assert_eq!(ready, json!({"status": "ready"}));
    let model = model_counts(&client, &url, &admin).await;
    let replay = ledger.run(&["replay"]);
    let replay: Value = serde_json::from_slice(&replay.stdout).expect("replay json");
    assert_eq!(model, replay["summary"], "restarted model vs replay");
    assert_eq!(model["log_size"], json!(log.len()));
    // The GDPR access view the killed node was following (docs/adr/0006) lists every recorded
    // decision of the log exactly once, in order, after the restart: a page of the projection
    // the kill interrupted is neither lost nor written twice, in the rows by partner nor in the
    // copy clustered by shipment.
    let mut decided: Vec<u64> = recorded.values().copied().collect();
    decided.sort_unstable();
    for filter in [
        format!("partner_id={}", partner["id"].as_str().expect("partner id")),
        format!(
            "shipment_id={}",
            shipment["id"].as_str().expect("shipment id")
        ),
    ] {
        let listed = audit_positions(&client, &url, &dpo, &filter).await;
        assert_eq!(
            listed, decided,
            "{filter}: the audit view after the restart vs the log"
        );
    }
    // And it still decides.
    let (status, answer) = post(&client, &format!("{url}/v1/decisions"), &pt,
        json!({"shipment_id": shipment["id"], "purpose": "insurance_claim", "data_categories": ["status_events"]})).await.expect("decide");
    assert_eq!(status, 200);
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["position"], json!(log.len()));
    // The restarted node extends the same tree: a checkpoint it signs now is the root
    // recomputed from every event, the killed node's included.
    let (status, _) = post(
        &client,
        &format!("{url}/v1/log/checkpoint"),
        &admin,
        json!(null),
    )
    .await
    .expect("checkpoint");
    assert_eq!(status, 200);
    node.signal("-TERM");
    let audit = ledger.run(&["audit-log"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).expect("audit-log json");
    assert_eq!(audit["events"], json!(log.len() + 1), "{audit}");
    assert!(audit["checkpoints_checked"].as_u64() >= Some(1), "{audit}");
}

#[actix_web::test]
async fn token_rotations_acknowledged_before_a_sigkill_survive_it() {
    let (_dir, ledger) = Ledger::sqlite();
    acknowledged_rotations_survive_a_sigkill(&ledger).await;
}

#[actix_web::test]
async fn token_rotations_acknowledged_before_a_sigkill_survive_it_on_postgresql() {
    let Some((_dir, ledger)) = Ledger::postgres("the rotation crash test on PostgreSQL").await
    else {
        return;
    };
    acknowledged_rotations_survive_a_sigkill(&ledger).await;
}

/// SPEC §2 and §5.1 for the credentials table: 8 principals each rotate their own token in a
/// chain (each new token rotates the next) until the process is SIGKILLed. After a restart,
/// per principal: the log holds one rotation per acknowledged one, or one more (committed, its
/// answer lost with the process); the last acknowledged token works exactly when no such extra
/// rotation committed; every older token is refused; no digest is in the log.
async fn acknowledged_rotations_survive_a_sigkill(ledger: &Ledger) {
    let admin = admin_token(ledger);
    let mut node = ledger.serve();
    let url = node.url.clone();
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .finish();
    // Per principal: its id, and every token it was given, in order (the first from
    // registration, then one per acknowledged rotation).
    type Chains = Rc<RefCell<Vec<(String, Vec<String>)>>>;
    let chains: Chains = Rc::default();
    for i in 0..8 {
        let (status, made) = post(
            &client,
            &format!("{url}/v1/principals"),
            &admin,
            json!({"role": "gateway", "name": format!("Gateway {i}")}),
        )
        .await
        .expect("gateway");
        assert_eq!(status, 201);
        chains.borrow_mut().push((
            made["id"].as_str().expect("id").to_owned(),
            vec![made["token"].as_str().expect("token").to_owned()],
        ));
    }
    let rotated = Rc::new(RefCell::new(0usize));
    let killed = Rc::new(RefCell::new(false));
    let mut clients = Vec::new();
    for i in 0..8 {
        let (client, url, chains, rotated, killed) = (
            client.clone(),
            url.clone(),
            chains.clone(),
            rotated.clone(),
            killed.clone(),
        );
        clients.push(actix_web::rt::spawn(async move {
            while !*killed.borrow() {
                let (id, token) = {
                    let chains = chains.borrow();
                    let (id, tokens) = &chains[i];
                    (id.clone(), tokens.last().cloned().unwrap_or_default())
                };
                let path = format!("{url}/v1/principals/{id}/rotate-token");
                match post(&client, &path, &token, json!({})).await {
                    Ok((200, answer)) => {
                        let next = answer["token"].as_str().expect("new token").to_owned();
                        chains.borrow_mut()[i].1.push(next);
                        *rotated.borrow_mut() += 1;
                    }
                    Ok((status, answer)) => panic!("unexpected {status}: {answer}"),
                    Err(_) => break,
                }
            }
        }));
    }
    while *rotated.borrow() < 80 {
        actix_web::rt::task::yield_now().await;
    }
    node.signal("-KILL");
    *killed.borrow_mut() = true;
    for c in clients {
        let _ = c.await;
    }
    ledger.settle_after_kill().await;

    let store = Store::open(&ledger.location()).await.expect("open store");
    let log = store
        .read_range(Position::ZERO, u32::MAX)
        .await
        .expect("log");
    drop(store);
    let audit = ledger.run(&["audit-log"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).expect("audit-log json");
    assert_eq!(audit["events"], json!(log.len()), "{audit}");

    let node = ledger.serve();
    let url = node.url.clone();
    let me = |token: String| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(format!("{url}/v1/me"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await
                .expect("me")
                .status()
                .as_u16()
        }
    };
    let chains = chains.borrow().clone();
    for (id, tokens) in chains {
        let acknowledged = tokens.len() - 1;
        let in_log = log
            .iter()
            .filter(|e| e.stream_id == id && e.event_type == "PrincipalTokenRotated")
            .count();
        assert!(
            in_log == acknowledged || in_log == acknowledged + 1,
            "{id}: {acknowledged} rotations acknowledged, {in_log} in the log"
        );
        let (last, older) = tokens.split_last().expect("a first token");
        let expected = if in_log == acknowledged { 200 } else { 401 };
        assert_eq!(me(last.clone()).await, expected, "{id}: the last token");
        for token in older {
            assert_eq!(me(token.clone()).await, 401, "{id}: an older token");
        }
        for e in &log {
            assert!(
                !e.payload.as_str().contains(last.as_str()),
                "a token in the log"
            );
        }
    }
    drop(node);
}

#[actix_web::test]
async fn erasures_acknowledged_before_a_sigkill_survive_it() {
    let (_dir, ledger) = Ledger::sqlite();
    acknowledged_erasures_survive_a_sigkill(&ledger).await;
}

#[actix_web::test]
async fn erasures_acknowledged_before_a_sigkill_survive_it_on_postgresql() {
    let Some((_dir, ledger)) = Ledger::postgres("the erasure crash test on PostgreSQL").await
    else {
        return;
    };
    acknowledged_erasures_survive_a_sigkill(&ledger).await;
}

/// Shipments erased in the erasure crash test.
const ERASED_SHIPMENTS: usize = 60;

/// One shipment of the erasure crash test: id and its two personal fields.
#[derive(Debug, Clone)]
struct Parcel {
    id: String,
    tracking: String,
    subject: String,
}

/// The read model's index key of a tracking number (projections/src/decider.rs `fingerprint`:
/// the first 128 bits of SHA-256(carrier ‖ 0x00 ‖ number), written little-endian into the
/// snapshot), in both byte orders.
fn tracking_fingerprints(carrier: &str, tracking: &str) -> [Vec<u8>; 2] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(carrier.as_bytes());
    h.update([0u8]);
    h.update(tracking.as_bytes());
    let first = h.finalize()[..16].to_vec();
    let reversed = first.iter().rev().copied().collect();
    [first, reversed]
}

/// Every (file, label) under `dir` whose raw bytes hold one of `needles`.
fn files_holding(dir: &std::path::Path, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            // A file renamed away between listing and reading is read as its successor next.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // One pass over the file: candidates by their first 4 bytes, then compared whole
            // (a search per needle took seconds over a WAL in a debug build).
            let mut by_prefix: HashMap<&[u8], Vec<usize>> = HashMap::new();
            for (n, (_, needle)) in needles.iter().enumerate() {
                by_prefix.entry(&needle[..4]).or_default().push(n);
            }
            let mut hit = vec![false; needles.len()];
            for at in 0..bytes.len().saturating_sub(3) {
                let Some(candidates) = by_prefix.get(&bytes[at..at + 4]) else {
                    continue;
                };
                for &n in candidates {
                    if bytes[at..].starts_with(&needles[n].1) {
                        hit[n] = true;
                    }
                }
            }
            for (n, (label, _)) in needles.iter().enumerate() {
                if hit[n] {
                    found.push(format!("{label} in {}", path.display()));
                }
            }
        }
    }
    found
}

/// The needles of `files_holding` for erased `parcels` (index, parcel): each one's recipient
/// reference and the two byte orders of its number's index key, and the tracking number itself
/// for the odd ones (whose numbers no decision asked for).
fn erased_needles<'a>(
    parcels: impl Iterator<Item = (usize, &'a Parcel)>,
) -> Vec<(String, Vec<u8>)> {
    let mut needles = Vec::new();
    for (i, parcel) in parcels {
        needles.push((
            format!("parcel {i}'s recipient ref"),
            parcel.subject.clone().into_bytes(),
        ));
        if i % 2 == 1 {
            needles.push((
                format!("parcel {i}'s tracking number"),
                parcel.tracking.clone().into_bytes(),
            ));
        }
        for fingerprint in tracking_fingerprints("DHL", &parcel.tracking) {
            needles.push((format!("parcel {i}'s index key"), fingerprint));
        }
    }
    needles
}

/// Every event of the log, read as a privacy officer through `GET /v1/log/entries`: (position,
/// leaf data parsed).
async fn log_entries(client: &awc::Client, url: &str, token: &str) -> Vec<(u64, Value)> {
    let mut all = Vec::new();
    loop {
        let start = all.len();
        let mut res = client
            .get(format!(
                "{url}/v1/log/entries?start={start}&end={}",
                start + 1000
            ))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("log entries");
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().limit(64 << 20).await.expect("json");
        let entries = body["entries"].as_array().expect("entries");
        for entry in entries {
            let leaf: Value =
                serde_json::from_str(entry["leaf"].as_str().expect("leaf")).expect("leaf JSON");
            all.push((entry["position"].as_u64().expect("position"), leaf));
        }
        if entries.len() < 1000 {
            return all;
        }
    }
}

/// SPEC §5.1 and §12 for erasures: 60 shipments, each with its own tracking number and
/// recipient reference, are erased 8 at a time while a gateway keeps deciding about them, and
/// the process is SIGKILLed once half the erasures are acknowledged. A decision sent after a
/// shipment's erasure was acknowledged must already answer `unknown_shipment` by its number.
/// After a restart, per shipment: erased entirely or not at all (tracking number and recipient
/// reference together, the log's record, the views and the decider agree); every acknowledged
/// erasure is the `PersonalDataErased` at the position it was answered with; none is recorded
/// twice; within 60 s no file of the data directory holds an erased value or the erased
/// number's index key (the start finishes a clean-up the kill interrupted). Then every
/// unanswered erasure is asked again: 404 where it had committed, 200 where not, and every
/// shipment has exactly one record. `audit-log` passes.
async fn acknowledged_erasures_survive_a_sigkill(ledger: &Ledger) {
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    let admin = admin_token(ledger);
    let mut node = ledger.serve();
    let url = node.url.clone();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let made = |body: Value| principal(&client, &url, &admin, body);
    let (shipper_id, shipper) = made(json!({"role": "shipper", "name": "Shop"})).await;
    let (partner_id, _) = made(json!({"role": "partner", "name": "Insure",
        "partner": {"kind": "insurer", "country": "DE", "dpa_ref": "DPA-1"}}))
    .await;
    let (_, dpo) = made(json!({"role": "privacy_officer", "name": "DPO"})).await;
    let (_, gateway) = made(json!({"role": "gateway", "name": "Tracking API"})).await;
    // A shipper-wide grant: a shipment whose number is still known is allowed.
    let (status, answer) = post(
        &client,
        &format!("{url}/v1/consents"),
        &shipper,
        json!({"partner_id": partner_id, "scope": {"type": "shipper"},
            "purposes": ["insurance_claim"], "data_categories": ["status_events"],
            "legal_basis": "contract"}),
    )
    .await
    .expect("grant");
    assert_eq!(status, 201, "{answer}");
    let mut parcels = Vec::new();
    for i in 0..ERASED_SHIPMENTS {
        let (tracking, subject) = (format!("KILLERASE{i:04}ZQ"), format!("crm-kill-{i:04}-xr"));
        let (status, answer) = post(
            &client,
            &format!("{url}/v1/shipments"),
            &admin,
            json!({"carrier": "DHL", "tracking_number": tracking, "destination_country": "DE",
                "recipient_ref": subject, "shipper_id": shipper_id}),
        )
        .await
        .expect("shipment");
        assert_eq!(status, 201, "{answer}");
        parcels.push(Parcel {
            id: answer["id"].as_str().expect("id").to_owned(),
            tracking,
            subject,
        });
    }
    let parcels = Rc::new(parcels);

    // Acknowledged erasures: parcel index → the position answered.
    let acked: Rc<RefCell<HashMap<usize, u64>>> = Rc::default();
    // What a client saw that it must not have; checked after the kill.
    let wrong: Rc<RefCell<Vec<String>>> = Rc::default();
    let killed = Rc::new(RefCell::new(false));
    let queue: Rc<RefCell<VecDeque<usize>>> =
        Rc::new(RefCell::new((0..ERASED_SHIPMENTS).collect()));
    // Decisions answered, and of them those by a number whose erasure was acknowledged.
    let decided = Rc::new(RefCell::new((0usize, 0usize)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, url, dpo, parcels, acked, wrong, killed, queue) = (
            client.clone(),
            url.clone(),
            dpo.clone(),
            parcels.clone(),
            acked.clone(),
            wrong.clone(),
            killed.clone(),
            queue.clone(),
        );
        clients.push(actix_web::rt::spawn(async move {
            while !*killed.borrow() {
                let Some(i) = queue.borrow_mut().pop_front() else {
                    break;
                };
                let path = format!("{url}/v1/shipments/{}/erase", parcels[i].id);
                let body = json!({"reason": format!("Art. 17 request {i}")});
                match post(&client, &path, &dpo, body).await {
                    Ok((200, answer)) => {
                        if answer["shipments"] != 1 {
                            wrong
                                .borrow_mut()
                                .push(format!("erasure of parcel {i} answered {answer}"));
                        }
                        let position = answer["position"].as_u64().expect("position");
                        acked.borrow_mut().insert(i, position);
                    }
                    Ok((status, answer)) => {
                        wrong
                            .borrow_mut()
                            .push(format!("erasure of parcel {i}: {status} {answer}"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    // The gateway decides about the same shipments meanwhile: by number for the even ones,
    // by id for the odd ones (whose numbers no decision records again, so that the search of
    // the data directory below can look for them).
    for c in 0..4 {
        let (client, url, gateway, partner_id, parcels, acked, wrong, killed, decided) = (
            client.clone(),
            url.clone(),
            gateway.clone(),
            partner_id.clone(),
            parcels.clone(),
            acked.clone(),
            wrong.clone(),
            killed.clone(),
            decided.clone(),
        );
        clients.push(actix_web::rt::spawn(async move {
            let mut i = c;
            while !*killed.borrow() {
                i = (i + 1) % ERASED_SHIPMENTS;
                let parcel = &parcels[i];
                let mut body = json!({"partner_id": partner_id, "purpose": "insurance_claim",
                    "data_categories": ["status_events"]});
                if i % 2 == 0 {
                    body["carrier"] = json!("DHL");
                    body["tracking_number"] = json!(parcel.tracking);
                } else {
                    body["shipment_id"] = json!(parcel.id);
                }
                let erased_before = acked.borrow().contains_key(&i);
                match post(&client, &format!("{url}/v1/decisions"), &gateway, body).await {
                    Ok((200, answer)) => {
                        decided.borrow_mut().0 += 1;
                        if erased_before && i % 2 == 0 {
                            decided.borrow_mut().1 += 1;
                        }
                        if erased_before && i % 2 == 0 && answer["reason"] != "unknown_shipment" {
                            wrong.borrow_mut().push(format!(
                                "a decision by the number of parcel {i}, sent after its \
                                 erasure was acknowledged, answered {answer}"
                            ));
                        }
                    }
                    Ok((status, answer)) => {
                        wrong
                            .borrow_mut()
                            .push(format!("decision about parcel {i}: {status} {answer}"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.borrow().len() < ERASED_SHIPMENTS / 2 {
        assert!(
            wrong.borrow().is_empty() && Instant::now() < deadline,
            "{} erasures acknowledged; {:?}",
            acked.borrow().len(),
            wrong.borrow()
        );
        actix_web::rt::time::sleep(Duration::from_millis(1)).await;
    }
    node.signal("-KILL");
    *killed.borrow_mut() = true;
    for c in clients {
        c.await.expect("a client task panicked");
    }
    let acked = acked.borrow().clone();
    let wrong = wrong.borrow().clone();
    assert!(wrong.is_empty(), "before the kill: {wrong:#?}");
    assert!(
        acked.len() < ERASED_SHIPMENTS,
        "every erasure was acknowledged before the kill: nothing was in flight"
    );
    let (decisions, after_erasure) = *decided.borrow();
    eprintln!(
        "{} of {ERASED_SHIPMENTS} erasures and {decisions} decisions ({after_erasure} by a \
         number already erased) acknowledged before the SIGKILL",
        acked.len(),
    );
    ledger.settle_after_kill().await;
    // What the kill left in the files, for the record: the start below must clean it up.
    let left = files_holding(
        &ledger.data,
        &erased_needles(acked.keys().map(|&i| (i, &parcels[i]))),
    );
    eprintln!(
        "{} traces of acknowledged erasures left in the data directory by the SIGKILL",
        left.len()
    );

    let mut node = ledger.serve();
    let url = node.url.clone();
    let ready = get(&client, &format!("{url}/readyz")).await;
    assert_eq!(ready, json!({"status": "ready"}));

    // The log: gapless; per shipment at most one erasure; each acknowledged one where it was
    // answered, naming that shipment alone.
    let log = log_entries(&client, &url, &dpo).await;
    for (i, (position, _)) in log.iter().enumerate() {
        assert_eq!(*position, i as u64, "gap at {i}");
    }
    let mut erasures: HashMap<String, Vec<u64>> = HashMap::new();
    for (position, leaf) in &log {
        if leaf["event_type"] != "PersonalDataErased" {
            continue;
        }
        let named = leaf["payload"]["PersonalDataErased"]["shipments"]
            .as_array()
            .unwrap_or_else(|| panic!("an erasure naming no shipments: {leaf}"));
        for id in named {
            erasures
                .entry(id.as_str().expect("shipment id").to_owned())
                .or_default()
                .push(*position);
        }
    }
    for (i, position) in &acked {
        let (_, leaf) = &log[usize::try_from(*position).expect("index")];
        assert_eq!(
            leaf["event_type"], "PersonalDataErased",
            "acknowledged erasure of parcel {i} lost or moved: position {position} is {leaf}"
        );
        assert_eq!(
            leaf["payload"]["PersonalDataErased"]["shipments"],
            json!([parcels[*i].id]),
            "acknowledged erasure of parcel {i} at {position}"
        );
    }
    let recorded: Vec<bool> = parcels
        .iter()
        .enumerate()
        .map(|(i, parcel)| {
            let times = erasures.get(&parcel.id).map_or(&[][..], Vec::as_slice);
            assert!(
                times.len() <= 1,
                "parcel {i} erased {} times, at {times:?}",
                times.len()
            );
            if acked.contains_key(&i) {
                assert_eq!(times.len(), 1, "acknowledged erasure of parcel {i}");
            }
            times.len() == 1
        })
        .collect();
    eprintln!(
        "{} erasures in the log after the restart ({} acknowledged)",
        recorded.iter().filter(|r| **r).count(),
        acked.len()
    );

    // The files: within 60 s of the start nothing erased is left in the data directory (on
    // PostgreSQL: the snapshot there). The odd parcels' numbers were never asked for again.
    let needles = erased_needles(parcels.iter().enumerate().filter(|(i, _)| recorded[*i]));
    let started = Instant::now();
    let mut first_seen = None;
    loop {
        let found = files_holding(&ledger.data, &needles);
        if found.is_empty() {
            break;
        }
        first_seen.get_or_insert(found.len());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?} after the restart: {found:#?}",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "erased values gone from the data directory {:?} after the restart ({} found at the \
         first search)",
        started.elapsed(),
        first_seen.unwrap_or(0)
    );

    // Per shipment, all or nothing, and the views, the decider and the log agree.
    for (i, parcel) in parcels.iter().enumerate() {
        let mut res = client
            .get(format!("{url}/v1/shipments/{}", parcel.id))
            .insert_header(("Authorization", format!("Bearer {dpo}")))
            .send()
            .await
            .expect("shipment view");
        assert_eq!(res.status().as_u16(), 200, "parcel {i}");
        let view: Value = res.json().await.expect("json");
        let gone = json!({"erased": true});
        let (number_gone, subject_gone) = (
            view["tracking_number"] == gone,
            view["recipient_ref"] == gone,
        );
        assert_eq!(
            number_gone,
            subject_gone,
            "parcel {i} half erased (acknowledged: {}): {view}",
            acked.contains_key(&i)
        );
        assert_eq!(
            number_gone, recorded[i],
            "parcel {i}: the view and the log's record disagree: {view}"
        );
        if !number_gone {
            assert_eq!(view["tracking_number"], json!(parcel.tracking), "{view}");
            assert_eq!(view["recipient_ref"], json!(parcel.subject), "{view}");
        }
        let (status, answer) = post(
            &client,
            &format!("{url}/v1/decisions"),
            &gateway,
            json!({"partner_id": partner_id, "carrier": "DHL", "tracking_number": parcel.tracking,
                "purpose": "insurance_claim", "data_categories": ["status_events"]}),
        )
        .await
        .expect("decide");
        assert_eq!(status, 200, "{answer}");
        if number_gone {
            assert_eq!(answer["reason"], "unknown_shipment", "parcel {i}: {answer}");
        } else {
            assert_eq!(answer["allowed"], true, "parcel {i}: {answer}");
        }
    }

    // A client whose erasure went unanswered asks again: one recorded before the kill is found
    // erased (404) and not recorded twice; the others are erased now.
    let mut retried = 0;
    for (i, parcel) in parcels.iter().enumerate() {
        if acked.contains_key(&i) {
            continue;
        }
        let (status, answer) = post(
            &client,
            &format!("{url}/v1/shipments/{}/erase", parcel.id),
            &dpo,
            json!({"reason": format!("Art. 17 request {i}, again")}),
        )
        .await
        .expect("erase again");
        let expected = if recorded[i] { 404 } else { 200 };
        assert_eq!(
            status, expected,
            "parcel {i} (erasure recorded before the kill: {}): {answer}",
            recorded[i]
        );
        retried += usize::from(status == 200);
    }
    let after = log_entries(&client, &url, &dpo).await;
    assert_eq!(
        after.len(),
        log.len() + ERASED_SHIPMENTS + retried,
        "one decision recorded per parcel, one erasure per retry answered 200"
    );
    let mut times: HashMap<String, usize> = HashMap::new();
    for (_, leaf) in &after {
        if leaf["event_type"] == "PersonalDataErased" {
            for id in leaf["payload"]["PersonalDataErased"]["shipments"]
                .as_array()
                .expect("shipments")
            {
                *times
                    .entry(id.as_str().expect("id").to_owned())
                    .or_default() += 1;
            }
        }
    }
    for (i, parcel) in parcels.iter().enumerate() {
        assert_eq!(
            times.get(&parcel.id),
            Some(&1),
            "parcel {i}: erasures recorded after the retries"
        );
    }
    node.signal("-TERM");
    let audit = ledger.run(&["audit-log"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).expect("audit-log json");
    assert_eq!(audit["events"], json!(after.len()), "{audit}");
}

#[actix_web::test]
async fn webhook_messages_committed_before_a_sigkill_are_delivered_once_each_after_it() {
    let (_dir, ledger) = Ledger::sqlite();
    committed_webhook_messages_survive_a_sigkill(&ledger).await;
}

#[actix_web::test]
async fn webhook_messages_committed_before_a_sigkill_are_delivered_once_each_after_it_on_postgresql(
) {
    let Some((_dir, ledger)) = Ledger::postgres("the webhook crash test on PostgreSQL").await
    else {
        return;
    };
    committed_webhook_messages_survive_a_sigkill(&ledger).await;
}

/// One request the webhook receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Arrival {
    webhook_id: Option<String>,
    timestamp: Option<String>,
    signature: Option<String>,
    body: Vec<u8>,
    answered: u16,
    at: std::time::Instant,
}

/// What the receiver's workers share with the test: the switch and every arrival.
#[derive(Default)]
struct Inbox {
    /// `false`: every request is answered 503 (the message stays pending); `true`: 200.
    deliver: std::sync::atomic::AtomicBool,
    arrivals: std::sync::Mutex<Vec<Arrival>>,
    /// Requests being held before their 503.
    holding: std::sync::atomic::AtomicUsize,
}

impl Inbox {
    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().expect("receiver inbox").clone()
    }
}

/// A partner's webhook receiver on a loopback port: records every request to `/hook` and
/// answers it as the switch says; a 503 only after [`Receiver::HOLD`], so that the sender
/// always has attempts in flight.
struct Receiver {
    url: String,
    inbox: std::sync::Arc<Inbox>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// How long a request is held before its 503.
    const HOLD: std::time::Duration = std::time::Duration::from_millis(250);

    fn start() -> Self {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        use std::sync::atomic::Ordering;

        async fn hook(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let deliver = inbox.deliver.load(Ordering::SeqCst);
            let answered = if deliver { 200 } else { 503 };
            inbox
                .arrivals
                .lock()
                .expect("receiver inbox")
                .push(Arrival {
                    webhook_id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: body.to_vec(),
                    answered,
                    at: std::time::Instant::now(),
                });
            if deliver {
                return HttpResponse::Ok().finish();
            }
            inbox.holding.fetch_add(1, Ordering::SeqCst);
            actix_web::rt::time::sleep(Receiver::HOLD).await;
            inbox.holding.fetch_sub(1, Ordering::SeqCst);
            HttpResponse::ServiceUnavailable().finish()
        }

        let inbox = std::sync::Arc::new(Inbox::default());
        let data = web::Data::from(inbox.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/hook", web::post().to(hook))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the webhook receiver");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("http://{addr}/hook"),
            inbox,
            server: handle,
        }
    }

    fn holding(&self) -> usize {
        self.inbox.holding.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn deliver(&self) {
        self.inbox
            .deliver
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Grants the webhook crash test may send: far more than it sends before the kill (a fast
/// machine must not finish them all first).
const GRANTS: usize = 3000;

/// Grants acknowledged before the kill (at least).
const GRANTS_BEFORE_KILL: usize = 150;

/// SPEC §13's durable outbox under a SIGKILL: a partner's endpoint points at a receiver in this
/// test that answers 503 to everything (each after holding it 250 ms), so that every message
/// stays pending, between its commit and its delivery; 8 clients of one shipper grant consents
/// to the partner until the process is SIGKILLed after at least 150 acknowledged grants while
/// attempts are held (or 3 s after the first grant was sent, before any message can come due a second time:
/// the first retry is ≥ 4 s after its attempt, and a second 503 would put the next 5 minutes
/// off). At least one attempt was in flight at the kill (received, its answer not recorded).
/// Then the receiver answers 200 and `serve` starts again on the same store (the same data
/// directory: it takes back the leases its previous life held, without waiting them out).
/// Within 90 s the receiver has a message for every consent of the log, and:
/// - every acknowledged grant has its `consent.granted` message, and no message names a consent
///   the log does not hold;
/// - one `webhook-id` per consent, however often it arrived, each time with the same body bytes
///   and a signature the endpoint's `whpk_` key verifies;
/// - as many distinct ids as consents granted to the partner in the log, each `data.position`
///   the consent's position in the log;
/// - after a graceful stop the outbox holds exactly those messages, every one delivered.
async fn committed_webhook_messages_survive_a_sigkill(ledger: &Ledger) {
    use std::cell::Cell;
    use std::collections::{BTreeSet, HashSet};
    use std::time::{Duration, Instant};

    let started = Instant::now();
    let receiver = Receiver::start();
    let admin = admin_token(ledger);
    let loopback = ["--webhooks-allow-insecure-loopback"];
    let mut node = Serve::start_with_args(ledger.command(), &loopback);
    let url = node.url.clone();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let made = |body: Value| principal(&client, &url, &admin, body);
    let (shipper_id, shipper) = made(json!({"role": "shipper", "name": "Shop"})).await;
    let (partner_id, partner) = made(json!({"role": "partner", "name": "Insure",
        "partner": {"kind": "insurer", "country": "DE", "dpa_ref": "DPA-1"}}))
    .await;
    let (_, dpo) = made(json!({"role": "privacy_officer", "name": "DPO"})).await;
    let mut shipments = Vec::new();
    for i in 0..4 {
        let (status, answer) = post(
            &client,
            &format!("{url}/v1/shipments"),
            &admin,
            json!({"carrier": "DHL", "tracking_number": format!("JJDHOOK{i}"),
                "destination_country": "DE", "shipper_id": shipper_id}),
        )
        .await
        .expect("shipment");
        assert_eq!(status, 201, "{answer}");
        shipments.push(answer["id"].as_str().expect("id").to_owned());
    }
    let (status, endpoint) = post(
        &client,
        &format!("{url}/v1/webhook-endpoints"),
        &partner,
        json!({"url": receiver.url, "event_types": ["consent.granted"]}),
    )
    .await
    .expect("endpoint");
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_id = endpoint["id"].as_str().expect("endpoint id").to_owned();
    let public_key = endpoint["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    assert!(public_key.starts_with("whpk_"), "{endpoint}");

    // Acknowledged grants: consent id → position.
    let acked: Rc<RefCell<HashMap<String, u64>>> = Rc::default();
    let wrong: Rc<RefCell<Vec<String>>> = Rc::default();
    let killed = Rc::new(RefCell::new(false));
    let next = Rc::new(Cell::new(0usize));
    let shipments = Rc::new(shipments);
    let mut clients = Vec::new();
    let first_sent = Instant::now();
    for _ in 0..8 {
        let (client, url, shipper, partner_id, shipments, acked, wrong, killed, next) = (
            client.clone(),
            url.clone(),
            shipper.clone(),
            partner_id.clone(),
            shipments.clone(),
            acked.clone(),
            wrong.clone(),
            killed.clone(),
            next.clone(),
        );
        clients.push(actix_web::rt::spawn(async move {
            while !*killed.borrow() {
                let i = next.get();
                if i == GRANTS {
                    break;
                }
                next.set(i + 1);
                let body = json!({"partner_id": partner_id,
                    "scope": {"type": "shipments", "shipment_ids": [shipments[i % shipments.len()]]},
                    "purposes": ["insurance_claim"], "data_categories": ["status_events"],
                    "legal_basis": "contract"});
                match post(&client, &format!("{url}/v1/consents"), &shipper, body).await {
                    Ok((201, answer)) => {
                        let id = answer["id"].as_str().expect("consent id").to_owned();
                        let position = answer["position"].as_u64().expect("position");
                        acked.borrow_mut().insert(id, position);
                    }
                    Ok((status, answer)) => {
                        wrong
                            .borrow_mut()
                            .push(format!("grant {i}: {status} {answer}"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    // Half-way, while the receiver holds attempts (in flight: sent, their answer not recorded);
    // at the latest 3 s after the first grant was sent.
    while (acked.borrow().len() < GRANTS_BEFORE_KILL || receiver.holding() == 0)
        && first_sent.elapsed() < Duration::from_secs(3)
    {
        assert!(wrong.borrow().is_empty(), "{:?}", wrong.borrow());
        actix_web::rt::time::sleep(Duration::from_millis(1)).await;
    }
    node.signal("-KILL");
    let stream = first_sent.elapsed();
    *killed.borrow_mut() = true;
    for c in clients {
        c.await.expect("a client task panicked");
    }
    let acked = acked.borrow().clone();
    assert!(
        wrong.borrow().is_empty(),
        "before the kill: {:?}",
        wrong.borrow()
    );
    assert!(!acked.is_empty(), "no grant acknowledged before the kill");
    assert!(
        acked.len() < GRANTS,
        "every grant was acknowledged before the kill: nothing was in flight"
    );
    ledger.settle_after_kill().await;
    let before = receiver.inbox.arrivals();
    assert!(
        before.iter().all(|a| a.answered == 503),
        "nothing is delivered before the switch"
    );
    // What the kill left in the outbox: messages the receiver got whose attempt was never
    // recorded were in flight; their lease must run out before they are sent again.
    let store = Store::open(&ledger.location()).await.expect("open store");
    let left = store.outbox_of(&endpoint_id).await.expect("outbox");
    drop(store);
    let unrecorded: HashSet<&str> = left
        .iter()
        .filter(|m| m.attempts == 0)
        .map(|m| m.message_id.as_str())
        .collect();
    let sent: HashSet<&str> = before
        .iter()
        .filter_map(|a| a.webhook_id.as_deref())
        .collect();
    let in_flight = sent.intersection(&unrecorded).count();
    eprintln!(
        "{} grants acknowledged in {stream:?} before the SIGKILL; {} messages queued, {} \
         attempted (answered 503 after {:?}), {in_flight} of them in flight at the kill",
        acked.len(),
        left.len(),
        sent.len(),
        Receiver::HOLD,
    );
    assert!(
        in_flight > 0,
        "no attempt was in flight at the kill ({} held)",
        receiver.holding()
    );

    // The receiver takes deliveries now; the restarted node delivers what the killed one left.
    receiver.deliver();
    let node = Serve::start_with_args(ledger.command(), &loopback);
    let restarted = Instant::now();
    let url = node.url.clone();
    let ready = get(&client, &format!("{url}/readyz")).await;
    assert_eq!(ready, json!({"status": "ready"}));

    // The consents granted to the partner, as the log holds them: id → position. Every
    // acknowledged grant is there, where it was answered.
    let log = log_entries(&client, &url, &dpo).await;
    let granted: HashMap<String, u64> = log
        .iter()
        .filter(|(_, leaf)| leaf["event_type"] == "ConsentGranted")
        .map(|(position, leaf)| {
            let grant = &leaf["payload"]["ConsentGranted"];
            assert_eq!(grant["partner"], json!(partner_id), "{leaf}");
            (
                grant["id"].as_str().expect("consent id").to_owned(),
                *position,
            )
        })
        .collect();
    for (consent, position) in &acked {
        assert_eq!(
            granted.get(consent),
            Some(position),
            "acknowledged grant {consent} lost or moved"
        );
    }

    // The consent an arrival's body names.
    let consent_of = |bytes: &[u8]| -> String {
        let body: Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!(
                "a body that is not JSON ({e}): {}",
                String::from_utf8_lossy(bytes)
            )
        });
        body["data"]["consent_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a message without data.consent_id: {body}"))
            .to_owned()
    };
    // Bounded: even a node that could not take its leases back would have them run out (30 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered: HashSet<String> = receiver
            .inbox
            .arrivals()
            .iter()
            .filter(|a| a.answered == 200)
            .map(|a| consent_of(&a.body))
            .collect();
        let missing: Vec<&String> = granted.keys().filter(|c| !delivered.contains(*c)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} consents have no delivered message {:?} after the restart, e.g. {:?}",
            missing.len(),
            granted.len(),
            restarted.elapsed(),
            &missing[..missing.len().min(5)]
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_after = restarted.elapsed();
    let first_delivery = receiver
        .inbox
        .arrivals()
        .iter()
        .filter(|a| a.answered == 200)
        .map(|a| a.at.saturating_duration_since(restarted))
        .min();

    let arrivals = receiver.inbox.arrivals();
    // Each webhook-id: the body bytes it carries, the same at every arrival, signed by the
    // endpoint's key; and the consent that body names.
    let by_id = bodies_by_webhook_id(&arrivals, |_| public_key.clone());
    let mut by_consent: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (id, bytes) in &by_id {
        let body: Value = serde_json::from_slice(bytes).expect("JSON body");
        assert_eq!(body["type"], "consent.granted", "{id}: {body}");
        assert_eq!(
            body["data"]["partner_id"],
            json!(partner_id),
            "{id}: {body}"
        );
        let consent = consent_of(bytes);
        let position = body["data"]["position"].as_u64();
        let logged = granted.get(&consent).copied();
        assert!(
            logged.is_some(),
            "{id} names consent {consent}, which the log does not hold: {body}"
        );
        assert_eq!(position, logged, "{id}: data.position vs the log: {body}");
        by_consent.entry(consent).or_default().insert(id.clone());
    }
    for (consent, ids) in &by_consent {
        assert_eq!(
            ids.len(),
            1,
            "consent {consent} came under several webhook-ids: {ids:?}"
        );
    }
    for consent in acked.keys() {
        assert!(
            by_consent.contains_key(consent),
            "acknowledged consent {consent} has no consent.granted message"
        );
    }
    assert_eq!(
        by_id.len(),
        granted.len(),
        "distinct webhook-ids vs consents granted to the partner in the log"
    );
    let repeated = arrivals.len() - by_id.len();

    // The node records every delivery (a stop before that would leave them to be sent again);
    // then, stopped, its outbox holds exactly the messages received, each delivered once.
    let received: Vec<String> = by_id.keys().cloned().collect();
    await_recorded_deliveries(&client, &url, &partner, &endpoint_id, &received).await;
    node.stop();
    let store = Store::open(&ledger.location()).await.expect("open store");
    let outbox = store.outbox_of(&endpoint_id).await.expect("outbox");
    drop(store);
    assert_eq!(
        outbox.len(),
        granted.len(),
        "messages queued vs consents granted"
    );
    for message in &outbox {
        assert_eq!(message.state, "delivered", "{message:?}");
        assert!(
            by_id.contains_key(&message.message_id),
            "{} queued but never received",
            message.message_id
        );
    }
    receiver.server.stop(true).await;
    eprintln!(
        "{} consents in the log ({} acknowledged), each delivered under one webhook-id, {} \
         arrivals again; the first delivered {first_delivery:?}, all {delivered_after:?} after \
         the restart; {:?} in all",
        granted.len(),
        acked.len(),
        repeated,
        started.elapsed()
    );
}

/// The body each `webhook-id` among `arrivals` carried, checked: every arrival names a
/// `msg_` id of 32 hex digits, a timestamp and a signature that the `whpk_` key `key_of(id)`
/// verifies, and every arrival of one id carries the same bytes (at-least-once delivery may
/// repeat a message, never change it).
fn bodies_by_webhook_id(
    arrivals: &[Arrival],
    key_of: impl Fn(&str) -> String,
) -> HashMap<String, Vec<u8>> {
    let mut by_id: HashMap<String, Vec<u8>> = HashMap::new();
    for a in arrivals {
        let id = a.webhook_id.clone().expect("a request without webhook-id");
        let hex = id
            .strip_prefix("msg_")
            .unwrap_or_else(|| panic!("webhook-id {id} is not msg_…"));
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "webhook-id {id} is not msg_ and 32 hex digits"
        );
        let timestamp: i64 = a
            .timestamp
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{id}: webhook-timestamp {:?}", a.timestamp));
        let signature = a
            .signature
            .as_deref()
            .unwrap_or_else(|| panic!("{id}: no webhook-signature"));
        consent_ledger_audit::webhook::verify(&key_of(&id), signature, &id, timestamp, &a.body)
            .unwrap_or_else(|e| panic!("{id}: the signature does not verify: {e}"));
        match by_id.get(&id) {
            Some(first) => assert!(
                first == &a.body,
                "{id} arrived with different bodies:\n{}\n{}",
                String::from_utf8_lossy(first),
                String::from_utf8_lossy(&a.body)
            ),
            None => {
                by_id.insert(id, a.body.clone());
            }
        }
    }
    by_id
}

/// Waits (30 s at most) until `GET /v1/webhook-endpoints/{id}/deliveries`, read page after
/// page as `token`, lists every one of `messages` as delivered: the node recorded them, and a
/// stop now leaves none of them to be sent again.
async fn await_recorded_deliveries(
    client: &awc::Client,
    url: &str,
    token: &str,
    endpoint_id: &str,
    messages: &[String],
) {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut recorded: HashSet<String> = HashSet::new();
        let mut cursor = String::new();
        loop {
            let mut res = client
                .get(format!(
                    "{url}/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=1000{cursor}"
                ))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await
                .expect("deliveries");
            assert_eq!(res.status().as_u16(), 200);
            let list: Value = res.json().limit(16 << 20).await.expect("json");
            recorded.extend(
                list["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .filter(|i| i["message_state"] == "delivered")
                    .filter_map(|i| i["message_id"].as_str().map(str::to_owned)),
            );
            match list["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        let missing: Vec<&String> = messages.iter().filter(|m| !recorded.contains(*m)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint_id}: {} of {} messages received but not recorded as delivered, e.g. {:?}",
            missing.len(),
            messages.len(),
            &missing[..missing.len().min(5)]
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn tracking_updates_acknowledged_before_a_sigkill_fan_out_once_each() {
    let (_dir, ledger) = Ledger::sqlite();
    acknowledged_tracking_updates_fan_out_once_each(&ledger).await;
}

#[actix_web::test]
async fn tracking_updates_acknowledged_before_a_sigkill_fan_out_once_each_on_postgresql() {
    let Some((_dir, ledger)) =
        Ledger::postgres("the tracking fan-out crash test on PostgreSQL").await
    else {
        return;
    };
    acknowledged_tracking_updates_fan_out_once_each(&ledger).await;
}

/// Parcels the tracking fan-out crash test subscribes to.
const TRACKED: usize = 50;

/// Updates per `POST /v1/tracking-events` of the tracking fan-out crash test.
const BATCH: usize = 10;

/// Batches it may send: far more than it sends before the kill.
const BATCHES: usize = 5000;

/// Batches acknowledged before the kill (at least), and of them acknowledged again.
const BATCHES_BEFORE_KILL: usize = 30;
const RESENT_BEFORE_KILL: usize = 5;

/// Statuses of a journey under way: none ends it (a `delivered` one would end the
/// subscriptions, with messages of their own).
const UNDER_WAY: [&str; 6] = [
    "info_received",
    "in_transit",
    "out_for_delivery",
    "available_for_pickup",
    "delivery_failed",
    "exception",
];

/// When update `n` of the tracking fan-out crash test occurred (distinct per update), as the
/// store writes it back: RFC 3339 UTC with microseconds.
fn update_time(n: usize) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z")
        .expect("base time")
        .with_timezone(&chrono::Utc);
    let seconds = i64::try_from(n).expect("update number");
    (base + chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Update `n`: about parcel `n % TRACKED`, the odd ones with a location.
fn tracking_update(parcels: &[String], n: usize) -> Value {
    let mut update = json!({"shipment_id": parcels[n % parcels.len()],
        "status": UNDER_WAY[n % UNDER_WAY.len()], "occurred_at": update_time(n),
        "description": format!("scan {n}")});
    if n % 2 == 1 {
        update["location"] = json!({"country": "DE", "city": "Bonn"});
    }
    update
}

/// Batch `b`: updates `b * BATCH ..`, always the same.
fn tracking_batch(parcels: &[String], b: usize) -> Value {
    let events: Vec<Value> = (b * BATCH..(b + 1) * BATCH)
        .map(|n| tracking_update(parcels, n))
        .collect();
    json!({ "events": events })
}

/// A fan-out decision as the log holds it.
#[derive(Debug, Clone)]
struct FannedOut {
    partner: String,
    shipment: String,
    /// `Some(body_sha256)` when allowed, `None` when denied.
    body_sha256: Option<String>,
    reason: Option<String>,
}

/// SPEC §5.1 and §14 under a SIGKILL: a shipper's 50 parcels, three partners with consents on
/// them, each with an endpoint to a receiver in this test (answering 200) and a subscription:
/// - `insure`: a shipper-wide consent, a subscription naming the parcels, two endpoints;
/// - `returns`: a consent on each half of the parcels, a subscription naming all of them, and
///   the second consent revoked before any update: that half fans out to denials;
/// - `notify`: a shipper-wide consent with `location`, a `consented` subscription.
///
/// Six clients of the carrier's gateway send fresh batches of 10 updates (each update at its
/// own `occurred_at`), and two more send batches again — one already acknowledged, or the one
/// a fresh client just took (racing it) — until the process is SIGKILLed once at least 30
/// batches and 5 re-sends are acknowledged. Then, in the store the kill left:
/// - every update of an acknowledged batch is kept, and each batch is kept whole or not at all;
/// - per partner and parcel, as many fan-out decisions (`"channel":"webhook"`) as updates kept
///   for the parcel, allowed or denied as the consents say; no decision about anything else;
/// - per endpoint, exactly one `tracking.updated` message per allowed decision of its partner
///   and none for a denied one; each names a kept update, the one decision of its partner about
///   that update, which records the SHA-256 of the message's body; minimised (`location` only to
///   the partner granted it).
///
/// After a restart on the same store, a partner's pull returns exactly the kept updates, the
/// receiver gets every queued message (each `webhook-id` always with the same bytes: those
/// the decision's `body_sha256` names, signed by the endpoint's key; at most once from each
/// life of the node) and nothing else, and, once stopped, the outbox holds the same messages,
/// every one delivered. `audit-log` passes on what the kill left.
async fn acknowledged_tracking_updates_fan_out_once_each(ledger: &Ledger) {
    use std::cell::Cell;
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use std::time::{Duration, Instant};

    use consent_ledger_store::QueuedMessage;
    use sha2::Digest;

    let started = Instant::now();
    let receiver = Receiver::start();
    receiver.deliver();
    let admin = admin_token(ledger);
    let loopback = ["--webhooks-allow-insecure-loopback"];
    let mut node = Serve::start_with_args(ledger.command(), &loopback);
    let url = node.url.clone();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let made = |body: Value| principal(&client, &url, &admin, body);
    let (shipper_id, shipper) = made(json!({"role": "shipper", "name": "Shop"})).await;
    let (gateway_id, gateway) = made(json!({"role": "gateway", "name": "Tracking API"})).await;
    let partner = |name: &str, kind: &str| {
        made(json!({"role": "partner", "name": name,
            "partner": {"kind": kind, "country": "DE", "dpa_ref": format!("DPA-{name}")}}))
    };
    let (insure_id, insure) = partner("Insure", "insurer").await;
    let (returns_id, returns) = partner("Returns", "returns").await;
    let (notify_id, notify) = partner("Notify", "notifications").await;
    let mut parcels = Vec::new();
    for i in 0..TRACKED {
        let (status, answer) = post(
            &client,
            &format!("{url}/v1/shipments"),
            &admin,
            json!({"carrier": "DHL", "tracking_number": format!("JJDFAN{i:04}"),
                "destination_country": "DE", "shipper_id": shipper_id}),
        )
        .await
        .expect("shipment");
        assert_eq!(status, 201, "{answer}");
        parcels.push(answer["id"].as_str().expect("id").to_owned());
    }
    let (first_half, second_half) = (
        parcels[..TRACKED / 2].to_vec(),
        parcels[TRACKED / 2..].to_vec(),
    );
    let grant = |partner_id: &str, scope: Value, purpose: &str, categories: Value| {
        let body = json!({"partner_id": partner_id, "scope": scope, "purposes": [purpose],
            "data_categories": categories, "legal_basis": "contract"});
        let (client, url, shipper) = (client.clone(), url.clone(), shipper.clone());
        async move {
            let (status, answer) = post(&client, &format!("{url}/v1/consents"), &shipper, body)
                .await
                .expect("grant");
            assert_eq!(status, 201, "{answer}");
            answer["id"].as_str().expect("consent id").to_owned()
        }
    };
    grant(
        &insure_id,
        json!({"type": "shipper"}),
        "insurance_claim",
        json!(["status_events"]),
    )
    .await;
    grant(
        &returns_id,
        json!({"type": "shipments", "shipment_ids": first_half}),
        "returns_management",
        json!(["status_events"]),
    )
    .await;
    let revoked = grant(
        &returns_id,
        json!({"type": "shipments", "shipment_ids": second_half}),
        "returns_management",
        json!(["status_events"]),
    )
    .await;
    grant(
        &notify_id,
        json!({"type": "shipper"}),
        "shipment_notifications",
        json!(["status_events", "location"]),
    )
    .await;

    // Endpoints: partner id → (endpoint id, its `whpk_` key).
    let mut endpoints: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (partner_id, token, copies) in [
        (&insure_id, &insure, 2),
        (&returns_id, &returns, 1),
        (&notify_id, &notify, 1),
    ] {
        for _ in 0..copies {
            let (status, endpoint) = post(
                &client,
                &format!("{url}/v1/webhook-endpoints"),
                token,
                json!({"url": receiver.url, "event_types": ["tracking.updated"]}),
            )
            .await
            .expect("endpoint");
            assert_eq!(status, 201, "{endpoint}");
            endpoints.entry(partner_id.clone()).or_default().push((
                endpoint["id"].as_str().expect("endpoint id").to_owned(),
                endpoint["public_key"].as_str().expect("key").to_owned(),
            ));
        }
    }
    let token_of: HashMap<&String, &String> = [
        (&insure_id, &insure),
        (&returns_id, &returns),
        (&notify_id, &notify),
    ]
    .into_iter()
    .collect();

    // Subscriptions; the decisions they record are not the fan-out's.
    let mut subscribing = HashSet::new();
    let named: Vec<Value> = parcels.iter().map(|p| json!({"shipment_id": p})).collect();
    for (token, body) in [
        (
            &insure,
            json!({"purpose": "insurance_claim", "data_categories": ["status_events"],
                "shipments": named}),
        ),
        (
            &returns,
            json!({"purpose": "returns_management", "data_categories": ["status_events"],
                "shipments": named}),
        ),
        (
            &notify,
            json!({"purpose": "shipment_notifications",
                "data_categories": ["status_events", "location"], "scope": "consented"}),
        ),
    ] {
        let (status, answer) = post(&client, &format!("{url}/v1/subscriptions"), token, body)
            .await
            .expect("subscription");
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["rejected"], json!([]), "{answer}");
        for item in answer["accepted"].as_array().expect("accepted") {
            subscribing.insert(item["decision_id"].as_str().expect("decision").to_owned());
        }
    }
    let (status, answer) = post(
        &client,
        &format!("{url}/v1/consents/{revoked}/revoke"),
        &shipper,
        json!({"reason": "returns handled in store"}),
    )
    .await
    .expect("revoke");
    assert_eq!(status, 200, "{answer}");

    // Acknowledged batches; the next fresh batch; re-sends of an acknowledged batch answered
    // 200; 503s (the same updates kept racing: retry); requests the kill left unanswered.
    let acked: Rc<RefCell<BTreeSet<usize>>> = Rc::default();
    let next = Rc::new(Cell::new(0usize));
    let resent = Rc::new(Cell::new(0usize));
    let contended = Rc::new(Cell::new(0usize));
    let unanswered = Rc::new(Cell::new(0usize));
    let wrong: Rc<RefCell<Vec<String>>> = Rc::default();
    let killed = Rc::new(RefCell::new(false));
    let parcels = Rc::new(parcels);
    let mut clients = Vec::new();
    for c in 0..8usize {
        let fresh = c < 6;
        let (client, url, gateway, parcels) = (
            client.clone(),
            url.clone(),
            gateway.clone(),
            parcels.clone(),
        );
        let (acked, next, resent, contended, unanswered, wrong, killed) = (
            acked.clone(),
            next.clone(),
            resent.clone(),
            contended.clone(),
            unanswered.clone(),
            wrong.clone(),
            killed.clone(),
        );
        clients.push(actix_web::rt::spawn(async move {
            let mut turn = c;
            while !*killed.borrow() {
                turn += 1;
                let batch = if fresh {
                    let b = next.get();
                    if b == BATCHES {
                        break;
                    }
                    next.set(b + 1);
                    Some(b)
                } else if turn % 2 == 0 {
                    let acked = acked.borrow();
                    let len = acked.len();
                    (len > 0)
                        .then(|| acked.iter().nth(turn / 2 % len).copied())
                        .flatten()
                } else {
                    next.get().checked_sub(1)
                };
                let Some(b) = batch else {
                    actix_web::rt::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let again = acked.borrow().contains(&b);
                let body = tracking_batch(&parcels, b);
                match post(
                    &client,
                    &format!("{url}/v1/tracking-events"),
                    &gateway,
                    body,
                )
                .await
                {
                    Ok((200, answer)) if answer == json!({"accepted": BATCH, "rejected": []}) => {
                        resent.set(resent.get() + usize::from(again));
                        acked.borrow_mut().insert(b);
                    }
                    Ok((503, _)) => contended.set(contended.get() + 1),
                    Ok((status, answer)) => {
                        wrong
                            .borrow_mut()
                            .push(format!("batch {b}: {status} {answer}"));
                        break;
                    }
                    Err(_) => {
                        unanswered.set(unanswered.get() + 1);
                        break;
                    }
                }
            }
        }));
    }
    let first_sent = Instant::now();
    let deadline = first_sent + Duration::from_secs(120);
    while acked.borrow().len() < BATCHES_BEFORE_KILL || resent.get() < RESENT_BEFORE_KILL {
        assert!(
            wrong.borrow().is_empty() && Instant::now() < deadline,
            "{} batches and {} re-sends acknowledged in {:?}; {:?}",
            acked.borrow().len(),
            resent.get(),
            first_sent.elapsed(),
            wrong.borrow()
        );
        actix_web::rt::time::sleep(Duration::from_millis(1)).await;
    }
    node.signal("-KILL");
    let stream = first_sent.elapsed();
    *killed.borrow_mut() = true;
    for c in clients {
        c.await.expect("a client task panicked");
    }
    let acked = acked.borrow().clone();
    let taken = next.get();
    assert!(
        wrong.borrow().is_empty(),
        "before the kill: {:?}",
        wrong.borrow()
    );
    assert!(
        taken < BATCHES,
        "every batch was sent before the kill: nothing was in flight"
    );
    ledger.settle_after_kill().await;

    // What the kill left.
    let store = Store::open(&ledger.location()).await.expect("open store");
    let log = store
        .read_range(Position::ZERO, u32::MAX)
        .await
        .expect("log");
    for (i, event) in log.iter().enumerate() {
        assert_eq!(event.position.get(), i as u64, "gap at {i}");
    }
    // Kept updates per parcel: (occurred_at, status) → update number.
    let number_of: HashMap<String, usize> =
        (0..taken * BATCH).map(|n| (update_time(n), n)).collect();
    let mut kept: HashMap<String, BTreeMap<(String, String), usize>> = HashMap::new();
    for parcel in parcels.iter() {
        let rows = store.tracking_of(parcel).await.expect("tracking updates");
        let mine = kept.entry(parcel.clone()).or_default();
        for row in rows {
            let n = *number_of
                .get(&row.occurred_at)
                .unwrap_or_else(|| panic!("an update no batch sent is kept: {row:?}"));
            let sent = tracking_update(&parcels, n);
            assert_eq!(
                (json!(row.shipment_id), json!(row.status)),
                (sent["shipment_id"].clone(), sent["status"].clone()),
                "update {n} kept as {row:?}"
            );
            let again = mine.insert((row.occurred_at.clone(), row.status.clone()), n);
            assert!(again.is_none(), "update {n} kept twice");
        }
    }
    let kept_numbers: HashSet<usize> = kept.values().flat_map(|k| k.values().copied()).collect();
    let mut unacked_kept = 0;
    for b in 0..taken {
        let held = (b * BATCH..(b + 1) * BATCH)
            .filter(|n| kept_numbers.contains(n))
            .count();
        if acked.contains(&b) {
            assert_eq!(
                held, BATCH,
                "acknowledged batch {b}: {held} of its updates kept"
            );
        } else {
            assert!(
                held == 0 || held == BATCH,
                "unacknowledged batch {b} half kept: {held} of {BATCH} updates"
            );
            unacked_kept += usize::from(held == BATCH);
        }
    }
    assert!(
        kept_numbers.iter().all(|n| n / BATCH < taken),
        "an update of a batch never sent is kept"
    );

    // The fan-out's decisions: decision id → what it decided.
    let mut decisions: HashMap<String, FannedOut> = HashMap::new();
    let mut per_pair: HashMap<(String, String), usize> = HashMap::new();
    for event in log.iter().filter(|e| e.stream_type == "access") {
        let payload: Value = serde_json::from_str(event.payload.as_str()).expect("payload");
        let (kind, decision) = payload
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("an access event");
        if decision["channel"] != "webhook"
            || subscribing.contains(decision["decision_id"].as_str().unwrap_or_default())
        {
            continue;
        }
        assert_eq!(
            event.actor,
            gateway_id,
            "a webhook decision not made for the gateway's updates at {}: {payload}",
            event.position.get()
        );
        let fanned = FannedOut {
            partner: decision["partner"].as_str().expect("partner").to_owned(),
            shipment: decision["shipment"].as_str().expect("shipment").to_owned(),
            body_sha256: match kind.as_str() {
                "TrackingAccessAllowed" => Some(
                    decision["body_sha256"]
                        .as_str()
                        .unwrap_or_else(|| {
                            panic!("an allowed webhook decision without body_sha256: {payload}")
                        })
                        .to_owned(),
                ),
                "TrackingAccessDenied" => None,
                other => panic!("{other} at {} is no fan-out decision", event.position.get()),
            },
            reason: decision["reason"].as_str().map(str::to_owned),
        };
        let expected_allowed =
            fanned.partner != returns_id || first_half.contains(&fanned.shipment);
        assert_eq!(
            fanned.body_sha256.is_some(),
            expected_allowed,
            "at {}: {payload}",
            event.position.get()
        );
        if !expected_allowed {
            assert_eq!(
                fanned.reason.as_deref(),
                Some("consent_revoked"),
                "{payload}"
            );
        }
        *per_pair
            .entry((fanned.partner.clone(), fanned.shipment.clone()))
            .or_default() += 1;
        let id = decision["decision_id"]
            .as_str()
            .expect("decision id")
            .to_owned();
        assert!(
            decisions.insert(id.clone(), fanned).is_none(),
            "decision {id} recorded twice"
        );
    }
    for ((partner_id, shipment), count) in &per_pair {
        assert!(
            kept.contains_key(shipment),
            "{count} decisions for {partner_id} about {shipment}, no parcel of the test"
        );
    }
    for partner_id in [&insure_id, &returns_id, &notify_id] {
        for parcel in parcels.iter() {
            let decided = per_pair
                .get(&(partner_id.clone(), parcel.clone()))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                decided,
                kept[parcel].len(),
                "partner {partner_id}, parcel {parcel}: fan-out decisions vs updates kept"
            );
        }
    }

    // The outbox: per endpoint, one message per allowed decision of its partner, each naming a
    // kept update and the body its decision's SHA-256 names.
    let mut queued: HashMap<String, (String, QueuedMessage)> = HashMap::new();
    for (partner_id, mine) in &endpoints {
        let allowed: BTreeSet<&String> = decisions
            .iter()
            .filter(|(_, d)| &d.partner == partner_id && d.body_sha256.is_some())
            .map(|(id, _)| id)
            .collect();
        for (endpoint_id, key) in mine {
            let messages = store.outbox_of(endpoint_id).await.expect("outbox");
            let mut named: BTreeSet<&String> = BTreeSet::new();
            // (parcel, update number) → the decision its message names.
            let mut per_update: HashMap<(String, usize), String> = HashMap::new();
            for message in messages {
                assert_eq!(message.event_type, "tracking.updated", "{message:?}");
                let data: Value = serde_json::from_str(&message.data).expect("data");
                let decision_id = data["decision_id"].as_str().expect("decision_id");
                let (id, decision) = decisions.get_key_value(decision_id).unwrap_or_else(|| {
                    panic!(
                        "{} names no fan-out decision of the log: {data}",
                        message.message_id
                    )
                });
                assert_eq!(&decision.partner, partner_id, "{data}");
                assert_eq!(data["shipment_id"], json!(decision.shipment), "{data}");
                let body = consent_ledger_app::webhooks::delivery::body(&message).expect("body");
                assert_eq!(
                    Some(hex::encode(sha2::Sha256::digest(&body))),
                    decision.body_sha256,
                    "{}: body_sha256 of decision {id} vs the body",
                    message.message_id
                );
                assert!(
                    named.insert(id),
                    "decision {id} has two messages to {endpoint_id}"
                );
                let update = &data["update"];
                let key_of_update = (
                    update["occurred_at"]
                        .as_str()
                        .expect("occurred_at")
                        .to_owned(),
                    update["status"].as_str().expect("status").to_owned(),
                );
                let n = *kept[&decision.shipment]
                    .get(&key_of_update)
                    .unwrap_or_else(|| panic!("a message about an update not kept: {data}"));
                assert_eq!(
                    update.get("location").is_some(),
                    partner_id == &notify_id && n % 2 == 1,
                    "{partner_id}: {data}"
                );
                if let Some(other) = per_update.insert((decision.shipment.clone(), n), id.clone()) {
                    panic!("update {n}: two decisions for {partner_id}, {other} and {id}");
                }
                let previous = queued.insert(message.message_id.clone(), (key.clone(), message));
                assert!(previous.is_none(), "a message id queued twice");
            }
            assert_eq!(
                named, allowed,
                "{endpoint_id}: the decisions its messages name vs those allowing its partner"
            );
        }
    }
    drop(store);
    let audit = ledger.run(&["audit-log"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).expect("audit-log json");
    assert_eq!(audit["events"], json!(log.len()), "{audit}");
    let kept_total: usize = kept.values().map(BTreeMap::len).sum();
    let before = receiver.inbox.arrivals().len();
    eprintln!(
        "{} of {taken} batches acknowledged ({} re-sends, {} answered 503) in {stream:?} before \
         the SIGKILL, {} requests unanswered; {unacked_kept} unacknowledged batches kept; \
         {kept_total} updates, {} fan-out decisions, {} messages queued, {before} received",
        acked.len(),
        resent.get(),
        contended.get(),
        unanswered.get(),
        decisions.len(),
        queued.len(),
    );

    // Restarted: the partner's pull reads exactly the kept updates…
    let restarted = Instant::now();
    let node = Serve::start_with_args(ledger.command(), &loopback);
    let url = node.url.clone();
    let ready = get(&client, &format!("{url}/readyz")).await;
    assert_eq!(ready, json!({"status": "ready"}));
    for parcel in parcels.iter() {
        let mut res = client
            .get(format!(
                "{url}/v1/shipments/{parcel}/tracking?purpose=insurance_claim&data_categories=status_events"
            ))
            .insert_header(("Authorization", format!("Bearer {insure}")))
            .send()
            .await
            .expect("pull");
        assert_eq!(res.status().as_u16(), 200);
        let pulled: Value = res.json().limit(16 << 20).await.expect("json");
        assert_eq!(pulled["allowed"], true, "{pulled}");
        let read: BTreeSet<(String, String)> = pulled["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .map(|u| {
                (
                    u["occurred_at"].as_str().expect("occurred_at").to_owned(),
                    u["status"].as_str().expect("status").to_owned(),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String)> = kept[parcel].keys().cloned().collect();
        assert_eq!(read, expected, "parcel {parcel}: pulled vs kept");
    }

    // … and the receiver gets every queued message, and nothing else.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered: HashSet<String> = receiver
            .inbox
            .arrivals()
            .iter()
            .filter(|a| a.answered == 200)
            .filter_map(|a| a.webhook_id.clone())
            .collect();
        let missing: Vec<&String> = queued.keys().filter(|m| !delivered.contains(*m)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} messages not delivered {:?} after the restart, e.g. {:?}",
            missing.len(),
            queued.len(),
            restarted.elapsed(),
            &missing[..missing.len().min(5)]
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_after = restarted.elapsed();
    let arrivals = receiver.inbox.arrivals();
    let by_id = bodies_by_webhook_id(&arrivals, |id| {
        queued
            .get(id)
            .unwrap_or_else(|| panic!("{id} received, never queued"))
            .0
            .clone()
    });
    for (id, bytes) in &by_id {
        let (_, message) = &queued[id];
        let rendered = consent_ledger_app::webhooks::delivery::body(message).expect("body");
        assert!(
            bytes == &rendered,
            "{id} received as\n{}\nqueued as\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&rendered)
        );
    }
    assert_eq!(
        by_id.len(),
        queued.len(),
        "distinct webhook-ids vs messages queued"
    );
    // A message arrives again only across the kill: delivered by the killed node, its delivery
    // not recorded; each life sends it once.
    let mut lives: HashMap<&str, [usize; 2]> = HashMap::new();
    for a in &arrivals {
        let id = a.webhook_id.as_deref().expect("webhook-id");
        lives.entry(id).or_default()[usize::from(a.at >= restarted)] += 1;
    }
    for (id, [before, after]) in &lives {
        assert!(
            *before <= 1 && *after <= 1,
            "{id} arrived {before} times before the restart and {after} times after it"
        );
    }
    let repeated = arrivals.len() - by_id.len();

    // Recorded, then stopped: the outbox holds the same messages, every one delivered.
    for (partner_id, mine) in &endpoints {
        for (endpoint_id, _) in mine {
            let received: Vec<String> = queued
                .iter()
                .filter(|(_, (_, m))| &m.endpoint_id == endpoint_id)
                .map(|(id, _)| id.clone())
                .collect();
            await_recorded_deliveries(&client, &url, token_of[partner_id], endpoint_id, &received)
                .await;
        }
    }
    node.stop();
    let store = Store::open(&ledger.location()).await.expect("open store");
    let mut after = 0;
    for (endpoint_id, _) in endpoints.values().flatten() {
        for message in store.outbox_of(endpoint_id).await.expect("outbox") {
            assert_eq!(message.state, "delivered", "{message:?}");
            assert!(
                queued.contains_key(&message.message_id),
                "{} queued after the restart",
                message.message_id
            );
            after += 1;
        }
    }
    drop(store);
    assert_eq!(
        after,
        queued.len(),
        "messages in the outbox after the restart"
    );
    receiver.server.stop(true).await;
    eprintln!(
        "{} messages delivered, {repeated} arrivals again, all {delivered_after:?} after the \
         restart; {:?} in all",
        queued.len(),
        started.elapsed()
    );
}

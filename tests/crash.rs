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
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::rc::Rc;

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
        let mut child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("consent-ledger listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Serve { child, url }
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

/// A `serve` process, SIGKILLed when dropped if still running (a failed test leaves none).
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("reap");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    let admin = ledger.run(&["principal", "create", "--role", "admin", "--name", "Ops"]);
    let admin: Value = serde_json::from_slice(&admin.stdout).expect("admin json");
    let admin = admin["token"].as_str().expect("token").to_owned();

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
    let admin = ledger.run(&["principal", "create", "--role", "admin", "--name", "Ops"]);
    let admin: Value = serde_json::from_slice(&admin.stdout).expect("admin json");
    let admin = admin["token"].as_str().expect("token").to_owned();
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

//! SPEC §5.1 and §5.3 against the real binary: under a stream of decisions the process is
//! killed with SIGKILL; after a restart every decision that was answered 2xx is in the log at
//! the position it was answered with, positions are gapless, and the restarted read model
//! agrees with a full `consent-ledger replay`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;

use consent_ledger_store::{Position, Store, StoreLocation};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .arg("--data-dir")
        .arg(dir);
    cmd
}

fn serve(dir: &Path) -> (Child, String) {
    let mut child = command(dir)
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
        .expect("listening line")
        .to_owned();
    (child, url)
}

fn kill(child: &mut Child, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("reap");
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

/// Acknowledged decisions: decision id → position.
type Acked = Rc<RefCell<HashMap<String, u64>>>;

#[actix_web::test]
async fn decisions_acknowledged_before_a_sigkill_survive_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let admin = command(&data)
        .args(["principal", "create", "--role", "admin", "--name", "Ops"])
        .output()
        .expect("admin");
    let admin: Value = serde_json::from_slice(&admin.stdout).expect("admin json");
    let admin = admin["token"].as_str().expect("token").to_owned();

    let (mut child, url) = serve(&data);
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
    let (st, pt) = (
        shipper["token"].as_str().expect("t").to_owned(),
        partner["token"].as_str().expect("t").to_owned(),
    );
    let (_, shipment) = post(
        &client,
        &format!("{url}/v1/shipments"),
        &st,
        json!({"carrier": "DHL", "tracking_number": "JJD1", "destination_country": "DE"}),
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
    kill(&mut child, "-KILL");
    *killed.borrow_mut() = true;
    for c in clients {
        let _ = c.await;
    }
    let acked = acked.borrow().clone();
    assert!(acked.len() >= 600);

    // Every acknowledged decision is in the log where it was answered; no gap.
    let store = Store::open(&StoreLocation::SqliteFile(data.join("ledger.db")))
        .await
        .expect("open store");
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

    // The restarted service's read model equals a full replay of the log.
    let (mut child, url) = serve(&data);
    let ready = get(&client, &format!("{url}/readyz")).await;
    let replay = command(&data).arg("replay").output().expect("replay");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replay: Value = serde_json::from_slice(&replay.stdout).expect("replay json");
    assert_eq!(
        ready["model"], replay["summary"],
        "restarted model vs replay"
    );
    assert_eq!(ready["log_size"], json!(log.len()));
    // And it still decides.
    let (status, answer) = post(&client, &format!("{url}/v1/decisions"), &pt,
        json!({"shipment_id": shipment["id"], "purpose": "insurance_claim", "data_categories": ["status_events"]})).await.expect("decide");
    assert_eq!(status, 200);
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["position"], json!(log.len()));
    kill(&mut child, "-TERM");
}

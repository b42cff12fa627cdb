//! `spawn_app`: the real actix app on a real port (port 0), over a fresh SQLite file in a
#![allow(dead_code)] // each test module uses a part of the helpers
//! temporary directory, with an injected clock. Every test gets its own database.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use consent_ledger_api::routes::principals::{register, CreatePrincipal};
use consent_ledger_api::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_domain::values::{DisplayName, Role};
use consent_ledger_domain::ManualClock;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{Position, StoredEvent};
use serde_json::{json, Value};
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub state: Arc<AppState>,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    dir: TempDir,
    handle: ServerHandle,
    client: awc::Client,
}

/// A response: status, headers we look at, and the JSON body (Null if empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `field` of a problem+json answer.
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
    pub fn assert_problem(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "body: {}",
            self.body
        );
        assert!(
            self.problem_type()
                .starts_with("https://consent-ledger.dev/problems/"),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status.as_u16());
        self
    }
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }
    pub fn token(&self) -> String {
        self.body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {}", self.body))
            .to_owned()
    }
    pub fn position(&self) -> u64 {
        self.body["position"]
            .as_u64()
            .unwrap_or_else(|| panic!("no position in {}", self.body))
    }
}

/// The time every test starts at: 2026-03-01T12:00:00Z.
pub fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(start_time()));
    spawn_app_in(dir, clock, None).await
}

/// Starts the app over the database in `dir` (a restart when `admin` is given).
pub async fn spawn_app_in(dir: TempDir, clock: Arc<ManualClock>, admin: Option<String>) -> TestApp {
    let options = StoreOptions {
        data_dir: dir.path().to_path_buf(),
        database_url: None,
    };
    let state = AppState::open(&options, clock.clone(), ServiceConfig::default())
        .await
        .expect("open app state");
    let admin = match admin {
        Some(token) => token,
        None => {
            let input = CreatePrincipal {
                role: Role::Admin,
                name: DisplayName::parse("Test admin").expect("name"),
                partner: None,
            };
            let (created, _) = register(&state, input, CommandMeta::new("cli", "test-setup"))
                .await
                .expect("admin");
            state.projector.catch_up().await.expect("catch up");
            created.token
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let server = consent_ledger_api::server::run(listener, state.clone()).expect("start server");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        state,
        clock,
        admin,
        dir,
        handle,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .finish(),
    }
}

impl TestApp {
    /// Stops the server gracefully and hands back its directory and clock, for a restart.
    pub async fn stop(self) -> (TempDir, Arc<ManualClock>, String) {
        self.handle.stop(true).await;
        (self.dir, self.clock, self.admin)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    async fn send(&self, req: awc::ClientRequest, body: Option<Vec<u8>>) -> Reply {
        let mut res = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        }
        .expect("request sent");
        let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body read");
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status: res.status(),
            content_type,
            headers: res.headers().clone(),
            body,
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> awc::ClientRequest {
        let url = format!("{}{}", self.address, path);
        let mut req = match method {
            "GET" => self.client.get(url),
            _ => self.client.post(url),
        };
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        req
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.post_raw(path, Some(token), body.to_string().as_bytes(), &[])
            .await
    }

    pub async fn post_with(
        &self,
        path: &str,
        token: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.post_raw(path, Some(token), body.to_string().as_bytes(), headers)
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        let req = self
            .request("POST", path, token, headers)
            .insert_header(("content-type", "application/json"));
        self.send(req, Some(body.to_vec())).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.request("GET", path, Some(token), &[]), None)
            .await
    }

    pub async fn get_anonymous(&self, path: &str) -> Reply {
        self.send(self.request("GET", path, None, &[]), None).await
    }

    /// A GET with an optional bearer token and extra headers (e.g. a malformed Authorization).
    pub async fn get_with(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(self.request("GET", path, token, headers), None)
            .await
    }

    /// Registers a principal through the API; returns (id, token).
    pub async fn principal(&self, role: &str, name: &str) -> (String, String) {
        let r = self
            .post(
                "/v1/principals",
                &self.admin,
                json!({ "role": role, "name": name }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (r.id(), r.token())
    }

    pub async fn partner(&self, name: &str) -> (String, String) {
        let body = json!({ "role": "partner", "name": name,
            "partner": { "kind": "insurer", "country": "DE", "dpa_ref": format!("DPA-{name}") } });
        let r = self.post("/v1/principals", &self.admin, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (r.id(), r.token())
    }

    /// Registers a shipment for the shipper holding `token`; returns its id.
    pub async fn shipment(
        &self,
        token: &str,
        carrier: &str,
        tracking: &str,
        country: &str,
    ) -> String {
        let body = json!({ "carrier": carrier, "tracking_number": tracking, "destination_country": country });
        let r = self.post("/v1/shipments", token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// Every event of the log, in order.
    pub async fn log(&self) -> Vec<StoredEvent> {
        self.state
            .store
            .read_range(Position::ZERO, u32::MAX)
            .await
            .expect("read log")
    }

    pub async fn log_size(&self) -> u64 {
        self.state
            .store
            .next_position()
            .await
            .expect("log size")
            .get()
    }
}

/// Asserts positions are 0, 1, 2, … with no gaps.
pub fn assert_gapless(events: &[StoredEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position.get(), i as u64, "gap or reorder at {i}");
    }
}

/// A consent body granting `partner` insurance-claim access to `shipment`.
pub fn consent_for(partner: &str, shipment: &str) -> Value {
    json!({
        "partner_id": partner,
        "scope": { "type": "shipments", "shipment_ids": [shipment] },
        "purposes": ["insurance_claim"],
        "data_categories": ["status_events", "proof_of_delivery"],
        "legal_basis": "contract"
    })
}

/// Base of every problem `type` URI.
pub const PROBLEMS: &str = "https://consent-ledger.dev/problems/";

/// Asserts a problem+json answer with this status and this stable problem type.
pub fn problem(r: &Reply, status: StatusCode, slug: &str) {
    r.assert_problem(status);
    assert_eq!(r.problem_type(), format!("{PROBLEMS}{slug}"), "{}", r.body);
}

/// Asserts a JSON answer with this status and returns its body.
pub fn expect(r: &Reply, status: StatusCode) -> &Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/json"),
        "content type {:?}: {}",
        r.content_type,
        r.body
    );
    &r.body
}

pub fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A JSON array of strings, sorted (sets are compared as sets).
pub fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

pub fn sorted(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

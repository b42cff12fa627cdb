//! `spawn_app`: the real actix app on a real port (port 0), over a fresh store, with an
#![allow(dead_code)] // each test module uses a part of the helpers
//! injected clock. Every test gets its own database: an SQLite file in a temporary directory,
//! or with `CONSENT_LEDGER_TEST_BACKEND=postgres` a database of its own on the `DATABASE_URL`
//! server (created empty, dropped after the test). The data directory (signing key,
//! snapshot) is a temporary directory either way.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use consent_ledger_app::principals::{register, CreatePrincipal};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_domain::values::{DisplayName, Role};
use consent_ledger_domain::ManualClock;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::testing::{postgres_server, ScratchDatabase};
use consent_ledger_store::{Position, StoredEvent};
use serde_json::{json, Value};
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub state: Arc<AppState>,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    backing: Backing,
    handle: ServerHandle,
    // Applies what other processes (other test nodes) commit, as `serve` does.
    follower: actix_web::rt::task::JoinHandle<()>,
    client: awc::Client,
}

/// The backend the HTTP suite runs on, from `CONSENT_LEDGER_TEST_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("CONSENT_LEDGER_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("CONSENT_LEDGER_TEST_BACKEND={other:?}: expected sqlite or postgres"),
    }
}

/// Where a test app keeps its store and its data directory. Restarting an app over the same
/// `Backing` finds its log again; [`Backing::second_node`] shares the store with another node.
pub struct Backing {
    dir: TempDir,
    /// `None`: the SQLite file in `dir`.
    database_url: Option<String>,
    /// Kept alive for as long as any node uses it; dropped (with the database) after the last.
    scratch: Option<Arc<ScratchDatabase>>,
}

impl Backing {
    /// A fresh, empty store on the suite's backend.
    pub async fn fresh() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend() {
            Backend::Sqlite => dir.into(),
            Backend::Postgres => {
                let server = postgres_server("the HTTP suite on PostgreSQL").unwrap_or_else(|| {
                    panic!("CONSENT_LEDGER_TEST_BACKEND=postgres needs DATABASE_URL")
                });
                let scratch = ScratchDatabase::create(&server)
                    .await
                    .unwrap_or_else(|e| panic!("creating a test database on {server}: {e}"));
                Self {
                    dir,
                    database_url: Some(scratch.url_text().to_owned()),
                    scratch: Some(Arc::new(scratch)),
                }
            }
        }
    }

    /// Another node on the same store: its own data directory, holding a copy of this one's
    /// signing key (so that every node's checkpoints verify with one vkey).
    pub fn second_node(&self) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = self.dir.path().join("log.key");
        if key.exists() {
            std::fs::copy(&key, dir.path().join("log.key")).expect("copy the signing key");
        }
        let database_url = self.database_url.clone().or_else(|| {
            Some(format!(
                "sqlite://{}",
                self.dir.path().join("ledger.db").display()
            ))
        });
        Self {
            dir,
            database_url,
            scratch: self.scratch.clone(),
        }
    }

    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            data_dir: self.dir.path().to_path_buf(),
            database_url: self.database_url.clone(),
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// An SQLite store in `dir`, whatever the suite's backend (for tests of SQLite's own file).
impl From<TempDir> for Backing {
    fn from(dir: TempDir) -> Self {
        Self {
            dir,
            database_url: None,
            scratch: None,
        }
    }
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
    let clock = Arc::new(ManualClock::new(start_time()));
    spawn_app_in(Backing::fresh().await, clock, None).await
}

/// Starts the app over the store of `backing` (a restart, or another node, when `admin` is
/// given).
pub async fn spawn_app_in(
    backing: impl Into<Backing>,
    clock: Arc<ManualClock>,
    admin: Option<String>,
) -> TestApp {
    spawn_app_configured(backing, clock, admin, ServiceConfig::default()).await
}

/// A fresh app with these tunables (e.g. a rate limit on a clock the test moves).
pub async fn spawn_app_with(config: ServiceConfig) -> TestApp {
    let clock = Arc::new(ManualClock::new(start_time()));
    spawn_app_configured(Backing::fresh().await, clock, None, config).await
}

/// [`spawn_app_in`] with these tunables.
pub async fn spawn_app_configured(
    backing: impl Into<Backing>,
    clock: Arc<ManualClock>,
    admin: Option<String>,
    config: ServiceConfig,
) -> TestApp {
    let backing = backing.into();
    let options = backing.options();
    let state = AppState::open(&options, clock.clone(), config)
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
    let projector = state.projector.clone();
    let committed = state.store.subscribe();
    let follower = actix_web::rt::spawn(async move { projector.follow(committed).await });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        state,
        clock,
        admin,
        backing,
        handle,
        follower,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .finish(),
    }
}

impl TestApp {
    /// Stops the server gracefully and hands back its store and clock, for a restart.
    pub async fn stop(self) -> (Backing, Arc<ManualClock>, String) {
        self.handle.stop(true).await;
        self.follower.abort();
        (self.backing, self.clock, self.admin)
    }

    /// Starts another node on the same store (another process in production): its own read
    /// model, writer and data directory (with a copy of the signing key), the same admin.
    pub async fn second_node(&self) -> TestApp {
        self.second_node_configured(ServiceConfig::default()).await
    }

    /// [`TestApp::second_node`] with these tunables.
    pub async fn second_node_configured(&self, config: ServiceConfig) -> TestApp {
        spawn_app_configured(
            self.backing.second_node(),
            self.clock.clone(),
            Some(self.admin.clone()),
            config,
        )
        .await
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.backing.data_dir()
    }

    /// Starts this node's webhook worker, as `serve` does (looking at the outbox every 100 ms
    /// when nothing announced a write); it stops when the handle is dropped.
    pub fn deliveries(&self) -> consent_ledger_app::webhooks::delivery::Deliveries {
        self.deliveries_with(consent_ledger_app::webhooks::delivery::DeliveryOptions {
            poll: std::time::Duration::from_millis(100),
            ..Default::default()
        })
    }

    /// [`TestApp::deliveries`] with these options.
    pub fn deliveries_with(
        &self,
        options: consent_ledger_app::webhooks::delivery::DeliveryOptions,
    ) -> consent_ledger_app::webhooks::delivery::Deliveries {
        consent_ledger_app::webhooks::delivery::Deliveries::spawn(self.state.clone(), options)
            .expect("start the webhook worker")
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

    /// A request with any method, an optional bearer token and an optional body.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        self.send(req, body.map(<[u8]>::to_vec)).await
    }

    /// A GET with a bearer token from the local address `from` (e.g. 127.0.0.2: another
    /// client, as the server sees it).
    pub async fn get_from(&self, from: std::net::IpAddr, path: &str, token: &str) -> Reply {
        let client = awc::Client::builder()
            .local_address(from)
            .timeout(std::time::Duration::from_secs(60))
            .finish();
        let req = client
            .get(format!("{}{}", self.address, path))
            .insert_header(("Authorization", format!("Bearer {token}")));
        self.send(req, None).await
    }

    /// The `host:port` the app listens on, for raw sockets.
    pub fn socket_address(&self) -> &str {
        self.address.trim_start_matches("http://")
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

    /// Registers a shipment for the shipper holding `token`; returns its id. The admin
    /// registers it naming that shipper (SPEC §7: the carrier, not the shipper, says who
    /// shipped what; a shipper's own `POST /v1/shipments` is refused).
    pub async fn shipment(
        &self,
        token: &str,
        carrier: &str,
        tracking: &str,
        country: &str,
    ) -> String {
        let me = self.get("/v1/me", token).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        assert_eq!(me.body["role"], "shipper", "{}", me.body);
        self.shipment_for(&me.id(), carrier, tracking, country)
            .await
    }

    /// Registers a shipment for the shipper `shipper_id` through the admin; returns its id.
    pub async fn shipment_for(
        &self,
        shipper_id: &str,
        carrier: &str,
        tracking: &str,
        country: &str,
    ) -> String {
        let r = self
            .post(
                "/v1/shipments",
                &self.admin,
                shipment_body(shipper_id, carrier, tracking, country),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// Suspends principal `id` through the admin (SPEC §2).
    pub async fn suspend(&self, id: &str, reason: &str) -> Reply {
        self.post(
            &format!("/v1/principals/{id}/suspend"),
            &self.admin,
            json!({ "reason": reason }),
        )
        .await
    }

    /// Every event of the log, in order.
    pub async fn log(&self) -> Vec<StoredEvent> {
        self.state
            .store
            .read_range(Position::ZERO, u32::MAX)
            .await
            .expect("read log")
    }

    /// The log's verifier key, as `GET /v1/log/vkey` publishes it.
    pub async fn vkey(&self) -> consent_ledger_audit::note::VerifierKey {
        self.get_anonymous("/v1/log/vkey")
            .await
            .body
            .as_str()
            .expect("vkey text")
            .trim()
            .parse()
            .expect("vkey")
    }

    /// Waits until the clean-up an erasure started in the background (SPEC §12) has finished.
    pub async fn scrubbed(&self) {
        while self
            .state
            .scrub_requested
            .load(std::sync::atomic::Ordering::Acquire)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(self.state.scrubbing.lock().await);
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

/// A shipment body registering `carrier`/`tracking` for the shipper `shipper_id`, as the
/// gateway or an admin sends it.
pub fn shipment_body(shipper_id: &str, carrier: &str, tracking: &str, country: &str) -> Value {
    json!({ "carrier": carrier, "tracking_number": tracking, "destination_country": country,
        "shipper_id": shipper_id })
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

/// Asserts a problem+json answer with this status and type, naming `field`.
pub fn field_problem(r: &Reply, status: StatusCode, slug: &str, field: &str) {
    problem(r, status, slug);
    assert_eq!(r.field(), field, "{}", r.body);
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

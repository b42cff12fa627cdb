//! A partner's webhook receiver on loopback for the delivery tests (SPEC §13, §14): records
//! every request and answers as scripted; and the partner snippets that verify a signature.

use std::collections::VecDeque;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use consent_ledger_app::state::ServiceConfig;
use consent_ledger_app::webhooks::target::TargetPolicy;
use serde_json::Value;

use crate::helpers::{spawn_app_configured, start_time, Backing, TestApp};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) id: String,
    pub(crate) timestamp: String,
    pub(crate) signature: String,
    pub(crate) body: Vec<u8>,
    pub(crate) at: Instant,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
pub(crate) struct Script {
    pub(crate) seen: Mutex<Vec<Received>>,
    /// The statuses of the next answers, in order; then `otherwise`.
    pub(crate) next: Mutex<VecDeque<u16>>,
    pub(crate) otherwise: AtomicU16,
    pub(crate) delay_ms: AtomicU64,
}

/// A partner's webhook receiver on loopback: records every request and answers as scripted.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) script: Arc<Script>,
    pub(crate) handle: ServerHandle,
}

async fn receive(script: web::Data<Script>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    script.seen.lock().expect("lock").push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let delay = script.delay_ms.load(Relaxed);
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = script
        .next
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| script.otherwise.load(Relaxed));
    HttpResponse::build(StatusCode::from_u16(status).expect("status")).finish()
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let script = Arc::new(Script::default());
        script.otherwise.store(204, Relaxed);
        let data = web::Data::from(script.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind a receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/consent"),
            script,
            handle,
        }
    }

    pub(crate) fn answer_next(&self, statuses: &[u16]) {
        self.script.next.lock().expect("lock").extend(statuses);
    }

    pub(crate) fn seen(&self) -> Vec<Received> {
        self.script.seen.lock().expect("lock").clone()
    }

    /// Waits (at most `within`) until `n` requests came; returns them all.
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.seen();
            if seen.len() >= n || Instant::now() > deadline {
                assert!(
                    seen.len() >= n,
                    "{} of {n} requests within {within:?}",
                    seen.len()
                );
                return seen;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

/// Verifies `signature` (one or several `v1a,…`) over the message with the partner snippets
/// of docs/webhooks, in Python and in Node; `true` when each available one accepts. A machine
/// without one of them skips it with a notice; CI fails instead.
pub(crate) fn verified_independently(public_key: &str, m: &Received, signature: &str) -> bool {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks");
    let mut verdicts = Vec::new();
    for (program, script) in [("python3", "verify.py"), ("node", "verify.js")] {
        let child = Command::new(program)
            .arg(format!("{docs}/{script}"))
            .args([public_key, &m.id, &m.timestamp, signature])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                skipped(program, &e.to_string());
                continue;
            }
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&m.body)
            .expect("write the body");
        let out = child.wait_with_output().expect("run the verifier");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("ModuleNotFoundError") {
            skipped(program, &stderr);
            continue;
        }
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{script} failed: {stderr}"
        );
        verdicts.push(out.status.success());
    }
    verdicts.iter().all(|ok| *ok)
}

pub(crate) fn skipped(program: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is needed in CI to verify webhooks independently ({why}); .ci/run installs it"
    );
    eprintln!("SKIPPED the {program} verification: {why}");
}

/// An app whose webhook endpoints may be loopback `http` URLs (`serve
/// --webhooks-allow-insecure-loopback`).
pub(crate) async fn loopback_app(backing: Backing) -> TestApp {
    let clock = Arc::new(consent_ledger_domain::ManualClock::new(start_time()));
    spawn_app_configured(backing, clock, None, loopback_config()).await
}

pub(crate) fn loopback_config() -> ServiceConfig {
    ServiceConfig {
        webhook_targets: TargetPolicy {
            allow_insecure_loopback: true,
        },
        ..ServiceConfig::default()
    }
}

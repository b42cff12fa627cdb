//! `consent-ledger-bench webhooks`: partner webhooks (SPEC §13) over real HTTP on loopback, in
//! one run on one store.
//!
//! The `decisions` fixture (100 partners, each with a shipper-wide consent of the fixture's
//! shipper, 10,000 parcels) is served on a loopback port by a service that lets webhooks go to
//! loopback `http` URLs (`serve --webhooks-allow-insecure-loopback`). Beside it: a partner's
//! receiver (actix-web on 127.0.0.1:0, one worker, answering `204` at once and counting the
//! messages by `webhook-id`), a shipper of its own ("Webhook shop") and `--partners` partners,
//! each with one endpoint to that receiver. Messages are queued the product's way: the webhook
//! shop grants each partner shipper-wide consents over HTTP (`POST /v1/consents`), and each
//! grant's `consent.granted` message is written to the outbox in the grant's own transaction.
//!
//! 1. **Decisions, nothing queued and no worker** (the baseline of 3): warm-up, then the
//!    fixture's partners' single decisions (`POST /v1/decisions`, as `bench decisions`), and the
//!    harness's ceiling (`GET /healthz`, no work).
//! 2. **Delivery**: `--messages` grants to the first partner with the worker stopped, then the
//!    worker (`Deliveries::spawn`, serve's options unless told) is started and timed until the
//!    receiver has every message (and until the outbox has every one recorded delivered); the
//!    same with the messages spread over every partner's endpoint. Baseline: the same bodies
//!    POSTed straight to the receiver by the same HTTP client, as many at once as the worker
//!    may send to one endpoint, and to all of them.
//! 3. **Decisions while the worker delivers**: `--messages` more queued over every endpoint;
//!    decisions measured with that backlog queued and no worker, then with the worker started
//!    and delivering it.
//! 4. **Grant to receipt**: the worker running, `--live` grants over HTTP sent at `--live-rate`
//!    a second (open loop); each message's time from its grant (the body's `timestamp`, the
//!    grant's time) to its receipt (the receiver's clock, the same machine's).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use consent_ledger_app::auth::Caller;
use consent_ledger_app::state::ServiceConfig;
use consent_ledger_app::webhooks::delivery::{body, Deliveries, DeliveryOptions};
use consent_ledger_app::webhooks::endpoints::{register, RegisterEndpoint};
use consent_ledger_app::webhooks::target::TargetPolicy;
use consent_ledger_app::write::WriteContext;
use consent_ledger_domain::values::{EndpointUrl, PartnerId, PrincipalId, Role};
use serde_json::json;

use crate::decisions::{healthz, load, single_decisions, Requests};
use crate::fixture::{fixture_configured, partner_profile, register_principal, Fixture};
use crate::{figures, ms, Figures, Scratch};

#[derive(Debug, Clone, Args)]
pub struct WebhooksArgs {
    /// Messages queued for each delivery measured (each one a consent granted over HTTP).
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Partners, each with one endpoint to the receiver, the spread deliveries go to.
    #[arg(long, default_value_t = 10)]
    pub partners: usize,
    /// Concurrent HTTP connections of the grants that queue messages.
    #[arg(long, default_value_t = 16)]
    pub grant_connections: usize,
    /// Grants made while the worker runs, each message timed from its grant to its receipt
    /// (0: skip).
    #[arg(long, default_value_t = 3_000)]
    pub live: usize,
    /// Those grants' rate a second, below what the worker delivers (else the time to receipt
    /// is the time in a growing queue).
    #[arg(long, default_value_t = 500.0)]
    pub live_rate: f64,
    #[command(flatten)]
    pub load: DecisionLoad,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The command-line flags of `load` and `worker`, as the figures' command line shows them.
pub(crate) fn shared_flags(load: &DecisionLoad, worker: &WorkerArgs) -> String {
    format!(
        "--connections {} --count {} --per-endpoint {} --in-flight {}",
        load.connections, load.count, worker.per_endpoint, worker.in_flight
    )
}

/// The single decisions measured beside deliveries.
#[derive(Debug, Clone, Args)]
pub struct DecisionLoad {
    /// Concurrent HTTP connections for decisions.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Single decisions per measured row, each preceded by a warm-up of a tenth of them (0:
    /// none, where a bench may skip them).
    #[arg(long, default_value_t = 30_000)]
    pub count: usize,
}

/// The delivery worker's options, and how long a bench waits for it.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The worker's messages of one endpoint in flight (serve's `--webhooks-per-endpoint`).
    #[arg(long, default_value_t = DeliveryOptions::default().per_endpoint)]
    pub per_endpoint: u32,
    /// The worker's messages in flight in all (serve's `--webhooks-in-flight`).
    #[arg(long, default_value_t = DeliveryOptions::default().in_flight)]
    pub in_flight: u32,
    /// Give up waiting for a delivery after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_seconds: u64,
}

impl WorkerArgs {
    /// serve's options but these.
    pub(crate) fn options(&self) -> DeliveryOptions {
        DeliveryOptions {
            per_endpoint: self.per_endpoint,
            in_flight: self.in_flight,
            ..DeliveryOptions::default()
        }
    }
}

/// What the receiver counted.
#[derive(Default)]
struct Counts {
    /// Requests of any kind.
    requests: AtomicU64,
    /// Distinct `webhook-id`s: messages received.
    messages: AtomicU64,
    ids: Mutex<HashSet<String>>,
    /// When the last new message came.
    last: Mutex<Option<Instant>>,
    /// Each new message's time from its `timestamp` (its event's) to its receipt.
    latencies: Mutex<Vec<Duration>>,
}

#[derive(serde::Deserialize)]
struct Stamped {
    timestamp: String,
}

/// A partner's receiver: counts, answers 204 at once.
async fn receive(counts: web::Data<Counts>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let (now, at) = (Utc::now(), Instant::now());
    counts.requests.fetch_add(1, Relaxed);
    let id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok());
    if let Some(id) = id {
        let fresh = lock(&counts.ids).insert(id.to_owned());
        if fresh {
            if let Some(sent) = serde_json::from_slice::<Stamped>(&body)
                .ok()
                .and_then(|m| DateTime::parse_from_rfc3339(&m.timestamp).ok())
            {
                let latency = (now - sent.with_timezone(&Utc))
                    .to_std()
                    .unwrap_or_default();
                lock(&counts.latencies).push(latency);
            }
            *lock(&counts.last) = Some(at);
            counts.messages.fetch_add(1, Relaxed);
        }
    }
    HttpResponse::NoContent().finish()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiver, on a thread (and actix system) of its own, one HTTP worker.
pub(crate) struct Receiver {
    pub(crate) url: String,
    counts: Arc<Counts>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start() -> anyhow::Result<Self> {
        let counts = Arc::new(Counts::default());
        let data = web::Data::from(counts.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let bound = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .default_service(web::to(receive))
                    })
                    .workers(1)
                    .disable_signals()
                    .bind(("127.0.0.1", 0));
                    let server = match bound {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let port = server.addrs().first().map(|a| a.port()).unwrap_or(0);
                    let server = server.run();
                    let _ = tx.send(Ok((port, server.handle())));
                    let _ = server.await;
                })
            })?;
        let (port, handle) = rx
            .recv()
            .context("the receiver's thread ended")?
            .context("binding the receiver")?;
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/hooks/consent"),
            counts,
            handle,
            thread: Some(thread),
        })
    }

    pub(crate) fn messages(&self) -> u64 {
        self.counts.messages.load(Relaxed)
    }

    pub(crate) async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The webhook shop and its partners, each with one endpoint to the receiver.
struct Tenants {
    shop_token: String,
    partners: Vec<PartnerId>,
    endpoints: Vec<String>,
}

async fn tenants(f: &Fixture, url: &str, partners: usize) -> anyhow::Result<Tenants> {
    let shop = register_principal(&f.state, Role::Shipper, "Webhook shop", None).await?;
    let mut ids = Vec::new();
    for i in 0..partners {
        let name = format!("Webhook partner {i}");
        let p =
            register_principal(&f.state, Role::Partner, &name, Some(partner_profile()?)).await?;
        ids.push(p.id);
    }
    f.state.projector.catch_up().await?;
    let mut endpoints = Vec::new();
    for id in &ids {
        endpoints.push(register_endpoint(f, *id, url).await?);
    }
    f.state.projector.catch_up().await?;
    Ok(Tenants {
        shop_token: shop.token,
        partners: ids.iter().map(|id| id.as_partner()).collect(),
        endpoints,
    })
}

/// Registers an endpoint of `partner` to `url` through the use case `POST
/// /v1/webhook-endpoints` calls; its id.
pub(crate) async fn register_endpoint(
    f: &Fixture,
    partner: PrincipalId,
    url: &str,
) -> anyhow::Result<String> {
    let caller = Caller::of(&f.state.projector.read(), partner)
        .context("the partner is not in the read model")?;
    let context = WriteContext::new(
        &caller,
        format!("bench-endpoint-{partner}"),
        "POST /v1/webhook-endpoints",
        None,
        b"",
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let input = RegisterEndpoint {
        url: Some(EndpointUrl::parse(url)?),
        event_types: None,
        description: None,
        partner_id: None,
    };
    let (endpoint, _) = register(&f.state, &caller, input, context)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(endpoint.id.to_string())
}

/// Shipper-wide grants of the webhook shop, round robin over `partners`: each queues one message
/// per endpoint of its partner.
fn grants(t: &Tenants, partners: &[PartnerId]) -> Requests {
    let (token, partners) = (t.shop_token.clone(), partners.to_vec());
    Arc::new(move |i: usize| {
        let body = json!({ "partner_id": partners[i % partners.len()], "scope": { "type": "shipper" },
            "purposes": ["insurance_claim"], "data_categories": ["status_events"],
            "legal_basis": "contract" });
        ("/v1/consents", token.clone(), body)
    })
}

/// `count` grants over HTTP from `connections` clients, each as soon as the last was
/// answered; checks that they queued `count` messages.
fn grant(
    f: &Fixture,
    t: &Tenants,
    partners: &[PartnerId],
    count: usize,
    connections: usize,
) -> anyhow::Result<Figures> {
    let requests = grants(t, partners);
    queueing(f, count, || {
        load(std::slice::from_ref(&f.url), connections, count, requests)
    })
}

/// Runs `send`, which grants `count` consents, and checks that `count` messages were queued.
fn queueing(
    f: &Fixture,
    count: usize,
    send: impl FnOnce() -> anyhow::Result<Figures>,
) -> anyhow::Result<Figures> {
    let queued = || f.state.store.writer_stats().outbox.load(Relaxed);
    let before = queued();
    let figures = send()?;
    let messages = queued() - before;
    anyhow::ensure!(
        messages == count as u64,
        "{count} grants queued {messages} messages"
    );
    Ok(figures)
}

/// Sends `count` requests at `rate` a second, each at its time whether the ones before were
/// answered or not (so that a slow answer does not slow the arrivals), from a load-generator
/// thread of its own; their latency figures.
fn paced(url: &str, rate: f64, count: usize, requests: Requests) -> anyhow::Result<Figures> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .connector(awc::Connector::new().limit(1024))
                .finish();
            let started = Instant::now();
            let mut sent = Vec::with_capacity(count);
            for i in 0..count {
                let at = started + Duration::from_secs_f64(i as f64 / rate);
                actix_web::rt::time::sleep_until(at.into()).await;
                let (path, token, json) = requests(i);
                let (client, url) = (client.clone(), format!("{url}{path}"));
                sent.push(actix_web::rt::spawn(async move {
                    let t = Instant::now();
                    let mut res = client
                        .post(url)
                        .insert_header(("Authorization", format!("Bearer {token}")))
                        .send_json(&json)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let _ = res.body().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    anyhow::ensure!(res.status().is_success(), "answer {}", res.status());
                    Ok::<_, anyhow::Error>(t.elapsed())
                }));
            }
            let mut latencies = Vec::with_capacity(count);
            for answer in sent {
                latencies.push(answer.await??);
            }
            Ok(figures(latencies, started.elapsed()))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the paced load generator panicked"))?
}

/// One delivery of a backlog.
pub(crate) struct Drained {
    pub(crate) messages: u64,
    /// From the worker's start to the receiver's last new message.
    pub(crate) received: Duration,
    /// From the worker's start to every message recorded delivered in the outbox.
    pub(crate) recorded: Duration,
    /// The worker's attempts' mean time from sending to the answer.
    pub(crate) attempt: Duration,
}

impl Drained {
    pub(crate) fn per_second(&self) -> f64 {
        self.messages as f64 / self.received.as_secs_f64().max(1e-9)
    }
}

/// The worker's attempts so far and their latencies summed (µs).
fn attempts(f: &Fixture) -> (u64, u64) {
    let m = &f.state.metrics.webhooks;
    (
        m.latency.iter().map(|b| b.load(Relaxed)).sum(),
        m.latency_micros.load(Relaxed),
    )
}

/// Waits until the receiver has `messages` more messages than `from_received` and the outbox
/// has them recorded delivered (`from_delivered` before), the worker having started at
/// `started`.
pub(crate) async fn wait_delivered(
    f: &Fixture,
    receiver: &Receiver,
    worker: &WorkerArgs,
    (from_received, from_delivered): (u64, u64),
    messages: u64,
    started: Instant,
) -> anyhow::Result<(Duration, Duration)> {
    let deadline = started + Duration::from_secs(worker.timeout_seconds);
    let delivered = || f.state.metrics.webhooks.delivered.load(Relaxed);
    loop {
        let (got, recorded) = (
            receiver.messages() - from_received,
            delivered() - from_delivered,
        );
        if got >= messages && recorded >= messages {
            let last = lock(&receiver.counts.last).unwrap_or(started);
            return Ok((last.saturating_duration_since(started), started.elapsed()));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after {} s the receiver had {got} and the outbox {recorded} delivered of {messages} messages",
            worker.timeout_seconds
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts the worker on what is queued and times it until `messages` are delivered.
pub(crate) async fn drain(
    f: &Fixture,
    receiver: &Receiver,
    worker: &WorkerArgs,
    messages: u64,
) -> anyhow::Result<Drained> {
    let from = (
        receiver.messages(),
        f.state.metrics.webhooks.delivered.load(Relaxed),
    );
    let tried = attempts(f);
    let started = Instant::now();
    let spawned = Deliveries::spawn(f.state.clone(), worker.options())?;
    let (received, recorded) = wait_delivered(f, receiver, worker, from, messages, started).await?;
    spawned.stop();
    let now = attempts(f);
    Ok(Drained {
        messages,
        received,
        recorded,
        attempt: Duration::from_micros((now.1 - tried.1) / (now.0 - tried.0).max(1)),
    })
}

/// One phase of decisions: a warm-up, the measured load, the harness's ceiling.
pub(crate) struct Phase {
    pub(crate) decisions: Figures,
    pub(crate) ceiling: Figures,
    /// Messages the receiver got during the measured decisions.
    pub(crate) delivered: u64,
    /// Messages the receiver had in all when the measured decisions ended.
    pub(crate) received_by_end: u64,
}

pub(crate) fn decisions(
    f: &Fixture,
    receiver: &Receiver,
    (connections, count): (usize, usize),
    requests: &Requests,
) -> anyhow::Result<Phase> {
    let urls = std::slice::from_ref(&f.url);
    load(urls, connections, count / 10, requests.clone())?;
    let before = receiver.messages();
    let decisions = load(urls, connections, count, requests.clone())?;
    let received_by_end = receiver.messages();
    let delivered = received_by_end - before;
    let ceiling = load(urls, connections, count, healthz())?;
    Ok(Phase {
        decisions,
        ceiling,
        delivered,
        received_by_end,
    })
}

/// The `decisions` fixture (100 partners, 10,000 parcels) on the scratch's `ledger` store,
/// served with loopback `http` endpoints allowed (`serve --webhooks-allow-insecure-loopback`),
/// and a receiver on loopback.
pub(crate) async fn loopback_world(scratch: &Scratch) -> anyhow::Result<(Fixture, Receiver)> {
    let ledger = scratch.part("ledger").await?;
    let config = ServiceConfig {
        webhook_targets: TargetPolicy {
            allow_insecure_loopback: true,
        },
        ..ServiceConfig::default()
    };
    let f = fixture_configured(&ledger.options, 100, 10_000, config).await?;
    Ok((f, Receiver::start()?))
}

pub(crate) async fn webhooks(args: WebhooksArgs, scratch: &Scratch) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.messages > 0 && args.partners > 0 && args.live_rate > 0.0,
        "--messages, --partners and --live-rate must be positive"
    );
    eprintln!(
        "bench webhooks: {} messages per delivery, {} partners, {} decisions per row, {}, scratch in {}",
        args.messages,
        args.partners,
        args.load.count,
        scratch.label(),
        scratch.path().display()
    );
    let (f, receiver) = loopback_world(scratch).await?;
    let t = tenants(&f, &receiver.url, args.partners).await?;
    let n = args.messages as u64;
    let decide = single_decisions(f.partner_tokens.clone(), f.shipments.clone());

    // 1. Decisions: nothing queued, no worker.
    eprintln!("decisions, nothing queued …");
    let quiet = decisions(
        &f,
        &receiver,
        (args.load.connections, args.load.count),
        &decide,
    )?;

    // 2. Delivery of a backlog to one endpoint, then spread over every endpoint.
    eprintln!("queueing {n} messages to one endpoint …");
    let queue_one = grant(
        &f,
        &t,
        &t.partners[..1],
        args.messages,
        args.grant_connections,
    )?;
    eprintln!("delivering them …");
    let one = drain(&f, &receiver, &args.worker, n).await?;
    // Baseline: the same bodies straight to the receiver, by the same client.
    let queued = f.state.store.outbox_of(&t.endpoints[0]).await?;
    let sample = queued.first().context("nothing was queued")?;
    let sample: serde_json::Value = serde_json::from_slice(&body(sample)?)?;
    let direct: Requests = Arc::new(move |_| ("", String::new(), sample.clone()));
    let receiver_url = [receiver.url.clone()];
    let one_at_once = args.worker.per_endpoint as usize;
    let all_at_once =
        (args.worker.per_endpoint as usize * args.partners).min(args.worker.in_flight as usize);
    let direct_one = load(&receiver_url, one_at_once, args.messages, direct.clone())?;
    let direct_all = load(&receiver_url, all_at_once, args.messages, direct)?;

    eprintln!("queueing {n} messages over {} endpoints …", args.partners);
    let queue_all = grant(&f, &t, &t.partners, args.messages, args.grant_connections)?;
    eprintln!("delivering them …");
    let all = drain(&f, &receiver, &args.worker, n).await?;

    // 3. Decisions with a backlog queued, then while the worker delivers it.
    eprintln!("queueing {n} messages over {} endpoints …", args.partners);
    grant(&f, &t, &t.partners, args.messages, args.grant_connections)?;
    eprintln!("decisions, the backlog queued, no worker …");
    let queued = decisions(
        &f,
        &receiver,
        (args.load.connections, args.load.count),
        &decide,
    )?;
    eprintln!("decisions while the worker delivers the backlog …");
    let from = (
        receiver.messages(),
        f.state.metrics.webhooks.delivered.load(Relaxed),
    );
    let started = Instant::now();
    let worker = Deliveries::spawn(f.state.clone(), args.worker.options())?;
    let busy = decisions(
        &f,
        &receiver,
        (args.load.connections, args.load.count),
        &decide,
    )?;
    let busy_seconds = started.elapsed();
    let (backlog_received, _) =
        wait_delivered(&f, &receiver, &args.worker, from, n, started).await?;
    worker.stop();

    // 4. From grant to receipt, the worker running.
    let live = if args.live > 0 {
        eprintln!("{} grants while the worker delivers …", args.live);
        lock(&receiver.counts.latencies).clear();
        let from = (
            receiver.messages(),
            f.state.metrics.webhooks.delivered.load(Relaxed),
        );
        let started = Instant::now();
        let worker = Deliveries::spawn(f.state.clone(), args.worker.options())?;
        let requests = grants(&t, &t.partners);
        let grants = queueing(&f, args.live, || {
            paced(&f.url, args.live_rate, args.live, requests)
        })?;
        let (received, _) =
            wait_delivered(&f, &receiver, &args.worker, from, args.live as u64, started).await?;
        worker.stop();
        let latencies = std::mem::take(&mut *lock(&receiver.counts.latencies));
        Some((grants, figures(latencies, received)))
    } else {
        None
    };
    let requests = receiver.counts.requests.load(Relaxed);
    let messages = receiver.messages();
    receiver.stop().await;

    // The section.
    let database = if scratch.is_postgres() {
        "--database-url $DATABASE_URL "
    } else {
        ""
    };
    println!(
        "`cargo run --release -p consent-ledger-bench -- {database}webhooks --messages {} --partners {} --grant-connections {} --live {} --live-rate {} {}`",
        args.messages,
        args.partners,
        args.grant_connections,
        args.live,
        args.live_rate,
        shared_flags(&args.load, &args.worker)
    );
    println!(
        "{}; {} cores; one process: server, delivery worker (its own thread), receiver (one HTTP \
         worker) and load generator share them; worker: {} per endpoint, {} in flight",
        scratch.label(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.worker.per_endpoint,
        args.worker.in_flight
    );
    println!();
    println!(
        "| webhook delivery to a loopback receiver answering 204 at once ({}) | messages | received in | messages/s | all recorded delivered in | worker's mean attempt |",
        scratch.label()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let drained = |name: &str, d: &Drained| {
        println!(
            "| {name} | {} | {:.2} s | {:.0} | {:.2} s | {:.2} ms |",
            d.messages,
            d.received.as_secs_f64(),
            d.per_second(),
            d.recorded.as_secs_f64(),
            ms(d.attempt)
        )
    };
    drained("backlog, 1 partner × 1 endpoint", &one);
    drained(
        &format!("backlog, {} partners × 1 endpoint", args.partners),
        &all,
    );
    let direct_row = |name: String, x: &Figures| {
        println!(
            "| {name} | {} | {:.2} s | {:.0} | | {:.2} ms (p50), {:.2} ms (p99) |",
            args.messages,
            args.messages as f64 / x.per_second.max(1e-9),
            x.per_second,
            ms(x.p50),
            ms(x.p99)
        )
    };
    direct_row(
        format!(
            "baseline: the same body POSTed straight to the receiver, {one_at_once} at once (awc)"
        ),
        &direct_one,
    );
    direct_row(
        format!(
            "baseline: the same body POSTed straight to the receiver, {all_at_once} at once (awc)"
        ),
        &direct_all,
    );
    println!();
    println!(
        "delivered / straight POSTs: {:.2} (1 endpoint, {one_at_once} at once), {:.2} ({} endpoints, {all_at_once} at once)",
        one.per_second() / direct_one.per_second.max(1e-9),
        all.per_second() / direct_all.per_second.max(1e-9),
        args.partners
    );
    println!(
        "queueing (grants over HTTP, {} connections, worker stopped): {:.0} grants/s (p50 {:.2} ms, p99 {:.2} ms) to 1 endpoint, {:.0} grants/s (p50 {:.2} ms, p99 {:.2} ms) over {}",
        args.grant_connections,
        queue_one.per_second,
        ms(queue_one.p50),
        ms(queue_one.p99),
        queue_all.per_second,
        ms(queue_all.p50),
        ms(queue_all.p99),
        args.partners
    );
    if let Some((grants, latency)) = &live {
        println!(
            "grant to receipt, the worker running: {} grants over HTTP sent at {:.0}/s (answered p50 {:.2} ms, p99 {:.2} ms), every message received {:.0}/s; a message from its grant's time to its receipt p50 **{:.2} ms**, p99 **{:.2} ms**",
            args.live,
            grants.per_second,
            ms(grants.p50),
            ms(grants.p99),
            latency.per_second,
            ms(latency.p50),
            ms(latency.p99)
        );
    }
    println!();
    println!(
        "| single decisions over HTTP ({}, one node, {} connections, {} per row) | decisions/s | p50 | p99 | messages received meanwhile | ceiling: GET /healthz/s |",
        scratch.label(),
        args.load.connections,
        args.load.count
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let phase = |name: String, p: &Phase| {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.0} |",
            p.decisions.per_second,
            ms(p.decisions.p50),
            ms(p.decisions.p99),
            p.delivered,
            p.ceiling.per_second
        )
    };
    phase("nothing queued, no worker".into(), &quiet);
    phase(
        format!(
            "{n} messages queued to {} endpoints, no worker",
            args.partners
        ),
        &queued,
    );
    phase(format!("the worker delivering those {n} messages"), &busy);
    println!();
    let ratio = |a: &Phase, b: &Phase| a.decisions.per_second / b.decisions.per_second.max(1e-9);
    println!(
        "decision rate while delivering / nothing queued: **{:.2}**; / backlog queued, no worker: {:.2}; backlog queued / nothing queued: {:.2}",
        ratio(&busy, &quiet),
        ratio(&busy, &queued),
        ratio(&queued, &quiet)
    );
    let left = (from.0 + n).saturating_sub(busy.received_by_end);
    println!(
        "the backlog was received in {:.2} s from the worker's start ({:.0}/s with decisions beside it); {} of it during the measured decisions ({:.0}/s), {left} still queued when they ended; that phase (warm-up, decisions, ceiling) took {:.2} s",
        backlog_received.as_secs_f64(),
        n as f64 / backlog_received.as_secs_f64().max(1e-9),
        busy.delivered,
        busy.delivered as f64 / (args.load.count as f64 / busy.decisions.per_second.max(1e-9)),
        busy_seconds.as_secs_f64()
    );
    if busy.delivered == 0 || left == 0 {
        println!(
            "note: the worker was not delivering through the whole measured load (the backlog ran out, or nothing came): raise --messages"
        );
    }
    let straight = 2 * args.messages as u64;
    println!(
        "receiver: {requests} requests: {straight} straight POSTs, {messages} distinct messages, {} received more than once",
        requests.saturating_sub(straight + messages)
    );
    Ok(())
}

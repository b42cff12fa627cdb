//! `consent-ledger-bench fanout`: tracking updates fanned out to subscribed partners (SPEC
//! §14) over real HTTP on loopback, in one run on one store.
//!
//! The `decisions` fixture (100 partners, 10,000 parcels) is served on a loopback port that lets
//! webhooks go to loopback `http` URLs, as in `bench webhooks`, beside the same receiver
//! (actix-web on 127.0.0.1:0, one worker, `204` at once, counting messages by `webhook-id`).
//! Its own shipper ("Tracking shop") grants each of up to 10 partners a shipper-wide consent
//! (insurance claims; status events and location), and each partner has one endpoint (every
//! event type) to the receiver.
//!
//! 1. **Decisions** (the baseline): warm-up, then the fixture's partners' single decisions
//!    (`POST /v1/decisions`, as `bench decisions`), and the harness's ceiling (`GET /healthz`).
//! 2. **Fan-out**, one round per value S of `--subscribers` (1, 3, 10), each on `--parcels`
//!    fresh parcels of the tracking shop: the first S partners subscribe over HTTP
//!    (`POST /v1/subscriptions`, 100 parcels a call), so that every parcel has exactly S
//!    subscribers; then, the delivery worker stopped, the gateway sends `--updates` updates
//!    (each parcel in turn, every update at a time of its own) over HTTP
//!    (`POST /v1/tracking-events`, `--batch` a call, `--clients` calls at once). Each update
//!    records S allowed decisions (`"channel":"webhook"`, with `body_sha256`) and queues S
//!    messages in its call's transaction: a *recorded delivery* is one such decision with its
//!    message. The run fails unless exactly updates × S were recorded and queued.
//! 3. **Delivery**: after each round's ingest the worker (`Deliveries::spawn`, serve's options
//!    unless told) is started and timed until the receiver has every message of the round (and
//!    the outbox has every one recorded delivered). It does not run during the ingest, so the
//!    ingest's figures are the writer's alone.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use clap::Args;
use consent_ledger_app::tracking::MAX_EVENTS;
use consent_ledger_domain::consent::ConsentCommand;
use consent_ledger_domain::values::{ConsentId, DataCategory, NonEmptySet, Role, ShipmentId};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::decisions::{load, single_decisions, Requests};
use crate::fixture::{
    partner_profile, register_principal, register_shipments, setup, shipper_wide_grant, Fixture,
};
use crate::webhooks::{
    decisions, drain, loopback_world, register_endpoint, shared_flags, DecisionLoad, Drained,
    Phase, Receiver, WorkerArgs,
};
use crate::{ms, Figures, Scratch};

/// The most subscribers a parcel has in this bench.
const MAX_SUBSCRIBERS: usize = 10;

/// The tracking numbers' prefixes of the rounds' parcels (the fixture's are `B…`).
const PREFIXES: [char; 8] = ['R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y'];

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Fresh parcels of each round, every one subscribed to by that round's partners.
    #[arg(long, default_value_t = 2_000)]
    pub parcels: usize,
    /// Subscribers per parcel, one round each (at most 10, at most 8 rounds).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 3, 10])]
    pub subscribers: Vec<usize>,
    /// Tracking updates sent in each round, over the round's parcels in turn.
    #[arg(long, default_value_t = 20_000)]
    pub updates: usize,
    /// Updates per `POST /v1/tracking-events` (at most 1,000).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Concurrent clients sending the updates.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    #[command(flatten)]
    pub load: DecisionLoad,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The tracking shop's partners, each with one endpoint to the receiver and a shipper-wide
/// consent of the shop.
struct Subscribers {
    shop: consent_ledger_domain::values::ShipperId,
    tokens: Vec<String>,
}

async fn subscribers(f: &Fixture, url: &str, count: usize) -> anyhow::Result<Subscribers> {
    let shop = register_principal(&f.state, Role::Shipper, "Tracking shop", None).await?;
    let shop = shop.id.as_shipper();
    let mut partners = Vec::new();
    for i in 0..count {
        let name = format!("Tracking partner {i}");
        partners.push(
            register_principal(&f.state, Role::Partner, &name, Some(partner_profile()?)).await?,
        );
    }
    f.state.projector.catch_up().await?;
    for p in &partners {
        register_endpoint(f, p.id, url).await?;
        let id = ConsentId::from_uuid(Uuid::now_v7());
        let mut command = shipper_wide_grant(id, shop, p.id.as_partner())?;
        // The updates carry a location: grant it, so that the bodies carry it too.
        if let ConsentCommand::GrantConsent {
            data_categories, ..
        } = &mut command
        {
            *data_categories =
                NonEmptySet::new(vec![DataCategory::StatusEvents, DataCategory::Location])?;
        }
        f.state
            .consents
            .execute(&id.to_string(), command, setup())
            .await?;
    }
    f.state.projector.catch_up().await?;
    Ok(Subscribers {
        shop,
        tokens: partners.into_iter().map(|p| p.token).collect(),
    })
}

/// Subscribes each of the first `s` partners to every one of `parcels` over HTTP, 100 a call,
/// and checks that each parcel then has exactly `s` live subscriptions.
async fn subscribe(
    f: &Fixture,
    t: &Subscribers,
    parcels: &[ShipmentId],
    s: usize,
) -> anyhow::Result<()> {
    let chunks: Vec<Value> = parcels
        .chunks(consent_ledger_app::subscriptions::MAX_SHIPMENTS)
        .map(|chunk| {
            let items: Vec<Value> = chunk
                .iter()
                .map(|id| json!({ "shipment_id": id }))
                .collect();
            json!({ "purpose": "insurance_claim", "data_categories": ["status_events", "location"],
                    "shipments": items })
        })
        .collect();
    let calls = chunks.len() * s;
    let tokens = t.tokens[..s].to_vec();
    let requests: Requests = Arc::new(move |i: usize| {
        let (partner, chunk) = (i / chunks.len(), i % chunks.len());
        (
            "/v1/subscriptions",
            tokens[partner].clone(),
            chunks[chunk].clone(),
        )
    });
    load(std::slice::from_ref(&f.url), 4, calls, requests)?;
    f.state.projector.catch_up().await?;
    let model = f.state.projector.read();
    for parcel in parcels {
        // Subscriptions naming the parcel; the bench makes no `consented` ones.
        let covering = model.subscribed.covering(*parcel, Vec::new()).len();
        anyhow::ensure!(
            covering == s,
            "parcel {parcel} has {covering} subscriptions, not {s}: a subscription was refused"
        );
    }
    Ok(())
}

/// The gateway's calls of a round: update `j` is about `parcels[j % n]`, in transit, at the
/// `first + j`-th second after `base` (so that no two updates share a shipment, time and
/// status), `batch` updates a call.
fn updates(parcels: &[ShipmentId], count: usize, batch: usize, first: usize) -> Vec<Value> {
    let base = Utc::now() - chrono::Duration::days(2);
    (0..count)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|js| {
            let events: Vec<Value> = js
                .iter()
                .map(|&j| {
                    let at = base + chrono::Duration::seconds((first + j) as i64);
                    json!({
                        "shipment_id": parcels[j % parcels.len()],
                        "status": "in_transit",
                        "occurred_at": at.to_rfc3339_opts(SecondsFormat::Secs, true),
                        "description": "Arrived at the sorting centre",
                        "location": { "country": "DE", "city": "Berlin" },
                    })
                })
                .collect();
            json!({ "events": events })
        })
        .collect()
}

/// One round's figures.
struct Round {
    subscribers: usize,
    /// Per call of `batch` updates.
    ingest: Figures,
    seconds: f64,
    /// Messages queued (= allowed decisions recorded) by the ingest.
    messages: u64,
    /// Events committed (the decisions), transactions committed and appends refused (each one
    /// fanned out again) during the ingest.
    events: u64,
    commits: u64,
    refused: u64,
    delivery: Drained,
}

impl Round {
    fn updates_per_second(&self, updates: usize) -> f64 {
        updates as f64 / self.seconds
    }
    fn deliveries_per_second(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
}

async fn round(
    f: &Fixture,
    t: &Subscribers,
    receiver: &Receiver,
    args: &FanoutArgs,
    (index, s): (usize, usize),
) -> anyhow::Result<Round> {
    eprintln!(
        "round {s}: {} parcels, {s} subscribers each …",
        args.parcels
    );
    let parcels = register_shipments(&f.state, t.shop, args.parcels, PREFIXES[index]).await?;
    f.state.projector.catch_up().await?;
    subscribe(f, t, &parcels, s).await?;

    eprintln!("round {s}: {} updates, worker stopped …", args.updates);
    let bodies = Arc::new(updates(
        &parcels,
        args.updates,
        args.batch,
        index * args.updates,
    ));
    let calls = bodies.len();
    let gateway = f.gateway.clone();
    let requests: Requests =
        Arc::new(move |i: usize| ("/v1/tracking-events", gateway.clone(), bodies[i].clone()));
    let stats = f.state.store.writer_stats();
    let counters = || {
        (
            stats.outbox.load(Relaxed),
            f.state.metrics.decisions_allowed.load(Relaxed),
            stats.events.load(Relaxed),
            stats.batches.load(Relaxed),
            stats.refused.load(Relaxed),
        )
    };
    let before = counters();
    let ingest = load(std::slice::from_ref(&f.url), args.clients, calls, requests)?;
    let after = counters();
    let expected = (args.updates * s) as u64;
    let (messages, allowed) = (after.0 - before.0, after.1 - before.1);
    anyhow::ensure!(
        messages == expected && allowed == expected,
        "{} updates to parcels of {s} subscribers queued {messages} messages and recorded {allowed} allowed decisions, not {expected}",
        args.updates
    );

    eprintln!("round {s}: delivering {expected} messages …");
    let delivery = drain(f, receiver, &args.worker, expected).await?;
    Ok(Round {
        subscribers: s,
        seconds: calls as f64 / ingest.per_second.max(1e-9),
        ingest,
        messages,
        events: after.2 - before.2,
        commits: after.3 - before.3,
        refused: after.4 - before.4,
        delivery,
    })
}

pub(crate) async fn fanout(args: FanoutArgs, scratch: &Scratch) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.parcels > 0 && args.updates > 0 && args.clients > 0,
        "--parcels, --updates and --clients must be positive"
    );
    anyhow::ensure!(
        (1..=MAX_EVENTS).contains(&args.batch),
        "--batch takes 1 to {MAX_EVENTS}"
    );
    anyhow::ensure!(
        !args.subscribers.is_empty()
            && args.subscribers.len() <= PREFIXES.len()
            && args
                .subscribers
                .iter()
                .all(|s| (1..=MAX_SUBSCRIBERS).contains(s)),
        "--subscribers takes 1 to {} rounds of 1 to {MAX_SUBSCRIBERS}",
        PREFIXES.len()
    );
    eprintln!(
        "bench fanout: {} updates to {} parcels per round, {:?} subscribers, {}, scratch in {}",
        args.updates,
        args.parcels,
        args.subscribers,
        scratch.label(),
        scratch.path().display()
    );
    let (f, receiver) = loopback_world(scratch).await?;
    let most = args.subscribers.iter().copied().max().unwrap_or(1);
    let t = subscribers(&f, &receiver.url, most).await?;

    // 1. The plain decision rate and the harness's ceiling, nothing queued, no worker.
    let quiet = if args.load.count > 0 {
        eprintln!("decisions …");
        let decide = single_decisions(f.partner_tokens.clone(), f.shipments.clone());
        Some(decisions(
            &f,
            &receiver,
            (args.load.connections, args.load.count),
            &decide,
        )?)
    } else {
        None
    };

    // 2.–3. A round per number of subscribers.
    let mut rounds = Vec::new();
    for (index, s) in args.subscribers.iter().copied().enumerate() {
        rounds.push(round(&f, &t, &receiver, &args, (index, s)).await?);
    }
    receiver.stop().await;
    report(&args, scratch, &rounds, quiet.as_ref());
    Ok(())
}

fn report(args: &FanoutArgs, scratch: &Scratch, rounds: &[Round], quiet: Option<&Phase>) {
    let database = if scratch.is_postgres() {
        "--database-url $DATABASE_URL "
    } else {
        ""
    };
    let subscribers: Vec<String> = args.subscribers.iter().map(usize::to_string).collect();
    println!(
        "`cargo run --release -p consent-ledger-bench -- {database}fanout --parcels {} --subscribers {} --updates {} --batch {} --clients {} {}`",
        args.parcels,
        subscribers.join(","),
        args.updates,
        args.batch,
        args.clients,
        shared_flags(&args.load, &args.worker)
    );
    println!(
        "{}; {} cores; one process: server, delivery worker (its own thread), receiver (one HTTP \
         worker) and load generator share them; each round on {} fresh parcels; the worker stopped \
         during the ingest and started after it ({} per endpoint, {} in flight)",
        scratch.label(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.parcels,
        args.worker.per_endpoint,
        args.worker.in_flight
    );
    println!();
    println!(
        "| tracking fan-out ({}, {} updates over HTTP, {} a call, {} clients) | subscribers per parcel | updates/s | recorded deliveries/s | call p50 | call p99 | events committed | commits | all received in | delivered/s | all recorded delivered in |",
        scratch.label(),
        args.updates,
        args.batch,
        args.clients
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rounds {
        println!(
            "| {} messages queued in {:.2} s | {} | {:.0} | **{:.0}** | {:.1} ms | {:.1} ms | {} | {} | {:.2} s | {:.0} | {:.2} s |",
            r.messages,
            r.seconds,
            r.subscribers,
            r.updates_per_second(args.updates),
            r.deliveries_per_second(),
            ms(r.ingest.p50),
            ms(r.ingest.p99),
            r.events,
            r.commits,
            r.delivery.received.as_secs_f64(),
            r.delivery.per_second(),
            r.delivery.recorded.as_secs_f64()
        );
    }
    println!();
    let refused: Vec<String> = rounds.iter().map(|r| r.refused.to_string()).collect();
    println!(
        "a recorded delivery: one allowed decision (`\"channel\":\"webhook\"`, with `body_sha256`) and its `tracking.updated` message, committed with the update; checked: exactly updates × subscribers of each; appends refused during the ingests (fanned out again): {}",
        refused.join(", ")
    );
    if let Some(p) = quiet {
        println!();
        println!(
            "| single decisions over HTTP ({}, one node, {} connections, {} decisions), same run | decisions/s | p50 | p99 | ceiling: GET /healthz/s |",
            scratch.label(),
            args.load.connections,
            args.load.count
        );
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| nothing queued, no worker | {:.0} | {:.2} ms | {:.2} ms | {:.0} |",
            p.decisions.per_second,
            ms(p.decisions.p50),
            ms(p.decisions.p99),
            p.ceiling.per_second
        );
    }
    let best = rounds
        .iter()
        .map(Round::deliveries_per_second)
        .fold(0.0, f64::max);
    println!();
    println!(
        "goal ≥ 10,000 recorded deliveries/s: best round {best:.0}/s{}",
        if best >= 10_000.0 {
            " (met)"
        } else {
            " (missed)"
        }
    );
}

//! `consent-ledger bench decisions` and `bench check`: SPEC §11 rows 1–3 and the hot index's
//! memory, each beside its baseline from the same run. On PostgreSQL `bench decisions` can
//! also run two nodes on one database: this process and a second `consent-ledger serve`
//! process, the load generator's connections split between them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use consent_ledger_domain::authorization::AuthorizationScope;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, ConsentId, CountryCode, DataCategory, DpaId, NonEmptySet,
    PartnerId, Purpose, ShipmentId, ShipperId, TrackingNumber,
};
use consent_ledger_domain::SystemClock;
use consent_ledger_projections::decider::{
    AuthorizationGrant, Categories, Decider, DpaWindow, Grant, ShipmentRef, Verdict,
};
use consent_ledger_store::{baseline, StoredEvent};
use serde_json::json;
use uuid::Uuid;

use crate::fixture::{fixture, uuid, Rng, ServeProcess, CARRIERS, COUNTRIES};
use crate::{figures, ms, Figures, Scratch};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};

#[derive(Debug, Clone, Args)]
pub struct DecisionsArgs {
    /// Concurrent HTTP connections for single decisions.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Single decisions to send (after a warm-up of a tenth of them).
    #[arg(long, default_value_t = 60_000)]
    pub count: usize,
    /// Batch calls of 1,000 decisions to send.
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Reads through the naive per-shipment cqrs-es aggregate (baseline).
    #[arg(long, default_value_t = 5_000)]
    pub naive: usize,
    /// Nodes serving the decisions: 1, or 2 on PostgreSQL (this process and a second
    /// `consent-ledger serve` process on the same database, each with its own writer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub nodes: u8,
    /// Keep the GDPR audit projection following the log through the run, as `serve` does
    /// (a catch-up every second, in its own transactions; docs/adr/0006).
    #[arg(long)]
    pub audit_follow: bool,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub shipments: usize,
    #[arg(long, default_value_t = 100_000)]
    pub consents: usize,
    #[arg(long, default_value_t = 10_000)]
    pub partners: usize,
    /// Decisions to time.
    #[arg(long, default_value_t = 1_000_000)]
    pub queries: usize,
    /// Also measure the index's memory with this many shipments (0: skip).
    #[arg(long, default_value_t = 0)]
    pub memory_shipments: usize,
    /// Cost isolation: decisions about one shipper's parcels before and after that shipper
    /// grants this many shipper-wide consents to other partners (0: skip).
    #[arg(long, default_value_t = 40_000)]
    pub foreign_grants: usize,
    /// Carrier authorizations (SPEC §16) added after the first measurement, each to another
    /// partner under a DPA in force: the same queries are timed again beside it (0: skip).
    #[arg(long, default_value_t = 1_000)]
    pub authorizations: usize,
}

/// The same queries timed on the index as it is and again after `args.authorizations` carrier
/// authorizations are added (SPEC §16: a decision stays O(the asking partner's grants)), each
/// to another partner, for one carrier, under a DPA in force.
fn authorizations_added(
    d: &mut Decider,
    args: &CheckArgs,
    partners: &[PartnerId],
    carriers: &[CarrierCode],
    queries: &[(PartnerId, ShipmentRef)],
    requested: Categories,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let time = |d: &Decider| {
        let mut latencies = Vec::with_capacity(queries.len());
        let mut allowed = 0usize;
        let t = Instant::now();
        for (partner, shipment) in queries {
            let q = Instant::now();
            let verdict = d.decide(*partner, shipment, Purpose::InsuranceClaim, requested, now);
            latencies.push(q.elapsed());
            allowed += usize::from(matches!(verdict, Verdict::Allowed { .. }));
        }
        (figures(latencies, t.elapsed()), allowed)
    };
    let (without, allowed_without) = time(d);
    let dpa = DpaId::from_uuid(Uuid::now_v7());
    d.set_dpa(
        dpa,
        DpaWindow {
            signed_at: now - chrono::Duration::days(30),
            valid_until: None,
            terminated_at: None,
        },
    );
    let purposes = NonEmptySet::new(vec![Purpose::InsuranceClaim])?;
    let categories = NonEmptySet::new(vec![DataCategory::StatusEvents])?;
    for i in 0..args.authorizations {
        let scope = AuthorizationScope {
            carriers: Some(NonEmptySet::new(
                vec![carriers[i % carriers.len()].clone()],
            )?),
            destination_countries: None,
            shipper_ids: None,
        };
        d.add_authorization(AuthorizationGrant {
            id: AuthorizationId::from_uuid(Uuid::now_v7()),
            partner: partners[(i * 7) % partners.len()],
            dpa,
            scope: &scope,
            purposes: &purposes,
            categories: &categories,
            valid_from: now - chrono::Duration::days(1),
            valid_until: None,
            granted_at: now - chrono::Duration::days(1),
        });
    }
    let (with, allowed_with) = time(d);
    println!(
        "carrier authorizations: the same {} queries before and after {} authorizations are added ({} then {} allowed)",
        queries.len(),
        args.authorizations,
        allowed_without,
        allowed_with
    );
    before_and_after("carrier authorizations", &without, &with);
    println!(
        "p99 with them / without: {:.2}",
        us(with.p99) / us(without.p99).max(1e-9)
    );
    Ok(())
}

/// A table of the same queries timed without and with what `added` names.
fn before_and_after(added: &str, without: &Figures, with: &Figures) {
    println!("| {added} | p50 | p99 | checks/s |");
    println!("|---|---:|---:|---:|");
    for (what, f) in [("none", without), ("with them", with)] {
        println!(
            "| {what} | {:.2} µs | {:.2} µs | {:.0} |",
            us(f.p50),
            us(f.p99),
            f.per_second
        );
    }
}

/// Resident memory of this process, from /proc (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// SPEC §11 row 3: the in-process check at 1M shipments, 100k consents, 10k partners, against
/// a HashMap look-up of the same shipment ids; and the index's bytes per shipment.
pub async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let carriers: Vec<CarrierCode> = CARRIERS
        .iter()
        .map(|c| CarrierCode::parse(*c))
        .collect::<Result<_, _>>()?;
    let countries: Vec<CountryCode> = COUNTRIES
        .iter()
        .map(|c| CountryCode::parse(c))
        .collect::<Result<_, _>>()?;
    let mut d = Decider::default();
    let partners: Vec<PartnerId> = (0..args.partners)
        .map(|_| PartnerId::from_uuid(uuid(&mut rng)))
        .collect();
    for p in &partners {
        d.add_partner(*p);
    }
    let shippers: Vec<ShipperId> = (0..(args.shipments / 100).max(1))
        .map(|_| ShipperId::from_uuid(uuid(&mut rng)))
        .collect();
    let mut shipments = Vec::with_capacity(args.shipments);
    let started = Instant::now();
    for i in 0..args.shipments {
        let id = ShipmentId::from_uuid(uuid(&mut rng));
        let shipper = shippers[i % shippers.len()];
        let tracking = TrackingNumber::parse(format!("T{i:012}"))?;
        d.add_shipment(
            id,
            shipper,
            &carriers[i % carriers.len()],
            Some(&tracking),
            countries[i % countries.len()],
        );
        shipments.push((id, shipper));
    }
    let load = started.elapsed();
    let now = Utc::now();
    let purposes = NonEmptySet::new(vec![Purpose::InsuranceClaim, Purpose::FraudPrevention])?;
    let categories = NonEmptySet::new(vec![
        DataCategory::StatusEvents,
        DataCategory::ProofOfDelivery,
    ])?;
    // (partner, shipment) pairs a consent of scope `shipments` grants: half the queries are
    // drawn from them, so that both paths of a decision are measured.
    let mut granted: Vec<(PartnerId, ShipmentId)> = Vec::with_capacity(args.consents / 2 + 1);
    for i in 0..args.consents {
        let (shipment, shipper) = shipments[rng.below(shipments.len())];
        let partner = partners[rng.below(partners.len())];
        if i % 2 == 0 {
            granted.push((partner, shipment));
        }
        let scope = if i % 2 == 0 {
            ConsentScope::Shipments {
                shipment_ids: NonEmptySet::new(vec![shipment])?,
            }
        } else {
            ConsentScope::Shipper {
                carriers: Some(NonEmptySet::new(vec![
                    carriers[rng.below(carriers.len())].clone()
                ])?),
                destination_countries: None,
            }
        };
        d.add_grant(Grant {
            id: ConsentId::from_uuid(Uuid::now_v7()),
            partner,
            shipper,
            scope: &scope,
            purposes: &purposes,
            categories: &categories,
            valid_from: now - chrono::Duration::days(1),
            valid_until: None,
            granted_at: now - chrono::Duration::days(1),
            position: i as u64,
        });
    }
    // Queries: every other one a granted (partner, shipment) pair, the rest uniform (nearly
    // all denials: no_consent), as a peer benchmark of the same workload draws them.
    let requested = Categories::of(&[DataCategory::StatusEvents, DataCategory::Location]);
    let queries: Vec<(PartnerId, ShipmentRef)> = (0..args.queries)
        .map(|i| {
            if i % 2 == 0 && !granted.is_empty() {
                let (partner, shipment) = granted[rng.below(granted.len())];
                (partner, ShipmentRef::Id(shipment))
            } else {
                (
                    partners[rng.below(partners.len())],
                    ShipmentRef::Id(shipments[rng.below(shipments.len())].0),
                )
            }
        })
        .collect();
    let mut latencies = Vec::with_capacity(queries.len());
    let (mut allow_path, mut deny_path) = (Vec::new(), Vec::new());
    let t = Instant::now();
    for (partner, shipment) in &queries {
        let q = Instant::now();
        let verdict = d.decide(*partner, shipment, Purpose::InsuranceClaim, requested, now);
        let took = q.elapsed();
        latencies.push(took);
        match verdict {
            consent_ledger_projections::decider::Verdict::Allowed { .. } => allow_path.push(took),
            _ => deny_path.push(took),
        }
    }
    let decide = figures(latencies, t.elapsed());
    let allowed = allow_path.len();
    let path = |latencies: Vec<std::time::Duration>| {
        let spent = latencies.iter().sum();
        figures(latencies, spent)
    };
    let (allow_path, deny_path) = (path(allow_path), path(deny_path));
    // Baseline: a HashMap look-up of the same shipment ids.
    let map: HashMap<ShipmentId, ShipperId> = shipments.iter().copied().collect();
    let mut latencies = Vec::with_capacity(queries.len());
    let mut found = 0usize;
    let t = Instant::now();
    for (_, shipment) in &queries {
        let ShipmentRef::Id(id) = shipment else {
            continue;
        };
        let q = Instant::now();
        found += usize::from(std::hint::black_box(map.get(id)).is_some());
        latencies.push(q.elapsed());
    }
    let lookup = figures(latencies, t.elapsed());
    println!(
        "in-process check: {} shipments, {} consents, {} partners; {} queries ({} allowed, {} found); index built in {:.1} s",
        args.shipments, args.consents, args.partners, args.queries, allowed, found, load.as_secs_f64()
    );
    println!("| path | p50 | p99 | checks/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| Decider::decide | {:.2} µs | {:.2} µs | {:.0} |",
        us(decide.p50),
        us(decide.p99),
        decide.per_second
    );
    for (name, f) in [("allowed", &allow_path), ("denied", &deny_path)] {
        println!(
            "| Decider::decide, the {name} ones | {:.2} µs | {:.2} µs | {:.0} |",
            us(f.p50),
            us(f.p99),
            f.per_second
        );
    }
    println!(
        "| baseline: HashMap::get of the shipment id | {:.2} µs | {:.2} µs | {:.0} |",
        us(lookup.p50),
        us(lookup.p99),
        lookup.per_second
    );
    if args.authorizations > 0 {
        authorizations_added(
            &mut d, &args, &partners, &carriers, &queries, requested, now,
        )?;
    }
    drop((map, queries));

    if args.foreign_grants > 0 {
        // One shipper's parcels, asked about by partners with consents of their own; then the
        // same shipper grants shipper-wide consents to many other partners.
        let shipper = shippers[0];
        let own: Vec<ShipmentId> = shipments
            .iter()
            .filter(|(_, s)| *s == shipper)
            .map(|(id, _)| *id)
            .collect();
        let askers = &partners[..partners.len().min(100)];
        let queries: Vec<(PartnerId, ShipmentRef)> = (0..args.queries.min(200_000))
            .map(|_| {
                (
                    askers[rng.below(askers.len())],
                    ShipmentRef::Id(own[rng.below(own.len())]),
                )
            })
            .collect();
        let time = |d: &Decider| {
            let mut latencies = Vec::with_capacity(queries.len());
            let t = Instant::now();
            for (partner, shipment) in &queries {
                let q = Instant::now();
                std::hint::black_box(d.decide(
                    *partner,
                    shipment,
                    Purpose::InsuranceClaim,
                    requested,
                    now,
                ));
                latencies.push(q.elapsed());
            }
            figures(latencies, t.elapsed())
        };
        let without = time(&d);
        let wide = ConsentScope::Shipper {
            carriers: None,
            destination_countries: None,
        };
        for i in 0..args.foreign_grants {
            let foreign = PartnerId::from_uuid(uuid(&mut rng));
            d.add_partner(foreign);
            d.add_grant(Grant {
                id: ConsentId::from_uuid(uuid(&mut rng)),
                partner: foreign,
                shipper,
                scope: &wide,
                purposes: &purposes,
                categories: &categories,
                valid_from: now - chrono::Duration::days(1),
                valid_until: None,
                granted_at: now - chrono::Duration::days(1),
                position: (args.consents + i) as u64,
            });
        }
        let with = time(&d);
        println!(
            "cost isolation: {} decisions about one shipper's {} parcels, before and after it grants {} shipper-wide consents to other partners",
            queries.len(),
            own.len(),
            args.foreign_grants
        );
        before_and_after(
            "shipper-wide grants of that shipper to others",
            &without,
            &with,
        );
        println!(
            "rate with them / without: {:.2}",
            with.per_second / without.per_second.max(1e-9)
        );
    }
    drop((d, shipments));

    if args.memory_shipments > 0 {
        let before = rss_bytes().context("reading /proc/self/statm")?;
        let mut d = Decider::default();
        let shipper = ShipperId::from_uuid(uuid(&mut rng));
        for i in 0..args.memory_shipments {
            let tracking = TrackingNumber::parse(format!("T{i:012}"))?;
            d.add_shipment(
                ShipmentId::from_uuid(uuid(&mut rng)),
                shipper,
                &carriers[i % 4],
                Some(&tracking),
                countries[i % 5],
            );
        }
        let after = rss_bytes().context("reading /proc/self/statm")?;
        println!(
            "hot index memory at {} shipments: {:.0} MiB resident, {:.0} bytes per shipment",
            d.shipment_count(),
            (after - before) as f64 / (1 << 20) as f64,
            (after - before) as f64 / args.memory_shipments as f64
        );
    }
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Request `i` of a load: its (path, bearer token, JSON body), POSTed, or a GET without a body
/// when the JSON is null.
pub(crate) type Requests =
    Arc<dyn Fn(usize) -> (&'static str, String, serde_json::Value) + Send + Sync>;

/// Single decisions: request `i` is partner `tokens[i % n]` asking about
/// `shipments[(i * 7919) % m]` for an insurance claim (status events and location), so that a
/// load spreads over every partner and shipment.
pub(crate) fn single_decisions(tokens: Vec<String>, shipments: Vec<ShipmentId>) -> Requests {
    Arc::new(move |i: usize| {
        let token = tokens[i % tokens.len()].clone();
        let body = json!({ "shipment_id": shipments[(i * 7919) % shipments.len()], "purpose": "insurance_claim",
                           "data_categories": ["status_events", "location"] });
        ("/v1/decisions", token, body)
    })
}

/// The ceiling of the harness: an answer that does no work at all.
pub(crate) fn healthz() -> Requests {
    Arc::new(|_| ("/healthz", String::new(), serde_json::Value::Null))
}

/// Sends `count` requests from `connections` concurrent clients on a load-generator thread of
/// its own, connection `c` to node `urls[c % urls.len()]`; `body(i)` gives request i's (path,
/// token, JSON), POSTed, or GET without a body when the JSON is null. Returns latency figures.
pub(crate) fn load(
    urls: &[String],
    connections: usize,
    count: usize,
    body: Requests,
) -> anyhow::Result<Figures> {
    load_as(urls, connections, count, body, |token| {
        ("Authorization", format!("Bearer {token}"))
    })
}

/// [`load`], each request's token sent as the header `credential` makes of it (a bearer token,
/// or a console session's cookie).
pub(crate) fn load_as(
    urls: &[String],
    connections: usize,
    count: usize,
    body: Requests,
    credential: fn(&str) -> (&'static str, String),
) -> anyhow::Result<Figures> {
    let urls = urls.to_vec();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .connector(awc::Connector::new().limit(connections * 2))
                .finish();
            let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..connections {
                let (client, next, url, body) = (
                    client.clone(),
                    next.clone(),
                    urls[c % urls.len()].clone(),
                    body.clone(),
                );
                tasks.push(actix_web::rt::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.get();
                        if i >= count {
                            return Ok::<_, anyhow::Error>(latencies);
                        }
                        next.set(i + 1);
                        let (path, token, json) = body(i);
                        let t = Instant::now();
                        let url = format!("{url}{path}");
                        let auth = credential(&token);
                        let mut res = if json.is_null() {
                            client.get(url).insert_header(auth).send().await
                        } else {
                            client.post(url).insert_header(auth).send_json(&json).await
                        }
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let _ = res
                            .body()
                            .limit(64 << 20)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        anyhow::ensure!(res.status().is_success(), "answer {}", res.status());
                        latencies.push(t.elapsed());
                    }
                }));
            }
            let mut latencies = Vec::with_capacity(count);
            for task in tasks {
                latencies.extend(task.await??);
            }
            Ok(figures(latencies, started.elapsed()))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("load generator panicked"))?
}

/// SPEC §11 rows 1–2 with their baselines: HTTP single decisions at 64 connections and batch
/// decisions, recorded durably; raw batched INSERTs of the same rows; the naive design.
pub(crate) async fn decisions(args: DecisionsArgs, scratch: &Scratch) -> anyhow::Result<()> {
    if args.nodes > 1 && !scratch.is_postgres() {
        anyhow::bail!(
            "--nodes 2 needs --database-url postgres://…: nodes share a PostgreSQL database"
        );
    }
    let ledger = scratch.part("ledger").await?;
    let f = Arc::new(fixture(&ledger.options, 100, 10_000).await?);
    let mut urls = vec![f.url.clone()];
    // The second node is a real `serve` process of this same binary: its own runtime, HTTP
    // server, writer connection and read pool, following the first node's commits.
    let second = match args.nodes {
        2 => {
            let database_url = ledger
                .options
                .database_url
                .as_deref()
                .context("a second node needs a database URL")?;
            let node = ServeProcess::start(&scratch.path().join("node-b"), Some(database_url))?;
            urls.push(node.url.clone());
            Some(node)
        }
        _ => None,
    };
    let single = single_decisions(f.partner_tokens.clone(), f.shipments.clone());
    let follower = args
        .audit_follow
        .then(|| consent_ledger_app::background::GdprFollower::spawn(f.state.clone()))
        .transpose()?;
    let warm = load(&urls, args.connections, args.count / 10, single.clone())?;
    let first = f.state.store.next_position().await?;
    let http = load(&urls, args.connections, args.count, single)?;
    let batch = {
        let f = f.clone();
        Arc::new(move |i: usize| {
            let items: Vec<serde_json::Value> = (0..1000)
                .map(|j| {
                    json!({ "partner_id": f.partners[(i + j) % f.partners.len()], "shipment_id": f.shipments[(i * 1000 + j) % f.shipments.len()],
                            "purpose": "insurance_claim", "data_categories": ["status_events"] })
                })
                .collect();
            (
                "/v1/decisions/batch",
                f.gateway.clone(),
                json!({ "items": items }),
            )
        })
    };
    let batched = load(&urls, 4, args.batches, batch)?;
    // The ceiling of this harness: the same clients on an answer that does no work at all.
    let ceiling = load(&urls, args.connections, args.count, healthz())?;
    drop(second);
    let audit_lag = match follower {
        Some(follower) => {
            follower.stop();
            let size = f.state.store.next_position().await?.get();
            Some(size - f.state.store.gdpr_position().await?.get().min(size))
        }
        None => None,
    };

    // Baseline (a): the decision rows the product wrote, as raw batched INSERTs.
    let rows: Vec<StoredEvent> = f
        .state
        .store
        .read_range(first, u32::try_from(args.count).unwrap_or(u32::MAX))
        .await?;
    let raw =
        baseline::batched_insert_at(&scratch.part("raw").await?.location, &rows, 1000).await?;
    let raw_rate = rows.len() as f64 / raw.as_secs_f64();
    // Baseline (b): one cqrs-es command per read on a per-shipment aggregate.
    let naive = crate::naive_reads(&scratch.part("naive").await?.location, args.naive, 64).await?;

    let nodes = match args.nodes {
        1 => "one node".to_owned(),
        n => format!(
            "{n} nodes: this process and a second `serve` process, connections split between them"
        ),
    };
    let follow = match audit_lag {
        Some(lag) => {
            format!(", the audit projection following (behind by {lag} events when the load ended)")
        }
        None => String::new(),
    };
    println!(
        "| path ({}, {nodes}{follow}) | decisions/s | p50 | p99 |",
        scratch.label()
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| warm-up, {} connections | {:.0} | {:.2} ms | {:.2} ms |",
        args.connections,
        warm.per_second,
        ms(warm.p50),
        ms(warm.p99)
    );
    println!(
        "| HTTP POST /v1/decisions, {} connections | {:.0} | {:.2} ms | {:.2} ms |",
        args.connections,
        http.per_second,
        ms(http.p50),
        ms(http.p99)
    );
    println!("| HTTP POST /v1/decisions/batch (1,000 per call), 4 connections | {:.0} | {:.2} ms per call | {:.2} ms per call |", batched.per_second * 1000.0, ms(batched.p50), ms(batched.p99));
    println!(
        "| baseline: raw INSERT of the same rows, 1,000 per transaction | {raw_rate:.0} | | |"
    );
    println!("| baseline: naive cqrs-es command per read on a per-shipment aggregate, 64 clients | {:.0} | {:.2} ms | {:.2} ms |", naive.per_second, ms(naive.p50), ms(naive.p99));
    println!(
        "| ceiling of the harness: GET /healthz (no work), {} connections | {:.0} | {:.2} ms | {:.2} ms |",
        args.connections,
        ceiling.per_second,
        ms(ceiling.p50),
        ms(ceiling.p99)
    );
    println!();
    println!(
        "single / raw batched INSERT: {:.2}",
        http.per_second / raw_rate
    );
    println!(
        "batch / raw batched INSERT: {:.2}",
        batched.per_second * 1000.0 / raw_rate
    );
    println!("single / naive: {:.1}x", http.per_second / naive.per_second);
    println!(
        "harness ceiling / raw batched INSERT: {:.2}",
        ceiling.per_second / raw_rate
    );
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Shipments in the seeded log.
    #[arg(long, default_value_t = 1_000_000)]
    pub shipments: usize,
    /// Recorded decisions in the seeded log.
    #[arg(long, default_value_t = 1_000_000)]
    pub decisions: usize,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// SPEC §11 rows "projection rebuild" and "ready after restart": seeds a log, then measures a
/// full replay, writing the snapshot, and a restart from it; the GDPR projection rebuilt from
/// the whole log (`replay --audit`); then the audit-log row on the same log, as
/// `consent-ledger audit-log` runs.
pub async fn restart(args: RestartArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("consent-ledger-bench")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let options = StoreOptions {
        data_dir: scratch.path().to_path_buf(),
        database_url: None,
    };
    let f = fixture(&options, 10, 0).await?;
    let shipper = f.shipper()?;
    let started = Instant::now();
    let seed = crate::log::Seed {
        shipper,
        partners: &f.partners,
        shipments: args.shipments,
        decisions: args.decisions,
        denied_every: 0,
        checkpoint_every: 0,
    };
    crate::log::seed_log(&f.state, &seed, |_| {}).await?;
    let size = f.state.store.next_position().await?.get();
    eprintln!(
        "seeded {size} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let model = consent_ledger_projections::Projector::replay(&f.state.store, |_| {}).await?;
    let replay = t.elapsed();
    let projector = consent_ledger_projections::Projector::new(f.state.store.clone());
    projector.install(model);
    let t = Instant::now();
    projector.save_snapshot(&options.snapshot_path()).await?;
    let save = t.elapsed();
    let snapshot_bytes = std::fs::metadata(options.snapshot_path())?.len();
    drop(projector);
    let t = Instant::now();
    let reopened =
        AppState::open(&options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let ready = t.elapsed();
    let summary = reopened.projector.read().summary();
    drop(reopened);
    std::fs::remove_file(options.snapshot_path())?;
    let t = Instant::now();
    let cold = AppState::open(&options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let cold_ready = t.elapsed();
    anyhow::ensure!(
        cold.projector.read().summary() == summary,
        "snapshot start and cold start disagree"
    );
    drop(cold);
    // `consent-ledger replay --audit`: the GDPR projection emptied and built again from the
    // whole log.
    let t = Instant::now();
    let audit_projection =
        consent_ledger_projections::gdpr::GdprProjector::new(f.state.store.clone())
            .rebuild(|_| {})
            .await?;
    let gdpr_rebuild = t.elapsed();
    anyhow::ensure!(
        audit_projection.get() == size,
        "the GDPR projection was rebuilt to {audit_projection}, not {size}"
    );
    // SPEC §11's audit-log row at this size: what `consent-ledger audit-log` does, in a
    // process without huge pages as that command's.
    consent_ledger_app::bulk::without_huge_pages();
    let audit = consent_ledger_app::audit_log::audit(&options, |_, _| {}).await?;
    anyhow::ensure!(
        audit.events == size,
        "the audit read {} of {size} events",
        audit.events
    );

    println!(
        "log of {size} events ({} shipments, {} decisions)",
        args.shipments, args.decisions
    );
    println!("| step | time | rate |");
    println!("|---|---:|---:|");
    println!(
        "| full replay (`consent-ledger replay`) | {:.2} s | {:.0} events/s |",
        replay.as_secs_f64(),
        size as f64 / replay.as_secs_f64()
    );
    println!(
        "| GDPR projection rebuilt (`consent-ledger replay --audit`) | {:.2} s | {:.0} events/s |",
        gdpr_rebuild.as_secs_f64(),
        size as f64 / gdpr_rebuild.as_secs_f64()
    );
    println!(
        "| write snapshot ({:.0} MiB) | {:.2} s | |",
        snapshot_bytes as f64 / (1 << 20) as f64,
        save.as_secs_f64()
    );
    println!(
        "| ready after restart, from the snapshot | {:.2} s | |",
        ready.as_secs_f64()
    );
    println!(
        "| ready after restart, no snapshot (full replay) | {:.2} s | |",
        cold_ready.as_secs_f64()
    );
    println!(
        "| audit-log (`consent-ledger audit-log`): every leaf recomputed from its event and compared | {:.2} s | {:.0} events/s |",
        audit.seconds,
        size as f64 / audit.seconds.max(1e-9)
    );
    Ok(())
}

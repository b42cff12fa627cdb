//! `consent-ledger-bench erasure`: the figures of SPEC §12 (personal data out of the log), on
//! one store in one run.
//!
//! 1. **Commitments on the decision path.** The only decision whose leaf holds a personal
//!    field is a denial of a parcel asked for by a tracking number nobody registered: its
//!    number is sealed (a salted commitment in the leaf, the opening written in the same
//!    commit). Over HTTP on the same server, in alternating rounds: denials of parcels asked
//!    for by an unknown *id* (no personal field — a leaf as every leaf was before commitments)
//!    and by an unknown *tracking number* (sealed), and allowed decisions for reference. In
//!    process: the same denial event encoded as before (one serialisation, the number in
//!    clear) and as now (sealed), ns per event.
//! 2. **One erasure** at `--shipments` registered parcels: `erase_shipment` one at a time
//!    (answered once committed and fsynced), p50/p99, and the clean-up after a burst (audit
//!    file, WAL checkpoints, snapshot rewrite).
//! 3. **Retention**: one sweep over every parcel (a period of 0 days), shipments per second.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use consent_ledger_app::auth::Caller;
use consent_ledger_app::erasure::{erase_shipment, scrub, sweep_retention, EraseShipment};
use consent_ledger_app::write::WriteContext;
use consent_ledger_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM};
use consent_ledger_domain::values::{
    CarrierCode, DataCategory, PartnerId, Purpose, Reason, Role, TrackingNumber,
};
use consent_ledger_store::NewEvent;
use serde_json::json;
use uuid::Uuid;

use crate::decisions::{healthz, load, single_decisions, Requests};
use crate::fixture::{fixture, register_parcels, register_principal};
use crate::{figures, ms, Figures, Scratch};

#[derive(Debug, Clone, Args)]
pub struct ErasureArgs {
    /// Parcels registered (each with a recipient reference) before erasures are measured.
    #[arg(long, default_value_t = 1_000_000)]
    pub shipments: usize,
    /// Erasures measured one at a time.
    #[arg(long, default_value_t = 200)]
    pub erasures: usize,
    /// Decisions per measured row (rounds alternate; each row gets this many in all).
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// Rounds the decision rows alternate over, so that drift hits every row alike.
const ROUNDS: usize = 4;

pub(crate) async fn erasure(args: ErasureArgs, scratch: &Scratch) -> anyhow::Result<()> {
    eprintln!(
        "bench erasure: {} shipments, {} erasures, {} decisions per row, {}, scratch in {}",
        args.shipments,
        args.erasures,
        args.count,
        scratch.label(),
        scratch.path().display()
    );
    let ledger = scratch.part("ledger").await?;
    let f = fixture(&ledger.options, 100, 10_000).await?;
    let shipper = f.shipper()?;

    // 1. The decision path, before the big registration (same fixture as `bench decisions`).
    let partner = f.partner_tokens[0].clone();
    let by_id: Requests = Arc::new(move |i: usize| {
        let body = json!({ "shipment_id": Uuid::from_u64_pair(0xdead, i as u64),
            "purpose": "insurance_claim", "data_categories": ["status_events"] });
        ("/v1/decisions", partner.clone(), body)
    });
    let partner = f.partner_tokens[1].clone();
    let by_number: Requests = Arc::new(move |i: usize| {
        let body = json!({ "carrier": "DHL", "tracking_number": format!("UNKNOWN{i:010}"),
            "purpose": "insurance_claim", "data_categories": ["status_events"] });
        ("/v1/decisions", partner.clone(), body)
    });
    let allowed = single_decisions(f.partner_tokens.clone(), f.shipments.clone());
    let urls = std::slice::from_ref(&f.url);
    let per_round = (args.count / ROUNDS).max(1);
    load(urls, args.connections, per_round, by_number.clone())?;
    load(urls, args.connections, per_round, by_id.clone())?;
    let rows: [(&str, &Requests); 4] = [
        (
            "denied, unknown parcel asked by id (no personal field: the leaf as before)",
            &by_id,
        ),
        (
            "denied, unknown parcel asked by tracking number (sealed: commitment + opening)",
            &by_number,
        ),
        ("allowed, by id (no personal field)", &allowed),
        ("ceiling of the harness: GET /healthz (no work)", &healthz()),
    ];
    let mut measured: Vec<Vec<Figures>> = rows.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (r, (_, requests)) in rows.iter().enumerate() {
            // Each round asks other numbers and ids than the last.
            let offset = round * per_round;
            let requests = (*requests).clone();
            let shifted: Requests = Arc::new(move |i| requests(i + offset));
            measured[r].push(load(urls, args.connections, per_round, shifted)?);
        }
    }
    let encode = encoding_cost()?;

    // 2. One erasure at scale.
    let t = Instant::now();
    let parcels = register_parcels(&f.state, shipper, args.shipments, 'E', true).await?;
    let seeding = t.elapsed();
    f.state.projector.catch_up().await?;
    f.state.gdpr.catch_up().await?;
    let officer =
        register_principal(&f.state, Role::PrivacyOfficer, "Privacy officer", None).await?;
    let caller = Caller::of(&f.state.projector.read(), officer.id)
        .ok_or_else(|| anyhow::anyhow!("the privacy officer is not in the read model"))?;
    let step = (parcels.len() / args.erasures.max(1)).max(1);
    let mut latencies = Vec::with_capacity(args.erasures);
    let started = Instant::now();
    for (i, id) in parcels.iter().step_by(step).take(args.erasures).enumerate() {
        let context = WriteContext::new(&caller, format!("bench-{i}"), "erase", None, b"")?;
        let input = EraseShipment {
            reason: Some(Reason::parse("benchmark erasure")?),
        };
        let t = Instant::now();
        let (erased, _) = erase_shipment(&f.state, &caller, *id, input, context)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        latencies.push(t.elapsed());
        anyhow::ensure!(
            erased.shipments == 1,
            "erasure {i} erased {}",
            erased.shipments
        );
    }
    let erasures = figures(latencies, started.elapsed());
    let t = Instant::now();
    scrub(&f.state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let cleanup = t.elapsed();

    // 3. Retention over every parcel left.
    let left = f.state.projector.read().summary().shipments;
    let t = Instant::now();
    let swept = sweep_retention(&f.state, 0)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sweeping = t.elapsed();

    println!(
        "| decisions over HTTP ({}, one node, {} connections, {} per row in {ROUNDS} alternating rounds) | decisions/s | p50 | p99 |",
        scratch.label(),
        args.connections,
        per_round * ROUNDS
    );
    println!("|---|---:|---:|---:|");
    for ((name, _), runs) in rows.iter().zip(&measured) {
        let (rate, p50, p99) = combined(runs);
        println!("| {name} | {rate:.0} | {p50:.2} ms | {p99:.2} ms |");
    }
    let rate = |r: usize| combined(&measured[r]).0;
    println!();
    println!(
        "sealed / unsealed denial rate: {:.2}; encoding the same denial event: {:.0} ns as before (number in clear), {:.0} ns sealed (+{:.0} ns)",
        rate(1) / rate(0).max(1e-9),
        encode.0,
        encode.1,
        encode.1 - encode.0
    );
    println!();
    println!(
        "registered {} parcels with recipient references in {:.1} s ({:.0}/s); decider held {left} shipments",
        args.shipments,
        seeding.as_secs_f64(),
        args.shipments as f64 / seeding.as_secs_f64().max(1e-9)
    );
    println!(
        "| one erasure at {left} shipments ({}) | erasures/s, one at a time | p50 | p99 | clean-up after the {} (audit file, WAL checkpoints, snapshot) |",
        scratch.label(),
        args.erasures
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| `erase_shipment`, answered once committed | {:.0} | {:.2} ms | {:.2} ms | {:.2} s |",
        erasures.per_second,
        ms(erasures.p50),
        ms(erasures.p99),
        cleanup.as_secs_f64()
    );
    println!();
    println!(
        "retention sweep: {swept} shipments erased in {:.1} s = {:.0} shipments/s (batches of {}, each one recorded PersonalDataErased; clean-up included)",
        sweeping.as_secs_f64(),
        swept as f64 / sweeping.as_secs_f64().max(1e-9),
        consent_ledger_app::erasure::RETENTION_BATCH
    );
    Ok(())
}

/// (decisions/s over all rounds, each of the same size: the harmonic mean of their rates; the
/// mean p50 ms; the worst p99 ms).
fn combined(runs: &[Figures]) -> (f64, f64, f64) {
    let n = runs.len().max(1) as f64;
    let seconds_each: f64 = runs.iter().map(|f| 1.0 / f.per_second.max(1e-9)).sum();
    let p50 = runs.iter().map(|f| ms(f.p50)).sum::<f64>() / n;
    let p99 = runs.iter().map(|f| ms(f.p99)).fold(0.0, f64::max);
    (n / seconds_each.max(1e-9), p50, p99)
}

/// ns per event to encode one denial by tracking number: as before commitments (the one
/// serialisation every decision takes, the number in clear) and sealed (what is written now).
fn encoding_cost() -> anyhow::Result<(f64, f64)> {
    let event = AccessEvent::TrackingAccessDenied {
        authorization: None,
        channel: None,
        carrier: Some(CarrierCode::parse("DHL")?),
        consent: None,
        decided_at: chrono::Utc::now(),
        decision_id: Uuid::now_v7(),
        on_behalf_of: None,
        partner: PartnerId::from_uuid(Uuid::now_v7()),
        purpose: Purpose::InsuranceClaim,
        reason: DenyReason::UnknownShipment,
        requested: vec![DataCategory::StatusEvents],
        shipment: None,
        tracking_number: Some(TrackingNumber::parse("UNKNOWN0000000001")?.into()),
    };
    const N: u32 = 200_000;
    let time = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        for _ in 0..N / 10 {
            f()?;
        }
        let t = Instant::now();
        for _ in 0..N {
            f()?;
        }
        Ok(t.elapsed().as_nanos() as f64 / f64::from(N))
    };
    let id = Uuid::now_v7().to_string();
    let before = time(&|| {
        // What every decision's record took before SPEC §12, and allowed decisions still take.
        let text = serde_json::to_string(&event)?;
        std::hint::black_box(text);
        Ok(())
    })?;
    let after = time(&|| {
        let sealed = NewEvent::from_domain(&event, ACCESS_STREAM, &id, 1)?;
        std::hint::black_box(sealed);
        Ok(())
    })?;
    Ok((before, after))
}

//! `consent-ledger-bench isolation`: the security issue's figure over HTTP. One shipper (the
//! "noisy" tenant) grants many shipper-wide consents to other partners; the decision rate of
//! another shipper's partners must stay within 2× of what it was without them, measured in the
//! same run on the same server.
//!
//! One run: the `decisions` fixture served on a loopback port (100 partners, each with a
//! shipper-wide consent of the fixture's shipper, 10,000 parcels), plus the noisy shipper with
//! parcels of its own and a partner with no consent at all. Then, twice — before and after the
//! noisy shipper's grants — a warm-up, the fixture's partners' single decisions about the
//! fixture's parcels, the partner without consent asking about the noisy shipper's parcels (the
//! worst case for that shipper's own parcels: a denial after looking for a consent), and the
//! harness's ceiling (`GET /healthz`, which does no work: what the machine did meanwhile).
//!
//! The grants go through the product's write path: each foreign partner registered by the use
//! case `POST /v1/principals` calls, each consent granted through the consent command bus (the
//! aggregate checks the partner in the directory), 64 in flight so that the group commit shares
//! the fsyncs; the commit hook applies them to the read model the server decides on.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use consent_ledger_app::state::AppState;
use consent_ledger_domain::values::{ConsentId, Role, ShipperId};
use uuid::Uuid;

use crate::decisions::{healthz, load, single_decisions, Requests};
use crate::fixture::{
    fixture, in_flight, partner_profile, register_principal, register_shipments, setup,
    shipper_wide_grant, Fixture,
};
use crate::{ms, Figures, Scratch};

/// Parcels of the noisy shipper, asked about by the partner without consent.
const NOISY_SHIPMENTS: usize = 1_000;
/// Foreign partners that ask about the noisy shipper's parcels over HTTP once the grants are
/// in, to show the server decides on them.
const FOREIGN_SAMPLE: usize = 100;

#[derive(Debug, Clone, Args)]
pub struct IsolationArgs {
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Single decisions per measured row (each phase starts with a warm-up of a tenth of them).
    #[arg(long, default_value_t = 30_000)]
    pub count: usize,
    /// Shipper-wide consents the noisy shipper grants, each to a partner of its own (0: none,
    /// and the two phases measure the same thing: the harness's run-to-run spread).
    #[arg(long, default_value_t = 40_000)]
    pub foreign_grants: usize,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// One timed load and how the server decided its requests.
struct Measured {
    figures: Figures,
    allowed: u64,
    denied: u64,
}

/// What one phase measured.
struct Phase {
    own: Measured,
    noisy: Measured,
    ceiling: Figures,
}

pub(crate) async fn isolation(args: IsolationArgs, scratch: &Scratch) -> anyhow::Result<()> {
    eprintln!(
        "bench isolation: {} decisions per row, {} connections, {} foreign grants, {}, scratch in {}",
        args.count,
        args.connections,
        args.foreign_grants,
        scratch.label(),
        scratch.path().display()
    );
    let ledger = scratch.part("ledger").await?;
    let f = fixture(&ledger.options, 100, 10_000).await?;
    let noisy = register_principal(&f.state, Role::Shipper, "Noisy shop", None).await?;
    let noisy = noisy.id.as_shipper();
    let noisy_parcels = register_shipments(&f.state, noisy, NOISY_SHIPMENTS, 'N').await?;
    let stranger = register_principal(
        &f.state,
        Role::Partner,
        "Stranger",
        Some(partner_profile()?),
    )
    .await?;

    let own = single_decisions(f.partner_tokens.clone(), f.shipments.clone());
    let asks_noisy = single_decisions(vec![stranger.token], noisy_parcels.clone());
    let without = phase(&f, &args, &own, &asks_noisy)?;

    let before = f.state.projector.read().summary();
    let t = Instant::now();
    let foreign = grant_foreign(&f.state, noisy, args.foreign_grants).await?;
    let granting = t.elapsed();
    f.state.projector.catch_up().await?;
    let after = f.state.projector.read().summary();
    anyhow::ensure!(
        after.consents == before.consents + args.foreign_grants
            && after.principals == before.principals + args.foreign_grants,
        "the server's read model does not hold the {} foreign grants: {} consents and {} principals before, {} and {} after",
        args.foreign_grants,
        before.consents,
        before.principals,
        after.consents,
        after.principals
    );
    // Over HTTP, as the measured decisions are: the server decides on the new grants.
    let sample: Vec<String> = foreign.into_iter().take(FOREIGN_SAMPLE).collect();
    if !sample.is_empty() {
        let asked = sample.len();
        let check = measure(
            &f,
            1,
            asked,
            single_decisions(sample, noisy_parcels.clone()),
        )?;
        expect(
            &check,
            asked,
            0,
            "foreign partners about the noisy shipper's parcels",
        )?;
    }

    let with = phase(&f, &args, &own, &asks_noisy)?;
    print(&args, scratch, &after, granting, &without, &with);
    Ok(())
}

/// The noisy shipper's grants: `count` partners registered, then one shipper-wide consent to
/// each, 64 in flight. Returns the partners' tokens.
async fn grant_foreign(
    state: &Arc<AppState>,
    shipper: ShipperId,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let partners = in_flight((0..count).map(|i| {
        let state = state.clone();
        async move {
            let name = format!("Foreign partner {i}");
            register_principal(&state, Role::Partner, &name, Some(partner_profile()?)).await
        }
    }))
    .await?;
    let grants = partners.iter().map(|partner| {
        let id = ConsentId::from_uuid(Uuid::now_v7());
        let command = shipper_wide_grant(id, shipper, partner.id.as_partner());
        let state = state.clone();
        async move {
            state
                .consents
                .execute(&id.to_string(), command?, setup())
                .await?;
            Ok(())
        }
    });
    in_flight(grants).await?;
    Ok(partners.into_iter().map(|p| p.token).collect())
}

/// A warm-up, then the fixture's partners about its parcels, the partner without consent about
/// the noisy shipper's parcels, and the harness's ceiling.
fn phase(
    f: &Fixture,
    args: &IsolationArgs,
    own: &Requests,
    asks_noisy: &Requests,
) -> anyhow::Result<Phase> {
    let urls = std::slice::from_ref(&f.url);
    load(urls, args.connections, args.count / 10, own.clone())?;
    let own = measure(f, args.connections, args.count, own.clone())?;
    expect(&own, args.count, 0, "the fixture's partners")?;
    let noisy = measure(f, args.connections, args.count, asks_noisy.clone())?;
    expect(&noisy, 0, args.count, "the partner without consent")?;
    let ceiling = load(urls, args.connections, args.count, healthz())?;
    Ok(Phase {
        own,
        noisy,
        ceiling,
    })
}

/// Sends `count` requests and counts what the server decided meanwhile (nothing else asks).
fn measure(
    f: &Fixture,
    connections: usize,
    count: usize,
    requests: Requests,
) -> anyhow::Result<Measured> {
    let decided = || {
        let m = &f.state.metrics;
        (
            m.decisions_allowed.load(Ordering::Relaxed),
            m.decisions_denied.load(Ordering::Relaxed),
        )
    };
    let before = decided();
    let figures = load(std::slice::from_ref(&f.url), connections, count, requests)?;
    let after = decided();
    Ok(Measured {
        figures,
        allowed: after.0 - before.0,
        denied: after.1 - before.1,
    })
}

/// The figures describe the path they name only if the server decided as that path does.
fn expect(m: &Measured, allowed: usize, denied: usize, who: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        (m.allowed, m.denied) == (allowed as u64, denied as u64),
        "{who}: expected {allowed} allowed and {denied} denied, the server decided {} and {}",
        m.allowed,
        m.denied
    );
    Ok(())
}

fn print(
    args: &IsolationArgs,
    scratch: &Scratch,
    model: &consent_ledger_projections::model::ModelSummary,
    granting: Duration,
    without: &Phase,
    with: &Phase,
) {
    let n = args.foreign_grants;
    if n == 0 {
        println!(
            "no foreign grants: both phases measure the same server, so their ratio is the \
             harness's run-to-run spread on this machine"
        );
    }
    println!(
        "the noisy shipper granted {n} shipper-wide consents to {n} new partners in {:.1} s \
         (use case and command bus, 64 in flight); the server's read model then held {} principals, \
         {} consents, {} shipments",
        granting.as_secs_f64(),
        model.principals,
        model.consents,
        model.shipments
    );
    println!(
        "| single decisions over HTTP ({}, one node, {} connections, {} per row) | without: decisions/s | p50 | p99 | with {n} foreign grants: decisions/s | p50 | p99 | rate with / without |",
        scratch.label(),
        args.connections,
        args.count
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, a: &Figures, b: &Figures| {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.2} |",
            a.per_second,
            ms(a.p50),
            ms(a.p99),
            b.per_second,
            ms(b.p50),
            ms(b.p99),
            ratio(b, a)
        )
    };
    row(
        "another shipper's partners about its parcels (allowed)",
        &without.own.figures,
        &with.own.figures,
    );
    row(
        "a partner with no consent about the noisy shipper's parcels (denied)",
        &without.noisy.figures,
        &with.noisy.figures,
    );
    row(
        "ceiling of the harness: GET /healthz (no work)",
        &without.ceiling,
        &with.ceiling,
    );
    println!();
    println!(
        "another shipper's decision rate with {n} foreign grants / without: {:.2} (goal: within 2×, ≥ 0.50)",
        ratio(&with.own.figures, &without.own.figures)
    );
}

fn ratio(with: &Figures, without: &Figures) -> f64 {
    with.per_second / without.per_second.max(1e-9)
}

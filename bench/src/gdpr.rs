//! `consent-ledger bench audit`: the GDPR audit views on a seeded log (SPEC §11 "access history
//! of one shipment among 10M events", issue 6's DSAR and month's RoPA) and one parcel's export
//! with its proofs (issue 18), over HTTP against the real app, one request at a time; with
//! `--drop-caches`, read from the disk.
//!
//! The seed generator writes shipments (each with a recipient_ref, registered over the past
//! year) and access decisions (nine allowed, naming the partner's consent, to one denied;
//! decided over the same year; partners round robin; each about a shipment registered in the
//! `--tracked-days` before it, or any with 0) straight through the group commit, as `bench restart` does; then the audit
//! projection catches up (its rate is a figure too) and the views are timed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Datelike, TimeZone, Utc};
use clap::Args;
use consent_ledger_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM};
use consent_ledger_domain::shipment::ShipmentEvent;
use consent_ledger_domain::values::{
    CarrierCode, CountryCode, DataCategory, DisplayName, Purpose, RecipientRef, Role, ShipmentId,
    TrackingNumber,
};
use consent_ledger_domain::SystemClock;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{Append, NewEvent, Provenance, StoreLocation};
use uuid::Uuid;

use crate::fixture::{fixture, serve_on_loopback, Fixture, Rng, CARRIERS, COUNTRIES};
use crate::{figures, ms, Figures};
use consent_ledger_app::principals::{register, CreatePrincipal};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Shipments in the seeded log.
    #[arg(long, default_value_t = 1_000_000)]
    pub shipments: usize,
    /// Recorded decisions in the seeded log.
    #[arg(long, default_value_t = 9_000_000)]
    pub decisions: usize,
    /// Days after its registration in which a shipment is tracked: each decision is about a
    /// shipment registered within this many days before it (registrations spread over the
    /// year, as a carrier's are). 0: any shipment of the whole year, at random (the worst
    /// case for the audit indexes' locality).
    #[arg(long, default_value_t = 30)]
    pub tracked_days: u32,
    /// Partners deciding.
    #[arg(long, default_value_t = 100)]
    pub partners: usize,
    /// Requests timed per view.
    #[arg(long, default_value_t = 2_000)]
    pub queries: usize,
    /// RoPA requests timed (each reads a month).
    #[arg(long, default_value_t = 200)]
    pub ropa_queries: usize,
    /// Passes over the views, each with shipments and subjects drawn afresh: the spread of
    /// their figures is the run-to-run spread.
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Seed of the shipments and subjects the passes draw: another seed on a kept log asks
    /// about parcels no earlier run read, whose pages are not cached (0 counts as 1).
    #[arg(long, default_value_t = 7)]
    pub draw_seed: u64,
    /// Histories of other parcels asked first, untimed, as a service that has been answering
    /// views for a while has: the file's interior pages are then cached, the timed parcels'
    /// own pages (almost all) still are not.
    #[arg(long, default_value_t = 0)]
    pub warm_up: usize,
    /// Write back and drop the kernel's page cache before each pass (and its warm-up), so that
    /// the timed parcels' pages are read from the disk, as after a restart or for a parcel no
    /// one asked about for months (needs root: `/proc/sys/vm/drop_caches`).
    #[arg(long)]
    pub drop_caches: bool,
    /// Keep the seeded data directory (its path is printed) so that `--reuse` can time the
    /// views again without seeding.
    #[arg(long)]
    pub keep: bool,
    /// Time the views on a data directory a `--keep` run left, instead of seeding one.
    #[arg(long, conflicts_with = "keep")]
    pub reuse: Option<PathBuf>,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What the views are timed with, kept beside a `--keep` seed as `bench-audit.json`
/// (shipment ids in `bench-audit-shipments.txt`, one a line).
#[derive(serde::Serialize, serde::Deserialize)]
struct Seeded {
    officer_token: String,
    shipper_token: String,
    partner_token: String,
    /// When the seed's year ended: the month before it is the RoPA's.
    now: chrono::DateTime<Utc>,
    shipments: usize,
    decisions: usize,
    partners: usize,
    tracked_days: u32,
    #[serde(skip)]
    shipment_ids: Vec<ShipmentId>,
}

const SEEDED_FILE: &str = "bench-audit.json";
const SHIPMENTS_FILE: &str = "bench-audit-shipments.txt";

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.reuse {
        let options = StoreOptions {
            data_dir: dir.clone(),
            database_url: None,
        };
        let mut seeded: Seeded = serde_json::from_slice(
            &std::fs::read(dir.join(SEEDED_FILE))
                .with_context(|| format!("{} is not a kept bench audit seed", dir.display()))?,
        )?;
        seeded.shipment_ids = std::fs::read_to_string(dir.join(SHIPMENTS_FILE))?
            .lines()
            .map(|l| Ok(ShipmentId::from_uuid(Uuid::parse_str(l)?)))
            .collect::<anyhow::Result<_>>()?;
        let state =
            AppState::open(&options, Arc::new(SystemClock), ServiceConfig::default()).await?;
        let caught_up = state.gdpr.catch_up().await?;
        let url = serve_on_loopback(&state)?;
        describe(&seeded, caught_up.get());
        return time_views(&url, &options, &seeded, &args);
    }
    let scratch = tempfile::Builder::new()
        .prefix("consent-ledger-bench-audit")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let options = StoreOptions {
        data_dir: scratch.path().to_path_buf(),
        database_url: None,
    };
    let f = fixture(&options, args.partners, 0).await?;
    let started = Instant::now();
    let seeded = seed(&f, &args).await?;
    let size = f.state.store.next_position().await?.get();
    eprintln!(
        "seeded {size} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    f.state.projector.catch_up().await?;
    let t = Instant::now();
    f.state.gdpr.catch_up().await?;
    let projection = t.elapsed();
    eprintln!(
        "audit projection caught up in {:.1} s",
        projection.as_secs_f64()
    );
    if args.keep {
        f.state
            .projector
            .save_snapshot(&options.snapshot_path())
            .await?;
        std::fs::write(
            options.data_dir.join(SEEDED_FILE),
            serde_json::to_vec_pretty(&seeded)?,
        )?;
        let mut ids = String::with_capacity(seeded.shipment_ids.len() * 37);
        for id in &seeded.shipment_ids {
            ids.push_str(&id.to_string());
            ids.push('\n');
        }
        std::fs::write(options.data_dir.join(SHIPMENTS_FILE), ids)?;
        eprintln!(
            "kept the seed in {} (time its views again with --reuse)",
            scratch.keep().display()
        );
    }
    describe(&seeded, size);
    println!(
        "audit projection catch-up: {:.1} s, {:.0} events/s",
        projection.as_secs_f64(),
        size as f64 / projection.as_secs_f64().max(1e-9)
    );
    time_views(&f.url, &options, &seeded, &args)
}

/// Writes the seed's shipments and decisions through the group commit (see the module's
/// documentation) and registers the privacy officer who reads the views.
async fn seed(f: &Fixture, args: &AuditArgs) -> anyhow::Result<Seeded> {
    let (officer, _) = register(
        &f.state,
        CreatePrincipal {
            role: Role::PrivacyOfficer,
            name: DisplayName::parse("DPO")?,
            partner: None,
        },
        CommandMeta::new("bench", "setup"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let shipper = f.shipper()?;
    // The fixture granted each partner one shipper-wide consent: allowed decisions name it,
    // so each history row resolves its consent's state at the decision, as in production.
    let consent_of: std::collections::HashMap<_, _> = f
        .state
        .projector
        .read()
        .consents
        .values()
        .map(|c| (c.partner_id, c.id))
        .collect();
    let provenance = Provenance {
        actor: "bench".into(),
        request_id: "seed".into(),
    };
    let flush = |events: Vec<NewEvent>| {
        let store = f.state.store.clone();
        let provenance = provenance.clone();
        async move { store.append(Append::plain(events, provenance)).await }
    };
    let now = Utc::now();
    let year = chrono::Duration::days(365);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut shipments = Vec::with_capacity(args.shipments);
    let shipment_step = year / i32::try_from(args.shipments.max(1)).unwrap_or(i32::MAX);
    let mut pending = Vec::with_capacity(1000);
    for i in 0..args.shipments {
        let id = ShipmentId::from_uuid(Uuid::now_v7());
        let event = ShipmentEvent::ShipmentRegistered {
            id,
            shipper,
            carrier: CarrierCode::parse(CARRIERS[i % 4])?,
            tracking_number: TrackingNumber::parse(format!("A{i:012}"))?.into(),
            destination_country: CountryCode::parse(COUNTRIES[i % 5])?,
            recipient_ref: Some(RecipientRef::parse(format!("crm:{i}"))?.into()),
            registered_at: now - year + shipment_step * i32::try_from(i).unwrap_or(i32::MAX),
        };
        pending.push(NewEvent::from_domain(
            &event,
            "shipment",
            &id.to_string(),
            1,
        )?);
        shipments.push(id);
        if pending.len() == 1000 {
            flush(std::mem::take(&mut pending)).await?;
        }
    }
    let step = year / i32::try_from(args.decisions.max(1)).unwrap_or(i32::MAX);
    for i in 0..args.decisions {
        let decision_id = Uuid::now_v7();
        let decided_at = now - year + step * i32::try_from(i).unwrap_or(i32::MAX);
        let partner = f.partners[i % f.partners.len()];
        let shipment = shipments[tracked_shipment(
            &mut rng,
            shipments.len(),
            i,
            args.decisions,
            args.tracked_days,
        )];
        let event = if i % 10 == 9 {
            AccessEvent::TrackingAccessDenied {
                authorization: None,
                channel: None,
                carrier: None,
                consent: None,
                decided_at,
                decision_id,
                on_behalf_of: None,
                partner,
                purpose: Purpose::PaymentRisk,
                reason: DenyReason::PurposeNotCovered,
                requested: vec![DataCategory::StatusEvents],
                shipment: Some(shipment),
                tracking_number: None,
            }
        } else {
            AccessEvent::TrackingAccessAllowed {
                authorizations: Vec::new(),
                dpa: None,
                body_sha256: None,
                channel: None,
                consents: consent_of.get(&partner).copied().into_iter().collect(),
                decided_at,
                decision_id,
                granted: vec![DataCategory::StatusEvents],
                on_behalf_of: None,
                partner,
                purpose: Purpose::InsuranceClaim,
                requested: vec![DataCategory::StatusEvents],
                shipment,
            }
        };
        pending.push(NewEvent::from_domain(
            &event,
            ACCESS_STREAM,
            &decision_id.to_string(),
            1,
        )?);
        if pending.len() == 1000 {
            flush(std::mem::take(&mut pending)).await?;
        }
    }
    if !pending.is_empty() {
        flush(pending).await?;
    }
    Ok(Seeded {
        officer_token: officer.token,
        shipper_token: f.shipper_token.clone(),
        partner_token: f.partner_tokens.first().context("a partner")?.clone(),
        now,
        shipments: args.shipments,
        decisions: args.decisions,
        partners: args.partners,
        tracked_days: args.tracked_days,
        shipment_ids: shipments,
    })
}

fn describe(seeded: &Seeded, size: u64) {
    println!(
        "log of {size} events ({} shipments, {} decisions over a year, {} partners; {})",
        seeded.shipments,
        seeded.decisions,
        seeded.partners,
        match seeded.tracked_days {
            0 => "each decision about any shipment, at random".to_owned(),
            days =>
                format!("each decision about a shipment registered in the {days} days before it"),
        }
    );
}

/// Times the views, `args.passes` times over, each pass with its own shipments and subjects.
fn time_views(
    url: &str,
    options: &StoreOptions,
    seeded: &Seeded,
    args: &AuditArgs,
) -> anyhow::Result<()> {
    let location = options.location()?;
    let (Some(audit_file), StoreLocation::SqliteFile(log_file)) = (location.gdpr_file(), &location)
    else {
        anyhow::bail!("bench audit runs on SQLite");
    };
    let audit_file =
        std::fs::File::open(audit_file).context("opening the audit file for the disk baseline")?;
    let log_file =
        std::fs::File::open(log_file).context("opening the log's file for the disk baseline")?;
    let shipments = &seeded.shipment_ids;
    anyhow::ensure!(!shipments.is_empty(), "the seed has no shipments");
    let last_month = seeded.now - chrono::Duration::days(40);
    let month_start = Utc
        .with_ymd_and_hms(last_month.year(), last_month.month(), 1, 0, 0, 0)
        .single()
        .context("month start")?;
    let month_end = (month_start + chrono::Duration::days(32))
        .with_day(1)
        .context("month end")?;
    let ropa = vec![
        format!(
            "/v1/audit/ropa?from={}&to={}",
            month_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            month_end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        args.ropa_queries
    ];
    let mut rng = Rng(args.draw_seed.max(1));
    for pass in 1..=args.passes.max(1) {
        if args.drop_caches {
            drop_page_cache()?;
            println!("the page cache written back and dropped before the pass");
        } else if pass == 1 {
            println!(
                "the page cache not dropped (`--drop-caches`): pages the seed wrote may be cached"
            );
        }
        if args.warm_up > 0 && (pass == 1 || args.drop_caches) {
            let others = of_parcels(HISTORY, &mut rng, shipments, args.warm_up);
            let (_, warm) = get_all(url, &seeded.officer_token, others)?;
            println!(
                "warmed up with {} histories of other parcels (untimed: p50 {:.2} ms, p99 {:.2} ms)",
                args.warm_up,
                ms(warm.p50),
                ms(warm.p99)
            );
        }
        let history = of_parcels(HISTORY, &mut rng, shipments, args.queries);
        let dsar: Vec<String> = (0..args.queries)
            .map(|_| {
                format!(
                    "/v1/audit/dsar?recipient_ref=crm:{}",
                    rng.below(seeded.shipments.max(1))
                )
            })
            .collect();
        let officer = &seeded.officer_token;
        // The baseline, right before the views on the same disk: what one random page of the
        // audit file takes to read, cached or not, as a history's leaf is.
        let disk = random_reads(&audit_file, args.queries, &mut rng)?;
        let (rows_per_history, history_figures) = get_all(url, officer, history.clone())?;
        // The same histories asked by the tenants: the shipper (whose shipments these all
        // are) and a partner (its own decisions about the shipment).
        let (_, shipper_figures) = get_all(url, &seeded.shipper_token, history.clone())?;
        let (rows_per_partner, partner_figures) = get_all(url, &seeded.partner_token, history)?;
        // The regulator's most common export (issue 18): one parcel's decisions, each with its
        // inclusion proof, through the projection's index; parcels not asked about before.
        let exports = of_parcels(EXPORT, &mut rng, shipments, args.queries);
        // The exports' own baseline, right before them: random pages of the log's file, where
        // an export reads its decisions' rows and proofs and which the warm-up did not touch
        // (cold after `--drop-caches`). Enough reads that the disk's rare slow one, which an
        // export's ~170 cold reads meet far more often than one read does, shows in the
        // longest; few enough (1% of the file's pages at 10M events) to leave the exports'
        // pages cold. One read at a time: an export reads several at once, which this disk
        // serves each more slowly (BENCHMARKS.md): the exports may meet a slower disk than
        // this baseline shows.
        let log_disk = random_reads(&log_file, args.queries * LOG_READS_PER_EXPORT, &mut rng)?;
        let (_, export_figures) = get_all(url, officer, exports)?;
        let (_, dsar_figures) = get_all(url, officer, dsar)?;
        let (_, ropa_figures) = get_all(url, officer, ropa.clone())?;

        if args.passes > 1 {
            println!("pass {pass} of {}:", args.passes);
        }
        println!("| view (HTTP GET, one connection) | requests/s | p50 | p99 | longest |");
        println!("|---|---:|---:|---:|---:|");
        let row = |name: &str, f: &Figures| {
            println!(
                "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
                f.per_second,
                ms(f.p50),
                ms(f.p99),
                ms(f.longest)
            )
        };
        row(
            &format!("access history of one shipment (avg {rows_per_history:.1} rows)"),
            &history_figures,
        );
        row(
            "the same, asked by the shipments' shipper",
            &shipper_figures,
        );
        row(
            &format!("the same, asked by one partner (avg {rows_per_partner:.2} rows)"),
            &partner_figures,
        );
        row(
            "export of one shipment, each decision with its inclusion proof (`GET /v1/audit/export?shipment_id=`), other parcels",
            &export_figures,
        );
        row(
            &format!("baseline: one random 4 KiB read of the log's file, {LOG_READS_PER_EXPORT} for each export (pread, just before them; cold after `--drop-caches`)"),
            &log_disk,
        );
        row("DSAR by recipient_ref", &dsar_figures);
        row("RoPA for a month", &ropa_figures);
        row(
            "baseline: one random 4 KiB read of the audit file (pread, same disk, just before)",
            &disk,
        );
    }
    Ok(())
}

/// Writes the kernel's dirty pages back and drops its page cache (root only).
fn drop_page_cache() -> anyhow::Result<()> {
    let synced = std::process::Command::new("sync")
        .status()
        .context("running sync")?;
    anyhow::ensure!(synced.success(), "sync failed: {synced}");
    std::fs::write(DROP_CACHES, "3\n")
        .with_context(|| format!("dropping the page cache (needs root): writing {DROP_CACHES}"))
}

/// The kernel's switch that drops its page cache.
pub const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// Random reads of the log's file timed for each export in its baseline (an export of a
/// parcel's ten decisions reads ~170 pages cold, `strace -e pread64`).
const LOG_READS_PER_EXPORT: usize = 20;

/// One parcel's access history, and its export with proofs.
const HISTORY: &str = "/v1/audit/access";
const EXPORT: &str = "/v1/audit/export";

/// `count` requests of `route`, each about a shipment drawn at random.
fn of_parcels(route: &str, rng: &mut Rng, shipments: &[ShipmentId], count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            format!(
                "{route}?shipment_id={}",
                shipments[rng.below(shipments.len())]
            )
        })
        .collect()
}

/// Times `count` reads of one random 4 KiB page of `file` each, through the OS page cache as
/// SQLite reads it: the p99 of a request that must read one page it has not cached is at least
/// this read's.
fn random_reads(file: &std::fs::File, count: usize, rng: &mut Rng) -> anyhow::Result<Figures> {
    use std::os::unix::fs::FileExt;
    const PAGE: u64 = 4096;
    let pages = (file.metadata()?.len() / PAGE).max(1);
    let mut buf = vec![0u8; PAGE as usize];
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let page = rng.next() % pages;
        let t = Instant::now();
        file.read_at(&mut buf, page * PAGE)?;
        latencies.push(t.elapsed());
    }
    Ok(figures(latencies, started.elapsed()))
}

/// The index of the shipment decision `i` of `decisions` (spread evenly over the year, as the
/// `shipments` registrations are) is about: one registered in the `tracked_days` before it, or
/// any when `tracked_days` is 0.
fn tracked_shipment(
    rng: &mut Rng,
    shipments: usize,
    i: usize,
    decisions: usize,
    tracked_days: u32,
) -> usize {
    let shipments = shipments.max(1);
    if tracked_days == 0 {
        return rng.below(shipments);
    }
    // Registered by the decision's time: the first `i / decisions` of the year's shipments.
    let registered = ((i as u128 * shipments as u128) / decisions.max(1) as u128) as usize;
    let window = (shipments * tracked_days as usize / 365).max(1);
    let newest = registered.min(shipments - 1);
    let oldest = newest.saturating_sub(window - 1);
    oldest + rng.below(newest - oldest + 1)
}

/// GETs each path in turn on one connection; returns the mean number of `items` per answer
/// and the latency figures.
fn get_all(url: &str, token: &str, paths: Vec<String>) -> anyhow::Result<(f64, Figures)> {
    let (url, token) = (url.to_owned(), token.to_owned());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(120))
                .finish();
            let mut latencies = Vec::with_capacity(paths.len());
            let mut items = 0usize;
            let started = Instant::now();
            for path in &paths {
                let t = Instant::now();
                let mut res = client
                    .get(format!("{url}{path}"))
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
                let body = res
                    .body()
                    .limit(64 << 20)
                    .await
                    .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
                latencies.push(t.elapsed());
                anyhow::ensure!(res.status().is_success(), "GET {path}: {}", res.status());
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                    items += v["items"].as_array().map_or(0, Vec::len);
                }
            }
            let n = paths.len().max(1) as f64;
            Ok((items as f64 / n, figures(latencies, started.elapsed())))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("load thread panicked"))?
}

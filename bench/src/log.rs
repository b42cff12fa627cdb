//! `consent-ledger bench seed-log` and `bench log`: the verifiable-log rows of SPEC §11 —
//! export with proofs, offline verify, audit-log recompute — and the time to make an inclusion
//! and a consistency proof, on a large seeded log. Seeding is a command of its own so that one
//! 10M-event log serves every run; `bench restart` seeds with the same generator.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use consent_ledger_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM};
use consent_ledger_domain::shipment::ShipmentEvent;
use consent_ledger_domain::values::{
    CarrierCode, CountryCode, DataCategory, PartnerId, Purpose, ShipmentId, ShipperId,
    TrackingNumber,
};
use consent_ledger_domain::SystemClock;
use consent_ledger_store::{Append, NewEvent, Position, Provenance, Store};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{figures, ms};
use consent_ledger_app::export::{write_bundle, Exporter};
use consent_ledger_app::gdpr::filter::AccessFilter;
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};

const CARRIERS: [&str; 4] = ["DHL", "UPS", "GLS", "DPD"];
const COUNTRIES: [&str; 5] = ["DE", "FR", "NL", "AT", "PL"];

/// What [`seed_log`] writes.
pub(crate) struct Seed<'a> {
    pub shipper: ShipperId,
    pub partners: &'a [PartnerId],
    pub shipments: usize,
    pub decisions: usize,
    /// Every this many decisions one is a denial (0: none).
    pub denied_every: usize,
    /// Sign a checkpoint every this many events (0: none).
    pub checkpoint_every: u64,
}

/// Events per append, and appends in flight: the group commit merges the appends waiting when
/// the writer frees up, so several in flight make transactions of ~16k events.
const EVENTS_PER_APPEND: usize = 2_000;
const IN_FLIGHT: usize = 8;

/// Appends `seed.shipments` shipment registrations, then `seed.decisions` access decisions
/// spread round-robin over the partners and shipments, one millisecond apart in decision time
/// (so time windows select runs of neighbouring positions). Durable, through the real store
/// (leaves and subtrees included), several appends in flight. Returns the log's size.
pub(crate) async fn seed_log(
    state: &Arc<AppState>,
    seed: &Seed<'_>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<u64> {
    let provenance = Provenance {
        actor: "bench".into(),
        request_id: "seed".into(),
    };
    let mut writes = JoinSet::new();
    let mut pending = Vec::with_capacity(EVENTS_PER_APPEND);
    let mut handed = 0u64;
    let mut next_checkpoint = seed.checkpoint_every;
    let submit = |writes: &mut JoinSet<_>, events: Vec<NewEvent>| {
        let store = state.store.clone();
        let append = Append::plain(events, provenance.clone());
        writes.spawn(async move { store.append(append).await.map(|_| ()) });
    };
    let now = Utc::now();
    let mut shipments = Vec::with_capacity(seed.shipments);
    let total = seed.shipments + seed.decisions;
    for i in 0..total {
        let event = if i < seed.shipments {
            let id = ShipmentId::from_uuid(Uuid::now_v7());
            shipments.push(id);
            let event = ShipmentEvent::ShipmentRegistered {
                id,
                shipper: seed.shipper,
                carrier: CarrierCode::parse(CARRIERS[i % 4])?,
                tracking_number: TrackingNumber::parse(format!("S{i:012}"))?.into(),
                destination_country: CountryCode::parse(COUNTRIES[i % 5])?,
                recipient_ref: None,
                registered_at: now,
            };
            NewEvent::from_domain(&event, "shipment", &id.to_string(), 1)?
        } else {
            let j = i - seed.shipments;
            let decision_id = Uuid::now_v7();
            let partner = seed.partners[j % seed.partners.len().max(1)];
            let shipment = shipments[j % shipments.len().max(1)];
            let decided_at = now + chrono::Duration::milliseconds(j as i64);
            let event = if seed.denied_every > 0 && j % seed.denied_every == seed.denied_every - 1 {
                AccessEvent::TrackingAccessDenied {
                    authorization: None,
                    channel: None,
                    decision_id,
                    partner,
                    shipment: Some(shipment),
                    carrier: None,
                    consent: None,
                    tracking_number: None,
                    purpose: Purpose::InsuranceClaim,
                    requested: vec![DataCategory::Location],
                    reason: DenyReason::CategoryNotCovered,
                    on_behalf_of: None,
                    decided_at,
                }
            } else {
                AccessEvent::TrackingAccessAllowed {
                    authorizations: Vec::new(),
                    dpa: None,
                    body_sha256: None,
                    channel: None,
                    decision_id,
                    partner,
                    shipment,
                    purpose: Purpose::InsuranceClaim,
                    requested: vec![DataCategory::StatusEvents],
                    granted: vec![DataCategory::StatusEvents],
                    consents: Vec::new(),
                    on_behalf_of: None,
                    decided_at,
                }
            };
            NewEvent::from_presorted_domain(&event, ACCESS_STREAM, &decision_id.to_string(), 1)?
        };
        pending.push(event);
        if pending.len() == EVENTS_PER_APPEND || i + 1 == total {
            while writes.len() >= IN_FLIGHT {
                writes.join_next().await.context("append task")???;
            }
            handed += pending.len() as u64;
            submit(&mut writes, std::mem::take(&mut pending));
            progress(handed);
            if seed.checkpoint_every > 0 && handed >= next_checkpoint {
                while let Some(done) = writes.join_next().await {
                    done??;
                }
                consent_ledger_app::checkpoint::sign_checkpoint(state).await?;
                next_checkpoint += seed.checkpoint_every;
            }
        }
    }
    while let Some(done) = writes.join_next().await {
        done??;
    }
    Ok(state.store.next_position().await?.get())
}

#[derive(Debug, Clone, Args)]
pub struct SeedLogArgs {
    /// The data directory to create (it must not hold a log yet).
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    pub shipments: usize,
    #[arg(long, default_value_t = 9_000_000)]
    pub decisions: usize,
    /// Partners the decisions are spread over.
    #[arg(long, default_value_t = 10)]
    pub partners: usize,
    /// Sign a checkpoint every this many events.
    #[arg(long, default_value_t = 1_000_000)]
    pub checkpoint_every: u64,
}

/// `bench seed-log`: a log of shipments and decisions (one in ten denied) in a fresh data
/// directory, with checkpoints along the way and a read-model snapshot at the end, for
/// `bench log` and the `export`/`verify`/`audit-log` commands.
pub async fn seed_cmd(args: SeedLogArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.dir.join("ledger.db").exists(),
        "{} already holds a log",
        args.dir.display()
    );
    let options = consent_ledger_app::state::StoreOptions {
        data_dir: args.dir.clone(),
        database_url: None,
    };
    let f = crate::fixture::fixture(&options, args.partners, 0).await?;
    let shipper = f.shipper()?;
    let seed = Seed {
        shipper,
        partners: &f.partners,
        shipments: args.shipments,
        decisions: args.decisions,
        denied_every: 10,
        checkpoint_every: args.checkpoint_every,
    };
    let bar = crate::progress_bar((args.shipments + args.decisions) as u64, "seeding");
    let started = Instant::now();
    let size = seed_log(&f.state, &seed, |n| bar.set_position(n)).await?;
    consent_ledger_app::checkpoint::sign_checkpoint(&f.state).await?;
    bar.finish_and_clear();
    let seeded = started.elapsed();
    let options = StoreOptions {
        data_dir: args.dir.clone(),
        database_url: None,
    };
    f.state.projector.catch_up().await?;
    f.state
        .projector
        .save_snapshot(&options.snapshot_path())
        .await?;
    eprintln!(
        "seeded {size} events in {:.1} s ({:.0} events/s, durable, with the Merkle tree); {} checkpoints; snapshot written",
        seeded.as_secs_f64(),
        size as f64 / seeded.as_secs_f64(),
        f.state.store.checkpoints().await?.len()
    );
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// A data directory written by `bench seed-log`.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Where the bundles to verify are written (removed afterwards).
    #[arg(long)]
    pub scratch: PathBuf,
    /// Inclusion and consistency proofs to time, each.
    #[arg(long, default_value_t = 2_000)]
    pub proofs: usize,
    /// Decisions in the dense (time-window) bundle.
    #[arg(long, default_value_t = 1_000_000)]
    pub window: i64,
    /// One-shipment bundles to time through the GDPR projection's index.
    #[arg(long, default_value_t = 200)]
    pub shipments: usize,
    /// Skip the full export (the longest step).
    #[arg(long)]
    pub skip_full_export: bool,
}

/// Counts what is written, keeping nothing: the whole log's bundle is larger than the disk.
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A small deterministic generator (SplitMix64), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Exports with `filter` into `out`; returns the events written.
async fn export(
    state: &Arc<AppState>,
    filter: AccessFilter,
    since: Option<u64>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let exporter = Exporter::start(state.clone(), filter, since)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(write_bundle(exporter, out, |_, _| {}).await?.0)
}

/// CPU time this process has used, all threads (Linux: /proc/self/stat, in clock ticks of
/// 1/100 s).
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = stat.get(stat.rfind(')')? + 2..)?.to_owned();
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>())
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Wall and CPU time of one step, printed as a row of the table.
struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn row(&self, step: &str, events: u64, bytes: Option<u64>, bold: bool) {
        let wall = self.wall.elapsed();
        let cpu = cpu_time().saturating_sub(self.cpu);
        let per_second = rate(events, wall);
        let per_cpu = rate(events, cpu);
        let rate_text = if bold {
            format!("**{per_second:.0}**")
        } else {
            format!("{per_second:.0}")
        };
        println!(
            "| {step} | {events} | {:.1} s | {rate_text} | {:.1} s | {per_cpu:.0} | {} |",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            bytes.map_or(String::new(), |b| format!(
                "{:.0}",
                b as f64 / (1 << 20) as f64 / wall.as_secs_f64()
            )),
        );
    }
}

fn bundle_file(path: &Path) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, file))
}

/// `bench log`: SPEC §11 "export with proofs / offline verify / audit-log recompute" and proof
/// generation at the seeded log's size.
pub async fn log(args: LogArgs) -> anyhow::Result<()> {
    // The process of `consent-ledger export` and `audit-log`, whose work this measures.
    consent_ledger_app::bulk::without_huge_pages();
    let options = StoreOptions {
        data_dir: args.data_dir.clone(),
        database_url: None,
    };
    std::fs::create_dir_all(&args.scratch)?;
    let t = Instant::now();
    let state = AppState::open(&options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let opened = t.elapsed();
    let size = state.store.next_position().await?.get();
    let checkpoints = state.store.checkpoints().await?;
    let since = checkpoints.first().map(|(s, _)| *s).filter(|s| *s < size);
    let (partner, first_decision_at) = first_decision(&state).await?;
    eprintln!(
        "log of {size} events, {} checkpoints; opened in {:.2} s",
        checkpoints.len(),
        opened.as_secs_f64()
    );
    let vkey: consent_ledger_audit::note::VerifierKey = state
        .log_key
        .vkey()
        .parse()
        .map_err(|e| anyhow::anyhow!("vkey: {e}"))?;
    let trusted = since
        .and_then(|s| checkpoints.iter().find(|(size, _)| *size == s))
        .map(|(_, note)| vkey.open_checkpoint(note))
        .transpose()
        .map_err(|e| anyhow::anyhow!("checkpoint: {e}"))?;

    println!("log of {size} events ({} checkpoints)", checkpoints.len());
    println!();
    println!("| step | events | wall time | events/s | CPU time (all threads) | events per CPU-second | MiB/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");

    // Baseline: reading every page of the log, as the export does, and nothing else.
    let clock = Clock::start();
    read_every_event(&state.store, size, false).await?;
    clock.row(
        "baseline: read every event (`Store::read_range`, pages of 16,384, one at a time)",
        size,
        None,
        false,
    );
    // The same read as `audit-log` makes it: on SQLite a statement per 1,024 events.
    let clock = Clock::start();
    read_every_event(&state.store, size, true).await?;
    clock.row(
        "read every event in pages (`Store::read_pages`, as audit-log)",
        size,
        None,
        false,
    );

    if !args.skip_full_export {
        let mut sink = Counting(0);
        let clock = Clock::start();
        let events = export(&state, AccessFilter::default(), None, &mut sink).await?;
        clock.row(
            "**export, no filter**: every decision with its proof (to a counting sink)",
            events,
            Some(sink.0),
            true,
        );
    }

    let window_file = args.scratch.join("window.ndjson");
    let window = AccessFilter {
        from: Some(first_decision_at),
        to: Some(first_decision_at + chrono::Duration::milliseconds(args.window)),
        ..AccessFilter::default()
    };
    let mut out = bundle_file(&window_file)?;
    let clock = Clock::start();
    let window_events = export(&state, window.clone(), None, &mut out).await?;
    drop(out);
    let window_bytes = std::fs::metadata(&window_file)?.len();
    clock.row(
        &format!("export from/to: {window_events} neighbouring decisions, to a file (the scan passes over all {size})"),
        window_events,
        Some(window_bytes),
        true,
    );

    // A narrow window in the middle of the log (seeded decisions are a millisecond apart): a
    // hundredth of the log's events, scanned here, through the time index below.
    let narrow = AccessFilter {
        from: Some(first_decision_at + chrono::Duration::milliseconds((size / 4) as i64)),
        to: Some(
            first_decision_at + chrono::Duration::milliseconds((size / 4 + size / 100) as i64),
        ),
        ..AccessFilter::default()
    };
    let projected = state.store.gdpr_position().await?.get();
    let mut sink = Counting(0);
    let clock = Clock::start();
    let narrow_events = export(&state, narrow.clone(), None, &mut sink).await?;
    clock.row(
        &format!(
            "export from/to: a window of {narrow_events} decisions in the middle of the log, the \
             GDPR projection at {projected} (every position scanned; to a counting sink)"
        ),
        narrow_events,
        Some(sink.0),
        true,
    );

    let partner_file = args.scratch.join("partner.ndjson");
    let by_partner = AccessFilter {
        partner: Some(partner),
        ..AccessFilter::default()
    };
    let mut out = bundle_file(&partner_file)?;
    let clock = Clock::start();
    let partner_events = export(&state, by_partner, since, &mut out).await?;
    drop(out);
    let partner_bytes = std::fs::metadata(&partner_file)?.len();
    clock.row(
        &format!(
            "export partner_id (every 10th decision), since={}, to a file",
            since.unwrap_or(0)
        ),
        partner_events,
        Some(partner_bytes),
        true,
    );

    let shipment = first_shipment(&state).await?;
    let one = AccessFilter {
        shipment: Some(shipment),
        ..AccessFilter::default()
    };
    let mut sink = Counting(0);
    let clock = Clock::start();
    let one_events = export(&state, one, None, &mut sink).await?;
    clock.row(
        &format!(
            "export shipment_id: one shipment's registration and decisions among {size} events, \
             the GDPR projection at {projected} (the log after it is scanned)"
        ),
        one_events,
        Some(sink.0),
        false,
    );

    // The GDPR projection as `serve` keeps it, then one shipment's bundle through its index.
    let clock = Clock::start();
    state.gdpr.catch_up().await?;
    clock.row(
        &format!("GDPR projection: catch up from {projected} to {size}"),
        size - projected,
        None,
        false,
    );
    let mut rng = Rng(0x5eed_0018);
    let mut times = Vec::with_capacity(args.shipments);
    let mut events = 0;
    let t = Instant::now();
    for shipment in random_shipments(&state, args.shipments, &mut rng, size).await? {
        let filter = AccessFilter {
            shipment: Some(shipment),
            ..AccessFilter::default()
        };
        let mut sink = Counting(0);
        let s = Instant::now();
        events += export(&state, filter, None, &mut sink).await?;
        times.push(s.elapsed());
    }
    let one = figures(times, t.elapsed());
    println!();
    println!(
        "| export shipment_id through the GDPR projection's index, {} random shipments, {:.1} events each | p50 | p99 | bundles/s |",
        args.shipments,
        events as f64 / args.shipments.max(1) as f64
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| log of {size} events | {:.1} ms | {:.1} ms | {:.0} |",
        ms(one.p50),
        ms(one.p99),
        one.per_second
    );
    println!();
    println!("| step | events | wall time | events/s | CPU time (all threads) | events per CPU-second | MiB/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let by_partner = AccessFilter {
        partner: Some(partner),
        ..AccessFilter::default()
    };
    let mut sink = Counting(0);
    let clock = Clock::start();
    let indexed = export(&state, by_partner, since, &mut sink).await?;
    clock.row(
        "export partner_id through the GDPR projection's index (to a counting sink)",
        indexed,
        Some(sink.0),
        true,
    );

    for (filter, what) in [
        (narrow, "the window of the middle"),
        (window, "the window of every decision"),
    ] {
        let mut sink = Counting(0);
        let clock = Clock::start();
        let events = export(&state, filter, None, &mut sink).await?;
        clock.row(
            &format!(
                "export from/to through the GDPR projection's time index: {what}, {events} \
                 decisions (its span of the log scanned; to a counting sink)"
            ),
            events,
            Some(sink.0),
            true,
        );
    }

    for (file, bytes, trusted, what) in [
        (
            &window_file,
            window_bytes,
            None,
            "the from/to bundle (neighbours)",
        ),
        (
            &partner_file,
            partner_bytes,
            trusted.as_ref(),
            "the partner bundle (every 10th position), --since the first checkpoint",
        ),
    ] {
        let clock = Clock::start();
        let verified = consent_ledger_audit::verify::verify_reader(
            std::fs::File::open(file)?,
            &vkey,
            trusted,
            &|_| {},
        )?;
        clock.row(
            &format!("**verify** {what}"),
            verified.events as u64,
            Some(bytes),
            true,
        );
    }
    std::fs::remove_file(&window_file)?;
    std::fs::remove_file(&partner_file)?;

    let clock = Clock::start();
    let report = consent_ledger_app::audit_log::audit(&options, |_, _| {}).await?;
    clock.row(
        &format!(
            "**audit-log**: every leaf recomputed from its event and compared, the root at {} checkpoints re-checked",
            report.checkpoints_checked
        ),
        report.events,
        None,
        true,
    );
    println!();

    let mut rng = Rng(0x5eed_0004);
    let mut inclusion = Vec::with_capacity(args.proofs);
    let t = Instant::now();
    for _ in 0..args.proofs {
        let position = rng.below(size);
        let s = Instant::now();
        state.store.inclusion_proof(position, size).await?;
        inclusion.push(s.elapsed());
    }
    let inclusion = figures(inclusion, t.elapsed());
    let mut consistency = Vec::with_capacity(args.proofs);
    let t = Instant::now();
    for _ in 0..args.proofs {
        let old = 1 + rng.below(size - 1);
        let s = Instant::now();
        state.store.consistency_proof(old, size).await?;
        consistency.push(s.elapsed());
    }
    let consistency = figures(consistency, t.elapsed());
    println!(
        "| proof at tree size {size} (`Store`, from stored subtrees, random positions) | p50 | p99 | proofs/s |"
    );
    println!("|---|---:|---:|---:|");
    for (name, f) in [
        ("inclusion, PATH(m, D[n])", inclusion),
        ("consistency, PROOF(m, D[n])", consistency),
    ] {
        println!(
            "| {name} | {:.3} ms | {:.3} ms | {:.0} |",
            ms(f.p50),
            ms(f.p99),
            f.per_second
        );
    }
    Ok(())
}

/// Reads the log's `size` events in pages of 16,384, with [`Store::read_pages`] if `pages`,
/// else [`Store::read_range`].
async fn read_every_event(store: &Store, size: u64, pages: bool) -> anyhow::Result<()> {
    let mut from = 0u64;
    while from < size {
        let from_here = Position::new(from);
        let page = if pages {
            store.read_pages(from_here, 1 << 14).await?
        } else {
            store.read_range(from_here, 1 << 14).await?
        };
        let Some(last) = page.last() else { break };
        from = last.position.get() + 1;
    }
    Ok(())
}

/// A partner of the seeded decisions and the first decision's time.
async fn first_decision(state: &AppState) -> anyhow::Result<(PartnerId, chrono::DateTime<Utc>)> {
    let mut from = 0;
    loop {
        let page = state.store.read_range(Position::new(from), 10_000).await?;
        let Some(last) = page.last() else {
            anyhow::bail!("the log holds no decision");
        };
        for e in &page {
            if let Some(AccessEvent::TrackingAccessAllowed {
                partner,
                decided_at,
                ..
            }) = consent_ledger_app::gdpr::filter::access_event(e)
            {
                return Ok((partner, decided_at));
            }
        }
        from = last.position.get() + 1;
    }
}

/// `n` shipments drawn at random from the log's registrations.
async fn random_shipments(
    state: &AppState,
    n: usize,
    rng: &mut Rng,
    size: u64,
) -> anyhow::Result<Vec<ShipmentId>> {
    let mut found = Vec::with_capacity(n);
    let mut tries = 0u64;
    while found.len() < n {
        tries += 1;
        anyhow::ensure!(
            tries < 1_000 * n as u64 + 1_000,
            "the log holds few shipments"
        );
        let page = state
            .store
            .read_range(Position::new(rng.below(size)), 1)
            .await?;
        if let Some(id) = page
            .first()
            .filter(|e| e.stream_type == "shipment")
            .and_then(|e| e.stream_id.parse().ok())
        {
            found.push(id);
        }
    }
    Ok(found)
}

/// The first registered shipment.
async fn first_shipment(state: &AppState) -> anyhow::Result<ShipmentId> {
    let page = state.store.read_range(Position::ZERO, 10_000).await?;
    page.iter()
        .find(|e| e.stream_type == "shipment")
        .and_then(|e| e.stream_id.parse().ok())
        .context("the log holds no shipment")
}

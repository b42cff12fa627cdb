//! `bench http`: decisions as the outside world measures them — the real `consent-ledger serve`
//! process (with the GDPR audit projection following the log, as it always does), an external
//! load generator (wrk) on the same machine, and in the same run the server's own ceiling
//! (`GET /healthz`, an answer doing no work), the disk's fsync floor, what a page of a growing
//! file costs the machine ([`PageCache`]) and, measured first, the floor of a durable answer on
//! this HTTP stack, into a plain file and as an SQLite row ([`crate::floor`]).
//!
//! The fixture (partners, shipments, shipper-wide consents) is written through the real use
//! cases into a fresh data directory, which the server then opens.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_domain::values::Role;
use consent_ledger_domain::SystemClock;
use serde_json::json;

use crate::cpu::{PerRequest, Sample, Stage};
use crate::decisions::{single_decisions, Requests};
use crate::fixture::{FloorCommit, ServeProcess};

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// A fresh directory for the server's data (created; must not hold a log).
    #[arg(long)]
    pub dir: PathBuf,
    /// The load generator.
    #[arg(long, default_value = "wrk")]
    pub wrk: String,
    /// Seconds each load runs.
    #[arg(long, default_value_t = 20)]
    pub seconds: u32,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    /// Connections of the single-decision and healthz loads.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// Connections of the batch load (1,000 decisions a call).
    #[arg(long, default_value_t = 8)]
    pub batch_connections: u32,
    /// Connections of the single-decision load run last, once the GDPR projection has caught
    /// up, to show whether it keeps up at that rate (its lag when the load ends).
    #[arg(long, default_value_t = 16)]
    pub following_connections: u32,
    /// Seconds of the last load: single decisions on `connections`, long enough to hold the
    /// kernel's writeback of the GDPR projection's file (every 30 s), with its longest answer.
    #[arg(long, default_value_t = 60)]
    pub steady_seconds: u32,
    #[arg(long, default_value_t = 100)]
    pub partners: usize,
    #[arg(long, default_value_t = 10_000)]
    pub shipments: usize,
}

/// `bench load`: one load through `serve` on a fresh copy of a data directory `bench http`
/// left, measured as `bench http` measures its loads — what the experiments that compare two
/// builds or two directories alternately run (BENCHMARKS.md cites them).
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// A data directory `bench http` left (its log and its `wrk/` scripts); only read.
    #[arg(long)]
    pub from: PathBuf,
    /// Where the copy goes (replaced, and removed after the load).
    #[arg(long, default_value = "/var/tmp/bench-load")]
    pub scratch: PathBuf,
    /// The directory's `single.lua` on 64 connections, or its `batch.lua` (1,000 decisions a
    /// call) on 8.
    #[arg(long, value_enum)]
    pub load: LoadKind,
    /// Seconds of the load, after 3 s of warm-up.
    #[arg(long, default_value_t = 15)]
    pub seconds: u32,
    /// Printed first on the line, to tell the runs apart.
    #[arg(long, default_value = "load")]
    pub label: String,
    /// The load generator.
    #[arg(long, default_value = "wrk")]
    pub wrk: String,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LoadKind {
    Single,
    Batch,
}

/// Runs [`LoadArgs`]'s load and prints one line: decisions/s, p99, a decision's CPU by stage
/// of the server and the bytes its group commit wrote.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(&args.scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&args.from)
        .arg(&args.scratch)
        .status()?;
    anyhow::ensure!(copied.success(), "copying {}", args.from.display());
    let (script, connections, per_call) = match args.load {
        LoadKind::Single => ("single.lua", 64, 1.0),
        LoadKind::Batch => ("batch.lua", 8, 1000.0),
    };
    let script = args.scratch.join("wrk").join(script);
    let wrk = (args.wrk.as_str(), args.threads);
    let server = ServeProcess::start(&args.scratch, None)?;
    let url = format!("{}/", server.url);
    run_wrk(wrk, connections, Some(&script), &url, 3)?;
    let before = Sample::take(server.pid())?;
    let measured = run_wrk(wrk, connections, Some(&script), &url, args.seconds)?;
    let after = Sample::take(server.pid())?;
    drop(server);
    std::fs::remove_dir_all(&args.scratch)?;
    let each = before.per_request(&after, measured.requests * per_call);
    println!(
        "{} decisions/s {:.0} p99 {:.2} ms; µs a decision: HTTP {:.2}, group commit {:.2}, log \
         reads {:.2}, GDPR projection {:.2}; the group commit wrote {} a decision; {} answers \
         not 2xx",
        args.label,
        measured.requests_per_second * per_call,
        ms(measured.p99),
        each.of(Stage::Http),
        each.of(Stage::LogWriter),
        each.of(Stage::LogReads),
        each.of(Stage::GdprProjection),
        each.written_by(Stage::LogWriter)
            .map_or("(not readable)".to_owned(), |(calls, _)| format!(
                "{calls:.0} B"
            )),
        measured.errors,
    );
    Ok(())
}

/// Events the log holds that the GDPR projection has not applied yet.
async fn lag(store: &consent_ledger_store::Store) -> anyhow::Result<u64> {
    let end = store.next_position().await?.get();
    Ok(end.saturating_sub(store.gdpr_position().await?.get()))
}

/// Waits until the GDPR projection has applied every event committed now (the server's own
/// follower applies them; this only reads), at most `limit`.
async fn wait_caught_up(
    store: &consent_ledger_store::Store,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while lag(store).await? > 0 {
        anyhow::ensure!(
            started.elapsed() < limit,
            "the GDPR projection did not catch up within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// What wrk reported of one load.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Requests answered during the load.
    requests: f64,
    requests_per_second: f64,
    p50: Duration,
    p99: Duration,
    /// The longest answer.
    max: Duration,
    errors: u64,
}

pub async fn http(args: HttpArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.dir.join("ledger.db").exists(),
        "{} already holds a log",
        args.dir.display()
    );
    std::fs::create_dir_all(&args.dir)?;
    let version = Command::new(&args.wrk).arg("--version").output();
    anyhow::ensure!(
        version.is_ok(),
        "the load generator `{}` is not installed (apt-get install wrk)",
        args.wrk
    );

    let options = StoreOptions {
        data_dir: args.dir.clone(),
        database_url: None,
    };
    let fixture = {
        let state =
            AppState::open(&options, Arc::new(SystemClock), ServiceConfig::default()).await?;
        let officer = crate::fixture::register_principal(
            &state,
            Role::PrivacyOfficer,
            "Privacy officer",
            None,
        )
        .await?
        .token;
        let f = crate::fixture::seeded(state, args.partners, args.shipments).await?;
        (
            f.partner_tokens,
            f.shipments,
            f.gateway,
            f.partners,
            officer,
        )
    };
    let (tokens, shipments, gateway, partners, officer) = fixture;
    let viewed = shipments
        .first()
        .map(ToString::to_string)
        .context("no shipments")?;
    let floor = fsync_floor(&args.dir, Duration::from_secs(3))?;
    let page_cache = PageCache::measure(&args.dir)?;

    let scripts = args.dir.join("wrk");
    std::fs::create_dir_all(&scripts)?;
    let single = single_decisions(tokens, shipments.clone());
    let batch: Requests = Arc::new(move |i: usize| {
        let items: Vec<serde_json::Value> = (0..1000)
            .map(|j| {
                json!({ "partner_id": partners[(i + j) % partners.len()],
                        "shipment_id": shipments[(i * 1000 + j) % shipments.len()],
                        "purpose": "insurance_claim", "data_categories": ["status_events"] })
            })
            .collect();
        (
            "/v1/decisions/batch",
            gateway.clone(),
            json!({ "items": items }),
        )
    });
    let single_script = script(&scripts.join("single.lua"), &single, 10_000)?;
    let batch_script = script(&scripts.join("batch.lua"), &batch, 50)?;
    // Each load with the CPU its requests took: the server's threads by stage, the machine.
    let load_on = |server: &ServeProcess,
                   connections: u32,
                   script: Option<&Path>,
                   path: &str,
                   seconds: u32| {
        let before = Sample::take(server.pid())?;
        let load = run_wrk(
            (&args.wrk, args.threads),
            connections,
            script,
            &format!("{}{path}", server.url),
            seconds,
        )?;
        let after = Sample::take(server.pid())?;
        let spent = before.per_request(&after, load.requests);
        anyhow::Ok((load, spent))
    };

    // The floor first, alone on the machine: the same requests answered by a server that only
    // commits their bodies (`crate::floor`), and by one that only hands them to its commit
    // thread.
    let floor_dir = args.dir.join("durable-floor");
    let floors = {
        let durable = ServeProcess::durable_floor(&floor_dir, FloorCommit::File)?;
        load_on(&durable, args.connections, Some(&single_script), "/", 3)?;
        let nothing = load_on(&durable, args.connections, None, "/healthz", args.seconds)?;
        let committed = load_on(
            &durable,
            args.connections,
            Some(&single_script),
            "/",
            args.seconds,
        )?;
        drop(durable);
        let on_its_own = |commit| {
            let server = ServeProcess::durable_floor(&floor_dir, commit)?;
            load_on(
                &server,
                args.connections,
                Some(&single_script),
                "/",
                args.seconds,
            )
        };
        let handed_off = on_its_own(FloorCommit::HandOff)?;
        let in_sqlite = on_its_own(FloorCommit::SqliteRow)?;
        std::fs::remove_dir_all(&floor_dir)?;
        anyhow::ensure!(
            [&nothing, &handed_off, &committed, &in_sqlite]
                .iter()
                .all(|(load, _)| load.errors == 0),
            "the durable floor refused a request"
        );
        Floors {
            nothing,
            handed_off,
            committed,
            in_sqlite,
        }
    };

    let server = ServeProcess::start(&args.dir, None)?;
    let url = server.url.clone();
    let wrk = |connections: u32, script: Option<&Path>, path: &str, seconds: u32| {
        load_on(&server, connections, script, path, seconds)
    };

    // Warm up (connections, caches), then healthz, single decisions, batches, healthz again;
    // then, once the GDPR projection has caught up, single decisions at a rate it may keep up
    // with; last, single decisions for long enough to meet the kernel's writeback.
    wrk(args.connections, Some(&single_script), "/", 3)?;
    let (ceiling, ceiling_cpu) = wrk(args.connections, None, "/healthz", args.seconds)?;
    // The log's size, read beside the server as another node would.
    let store = consent_ledger_store::Store::open(&options.location()?).await?;
    let first = store.next_position().await?.get();
    let started = Instant::now();
    let (decisions, decisions_cpu) =
        wrk(args.connections, Some(&single_script), "/", args.seconds)?;
    let (batches, batches_cpu) = wrk(
        args.batch_connections,
        Some(&batch_script),
        "/",
        args.seconds,
    )?;
    let (after, _) = wrk(args.connections, None, "/healthz", args.seconds)?;
    let elapsed = started.elapsed();
    let last = store.next_position().await?.get();
    // What the audit projection had applied when the load ended, and how long it then took
    // to apply the rest (its writer runs at a lower CPU priority: under load it falls behind).
    let projected = store.gdpr_position().await?.get();
    let catching_up = Instant::now();
    while store.gdpr_position().await?.get() < last && catching_up.elapsed().as_secs() < 300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = (store.gdpr_position().await?.get() >= last).then(|| catching_up.elapsed());
    wait_caught_up(&store, Duration::from_secs(300)).await?;
    let (following, _) = wrk(
        args.following_connections,
        Some(&single_script),
        "/",
        args.seconds,
    )?;
    let behind_after = lag(&store).await?;
    // An officer's view of one parcel, asked every 2 s while the last load runs and the
    // projection falls behind it.
    let probe = ViewProbe::start(
        format!("{url}/v1/audit/access?shipment_id={viewed}&limit=10"),
        officer,
    );
    let (steady, _) = wrk(
        args.connections,
        Some(&single_script),
        "/",
        args.steady_seconds,
    )?;
    let behind_steady = lag(&store).await?;
    let views = probe.stop()?;
    drop(server);

    println!(
        "`bench http`: the real `consent-ledger serve`, wrk {} threads, {} s a load, {} partners, \
         {} shipments; the GDPR audit projection follows as `serve` runs it",
        args.threads, args.seconds, args.partners, args.shipments
    );
    println!();
    println!("| load | connections | requests/s | decisions/s | p50 | p99 | longest | non-2xx | ratio to the healthz ceiling |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ceiling_rate = ceiling.requests_per_second.max(after.requests_per_second);
    let steady_name = format!(
        "**`POST /v1/decisions`**, durable, last, for {} s",
        args.steady_seconds
    );
    for (name, connections, load, per) in [
        (
            "`GET /healthz` (the ceiling), before",
            args.connections,
            ceiling,
            0.0,
        ),
        (
            "**`POST /v1/decisions`**, durable, at a rate the projection may keep up with",
            args.following_connections,
            following,
            1.0,
        ),
        (
            "**`POST /v1/decisions`**, durable",
            args.connections,
            decisions,
            1.0,
        ),
        (
            "**`POST /v1/decisions/batch`**, 1,000 a call, durable",
            args.batch_connections,
            batches,
            1000.0,
        ),
        ("`GET /healthz`, after", args.connections, after, 0.0),
        (&steady_name, args.connections, steady, 1.0),
    ] {
        let decided = load.requests_per_second * per;
        println!(
            "| {name} | {connections} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.1} ms | {} | {} |",
            load.requests_per_second,
            if per > 0.0 {
                format!("{decided:.0}")
            } else {
                "–".into()
            },
            ms(load.p50),
            ms(load.p99),
            ms(load.max),
            load.errors,
            if per == 1.0 {
                format!("{:.2}", load.requests_per_second / ceiling_rate)
            } else {
                "–".into()
            }
        );
    }
    println!();
    floors.print(args.connections, ceiling_rate);
    println!();
    println!(
        "fsync floor of this disk, same run: {:.0} appends/s of 4 KiB + fdatasync, p99 {:.2} ms",
        floor.0,
        ms(floor.1)
    );
    page_cache.print();
    println!(
        "log: {} events recorded in {:.0} s of load; the GDPR projection had applied {} of {} when the load ended, {}",
        last - first,
        elapsed.as_secs_f64(),
        projected.min(last),
        last,
        match caught_up {
            Some(took) => format!("and the rest {:.1} s later", took.as_secs_f64()),
            None => "and had not applied the rest 300 s later".into(),
        }
    );
    println!(
        "the GDPR projection with {} connections: caught up when that load began, {} events \
         behind the log when it ended, {:.1} s of that load's decisions (it applies pages of up to 5,000 \
         events, so it is a page behind while decisions arrive even when it keeps up)",
        args.following_connections,
        behind_after,
        behind_after as f64 / following.requests_per_second.max(1.0)
    );
    println!(
        "last, {} connections again for {} s: a window that holds the kernel's writeback of the \
         GDPR projection's file (30 s after its pages were first written), p99 {:.2} ms, the \
         longest answer {:.1} ms",
        args.connections,
        args.steady_seconds,
        ms(steady.p99),
        ms(steady.max)
    );
    let mut took: Vec<Duration> = views.iter().map(|v| v.1).collect();
    took.sort();
    let refused = views.iter().filter(|v| v.0 != 200).count();
    println!(
        "during that load, an officer's view of one parcel's history (`GET \
         /v1/audit/access?shipment_id=…&limit=10`) asked every 2 s after the last answer: {} \
         answers, {} not 200, the fastest {:.1} ms, the median {:.1} ms, the slowest {:.1} ms; \
         the GDPR projection {} events behind the log when the load ended",
        took.len(),
        refused,
        took.first().map_or(0.0, |d| ms(*d)),
        took.get(took.len() / 2).map_or(0.0, |d| ms(*d)),
        took.last().map_or(0.0, |d| ms(*d)),
        behind_steady
    );
    println!();
    let batched = batches_cpu.each_of(1000.0);
    cpu_table(&[
        ("`GET /healthz`, a request", &ceiling_cpu),
        ("`POST /v1/decisions`, a decision", &decisions_cpu),
        ("`POST /v1/decisions/batch`, a decision", &batched),
        ("the floor: `GET`, a request", &floors.nothing.1),
        (
            "the floor: a body handed off, a request",
            &floors.handed_off.1,
        ),
        (
            "the floor: a body committed, a request",
            &floors.committed.1,
        ),
        (
            "the floor: a body committed as an SQLite row, a request",
            &floors.in_sqlite.1,
        ),
    ]);
    println!();
    written_table(&[
        ("`POST /v1/decisions`, a decision", &decisions_cpu),
        ("`POST /v1/decisions/batch`, a decision", &batched),
    ]);
    println!();
    println!(
        "While both loads keep the 2 CPUs busy (idle near 0), the ratio to the healthz ceiling \
         is about the machine's CPU per healthz request over its CPU per decision: here {:.1} µs \
         over {:.1} µs = {:.2}. A ratio of 0.5 needs a decision to cost the whole machine at most \
         twice what a healthz request costs it, {:.1} µs, of which the load generator and the \
         kernel outside the server take {:.1} µs in this run.",
        ceiling_cpu.machine_busy,
        decisions_cpu.machine_busy,
        ceiling_cpu.machine_busy / decisions_cpu.machine_busy.max(f64::MIN_POSITIVE),
        2.0 * ceiling_cpu.machine_busy,
        decisions_cpu.outside(),
    );
    println!();
    println!(
        "A body committed as an SQLite row and nothing else (the floor's `--sqlite`) costs the \
         machine {:.1} µs a request, {:.2} of the {:.1} µs a ratio of 0.5 allows a decision, and \
         answers {:.2} of `serve`'s healthz ceiling: what is left of that ratio for the token, \
         the body's JSON, the decision, its event's row, leaf and nodes, and the GDPR projection.",
        floors.in_sqlite.1.machine_busy,
        floors.in_sqlite.1.machine_busy / (2.0 * ceiling_cpu.machine_busy).max(f64::MIN_POSITIVE),
        2.0 * ceiling_cpu.machine_busy,
        floors.in_sqlite.0.requests_per_second / ceiling_rate.max(f64::MIN_POSITIVE),
    );
    println!();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let at_most = |us: f64| 1e6 / us.max(f64::MIN_POSITIVE);
    println!(
        "What bounds each rate at the CPU it took: the machine's {cpus:.0} CPUs answer at most \
         {:.0} healthz requests/s at {:.1} µs each (measured {:.0}/s), {:.0} single decisions/s at \
         {:.1} µs (measured {:.0}/s), {:.0} batched decisions/s at {:.1} µs (measured {:.0}/s); the \
         group commit, one thread, at most {:.0} batched decisions/s at its {:.1} µs a decision.",
        cpus * at_most(ceiling_cpu.machine_busy),
        ceiling_cpu.machine_busy,
        ceiling.requests_per_second,
        cpus * at_most(decisions_cpu.machine_busy),
        decisions_cpu.machine_busy,
        decisions.requests_per_second,
        cpus * at_most(batched.machine_busy),
        batched.machine_busy,
        batches.requests_per_second * 1000.0,
        at_most(batched.of(Stage::LogWriter)),
        batched.of(Stage::LogWriter),
    );
    anyhow::ensure!(
        decisions.errors == 0 && batches.errors == 0 && steady.errors == 0,
        "some decisions were refused: see the non-2xx column"
    );
    anyhow::ensure!(refused == 0, "a view was refused during the load");
    Ok(())
}

/// The loads of the durable floor ([`crate::floor`]), each with the CPU its requests took.
struct Floors {
    /// `GET`, answered with nothing: the floor server's own ceiling.
    nothing: (Load, PerRequest),
    /// The single decisions' requests, each body handed to the commit thread and answered.
    handed_off: (Load, PerRequest),
    /// The same, each body written and fdatasynced (one sync for all waiting) first.
    committed: (Load, PerRequest),
    /// The same, each body committed as a row of an SQLite table opened as the log's is (one
    /// transaction for all waiting) first.
    in_sqlite: (Load, PerRequest),
}

impl Floors {
    fn print(&self, connections: u32, ceiling: f64) {
        let own = self.nothing.0.requests_per_second;
        println!(
            "The floor of a durable answer, same run, before the server started: the same \
             requests (`single.lua`) answered by `consent-ledger-bench durable-floor` — actix-web \
             as `serve` runs it, whose only work is to hand each body to one commit thread, \
             which writes all the bodies waiting into a preallocated file, calls fdatasync once \
             for them and then lets their answers go (no JSON read, no token, no decision, no \
             log, no Merkle tree, no projection): what any durable answer on this stack costs \
             at least; and the same server committing each body instead as a row of an SQLite \
             table opened as the log's is (WAL, `synchronous=FULL`), all the bodies waiting in \
             one transaction by the log's own one-call commit (`--sqlite`): the least a durable \
             answer costs with the log in SQLite, as SPEC §9 keeps it."
        );
        println!();
        println!("| load on the floor server | connections | requests/s | p50 | p99 | ratio to its own `GET` | ratio to `serve`'s healthz ceiling |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (name, (load, _)) in [
            ("`GET`, answered with nothing", &self.nothing),
            (
                "a body handed to the commit thread and answered",
                &self.handed_off,
            ),
            (
                "**a body committed (write + fdatasync, grouped) and answered**",
                &self.committed,
            ),
            (
                "**a body committed as an SQLite row (WAL, `synchronous=FULL`, a transaction for all waiting) and answered**",
                &self.in_sqlite,
            ),
        ] {
            println!(
                "| {name} | {connections} | {:.0} | {:.2} ms | {:.2} ms | {:.2} | {:.2} |",
                load.requests_per_second,
                ms(load.p50),
                ms(load.p99),
                load.requests_per_second / own.max(f64::MIN_POSITIVE),
                load.requests_per_second / ceiling.max(f64::MIN_POSITIVE),
            );
        }
    }
}

/// A view asked again and again on a thread of its own (awc needs actix's runtime), each
/// 2 s after the last answered, until stopped: each answer's status and time.
struct ViewProbe {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Vec<(u16, Duration)>>>,
}

impl ViewProbe {
    fn start(url: String, token: String) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(600))
                    .finish();
                let mut answers = Vec::new();
                while !stopped.load(std::sync::atomic::Ordering::Acquire) {
                    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
                    let asked = Instant::now();
                    let mut res = client
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_err(|e| anyhow::anyhow!("asking the view: {e}"))?;
                    res.body()
                        .limit(64 * 1024 * 1024)
                        .await
                        .map_err(|e| anyhow::anyhow!("reading the view: {e}"))?;
                    answers.push((res.status().as_u16(), asked.elapsed()));
                }
                Ok(answers)
            })
        });
        Self { stop, thread }
    }

    /// Stops asking (after the view in flight answers); the answers.
    fn stop(self) -> anyhow::Result<Vec<(u16, Duration)>> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the view probe panicked"))?
    }
}

/// What each stage of each load wrote, in bytes per request (or per decision of a batch): the
/// log's WAL and its checkpoints, the GDPR projection's file and its WAL.
fn written_table(rows: &[(&str, &PerRequest)]) {
    const STAGES: [Stage; 3] = [Stage::LogWriter, Stage::LogReads, Stage::GdprProjection];
    println!("What each stage wrote, bytes a request of each load (from `/proc/PID/task/*/io`: handed to `write` and its kin, `wchar`, and the pages dirtied for the disk, `write_bytes`; a page SQLite rewrites before the kernel writes it back counts once in the second):");
    println!();
    let stages: Vec<String> = STAGES
        .iter()
        .map(|s| format!("{}: written / for the disk", s.label()))
        .collect();
    println!("| per | {} |", stages.join(" | "));
    println!("|---|{}", "---:|".repeat(stages.len()));
    for (name, spent) in rows {
        let cells: Vec<String> = STAGES
            .iter()
            .map(|s| match spent.written_by(*s) {
                Some((calls, disk)) => format!("{calls:.0} / {disk:.0}"),
                None => "not readable".to_owned(),
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}

/// Where each load's CPU went, in microseconds per request (or per decision of a batch).
fn cpu_table(rows: &[(&str, &PerRequest)]) {
    println!("Where the CPU went, µs per request of each load (the server's threads by stage, from `/proc/PID/task/*/stat`; the machine from `/proc/stat`):");
    println!();
    let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.label()).collect();
    println!(
        "| per | whole machine, busy | server | {} | outside the server (wrk, kernel) | idle | steal |",
        stages.join(" | ")
    );
    println!(
        "|---|---:|---:|{}---:|---:|---:|",
        "---:|".repeat(stages.len())
    );
    for (name, spent) in rows {
        let cells: Vec<String> = spent
            .stages
            .iter()
            .map(|(_, us)| format!("{us:.1}"))
            .collect();
        println!(
            "| {name} | **{:.1}** | {:.1} | {} | {:.1} | {:.1} | {:.1} |",
            spent.machine_busy,
            spent.server(),
            cells.join(" | "),
            spent.outside(),
            spent.machine_idle,
            spent.machine_steal
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A wrk script sending `count` requests of `requests` in turn, each with its bearer token.
/// Each thread formats the requests once, in `init` (where wrk's `Host` header is known), and
/// hands them out as they are: formatting each one as it is sent cost the load generator, on
/// the same two cores as the server, 11–19% of the decisions measured (BENCHMARKS.md).
fn script(path: &Path, requests: &Requests, count: usize) -> anyhow::Result<PathBuf> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "local requests = {{")?;
    for i in 0..count {
        let (route, token, body) = requests(i);
        // Long brackets: JSON holds no `]=]`.
        writeln!(out, "  {{ \"{route}\", \"{token}\", [=[{body}]=] }},")?;
    }
    writeln!(
        out,
        r#"}}
local formatted = {{}}
init = function(args)
  for k, r in ipairs(requests) do
    formatted[k] = wrk.format("POST", r[1], {{["Authorization"] = "Bearer " .. r[2], ["Content-Type"] = "application/json"}}, r[3])
  end
end
local i = 0
request = function()
  i = (i % #formatted) + 1
  return formatted[i]
end"#
    )?;
    out.flush()?;
    Ok(path.to_owned())
}

fn run_wrk(
    (wrk, threads): (&str, u32),
    connections: u32,
    script: Option<&Path>,
    url: &str,
    seconds: u32,
) -> anyhow::Result<Load> {
    let mut command = Command::new(wrk);
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--latency", "--timeout", "10s"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    parse_wrk(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

/// Reads wrk's `--latency` report.
fn parse_wrk(text: &str) -> anyhow::Result<Load> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_second: f64 = field("Requests/sec:").context("Requests/sec")?.parse()?;
    // `100000 requests in 2.00s, 10.00MB read`
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .context("requests in")?
        .0
        .parse()?;
    let p50 = duration(field("50%").context("50%")?)?;
    let p99 = duration(field("99%").context("99%")?)?;
    // `Latency     1.10ms  500.00us  12.00ms   90.00%`: average, deviation, maximum.
    let max = duration(
        field("Latency")
            .and_then(|stats| stats.split_whitespace().nth(2))
            .context("the longest latency")?,
    )?;
    let errors = field("Non-2xx or 3xx responses:")
        .map(str::parse)
        .transpose()?
        .unwrap_or(0);
    let socket_errors = field("Socket errors:").is_some();
    anyhow::ensure!(!socket_errors, "wrk saw socket errors");
    Ok(Load {
        requests,
        requests_per_second,
        p50,
        p99,
        max,
        errors,
    })
}

/// A wrk duration: `812.00us`, `1.23ms`, `2.00s`, `1.00m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a unit")?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        other => anyhow::bail!("unit {other}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Appends of 4 KiB, each followed by fdatasync, for `time`: (appends/s, p99).
fn fsync_floor(dir: &Path, time: Duration) -> anyhow::Result<(f64, Duration)> {
    let path = dir.join("fsync-floor.tmp");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5a_u8; 4096];
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < time {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(t.elapsed());
    }
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    times.sort_unstable();
    let p99 = times
        .get(times.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    Ok((rate, p99))
}

/// What the machine charges for a page of a growing file: every event the log and the GDPR
/// projection append lands in pages the kernel's page cache has never held, which it must find
/// memory for, while a page rewritten (a WAL reused, the last page of a table) is already there.
/// On a virtual machine whose kernel reports the memory it frees to the host (free page
/// reporting, `virtio_balloon`), the host may take it back, and a new page is then a fault the
/// host serves on first touch.
struct PageCache {
    /// Writing a 4 KiB page of a file where it had none (the file growing).
    new_page: Duration,
    /// Writing the same 4 KiB again, the page cached.
    cached_page: Duration,
    /// The kernel's free page reporting, where it has it: `page_reporting_order`, and the
    /// memory reported to the host so far where the kernel counts it (`reported_kib`).
    reporting: Option<(String, Option<u64>)>,
}

const PAGE_REPORTING: &str = "/sys/module/page_reporting/parameters";

/// Bytes written to size [`PageCache`]: 256 MiB in writes of 64 KiB, as a checkpoint's.
const PAGE_CACHE_BYTES: usize = 256 << 20;
const PAGE_CACHE_WRITE: usize = 64 << 10;

impl PageCache {
    fn measure(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("page-cache.tmp");
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0x5a_u8; PAGE_CACHE_WRITE];
        let pass = |file: &mut std::fs::File| -> anyhow::Result<Duration> {
            use std::io::Seek;
            file.rewind()?;
            let started = Instant::now();
            for _ in 0..PAGE_CACHE_BYTES / PAGE_CACHE_WRITE {
                file.write_all(&chunk)?;
            }
            Ok(started.elapsed() / (PAGE_CACHE_BYTES / 4096) as u32)
        };
        let new_page = pass(&mut file)?;
        let cached_page = pass(&mut file)?;
        drop(file);
        std::fs::remove_file(&path)?;
        let parameter = |name: &str| {
            std::fs::read_to_string(Path::new(PAGE_REPORTING).join(name))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let reporting = parameter("page_reporting_order").map(|order| {
            let reported = parameter("reported_kib").and_then(|kib| kib.parse().ok());
            (order, reported)
        });
        Ok(Self {
            new_page,
            cached_page,
            reporting,
        })
    }

    fn print(&self) {
        println!(
            "the page cache of this machine, same run: a 4 KiB page written where a file had none \
             (a file growing, as the log and the GDPR projection's file do) {:.2} µs, the same \
             page written again {:.2} µs (256 MiB in writes of 64 KiB, wall time, nothing else \
             running); {}",
            self.new_page.as_secs_f64() * 1e6,
            self.cached_page.as_secs_f64() * 1e6,
            self.reporting_said()
        );
    }

    /// What the report says of the kernel's free page reporting.
    fn reporting_said(&self) -> String {
        match &self.reporting {
            None => "the kernel has no free page reporting".to_owned(),
            Some((order, Some(0))) => format!(
                "the kernel has free page reporting (page_reporting_order {order}) and has \
                 reported nothing to a host"
            ),
            Some((order, Some(kib))) => format!(
                "the kernel reports the memory it frees to its host (free page reporting, \
                 page_reporting_order {order}, {:.0} GiB reported since boot), which may take \
                 it back: a page of it is then a fault the host serves when next used",
                *kib as f64 / f64::from(1 << 20)
            ),
            Some((order, None)) => format!(
                "the kernel has free page reporting (page_reporting_order {order}; whether a \
                 device reports through it, it does not show): memory it reports to a host may \
                 be taken back, and a page of it is then a fault the host serves when next used"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_a_page_of_a_growing_file_and_of_a_cached_one() {
        let dir = tempfile::tempdir().expect("a directory");
        let measured = PageCache::measure(dir.path()).expect("measured");
        assert!(measured.new_page > Duration::ZERO);
        assert!(measured.cached_page > Duration::ZERO);
        assert!(
            !dir.path().join("page-cache.tmp").exists(),
            "the file is removed"
        );
    }

    #[test]
    fn says_what_the_kernel_reports_to_a_host() {
        let with = |reporting| PageCache {
            new_page: Duration::from_micros(1),
            cached_page: Duration::from_micros(1),
            reporting,
        };
        assert_eq!(
            with(None).reporting_said(),
            "the kernel has no free page reporting"
        );
        assert!(with(Some(("9".into(), Some(0))))
            .reporting_said()
            .contains("reported nothing"));
        let reported = with(Some(("9".into(), Some(3 << 20)))).reporting_said();
        assert!(reported.contains("page_reporting_order 9, 3 GiB reported since boot"));
        assert!(with(Some(("9".into(), None)))
            .reporting_said()
            .contains("does not show"));
    }

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 2s test @ http://127.0.0.1:1/healthz
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  500.00us  12.00ms   90.00%
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    7.50ms
  100000 requests in 2.00s, 10.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  50000.25
Transfer/sec:      5.00MB
";
        let load = parse_wrk(report).expect("parsed");
        assert_eq!(load.requests, 100_000.0);
        assert_eq!(load.requests_per_second, 50000.25);
        assert_eq!(load.p50, Duration::from_micros(812));
        assert_eq!(load.p99, Duration::from_micros(7500));
        assert_eq!(load.max, Duration::from_millis(12));
        assert_eq!(load.errors, 3);
        assert!(parse_wrk("nothing").is_err());
    }
}

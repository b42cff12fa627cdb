//! `consent-ledger-bench …` (`cargo run --release -p consent-ledger-bench -- …`): the
//! project's own benchmark harness (SPEC §11). Each figure is
//! printed beside its baseline measured in the same run, as a Markdown table for
//! BENCHMARKS.md. Nothing here is asserted: benchmarks measure, tests decide.
//!
//! # Layout
//! - this file: the command line, `grants`, the scratch stores, the figures' arithmetic.
//! - [`decisions`]: `decisions`, `check`, `restart` and the HTTP fixture they share.
//! - [`fixture`]: the store, principals and app several benchmarks stand on.
//! - [`log`]: `seed-log` and `log` (export, verify, audit-log, proofs at 10M events).
//! - [`gdpr`]: `gdpr` (the GDPR views on a seeded log).
//! - [`isolation`]: `isolation` (another shipper's decisions over HTTP before and after one
//!   shipper grants many shipper-wide consents).
//! - [`webhooks`]: `webhooks` (partner webhooks delivered to a loopback receiver, and the
//!   decision rate while they are).
//! - [`fanout`]: `fanout` (tracking updates fanned out to subscribed partners: recorded
//!   deliveries per second at ingest, then delivered to the same receiver).
//!
//! `grants`, `decisions`, `isolation`, `erasure`, `webhooks` and `fanout` run on SQLite files
//! in a scratch directory, or, given `--database-url postgres://…`, on fresh databases
//! `bench_…` created on that server (one per measured part, so every baseline starts on an
//! empty table like the product did) and dropped at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use consent_ledger_domain::consent::{Consent, ConsentCommand};
use consent_ledger_domain::principal::{PartnerProfile, Principal, PrincipalCommand};
use consent_ledger_domain::values::{
    ConsentId, CountryCode, DisplayName, DpaRef, PartnerId, PartnerKind, PrincipalId, Role,
    ShipperId,
};
use consent_ledger_domain::{Directory, LedgerServices, SystemClock};
use consent_ledger_projections::Projector;
use consent_ledger_store::cqrs::{CommandBus, CommandMeta, LedgerEventStore};
use consent_ledger_store::testing::ScratchDatabase;
use consent_ledger_store::{baseline, Position, PostgresUrl, Store, StoreLocation, StoredEvent};
use cqrs_es::CqrsFramework;
use uuid::Uuid;

use clap::Parser;
use consent_ledger_app::state::StoreOptions;

mod all;
mod console;
mod cpu;
mod decisions;
mod erasure;
mod fanout;
mod fixture;
mod floor;
mod gdpr;
mod http;
mod isolation;
mod log;
mod webhooks;

/// mimalloc, as the `consent-ledger` binary runs: the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "consent-ledger-bench",
    about = "consent-ledger's benchmarks (SPEC §11); see BENCHMARKS.md"
)]
struct Cli {
    /// Directory for files a benchmark keeps (keys, snapshots).
    #[arg(
        long,
        global = true,
        default_value = "./data",
        env = "CONSENT_LEDGER_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// Run on this PostgreSQL server (fresh `bench_…` databases) instead of SQLite files.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let options = StoreOptions {
        data_dir: cli.data_dir,
        database_url: cli.database_url,
    };
    let result = match cli.command {
        // A server of its own, on actix's runtime, with no Tokio runtime beside it.
        BenchCommand::DurableFloor(args) => crate::floor::run(args),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run(command, &options))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub(crate) fn progress_bar(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {pos}/{len} events ({per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Consent grants per second through the cqrs-es command path (SPEC §11).
    Grants(GrantsArgs),
    /// Decisions over HTTP, single and batched, recorded durably (SPEC §11 rows 1–2).
    Decisions(crate::decisions::DecisionsArgs),
    /// The in-process check and the hot index's memory (SPEC §11 row 3 and memory row).
    Check(crate::decisions::CheckArgs),
    /// Replay rate and time to ready after a restart, with and without a snapshot.
    Restart(crate::decisions::RestartArgs),
    /// Runs the benchmarks behind the SPEC §11 rows and the fan-out row, one after the other,
    /// and writes their reports into BENCHMARKS.md (between its generated markers); with
    /// `--database-url`, the grants and the decisions on PostgreSQL as well.
    All(crate::all::AllArgs),
    /// Decisions through the real `serve` process under an external load generator (wrk),
    /// beside the server's own ceiling (`GET /healthz`), the disk's fsync floor, the cost of a
    /// page of a growing file and the floor of a durable answer on this HTTP stack.
    Http(crate::http::HttpArgs),
    /// One load through `serve` on a fresh copy of a data directory `bench http` left, as
    /// `http` measures its loads: for comparing builds or directories alternately.
    Load(crate::http::LoadArgs),
    /// Write a large log (shipments, decisions, checkpoints, snapshot) for `bench log`.
    SeedLog(crate::log::SeedLogArgs),
    /// Export with proofs, offline verify, audit-log and proof times on a seeded log.
    Log(crate::log::LogArgs),
    /// The GDPR views on a seeded log: one shipment's access history, a DSAR, a month's
    /// RoPA (SPEC §11 "access history of one shipment among 10M events").
    #[command(alias = "audit")]
    Gdpr(crate::gdpr::AuditArgs),
    /// Cost isolation over HTTP: another shipper's decision rate before and after one shipper
    /// grants many shipper-wide consents to other partners (the security issue's figure).
    Isolation(crate::isolation::IsolationArgs),
    /// Personal data (SPEC §12): commitments' cost on the decision path, one erasure at 1M
    /// shipments, the retention sweep rate.
    Erasure(crate::erasure::ErasureArgs),
    /// Partner webhooks (SPEC §13): messages delivered per second to a loopback receiver, a
    /// message's time from grant to receipt, and the decision rate while the worker delivers.
    Webhooks(crate::webhooks::WebhooksArgs),
    /// Tracking fan-out (SPEC §14): updates over HTTP fanned out to 1, 3 and 10 subscribers per
    /// parcel, each a recorded decision and a queued message (recorded deliveries per second),
    /// then delivered to a loopback receiver; the plain decision rate beside it.
    Fanout(crate::fanout::FanoutArgs),
    /// The console's pages (SPEC §15): the access log as a page beside the API's JSON of the
    /// same rows, a page's own overhead, and the harness's ceiling.
    Console(crate::console::ConsoleArgs),
    /// The least a durable answer costs on this HTTP stack (`bench http`'s baseline): a server
    /// that commits each POST's body to a file (one fdatasync for all waiting) and answers.
    #[command(hide = true)]
    DurableFloor(crate::floor::FloorArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GrantsArgs {
    /// Concurrent clients issuing grants.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Grants per measured run.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Where to put the scratch databases (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

async fn run(cmd: BenchCommand, options: &StoreOptions) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Grants(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = grants(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Decisions(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = crate::decisions::decisions(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Isolation(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = crate::isolation::isolation(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Erasure(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = crate::erasure::erasure(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Webhooks(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = crate::webhooks::webhooks(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Console(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = crate::console::console(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Fanout(args) => {
            let scratch = Scratch::new(args.dir.clone(), options)?;
            let result = crate::fanout::fanout(args, &scratch).await;
            scratch.remove().await;
            result
        }
        BenchCommand::Check(args) => crate::decisions::check(args).await,
        BenchCommand::Restart(args) => {
            if options.database_url.is_some() {
                eprintln!("bench restart runs on SQLite only; --database-url is not used");
            }
            crate::decisions::restart(args).await
        }
        BenchCommand::All(args) => crate::all::all(args, options.database_url.as_deref()),
        BenchCommand::Http(args) => crate::http::http(args).await,
        BenchCommand::Load(args) => crate::http::load(args).await,
        BenchCommand::DurableFloor(_) => anyhow::bail!("durable-floor runs outside Tokio"),
        BenchCommand::SeedLog(args) => crate::log::seed_cmd(args).await,
        BenchCommand::Log(args) => crate::log::log(args).await,
        BenchCommand::Gdpr(args) => crate::gdpr::audit(args).await,
    }
}

/// Where a benchmark's measured parts keep their stores: fresh SQLite files in a temporary
/// directory, or fresh PostgreSQL databases on the `--database-url` server. Either way the
/// signing keys and snapshots go into the temporary directory, made inside `--dir` (created
/// if absent) or the system's.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
    server: Option<PostgresUrl>,
    databases: tokio::sync::Mutex<Vec<ScratchDatabase>>,
}

/// One measured part's store.
pub(crate) struct Part {
    pub options: StoreOptions,
    pub location: StoreLocation,
}

impl Scratch {
    fn new(dir: Option<PathBuf>, options: &StoreOptions) -> anyhow::Result<Self> {
        let server = match (&options.database_url, options.location()?) {
            (None, _) => None,
            (Some(_), StoreLocation::Postgres(url)) => Some(url),
            (Some(_), StoreLocation::SqliteFile(_)) => anyhow::bail!(
                "bench takes --database-url postgres://… only; SQLite runs on scratch files in --dir"
            ),
        };
        let parent = dir.unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&parent)?;
        let dir = tempfile::Builder::new()
            .prefix("consent-ledger-bench")
            .tempdir_in(parent)?;
        Ok(Self {
            dir,
            server,
            databases: tokio::sync::Mutex::default(),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `true` on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.server.is_some()
    }

    /// A fresh, empty store named `name` (an SQLite file, or a new database).
    pub async fn part(&self, name: &str) -> anyhow::Result<Part> {
        let data_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&data_dir)?;
        match &self.server {
            None => Ok(Part {
                location: StoreLocation::in_data_dir(&data_dir),
                options: StoreOptions {
                    data_dir,
                    database_url: None,
                },
            }),
            Some(server) => {
                let db = ScratchDatabase::create_for_bench(server).await?;
                let part = Part {
                    location: db.location().clone(),
                    options: StoreOptions {
                        data_dir,
                        database_url: Some(db.url_text().to_owned()),
                    },
                };
                self.databases.lock().await.push(db);
                Ok(part)
            }
        }
    }

    /// How the tables name the backend and its durability setting.
    pub fn label(&self) -> &'static str {
        if self.is_postgres() {
            "PostgreSQL, synchronous_commit=on"
        } else {
            "SQLite, synchronous=FULL"
        }
    }

    /// Drops the scratch databases (the directory goes with `self`).
    async fn remove(self) {
        for db in self.databases.into_inner() {
            if let Err(e) = db.remove().await {
                eprintln!("could not drop a bench database: {e}");
            }
        }
    }
}

/// Latency percentiles and throughput of one run.
pub(crate) struct Figures {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub longest: Duration,
}

pub(crate) fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        longest: latencies.last().copied().unwrap_or_default(),
    }
}

struct Fixture {
    store: Store,
    services: LedgerServices,
    shipper: ShipperId,
    partners: Vec<PartnerId>,
}

async fn fixture(location: &StoreLocation) -> anyhow::Result<Fixture> {
    let store = Store::open(location).await?;
    let projector = Projector::new(store.clone());
    let directory: Arc<dyn Directory> = Arc::new(projector.clone());
    let services = LedgerServices::new(Arc::new(SystemClock), directory);
    let principals = CommandBus::<Principal>::new(store.clone(), services.clone());
    let register = |role: Role, partner: Option<PartnerProfile>| {
        let id = PrincipalId::from_uuid(Uuid::now_v7());
        let command = PrincipalCommand::RegisterPrincipal {
            id,
            role,
            name: DisplayName::parse(format!("bench {role}"))?,
            partner,
        };
        Ok::<_, anyhow::Error>((id, command))
    };
    let (shipper, command) = register(Role::Shipper, None)?;
    principals
        .execute(
            &shipper.to_string(),
            command,
            CommandMeta::new("bench", "setup"),
        )
        .await?;
    let mut partners = Vec::new();
    for _ in 0..100 {
        let profile = PartnerProfile {
            kind: PartnerKind::Insurer,
            country: CountryCode::parse("DE")?,
            dpa_ref: DpaRef::parse("DPA-BENCH")?,
        };
        let (id, command) = register(Role::Partner, Some(profile))?;
        principals
            .execute(&id.to_string(), command, CommandMeta::new("bench", "setup"))
            .await?;
        partners.push(id.as_partner());
    }
    projector.catch_up().await?;
    Ok(Fixture {
        store,
        services,
        shipper: shipper.as_shipper(),
        partners,
    })
}

fn grant(f: &Fixture, i: usize) -> anyhow::Result<(ConsentId, ConsentCommand)> {
    let id = ConsentId::from_uuid(Uuid::now_v7());
    let command =
        crate::fixture::shipper_wide_grant(id, f.shipper, f.partners[i % f.partners.len()])?;
    Ok((id, command))
}

/// Runs `count` operations from `clients` tasks; `op(i)` performs operation `i`.
async fn drive<F, Fut>(clients: usize, count: usize, op: F) -> anyhow::Result<Figures>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(figures(latencies, start.elapsed()))
}

async fn grants(args: GrantsArgs, scratch: &Scratch) -> anyhow::Result<()> {
    eprintln!(
        "bench grants: {} grants, {} clients, {}, scratch in {}",
        args.count,
        args.clients,
        scratch.label(),
        scratch.path().display()
    );

    // 1. The product path: CommandBus::create, as `POST /v1/consents` grants (a new consent's
    // id has no stream to read: handle → group-committed append).
    let f = Arc::new(fixture(&scratch.part("bus").await?.location).await?);
    let bus = Arc::new(CommandBus::<Consent>::new(
        f.store.clone(),
        f.services.clone(),
    ));
    let (fb, b) = (f.clone(), bus.clone());
    // How many grants shared each transaction: what the group commit made of the clients.
    let transactions = |f: &Fixture| {
        let stats = f.store.writer_stats();
        (
            stats.batches.load(Ordering::Relaxed),
            stats.appends.load(Ordering::Relaxed),
        )
    };
    let before = transactions(&f);
    let product = drive(args.clients, args.count, move |i| {
        let (f, bus) = (fb.clone(), b.clone());
        async move {
            let (id, command) = grant(&f, i)?;
            bus.create(&id.to_string(), command, CommandMeta::new("bench", "grant"))
                .await?;
            Ok(())
        }
    })
    .await?;
    let after = transactions(&f);
    let (batches, appends) = (after.0 - before.0, after.1 - before.1);

    // 2. cqrs-es's own CqrsFramework::execute on our EventStore implementation.
    let g = Arc::new(fixture(&scratch.part("framework").await?.location).await?);
    let framework = Arc::new(CqrsFramework::new(
        LedgerEventStore::<Consent>::new(g.store.clone()),
        vec![],
        g.services.clone(),
    ));
    let (gf, fw) = (g.clone(), framework.clone());
    let via_framework = drive(args.clients, args.count, move |i| {
        let (g, framework) = (gf.clone(), fw.clone());
        async move {
            let (id, command) = grant(&g, i)?;
            let meta = CommandMeta::new("bench", "grant").into_metadata();
            framework
                .execute_with_metadata(&id.to_string(), command, meta)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        }
    })
    .await?;

    // Baselines on the rows the product wrote: raw batched INSERTs (1,000 per transaction),
    // and one transaction (one fsync) per row — what a naive per-command store does.
    let rows: Vec<StoredEvent> = f.store.read_range(Position::ZERO, u32::MAX).await?;
    let rows: Vec<StoredEvent> = rows
        .into_iter()
        .filter(|e| e.stream_type == "consent")
        .collect();
    let batched =
        baseline::batched_insert_at(&scratch.part("raw-batched").await?.location, &rows, 1000)
            .await?;
    let naive_rows = &rows[..rows.len().min(2_000)];
    let naive =
        baseline::batched_insert_at(&scratch.part("raw-per-row").await?.location, naive_rows, 1)
            .await?;
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();

    println!(
        "| path ({}, {} clients) | grants/s | p50 | p99 |",
        scratch.label(),
        args.clients
    );
    println!("|---|---:|---:|---:|");
    let row = |name: &str, x: &Figures| {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            x.per_second,
            ms(x.p50),
            ms(x.p99)
        )
    };
    row("CommandBus (cqrs-es handle + group commit)", &product);
    row(
        "cqrs-es CqrsFramework::execute on LedgerEventStore",
        &via_framework,
    );
    println!(
        "| baseline: raw INSERT, 1,000 rows per transaction | {:.0} | | |",
        rate(rows.len(), batched)
    );
    println!(
        "| baseline: raw INSERT, one transaction per row ({} rows) | {:.0} | | |",
        naive_rows.len(),
        rate(naive_rows.len(), naive)
    );
    println!();
    println!(
        "CommandBus: {appends} appends in {batches} transactions, {:.1} per transaction, {:.0} transactions/s",
        appends as f64 / batches.max(1) as f64,
        batches as f64 * product.per_second / args.count.max(1) as f64
    );
    println!(
        "ratio CommandBus / raw batched INSERT: {:.2}",
        product.per_second / rate(rows.len(), batched)
    );
    println!(
        "ratio CommandBus / one-fsync-per-row: {:.1}x",
        product.per_second / rate(naive_rows.len(), naive)
    );
    Ok(())
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The naive design SPEC §11 compares decisions with: every read is one cqrs-es command on a
/// per-shipment aggregate, which loads the shipment's whole read history before appending.
mod naive {
    use cqrs_es::event_sink::EventSink;
    use cqrs_es::{Aggregate, DomainEvent};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct ShipmentReads {
        reads: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum ReadRecorded {
        ReadRecorded { partner: String, purpose: String },
    }

    impl DomainEvent for ReadRecorded {
        fn event_type(&self) -> String {
            "ReadRecorded".into()
        }
        fn event_version(&self) -> String {
            "1".into()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    pub struct Refused;

    impl Aggregate for ShipmentReads {
        const TYPE: &'static str = "naive_shipment_reads";
        type Command = ReadRecorded;
        type Event = ReadRecorded;
        type Error = Refused;
        type Services = ();

        async fn handle(
            &mut self,
            command: Self::Command,
            _: &(),
            sink: &EventSink<Self>,
        ) -> Result<(), Refused> {
            sink.write(command, self).await;
            Ok(())
        }

        fn apply(&mut self, _: Self::Event) {
            self.reads += 1;
        }
    }
}

/// Runs `count` naive reads from `clients` tasks over 500 shipments, through cqrs-es's
/// `CqrsFramework` on a per-command store (one transaction and fsync per read).
pub(crate) async fn naive_reads(
    location: &StoreLocation,
    count: usize,
    clients: usize,
) -> anyhow::Result<Figures> {
    let store = baseline::PerCommandStore::<naive::ShipmentReads>::open_at(location).await?;
    let framework = Arc::new(CqrsFramework::new(store, vec![], ()));
    drive(clients, count, move |i| {
        let framework = framework.clone();
        async move {
            let command = naive::ReadRecorded::ReadRecorded {
                partner: format!("p{}", i % 100),
                purpose: "insurance_claim".into(),
            };
            let id = format!("shipment-{}", i % 500);
            // A lost optimistic race is retried, as a caller of the naive store would.
            for _ in 0..16 {
                match framework.execute(&id, command.clone()).await {
                    Err(cqrs_es::AggregateError::AggregateConflict) => continue,
                    other => return other.map_err(|e| anyhow::anyhow!("{e}")),
                }
            }
            anyhow::bail!("naive read kept conflicting")
        }
    })
    .await
}

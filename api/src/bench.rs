//! `consent-ledger bench …`: the project's own benchmark harness (SPEC §11). Each figure is
//! printed beside its baseline measured in the same run, as a Markdown table for
//! BENCHMARKS.md. Nothing here is asserted: benchmarks measure, tests decide.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use consent_ledger_domain::consent::{Consent, ConsentCommand};
use consent_ledger_domain::principal::{PartnerProfile, Principal, PrincipalCommand};
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    ConsentId, CountryCode, DataCategory, DisplayName, DpaRef, LegalBasis, NonEmptySet, PartnerId,
    PartnerKind, PrincipalId, Purpose, Role, ShipperId,
};
use consent_ledger_domain::{Directory, LedgerServices, SystemClock};
use consent_ledger_projections::Projector;
use consent_ledger_store::cqrs::{CommandBus, CommandMeta, LedgerEventStore};
use consent_ledger_store::{baseline, Position, Store, StoreLocation, StoredEvent};
use cqrs_es::CqrsFramework;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Consent grants per second through the cqrs-es command path on SQLite (SPEC §11).
    Grants(GrantsArgs),
    /// Decisions over HTTP, single and batched, recorded durably (SPEC §11 rows 1–2).
    Decisions(crate::bench_decisions::DecisionsArgs),
    /// The in-process check and the hot index's memory (SPEC §11 row 3 and memory row).
    Check(crate::bench_decisions::CheckArgs),
    /// Replay rate and time to ready after a restart, with and without a snapshot.
    Restart(crate::bench_decisions::RestartArgs),
    /// The GDPR audit views on a seeded log: one shipment's access history, a DSAR, a month's
    /// RoPA (SPEC §11 "access history of one shipment among 10M events").
    Audit(crate::bench_audit::AuditArgs),
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

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Grants(args) => grants(args).await,
        BenchCommand::Decisions(args) => crate::bench_decisions::decisions(args).await,
        BenchCommand::Check(args) => crate::bench_decisions::check(args).await,
        BenchCommand::Restart(args) => crate::bench_decisions::restart(args).await,
        BenchCommand::Audit(args) => crate::bench_audit::audit(args).await,
    }
}

/// Latency percentiles and throughput of one run.
pub(crate) struct Figures {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
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
    }
}

struct Fixture {
    store: Store,
    services: LedgerServices,
    shipper: ShipperId,
    partners: Vec<PartnerId>,
}

async fn fixture(path: PathBuf) -> anyhow::Result<Fixture> {
    let store = Store::open(&StoreLocation::SqliteFile(path)).await?;
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
            token_sha256: Uuid::now_v7().simple().to_string(),
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
    let command = ConsentCommand::GrantConsent {
        id,
        shipper: f.shipper,
        partner: f.partners[i % f.partners.len()],
        scope: ConsentScope::Shipper {
            carriers: None,
            destination_countries: None,
        },
        purposes: NonEmptySet::new(vec![Purpose::InsuranceClaim])?,
        data_categories: NonEmptySet::new(vec![
            DataCategory::StatusEvents,
            DataCategory::ProofOfDelivery,
        ])?,
        legal_basis: LegalBasis::Contract,
        dpa_ref: None,
        valid_from: None,
        valid_until: None,
        origin_request: None,
    };
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

async fn grants(args: GrantsArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("consent-ledger-bench")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    eprintln!(
        "bench grants: {} grants, {} clients, scratch in {}",
        args.count,
        args.clients,
        scratch.path().display()
    );

    // 1. The product path: CommandBus (load aggregate → handle → group-committed append).
    let f = Arc::new(fixture(scratch.path().join("bus.db")).await?);
    let bus = Arc::new(CommandBus::<Consent>::new(
        f.store.clone(),
        f.services.clone(),
    ));
    let (fb, b) = (f.clone(), bus.clone());
    let product = drive(args.clients, args.count, move |i| {
        let (f, bus) = (fb.clone(), b.clone());
        async move {
            let (id, command) = grant(&f, i)?;
            bus.execute(&id.to_string(), command, CommandMeta::new("bench", "grant"))
                .await?;
            Ok(())
        }
    })
    .await?;

    // 2. cqrs-es's own CqrsFramework::execute on our EventStore implementation.
    let g = Arc::new(fixture(scratch.path().join("framework.db")).await?);
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
        baseline::batched_insert(&scratch.path().join("raw-batched.db"), &rows, 1000).await?;
    let naive_rows = &rows[..rows.len().min(2_000)];
    let naive =
        baseline::batched_insert(&scratch.path().join("raw-per-row.db"), naive_rows, 1).await?;
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();

    println!(
        "| path (SQLite, synchronous=FULL, {} clients) | grants/s | p50 | p99 |",
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
    path: PathBuf,
    count: usize,
    clients: usize,
) -> anyhow::Result<Figures> {
    let store = baseline::PerCommandStore::<naive::ShipmentReads>::open(&path).await?;
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

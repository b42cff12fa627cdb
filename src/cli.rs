//! The command line (SPEC §8). Every subcommand takes the same store options.

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use consent_ledger_audit::verify::verify_reader;
use consent_ledger_audit::LogKey;
use consent_ledger_domain::principal::PartnerProfile;
use consent_ledger_domain::values::{CountryCode, DisplayName, DpaRef, PartnerKind, Role};
use consent_ledger_domain::SystemClock;
use consent_ledger_store::cqrs::CommandMeta;
use uuid::Uuid;

use consent_ledger_app::auth::Caller;
use consent_ledger_app::principals::{register, CreatePrincipal};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_app::webhooks::delivery::{Deliveries, DeliveryOptions};
use consent_ledger_app::{approvals, background, gdpr, AppError};

use crate::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "consent-ledger",
    version,
    about = "Consent ledger for third-party parcel tracking"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CONSENT_LEDGER_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (ledger.db) and the signing key (log.key).
    #[arg(
        long,
        global = true,
        default_value = "./data",
        env = "CONSENT_LEDGER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Use this database instead of the embedded SQLite file: `postgres://…` (several
    /// processes may share one PostgreSQL database) or `sqlite://PATH`. The signing key and
    /// the read-model snapshot stay in --data-dir either way.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Apply pending schema migrations and exit.
    Migrate,
    /// Manage principals offline (how the first admin is made).
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Rebuild the projections from the whole log and print what they hold (JSON).
    Replay(ReplayArgs),
    /// Recompute every leaf and the root at every kept checkpoint from the stored events; exit
    /// non-zero naming the first bad position if anything was changed, deleted, reordered or
    /// inserted.
    AuditLog,
    /// Write the §6 export bundle (access decisions, optionally of one shipment or partner).
    Export(ExportArgs),
    /// Verify an export bundle offline with nothing but it and the log's vkey.
    Verify(VerifyArgs),
    /// Create the log signing key if there is none, and print its C2SP vkey.
    Keygen(KeygenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Also empty the GDPR audit tables and build them again from the whole log (the
    /// projection behind /v1/audit/access, dsar and ropa).
    #[arg(long)]
    pub audit: bool,
}

/// The longest `--request-ttl-days`: ten years.
const MAX_TTL_DAYS: i64 = 3650;
/// The largest event count a `serve` flag takes; the background tasks add it to log positions,
/// which must not overflow.
const MAX_EVENTS_FLAG: u64 = 1_000_000_000;
/// The longest `--checkpoint-every-seconds`: a year.
const MAX_CHECKPOINT_SECONDS: u64 = 365 * 24 * 3600;
/// The highest `--rate-limit`: a million requests a second is no limit in practice, and keeps
/// the limiter's refill interval (1 s / N, kept in whole nanoseconds) at 1 µs or more, where
/// that rounding is negligible.
const MAX_RATE_LIMIT: u32 = 1_000_000;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Days a consent request stays pending before it expires (1–3650). Bounded here because
    /// every request adds it to the clock: a value near i64's end overflowed on each one.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=MAX_TTL_DAYS))]
    pub request_ttl_days: i64,
    /// Write a read-model snapshot every this many events (0: only on stop; at most
    /// 1,000,000,000), so that a restart loads it and replays only what came after.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=MAX_EVENTS_FLAG))]
    pub snapshot_every: u64,
    /// Sign a checkpoint once this many events came after the last one (at most
    /// 1,000,000,000) …
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=MAX_EVENTS_FLAG))]
    pub checkpoint_every_events: u64,
    /// … or once this many seconds passed with any new event (at most a year).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_CHECKPOINT_SECONDS))]
    pub checkpoint_every_seconds: u64,
    /// Requests a second each authenticated principal may make, in bursts of as many (a decision
    /// batch is one request); a client address may also present as many tokens a second that
    /// this node does not know. Over it: 429 with Retry-After. 0, the default: no limit (the
    /// carrier's gateway asks every decision for its partners). At most 1,000,000.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RATE_LIMIT)))]
    pub rate_limit: u32,
    /// Erase the personal data (tracking number, recipient reference, free texts) of every
    /// shipment with no event for more than this many days, recorded as `PersonalDataErased`
    /// (SPEC §12, GDPR Art. 5(1)(e)); swept every `--retention-sweep-seconds`. 0, the default:
    /// off. At most 36,500.
    #[arg(long, value_name = "DAYS", default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retention_days: u32,
    /// Let webhook endpoints use loopback `http` URLs (tests and local development only; never
    /// in production: it opens the host's own services to partners' URLs). Logged when on.
    #[arg(long)]
    pub webhooks_allow_insecure_loopback: bool,
    /// Seconds between retention sweeps (1–86,400).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_sweep_seconds: u64,
    /// Webhook messages of one endpoint in flight at once on this node (1–64): a slow receiver
    /// holds only these slots, never another partner's.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub webhooks_per_endpoint: u32,
    /// Webhook messages in flight at once on this node (1–4,096).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub webhooks_in_flight: u32,
    /// Days before a consent ends that its partner gets `consent.expiring` (1–365).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub expiring_notice_days: u32,
    /// Events the GDPR projection may be behind the log for the audit views (access, DSAR,
    /// record of processing) to catch it up before they answer; further behind (a load it
    /// cannot keep up with), they read what the projection has not applied yet from the log
    /// instead of waiting for it.
    #[arg(long, default_value_t = consent_ledger_app::state::DEFAULT_AUDIT_TAIL_AFTER)]
    pub audit_tail_after: u64,
    /// Days a tracking update (personal data, SPEC §14) is kept after its receipt (1–3,650).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub tracking_retention_days: u32,
    #[command(flatten)]
    pub key: KeygenArgs,
}

#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// The log's origin: names the signing key and every checkpoint (C2SP tlog-checkpoint).
    #[arg(
        long,
        default_value = "consent-ledger.local/log",
        env = "CONSENT_LEDGER_ORIGIN"
    )]
    pub origin: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// What to write: the §6 bundle, or one of the GDPR audit views (`access`, `dsar`, `ropa`)
    /// exactly as `GET /v1/audit/<view>` answers a privacy officer.
    #[arg(long, value_enum, default_value = "bundle")]
    pub view: ExportView,
    /// The audit view's query, as in its URL: e.g. `carrier=DHL&tracking_number=JJD1&format=csv`
    /// (`access` is written whole, page after page; csv or ndjson).
    #[arg(long, default_value = "")]
    pub query: String,
    /// Rows per page read while writing `--view access` (1–1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
    /// Decisions about this shipment (and its registration).
    #[arg(long)]
    pub shipment_id: Option<String>,
    /// With --tracking-number: decisions about that shipment (and its registration), and
    /// denials asked by that tracking number.
    #[arg(long)]
    pub carrier: Option<String>,
    /// With --carrier.
    #[arg(long)]
    pub tracking_number: Option<String>,
    /// Decisions of this partner.
    #[arg(long)]
    pub partner_id: Option<String>,
    /// Decisions about this shipper's shipments.
    #[arg(long)]
    pub shipper_id: Option<String>,
    /// Decided at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Decided before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// allowed or denied.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Add to the header the consistency proof from the tree of this many events (the size of
    /// a checkpoint the verifier already trusts; see `verify --since`).
    #[arg(long)]
    pub since_size: Option<u64>,
    /// Where to write the bundle.
    #[arg(long)]
    pub out: PathBuf,
}

impl ExportArgs {
    /// The text of the access filter named `name` (see `access_filter::FILTER_NAMES`).
    fn filter(&self, name: &str) -> Option<String> {
        match name {
            "shipment_id" => self.shipment_id.clone(),
            "carrier" => self.carrier.clone(),
            "tracking_number" => self.tracking_number.clone(),
            "partner_id" => self.partner_id.clone(),
            "shipper_id" => self.shipper_id.clone(),
            "from" => self.from.clone(),
            "to" => self.to.clone(),
            "outcome" => self.outcome.clone(),
            _ => None,
        }
    }
}

/// What `consent-ledger export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportView {
    Bundle,
    Access,
    Dsar,
    Ropa,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The log's vkey: the text itself or a file holding it.
    #[arg(long)]
    pub vkey: String,
    /// An older signed checkpoint of the log that you trust (a file holding the note, or the
    /// note's text): also check that the bundle's checkpoint extends it, by the consistency
    /// proof the bundle carries (export it with `--since-size` / `since=` that size).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Register a principal and print `{"id","token"}`.
    Create(CreatePrincipalArgs),
    /// Issue a principal a new token and print `{"id","token"}`; its old token is refused from
    /// then on, by every node (e.g. when the only admin token is lost or leaked).
    RotateToken(RotateTokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RotateTokenArgs {
    /// The principal's id.
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Clone, Args)]
pub struct CreatePrincipalArgs {
    /// admin, shipper, partner, gateway, privacy_officer or regulator.
    #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
    pub role: Role,
    #[arg(long)]
    pub name: String,
    /// Partner kind (partners only), e.g. insurer, marketplace, bnpl.
    #[arg(long, value_parser = |s: &str| s.parse::<PartnerKind>())]
    pub kind: Option<PartnerKind>,
    /// Partner country, ISO 3166-1 alpha-2 (partners only).
    #[arg(long)]
    pub country: Option<String>,
    /// Art. 28 DPA reference (partners only).
    #[arg(long)]
    pub dpa_ref: Option<String>,
}

pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let options = cli.store.options();
    match cli.command {
        Command::Serve(args) => serve(&options, args).await,
        Command::Migrate => {
            let location = options.location()?;
            if options.database_url.is_none() {
                options.ensure_data_dir()?;
            }
            consent_ledger_store::migrate(&location)
                .await
                .context("migrating")?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Principal(PrincipalCommand::Create(args)) => {
            create_principal(&options, args).await
        }
        Command::Principal(PrincipalCommand::RotateToken(args)) => {
            rotate_principal_token(&options, args).await
        }
        Command::Keygen(args) => {
            options.ensure_data_dir()?;
            let key = LogKey::load_or_create(&options.data_dir.join("log.key"), &args.origin)?;
            println!("{}", key.vkey());
            Ok(())
        }
        Command::Replay(args) => replay(&options, args).await,
        Command::AuditLog => {
            consent_ledger_app::bulk::without_huge_pages();
            audit_log(&options).await
        }
        Command::Export(args) => {
            consent_ledger_app::bulk::without_huge_pages();
            export(&options, args).await
        }
        Command::Verify(args) => verify(args),
    }
}

/// `consent-ledger replay`: every event of the log through a fresh read model, with a
/// progress bar on a terminal; prints the model's summary and the rate as JSON.
async fn replay(options: &StoreOptions, args: ReplayArgs) -> anyhow::Result<()> {
    let location = options.location()?;
    if args.audit {
        // Rebuilt into an empty file where no running process has it open.
        consent_ledger_store::gdpr::discard_gdpr_projection(&location)
            .context("discarding the GDPR projection's file")?;
    }
    let store = consent_ledger_store::Store::open(&location)
        .await
        .context("opening the event store")?;
    let result = replay_with(&store, options, args).await;
    store.close().await;
    result
}

async fn replay_with(
    store: &consent_ledger_store::Store,
    options: &StoreOptions,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    let size = store.next_position().await?.get();
    let bar = progress_bar(size, "replaying");
    let started = std::time::Instant::now();
    let model =
        consent_ledger_projections::Projector::replay(store, |p| bar.set_position(p.get())).await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let summary = model.summary();
    let rate = summary.log_size as f64 / seconds.max(1e-9);
    // The rebuilt model becomes the snapshot the next start loads.
    if options.database_url.is_none() {
        options.ensure_data_dir()?;
    }
    let projector = consent_ledger_projections::Projector::new(store.clone());
    projector.install(model);
    projector.save_snapshot(&options.snapshot_path()).await?;
    let mut report = serde_json::json!({ "summary": summary, "seconds": seconds, "events_per_second": rate.round() });
    if args.audit {
        let bar = progress_bar(size, "rebuilding the audit projection");
        let started = std::time::Instant::now();
        let audit = consent_ledger_projections::gdpr::GdprProjector::new(store.clone());
        let reached = audit.rebuild(|p| bar.set_position(p.get())).await?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        report["audit"] = serde_json::json!({
            "position": reached.get(),
            "seconds": seconds,
            "events_per_second": (reached.get() as f64 / seconds.max(1e-9)).round(),
        });
    }
    println!("{report}");
    Ok(())
}

async fn export(options: &StoreOptions, args: ExportArgs) -> anyhow::Result<()> {
    if args.view != ExportView::Bundle {
        return export_view(options, args).await;
    }
    let filter = gdpr::filter::AccessFilter::parse(|name| args.filter(name))
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.detail))?;
    let state = AppState::open(options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let store = state.store.clone();
    let result: anyhow::Result<()> = async {
        let exporter = consent_ledger_app::export::Exporter::start(state, filter, args.since_size)
            .await
            .map_err(|e| match e {
                AppError::InvalidField { field, detail } if field == "since" => {
                    anyhow::anyhow!("--since-size: {detail}")
                }
                other => anyhow::anyhow!("{other}"),
            })?;
        let bar = progress_bar(exporter.tree_size(), "exporting");
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let written = consent_ledger_app::export::write_bundle(exporter, &mut out, |at, _| {
            bar.set_position(at)
        })
        .await;
        bar.finish_and_clear();
        drop(out);
        let (events, size) = match written {
            Ok(done) => done,
            Err(e) => {
                // A cut bundle could pass for a smaller one: leave none behind.
                if std::fs::metadata(&args.out).is_ok_and(|m| m.is_file()) {
                    let _ = std::fs::remove_file(&args.out);
                }
                return Err(e.context(format!("writing {}", args.out.display())));
            }
        };
        eprintln!(
            "wrote {events} events to {} (checkpoint of {size} events)",
            args.out.display()
        );
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// The text of `arg`: the file it names, or else the argument itself.
fn file_or_text(arg: &str) -> String {
    std::fs::read_to_string(arg).unwrap_or_else(|_| arg.to_owned())
}

/// `export --view access|dsar|ropa`: the audit view a privacy officer would GET, to a file for
/// a regulator's request; the audit projection is caught up first.
async fn export_view(options: &StoreOptions, args: ExportArgs) -> anyhow::Result<()> {
    let state = AppState::open(options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let result = export_view_with(&state, args).await;
    state.store.close().await;
    result
}

async fn export_view_with(state: &AppState, args: ExportArgs) -> anyhow::Result<()> {
    use std::io::Write as _;

    let caller = Caller {
        id: consent_ledger_domain::values::PrincipalId::from_uuid(Uuid::nil()),
        role: Role::PrivacyOfficer,
        credential_at: 0,
    };
    let fail = |e: AppError| anyhow::anyhow!("--query: {e}");
    let query = args.query.trim_start_matches('&');
    if args.view == ExportView::Access {
        let params: Vec<&str> = query
            .split('&')
            .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
            .collect();
        if !(query.contains("format=csv") || query.contains("format=ndjson")) {
            bail!("--view access is written whole as csv or ndjson: add format=csv or format=ndjson to --query");
        }
        if let Some(paging) = params.iter().find(|p| matches!(**p, "limit" | "after")) {
            bail!(
                "--query: {paging} is not taken: --view access writes every page (see --page-size)"
            );
        }
    }
    // Written to a file beside the target and renamed over it when whole, so that a failed
    // export leaves no half-written file under the name a regulator was promised.
    let partial = args.out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0usize;
    let mut emit = |text: &str| -> anyhow::Result<()> {
        out.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", partial.display()))?;
        written += text.len();
        Ok(())
    };
    match args.view {
        ExportView::Access => {
            let mut after: Option<String> = None;
            loop {
                let mut page_query = format!("{query}&limit={}", args.page_size);
                if let Some(a) = &after {
                    page_query.push_str(&format!("&after={a}"));
                }
                let page = gdpr::access_view(state, &caller, &page_query)
                    .await
                    .map_err(fail)?;
                let body = match (&after, page.content_type.starts_with("text/csv")) {
                    // The header row once, at the top.
                    (Some(_), true) => page.body.split_once("\r\n").map_or("", |(_, rest)| rest),
                    _ => page.body.as_str(),
                };
                emit(body)?;
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        ExportView::Dsar => emit(
            &gdpr::dsar_view(state, &caller, query)
                .await
                .map_err(fail)?
                .text(state)
                .await
                .map_err(fail)?,
        )?,
        ExportView::Ropa => emit(
            &gdpr::ropa_view(state, &caller, query)
                .await
                .map_err(fail)?
                .body,
        )?,
        ExportView::Bundle => bail!("the bundle is not an audit view"),
    }
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", partial.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {written} bytes to {}", args.out.display());
    Ok(())
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let vkey: consent_ledger_audit::note::VerifierKey = file_or_text(&args.vkey)
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("--vkey: {e}"))?;
    let trusted = args
        .since
        .as_deref()
        .map(|since| {
            vkey.open_checkpoint(&file_or_text(since)).map_err(|e| {
                anyhow::anyhow!("--since: the old checkpoint does not verify with --vkey: {e}")
            })
        })
        .transpose()?;
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(file.metadata().map(|m| m.len()).unwrap_or(0)),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "verifying {wide_bar} {bytes}/{total_bytes} ({eta})",
    ) {
        bar.set_style(style);
    }
    let verified = verify_reader(file, &vkey, trusted.as_ref(), &|done| {
        bar.set_position(done)
    });
    bar.finish_and_clear();
    let verified = verified?;
    println!(
        "{}",
        serde_json::json!({ "verified": true, "events": verified.events,
            "origin": verified.checkpoint.origin(), "tree_size": verified.checkpoint.size(),
            "consistent_with_size": verified.consistent_with,
            "openings_checked": verified.openings, "erased_fields": verified.erased })
    );
    Ok(())
}

/// `consent-ledger audit-log`: audits, then prints the report as JSON.
async fn audit_log(options: &StoreOptions) -> anyhow::Result<()> {
    let bar = progress_bar(0, "auditing");
    let report = consent_ledger_app::audit_log::audit(options, |done, size| {
        bar.set_length(size);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    use base64::Engine;
    println!(
        "{}",
        serde_json::json!({
            "events": report.events,
            "checkpoints_checked": report.checkpoints_checked,
            "openings_checked": report.openings_checked,
            "root_hash": base64::engine::general_purpose::STANDARD.encode(report.root),
            "seconds": report.seconds,
            "leaves_per_second": (report.events as f64 / report.seconds.max(1e-9)).round(),
        })
    );
    Ok(())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise (scripts, tests).
pub fn progress_bar(len: u64, what: &'static str) -> indicatif::ProgressBar {
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

async fn create_principal(options: &StoreOptions, args: CreatePrincipalArgs) -> anyhow::Result<()> {
    let partner = match (args.role, args.kind, args.country, args.dpa_ref) {
        (Role::Partner, Some(kind), Some(country), Some(dpa_ref)) => Some(PartnerProfile {
            kind,
            country: CountryCode::parse(&country).context("--country")?,
            dpa_ref: DpaRef::parse(dpa_ref).context("--dpa-ref")?,
        }),
        (Role::Partner, ..) => bail!("a partner needs --kind, --country and --dpa-ref"),
        (_, None, None, None) => None,
        _ => bail!("--kind, --country and --dpa-ref are for partners only"),
    };
    let input = CreatePrincipal {
        role: args.role,
        name: DisplayName::parse(args.name).context("--name")?,
        partner,
    };
    let state = AppState::open(options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let meta = CommandMeta::new("cli", Uuid::now_v7().to_string());
    let created = register(&state, input, meta)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"));
    state.store.close().await;
    println!("{}", serde_json::to_string(&created?.0)?);
    Ok(())
}

async fn rotate_principal_token(
    options: &StoreOptions,
    args: RotateTokenArgs,
) -> anyhow::Result<()> {
    let id = consent_ledger_domain::values::PrincipalId::parse(&args.id)
        .map_err(|e| anyhow::anyhow!("--id: {e}"))?;
    let state = AppState::open(options, Arc::new(SystemClock), ServiceConfig::default()).await?;
    let meta = CommandMeta::new("cli", Uuid::now_v7().to_string());
    let rotated = consent_ledger_app::principals::rotate(&state, id, meta)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => anyhow::anyhow!("--id: no principal {id}"),
            other => anyhow::anyhow!("{other}"),
        });
    state.store.close().await;
    println!("{}", serde_json::to_string(&rotated?.0)?);
    Ok(())
}

async fn serve(options: &StoreOptions, args: ServeArgs) -> anyhow::Result<()> {
    if options.database_url.is_none() {
        options.ensure_data_dir()?;
    }
    let config = ServiceConfig {
        request_ttl: chrono::Duration::days(args.request_ttl_days),
        origin: args.key.origin.clone(),
        rate_limit: NonZeroU32::new(args.rate_limit),
        expiring_notice: chrono::Duration::days(i64::from(args.expiring_notice_days)),
        audit_tail_after: args.audit_tail_after,
        webhook_targets: consent_ledger_app::webhooks::target::TargetPolicy {
            allow_insecure_loopback: args.webhooks_allow_insecure_loopback,
        },
        ..ServiceConfig::default()
    };
    if args.webhooks_allow_insecure_loopback {
        tracing::warn!(
            "--webhooks-allow-insecure-loopback: webhook endpoints may be loopback http URLs; \
             for tests and local development only"
        );
    }
    let state = AppState::open(options, Arc::new(SystemClock), config).await?;
    tracing::info!(vkey = %state.log_key.vkey(), "log signing key ready");
    approvals::complete_approvals(&state)
        .await
        .map_err(|e| anyhow::anyhow!("completing interrupted approvals: {e}"))?;
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let server = consent_ledger_api::server::run(listener, state.clone())?;
    // Other processes sharing the database commit too: apply their events as soon as the
    // store announces them, so this node answers reads with them without waiting for a tick.
    let follower = state.projector.clone();
    let committed = state.store.subscribe();
    tokio::spawn(async move { follower.follow(committed).await });
    tokio::spawn(background::housekeeping(
        state.clone(),
        options.snapshot_path(),
        args.snapshot_every,
    ));
    let gdpr_follower = background::GdprFollower::spawn(state.clone())
        .context("starting the GDPR projection's follower")?;
    tokio::spawn(background::checkpoints(
        state.clone(),
        args.checkpoint_every_events,
        Duration::from_secs(args.checkpoint_every_seconds),
    ));
    if args.retention_days > 0 {
        tokio::spawn(background::retention(
            state.clone(),
            args.retention_days,
            Duration::from_secs(args.retention_sweep_seconds),
        ));
    }
    tokio::spawn(background::tracking_retention(
        state.clone(),
        args.tracking_retention_days,
        Duration::from_secs(args.retention_sweep_seconds),
    ));
    // Partner webhooks (SPEC §13): this node's worker delivers the outbox, on its own thread.
    let deliveries = Deliveries::spawn(
        state.clone(),
        DeliveryOptions {
            per_endpoint: args.webhooks_per_endpoint,
            in_flight: args.webhooks_in_flight,
            ..DeliveryOptions::default()
        },
    )
    .context("starting the webhook worker")?;
    // An erasure whose clean-up a crash interrupted is finished now: the audit file blanked,
    // the WALs checkpointed, the snapshot written without what was erased (SPEC §12).
    consent_ledger_app::erasure::spawn_scrub(&state);
    // SIGTERM and SIGINT stop the server gracefully (in-flight requests drain), handled from
    // before the line below: a supervisor that signals as soon as it reads it is obeyed.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    let handle = server.handle();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
        handle.stop(true).await;
    });
    // Tests and scripts read this line to find a port picked with `--listen 127.0.0.1:0`.
    println!("consent-ledger listening on http://{addr}");
    tracing::info!(%addr, rate_limit = args.rate_limit, "serving");
    server.await?;
    // Messages in flight are abandoned: their leases run out and they are sent again (same
    // `webhook-id`) by the next worker.
    drop(deliveries);
    gdpr_follower.stop();
    // A clean-up under way (every start runs one, above) finishes before the store closes:
    // cut off, it failed against the closed pool, an error in the log of a graceful stop.
    let _no_clean_up = state.scrubbing.lock().await;
    tracing::info!("stopped: in-flight requests drained, every acknowledged write is durable");
    match save_snapshot_on_stop(&state, &options.snapshot_path()).await {
        Ok(at) => tracing::info!(position = %at, "projection snapshot written"),
        Err(e) => tracing::warn!(error = %e, "could not write the projection snapshot"),
    }
    state.store.close().await;
    Ok(())
}

/// The snapshot `serve` writes as it stops. It reads the log's last event; on PostgreSQL the
/// read pool may still hold a connection opened on one of the HTTP workers' runtimes, which
/// are shutting down at this moment: a read on it fails ("the Tokio context is being
/// shutdown"), and the pool drops it. So a failed write is tried again, a little later, twice.
async fn save_snapshot_on_stop(
    state: &AppState,
    path: &std::path::Path,
) -> Result<consent_ledger_store::Position, consent_ledger_projections::ProjectionError> {
    let mut attempt = 0;
    loop {
        match state.projector.save_snapshot(path).await {
            Err(e) if attempt < 2 && !state.store.is_embedded() => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "writing the projection snapshot again");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            saved => return saved,
        }
    }
}

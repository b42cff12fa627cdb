//! What several benchmarks stand on: a store with principals, shipments and consents made
//! through the real use cases, the real app served on a loopback port, and a deterministic
//! generator so that runs are comparable.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::Context;

use consent_ledger_app::principals::{register, CreatePrincipal, CreatedPrincipal};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_domain::consent::ConsentCommand;
use consent_ledger_domain::principal::PartnerProfile;
use consent_ledger_domain::shipment::ShipmentCommand;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    CarrierCode, ConsentId, CountryCode, DataCategory, DisplayName, DpaRef, LegalBasis,
    NonEmptySet, PartnerId, PartnerKind, Purpose, RecipientRef, Role, ShipmentId, ShipperId,
    TrackingNumber,
};
use consent_ledger_domain::SystemClock;
use consent_ledger_store::cqrs::CommandMeta;
use uuid::Uuid;

/// A small deterministic generator (xorshift), so runs are comparable.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub(crate) fn uuid(rng: &mut Rng) -> Uuid {
    Uuid::from_u64_pair(rng.next(), rng.next())
}

pub(crate) const CARRIERS: [&str; 4] = ["DHL", "UPS", "GLS", "DPD"];
pub(crate) const COUNTRIES: [&str; 5] = ["DE", "FR", "NL", "AT", "PL"];

pub(crate) struct Fixture {
    pub(crate) state: Arc<AppState>,
    pub(crate) url: String,
    pub(crate) partner_tokens: Vec<String>,
    pub(crate) shipper_token: String,
    pub(crate) gateway: String,
    pub(crate) partners: Vec<PartnerId>,
    pub(crate) shipments: Vec<ShipmentId>,
}

pub(crate) async fn fixture(
    options: &StoreOptions,
    partners: usize,
    shipments: usize,
) -> anyhow::Result<Fixture> {
    fixture_configured(options, partners, shipments, ServiceConfig::default()).await
}

/// [`fixture`] on a service with these tunables.
pub(crate) async fn fixture_configured(
    options: &StoreOptions,
    partners: usize,
    shipments: usize,
    config: ServiceConfig,
) -> anyhow::Result<Fixture> {
    let state = AppState::open(options, Arc::new(SystemClock), config).await?;
    let f = seeded(state, partners, shipments).await?;
    let url = serve_on_loopback(&f.state)?;
    Ok(Fixture { url, ..f })
}

/// The data of [`fixture`] written through `state`, served by nobody (its `url` is empty): for
/// a benchmark that serves it from another process.
pub(crate) async fn seeded(
    state: Arc<AppState>,
    partners: usize,
    shipments: usize,
) -> anyhow::Result<Fixture> {
    let shipper = register_principal(&state, Role::Shipper, "Shop", None).await?;
    let gateway = register_principal(&state, Role::Gateway, "Gateway", None).await?;
    let shipper_token = shipper.token;
    let shipper = shipper.id.as_shipper();
    let mut partner_ids = Vec::new();
    let mut partner_tokens = Vec::new();
    for i in 0..partners {
        let name = format!("Partner {i}");
        let p = register_principal(&state, Role::Partner, &name, Some(partner_profile()?)).await?;
        partner_ids.push(p.id.as_partner());
        partner_tokens.push(p.token);
    }
    let shipment_ids = register_shipments(&state, shipper, shipments, 'B').await?;
    for partner in &partner_ids {
        let id = ConsentId::from_uuid(Uuid::now_v7());
        let command = shipper_wide_grant(id, shipper, *partner)?;
        state
            .consents
            .execute(&id.to_string(), command, setup())
            .await?;
    }
    state.projector.catch_up().await?;
    Ok(Fixture {
        state,
        url: String::new(),
        partner_tokens,
        shipper_token,
        gateway: gateway.token,
        partners: partner_ids,
        shipments: shipment_ids,
    })
}

/// The provenance of everything a fixture writes.
pub(crate) fn setup() -> CommandMeta {
    CommandMeta::new("bench", "setup")
}

/// What every bench partner is: a German insurer under one DPA.
pub(crate) fn partner_profile() -> anyhow::Result<PartnerProfile> {
    Ok(PartnerProfile {
        kind: PartnerKind::Insurer,
        country: CountryCode::parse("DE")?,
        dpa_ref: DpaRef::parse("DPA-B")?,
    })
}

/// Registers a principal through the use case `POST /v1/principals` calls; its token is in
/// the answer.
pub(crate) async fn register_principal(
    state: &AppState,
    role: Role,
    name: &str,
    partner: Option<PartnerProfile>,
) -> anyhow::Result<CreatedPrincipal> {
    let input = CreatePrincipal {
        role,
        name: DisplayName::parse(name)?,
        partner,
    };
    let (created, _) = register(state, input, setup())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(created)
}

/// Registers `count` parcels of `shipper` through its command bus, tracking numbers
/// `{prefix}0000000000`, `{prefix}0000000001`, …; returns their ids in that order.
pub(crate) async fn register_shipments(
    state: &Arc<AppState>,
    shipper: ShipperId,
    count: usize,
    prefix: char,
) -> anyhow::Result<Vec<ShipmentId>> {
    register_parcels(state, shipper, count, prefix, false).await
}

/// [`register_shipments`], each parcel with a recipient reference `crm-{prefix}{i}` when
/// `subjects` (what erasures by data subject look up).
pub(crate) async fn register_parcels(
    state: &Arc<AppState>,
    shipper: ShipperId,
    count: usize,
    prefix: char,
    subjects: bool,
) -> anyhow::Result<Vec<ShipmentId>> {
    let ids: Vec<ShipmentId> = (0..count)
        .map(|_| ShipmentId::from_uuid(Uuid::now_v7()))
        .collect();
    let commands = ids.iter().enumerate().map(|(i, id)| {
        let id = *id;
        let state = state.clone();
        async move {
            let command = ShipmentCommand::RegisterShipment {
                id,
                shipper,
                carrier: CarrierCode::parse(CARRIERS[i % 4])?,
                tracking_number: TrackingNumber::parse(format!("{prefix}{i:010}"))?,
                destination_country: CountryCode::parse("DE")?,
                recipient_ref: subjects
                    .then(|| RecipientRef::parse(format!("crm-{prefix}{i}")))
                    .transpose()?,
            };
            state
                .shipments
                .execute(&id.to_string(), command, setup())
                .await?;
            Ok(())
        }
    });
    in_flight(commands).await?;
    Ok(ids)
}

/// Runs `work`, 64 at a time, so that the group commit shares the commits: one commit per
/// command would take most of a run's time on PostgreSQL. Returns the results in the order
/// they completed.
pub(crate) async fn in_flight<T, Fut>(work: impl IntoIterator<Item = Fut>) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut done = Vec::new();
    let mut pending = tokio::task::JoinSet::new();
    for job in work {
        pending.spawn(job);
        if pending.len() >= 64 {
            if let Some(finished) = pending.join_next().await {
                done.push(finished??);
            }
        }
    }
    while let Some(finished) = pending.join_next().await {
        done.push(finished??);
    }
    Ok(done)
}

/// Serves the real app for `state` on a loopback port the system picks; returns its URL.
pub(crate) fn serve_on_loopback(state: &Arc<AppState>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(consent_ledger_api::server::run(listener, state.clone())?);
    Ok(url)
}

impl Fixture {
    /// The fixture's shipper.
    pub(crate) fn shipper(&self) -> anyhow::Result<ShipperId> {
        self.state
            .projector
            .read()
            .principals
            .values()
            .find(|p| p.role == Role::Shipper)
            .map(|p| p.id.as_shipper())
            .context("the fixture has no shipper")
    }
}

/// A consent of every shipment of `shipper` to `partner`: insurance claims, status events and
/// proof of delivery, under contract, open-ended.
pub(crate) fn shipper_wide_grant(
    id: ConsentId,
    shipper: ShipperId,
    partner: PartnerId,
) -> anyhow::Result<ConsentCommand> {
    Ok(ConsentCommand::GrantConsent {
        id,
        shipper,
        partner,
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
    })
}

/// What the durable floor ([`crate::floor`]) does with a body before it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FloorCommit {
    /// Nothing: answers after the hand-off to its commit thread.
    HandOff,
    /// Writes it into a preallocated file, one fdatasync for all waiting.
    File,
    /// Commits it as a row of an SQLite table opened as the log's is, one transaction for all
    /// waiting.
    SqliteRow,
}

/// A `consent-ledger serve` process on a loopback port: a second node of `bench decisions
/// --nodes 2`, the server `bench http` loads from outside. Stopped with SIGTERM, and waited
/// for, when dropped.
pub(crate) struct ServeProcess {
    child: Child,
    pub(crate) url: String,
}

impl ServeProcess {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `serve` on `data_dir` (created if needed), on `database_url` if given, else on
    /// the directory's SQLite file; what it logs goes to `data_dir/serve.log`.
    pub(crate) fn start(data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let mut command = Command::new(server_binary()?);
        command
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        Self::listening(command, data_dir)
    }

    /// `consent-ledger-bench durable-floor` ([`crate::floor`]) writing into `dir`, this
    /// harness's own binary, on a loopback port, committing each body as `commit` says.
    pub(crate) fn durable_floor(dir: &Path, commit: FloorCommit) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut command = Command::new(std::env::current_exe().context("finding this executable")?);
        command.arg("durable-floor").arg("--dir").arg(dir);
        match commit {
            FloorCommit::HandOff => command.arg("--no-sync"),
            FloorCommit::File => &mut command,
            FloorCommit::SqliteRow => command.arg("--sqlite"),
        };
        Self::listening(command, dir)
    }

    /// Runs `command` until it prints `consent-ledger listening on URL`; what it logs goes to
    /// `dir/serve.log`.
    fn listening(mut command: Command, dir: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let child = command
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let mut server = Self {
            child,
            url: String::new(),
        };
        let stdout = server.child.stdout.take().context("the server's stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        server.url = loop {
            let Some(line) = lines.next().transpose()? else {
                anyhow::bail!(
                    "the server stopped before listening: see {}",
                    dir.join("serve.log").display()
                );
            };
            if let Some(url) = line.trim().strip_prefix("consent-ledger listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining what it prints, so that it never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(server)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The `consent-ledger` binary to serve: `CONSENT_LEDGER_BIN` if set, else the one built
/// beside this harness (`cargo build --release --workspace` puts both in one folder).
fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CONSENT_LEDGER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let here = std::env::current_exe().context("finding this executable")?;
    let beside = here.with_file_name("consent-ledger");
    anyhow::ensure!(
        beside.is_file(),
        "no consent-ledger binary at {}: build the workspace, or set CONSENT_LEDGER_BIN",
        beside.display()
    );
    Ok(beside)
}

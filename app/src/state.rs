//! Everything a request handler needs, built once at start.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use consent_ledger_audit::LogKey;
use consent_ledger_domain::authorization::Authorization;
use consent_ledger_domain::consent::Consent;
use consent_ledger_domain::dpa::Dpa;
use consent_ledger_domain::principal::Principal;
use consent_ledger_domain::request::ConsentRequest;
use consent_ledger_domain::shipment::Shipment;
use consent_ledger_domain::subscription::Subscription;
use consent_ledger_domain::webhook::WebhookEndpoint;
use consent_ledger_domain::{Clock, Directory, IdGenerator, LedgerServices, UuidV7};
use consent_ledger_projections::gdpr::GdprProjector;
use consent_ledger_projections::Projector;
use consent_ledger_store::cqrs::CommandBus;
use consent_ledger_store::{Store, StoreLocation};

use crate::rate_limit::{RateClock, RateLimits};

/// Tunables of the running service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How long a consent request stays pending before it expires (SPEC §3: 30 days).
    pub request_ttl: chrono::Duration,
    /// The log's origin: names the signing key and every checkpoint.
    pub origin: String,
    /// Requests a second for each authenticated principal, and unknown tokens a second for each
    /// client address ([`crate::rate_limit`]); `None`, the default: no limit.
    pub rate_limit: Option<NonZeroU32>,
    /// The time the rate limits refill on: monotonic; tests move their own.
    pub rate_clock: RateClock,
    /// Where webhooks may go (SPEC §13): `serve --webhooks-allow-insecure-loopback` lets
    /// loopback `http` URLs through, for tests and local development only.
    pub webhook_targets: crate::webhooks::target::TargetPolicy,
    /// How long before a consent ends its partner gets `consent.expiring` (SPEC §13: `serve
    /// --expiring-notice-days`, default 7).
    pub expiring_notice: chrono::Duration,
    /// How long after a shipment's journey ended (`delivered`, `returned_to_sender`) its
    /// subscriptions end (SPEC §14: 14 days).
    pub subscription_end: chrono::Duration,
    /// Events the GDPR projection may be behind the log for the access view, the DSAR and the
    /// record of processing to catch it up before answering; further behind, they read what it
    /// has not applied from the log instead of waiting for it (`gdpr::tail`). 0: always from
    /// the log when behind.
    pub audit_tail_after: u64,
}

/// See [`ServiceConfig::audit_tail_after`]: about half a second of the projection's catch-up
/// at the decisions' priority (~30 µs an event), a few milliseconds read from the log.
pub const DEFAULT_AUDIT_TAIL_AFTER: u64 = 20_000;

/// The origin of a log whose operator named none.
pub const DEFAULT_ORIGIN: &str = "consent-ledger.local/log";

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            request_ttl: chrono::Duration::days(30),
            origin: DEFAULT_ORIGIN.to_owned(),
            rate_limit: None,
            rate_clock: RateClock::default(),
            webhook_targets: Default::default(),
            expiring_notice: chrono::Duration::days(7),
            subscription_end: chrono::Duration::days(14),
            audit_tail_after: DEFAULT_AUDIT_TAIL_AFTER,
        }
    }
}

/// Where the store lives and where the signing key is kept.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

impl StoreOptions {
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        match &self.database_url {
            Some(url) => StoreLocation::from_url(url).context("reading --database-url"),
            None => Ok(StoreLocation::in_data_dir(&self.data_dir)),
        }
    }

    /// Where this node keeps its read-model snapshot.
    pub fn snapshot_path(&self) -> PathBuf {
        self.data_dir.join("projections.snapshot")
    }

    /// Creates the data directory if needed (it holds the SQLite files, the read-model
    /// snapshot and the signing key), its owner's alone: mode 0700, and an existing one is
    /// narrowed to its owner's bits (security issue: created 0755, it let every local user
    /// list and read what it held).
    pub fn ensure_data_dir(&self) -> anyhow::Result<()> {
        let dir = &self.data_dir;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        owner_only(dir);
        Ok(())
    }
}

/// Takes the group's and others' permissions off `path` (0600 for a file, 0700 for a directory
/// made by `ensure_data_dir`), if it exists with any. One this process may not change
/// (another user's) is left as it is, with a warning.
pub fn owner_only(path: &Path) {
    if let Err(e) = narrow(path) {
        tracing::warn!(path = %path.display(), error = %e,
            "cannot make this readable by its owner only");
    }
}

fn narrow(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                let mode = meta.permissions().mode() & 0o700;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Counters of what the API answered, for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub decisions_allowed: std::sync::atomic::AtomicU64,
    pub decisions_denied: std::sync::atomic::AtomicU64,
    /// `PersonalDataErased` events this node recorded (SPEC §12).
    pub erasures: std::sync::atomic::AtomicU64,
    /// Shipments retention erased on this node.
    pub retention_erased: std::sync::atomic::AtomicU64,
    /// This node's webhook deliveries (SPEC §13).
    pub webhooks: crate::webhooks::metrics::DeliveryMetrics,
}

pub struct AppState {
    pub metrics: Metrics,
    /// The webhook worker's signing keys by public key, read from the store once each.
    pub signing_keys: crate::webhooks::metrics::SigningKeys,
    /// The log's signing key (C2SP signed-note key in the data directory).
    pub log_key: Arc<LogKey>,
    pub store: Store,
    pub projector: Projector,
    /// The GDPR tables (access history, DSAR, RoPA), caught up from the log outside the group
    /// commit (docs/adr/0006).
    pub gdpr: GdprProjector,
    pub clock: Arc<dyn Clock>,
    /// Where new ids (decisions, consents, requests, …) come from.
    pub ids: Arc<dyn IdGenerator>,
    pub config: ServiceConfig,
    /// Taken from by every authenticated request ([`crate::auth::authenticate`]).
    pub rate_limits: RateLimits,
    pub principals: CommandBus<Principal>,
    pub shipments: CommandBus<Shipment>,
    pub consents: CommandBus<Consent>,
    pub requests: CommandBus<ConsentRequest>,
    pub webhooks: CommandBus<WebhookEndpoint>,
    pub subscriptions: CommandBus<Subscription>,
    pub dpas: CommandBus<Dpa>,
    pub authorizations: CommandBus<Authorization>,
    /// Console sessions of this node (SPEC §15).
    pub sessions: crate::sessions::Sessions,
    /// The read-model snapshot's file, rewritten after an erasure (SPEC §12).
    pub snapshot_path: PathBuf,
    /// One clean-up after erasures at a time ([`crate::erasure::scrub`]).
    pub scrubbing: tokio::sync::Mutex<()>,
    /// A clean-up is asked for and has not started ([`crate::erasure::spawn_scrub`]).
    pub scrub_requested: std::sync::atomic::AtomicBool,
    /// The last clean-up failed: the housekeeping loop starts another.
    pub scrub_failed: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Opens the store, brings the read model up to date, and wires the command buses.
    #[tracing::instrument(skip_all, fields(data_dir = %options.data_dir.display()))]
    pub async fn open(
        options: &StoreOptions,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let location = options.location()?;
        if matches!(location, StoreLocation::SqliteFile(_)) && options.database_url.is_none() {
            options.ensure_data_dir()?;
        }
        let store = Store::open(&location)
            .await
            .context("opening the event store")?;
        let projector = Projector::new(store.clone());
        // The writer applies each committed batch to the read model before answering.
        store.set_commit_hook(Arc::new(projector.clone()));
        let snapshot = options.snapshot_path();
        let started = std::time::Instant::now();
        match projector
            .load_snapshot(&snapshot)
            .await
            .context("loading the projection snapshot")?
        {
            Some(at) => {
                tracing::info!(position = %at, seconds = started.elapsed().as_secs_f64(), "read model loaded from snapshot")
            }
            None => {
                tracing::info!("no usable snapshot; building the read model from the whole log");
                // Nothing is served yet, so nothing commits here meanwhile; what another
                // process commits is caught up below.
                projector.install(
                    Projector::replay(&store, |_| {})
                        .await
                        .context("replaying the log")?,
                );
            }
        }
        let applied = projector
            .catch_up()
            .await
            .context("building the read model from the log")?;
        tracing::info!(position = %applied, seconds = started.elapsed().as_secs_f64(), "read model ready");
        let directory: Arc<dyn Directory> = Arc::new(projector.clone());
        let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7);
        let services = LedgerServices::with_ids(clock.clone(), ids.clone(), directory);
        let key_path = options.data_dir.join("log.key");
        options.ensure_data_dir()?;
        let log_key = Arc::new(
            LogKey::load_or_create(&key_path, &config.origin)
                .context("loading the log signing key")?,
        );
        // A key copied to another node (cp, scp) may have been given the copier's umask.
        owner_only(&key_path);
        owner_only(&snapshot);
        Ok(Arc::new(Self {
            metrics: Metrics::default(),
            signing_keys: Default::default(),
            log_key,
            principals: CommandBus::new(store.clone(), services.clone()),
            shipments: CommandBus::new(store.clone(), services.clone()),
            consents: CommandBus::new(store.clone(), services.clone()),
            requests: CommandBus::new(store.clone(), services.clone()),
            webhooks: CommandBus::new(store.clone(), services.clone()),
            subscriptions: CommandBus::new(store.clone(), services.clone()),
            dpas: CommandBus::new(store.clone(), services.clone()),
            authorizations: CommandBus::new(store.clone(), services),
            sessions: crate::sessions::Sessions::default(),
            gdpr: GdprProjector::new(store.clone()),
            store,
            projector,
            clock,
            ids,
            rate_limits: RateLimits::new(config.rate_limit, config.rate_clock.clone()),
            config,
            snapshot_path: snapshot,
            scrubbing: tokio::sync::Mutex::new(()),
            scrub_requested: std::sync::atomic::AtomicBool::new(false),
            scrub_failed: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

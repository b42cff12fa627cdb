//! # consent-ledger store
//!
//! The event store of SPEC §4, §5 and §9: one append-only global log with gapless positions,
//! and the cqrs-es persistence trait over it. Every SQL statement of the product lives here.
//!
//! # Layout
//! - [`event`]: [`Position`], [`NewEvent`], [`Append`], [`StoredEvent`].
//! - [`error`]: [`StoreError`]; the one place where unique violations become typed errors.
//! - `group_commit`: the writer task that batches concurrent appends into one fsync, and
//!   hands each batch to its backend's write path.
//! - `write_path`: the commit of a batch, the same on both backends — restriction fence,
//!   positions and `recorded_at` stamped, events inserted (fast path, or one SAVEPOINT per
//!   append when a unique key refuses one), Merkle leaves and every subtree they complete
//!   (RFC 9162 §2.1) — over the `LogWriter` trait whose methods run one step's SQL each.
//! - [`outbox`]: delivering the webhook outbox — claims with leases, attempts, redelivery.
//! - [`tracking`]: the carrier's tracking updates, personal data beside the log (SPEC §14).
//! - `reads`: the reads whose SQL is the same on both backends, generated for each from one
//!   macro body; so are the writer's common statements.
//! - `sqlite`: the embedded backend (WAL, synchronous=FULL): its `LogWriter` (multi-row
//!   INSERTs), the decision scan, and the GDPR file's pool.
//! - `postgres`: the server backend several processes share (docs/adr/0005): its `LogWriter`
//!   (the `log_head` lock, INSERTs over arrays, NOTIFY), the decision scan, the listener.
//! - [`cqrs`]: [`cqrs::LedgerEventStore`] (cqrs-es `EventStore`) and [`cqrs::CommandBus`].
//! - [`gdpr`]: the GDPR projection's tables (docs/adr/0006; SQL names `audit_*`), written by
//!   the GDPR projector's catch-up in its own transactions, never in the group commit.
//! - `baseline` (feature `baseline`): plain-SQL and per-command stores the benchmarks compare
//!   with.
//! - `testing` (feature `testing`): scratch PostgreSQL databases for the test suites.
//!
//! No two modules import each other: the backends import `write_path` and `reads`, and
//! `group_commit` imports the backends; neither of the shared modules imports a backend.
//!
//! Revocation is effective at commit (SPEC §5.2): an append may restrict (move the
//! restriction fence) or be guarded by it ([`Guard`]); see docs/adr/0003.
//!
//! Hot path: `Store::append → GroupCommit (one task) → backend commit_batch: fence → stamp →
//! insert events → leaves → Merkle append → one fsync → positions back`.

/// The columns every event query reads and writes, in a macro so queries stay `'static` SQL
/// for sqlx.
macro_rules! event_columns {
    () => {
        "position, stream_type, stream_id, stream_version, event_type, schema_version, actor, request_id, recorded_at, payload"
    };
}

#[cfg(feature = "baseline")]
pub mod baseline;
pub mod cqrs;
pub mod error;
pub mod event;
pub mod gdpr;
mod group_commit;
pub mod outbox;
mod postgres;
mod reads;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tracking;
mod unsynced;
pub use unsynced::process_running;
mod write_path;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::{PgPool, SqlitePool};
use tokio::sync::{oneshot, watch};

pub use error::StoreError;

/// Positions [`Store::scan_decisions`] reads per statement.
pub const SCAN_STEP: u64 = 16_384;
pub use event::{
    decode_opened, subject_digest, Append, Credential, DecisionScan, Erasure, Guard,
    IdempotencyClaim, IdempotencyRecord, IssuedCredential, NewEvent, OpenedField, OutboxMessage,
    Payload, Position, Provenance, QueuedMessage, RawEvent, ReadLeaf, StoredEvent, TextFieldRange,
    WebhookKeyRow,
};

use std::collections::HashMap;

use consent_ledger_audit::tree::{self, Hash, NodeId, TreeError};
pub use group_commit::{CommitHook, WriterStats};
use group_commit::{GroupCommit, HookSlot, WriteConnection};
pub use write_path::TRACKING_UPDATE_CLAIM;

/// Leaves in a block of [`Store::inclusion_proofs`]: 2^14, whose leaf hashes are 512 KiB.
const BLOCK_LEVEL: u32 = 14;

/// Proofs in one block from which reading and hashing the whole block is cheaper than a path's
/// look-ups per proof (a block costs about as much as 50 single paths).
const DENSE_BLOCK: usize = 64;

/// A leaf's stored hash and its inclusion proof, from [`Store::inclusion_proofs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub leaf: Hash,
    /// PATH(m, D[n]), RFC 9162 §2.1.3.1, leaf first.
    pub path: Vec<Hash>,
}

/// Where the store lives (SPEC §8: `--data-dir` or `--database-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file, created on first open.
    SqliteFile(PathBuf),
    /// A PostgreSQL database, migrated on first open; several processes may share it.
    Postgres(PostgresUrl),
}

impl StoreLocation {
    /// Reads a `--database-url`: `sqlite://PATH` (or `sqlite:PATH`), or
    /// `postgres://…` / `postgresql://…`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let opts =
                sqlite::parse_url(url).map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?;
            return Ok(Self::SqliteFile(opts.get_filename().to_path_buf()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PostgresUrl::parse(url).map(Self::Postgres);
        }
        // Never echo what may be a URL with a password in it.
        Err(StoreError::UnsupportedUrl(
            url.split("://").next().unwrap_or_default().to_owned() + "://…",
        ))
    }

    /// The embedded default: `ledger.db` in the data directory.
    pub fn in_data_dir(dir: &Path) -> Self {
        Self::SqliteFile(dir.join("ledger.db"))
    }

    /// The file of the GDPR projection beside an SQLite log, still named `ledger.audit.db` so
    /// that existing data directories keep working (on PostgreSQL its tables
    /// share the database: none).
    pub fn gdpr_file(&self) -> Option<PathBuf> {
        match self {
            Self::SqliteFile(path) => Some(sqlite::gdpr_path(path)),
            Self::Postgres(_) => None,
        }
    }
}

/// A `postgres://` URL. It may hold a password, so it never shows in `Debug` or `Display`
/// output (logs, panics, error messages) with it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Checks that `url` is a PostgreSQL connection URL sqlx can use.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let candidate = Self(url.to_owned());
        postgres::connect_options(&candidate)?;
        Ok(candidate)
    }

    /// The same server and credentials, naming database `name` (letters, digits and `_`).
    pub fn with_database(&self, name: &str) -> Result<Self, StoreError> {
        let refused = || StoreError::UnsupportedUrl(format!("{self} with database {name:?}"));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(refused());
        }
        let (scheme, rest) = self.0.split_once("://").ok_or_else(refused)?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let authority = before_query.split('/').next().unwrap_or_default();
        let mut url = format!("{scheme}://{authority}/{name}");
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        Self::parse(&url)
    }

    /// The URL itself, password included: only for connecting.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// `postgres://user:***@host:port/db?…`: everything but the password.
impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str("postgres://***");
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _password)) => write!(f, "{scheme}://{user}:***@{host}{tail}"),
                None => write!(f, "{scheme}://{credentials}@{host}{tail}"),
            },
            None => write!(f, "{scheme}://{authority}{tail}"),
        }
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// A handle on the event store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    reads: Reads,
    /// The GDPR projection's tables (docs/adr/0006): on SQLite a file of their own
    /// beside the log, so that their writes never hold the log's write lock; on PostgreSQL the
    /// same pool (row locks do not serialise writers).
    gdpr: Reads,
    /// The GDPR projection's writes: on SQLite a connection of their own, whose thread runs at
    /// a lower CPU priority than the decision path's; on PostgreSQL the same pool.
    gdpr_writes: Reads,
    /// The same writes when a request waits on them ([`Store::gdpr_apply_now`]): on SQLite a
    /// connection at the decisions' priority; on PostgreSQL the same pool.
    gdpr_writes_now: Reads,
    /// The log as the GDPR projection's catch-up reads it: on SQLite a connection of its own,
    /// whose thread runs at the projection writer's lower priority; on PostgreSQL the read pool.
    behind: Reads,
    /// Where the GDPR file is written without fsync: finished by [`Store::close`].
    unsynced: std::sync::Mutex<Option<unsynced::UnsyncedWrites>>,
    writer: GroupCommit,
    hook: HookSlot,
    /// The log's size as far as this process knows: its own commits, and on PostgreSQL every
    /// process's, once [`Store::subscribe`] started listening.
    committed: Arc<watch::Sender<Position>>,
    /// Announced when a commit queued webhook messages or a message was made due again
    /// ([`Store::subscribe_outbox`]).
    outbox: Arc<watch::Sender<Position>>,
    /// Dropping this (with the last handle) stops the PostgreSQL listener task.
    listening: std::sync::OnceLock<oneshot::Sender<()>>,
}

/// The read side of one backend: a pool of connections beside the writer's.
enum Reads {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Calls the function of the same name in the backend module of `$store`'s read pool, with the
/// pool as first argument: both modules offer the same read functions.
macro_rules! on_backend {
    ($store:expr, $f:ident($($arg:expr),*)) => {
        match &$store.inner.reads {
            Reads::Sqlite(pool) => sqlite::$f(pool, $($arg),*).await,
            Reads::Postgres(pool) => postgres::$f(pool, $($arg),*).await,
        }
    };
}

/// Calls the [`tracking`] function of the same name for `$store`'s backend.
macro_rules! on_tracking {
    ($store:expr, $f:ident($($arg:expr),*)) => {
        match &$store.inner.reads {
            Reads::Sqlite(pool) => tracking::sqlite::$f(pool, $($arg),*).await,
            Reads::Postgres(pool) => tracking::postgres::$f(pool, $($arg),*).await,
        }
    };
}

/// Calls the [`outbox`] function of the same name for `$store`'s backend, over its read pool.
macro_rules! on_outbox {
    ($store:expr, $f:ident($($arg:expr),*)) => {
        match &$store.inner.reads {
            Reads::Sqlite(pool) => outbox::sqlite::$f(pool, $($arg),*).await,
            Reads::Postgres(pool) => outbox::postgres::$f(pool, $($arg),*).await,
        }
    };
}

impl Store {
    /// Opens the store, creating and migrating it if needed, and starts its writer.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        let (reads, behind, (gdpr, gdpr_writes, gdpr_writes_now, unsynced), writer) = match location
        {
            StoreLocation::SqliteFile(path) => {
                let (reads, writer) = sqlite::open(path).await?;
                let gdpr = sqlite::open_gdpr(&sqlite::gdpr_path(path)).await?;
                (
                    Reads::Sqlite(reads),
                    Reads::Sqlite(sqlite::follower_reads(path)),
                    (
                        Reads::Sqlite(gdpr.reads),
                        Reads::Sqlite(gdpr.writes),
                        Reads::Sqlite(gdpr.writes_now),
                        gdpr.unsynced,
                    ),
                    WriteConnection::Sqlite(sqlite::Writer::new(writer)),
                )
            }
            StoreLocation::Postgres(url) => {
                let (reads, writer) = postgres::open(url).await?;
                (
                    Reads::Postgres(reads.clone()),
                    Reads::Postgres(reads.clone()),
                    (
                        Reads::Postgres(reads.clone()),
                        Reads::Postgres(reads.clone()),
                        Reads::Postgres(reads),
                        None,
                    ),
                    WriteConnection::Postgres(Box::new(writer)),
                )
            }
        };
        let size = match &reads {
            Reads::Sqlite(pool) => sqlite::next_position(pool).await?,
            Reads::Postgres(pool) => postgres::next_position(pool).await?,
        };
        let committed = Arc::new(watch::Sender::new(size));
        let outbox = match &reads {
            Reads::Sqlite(_) => Arc::new(watch::Sender::new(size)),
            Reads::Postgres(_) => committed.clone(),
        };
        let hook = HookSlot::default();
        let writer = GroupCommit::spawn(
            writer,
            hook.clone(),
            group_commit::Announced {
                committed: committed.clone(),
                outbox: outbox.clone(),
            },
        )
        .map_err(|e| StoreError::unavailable(sqlx::Error::Io(e)))?;
        if let Reads::Sqlite(pool) = &reads {
            tokio::spawn(sqlite::checkpoint_behind(
                pool.clone(),
                committed.subscribe(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                reads,
                gdpr,
                gdpr_writes,
                gdpr_writes_now,
                behind,
                unsynced: std::sync::Mutex::new(unsynced),
                writer,
                hook,
                committed,
                outbox,
                listening: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Whether the log is the embedded SQLite file (not a PostgreSQL server's database).
    pub fn is_embedded(&self) -> bool {
        matches!(self.inner.reads, Reads::Sqlite(_))
    }

    /// The log's size (the position the next event will get) each time it grows, as far as
    /// this process learns of it: every batch its own writer commits and, on PostgreSQL, every
    /// commit of any process sharing the database (LISTEN on the channel each committing
    /// transaction NOTIFYs; after a lost connection the size is read again, so nothing is
    /// missed for long). On SQLite, other processes' commits are not announced: readers also
    /// catch up periodically. Must be called inside a Tokio runtime (it may start the listener).
    pub fn subscribe(&self) -> watch::Receiver<Position> {
        if let Reads::Postgres(pool) = &self.inner.reads {
            self.inner.listening.get_or_init(|| {
                let (stop, stopped) = oneshot::channel();
                tokio::spawn(postgres::listen(
                    pool.clone(),
                    self.inner.committed.clone(),
                    stopped,
                ));
                stop
            });
        }
        self.inner.committed.subscribe()
    }

    /// Changes each time webhook messages may have become due: a commit of this process that
    /// queued some, a message made due again ([`Store::redeliver`]) and, on PostgreSQL, every
    /// commit of any process (whose announcements do not say what they queued). The webhook
    /// worker waits on this rather than on every commit: on SQLite a decision that queues
    /// nothing no longer wakes it to look at the outbox. Must be called inside a Tokio runtime.
    pub fn subscribe_outbox(&self) -> watch::Receiver<Position> {
        if !self.is_embedded() {
            drop(self.subscribe());
        }
        self.inner.outbox.subscribe()
    }

    /// Installs the hook told of every committed batch before its callers are answered. Only
    /// the first call takes effect.
    pub fn set_commit_hook(&self, hook: Arc<dyn CommitHook>) {
        let _ = self.inner.hook.set(hook);
    }

    /// Appends atomically and durably; the answer carries each event's position.
    #[tracing::instrument(level = "trace", skip_all, fields(events = append.events.len()))]
    pub async fn append(&self, append: Append) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.writer.append(append).await
    }

    /// Every event of one stream, in stream order.
    #[tracing::instrument(level = "debug", skip_all, fields(stream_type = stream_type))]
    pub async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_stream(stream_type, stream_id))
    }

    /// The events at `positions` (ascending), in log order.
    #[tracing::instrument(level = "debug", skip_all, fields(positions = positions.len()))]
    pub async fn read_positions(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_positions(positions))
    }

    /// Every event of the streams `ids` of one type recorded before position `before`, in log
    /// order.
    #[tracing::instrument(level = "debug", skip_all, fields(stream_type = stream_type, streams = ids.len()))]
    pub async fn read_streams(
        &self,
        stream_type: &str,
        ids: &[String],
        before: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_streams(stream_type, ids, before))
    }

    /// Up to `limit` events from position `from` on, in log order.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
    pub async fn read_range(
        &self,
        from: Position,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_range(from, limit))
    }

    /// The same events as [`Store::read_range`], for the GDPR projection's catch-up: on SQLite
    /// read as [`Store::read_pages`] reads them, on the caller's thread (in `serve` the
    /// projection's follower, at a lower CPU priority than the decision path's), through a
    /// connection of its own whose worker thread runs at that priority too, so that reading
    /// behind the decisions takes the CPU they leave.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
    pub async fn read_range_behind(
        &self,
        from: Position,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.inner.behind {
            Reads::Sqlite(pool) => sqlite::read_pages(pool, from, limit).await,
            Reads::Postgres(pool) => postgres::read_pages(pool, from, limit).await,
        }
    }

    /// The events [`Store::read_pages`] reads, each as its leaf hash, computed as it is read
    /// (on SQLite straight from SQLite's row, without building the event), and the event whole
    /// only where it has sealed fields, with their openings: for `audit-log`.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
    pub async fn read_leaves(
        &self,
        from: Position,
        limit: u32,
    ) -> Result<Vec<ReadLeaf>, StoreError> {
        match &self.inner.reads {
            Reads::Sqlite(pool) => sqlite::read_leaves(pool, from, limit).await,
            Reads::Postgres(pool) => Ok(postgres::read_range(pool, from, limit)
                .await?
                .into_iter()
                .map(ReadLeaf::of)
                .collect()),
        }
    }

    /// The same events as [`Store::read_range`], for a reader of the log's bulk (`audit-log`,
    /// `replay --audit`): on SQLite SQLite's statement stepped on the caller's thread, up to
    /// 1,024 events per statement, each value copied once, instead of a row per event handed
    /// across sqlx's worker thread (2.6 µs an event; BENCHMARKS.md, "Bulk log reads"). The
    /// caller's thread does SQLite's work, about 0.5 µs an event.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
    pub async fn read_pages(
        &self,
        from: Position,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_pages(from, limit))
    }

    /// Up to `limit` events of positions `from..end` in order, with payloads left as text,
    /// leaving out every event of the stream type `skipped`: for a reader that only counts
    /// those (a rebuild of the read model reads the log's bulk, access decisions, in SQLite's
    /// scan alone). `end` must not exceed the log's size.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), end = end.get(), limit = limit))]
    pub async fn read_range_except(
        &self,
        from: Position,
        end: Position,
        limit: u32,
        skipped: &str,
    ) -> Result<Vec<RawEvent>, StoreError> {
        on_backend!(self, read_range_except(from, end, limit, skipped))
    }

    /// The events of positions `range` that `scan` lets through, in order: a pre-selection in
    /// SQL, which the caller refines (see [`DecisionScan`]).
    #[tracing::instrument(level = "debug", skip_all, fields(start = range.start, end = range.end))]
    pub async fn read_decisions(
        &self,
        range: std::ops::Range<u64>,
        scan: &DecisionScan,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_decisions(range, scan))
    }

    /// [`Store::read_decisions`] over a range of any length, [`SCAN_STEP`] positions a
    /// statement, each statement's events handed to `take` in order until it answers false.
    pub async fn scan_decisions(
        &self,
        range: std::ops::Range<u64>,
        scan: &DecisionScan,
        mut take: impl FnMut(Vec<StoredEvent>) -> bool,
    ) -> Result<(), StoreError> {
        let mut start = range.start;
        while start < range.end {
            let end = start.saturating_add(SCAN_STEP).min(range.end);
            if !take(self.read_decisions(start..end, scan).await?) {
                break;
            }
            start = end;
        }
        Ok(())
    }

    /// The kept openings of shipments' registrations, as (shipment id, pointer, value).
    pub async fn shipment_openings(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        on_backend!(self, shipment_openings(ids))
    }

    /// Denials of unknown parcels that recorded one of `numbers`, by position.
    pub async fn asked_positions(&self, numbers: &[String]) -> Result<Vec<Position>, StoreError> {
        on_backend!(self, asked_positions(numbers))
    }

    /// The messages queued for a webhook endpoint, in log order (SPEC §13).
    pub async fn outbox_of(&self, endpoint_id: &str) -> Result<Vec<QueuedMessage>, StoreError> {
        on_outbox!(self, outbox_of(endpoint_id))
    }

    /// Whether a denial of an unknown parcel recorded before `before` still has its number.
    pub async fn asked_before(&self, before: Position) -> Result<bool, StoreError> {
        on_backend!(self, asked_before(before))
    }

    /// The shipments registered with this recipient reference and not erased (SPEC §12).
    pub async fn recipient_shipments(
        &self,
        recipient_ref: &str,
    ) -> Result<Vec<String>, StoreError> {
        on_backend!(self, recipient_shipments(recipient_ref))
    }

    /// The positions of the erasures that erased a recipient reference of this
    /// [`subject_digest`].
    pub async fn erasures_of_subject(&self, digest: &str) -> Result<Vec<Position>, StoreError> {
        on_backend!(self, erasures_of_subject(digest))
    }

    /// Up to `limit` shipments registered at positions in `(after, before)` whose tracking
    /// number is not erased, as (registration position, shipment id): retention's candidates.
    pub async fn unerased_shipments(
        &self,
        after: Option<Position>,
        before: Position,
        limit: u32,
    ) -> Result<Vec<(Position, String)>, StoreError> {
        on_backend!(self, unerased_shipments(after, before, limit))
    }

    /// Makes deleted personal data leave every file (SPEC §12): on SQLite, whose deleted rows
    /// are zeroed (`secure_delete`), a checkpoint that copies the WAL into the database and
    /// truncates it, for the log's file and the audit file; on PostgreSQL a VACUUM of the
    /// tables erasures delete from. Retried for up to `patience` while readers hold the WAL.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn scrub(&self, patience: std::time::Duration) -> Result<(), StoreError> {
        match (&self.inner.reads, &self.inner.gdpr) {
            (Reads::Sqlite(log), Reads::Sqlite(gdpr)) => {
                sqlite::scrub(log, patience).await?;
                sqlite::scrub(gdpr, patience).await
            }
            (Reads::Postgres(pool), _) => postgres::scrub(pool).await,
            (Reads::Sqlite(log), Reads::Postgres(_)) => sqlite::scrub(log, patience).await,
        }
    }

    /// The first position whose event was recorded at or after `at` (the log's size if none
    /// was): a binary search over positions, whose `recorded_at` follow them.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn first_recorded_since(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Position, StoreError> {
        let (mut lo, mut hi) = (0u64, self.next_position().await?.get());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let before = self
                .read_range(Position::new(mid), 1)
                .await?
                .first()
                .is_some_and(|e| e.recorded_at < at);
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(Position::new(lo))
    }

    /// The stored leaf hashes of positions `leaves`, in order; a missing one is
    /// [`StoreError::Corrupt`].
    #[tracing::instrument(level = "debug", skip_all, fields(start = leaves.start, end = leaves.end))]
    pub async fn leaf_range(&self, leaves: std::ops::Range<u64>) -> Result<Vec<Hash>, StoreError> {
        on_backend!(self, leaf_range(leaves))
    }

    /// The position the next committed event will get, i.e. the log's size.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn next_position(&self) -> Result<Position, StoreError> {
        on_backend!(self, next_position())
    }

    /// What an earlier request with this idempotency key committed, if any.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        on_backend!(self, idempotency(scope, key))
    }

    /// The credential a bearer-token digest belongs to, if it is any principal's current one
    /// (SPEC §2: rotation replaces it, so an old token finds nothing).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn credential(
        &self,
        token_sha256: &str,
    ) -> Result<Option<IssuedCredential>, StoreError> {
        on_backend!(self, credential(token_sha256))
    }

    /// The RFC 9162 root of the first `size` events, from stored subtree hashes.
    #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
    pub async fn tree_root(
        &self,
        size: u64,
    ) -> Result<consent_ledger_audit::tree::Hash, StoreError> {
        on_backend!(self, tree_root(size))
    }

    /// PATH(index, D[tree_size]) (RFC 9162 §2.1.3.1) from stored subtree hashes. The caller
    /// checks `index < tree_size <= log size`.
    #[tracing::instrument(level = "debug", skip_all, fields(index = index, tree_size = tree_size))]
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let nodes = tree::inclusion_path_nodes(index, tree_size).map_err(proof_error)?;
        let stored = self.stored_nodes(&nodes).await?;
        tree::inclusion_path(index, tree_size, |n| lookup(&stored, n)).map_err(proof_error)
    }

    /// The stored leaf hash and PATH(index, D[tree_size]) of each of `positions`, in the same
    /// order. Neighbouring positions share most of their paths, so where many fall in one block
    /// of 2^14 leaves the block's leaves are read once and hashed in memory
    /// ([`tree::MemoryTree`]), and the part of the path above the block is fetched once
    /// ([`tree::path_block`]); a lone position gets its own look-ups. Ascending positions share
    /// the most. The caller checks every `position < tree_size <= log size`.
    #[tracing::instrument(level = "debug", skip_all, fields(proofs = positions.len(), tree_size = tree_size))]
    pub async fn inclusion_proofs(
        &self,
        positions: &[u64],
        tree_size: u64,
    ) -> Result<Vec<Inclusion>, StoreError> {
        let mut proofs = Vec::with_capacity(positions.len());
        let mut rest = positions;
        while let Some(&first) = rest.first() {
            let block = tree::path_block(first, tree_size, BLOCK_LEVEL).map_err(proof_error)?;
            let here = rest.iter().take_while(|p| block.contains(p)).count();
            let (group, after) = rest.split_at(here);
            rest = after;
            if group.len() < DENSE_BLOCK {
                for &p in group {
                    let leaf =
                        NodeId::new(0, p).ok_or(proof_error(TreeError::IndexOutOfRange {
                            index: p,
                            tree_size,
                        }))?;
                    let mut nodes =
                        tree::inclusion_path_nodes(p, tree_size).map_err(proof_error)?;
                    nodes.push(leaf);
                    let stored = self.stored_nodes(&nodes).await?;
                    proofs.push(Inclusion {
                        leaf: lookup(&stored, leaf).map_err(proof_error)?,
                        path: tree::inclusion_path(p, tree_size, |n| lookup(&stored, n))
                            .map_err(proof_error)?,
                    });
                }
                continue;
            }
            let leaves = on_backend!(self, leaf_range(block.clone()))?;
            let inside = tree::MemoryTree::new(leaves);
            let nodes =
                tree::inclusion_path_above_nodes(block.clone(), tree_size).map_err(proof_error)?;
            let stored = self.stored_nodes(&nodes).await?;
            let above =
                tree::inclusion_path_above(block.clone(), tree_size, |n| lookup(&stored, n))
                    .map_err(proof_error)?;
            for &p in group {
                let index = p - block.start;
                let mut path = inside.inclusion_path(index).map_err(proof_error)?;
                path.extend_from_slice(&above);
                let leaf =
                    NodeId::new(0, index)
                        .and_then(|n| inside.node(n))
                        .ok_or(proof_error(TreeError::IndexOutOfRange {
                            index: p,
                            tree_size,
                        }))?;
                proofs.push(Inclusion { leaf, path });
            }
        }
        Ok(proofs)
    }

    /// PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1) from stored subtree hashes. The caller
    /// checks `old_size <= new_size <= log size`.
    #[tracing::instrument(level = "debug", skip_all, fields(old_size = old_size, new_size = new_size))]
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let nodes = tree::consistency_proof_nodes(old_size, new_size).map_err(proof_error)?;
        let stored = self.stored_nodes(&nodes).await?;
        tree::consistency_proof(old_size, new_size, |n| lookup(&stored, n)).map_err(proof_error)
    }

    /// The stored hashes of perfect subtrees, fetched before the (synchronous) proof math.
    async fn stored_nodes(&self, nodes: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let hashes = on_backend!(self, node_hashes(nodes))?;
        Ok(nodes.iter().copied().zip(hashes).collect())
    }

    /// Keeps a signed checkpoint of the first `size` events (kept forever; once per size).
    #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
    pub async fn save_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self, save_checkpoint(size, root, note))
    }

    /// The newest kept checkpoint, as (tree size, signed note).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        on_backend!(self, checkpoint_at_most(u64::MAX >> 1))
    }

    /// The newest kept checkpoint of at most `size` events.
    #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
    pub async fn checkpoint_at_most(&self, size: u64) -> Result<Option<(u64, String)>, StoreError> {
        on_backend!(self, checkpoint_at_most(size))
    }

    /// Stored leaf hashes from position `from` on, as (position, bytes), for `audit-log`.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from, limit = limit))]
    pub async fn leaf_hashes(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        on_backend!(self, leaf_hashes(from, limit))
    }

    /// Every kept checkpoint, oldest first, as (tree size, signed note).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        on_backend!(self, checkpoints())
    }

    /// The writer's counters (for `/metrics`).
    pub fn writer_stats(&self) -> &WriterStats {
        self.inner.writer.stats()
    }

    /// The position the GDPR projection has applied up to (exclusive).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_position(&self) -> Result<Position, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_position(pool).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_position(pool).await,
        }
    }

    /// Empties the GDPR projection and moves it back to position 0, to be rebuilt.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_reset(&self) -> Result<(), StoreError> {
        match &self.inner.gdpr_writes {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_reset(pool).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_reset(pool).await,
        }
    }

    /// Writes the GDPR rows of the events `from..next` and moves the GDPR projection to
    /// `next` in one transaction, if it is still at `from`; `false` when another process
    /// applied them first (nothing written).
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), next = next.get(), accesses = batch.accesses.len()))]
    pub async fn gdpr_apply(
        &self,
        from: Position,
        next: Position,
        batch: &gdpr::GdprBatch,
    ) -> Result<bool, StoreError> {
        gdpr_apply_through(&self.inner.gdpr_writes, from, next, batch).await
    }

    /// Blanks at once, at the decisions' priority, what the erasures of `batch` erased from the
    /// rows the GDPR projection holds, leaving its position where it is (SPEC §12's 60 s do not
    /// wait for it to reach the erasures in log order).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_blank(&self, batch: &gdpr::GdprBatch) -> Result<(), StoreError> {
        match &self.inner.gdpr_writes_now {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_blank(pool, batch).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_blank(pool, batch).await,
        }
    }

    /// [`Store::gdpr_apply`] for a catch-up a request waits on: on SQLite through a connection
    /// at the decisions' priority, where [`Store::gdpr_apply`]'s runs only on the CPU they leave
    /// (docs/adr/0006), so that a view asked under load is not held back by that load.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), next = next.get(), accesses = batch.accesses.len()))]
    pub async fn gdpr_apply_now(
        &self,
        from: Position,
        next: Position,
        batch: &gdpr::GdprBatch,
    ) -> Result<bool, StoreError> {
        gdpr_apply_through(&self.inner.gdpr_writes_now, from, next, batch).await
    }

    /// Up to `limit` projected access decisions matching `filter`, after position `after`,
    /// in log order.
    #[tracing::instrument(level = "debug", skip_all, fields(after = after, limit = limit))]
    pub async fn gdpr_access(
        &self,
        filter: &gdpr::AccessFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<gdpr::GdprAccess>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_access(pool, filter, after, limit).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_access(pool, filter, after, limit).await,
        }
    }

    /// The projected shipments a data subject's key names, in registration order.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_shipments(
        &self,
        key: &gdpr::SubjectKey,
    ) -> Result<Vec<gdpr::GdprShipment>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_shipments(pool, key).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_shipments(pool, key).await,
        }
    }

    /// The projected shipments of `ids`: those the GDPR projection has applied.
    #[tracing::instrument(level = "debug", skip_all, fields(ids = ids.len()))]
    pub async fn gdpr_shipments_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<gdpr::GdprShipment>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_shipments_by_id(pool, ids).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_shipments_by_id(pool, ids).await,
        }
    }

    /// Projected decisions per partner with `from <= decided_at < to` (microseconds).
    #[tracing::instrument(level = "debug", skip_all, fields(from = from, to = to))]
    pub async fn gdpr_counts(
        &self,
        from: i64,
        to: i64,
    ) -> Result<std::collections::BTreeMap<String, gdpr::PartnerCounts>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => gdpr::sqlite::gdpr_counts(pool, from, to).await,
            Reads::Postgres(pool) => gdpr::postgres::gdpr_counts(pool, from, to).await,
        }
    }

    /// Claims due webhook messages for this node's worker (SPEC §13; [`outbox`]).
    pub async fn claim_messages(
        &self,
        node: &str,
        limits: outbox::ClaimLimits,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        on_outbox!(self, claim_messages(node, limits))
    }

    /// Records finished delivery attempts and claims the next due messages, in one
    /// transaction (one commit per worker cycle).
    pub async fn record_and_claim(
        &self,
        node: &str,
        records: &[outbox::AttemptRecord],
        limits: outbox::ClaimLimits,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        on_outbox!(self, record_and_claim(node, records, limits))
    }

    /// Records finished delivery attempts, in one transaction.
    pub async fn record_attempts(
        &self,
        node: &str,
        records: &[outbox::AttemptRecord],
    ) -> Result<(), StoreError> {
        on_outbox!(self, record_attempts(node, records))
    }

    /// Releases the webhook leases `node` holds (its previous life's, at its start).
    pub async fn release_leases(&self, node: &str) -> Result<u64, StoreError> {
        on_outbox!(self, release_leases(node))
    }

    /// A webhook endpoint's signing keys as `(whpk_…, whsk_…)`, newest first.
    pub async fn webhook_secrets(
        &self,
        endpoint_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_outbox!(self, webhook_secrets(endpoint_id))
    }

    /// A webhook endpoint's delivery attempts after `cursor`, newest first.
    pub async fn deliveries(
        &self,
        endpoint_id: &str,
        cursor: &outbox::AttemptCursor,
        limit: u32,
    ) -> Result<Vec<outbox::DeliveryAttempt>, StoreError> {
        on_outbox!(self, deliveries(endpoint_id, cursor, limit))
    }

    /// A queued webhook message's endpoint and state.
    pub async fn message_state(
        &self,
        message_id: &str,
    ) -> Result<Option<outbox::MessageState>, StoreError> {
        on_outbox!(self, message_state(message_id))
    }

    /// Makes a queued webhook message due again now (`false`: no such message).
    pub async fn redeliver(&self, message_id: &str, now: i64) -> Result<bool, StoreError> {
        let due = on_outbox!(self, redeliver(message_id, now))?;
        if due {
            // The same size, announced again: the worker looks at the outbox now.
            self.inner.outbox.send_modify(|_| {});
        }
        Ok(due)
    }

    /// When a webhook endpoint's current run of failed attempts began (Unix ms).
    pub async fn failing_since(&self, endpoint_id: &str) -> Result<Option<i64>, StoreError> {
        on_outbox!(self, failing_since(endpoint_id))
    }

    /// Keeps tracking updates (SPEC §14) in one transaction; answers how many were new.
    pub async fn insert_tracking(
        &self,
        rows: &[tracking::TrackingUpdateRow],
    ) -> Result<u64, StoreError> {
        on_tracking!(self, insert_tracking(rows))
    }

    /// A shipment's tracking updates, oldest first.
    pub async fn tracking_of(
        &self,
        shipment_id: &str,
    ) -> Result<Vec<tracking::TrackingUpdateRow>, StoreError> {
        on_tracking!(self, tracking_of(shipment_id))
    }

    /// Which updates of `shipment_ids` the store holds, as (shipment, occurred_at, status): an
    /// update sent again is kept, and fanned out, once.
    pub async fn tracking_keys(
        &self,
        shipment_ids: &[&str],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        on_tracking!(self, tracking_keys(shipment_ids))
    }

    /// Which of `shipment_ids` had a `delivered` or `returned_to_sender` update at or before
    /// `cutoff` (RFC 3339 UTC with microseconds): their journey ended then (SPEC §14).
    pub async fn journeys_ended(
        &self,
        shipment_ids: &[&str],
        cutoff: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        on_tracking!(self, journeys_ended(shipment_ids, cutoff))
    }

    /// Deletes up to `limit` tracking updates received before `before` (Unix ms), and up to
    /// `limit` messages that carried one, queued before it; answers the larger count (the
    /// caller goes on while it is `limit`).
    pub async fn delete_tracking_before(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        on_tracking!(self, delete_tracking_before(before, limit))
    }

    /// Checks that the database answers (for `/readyz`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.next_position().await.map(|_| ())
    }

    /// The store's last use in a process that stops cleanly: closes the GDPR projection's
    /// file and makes it durable, so that the next boot need not rebuild it
    /// ([`unsynced`](crate::unsynced)). Without it nothing is lost: a reboot rebuilds the
    /// projection from the log. Every handle's GDPR reads fail afterwards.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn close(&self) {
        let unsynced = self
            .inner
            .unsynced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let (Reads::Sqlite(reads), Reads::Sqlite(writes), Reads::Sqlite(writes_now)) = (
            &self.inner.gdpr,
            &self.inner.gdpr_writes,
            &self.inner.gdpr_writes_now,
        ) {
            sqlite::close_gdpr(reads, &[writes, writes_now], unsynced).await;
        }
        if let Reads::Sqlite(behind) = &self.inner.behind {
            behind.close().await;
        }
    }
}

/// [`Store::gdpr_apply`] through the connections `writes`.
async fn gdpr_apply_through(
    writes: &Reads,
    from: Position,
    next: Position,
    batch: &gdpr::GdprBatch,
) -> Result<bool, StoreError> {
    match writes {
        Reads::Sqlite(pool) => gdpr::sqlite::gdpr_apply(pool, from, next, batch).await,
        Reads::Postgres(pool) => gdpr::postgres::gdpr_apply(pool, from, next, batch).await,
    }
}

/// Gives the calling thread the GDPR projection writer's lower CPU priority (`SCHED_IDLE` at
/// nice 10 on Linux; nice 10 where the policy is refused; where neither can be changed it
/// keeps its own, with a warning): for a thread that does the projection's work beside the
/// decision path, so that under load it takes only the CPU the decisions leave.
pub fn lower_thread_priority() {
    if let Err(e) = sqlite::lower_priority_of(None) {
        tracing::warn!(error = %e, "cannot lower the thread's CPU priority");
    }
}

/// Applies pending schema migrations (`consent-ledger migrate`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn migrate(location: &StoreLocation) -> Result<(), StoreError> {
    match location {
        StoreLocation::SqliteFile(path) => {
            sqlite::migrate(path).await?;
            let gdpr = sqlite::open_gdpr(&sqlite::gdpr_path(path)).await?;
            sqlite::close_gdpr(
                &gdpr.reads,
                &[&gdpr.writes, &gdpr.writes_now],
                gdpr.unsynced,
            )
            .await;
            Ok(())
        }
        StoreLocation::Postgres(url) => postgres::migrate(url).await,
    }
}

fn lookup(stored: &HashMap<NodeId, Hash>, node: NodeId) -> Result<Hash, TreeError> {
    // INVARIANT: `stored` holds every node the `*_nodes` function listed for this proof, which
    // are exactly the nodes the proof asks for; a miss would be an audit crate bug.
    stored
        .get(&node)
        .copied()
        .ok_or(TreeError::IndexOutOfRange {
            index: node.index(),
            tree_size: 0,
        })
}

fn proof_error(e: TreeError) -> StoreError {
    StoreError::Corrupt {
        position: -1,
        detail: format!("proof: {e}"),
    }
}

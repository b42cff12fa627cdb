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
//! - `merkle`: the tree as [`Store`] answers it — roots, inclusion and consistency proofs, leaf
//!   hashes, the signed checkpoints.
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
//! [`Store`]'s methods on a part of the store are kept in that part's module (`merkle`,
//! [`gdpr`], [`outbox`], [`tracking`]); the rest, here. No two modules import each other: the
//! backends import `write_path` and `reads`, and `group_commit` imports the backends; neither
//! of the shared modules imports a backend.
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

/// The condition of the log's stream index (migrations/sqlite/0018): every event but an access
/// decision's first, whose stream id is drawn fresh for it. A statement that reads by stream
/// repeats it word for word, because SQLite uses a partial index only when the statement's own
/// terms name its condition.
macro_rules! in_stream_index {
    () => {
        "(stream_type <> 'access' OR stream_version > 1)"
    };
}

#[cfg(feature = "baseline")]
pub mod baseline;
pub mod cqrs;
pub mod error;
pub mod event;
pub mod gdpr;
mod group_commit;
mod merkle;
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

pub use group_commit::{CommitHook, WriterStats};
use group_commit::{GroupCommit, HookSlot, WriteConnection};
pub use merkle::Inclusion;
pub use write_path::TRACKING_UPDATE_CLAIM;

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

/// Calls the function of the same name for `$store`'s backend, its read pool first: the
/// backend module's own (`on_backend!(store, f(args))`), or that of a part of the store which
/// keeps its SQL per backend (`on_backend!(store, outbox::f(args))`: `outbox::sqlite::f` or
/// `outbox::postgres::f`).
macro_rules! on_backend {
    ($store:expr, $part:ident :: $f:ident($($arg:expr),*)) => {
        match &$store.inner.reads {
            $crate::Reads::Sqlite(pool) => $crate::$part::sqlite::$f(pool, $($arg),*).await,
            $crate::Reads::Postgres(pool) => $crate::$part::postgres::$f(pool, $($arg),*).await,
        }
    };
    ($store:expr, $f:ident($($arg:expr),*)) => {
        match &$store.inner.reads {
            $crate::Reads::Sqlite(pool) => $crate::sqlite::$f(pool, $($arg),*).await,
            $crate::Reads::Postgres(pool) => $crate::postgres::$f(pool, $($arg),*).await,
        }
    };
}
pub(crate) use on_backend;

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
                    WriteConnection::Sqlite(Box::new(sqlite::Writer::new(writer))),
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

    /// Every event of one stream, in stream order — of an access decision's stream, the events
    /// recorded after the decision (a delivery's cancellation): the decision itself is not in
    /// the stream index and is read by its position.
    #[tracing::instrument(level = "debug", skip_all, fields(stream_type = stream_type))]
    pub async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, read_stream(stream_type, stream_id))
    }

    /// The events at `positions` (ascending), in log order.
    ///
    /// Positions far apart (a parcel's decisions, found through the GDPR projection's index)
    /// each lie on pages of their own, which on a cold file are reads from the disk one after
    /// another within a statement: they are read in a few parts on as many of the log's read
    /// connections at once, so that the disk serves them side by side.
    #[tracing::instrument(level = "debug", skip_all, fields(positions = positions.len()))]
    pub async fn read_positions(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let parts = scattered_parts(positions, merkle::LONE_AT_ONCE);
        if parts.len() < 2 {
            return on_backend!(self, read_positions(positions));
        }
        let read = merkle::side_by_side(
            parts
                .into_iter()
                .map(|part| async move { on_backend!(self, read_positions(part)) })
                .collect(),
        )
        .await?;
        Ok(read.concat())
    }

    /// Every event of the streams `ids` of one type recorded before position `before`, in log
    /// order; of access decisions' streams, those after the decision (as [`Self::read_stream`]).
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

    /// The positions before `before` of the deliveries' cancellations (SPEC §14) whose time
    /// lies in the seconds `from ..= to` (RFC 3339 cut to the second, `None` unbounded), in log
    /// order, through an index of the log's cancellations: what a time window's export holds
    /// besides the decisions the GDPR projection finds ([`Store::gdpr_time_span`]). A superset
    /// by the second; the caller decides on the whole time.
    #[tracing::instrument(level = "debug", skip_all, fields(before = before))]
    pub async fn cancellations(
        &self,
        from: Option<&str>,
        to: Option<&str>,
        before: u64,
    ) -> Result<Vec<u64>, StoreError> {
        on_backend!(self, cancellations(from, to, before))
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

    /// The writer's counters (for `/metrics`).
    pub fn writer_stats(&self) -> &WriterStats {
        self.inner.writer.stats()
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

/// `positions` (ascending) cut into at most `parts` runs of about equal length when they lie
/// far apart (more than 16 positions between neighbours on average: each on pages of its own);
/// otherwise one run, whose neighbours share their pages.
fn scattered_parts(positions: &[u64], parts: usize) -> Vec<&[u64]> {
    let (Some(&first), Some(&last)) = (positions.first(), positions.last()) else {
        return Vec::new();
    };
    let count = positions.len() as u64;
    if parts < 2 || count < 2 || last.abs_diff(first) <= 16 * count {
        return vec![positions];
    }
    positions.chunks(positions.len().div_ceil(parts)).collect()
}

#[cfg(test)]
mod tests {
    use super::scattered_parts;

    #[test]
    fn positions_far_apart_are_read_in_parts_and_neighbours_together() {
        assert!(scattered_parts(&[], 4).is_empty());
        assert_eq!(scattered_parts(&[7], 4), vec![&[7][..]]);
        let dense: Vec<u64> = (100..300).collect();
        assert_eq!(scattered_parts(&dense, 4), vec![&dense[..]]);
        // A parcel's ten decisions over a month of a busy log.
        let far: Vec<u64> = (0..10).map(|i| 1_000 + i * 80_000).collect();
        let parts = scattered_parts(&far, 4);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        assert_eq!(parts.concat(), far, "in order, each position once");
        assert_eq!(scattered_parts(&far, 1), vec![&far[..]]);
        assert_eq!(scattered_parts(&far[..3], 4).len(), 3);
    }
}

/// A released migration is never edited (`migrations/released.sha384`): a database that applied
/// it would refuse to open.
#[cfg(test)]
mod released_migrations {
    use std::collections::BTreeMap;

    const RELEASED: &str = include_str!("../../migrations/released.sha384");

    const CHANGED: &str = "recorded migrations changed; a database that applied one refuses to \
        open, so put the change in a new migration (only one never released may be edited, its \
        line in migrations/released.sha384 made again)";
    const GONE: &str = "recorded migrations are gone";
    const NEW: &str =
        "add the new migrations to migrations/released.sha384; from then on they are fixed";

    #[test]
    fn no_recorded_migration_changes_and_every_migration_is_recorded() {
        let migrators = [
            ("sqlite", &crate::sqlite::MIGRATOR),
            ("sqlite-audit", &crate::sqlite::GDPR_MIGRATOR),
            ("postgres", &crate::postgres::MIGRATOR),
        ];
        let files: BTreeMap<(&str, i64), String> = migrators
            .iter()
            .flat_map(|(dir, migrator)| {
                migrator.iter().map(move |m| {
                    let sum = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
                    ((*dir, m.version), sum)
                })
            })
            .collect();
        let recorded: BTreeMap<(&str, i64), &str> = RELEASED
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [dir, version, sum] => match version.parse() {
                        Ok(version) => ((dir, version), sum),
                        Err(_) => panic!("not a version: {line:?}"),
                    },
                    _ => panic!("not `directory version sha384`: {line:?}"),
                },
            )
            .collect();
        let keys: std::collections::BTreeSet<_> = recorded.keys().chain(files.keys()).collect();
        let mut wrong: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for key @ (dir, version) in keys {
            let (what, sum) = match (recorded.get(key), files.get(key)) {
                (Some(was), Some(now)) if was != now => (CHANGED, now.as_str()),
                (Some(was), None) => (GONE, *was),
                (None, Some(now)) => (NEW, now.as_str()),
                _ => continue,
            };
            wrong
                .entry(what)
                .or_default()
                .push(format!("{dir} {version} {sum}"));
        }
        let report: Vec<String> = wrong
            .iter()
            .map(|(what, lines)| format!("{what}:\n{}", lines.join("\n")))
            .collect();
        assert!(wrong.is_empty(), "{}", report.join("\n"));
    }
}

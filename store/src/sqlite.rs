//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a COMMIT
//! returns only after the WAL is fsynced (SPEC §5.1, §9).
//!
//! Writes go through one connection owned by the group-commit writer ([`crate::group_commit`]);
//! reads use a pool of other connections, which WAL lets run beside the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite, SqlitePool};

use consent_ledger_audit::tree::{root_nodes, Frontier, Hash, NodeId};

use crate::error::StoreError;
use crate::event::{
    Credential, DecisionScan, IdempotencyClaim, IdempotencyRecord, IssuedCredential, Payload,
    Position, RawEvent, StoredEvent,
};
use crate::unsynced::UnsyncedWrites;
use crate::write_path::{resolve_nodes, sql_index, LastHead, LogWriter, Stamped, BACKFILL_PAGE};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The GDPR projection's own file (docs/adr/0006); its migrations keep their directory name.
pub(crate) static GDPR_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("../migrations/sqlite-audit");

/// Where the GDPR projection of the log at `path` lives: `ledger.db` → `ledger.audit.db` (the
/// file keeps its name, so existing data directories keep working).
pub(crate) fn gdpr_path(path: &Path) -> PathBuf {
    path.with_extension("audit.db")
}

/// The GDPR projection's file, opened: its views read through `reads`; the projection's
/// catch-up writes through `writes`, one connection whose worker thread runs at a lower CPU
/// priority ([`lower_priority_of`]), so that on a busy machine the decisions go first and the
/// projection takes the CPU they leave (the views catch it up before they answer, docs/adr/0006).
pub(crate) struct GdprFile {
    pub(crate) reads: SqlitePool,
    pub(crate) writes: SqlitePool,
    /// The catch-up a request waits on (a view asked while the projection is behind): a
    /// connection at the decisions' priority, so that an officer's view does not wait on the
    /// CPU a load leaves. Its worker thread is made by the first request that writes through it.
    pub(crate) writes_now: SqlitePool,
    /// Where the file is written without fsync, the record of that ([`UnsyncedWrites`]), to
    /// be finished once both pools are closed ([`close_gdpr`]).
    pub(crate) unsynced: Option<UnsyncedWrites>,
}

/// The name of the projection writer's worker thread, as `/proc/self/task/*/comm` shows it.
const WRITER_THREAD: &str = "gdpr-writer";

/// The name of the worker thread of the connection through which a request catches the
/// projection up ([`GdprFile::writes_now`]).
const WRITER_NOW_THREAD: &str = "gdpr-writer-now";

/// The worker threads of the GDPR projection's read connections (the audit views' queries).
const AUDIT_READER_THREAD: &str = "audit-reader";

/// The projection writer's nice value where SCHED_IDLE is refused ([`lower_priority_of`]):
/// under load it gets about a tenth of the CPU time of each thread of the decision path (the
/// kernel's weights: 1024 at 0, 110 at 10).
const WRITER_NICE: i32 = 10;

/// Opens (creating if needed) and migrates the GDPR projection's file.
///
/// It is derived data, rebuilt from the log from the position stored with its rows, so it is
/// not fsynced at all where the kernel names its boot (`synchronous=OFF`, [`crate::unsynced`]):
/// a process crash loses nothing, and after an operating-system crash or a power loss the file
/// is discarded and rebuilt. Elsewhere `synchronous=NORMAL` keeps it consistent through a
/// crash, which at worst loses its last pages, and catch-up writes them again. Measured on a
/// 10M-event catch-up (perf), the cost was the pages keyed by shipment (then the shipment
/// index, now the rows clustered by shipment), inserted into at random: read back from the
/// file, copied into the WAL, then copied again by each checkpoint, and a statement journal in
/// a temporary file for every multi-row INSERT. Hence a
/// page cache of 128 MiB (grown only as a connection touches pages), a WAL checkpointed every
/// 64 MiB instead of 4 (a page rewritten by many catch-up steps is copied back once), and
/// temporary data in memory.
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) async fn open_gdpr(path: &Path) -> Result<GdprFile, StoreError> {
    let unsynced = if path.as_os_str() == ":memory:" {
        None
    } else {
        UnsyncedWrites::begin(path).map_err(|e| StoreError::unavailable(sqlx::Error::Io(e)))?
    };
    make_private(path)?;
    let opts = options(path)
        .synchronous(if unsynced.is_some() {
            SqliteSynchronous::Off
        } else {
            SqliteSynchronous::Normal
        })
        .pragma("cache_size", "-131072")
        .pragma("wal_autocheckpoint", "16384")
        .pragma("temp_store", "MEMORY");
    let mut attempts = 0;
    let reads = loop {
        let opened = opened_now(
            4,
            opts.clone()
                .thread_name(|id| format!("{AUDIT_READER_THREAD}-{id}")),
        )
        .await
        .map_err(StoreError::unavailable);
        match opened {
            Err(e) if is_locked(&e) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(25 * attempts)).await;
            }
            other => break other?,
        }
    };
    run_migrations(&GDPR_MIGRATOR, &opts).await?;
    make_private(path)?;
    let writes = SqlitePoolOptions::new()
        .max_connections(1)
        .after_connect(|_, _| {
            Box::pin(async {
                lower_priority(WRITER_THREAD);
                Ok(())
            })
        })
        .connect_lazy_with(opts.clone().thread_name(|_| WRITER_THREAD.to_owned()));
    let writes_now = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(opts.thread_name(|_| WRITER_NOW_THREAD.to_owned()));
    Ok(GdprFile {
        reads,
        writes,
        writes_now,
        unsynced,
    })
}

/// The name of the worker thread of the log's write connection: SQLite's side of the group
/// commit. Named, as every thread of `serve` that does the store's work is, so that `top -H`,
/// `perf` or `/proc/PID/task/*/stat` tell the stages of a decision apart (`bench http`
/// reports the CPU each takes per request).
const LOG_WRITER_THREAD: &str = "log-writer";

/// The worker threads of the log's read connections are named this, then their number.
const LOG_READER_THREAD: &str = "log-reader";

/// The name of the worker thread of the log's read connection for the GDPR projection.
const FOLLOWER_THREAD: &str = "gdpr-reader";

/// A read connection of the log for the GDPR projection's catch-up, its worker thread at the
/// projection writer's lower priority ([`lower_priority_of`]). The catch-up read a row per event
/// across sqlx's worker thread (about 2.6 µs an event) on the decisions' read connections, at
/// their priority, in bursts of a whole catch-up page (BENCHMARKS.md, "The GDPR projection
/// behind the decisions"); it now steps the statement on its own thread ([`pages`]), and what
/// is left for the worker (its transaction, the openings) runs at the lower priority too.
pub(crate) fn follower_reads(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .after_connect(|_, _| {
            Box::pin(async {
                lower_priority(FOLLOWER_THREAD);
                Ok(())
            })
        })
        .connect_lazy_with(options(path).thread_name(|_| FOLLOWER_THREAD.to_owned()))
}

/// Gives this process's threads named `name` the projection's lower priority
/// ([`lower_priority_of`]). A thread that cannot be changed is logged and left as is.
fn lower_priority(name: &str) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let named = std::fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|comm| comm.trim_end() == name);
        let tid = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse().ok())
            .and_then(rustix::process::Pid::from_raw);
        if let (true, Some(tid)) = (named, tid) {
            if let Err(e) = lower_priority_of(Some(tid)) {
                tracing::warn!(thread = name, error = %e, "cannot lower the thread's CPU priority");
            }
        }
    }
}

/// Puts the thread `tid` (the calling thread if `None`) where the GDPR projection's work runs:
/// nice [`WRITER_NICE`], then, on Linux, the `SCHED_IDLE` policy, under which it runs only on
/// a core that no thread of normal priority wants, and a decision's thread that wakes takes
/// that core from it at once (the scheduler places waking threads on cores that run only
/// idle-policy work as if they were idle). At nice 10 it still took ~0.6 of a core under the
/// heaviest load on 2 cores, and the group commit's thread waited to run ~30% of its time
/// (BENCHMARKS.md, "The GDPR projection at SCHED_IDLE"). An unprivileged thread cannot leave
/// that policy again; the projection never needs to: a view catches it up before answering,
/// and under a load that leaves no core idle it falls behind, as at nice 10, only further,
/// until the load eases. The nice value stays where the policy is refused.
pub(crate) fn lower_priority_of(tid: Option<rustix::process::Pid>) -> std::io::Result<()> {
    rustix::process::setpriority_process(tid, WRITER_NICE)?;
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        let tid = rustix::process::Pid::as_raw(tid);
        // SAFETY: `param` is a valid sched_param that outlives the call, which only reads it.
        if unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Closes the GDPR file's pools (SQLite checkpoints it as the last connection closes), then
/// makes it durable and removes this process's marker.
pub(crate) async fn close_gdpr(
    reads: &SqlitePool,
    writes: &[&SqlitePool],
    unsynced: Option<UnsyncedWrites>,
) {
    for pool in writes {
        pool.close().await;
    }
    reads.close().await;
    if let Some(unsynced) = unsynced {
        if let Err(e) = unsynced.finish() {
            tracing::warn!(error = %e, "could not make the GDPR projection's file durable; \
                the next boot rebuilds it from the log");
        }
    }
}

/// Makes the database at `path` and its `-wal` and `-shm` files readable and writable by their
/// owner only (mode 0600): they hold every consent, decision and recipient reference, and
/// SQLite creates files 0644 under the usual umask, readable by every local user (security
/// issue). Before SQLite opens a new database the file is created with that mode (SQLite gives
/// the `-wal` and `-shm` it creates the mode of the database file); files an older version
/// left wider are narrowed, before the open and again after it for the `-wal` and `-shm`. A
/// file this process may not change (another user's) is left as it is, with a warning.
fn make_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::io::ErrorKind;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

        if path.as_os_str() == ":memory:" {
            return Ok(());
        }
        let io = |e| StoreError::unavailable(sqlx::Error::Io(e));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        for file in [path.as_os_str(), wal.as_os_str(), shm.as_os_str()] {
            let narrowed = match std::fs::metadata(file) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                }
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = narrowed {
                tracing::warn!(file = %Path::new(file).display(), error = %e,
                    "cannot make the database file readable by its owner only");
            }
        }
    }
    Ok(())
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        // An erasure's deleted rows are overwritten with zeros, not left in free space
        // (SPEC §12); the log itself is never deleted from, so this costs nothing else.
        .pragma("secure_delete", "ON")
        // sqlx hands each row from SQLite's worker thread to the reading task through a channel;
        // at its default of 50 rows the two threads wake each other every few rows, which cost
        // more than SQLite itself on a page of 16k events. A deep buffer lets the worker run
        // ahead and the reader drain many rows per wake-up.
        .row_buffer_size(ROW_BUFFER)
}

/// Rows a query may run ahead of its reader (see [`options`]).
const ROW_BUFFER: usize = 4096;

/// Opens (creating if needed) and migrates the database at `path`; returns the read pool and
/// the writer's own connection.
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) async fn open(path: &Path) -> Result<(SqlitePool, SqliteConnection), StoreError> {
    let mut attempts = 0;
    loop {
        match try_open(path).await {
            // Switching a fresh file to WAL takes an exclusive lock that busy_timeout does not
            // cover; a second process opening the same fresh file at that moment is told
            // "database is locked". Waiting briefly lets the first finish.
            Err(e) if is_locked(&e) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(25 * attempts)).await;
            }
            other => return other,
        }
    }
}

fn is_locked(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(e) if matches!(e.as_ref(), sqlx::Error::Database(db) if db.code().as_deref() == Some("5")))
}

async fn try_open(path: &Path) -> Result<(SqlitePool, SqliteConnection), StoreError> {
    make_private(path)?;
    let opts = options(path);
    let writer = SqliteConnection::connect_with(
        &opts
            .clone()
            .statement_cache_capacity(WRITER_STATEMENT_CACHE)
            .thread_name(|_| LOG_WRITER_THREAD.to_owned()),
    )
    .await
    .map_err(StoreError::unavailable)?;
    run_migrations(&MIGRATOR, &opts).await?;
    let pool = opened_now(
        8,
        opts.thread_name(|id| format!("{LOG_READER_THREAD}-{id}")),
    )
    .await
    .map_err(StoreError::unavailable)?;
    make_private(path)?;
    Ok((pool, writer))
}

/// A pool of `size` read connections, every one opened now, from the calling thread, and kept
/// for the pool's life. A connection opened later would get its worker thread from whichever
/// thread asked for it, and a thread starts at its creator's CPU priority: the GDPR
/// projection's follower, at the lowest ([`lower_priority_of`]), reads through these pools too,
/// and a decision's read must never wait on a connection that runs at that priority (one of the
/// log's eight was found at nice 10 under load). A connection that breaks is replaced by
/// whoever asks next, as before.
async fn opened_now(size: u32, opts: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(size)
        .min_connections(size)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await?;
    let mut held = Vec::with_capacity(size as usize);
    for _ in 0..size {
        held.push(pool.acquire().await?);
    }
    drop(held);
    Ok(pool)
}

/// Copies the log's WAL into its file behind the writer, on a read connection, so that the
/// writer's own checkpoint (SQLite's automatic one, after a commit that grew the WAL past
/// 1,000 pages) finds almost every page copied already: it then copies the few left and the
/// WAL restarts, instead of holding the group commit for the whole copy. Stops once the store
/// is gone (its announcements end).
pub(crate) async fn checkpoint_behind(
    pool: SqlitePool,
    mut committed: tokio::sync::watch::Receiver<Position>,
) {
    let mut last = *committed.borrow();
    while committed.changed().await.is_ok() {
        let now = *committed.borrow_and_update();
        if now.get() < last.get().saturating_add(CHECKPOINT_BEHIND_EVENTS) {
            continue;
        }
        last = now;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "checkpoint behind the writer");
        }
    }
}

/// Events committed between two checkpoints behind the writer.
const CHECKPOINT_BEHIND_EVENTS: u64 = 2_000;

/// Copies the WAL of the database `pool` reads into the database file and truncates it, so
/// that rows deleted (and zeroed, `secure_delete`) leave no copy in the WAL; retried while a
/// reader holds a snapshot that keeps the checkpoint from finishing.
pub(crate) async fn scrub(pool: &SqlitePool, patience: Duration) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        // (busy, frames in the WAL, frames checkpointed)
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await
            .map_err(StoreError::unavailable)?;
        if busy == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::unavailable(sqlx::Error::Protocol(
                "the WAL checkpoint stayed busy".into(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Applies pending migrations without opening a store (`consent-ledger migrate`).
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) async fn migrate(path: &Path) -> Result<(), StoreError> {
    make_private(path)?;
    run_migrations(&MIGRATOR, &options(path)).await?;
    make_private(path)
}

/// sqlx's SQLite migrator takes no lock, so two processes opening a fresh file at once can
/// both try the first migration; one fails with "table already exists". Each migration runs in
/// its own transaction, so the loser wrote nothing: trying again finds it applied.
///
/// On a connection of its own, whose statements past a second are told at INFO rather than
/// sqlx's WARN: a migration that moves a table's rows takes seconds on a large log (0016 at
/// 10M events: 3 s on the first start), which is expected of it, not a fault to alert on.
async fn run_migrations(
    migrator: &sqlx::migrate::Migrator,
    opts: &SqliteConnectOptions,
) -> Result<(), StoreError> {
    let mut conn = SqliteConnection::connect_with(
        &opts
            .clone()
            .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1)),
    )
    .await
    .map_err(StoreError::unavailable)?;
    let mut attempts = 0;
    let ran = loop {
        match migrator.run(&mut conn).await {
            Ok(()) => break Ok(()),
            Err(_) if attempts < 3 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(e) => break Err(e.into()),
        }
    };
    let _ = conn.close().await;
    ran
}

pub(crate) fn parse_url(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    SqliteConnectOptions::from_str(url)
}

/// `recorded_at` and `signed_at` as stored: RFC 3339 text in UTC with microseconds, so that
/// text order is time order.
fn time_bind(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn recorded_at(row: &SqliteRow) -> Result<DateTime<Utc>, String> {
    let text: String = row.try_get("recorded_at").map_err(|e| e.to_string())?;
    pages::parse_time(&text)
}

crate::reads::reads_backend!(Sqlite, i64);

mod pages;
#[cfg(feature = "baseline")]
mod rows_floor;
mod whole;
pub(crate) use pages::{leaf_hashes, read_decisions, read_leaves, read_pages};
#[cfg(feature = "baseline")]
pub use rows_floor::RowsFloor;

/// Events per multi-row INSERT. SQLite allows 32,766 bound parameters per statement (events
/// bind ten each), but a statement of thousands of rows is parsed anew for every large batch:
/// in statements of this many rows, prepared once and kept, a batch of 8,000 events costs the
/// writer's thread 11–17% less (BENCHMARKS.md, "The writer's statements, prepared once").
const EVENTS_PER_INSERT: usize = 256;

/// SQLite's 32,766 bound parameters, three a leaf and five a subtree.
const NODES_PER_INSERT: usize = 6_000;

/// Multi-row INSERTs of up to this many rows are prepared once per row count and kept (one
/// statement per count and table): the batches of single decisions are this small, and SQLite
/// parsing their text anew cost 12–15% of the writer thread's samples (BENCHMARKS.md, "The
/// writer's statements, prepared once"). Larger ones, rarer and costlier to keep, are prepared
/// each time: their parse is a small part of their rows' work.
const CACHED_ROWS: usize = 64;

/// Room in the writer's statement cache for every kept INSERT: five tables (leaves one per
/// event, subtrees up to one) and the slow path's statements.
const WRITER_STATEMENT_CACHE: usize = 512;

/// Whether a multi-row INSERT of `rows` rows is prepared once and kept ([`CACHED_ROWS`]).
fn prepared_once(rows: usize) -> bool {
    rows <= CACHED_ROWS
}

/// One row of a multi-row INSERT into `merkle_leaves`.
fn push_leaf(
    mut row: sqlx::query_builder::Separated<'_, Sqlite, &'static str>,
    &&(node, hash): &&(NodeId, Hash),
) {
    row.push_bind(sql_index(node.index()))
        .push_bind(hash.as_slice());
}

/// One row of a multi-row INSERT into `merkle_subtrees`.
fn push_subtree(
    mut row: sqlx::query_builder::Separated<'_, Sqlite, &'static str>,
    &&(node, hash): &&(NodeId, Hash),
) {
    let (band, tile) = subtree_tile(node);
    row.push_bind(band)
        .push_bind(tile)
        .push_bind(i64::from(node.level()))
        .push_bind(sql_index(node.index()))
        .push_bind(hash.as_slice());
}

/// Appends to `q` the INSERTs of `kept` (at most [`NODES_PER_INSERT`]), each ended by `; `:
/// the leaves into `merkle_leaves`, the subtrees into `merkle_subtrees`.
fn push_node_inserts(q: &mut QueryBuilder<Sqlite>, kept: &[&(NodeId, Hash)]) {
    let (leaves, subtrees) = leaves_and_subtrees(kept);
    if !leaves.is_empty() {
        q.push("INSERT OR FAIL INTO merkle_leaves (idx, hash) ")
            .push_values(&leaves, push_leaf)
            .push("; ");
    }
    if !subtrees.is_empty() {
        q.push("INSERT OR FAIL INTO merkle_subtrees (band, tile, level, idx, hash) ")
            .push_values(&subtrees, push_subtree)
            .push("; ");
    }
}

/// Where SQLite keeps the hash of a subtree of level 4 or more: its (band, tile) in
/// `merkle_subtrees` (migrations/sqlite/0016). A band is four levels (4–7, 8–11, …); a tile,
/// the band's 30 nodes under one node of the level above the band, which the table's key keeps
/// side by side, so that the four nodes of a band an inclusion proof needs are one page of the
/// file, one disk read when it is cold, rather than four.
fn subtree_tile(node: NodeId) -> (i64, i64) {
    let level = node.level();
    let band = level.saturating_sub(4) / 4;
    let above = 4 * band + 8;
    (
        i64::from(band),
        sql_index(node.index() >> above.saturating_sub(level)),
    )
}

/// Stored nodes of the tree, each with its hash.
type Nodes<'a> = Vec<&'a (NodeId, Hash)>;

/// `kept` by the table each goes to: the leaves, then the subtrees.
fn leaves_and_subtrees<'a>(kept: &[&'a (NodeId, Hash)]) -> (Nodes<'a>, Nodes<'a>) {
    kept.iter().partition(|(node, _)| node.level() == 0)
}

/// The connection of the transaction under way: the writer's own.
fn tx(writer: &mut Writer) -> Result<&mut SqliteConnection, sqlx::Error> {
    Ok(&mut writer.conn)
}

/// The group commit's connection, and what it knows of the head its last commit left.
pub(crate) struct Writer {
    /// The one call's statements, prepared on `conn`: declared first, so that they are
    /// finalized before `conn` closes.
    kept: whole::Kept,
    conn: SqliteConnection,
    head: LastHead,
}

impl Writer {
    pub(crate) fn new(conn: SqliteConnection) -> Self {
        Self {
            kept: whole::Kept::default(),
            conn,
            head: LastHead::default(),
        }
    }
}

/// The writer's connection runs the shared write path ([`crate::write_path`]). sqlx hands
/// every statement to SQLite's worker thread and back, so statements, not rows, are what a
/// batch costs: the fast path is a few multi-row INSERTs.
///
/// They are `INSERT OR FAIL`: a multi-row INSERT inside a transaction that has already written
/// makes SQLite keep a statement journal, a copy of every page the statement changes, so that
/// a constraint violation can undo that statement alone (`OR ABORT`, the default). The fast path
/// never keeps a failed statement's transaction (any error rolls the whole batch back, and a
/// unique violation redoes it append by append under savepoints), so that copy was pure cost:
/// 5% of the writer thread's samples under batches of decisions (BENCHMARKS.md, "The writer's
/// serial stage").
impl LogWriter for Writer {
    type Time = String;

    crate::write_path::writer_statements!(sqlx::Sqlite);

    fn time(at: DateTime<Utc>) -> String {
        time_bind(at)
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn begin(&mut self) -> Result<(Position, i64), sqlx::Error> {
        // IMMEDIATE takes the write lock now, so the MAX below cannot go stale under another
        // process (the offline CLI) writing the same file. One round trip to SQLite's worker
        // thread for both statements: this is the start of the serial stage of every batch.
        // Prepared once and kept, as the INSERTs are (`raw_sql` would parse it every batch).
        let rows = sqlx::query(
            "BEGIN IMMEDIATE; \
             SELECT (SELECT COALESCE(MAX(position) + 1, 0) FROM events) AS next, \
                    (SELECT position FROM fences WHERE name = 'restriction') AS fence",
        )
        .fetch_all(&mut self.conn)
        .await?;
        let [head] = rows.as_slice() else {
            return Err(sqlx::Error::Protocol(
                "the log's head was not read: is the database migrated?".into(),
            ));
        };
        let next: i64 = head.try_get("next")?;
        let fence: i64 = head.try_get("fence")?;
        Ok((Position::from_i64(next), fence))
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn abort(&mut self) {
        let _ = self.rollback().await;
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn insert_stamped(
        &mut self,
        stamped: &Stamped<'_>,
        time: &String,
    ) -> Result<(), sqlx::Error> {
        let keys = stamped.keys();
        if !keys.is_empty() {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT OR FAIL INTO idempotency_keys (scope, key, fingerprint, first_position, last_position, created_at) ",
            );
            q.push_values(&keys, |mut row, (claim, events)| {
                row.push_bind(claim.scope.as_str())
                    .push_bind(claim.key.as_str())
                    .push_bind(claim.fingerprint.as_str())
                    .push_bind(events.first().map_or(0, |e| e.position.as_i64()))
                    .push_bind(events.last().map_or(0, |e| e.position.as_i64()))
                    .push_bind(time.as_str());
            });
            q.build()
                .persistent(prepared_once(keys.len()))
                .execute(&mut self.conn)
                .await?;
        }
        let claims = stamped.claims();
        if !claims.is_empty() {
            let mut q =
                QueryBuilder::<Sqlite>::new("INSERT OR FAIL INTO unique_claims (claim, position) ");
            q.push_values(&claims, |mut row, (claim, position)| {
                row.push_bind(*claim).push_bind(*position);
            });
            q.build()
                .persistent(prepared_once(claims.len()))
                .execute(&mut self.conn)
                .await?;
        }
        for events in stamped.events().chunks(EVENTS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(concat!(
                "INSERT OR FAIL INTO events (",
                event_columns!(),
                ") "
            ));
            q.push_values(events, |mut row, e| push_event(&mut row, e, time));
            q.build()
                .persistent(prepared_once(events.len()) || events.len() == EVENTS_PER_INSERT)
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn insert_event(
        &mut self,
        event: &StoredEvent,
        time: &String,
    ) -> Result<(), sqlx::Error> {
        // Static SQL: the slow path's statement is prepared once and its text never built.
        sqlx::query(concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(event.position.as_i64())
        .bind(event.stream_type.as_str())
        .bind(event.stream_id.as_str())
        .bind(i64::try_from(event.stream_version).unwrap_or(i64::MAX))
        .bind(event.event_type.as_str())
        .bind(i64::from(event.schema_version))
        .bind(event.actor.as_str())
        .bind(event.request_id.as_str())
        .bind(time.as_str())
        .bind(event.payload.as_str())
        .execute(&mut self.conn)
        .await
        .map(drop)
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn clear_nodes(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM merkle_leaves; DELETE FROM merkle_subtrees")
            .execute(&mut self.conn)
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn fetch_nodes(&mut self, nodes: &[NodeId]) -> Result<Vec<Option<Hash>>, sqlx::Error> {
        fetch_nodes(&mut self.conn, nodes).await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn insert_nodes(&mut self, kept: &[&(NodeId, Hash)]) -> Result<(), sqlx::Error> {
        for chunk in kept.chunks(NODES_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new("");
            push_node_inserts(&mut q, chunk);
            q.build()
                .persistent(prepared_once(chunk.len() / 2))
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// The nodes' INSERT and the COMMIT in one statement list: one round trip to SQLite's
    /// worker thread for the batch's last two steps. Should the INSERT fail, SQLite stops
    /// there, the COMMIT is not run, and the batch is rolled back as any failed batch is.
    #[tracing::instrument(level = "trace", skip_all, fields(nodes = kept.len()))]
    async fn finish_with_nodes(
        &mut self,
        kept: &[&(NodeId, Hash)],
        fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<(), sqlx::Error> {
        if kept.is_empty() || kept.len() > NODES_PER_INSERT || fence.is_some() {
            return crate::write_path::nodes_then_finish(self, kept, fence, size).await;
        }
        let mut q = QueryBuilder::<Sqlite>::new("");
        push_node_inserts(&mut q, kept);
        q.push("COMMIT");
        q.build()
            .persistent(prepared_once(kept.len() / 2))
            .execute(&mut self.conn)
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn finish(
        &mut self,
        fence: Option<i64>,
        _size: Option<Position>,
    ) -> Result<(), sqlx::Error> {
        if let Some(fence) = fence {
            sqlx::query("UPDATE fences SET position = ? WHERE name = 'restriction'")
                .bind(fence)
                .execute(&mut self.conn)
                .await?;
        }
        sqlx::query("COMMIT")
            .execute(&mut self.conn)
            .await
            .map(drop)
    }

    /// Every plain batch, whatever its size. The general path hashes a batch's leaves on this
    /// thread while SQLite's worker runs its INSERTs, two cores at once, where the one call
    /// hashes first, then steps the INSERTs; with the one call's statements prepared per batch
    /// that lost past a few hundred events, and the limit was 256. With them kept, batches of
    /// 1,000-decision calls through `serve` commit 8–11% more decisions a second in one call,
    /// for 20% less of the group commit's CPU (BENCHMARKS.md, "The one call's statements
    /// kept"): the two cores are busy anyway, so hashing beside the INSERTs gained nothing.
    const WHOLE_EVENTS: usize = usize::MAX;

    fn last_head(&mut self) -> Option<&mut LastHead> {
        Some(&mut self.head)
    }

    /// The whole transaction stepped on this thread, the connection locked out of sqlx's
    /// worker once ([`whole`]): one hand-over instead of four round trips. SQLite's own
    /// write lock (`BEGIN IMMEDIATE`) orders it against the offline commands' writers.
    #[tracing::instrument(level = "trace", skip_all, fields(events = stamped.events().len()))]
    async fn append_whole(
        &mut self,
        (next, fence): (Position, i64),
        stamped: &Stamped<'_>,
        time: &String,
        kept: &[&(NodeId, Hash)],
        new_fence: Option<i64>,
        _size: Option<Position>,
    ) -> Result<bool, sqlx::Error> {
        let mut handle = self.conn.lock_handle().await?;
        let whole = whole::Whole {
            head: (next.as_i64(), fence),
            stamped,
            time,
            kept,
            fence: new_fence,
        };
        Ok(whole::append(
            handle.as_raw_handle(),
            &mut self.kept,
            &whole,
        )?)
    }
}

/// One event's ten columns, in the order of `event_columns!` (the writer's and the
/// benchmark baseline's rows).
pub(crate) fn push_event(
    row: &mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>,
    e: &StoredEvent,
    time: &str,
) {
    row.push_bind(e.position.as_i64())
        .push_bind(e.stream_type.as_str())
        .push_bind(e.stream_id.as_str())
        .push_bind(i64::try_from(e.stream_version).unwrap_or(i64::MAX))
        .push_bind(e.event_type.as_str())
        .push_bind(i64::from(e.schema_version))
        .push_bind(e.actor.as_str())
        .push_bind(e.request_id.as_str())
        .push_bind(time)
        .push_bind(e.payload.as_str());
}

/// Point look-ups and leaf ranges per statement; SQLite allows 500 terms in a compound SELECT.
const NODES_PER_SELECT: usize = 200;

/// The hashes of `nodes` (None where one is not stored). One statement fetches them all (a
/// UNION ALL of primary-key look-ups, and of leaf ranges for the levels that are not kept),
/// instead of a round trip to SQLite's thread per node.
#[tracing::instrument(level = "trace", skip_all, fields(nodes = nodes.len()))]
async fn fetch_nodes(
    conn: &mut SqliteConnection,
    nodes: &[NodeId],
) -> Result<Vec<Option<Hash>>, sqlx::Error> {
    let mut found: HashMap<(u32, u64), Hash> = HashMap::with_capacity(nodes.len() * 2);
    for chunk in nodes.chunks(NODES_PER_SELECT) {
        let mut q = nodes_query("", chunk);
        let rows: Vec<(i64, i64, Vec<u8>)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        for (level, idx, hash) in rows {
            found.insert(
                (
                    u32::try_from(level).unwrap_or(u32::MAX),
                    u64::try_from(idx).unwrap_or(u64::MAX),
                ),
                crate::reads::node_hash(level, idx, &hash)?,
            );
        }
    }
    Ok(resolve_nodes(nodes, &found))
}

/// The statement [`fetch_nodes`] reads `nodes` with (after `prefix`): a primary-key look-up
/// of each stored node, a leaf range for each of the others.
fn nodes_query(prefix: &str, nodes: &[NodeId]) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(prefix);
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            q.push(" UNION ALL ");
        }
        if node.level() == 0 {
            q.push("SELECT 0, idx, hash FROM merkle_leaves WHERE idx = ")
                .push_bind(sql_index(node.index()));
        } else if crate::write_path::is_kept(*node) {
            let (band, tile) = subtree_tile(*node);
            q.push("SELECT level, idx, hash FROM merkle_subtrees WHERE band = ")
                .push_bind(band)
                .push(" AND tile = ")
                .push_bind(tile)
                .push(" AND level = ")
                .push_bind(i64::from(node.level()))
                .push(" AND idx = ")
                .push_bind(sql_index(node.index()));
        } else {
            let leaves = node.leaves();
            q.push("SELECT 0, idx, hash FROM merkle_leaves WHERE idx >= ")
                .push_bind(sql_index(leaves.start))
                .push(" AND idx < ")
                .push_bind(sql_index(leaves.end));
        }
    }
    q
}

crate::reads::decision_scan_backend!(Sqlite, SCAN_DIALECT);

/// How SQLite words the decision scan. NOT INDEXED: the scan walks the range of positions (the
/// rowid); left to itself the planner takes the unique index for `stream_type = ?`, reads every
/// event of the type in the log and sorts them in a temporary B-tree — minutes and gigabytes at
/// 10M events.
pub(crate) const SCAN_DIALECT: crate::reads::ScanDialect = crate::reads::ScanDialect {
    find: "instr",
    events: "events NOT INDEXED",
    collate: "",
};

/// The steps of SQLite's plan for `query` (whose text starts with `EXPLAIN QUERY PLAN`), in
/// order: what the plan tests assert on.
#[cfg(test)]
pub(crate) async fn explain(
    pool: &SqlitePool,
    mut query: sqlx::QueryBuilder<Sqlite>,
) -> Vec<String> {
    query
        .build()
        .fetch_all(pool)
        .await
        .expect("query plan")
        .iter()
        .map(|row| row.try_get::<String, _>("detail").expect("detail"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log is copied into its file behind the writer, once enough events were committed,
    /// without the writer checkpointing at all; the task ends with the store's announcements.
    #[tokio::test]
    async fn the_log_is_checkpointed_behind_the_writer() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("ledger.db");
        let (pool, mut writer) = open(&path).await.expect("open");
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut writer)
            .await
            .expect("the writer never checkpoints");
        let file_size = || std::fs::metadata(&path).expect("file").len();
        let before = file_size();
        let filler = "x".repeat(1_000);
        for i in 0..500 {
            sqlx::query("INSERT INTO unique_claims (claim, position) VALUES ($1, $2)")
                .bind(format!("{i}{filler}"))
                .bind(i)
                .execute(&mut writer)
                .await
                .expect("insert");
        }
        let (announce, committed) = tokio::sync::watch::channel(Position::new(0));
        let task = tokio::spawn(checkpoint_behind(pool.clone(), committed));
        // It counts from the size it first sees, as a store's from the log's size at its open.
        tokio::time::sleep(Duration::from_millis(50)).await;
        announce
            .send(Position::new(CHECKPOINT_BEHIND_EVENTS - 1))
            .expect("announce");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(file_size(), before, "too few events for a checkpoint");
        announce
            .send(Position::new(CHECKPOINT_BEHIND_EVENTS))
            .expect("announce");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while file_size() <= before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            file_size() > before + 400_000,
            "the rows were copied into the file: {before} → {} bytes",
            file_size()
        );
        drop(announce);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends with the announcements")
            .expect("join");
    }

    /// The one-call commit on SQLite: stepped on the writer's thread, against the head its
    /// last commit left, all or nothing ([`whole`]).
    #[tokio::test]
    async fn a_batch_commits_in_one_call_only_against_the_head_expected() {
        let dir = tempfile::tempdir().expect("dir");
        let (reads, conn) = open(&dir.path().join("ledger.db")).await.expect("open");
        let mut writer = Writer::new(conn);
        crate::write_path::one_call_contract(&mut writer, async |sql| {
            sqlx::query_scalar(sql)
                .fetch_one(&reads)
                .await
                .expect("a value")
        })
        .await;
    }

    /// The one call writes what a batch keeps beside its events ([`rows_beside_contract`]);
    /// the statements it kept serve the next call after a failed one, and are finalized
    /// before the writer's connection closes.
    #[tokio::test]
    async fn the_one_call_writes_openings_tracking_updates_and_messages() {
        use crate::event::Append;
        use crate::write_path::rows_beside_contract;
        use chrono::SubsecRound as _;

        let dir = tempfile::tempdir().expect("dir");
        let (reads, conn) = open(&dir.path().join("ledger.db")).await.expect("open");
        let mut writer = Writer::new(conn);
        let count = async |sql: &'static str| -> i64 {
            sqlx::query_scalar(sql)
                .fetch_one(&reads)
                .await
                .expect("a count")
        };
        rows_beside_contract(&mut writer, count).await;

        // The statements kept from those calls serve the next one after the failure.
        let at = Utc::now().trunc_subsecs(6);
        let time = Writer::time(at);
        let none = Vec::new();
        let batch = [Append::for_test("b", 1)];
        let mut fence = -1;
        let stamped = Stamped::new(&batch, Position::new(2), &mut fence, at);
        assert!(writer
            .append_whole((Position::new(2), -1), &stamped, &time, &none, None, None)
            .await
            .expect("the next call"));
        assert_eq!(count("SELECT COUNT(*) FROM events").await, 3);

        // They are finalized before the writer's connection closes: SQLite refuses to close a
        // connection with statements left (sqlx then panics), and only the last connection's
        // close removes the WAL.
        reads.close().await;
        drop(writer);
        let wal = dir.path().join("ledger.db-wal");
        let closed = std::time::Instant::now();
        while wal.exists() && closed.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!wal.exists(), "the writer's connection did not close");
    }

    /// A proof's nodes of one band lie in one tile (one page of `merkle_subtrees`), and each
    /// is read by the table's primary key.
    #[tokio::test]
    async fn a_proofs_nodes_of_a_band_are_one_tile_read_by_key() {
        let size = 1u64 << 24;
        for leaf in [0, 1, 4_095, 5_000_001, size - 1] {
            let nodes =
                consent_ledger_audit::tree::inclusion_path_nodes(leaf, size).expect("a path");
            let mut tiles = std::collections::BTreeSet::new();
            for node in nodes.iter().filter(|n| n.level() >= 4) {
                tiles.insert(subtree_tile(*node));
            }
            // Levels 4–23: five bands, one tile each.
            assert_eq!(
                tiles.iter().map(|(band, _)| *band).collect::<Vec<_>>(),
                [0, 1, 2, 3, 4],
                "leaf {leaf}: {tiles:?}"
            );
        }
        let dir = tempfile::tempdir().expect("dir");
        let (pool, _writer) = open(&dir.path().join("ledger.db")).await.expect("open");
        let nodes =
            [NodeId::new(0, 7), NodeId::new(2, 1), NodeId::new(9, 3)].map(|n| n.expect("a node"));
        let plan = explain(&pool, nodes_query("EXPLAIN QUERY PLAN ", &nodes)).await;
        let searches: Vec<&String> = plan.iter().filter(|s| s.starts_with("SEARCH")).collect();
        assert_eq!(
            searches,
            [
                "SEARCH merkle_leaves USING INTEGER PRIMARY KEY (rowid=?)",
                "SEARCH merkle_leaves USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
                "SEARCH merkle_subtrees USING PRIMARY KEY (band=? AND tile=? AND level=? AND idx=?)",
            ],
            "{plan:?}"
        );
    }

    /// A time window's cancellations are one range of their partial index, never a walk of the
    /// log (bounded or not).
    #[tokio::test]
    async fn cancellations_are_read_through_their_index() {
        let dir = tempfile::tempdir().expect("dir");
        let (pool, _writer) = open(&dir.path().join("ledger.db")).await.expect("open");
        for (from, to) in [
            (None, None),
            (Some("2026-03-01T12:00:00"), None),
            (Some("2026-03-01T12:00:00"), Some("2026-03-01T13:00:00")),
        ] {
            let plan = explain(
                &pool,
                cancellations_query("EXPLAIN QUERY PLAN ", from, to, 100),
            )
            .await;
            assert!(
                plan.first().is_some_and(|p| p
                    == "SEARCH events USING INDEX events_cancelled_at (<expr>>? AND <expr><?)"),
                "{from:?}..={to:?}: {plan:?}"
            );
        }
    }

    /// A stream is one range of the stream index whatever its type — an access decision's too,
    /// from its second event on —, never a walk of the log: the statements name the partial
    /// index's condition as SQLite needs to see it.
    #[tokio::test]
    async fn streams_are_read_through_the_stream_index() {
        let dir = tempfile::tempdir().expect("dir");
        let (pool, _writer) = open(&dir.path().join("ledger.db")).await.expect("open");
        for stream_type in ["consent", "access"] {
            let ids = ["a".to_owned(), "b".to_owned()];
            for query in [
                stream_query("EXPLAIN QUERY PLAN ", stream_type, "an id"),
                streams_query("EXPLAIN QUERY PLAN ", stream_type, &ids, 100),
            ] {
                assert_eq!(
                    explain(&pool, query).await,
                    ["SEARCH events USING INDEX events_stream (stream_type=? AND stream_id=?)"],
                    "{stream_type}"
                );
            }
        }
    }

    /// Regression: the decision scan must walk the range of positions, never an index over the
    /// whole log plus a sort (which took 12 minutes and filled the disk at 10M events).
    #[tokio::test]
    async fn a_decision_scan_walks_the_range_of_positions() {
        let dir = tempfile::tempdir().expect("dir");
        let (pool, _writer) = open(&dir.path().join("ledger.db")).await.expect("open");
        let scans = [
            DecisionScan::of("access"),
            DecisionScan {
                stream_type: "access".into(),
                event_type: Some("TrackingAccessDenied".into()),
                payload_contains: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
                text_field: Some(crate::TextFieldRange {
                    key: "decided_at".into(),
                    chars: 19,
                    min: Some("2026".into()),
                    max: Some("2027".into()),
                }),
                also: Some(("shipment".into(), "s".into())),
                also_types: Vec::new(),
            },
        ];
        for scan in &scans {
            let plan = explain(
                &pool,
                decision_scan_query("EXPLAIN QUERY PLAN ", 100..200, scan),
            )
            .await;
            assert_eq!(
                plan,
                ["SEARCH events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"],
                "{scan:?}"
            );
        }
    }
}

//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a COMMIT
//! returns only after the WAL is fsynced (SPEC §5.1, §9).
//!
//! Writes go through one connection owned by the group-commit writer ([`crate::group_commit`]);
//! reads use a pool of other connections, which WAL lets run beside the writer.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqlitePool};

use consent_ledger_audit::leaf::event_leaf_hash;
use consent_ledger_audit::tree::{mth, root_nodes, Frontier, Hash, NodeId};

use crate::error::{classify, ClassifiedError, StoreError, UniqueKey};
use crate::event::{
    Append, DecisionScan, IdempotencyClaim, IdempotencyRecord, Payload, Position, RawEvent,
    StoredEvent,
};
use crate::group_commit::{AppendResult, BatchOutcome};

/// The columns [`row_to_event`] reads, in a macro so queries stay `'static` SQL for sqlx.
macro_rules! event_columns {
    () => {
        "position, stream_type, stream_id, stream_version, event_type, schema_version, actor, request_id, recorded_at, payload"
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The audit projection's own file (docs/adr/0006).
static AUDIT_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite-audit");

/// Where the audit projection of the log at `path` lives: `ledger.db` → `ledger.audit.db`.
pub(crate) fn audit_path(path: &Path) -> PathBuf {
    path.with_extension("audit.db")
}

/// Opens (creating if needed) and migrates the audit projection's file.
///
/// It is derived data, rebuilt from the log from the position stored with its rows, so it
/// needs no fsync per commit: `synchronous=NORMAL` in WAL mode keeps it consistent through a
/// crash, which at worst loses its last pages, and catch-up writes them again. Measured on a
/// 10M-event catch-up (perf), the cost was the pages keyed by shipment (then the shipment
/// index, now the rows clustered by shipment), inserted into at random: read back from the
/// file, copied into the WAL, then copied again by each checkpoint, and a statement journal in
/// a temporary file for every multi-row INSERT. Hence a
/// page cache of 128 MiB (grown only as a connection touches pages), a WAL checkpointed every
/// 64 MiB instead of 4 (a page rewritten by many catch-up steps is copied back once), and
/// temporary data in memory.
pub(crate) async fn open_audit(path: &Path) -> Result<SqlitePool, StoreError> {
    let opts = options(path)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", "-131072")
        .pragma("wal_autocheckpoint", "16384")
        .pragma("temp_store", "MEMORY");
    let mut attempts = 0;
    let pool = loop {
        let opened = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
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
    run_migrations(&AUDIT_MIGRATOR, &pool).await?;
    Ok(pool)
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
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
    let opts = options(path);
    let writer = SqliteConnection::connect_with(&opts)
        .await
        .map_err(StoreError::unavailable)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .map_err(StoreError::unavailable)?;
    run_migrations(&MIGRATOR, &pool).await?;
    Ok((pool, writer))
}

/// Applies pending migrations without opening a store (`consent-ledger migrate`).
pub(crate) async fn migrate(path: &Path) -> Result<(), StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(path))
        .await
        .map_err(StoreError::unavailable)?;
    run_migrations(&MIGRATOR, &pool).await
}

/// sqlx's SQLite migrator takes no lock, so two processes opening a fresh file at once can
/// both try the first migration; one fails with "table already exists". Each migration runs in
/// its own transaction, so the loser wrote nothing: trying again finds it applied.
async fn run_migrations(
    migrator: &sqlx::migrate::Migrator,
    pool: &SqlitePool,
) -> Result<(), StoreError> {
    let mut attempts = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempts < 3 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn parse_url(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    SqliteConnectOptions::from_str(url)
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Commits a batch of appends in one transaction and one fsync. Each append runs inside its
/// own SAVEPOINT, so a unique violation refuses only that append and the others still commit;
/// any other error rolls the whole transaction back and fails every append (no partial write).
pub(crate) async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &[Append],
    frontier: &mut Option<Frontier>,
) -> BatchOutcome {
    match try_commit_batch(conn, batch, frontier).await {
        Ok(results) => results,
        Err(err) => {
            // The transaction may be half-open; roll it back so the next batch starts clean,
            // and forget the tree's right edge, which may hold leaves that were not committed.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            *frontier = None;
            BatchOutcome::Failed(std::sync::Arc::new(err))
        }
    }
}

async fn try_commit_batch(
    conn: &mut SqliteConnection,
    batch: &[Append],
    frontier: &mut Option<Frontier>,
) -> Result<BatchOutcome, sqlx::Error> {
    // Stored with microsecond precision; truncate here so the answer equals what reads return.
    let recorded_at = Utc::now().trunc_subsecs(6);
    let recorded_text = time_text(recorded_at);
    let (next, fence) = begin(conn).await?;
    // Fast path: the whole batch in a few multi-row INSERTs. sqlx hands every statement to
    // SQLite's worker thread and back, so statements, not rows, are what a batch costs.
    let mut new_fence = fence;
    let results = match insert_batch(
        conn,
        batch,
        next,
        &mut new_fence,
        recorded_at,
        &recorded_text,
    )
    .await
    {
        Ok(results) => results,
        // Some append of the batch is refused (a taken stream version, claim or key). Redo
        // the batch one SAVEPOINT per append, so that only the refused ones fail.
        Err(err) if is_unique_violation(&err) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            let (next, fence) = begin(conn).await?;
            new_fence = fence;
            insert_one_by_one(
                conn,
                batch,
                next,
                &mut new_fence,
                recorded_at,
                &recorded_text,
            )
            .await?
        }
        Err(err) => return Err(err),
    };
    if new_fence != fence {
        sqlx::query("UPDATE fences SET position = ? WHERE name = 'restriction'")
            .bind(new_fence)
            .execute(&mut *conn)
            .await?;
    }
    let committed: Vec<&StoredEvent> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .collect();
    append_leaves(conn, frontier, &committed).await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(BatchOutcome::Done(results))
}

/// The leaf hash of a stored event (SPEC §6: its RFC 8785 canonical JSON).
pub(crate) fn leaf_of(e: &StoredEvent) -> Hash {
    event_leaf_hash(&e.leaf())
}

/// Adds the committed events to the Merkle tree in the same transaction: their leaf hashes
/// and every subtree they complete (RFC 9162 §2.1), so proofs never need recomputation.
async fn append_leaves(
    conn: &mut SqliteConnection,
    frontier: &mut Option<Frontier>,
    committed: &[&StoredEvent],
) -> Result<(), sqlx::Error> {
    let Some(first) = committed.first() else {
        return Ok(());
    };
    let size = first.position.get();
    let mut edge = match frontier.take() {
        Some(f) if f.size() == size => f,
        // First batch, or another process appended meanwhile: read the right edge back.
        _ => load_frontier(conn, size).await?,
    };
    let mut nodes = Vec::with_capacity(committed.len() * 2);
    for event in committed {
        nodes.extend(edge.push(leaf_of(event)));
    }
    insert_nodes(conn, &nodes).await?;
    *frontier = Some(edge);
    Ok(())
}

/// SQLite's 32,766 bound parameters, three a node.
const NODES_PER_INSERT: usize = 10_000;

async fn insert_nodes(
    conn: &mut SqliteConnection,
    nodes: &[(NodeId, Hash)],
) -> Result<(), sqlx::Error> {
    // Levels 1 to 3 are not kept: at most eight leaves recompute one (see `stored_node`),
    // which saves nearly half the rows the tree would add to every append.
    let kept: Vec<&(NodeId, Hash)> = nodes.iter().filter(|(n, _)| is_kept(*n)).collect();
    for chunk in kept.chunks(NODES_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO merkle_nodes (level, idx, hash) ");
        q.push_values(chunk, |mut row, &&(node, hash)| {
            row.push_bind(i64::from(node.level()))
                .push_bind(i64::try_from(node.index()).unwrap_or(i64::MAX))
                .push_bind(hash.as_slice());
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The tree's right edge at `size` from the stored subtrees; a log written before the tree
/// existed is hashed now, once.
async fn load_frontier(conn: &mut SqliteConnection, size: u64) -> Result<Frontier, sqlx::Error> {
    let mut hashes = Vec::new();
    for node in root_nodes(size) {
        match stored_node(conn, node).await? {
            Some(hash) => hashes.push(hash),
            None => return backfill(conn, size).await,
        }
    }
    Frontier::from_parts(size, hashes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Leaves (level 0) and subtrees of 16 leaves or more are stored; the levels between are
/// recomputed from their leaves when a root or proof needs them.
fn is_kept(node: NodeId) -> bool {
    node.level() == 0 || node.level() >= 4
}

async fn stored_node(
    conn: &mut SqliteConnection,
    node: NodeId,
) -> Result<Option<Hash>, sqlx::Error> {
    if !is_kept(node) {
        let leaves = node.leaves();
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT hash FROM merkle_nodes WHERE level = 0 AND idx >= ? AND idx < ? ORDER BY idx",
        )
        .bind(i64::try_from(leaves.start).unwrap_or(i64::MAX))
        .bind(i64::try_from(leaves.end).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        if rows.len() as u64 != leaves.end - leaves.start {
            return Ok(None);
        }
        let hashes = rows
            .iter()
            .map(|b| {
                Hash::try_from(b.as_slice())
                    .map_err(|_| sqlx::Error::Decode("merkle leaf is not 32 bytes".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some(mth(&hashes)));
    }
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?")
            .bind(i64::from(node.level()))
            .bind(i64::try_from(node.index()).unwrap_or(i64::MAX))
            .fetch_optional(&mut *conn)
            .await?;
    bytes
        .map(|b| {
            Hash::try_from(b.as_slice())
                .map_err(|_| sqlx::Error::Decode("merkle node is not 32 bytes".into()))
        })
        .transpose()
}

/// Rebuilds every stored subtree of the first `size` leaves from the events themselves.
async fn backfill(conn: &mut SqliteConnection, size: u64) -> Result<Frontier, sqlx::Error> {
    tracing::warn!(
        size,
        "the Merkle tree is incomplete; hashing the log into it"
    );
    sqlx::query("DELETE FROM merkle_nodes")
        .execute(&mut *conn)
        .await?;
    let mut edge = Frontier::new();
    while edge.size() < size {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE position >= ? ORDER BY position LIMIT 10000"
        ))
        .bind(i64::try_from(edge.size()).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        let mut nodes = Vec::new();
        for row in &rows {
            let event = row_to_event(row).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            if event.position.get() >= size {
                break;
            }
            nodes.extend(edge.push(leaf_of(&event)));
        }
        insert_nodes(conn, &nodes).await?;
    }
    Ok(edge)
}

/// Point look-ups and leaf ranges per statement; SQLite allows 500 terms in a compound SELECT.
const NODES_PER_SELECT: usize = 200;

/// The hashes of `nodes`, from stored subtrees, in order (for roots and proofs). One statement
/// fetches them all (a UNION ALL of primary-key look-ups, and of leaf ranges for the levels
/// that are not kept), instead of a round trip to SQLite's thread per node.
pub(crate) async fn node_hashes(
    pool: &SqlitePool,
    nodes: &[NodeId],
) -> Result<Vec<Hash>, StoreError> {
    let mut found: HashMap<(u32, u64), Hash> = HashMap::with_capacity(nodes.len() * 2);
    for chunk in nodes.chunks(NODES_PER_SELECT) {
        let mut q = QueryBuilder::<Sqlite>::new("");
        for (i, node) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            if is_kept(*node) {
                q.push("SELECT level, idx, hash FROM merkle_nodes WHERE level = ")
                    .push_bind(i64::from(node.level()))
                    .push(" AND idx = ")
                    .push_bind(sql_index(node.index()));
            } else {
                let leaves = node.leaves();
                q.push("SELECT level, idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= ")
                    .push_bind(sql_index(leaves.start))
                    .push(" AND idx < ")
                    .push_bind(sql_index(leaves.end));
            }
        }
        let rows: Vec<(i64, i64, Vec<u8>)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
        for (level, idx, hash) in rows {
            let hash = Hash::try_from(hash.as_slice()).map_err(|_| StoreError::Corrupt {
                position: -1,
                detail: format!("merkle node ({level}, {idx}) is not 32 bytes"),
            })?;
            found.insert(
                (
                    u32::try_from(level).unwrap_or(u32::MAX),
                    u64::try_from(idx).unwrap_or(u64::MAX),
                ),
                hash,
            );
        }
    }
    let missing = |node: &NodeId| StoreError::Corrupt {
        position: -1,
        detail: format!("merkle node {node:?} missing"),
    };
    nodes
        .iter()
        .map(|node| {
            if is_kept(*node) {
                return found
                    .get(&(node.level(), node.index()))
                    .copied()
                    .ok_or_else(|| missing(node));
            }
            // Levels 1–3 are the MTH of at most eight stored leaves.
            let leaves = node
                .leaves()
                .map(|i| found.get(&(0, i)).copied())
                .collect::<Option<Vec<Hash>>>()
                .ok_or_else(|| missing(node))?;
            Ok(mth(&leaves))
        })
        .collect()
}

/// The stored leaf hashes of positions `leaves`, in order; every one must be there.
pub(crate) async fn leaf_range(
    pool: &SqlitePool,
    leaves: Range<u64>,
) -> Result<Vec<Hash>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= ? AND idx < ? ORDER BY idx",
    )
    .bind(sql_index(leaves.start))
    .bind(sql_index(leaves.end))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    leaves_of_rows(leaves, &rows)
}

/// The stored leaves `leaves` from their `(idx, hash)` rows in order; a missing or malformed
/// one is corruption.
pub(crate) fn leaves_of_rows(
    leaves: Range<u64>,
    rows: &[(i64, Vec<u8>)],
) -> Result<Vec<Hash>, StoreError> {
    let mut hashes = Vec::with_capacity(rows.len());
    for (expected, (idx, hash)) in leaves.clone().zip(rows) {
        let corrupt = |detail: &str| StoreError::Corrupt {
            position: sql_index(expected),
            detail: detail.to_owned(),
        };
        if u64::try_from(*idx).ok() != Some(expected) {
            return Err(corrupt("merkle leaf missing"));
        }
        hashes.push(
            Hash::try_from(hash.as_slice()).map_err(|_| corrupt("merkle leaf is not 32 bytes"))?,
        );
    }
    if hashes.len() as u64 != leaves.end - leaves.start {
        return Err(StoreError::Corrupt {
            position: sql_index(leaves.start + hashes.len() as u64),
            detail: "merkle leaf missing".into(),
        });
    }
    Ok(hashes)
}

fn sql_index(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// `MTH` of the first `size` events, from stored subtrees (RFC 9162 §2.1.1).
pub(crate) async fn tree_root(pool: &SqlitePool, size: u64) -> Result<Hash, StoreError> {
    let hashes = node_hashes(pool, &root_nodes(size)).await?;
    let edge = Frontier::from_parts(size, hashes).map_err(|e| StoreError::Corrupt {
        position: -1,
        detail: e.to_string(),
    })?;
    Ok(edge.root())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Opens the write transaction; returns the next position and the restriction fence.
async fn begin(conn: &mut SqliteConnection) -> Result<(Position, i64), sqlx::Error> {
    // IMMEDIATE takes the write lock now, so the MAX below cannot go stale under another
    // process (the offline CLI) writing the same file.
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    let fence: i64 = sqlx::query_scalar("SELECT position FROM fences WHERE name = 'restriction'")
        .fetch_one(&mut *conn)
        .await?;
    Ok((Position::from_i64(next), fence))
}

/// Checks an append against the restriction fence and moves the fence if the append restricts.
/// `first` is the position its first event would get. Shared by both backends.
pub(crate) fn pass_fence(
    append: &Append,
    first: Position,
    fence: &mut i64,
) -> Result<(), StoreError> {
    if let Some(before) = append.guard.decided_before {
        if *fence >= before.as_i64() {
            return Err(StoreError::Stale {
                restricted_at: Position::from_i64(*fence),
            });
        }
    }
    if append.guard.restricts && !append.events.is_empty() {
        *fence = first.as_i64();
    }
    Ok(())
}

/// SQLite allows 32,766 bound parameters per statement; events bind ten each.
const EVENTS_PER_INSERT: usize = 3_000;

async fn insert_batch(
    conn: &mut SqliteConnection,
    batch: &[Append],
    first: Position,
    fence: &mut i64,
    recorded_at: DateTime<Utc>,
    recorded_text: &str,
) -> Result<Vec<AppendResult>, sqlx::Error> {
    let mut next = first;
    let mut stamped = Vec::with_capacity(batch.len());
    let mut refused = Vec::with_capacity(batch.len());
    for append in batch {
        match pass_fence(append, next, fence) {
            Ok(()) => {
                let events = stamp(append, next, recorded_at);
                next = Position::new(next.get() + events.len() as u64);
                stamped.push(events);
                refused.push(None);
            }
            Err(stale) => {
                stamped.push(Vec::new());
                refused.push(Some(stale));
            }
        }
    }
    let keys: Vec<(&IdempotencyClaim, &[StoredEvent])> = batch
        .iter()
        .zip(&stamped)
        .filter_map(|(a, e)| Some((a.idempotency.as_ref()?, e.as_slice())))
        .filter(|(_, e)| !e.is_empty())
        .collect();
    if !keys.is_empty() {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, last_position, created_at) ",
        );
        q.push_values(&keys, |mut row, (claim, events)| {
            row.push_bind(claim.scope.as_str())
                .push_bind(claim.key.as_str())
                .push_bind(claim.fingerprint.as_str())
                .push_bind(events.first().map_or(0, |e| e.position.as_i64()))
                .push_bind(events.last().map_or(0, |e| e.position.as_i64()))
                .push_bind(recorded_text);
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    let claims: Vec<(&str, i64)> = batch
        .iter()
        .zip(&stamped)
        .filter_map(|(a, e)| Some((a, e.first()?.position.as_i64())))
        .flat_map(|(a, p)| a.unique_claims.iter().map(move |c| (c.as_str(), p)))
        .collect();
    if !claims.is_empty() {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO unique_claims (claim, position) ");
        q.push_values(&claims, |mut row, (claim, position)| {
            row.push_bind(*claim).push_bind(*position);
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    let all: Vec<&StoredEvent> = stamped.iter().flatten().collect();
    for events in all.chunks(EVENTS_PER_INSERT) {
        let mut q =
            QueryBuilder::<Sqlite>::new(concat!("INSERT INTO events (", event_columns!(), ") "));
        q.push_values(events, |mut row, e| {
            row.push_bind(e.position.as_i64())
                .push_bind(e.stream_type.as_str())
                .push_bind(e.stream_id.as_str())
                .push_bind(i64::try_from(e.stream_version).unwrap_or(i64::MAX))
                .push_bind(e.event_type.as_str())
                .push_bind(i64::from(e.schema_version))
                .push_bind(e.actor.as_str())
                .push_bind(e.request_id.as_str())
                .push_bind(recorded_text)
                .push_bind(e.payload.as_str());
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(stamped
        .into_iter()
        .zip(refused)
        .map(|(events, refusal)| match refusal {
            Some(stale) => Err(stale),
            None => Ok(events),
        })
        .collect())
}

/// The slow path: each append in its own SAVEPOINT, so a unique violation refuses only it.
async fn insert_one_by_one(
    conn: &mut SqliteConnection,
    batch: &[Append],
    first: Position,
    fence: &mut i64,
    recorded_at: DateTime<Utc>,
    recorded_text: &str,
) -> Result<Vec<AppendResult>, sqlx::Error> {
    let mut next = first;
    let mut results = Vec::with_capacity(batch.len());
    for append in batch {
        let before = *fence;
        if let Err(stale) = pass_fence(append, next, fence) {
            results.push(Err(stale));
            continue;
        }
        sqlx::query("SAVEPOINT one_append")
            .execute(&mut *conn)
            .await?;
        match append_one(conn, append, next, recorded_at, recorded_text).await {
            Ok(events) => {
                sqlx::query("RELEASE one_append")
                    .execute(&mut *conn)
                    .await?;
                next = Position::new(next.get() + events.len() as u64);
                results.push(Ok(events));
            }
            Err(ClassifiedError::Refused(refusal)) => {
                sqlx::query("ROLLBACK TO one_append")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("RELEASE one_append")
                    .execute(&mut *conn)
                    .await?;
                // A refused append restricts nothing.
                *fence = before;
                results.push(Err(refusal));
            }
            Err(ClassifiedError::Failed(err)) => return Err(err),
        }
    }
    Ok(results)
}

/// The events of `append` as they will be stored from position `first` on (both backends).
pub(crate) fn stamp(
    append: &Append,
    first: Position,
    recorded_at: DateTime<Utc>,
) -> Vec<StoredEvent> {
    append
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| StoredEvent {
            position: Position::new(first.get() + i as u64),
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            actor: append.provenance.actor.clone(),
            request_id: append.provenance.request_id.clone(),
            recorded_at,
            payload: event.payload.clone(),
        })
        .collect()
}

async fn append_one(
    conn: &mut SqliteConnection,
    append: &Append,
    first: Position,
    recorded_at: DateTime<Utc>,
    recorded_text: &str,
) -> Result<Vec<StoredEvent>, ClassifiedError> {
    // An empty append holds no position, so it may claim nothing either.
    if append.events.is_empty() {
        return Ok(Vec::new());
    }
    let last = Position::new(first.get() + append.events.len().saturating_sub(1) as u64);
    if let Some(claim) = &append.idempotency {
        // The writer holds the write lock, so this look-up cannot race another writer of this
        // file; the unique key still guards backends with several writers.
        if let Some(record) = idempotency_on(&mut *conn, &claim.scope, &claim.key)
            .await
            .map_err(ClassifiedError::Failed)?
        {
            return Err(ClassifiedError::Refused(StoreError::IdempotencyKeyUsed(
                record,
            )));
        }
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, last_position, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.fingerprint)
        .bind(first.as_i64())
        .bind(last.as_i64())
        .bind(recorded_text)
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(e, UniqueKey::Idempotency))?;
    }
    for claim in &append.unique_claims {
        sqlx::query("INSERT INTO unique_claims (claim, position) VALUES (?, ?)")
            .bind(claim)
            .bind(first.as_i64())
            .execute(&mut *conn)
            .await
            .map_err(|e| classify(e, UniqueKey::Claim(claim)))?;
    }
    let stored = stamp(append, first, recorded_at);
    for event in &stored {
        sqlx::query(concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(event.position.as_i64())
        .bind(&event.stream_type)
        .bind(&event.stream_id)
        .bind(i64::try_from(event.stream_version).unwrap_or(i64::MAX))
        .bind(&event.event_type)
        .bind(i64::from(event.schema_version))
        .bind(&event.actor)
        .bind(&event.request_id)
        .bind(recorded_text)
        .bind(event.payload.as_str())
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(e, UniqueKey::StreamVersion(&event.stream_id)))?;
    }
    Ok(stored)
}

fn row_to_event(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let position: i64 = row.try_get("position").map_err(StoreError::unavailable)?;
    let corrupt = |detail: String| StoreError::Corrupt { position, detail };
    let text = |name: &str| {
        row.try_get::<String, _>(name)
            .map_err(|e| corrupt(format!("{name}: {e}")))
    };
    let int = |name: &str| {
        row.try_get::<i64, _>(name)
            .map_err(|e| corrupt(format!("{name}: {e}")))
    };
    let recorded_at = DateTime::parse_from_rfc3339(&text("recorded_at")?)
        .map_err(|e| corrupt(format!("recorded_at: {e}")))?
        .with_timezone(&Utc);
    // Kept as the text it was written as: a reader decodes it into its typed event, and the
    // leaf hashes exactly these bytes, so a stored payload changed in any way shows in the tree.
    let payload = Payload::stored(text("payload")?);
    Ok(StoredEvent {
        position: Position::from_i64(position),
        stream_type: text("stream_type")?,
        stream_id: text("stream_id")?,
        stream_version: u64::try_from(int("stream_version")?)
            .map_err(|e| corrupt(e.to_string()))?,
        event_type: text("event_type")?,
        schema_version: u32::try_from(int("schema_version")?)
            .map_err(|e| corrupt(e.to_string()))?,
        actor: text("actor")?,
        request_id: text("request_id")?,
        recorded_at,
        payload,
    })
}

pub(crate) async fn read_stream(
    pool: &SqlitePool,
    stream_type: &str,
    stream_id: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE stream_type = ? AND stream_id = ? ORDER BY stream_version"
    ))
    .bind(stream_type)
    .bind(stream_id)
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    rows.iter().map(row_to_event).collect()
}

pub(crate) async fn read_range(
    pool: &SqlitePool,
    from: Position,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE position >= ? ORDER BY position LIMIT ?"
    ))
    .bind(from.as_i64())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    rows.iter().map(row_to_event).collect()
}

pub(crate) async fn read_range_except(
    pool: &SqlitePool,
    from: Position,
    end: Position,
    limit: u32,
    skipped: &str,
) -> Result<Vec<RawEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT position, stream_type, stream_id, event_type, actor, payload FROM events \
         WHERE position >= ? AND position < ? AND stream_type <> ? ORDER BY position LIMIT ?",
    )
    .bind(from.as_i64())
    .bind(end.as_i64())
    .bind(skipped)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    rows.iter()
        .map(|row| -> Result<RawEvent, sqlx::Error> {
            Ok(RawEvent {
                position: Position::from_i64(row.try_get("position")?),
                stream_type: row.try_get("stream_type")?,
                stream_id: row.try_get("stream_id")?,
                event_type: row.try_get("event_type")?,
                actor: row.try_get("actor")?,
                payload: row.try_get("payload")?,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(StoreError::unavailable)
}

/// The events of positions `range` that `scan` lets through, in order (see [`DecisionScan`]).
pub(crate) async fn read_decisions(
    pool: &SqlitePool,
    range: Range<u64>,
    scan: &DecisionScan,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = decision_scan_query("", range, scan)
        .build()
        .persistent(false)
        .fetch_all(pool)
        .await
        .map_err(StoreError::unavailable)?;
    rows.iter().map(row_to_event).collect()
}

/// The statement of [`read_decisions`], after `prefix` (tests put `EXPLAIN QUERY PLAN` there).
fn decision_scan_query(
    prefix: &str,
    range: Range<u64>,
    scan: &DecisionScan,
) -> QueryBuilder<Sqlite> {
    // NOT INDEXED: the scan walks the range of positions (the rowid); left to itself the
    // planner takes the unique index for `stream_type = ?`, reads every event of the type in
    // the log and sorts them in a temporary B-tree — minutes and gigabytes at 10M events.
    let mut q = QueryBuilder::<Sqlite>::new(prefix);
    q.push(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events NOT INDEXED WHERE position >= "
    ));
    q.push_bind(sql_index(range.start))
        .push(" AND position < ")
        .push_bind(sql_index(range.end))
        .push(" AND ((stream_type = ")
        .push_bind(scan.stream_type.as_str());
    if let Some(event_type) = &scan.event_type {
        q.push(" AND event_type = ").push_bind(event_type.as_str());
    }
    for group in scan.payload_contains.iter().filter(|g| !g.is_empty()) {
        q.push(" AND (");
        for (i, text) in group.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            // instr is a byte search in C: no JSON is parsed for events left out.
            q.push("instr(payload, ")
                .push_bind(text.as_str())
                .push(") > 0");
        }
        q.push(")");
    }
    if let Some(field) = &scan.text_field {
        let pattern = format!("\"{}\":\"", field.key);
        let value = |q: &mut QueryBuilder<Sqlite>| {
            q.push("substr(payload, instr(payload, ")
                .push_bind(pattern.clone())
                .push(") + ")
                .push_bind(i64::try_from(pattern.chars().count()).unwrap_or(i64::MAX))
                .push(", ")
                .push_bind(i64::try_from(field.chars).unwrap_or(i64::MAX))
                .push(")");
        };
        // A payload without the field is let through: the reader decides.
        for (bound, op) in [(&field.min, " >= "), (&field.max, " <= ")] {
            if let Some(bound) = bound {
                q.push(" AND (instr(payload, ")
                    .push_bind(pattern.clone())
                    .push(") = 0 OR ");
                value(&mut q);
                q.push(op).push_bind(bound.clone()).push(")");
            }
        }
    }
    q.push(")");
    if let Some((stream_type, stream_id)) = &scan.also {
        q.push(" OR (stream_type = ")
            .push_bind(stream_type.as_str())
            .push(" AND stream_id = ")
            .push_bind(stream_id.as_str())
            .push(")");
    }
    q.push(") ORDER BY position");
    q
}

pub(crate) async fn next_position(pool: &SqlitePool) -> Result<Position, StoreError> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM events")
        .fetch_one(pool)
        .await
        .map_err(StoreError::unavailable)?;
    Ok(Position::from_i64(next))
}

pub(crate) async fn idempotency(
    pool: &SqlitePool,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
    idempotency_on(&mut conn, scope, key)
        .await
        .map_err(StoreError::unavailable)
}

async fn idempotency_on(
    conn: &mut SqliteConnection,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    let row = sqlx::query("SELECT fingerprint, first_position, last_position FROM idempotency_keys WHERE scope = ? AND key = ?")
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| -> Result<IdempotencyRecord, sqlx::Error> {
        Ok(IdempotencyRecord {
            fingerprint: r.try_get("fingerprint")?,
            first_position: Position::from_i64(r.try_get("first_position")?),
            last_position: Position::from_i64(r.try_get("last_position")?),
        })
    })
    .transpose()
}

/// Keeps a signed checkpoint (once per tree size).
pub(crate) async fn save_checkpoint(
    pool: &SqlitePool,
    size: u64,
    root: &Hash,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO checkpoints (tree_size, root, note, signed_at) VALUES (?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING")
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(root.as_slice())
        .bind(note)
        .bind(time_text(Utc::now()))
        .execute(pool)
        .await
        .map_err(StoreError::unavailable)?;
    Ok(())
}

/// The newest kept checkpoint at or below `max_size` (tree size, note), if any.
pub(crate) async fn checkpoint_at_most(
    pool: &SqlitePool,
    max_size: u64,
) -> Result<Option<(u64, String)>, StoreError> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT tree_size, note FROM checkpoints WHERE tree_size <= ? ORDER BY tree_size DESC LIMIT 1")
            .bind(i64::try_from(max_size).unwrap_or(i64::MAX))
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?;
    Ok(row.map(|(size, note)| (u64::try_from(size).unwrap_or(0), note)))
}

/// Stored leaf hashes (level 0 of the tree) from position `from` on.
pub(crate) async fn leaf_hashes(
    pool: &SqlitePool,
    from: u64,
    limit: u32,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= ? ORDER BY idx LIMIT ?",
    )
    .bind(i64::try_from(from).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    Ok(rows
        .into_iter()
        .map(|(i, h)| (u64::try_from(i).unwrap_or(u64::MAX), h))
        .collect())
}

/// Every kept checkpoint, oldest first: (tree size, signed note).
pub(crate) async fn checkpoints(pool: &SqlitePool) -> Result<Vec<(u64, String)>, StoreError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT tree_size, note FROM checkpoints ORDER BY tree_size")
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
    Ok(rows
        .into_iter()
        .map(|(size, note)| (u64::try_from(size).unwrap_or(0), note))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the decision scan must walk the range of positions, never an index over the
    /// whole log plus a sort (which took 12 minutes and filled the disk at 10M events).
    #[tokio::test]
    async fn a_decision_scan_walks_the_range_of_positions() {
        let dir = tempfile::tempdir().expect("dir");
        let (pool, _writer) = open(&dir.path().join("ledger.db")).await.expect("open");
        let scans = [
            DecisionScan {
                stream_type: "access".into(),
                event_type: None,
                payload_contains: Vec::new(),
                text_field: None,
                also: None,
            },
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
            },
        ];
        for scan in &scans {
            let plan: Vec<String> = decision_scan_query("EXPLAIN QUERY PLAN ", 100..200, scan)
                .build()
                .fetch_all(&pool)
                .await
                .expect("plan")
                .iter()
                .map(|row| row.try_get::<String, _>("detail").expect("detail"))
                .collect();
            assert_eq!(
                plan,
                ["SEARCH events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"],
                "{scan:?}"
            );
        }
    }
}

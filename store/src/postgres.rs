//! The server backend: one PostgreSQL database that several `serve` processes may share
//! (SPEC §9). How positions, the restriction fence, followers and checkpoints hold across
//! processes is docs/adr/0005.
//!
//! Writes go through one connection owned by this process's group-commit writer
//! ([`crate::group_commit`]); every write transaction first locks the single `log_head` row, so
//! the writers of all processes take turns, and assigns positions as `MAX(position) + 1` only
//! then. Reads use a pool. Durability: `synchronous_commit = on` is forced on the writer's
//! connection, so COMMIT returns only after the WAL is flushed (SPEC §5.1) whatever the
//! server's default.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Row};
use tokio::sync::{oneshot, watch};

use consent_ledger_audit::tree::{mth, root_nodes, Frontier, Hash, NodeId};

use crate::error::{classify, ClassifiedError, StoreError, UniqueKey};
use crate::event::{
    Append, IdempotencyClaim, IdempotencyRecord, Payload, Position, RawEvent, StoredEvent,
};
use crate::group_commit::{announce, AppendResult, BatchOutcome};
use crate::sqlite::{leaf_of, pass_fence, stamp};
use crate::PostgresUrl;

/// The columns [`row_to_event`] reads, in a macro so queries stay `'static` SQL for sqlx.
macro_rules! event_columns {
    () => {
        "position, stream_type, stream_id, stream_version, event_type, schema_version, actor, request_id, recorded_at, payload"
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The channel on which every committing transaction announces the log's new size (the
/// position its next event will get). PostgreSQL delivers notifications on commit, in commit
/// order, to every listening connection of the same database.
pub(crate) const LOG_CHANNEL: &str = "consent_ledger_log";

/// Connections of the read pool, per process (one of them listens once subscribed).
const READ_CONNECTIONS: u32 = 9;

pub(crate) fn connect_options(url: &PostgresUrl) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(|_| StoreError::UnsupportedUrl(url.to_string()))?;
    Ok(options.application_name("consent-ledger"))
}

/// The writer's connection, reconnected after a failure broke it (a server restart).
pub(crate) struct Writer {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
}

impl Writer {
    /// The connection itself, for the benchmark baselines' plain SQL.
    pub(crate) fn into_connection(self) -> Result<PgConnection, StoreError> {
        self.conn.ok_or(StoreError::ShuttingDown)
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if self.conn.is_none() {
            self.conn = Some(connect_writer(&self.options).await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol("writer connection missing".into()))
    }
}

async fn connect_writer(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    // A 2xx means the WAL is flushed (SPEC §5.1): never trust the server default for that.
    let options = options.clone().options([("synchronous_commit", "on")]);
    PgConnection::connect_with(&options).await
}

/// Connects, migrates (sqlx's PostgreSQL migrator holds an advisory lock, so processes
/// starting together apply each migration once), and returns the read pool and the writer.
#[tracing::instrument(skip_all)]
pub(crate) async fn open(url: &PostgresUrl) -> Result<(PgPool, Writer), StoreError> {
    let options = connect_options(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(READ_CONNECTIONS)
        .connect_with(options.clone())
        .await
        .map_err(StoreError::unavailable)?;
    MIGRATOR.run(&pool).await?;
    let conn = connect_writer(&options)
        .await
        .map_err(StoreError::unavailable)?;
    Ok((
        pool,
        Writer {
            options,
            conn: Some(conn),
        },
    ))
}

/// A read pool only, for the offline baselines and `migrate`.
pub(crate) async fn pool(url: &PostgresUrl, connections: u32) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(connect_options(url)?)
        .await
        .map_err(StoreError::unavailable)
}

/// Applies pending migrations without opening a store (`consent-ledger migrate`).
pub(crate) async fn migrate(url: &PostgresUrl) -> Result<(), StoreError> {
    let pool = pool(url, 1).await?;
    let migrated = MIGRATOR.run(&pool).await;
    pool.close().await;
    Ok(migrated?)
}

/// Commits a batch of appends in one transaction. Each append that a unique key refuses is
/// rolled back alone (SAVEPOINT); any other error rolls the whole transaction back and fails
/// every append (no partial write).
pub(crate) async fn commit_batch(
    writer: &mut Writer,
    batch: &[Append],
    frontier: &mut Option<Frontier>,
) -> BatchOutcome {
    let conn = match writer.connection().await {
        Ok(conn) => conn,
        Err(err) => return BatchOutcome::Failed(Arc::new(err)),
    };
    match try_commit_batch(conn, batch, frontier).await {
        Ok(outcome) => outcome,
        Err(err) => {
            // Forget the tree's right edge, which may hold leaves that were not committed. A
            // connection that cannot even roll back is broken: the next batch reconnects.
            *frontier = None;
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                writer.conn = None;
            }
            BatchOutcome::Failed(Arc::new(err))
        }
    }
}

async fn try_commit_batch(
    conn: &mut PgConnection,
    batch: &[Append],
    frontier: &mut Option<Frontier>,
) -> Result<BatchOutcome, sqlx::Error> {
    let (next, fence) = begin(conn).await?;
    // Read once the head is held, so that across processes `recorded_at` follows positions
    // as far as the nodes' clocks agree. TIMESTAMPTZ keeps microseconds; truncate here so the
    // answer equals what reads return.
    let recorded_at = Utc::now().trunc_subsecs(6);
    let mut new_fence = fence;
    let results = match insert_batch(conn, batch, next, &mut new_fence, recorded_at).await {
        Ok(results) => results,
        // Some append of the batch is refused (a taken stream version, claim or key). Redo
        // the batch one SAVEPOINT per append, so that only the refused ones fail. The lock is
        // released in between, so the head is read again.
        Err(err) if is_unique_violation(&err) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            let (next, fence) = begin(conn).await?;
            new_fence = fence;
            insert_one_by_one(conn, batch, next, &mut new_fence, recorded_at).await?
        }
        Err(err) => return Err(err),
    };
    let committed: Vec<&StoredEvent> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .collect();
    append_leaves(conn, frontier, &committed).await?;
    // The trailer holds only integers this function computed, so it is sent as one simple
    // query: fence, notification and COMMIT in a single round trip.
    let mut trailer = String::new();
    if new_fence != fence {
        trailer.push_str(&format!(
            "UPDATE fences SET position = {new_fence} WHERE name = 'restriction'; "
        ));
    }
    if let Some(last) = committed.last() {
        let size = last.position.get() + 1;
        trailer.push_str(&format!("NOTIFY {LOG_CHANNEL}, '{size}'; "));
    }
    trailer.push_str("COMMIT");
    sqlx::raw_sql(AssertSqlSafe(trailer))
        .execute(&mut *conn)
        .await?;
    Ok(BatchOutcome::Done(results))
}

/// Opens the write transaction and takes the log head: the writers of every process wait
/// here for each other. Returns the next position and the restriction fence, both read after
/// the lock is held.
async fn begin(conn: &mut PgConnection) -> Result<(Position, i64), sqlx::Error> {
    // One round trip, three statements. Each statement of READ COMMITTED takes its own
    // snapshot, so the SELECT after the lock sees everything the previous holder committed;
    // reading the maximum in the locking statement itself would use a snapshot taken before
    // the wait and could miss it.
    let rows = sqlx::raw_sql(
        "BEGIN ISOLATION LEVEL READ COMMITTED; \
         SELECT id FROM log_head WHERE id = 1 FOR UPDATE; \
         SELECT (SELECT COALESCE(MAX(position) + 1, 0) FROM events) AS next, \
                (SELECT position FROM fences WHERE name = 'restriction') AS fence",
    )
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() != 2 {
        return Err(sqlx::Error::Protocol(
            "the log head row is missing: is the database migrated?".into(),
        ));
    }
    let head = &rows[1];
    let next: i64 = head.try_get("next")?;
    let fence: i64 = head.try_get("fence")?;
    Ok((Position::from_i64(next), fence))
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The fast path: the whole batch in one INSERT per table, each over arrays (`UNNEST`), so a
/// batch costs the same few round trips whatever its size.
async fn insert_batch(
    conn: &mut PgConnection,
    batch: &[Append],
    first: Position,
    fence: &mut i64,
    recorded_at: DateTime<Utc>,
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
        let first_of = |e: &[StoredEvent]| e.first().map_or(0, |e| e.position.as_i64());
        let last_of = |e: &[StoredEvent]| e.last().map_or(0, |e| e.position.as_i64());
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, last_position, created_at) \
             SELECT scope, key, fingerprint, first_position, last_position, $6 \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
               AS k(scope, key, fingerprint, first_position, last_position)",
        )
        .bind(keys.iter().map(|(c, _)| c.scope.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|(c, _)| c.key.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|(c, _)| c.fingerprint.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|(_, e)| first_of(e)).collect::<Vec<_>>())
        .bind(keys.iter().map(|(_, e)| last_of(e)).collect::<Vec<_>>())
        .bind(recorded_at)
        .execute(&mut *conn)
        .await?;
    }
    let claims: Vec<(&str, i64)> = batch
        .iter()
        .zip(&stamped)
        .filter_map(|(a, e)| Some((a, e.first()?.position.as_i64())))
        .flat_map(|(a, p)| a.unique_claims.iter().map(move |c| (c.as_str(), p)))
        .collect();
    if !claims.is_empty() {
        sqlx::query(
            "INSERT INTO unique_claims (claim, position) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[])",
        )
        .bind(claims.iter().map(|(c, _)| *c).collect::<Vec<_>>())
        .bind(claims.iter().map(|(_, p)| *p).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let all: Vec<&StoredEvent> = stamped.iter().flatten().collect();
    insert_events(conn, &all).await?;
    Ok(stamped
        .into_iter()
        .zip(refused)
        .map(|(events, refusal)| match refusal {
            Some(stale) => Err(stale),
            None => Ok(events),
        })
        .collect())
}

/// Inserts events in one statement (the writer's batches and the benchmark's baseline).
pub(crate) async fn insert_events(
    conn: &mut PgConnection,
    events: &[&StoredEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&StoredEvent) -> &str| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    sqlx::query(concat!(
        "INSERT INTO events (",
        event_columns!(),
        ") SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                                $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])"
    ))
    .bind(
        events
            .iter()
            .map(|e| e.position.as_i64())
            .collect::<Vec<_>>(),
    )
    .bind(column(|e| &e.stream_type))
    .bind(column(|e| &e.stream_id))
    .bind(
        events
            .iter()
            .map(|e| i64::try_from(e.stream_version).unwrap_or(i64::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(column(|e| &e.event_type))
    .bind(
        events
            .iter()
            .map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(column(|e| &e.actor))
    .bind(column(|e| &e.request_id))
    .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
    .bind(column(|e| e.payload.as_str()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The slow path: each append in its own SAVEPOINT, so a unique violation refuses only it.
async fn insert_one_by_one(
    conn: &mut PgConnection,
    batch: &[Append],
    first: Position,
    fence: &mut i64,
    recorded_at: DateTime<Utc>,
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
        match append_one(conn, append, next, recorded_at).await {
            Ok(events) => {
                sqlx::query("RELEASE SAVEPOINT one_append")
                    .execute(&mut *conn)
                    .await?;
                next = Position::new(next.get() + events.len() as u64);
                results.push(Ok(events));
            }
            Err(ClassifiedError::Refused(refusal)) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT one_append; RELEASE SAVEPOINT one_append")
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

async fn append_one(
    conn: &mut PgConnection,
    append: &Append,
    first: Position,
    recorded_at: DateTime<Utc>,
) -> Result<Vec<StoredEvent>, ClassifiedError> {
    // An empty append holds no position, so it may claim nothing either.
    if append.events.is_empty() {
        return Ok(Vec::new());
    }
    let last = Position::new(first.get() + append.events.len().saturating_sub(1) as u64);
    if let Some(claim) = &append.idempotency {
        // Every writer of every process holds the log head while it writes, so this look-up
        // cannot race another writer; the primary key is the backstop.
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.fingerprint)
        .bind(first.as_i64())
        .bind(last.as_i64())
        .bind(recorded_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(e, UniqueKey::Idempotency))?;
    }
    for claim in &append.unique_claims {
        sqlx::query("INSERT INTO unique_claims (claim, position) VALUES ($1, $2)")
            .bind(claim)
            .bind(first.as_i64())
            .execute(&mut *conn)
            .await
            .map_err(|e| classify(e, UniqueKey::Claim(claim)))?;
    }
    let stored = stamp(append, first, recorded_at);
    for event in &stored {
        insert_events(conn, &[event])
            .await
            .map_err(|e| classify(e, UniqueKey::StreamVersion(&event.stream_id)))?;
    }
    Ok(stored)
}

/// Adds the committed events to the Merkle tree in the same transaction: their leaf hashes
/// and every subtree they complete (RFC 9162 §2.1), so proofs never need recomputation.
async fn append_leaves(
    conn: &mut PgConnection,
    frontier: &mut Option<Frontier>,
    committed: &[&StoredEvent],
) -> Result<(), sqlx::Error> {
    let Some(first) = committed.first() else {
        return Ok(());
    };
    let size = first.position.get();
    let mut edge = match frontier.take() {
        Some(f) if f.size() == size => f,
        // First batch, or another process appended since this one's last batch: read the
        // right edge back (under the head lock, so it cannot move meanwhile).
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

/// Leaves (level 0) and subtrees of 16 leaves or more are stored; the levels between are
/// recomputed from their leaves when a root or proof needs them (docs/adr/0004).
fn is_kept(node: NodeId) -> bool {
    node.level() == 0 || node.level() >= 4
}

/// A node's level as SQL's INTEGER (levels are below 64).
fn level_i32(node: NodeId) -> i32 {
    i32::try_from(node.level()).unwrap_or(i32::MAX)
}

fn index_i64(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

async fn insert_nodes(
    conn: &mut PgConnection,
    nodes: &[(NodeId, Hash)],
) -> Result<(), sqlx::Error> {
    let kept: Vec<&(NodeId, Hash)> = nodes.iter().filter(|(n, _)| is_kept(*n)).collect();
    if kept.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO merkle_nodes (level, idx, hash) \
         SELECT * FROM UNNEST($1::int[], $2::bigint[], $3::bytea[])",
    )
    .bind(kept.iter().map(|(n, _)| level_i32(*n)).collect::<Vec<_>>())
    .bind(
        kept.iter()
            .map(|(n, _)| index_i64(n.index()))
            .collect::<Vec<_>>(),
    )
    .bind(kept.iter().map(|(_, h)| h.as_slice()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The tree's right edge at `size` from the stored subtrees; a log written before the tree
/// existed is hashed now, once.
async fn load_frontier(conn: &mut PgConnection, size: u64) -> Result<Frontier, sqlx::Error> {
    let mut hashes = Vec::new();
    for hash in fetch_nodes(conn, &root_nodes(size)).await? {
        match hash {
            Some(hash) => hashes.push(hash),
            None => return backfill(conn, size).await,
        }
    }
    Frontier::from_parts(size, hashes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn to_hash(bytes: &[u8]) -> Result<Hash, sqlx::Error> {
    Hash::try_from(bytes).map_err(|_| sqlx::Error::Decode("merkle node is not 32 bytes".into()))
}

/// The hashes of `nodes` (None where one is not stored), in one round trip: kept nodes are
/// read directly, the others recomputed from their (at most eight) leaves.
async fn fetch_nodes(
    conn: &mut PgConnection,
    nodes: &[NodeId],
) -> Result<Vec<Option<Hash>>, sqlx::Error> {
    let mut levels = Vec::new();
    let mut indexes = Vec::new();
    for node in nodes {
        if is_kept(*node) {
            levels.push(level_i32(*node));
            indexes.push(index_i64(node.index()));
        } else {
            for leaf in node.leaves() {
                levels.push(0);
                indexes.push(index_i64(leaf));
            }
        }
    }
    let rows: Vec<(i32, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT m.level, m.idx, m.hash FROM merkle_nodes m \
         JOIN UNNEST($1::int[], $2::bigint[]) AS w(level, idx) \
           ON m.level = w.level AND m.idx = w.idx",
    )
    .bind(&levels)
    .bind(&indexes)
    .fetch_all(&mut *conn)
    .await?;
    let found: std::collections::HashMap<(i32, i64), Vec<u8>> = rows
        .into_iter()
        .map(|(level, idx, hash)| ((level, idx), hash))
        .collect();
    let get = |level: i32, idx: u64| found.get(&(level, index_i64(idx))).map(|h| to_hash(h));
    nodes
        .iter()
        .map(|node| {
            if is_kept(*node) {
                return get(level_i32(*node), node.index()).transpose();
            }
            let mut leaves = Vec::new();
            for leaf in node.leaves() {
                match get(0, leaf) {
                    Some(hash) => leaves.push(hash?),
                    None => return Ok(None),
                }
            }
            Ok(Some(mth(&leaves)))
        })
        .collect()
}

/// Rebuilds every stored subtree of the first `size` leaves from the events themselves.
async fn backfill(conn: &mut PgConnection, size: u64) -> Result<Frontier, sqlx::Error> {
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
            " FROM events WHERE position >= $1 AND position < $2 ORDER BY position LIMIT 10000"
        ))
        .bind(index_i64(edge.size()))
        .bind(index_i64(size))
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        let mut nodes = Vec::new();
        for row in &rows {
            let event = row_to_event(row).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            nodes.extend(edge.push(leaf_of(&event)));
        }
        insert_nodes(conn, &nodes).await?;
    }
    Ok(edge)
}

/// The hashes of `nodes`, from stored subtrees, in order (for roots and proofs).
pub(crate) async fn node_hashes(pool: &PgPool, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
    let hashes = fetch_nodes(&mut conn, nodes)
        .await
        .map_err(StoreError::unavailable)?;
    nodes
        .iter()
        .zip(hashes)
        .map(|(node, hash)| {
            hash.ok_or_else(|| StoreError::Corrupt {
                position: -1,
                detail: format!("merkle node {node:?} missing"),
            })
        })
        .collect()
}

/// `MTH` of the first `size` events, from stored subtrees (RFC 9162 §2.1.1).
pub(crate) async fn tree_root(pool: &PgPool, size: u64) -> Result<Hash, StoreError> {
    let hashes = node_hashes(pool, &root_nodes(size)).await?;
    let edge = Frontier::from_parts(size, hashes).map_err(|e| StoreError::Corrupt {
        position: -1,
        detail: e.to_string(),
    })?;
    Ok(edge.root())
}

fn row_to_event(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let position: i64 = row.try_get("position").map_err(StoreError::unavailable)?;
    let corrupt = |detail: String| StoreError::Corrupt { position, detail };
    let text = |name: &str| {
        row.try_get::<String, _>(name)
            .map_err(|e| corrupt(format!("{name}: {e}")))
    };
    let stream_version: i64 = row
        .try_get("stream_version")
        .map_err(|e| corrupt(format!("stream_version: {e}")))?;
    let schema_version: i32 = row
        .try_get("schema_version")
        .map_err(|e| corrupt(format!("schema_version: {e}")))?;
    let recorded_at: DateTime<Utc> = row
        .try_get("recorded_at")
        .map_err(|e| corrupt(format!("recorded_at: {e}")))?;
    // Kept as the text it was written as; the leaf hashes exactly these bytes.
    let payload = Payload::stored(text("payload")?);
    Ok(StoredEvent {
        position: Position::from_i64(position),
        stream_type: text("stream_type")?,
        stream_id: text("stream_id")?,
        stream_version: u64::try_from(stream_version).map_err(|e| corrupt(e.to_string()))?,
        event_type: text("event_type")?,
        schema_version: u32::try_from(schema_version).map_err(|e| corrupt(e.to_string()))?,
        actor: text("actor")?,
        request_id: text("request_id")?,
        recorded_at,
        payload,
    })
}

pub(crate) async fn read_stream(
    pool: &PgPool,
    stream_type: &str,
    stream_id: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE stream_type = $1 AND stream_id = $2 ORDER BY stream_version"
    ))
    .bind(stream_type)
    .bind(stream_id)
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    rows.iter().map(row_to_event).collect()
}

/// The events of positions `range` of the scanned stream (and the `also` stream): a coarser
/// pre-selection than SQLite's (no payload search here); the caller's exact filter refines it.
pub(crate) async fn read_decisions(
    pool: &PgPool,
    range: std::ops::Range<u64>,
    scan: &crate::event::DecisionScan,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (also_type, also_id) = scan.also.clone().unwrap_or_default();
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE position >= $1 AND position < $2 \
         AND ((stream_type = $3 AND ($4::text IS NULL OR event_type = $4)) \
              OR (stream_type = $5 AND stream_id = $6)) ORDER BY position"
    ))
    .bind(index_i64(range.start))
    .bind(index_i64(range.end))
    .bind(scan.stream_type.as_str())
    .bind(scan.event_type.as_deref())
    .bind(also_type)
    .bind(also_id)
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    rows.iter().map(row_to_event).collect()
}

pub(crate) async fn read_range(
    pool: &PgPool,
    from: Position,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
    ))
    .bind(from.as_i64())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    rows.iter().map(row_to_event).collect()
}

pub(crate) async fn read_range_except(
    pool: &PgPool,
    from: Position,
    end: Position,
    limit: u32,
    skipped: &str,
) -> Result<Vec<RawEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT position, stream_type, stream_id, event_type, actor, payload FROM events \
         WHERE position >= $1 AND position < $2 AND stream_type <> $3 ORDER BY position LIMIT $4",
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

/// Listens for the commits of every process (`NOTIFY` on [`LOG_CHANNEL`]) and announces the
/// log's size on `committed`, until `stop` is dropped. After every (re)connection the size is
/// read once, since what committed while nobody listened was announced to no one.
#[tracing::instrument(skip_all)]
pub(crate) async fn listen(
    pool: PgPool,
    committed: Arc<watch::Sender<Position>>,
    mut stop: oneshot::Receiver<()>,
) {
    const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
    loop {
        let connected = tokio::select! {
            _ = &mut stop => return,
            connected = listen_on(&pool) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for commits of other processes; retrying");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        match next_position(&pool).await {
            Ok(size) => announce(&committed, size),
            Err(e) => tracing::warn!(error = %e, "cannot read the log size"),
        }
        loop {
            let received = tokio::select! {
                _ = &mut stop => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => match notification.payload().parse::<u64>() {
                    Ok(size) => announce(&committed, Position::new(size)),
                    Err(_) => tracing::warn!(
                        payload = notification.payload(),
                        "ignoring a malformed log notification"
                    ),
                },
                // The connection was lost: listen again and read the size again.
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for commits failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn listen_on(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(LOG_CHANNEL).await?;
    Ok(listener)
}

pub(crate) async fn next_position(pool: &PgPool) -> Result<Position, StoreError> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM events")
        .fetch_one(pool)
        .await
        .map_err(StoreError::unavailable)?;
    Ok(Position::from_i64(next))
}

pub(crate) async fn idempotency(
    pool: &PgPool,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
    idempotency_on(&mut conn, scope, key)
        .await
        .map_err(StoreError::unavailable)
}

async fn idempotency_on(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT fingerprint, first_position, last_position FROM idempotency_keys \
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(fingerprint, first, last)| IdempotencyRecord {
        fingerprint,
        first_position: Position::from_i64(first),
        last_position: Position::from_i64(last),
    }))
}

/// Keeps a signed checkpoint (once per tree size: any node may sign the same size).
pub(crate) async fn save_checkpoint(
    pool: &PgPool,
    size: u64,
    root: &Hash,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoints (tree_size, root, note, signed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tree_size) DO NOTHING",
    )
    .bind(index_i64(size))
    .bind(root.as_slice())
    .bind(note)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map_err(StoreError::unavailable)?;
    Ok(())
}

/// The newest kept checkpoint at or below `max_size` (tree size, note), if any.
pub(crate) async fn checkpoint_at_most(
    pool: &PgPool,
    max_size: u64,
) -> Result<Option<(u64, String)>, StoreError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT tree_size, note FROM checkpoints WHERE tree_size <= $1 \
         ORDER BY tree_size DESC LIMIT 1",
    )
    .bind(index_i64(max_size))
    .fetch_optional(pool)
    .await
    .map_err(StoreError::unavailable)?;
    Ok(row.map(|(size, note)| (u64::try_from(size).unwrap_or(0), note)))
}

/// Stored leaf hashes (level 0 of the tree) from position `from` on.
pub(crate) async fn leaf_hashes(
    pool: &PgPool,
    from: u64,
    limit: u32,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= $1 ORDER BY idx LIMIT $2",
    )
    .bind(index_i64(from))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    Ok(rows
        .into_iter()
        .map(|(i, h)| (u64::try_from(i).unwrap_or(u64::MAX), h))
        .collect())
}

/// The stored leaf hashes of positions `leaves`, in order.
pub(crate) async fn leaf_range(
    pool: &PgPool,
    leaves: std::ops::Range<u64>,
) -> Result<Vec<Hash>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(index_i64(leaves.start))
    .bind(index_i64(leaves.end))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)?;
    crate::sqlite::leaves_of_rows(leaves, &rows)
}

/// Every kept checkpoint, oldest first: (tree size, signed note).
pub(crate) async fn checkpoints(pool: &PgPool) -> Result<Vec<(u64, String)>, StoreError> {
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

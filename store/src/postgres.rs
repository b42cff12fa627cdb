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

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Postgres, Row};
use tokio::sync::{oneshot, watch};

use consent_ledger_audit::tree::{root_nodes, Frontier, Hash, NodeId};

use crate::error::StoreError;
use crate::event::{
    Credential, DecisionScan, IdempotencyClaim, IdempotencyRecord, IssuedCredential, OpenedField,
    OutboxMessage, Payload, Position, RawEvent, StoredEvent, TrackingUpdateRow,
};
use crate::write_path::{
    announce, is_kept, nodes_then_finish, resolve_nodes, sql_index, LastHead, LogWriter, Stamped,
    BACKFILL_PAGE,
};
use crate::PostgresUrl;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

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
    /// The head this writer's last commit left.
    head: LastHead,
}

impl Writer {
    /// The connection itself, for the benchmark baselines' plain SQL.
    #[cfg(feature = "baseline")]
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
#[tracing::instrument(level = "debug", skip_all)]
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
            head: LastHead::default(),
        },
    ))
}

/// A read pool only, for the offline baselines and `migrate`.
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) async fn pool(url: &PostgresUrl, connections: u32) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(connect_options(url)?)
        .await
        .map_err(StoreError::unavailable)
}

/// Applies pending migrations without opening a store (`consent-ledger migrate`).
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) async fn migrate(url: &PostgresUrl) -> Result<(), StoreError> {
    let pool = pool(url, 1).await?;
    let migrated = MIGRATOR.run(&pool).await;
    pool.close().await;
    Ok(migrated?)
}

/// `recorded_at` and `signed_at` as stored: TIMESTAMPTZ, microseconds.
fn time_bind(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn recorded_at(row: &PgRow) -> Result<DateTime<Utc>, String> {
    row.try_get("recorded_at").map_err(|e| e.to_string())
}

crate::reads::reads_backend!(Postgres, i32);
pub(crate) use self::{leaf_hashes_rows as leaf_hashes, read_range as read_pages};

/// The connection of the transaction under way; [`LogWriter::begin`] reconnects first if a
/// failure broke it.
fn tx(writer: &mut Writer) -> Result<&mut PgConnection, sqlx::Error> {
    writer
        .conn
        .as_mut()
        .ok_or_else(|| sqlx::Error::Protocol("writer connection missing".into()))
}

/// The writer runs the shared write path ([`crate::write_path`]); each statement over arrays
/// (`UNNEST`), so that a batch costs the same few round trips whatever its size.
impl LogWriter for Writer {
    type Time = DateTime<Utc>;

    crate::write_path::writer_statements!(sqlx::Postgres);

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        time_bind(at)
    }

    /// Opens the write transaction and takes the log head: the writers of every process wait
    /// here for each other.
    #[tracing::instrument(level = "trace", skip_all)]
    async fn begin(&mut self) -> Result<(Position, i64), sqlx::Error> {
        // One round trip, three statements. Each statement of READ COMMITTED takes its own
        // snapshot, so the SELECT after the lock sees everything the previous holder
        // committed; reading the maximum in the locking statement itself would use a snapshot
        // taken before the wait and could miss it.
        let rows = sqlx::raw_sql(
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SELECT id FROM log_head WHERE id = 1 FOR UPDATE; \
             SELECT (SELECT COALESCE(MAX(position) + 1, 0) FROM events) AS next, \
                    (SELECT position FROM fences WHERE name = 'restriction') AS fence",
        )
        .fetch_all(self.connection().await?)
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

    /// A connection that cannot even roll back is broken: the next batch reconnects.
    #[tracing::instrument(level = "trace", skip_all)]
    async fn abort(&mut self) {
        if self.conn.is_some() && self.rollback().await.is_err() {
            self.conn = None;
        }
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn insert_stamped(
        &mut self,
        stamped: &Stamped<'_>,
        time: &DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let conn = tx(self)?;
        let keys = stamped.keys();
        if !keys.is_empty() {
            bind_keys(
                sqlx::query(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, last_position, created_at) \
                     SELECT scope, key, fingerprint, first_position, last_position, $6 \
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
                       AS k(scope, key, fingerprint, first_position, last_position)",
                ),
                &keys,
                time,
            )
            .execute(&mut *conn)
            .await?;
        }
        let claims = stamped.claims();
        if !claims.is_empty() {
            bind_claims(
                sqlx::query(
                    "INSERT INTO unique_claims (claim, position) \
                     SELECT * FROM UNNEST($1::text[], $2::bigint[])",
                ),
                &claims,
            )
            .execute(&mut *conn)
            .await?;
        }
        insert_events(conn, &stamped.events()).await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn insert_event(
        &mut self,
        event: &StoredEvent,
        _time: &DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        insert_events(tx(self)?, &[event]).await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn clear_nodes(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM merkle_nodes")
            .execute(tx(self)?)
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn fetch_nodes(&mut self, nodes: &[NodeId]) -> Result<Vec<Option<Hash>>, sqlx::Error> {
        fetch_nodes(tx(self)?, nodes).await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn insert_nodes(&mut self, kept: &[&(NodeId, Hash)]) -> Result<(), sqlx::Error> {
        bind_nodes(
            sqlx::query(
                "INSERT INTO merkle_nodes (level, idx, hash) \
                 SELECT * FROM UNNEST($1::int[], $2::bigint[], $3::bytea[])",
            ),
            kept,
        )
        .execute(tx(self)?)
        .await
        .map(drop)
    }

    /// The trailer holds only integers the write path computed, so it is sent as one simple
    /// query: fence, notification and COMMIT in a single round trip.
    #[tracing::instrument(level = "trace", skip_all)]
    async fn finish(
        &mut self,
        fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<(), sqlx::Error> {
        self.trailer(&[], fence, size).await
    }

    /// A batch's new subtree hashes go into the same simple query as the trailer, so that
    /// the commit of a batch of the fast path is three round trips (begin, events, this)
    /// instead of four: the writer's transactions are serial, one at a time across every node,
    /// and the one round trip fewer gave 13% more of them (0.69–0.81 ms each before;
    /// BENCHMARKS.md, "PostgreSQL"). A large batch's nodes are bound as arrays instead
    /// ([`INLINE_NODES`]).
    #[tracing::instrument(level = "trace", skip_all, fields(nodes = kept.len()))]
    async fn finish_with_nodes(
        &mut self,
        kept: &[&(NodeId, Hash)],
        fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<(), sqlx::Error> {
        if kept.len() > INLINE_NODES {
            return nodes_then_finish(self, kept, fence, size).await;
        }
        self.trailer(kept, fence, size).await
    }

    fn last_head(&mut self) -> Option<&mut LastHead> {
        Some(&mut self.head)
    }

    /// One round trip instead of three: `log_append` (migrations/postgres/0018, 0019) checks
    /// the head under its lock and writes the batch with the rows it keeps beside its events,
    /// and its statement's commit flushes the WAL.
    #[tracing::instrument(level = "trace", skip_all, fields(events = stamped.events().len()))]
    async fn append_whole(
        &mut self,
        (next, fence): (Position, i64),
        stamped: &Stamped<'_>,
        time: &DateTime<Utc>,
        kept: &[&(NodeId, Hash)],
        new_fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<bool, sqlx::Error> {
        let keys = stamped.keys();
        let claims = stamped.claims();
        let events = stamped.events();
        let openings = stamped.openings();
        let tracking = stamped.tracking();
        let outbox = stamped.outbox();
        let call = sqlx::query(
            "SELECT log_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, \
             $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44)",
        )
        .bind(next.as_i64())
        .bind(fence);
        let call = bind_events(bind_claims(bind_keys(call, &keys, time), &claims), &events);
        let call = bind_nodes(call, kept)
            .bind(new_fence)
            .bind(size.map(Position::as_i64));
        bind_outbox(
            bind_tracking(bind_openings(call, &openings), &tracking),
            &outbox,
        )
        .fetch_one(self.connection().await?)
        .await?
        .try_get(0)
    }
}

/// Subtree hashes a commit writes into its trailer's text at most; more are bound as arrays.
const INLINE_NODES: usize = 256;

impl Writer {
    /// Inserts `kept`, moves the fence, notifies the other nodes and commits, as one simple
    /// query. It holds only values the write path computed — levels and indexes of the tree
    /// as integers, hashes as hexadecimal text — so nothing of a caller's is ever written into
    /// SQL text.
    async fn trailer(
        &mut self,
        kept: &[&(NodeId, Hash)],
        fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<(), sqlx::Error> {
        let mut trailer = String::new();
        if !kept.is_empty() {
            trailer.push_str("INSERT INTO merkle_nodes (level, idx, hash) VALUES ");
            let rows: Vec<String> = kept
                .iter()
                .map(|(node, hash)| {
                    format!(
                        "({}, {}, decode('{}', 'hex'))",
                        level_i32(*node),
                        sql_index(node.index()),
                        hex::encode(hash)
                    )
                })
                .collect();
            trailer.push_str(&rows.join(", "));
            trailer.push_str("; ");
        }
        if let Some(fence) = fence {
            trailer.push_str(&format!(
                "UPDATE fences SET position = {fence} WHERE name = 'restriction'; "
            ));
        }
        if let Some(size) = size {
            trailer.push_str(&format!("NOTIFY {LOG_CHANNEL}, '{size}'; "));
        }
        trailer.push_str("COMMIT");
        sqlx::raw_sql(AssertSqlSafe(trailer))
            .execute(tx(self)?)
            .await
            .map(drop)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds a batch's idempotency keys as five arrays (scope, key, fingerprint, first and last
/// position) and the time they were made.
fn bind_keys<'q>(
    q: PgQuery<'q>,
    keys: &[(&'q IdempotencyClaim, &'q [StoredEvent])],
    time: &DateTime<Utc>,
) -> PgQuery<'q> {
    let first_of = |e: &[StoredEvent]| e.first().map_or(0, |e| e.position.as_i64());
    let last_of = |e: &[StoredEvent]| e.last().map_or(0, |e| e.position.as_i64());
    q.bind(
        keys.iter()
            .map(|(c, _)| c.scope.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(keys.iter().map(|(c, _)| c.key.as_str()).collect::<Vec<_>>())
    .bind(
        keys.iter()
            .map(|(c, _)| c.fingerprint.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(keys.iter().map(|(_, e)| first_of(e)).collect::<Vec<_>>())
    .bind(keys.iter().map(|(_, e)| last_of(e)).collect::<Vec<_>>())
    .bind(*time)
}

/// Binds a batch's unique claims as two arrays (claim, position).
fn bind_claims<'q>(q: PgQuery<'q>, claims: &[(&'q str, i64)]) -> PgQuery<'q> {
    q.bind(claims.iter().map(|(c, _)| *c).collect::<Vec<_>>())
        .bind(claims.iter().map(|(_, p)| *p).collect::<Vec<_>>())
}

/// Binds events as the ten arrays of the `events` table's columns, in their order.
fn bind_events<'q>(q: PgQuery<'q>, events: &[&'q StoredEvent]) -> PgQuery<'q> {
    let column = |f: fn(&StoredEvent) -> &str| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    q.bind(
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
}

/// Binds subtree hashes as three arrays (level, index, hash).
fn bind_nodes<'q>(q: PgQuery<'q>, kept: &[&'q (NodeId, Hash)]) -> PgQuery<'q> {
    q.bind(kept.iter().map(|(n, _)| level_i32(*n)).collect::<Vec<_>>())
        .bind(
            kept.iter()
                .map(|(n, _)| sql_index(n.index()))
                .collect::<Vec<_>>(),
        )
        .bind(kept.iter().map(|(_, h)| h.as_slice()).collect::<Vec<_>>())
}

/// Binds openings as the six arrays of the `openings` table's columns, in their order.
fn bind_openings<'q>(
    q: PgQuery<'q>,
    openings: &[(&'q StoredEvent, &'q OpenedField)],
) -> PgQuery<'q> {
    let column = |f: fn(&(&'q StoredEvent, &'q OpenedField)) -> &'q str| {
        openings.iter().map(f).collect::<Vec<_>>()
    };
    q.bind(
        openings
            .iter()
            .map(|(e, _)| e.position.as_i64())
            .collect::<Vec<_>>(),
    )
    .bind(column(|(_, o)| &o.pointer))
    .bind(column(|(_, o)| &o.value))
    .bind(column(|(_, o)| &o.salt))
    .bind(column(|(e, _)| &e.stream_type))
    .bind(column(|(e, _)| &e.stream_id))
}

/// Binds tracking updates as the six arrays of the `tracking_updates` table's columns.
fn bind_tracking<'q>(q: PgQuery<'q>, updates: &[&'q TrackingUpdateRow]) -> PgQuery<'q> {
    let column =
        |f: fn(&'q TrackingUpdateRow) -> &'q str| updates.iter().map(|u| f(u)).collect::<Vec<_>>();
    q.bind(column(|u| &u.update_id))
        .bind(column(|u| &u.shipment_id))
        .bind(column(|u| &u.status))
        .bind(column(|u| &u.occurred_at))
        .bind(updates.iter().map(|u| u.received_at).collect::<Vec<_>>())
        .bind(column(|u| &u.details))
}

/// Binds webhook messages as the seven arrays of the `webhook_outbox` columns a message is
/// queued with (its position, that of the event causing it).
fn bind_outbox<'q>(q: PgQuery<'q>, messages: &[(&'q OutboxMessage, Position)]) -> PgQuery<'q> {
    let column = |f: fn(&'q OutboxMessage) -> &'q str| {
        messages.iter().map(|(m, _)| f(m)).collect::<Vec<_>>()
    };
    q.bind(column(|m| &m.message_id))
        .bind(column(|m| &m.endpoint_id))
        .bind(column(|m| &m.event_type))
        .bind(column(|m| &m.occurred_at))
        .bind(messages.iter().map(|(_, p)| p.as_i64()).collect::<Vec<_>>())
        .bind(column(|m| &m.data))
        .bind(
            messages
                .iter()
                .map(|(m, _)| m.shipment_id.as_deref())
                .collect::<Vec<_>>(),
        )
}

/// Inserts events in one statement (the writer's batches and the benchmark's baseline).
#[tracing::instrument(level = "trace", skip_all, fields(events = events.len()))]
pub(crate) async fn insert_events(
    conn: &mut PgConnection,
    events: &[&StoredEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    bind_events(
        sqlx::query(concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
             $5::text[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])"
        )),
        events,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A node's level as SQL's INTEGER (levels are below 64).
fn level_i32(node: NodeId) -> i32 {
    i32::try_from(node.level()).unwrap_or(i32::MAX)
}

/// The hashes of `nodes` (None where one is not stored), in one round trip: kept nodes are
/// read directly, the others recomputed from their (at most eight) leaves.
#[tracing::instrument(level = "trace", skip_all, fields(nodes = nodes.len()))]
async fn fetch_nodes(
    conn: &mut PgConnection,
    nodes: &[NodeId],
) -> Result<Vec<Option<Hash>>, sqlx::Error> {
    let mut levels = Vec::new();
    let mut indexes = Vec::new();
    for node in nodes {
        if is_kept(*node) {
            levels.push(level_i32(*node));
            indexes.push(sql_index(node.index()));
        } else {
            for leaf in node.leaves() {
                levels.push(0);
                indexes.push(sql_index(leaf));
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
    let mut found = HashMap::with_capacity(rows.len());
    for (level, idx, hash) in rows {
        found.insert(
            (
                u32::try_from(level).unwrap_or(u32::MAX),
                u64::try_from(idx).unwrap_or(u64::MAX),
            ),
            crate::reads::node_hash(level.into(), idx, &hash)?,
        );
    }
    Ok(resolve_nodes(nodes, &found))
}

/// Vacuums the tables erasures delete personal data from, so the deleted rows' tuples are
/// reclaimed rather than left in the heap until autovacuum comes (SPEC §12).
pub(crate) async fn scrub(pool: &PgPool) -> Result<(), StoreError> {
    for table in [
        "openings",
        "unique_claims",
        "audit_shipment",
        "audit_access",
    ] {
        // VACUUM takes no bind parameters; the names are the constants above.
        sqlx::query(AssertSqlSafe(format!("VACUUM {table}")))
            .execute(pool)
            .await
            .map_err(StoreError::unavailable)?;
    }
    Ok(())
}

// Text compared as SQLite compares it (`C`), whatever the database's collation.
crate::reads::decision_scan_backend!(
    Postgres,
    crate::reads::ScanDialect {
        find: "strpos",
        events: "events",
        collate: " COLLATE \"C\"",
    }
);
pub(crate) use self::read_decisions_rows as read_decisions;

/// Listens for the commits of every process (`NOTIFY` on [`LOG_CHANNEL`]) and announces the
/// log's size on `committed`, until `stop` is dropped. After every (re)connection the size is
/// read once, since what committed while nobody listened was announced to no one.
#[tracing::instrument(level = "debug", skip_all)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{postgres_server, ScratchDatabase};
    use crate::write_path::{one_call_contract, rows_beside_contract};

    /// `log_append` writes a batch only against the head its caller expects, and a unique
    /// violation inside it writes nothing: the two cases in which the writer falls back to
    /// the general path.
    #[tokio::test]
    async fn a_batch_commits_in_one_call_only_against_the_head_expected() {
        let Some((_db, mut writer, reads)) = scratch_writer("the writer's one-call commit").await
        else {
            return;
        };
        one_call_contract(&mut writer, async |sql| value(&reads, sql).await).await;
    }

    /// `log_append` also writes sealed fields' openings, tracking updates and webhook messages
    /// (migrations/postgres/0019), as SQLite's one call does.
    #[tokio::test]
    async fn the_one_call_writes_openings_tracking_updates_and_messages() {
        let Some((_db, mut writer, reads)) =
            scratch_writer("the one call's rows beside the events").await
        else {
            return;
        };
        rows_beside_contract(&mut writer, async |sql| value(&reads, sql).await).await;
    }

    /// A stream is read through the stream index whatever its type — an access decision's too,
    /// from its second event on: PostgreSQL proves the partial index's condition from the
    /// statement's own (with sequential scans priced out, a plan that could not use it would
    /// scan the table).
    #[tokio::test]
    async fn streams_are_read_through_the_stream_index() {
        let Some((_db, _writer, reads)) = scratch_writer("the stream index's plans").await else {
            return;
        };
        let mut conn = reads.acquire().await.expect("connection");
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .expect("set");
        for stream_type in ["consent", "access"] {
            let ids = ["a".to_owned(), "b".to_owned()];
            for mut query in [
                stream_query("EXPLAIN ", stream_type, "an id"),
                streams_query("EXPLAIN ", stream_type, &ids, 100),
            ] {
                let plan: Vec<String> = query
                    .build_query_scalar()
                    .fetch_all(&mut *conn)
                    .await
                    .expect("plan");
                assert!(
                    plan.iter()
                        .any(|line| line.contains("using events_stream on events"))
                        && !plan.iter().any(|line| line.contains("Seq Scan")),
                    "{stream_type}: {plan:?}"
                );
            }
        }
    }

    /// A scratch database on the test server, its writer and a read pool; `None` (the test
    /// says it is skipped) where no server is configured.
    async fn scratch_writer(what: &str) -> Option<(ScratchDatabase, Writer, PgPool)> {
        let server = postgres_server(what)?;
        let db = ScratchDatabase::create(&server).await.expect("database");
        let (_pool, writer) = open(db.url()).await.expect("open");
        let reads = pool(db.url(), 1).await.expect("pool");
        Some((db, writer, reads))
    }

    /// The one integer `sql` answers on `reads`.
    async fn value(reads: &PgPool, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(reads)
            .await
            .expect("a value")
    }
}

//! Baselines for the benchmarks (SPEC §11): the same rows the ledger writes, inserted with
//! plain SQL into a table of the same shape, so the ledger's figures have a yardstick measured
//! in the same run on the same disk.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, QueryBuilder, Sqlite};

use crate::error::StoreError;
use crate::event::StoredEvent;

/// A fresh file with the ledger's schema.
async fn fresh(path: &Path) -> Result<SqliteConnection, StoreError> {
    let (pool, conn) = crate::sqlite::open(path).await?;
    pool.close().await;
    Ok(conn)
}

async fn insert(conn: &mut SqliteConnection, e: &StoredEvent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (position, stream_type, stream_id, stream_version, event_type, \
         schema_version, actor, request_id, recorded_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(i64::try_from(e.position.get()).unwrap_or(i64::MAX))
    .bind(&e.stream_type)
    .bind(&e.stream_id)
    .bind(i64::try_from(e.stream_version).unwrap_or(i64::MAX))
    .bind(&e.event_type)
    .bind(i64::from(e.schema_version))
    .bind(&e.actor)
    .bind(&e.request_id)
    .bind(e.recorded_at.to_rfc3339())
    .bind(e.payload.as_str())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Inserts `rows` with multi-row INSERTs of `batch` rows, one transaction (one fsync) each:
/// the fastest plain way to put these rows into SQLite through sqlx. Returns the time taken.
pub async fn batched_insert(
    path: &Path,
    rows: &[StoredEvent],
    batch: usize,
) -> Result<Duration, StoreError> {
    let mut conn = fresh(path).await?;
    let start = Instant::now();
    for chunk in rows.chunks(batch.clamp(1, 3000)) {
        let mut tx = conn.begin().await.map_err(StoreError::unavailable)?;
        let times: Vec<String> = chunk.iter().map(|e| e.recorded_at.to_rfc3339()).collect();
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (position, stream_type, stream_id, stream_version, event_type, \
             schema_version, actor, request_id, recorded_at, payload) ",
        );
        q.push_values(chunk.iter().zip(&times), |mut row, (e, time)| {
            row.push_bind(i64::try_from(e.position.get()).unwrap_or(i64::MAX))
                .push_bind(e.stream_type.as_str())
                .push_bind(e.stream_id.as_str())
                .push_bind(i64::try_from(e.stream_version).unwrap_or(i64::MAX))
                .push_bind(e.event_type.as_str())
                .push_bind(i64::from(e.schema_version))
                .push_bind(e.actor.as_str())
                .push_bind(e.request_id.as_str())
                .push_bind(time.as_str())
                .push_bind(e.payload.as_str());
        });
        q.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        tx.commit().await.map_err(StoreError::unavailable)?;
    }
    Ok(start.elapsed())
}

/// A naive cqrs-es event store, as cqrs-es's own persistence works: every command loads its
/// aggregate and commits in a transaction of its own (one fsync per command, no group commit,
/// no global position). The baseline decisions are compared with (SPEC §11).
pub struct PerCommandStore<A> {
    reads: sqlx::SqlitePool,
    writer: tokio::sync::Mutex<SqliteConnection>,
    aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A> PerCommandStore<A> {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let (reads, writer) = crate::sqlite::open(path).await?;
        Ok(Self {
            reads,
            writer: tokio::sync::Mutex::new(writer),
            aggregate: std::marker::PhantomData,
        })
    }
}

/// The context of [`PerCommandStore`]: the aggregate and the version it was loaded at.
pub struct NaiveContext<A> {
    id: String,
    aggregate: A,
    version: u64,
}

impl<A: cqrs_es::Aggregate> cqrs_es::AggregateContext<A> for NaiveContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

fn unexpected<E: std::error::Error>(
    e: impl std::error::Error + Send + Sync + 'static,
) -> cqrs_es::AggregateError<E> {
    cqrs_es::AggregateError::UnexpectedError(Box::new(e))
}

impl<A: cqrs_es::Aggregate> cqrs_es::EventStore<A> for PerCommandStore<A> {
    type AC = NaiveContext<A>;

    async fn load_events(
        &self,
        _: &str,
    ) -> Result<Vec<cqrs_es::EventEnvelope<A>>, cqrs_es::AggregateError<A::Error>> {
        Ok(Vec::new())
    }

    async fn load_aggregate(
        &self,
        id: &str,
    ) -> Result<Self::AC, cqrs_es::AggregateError<A::Error>> {
        let stored = crate::sqlite::read_stream(&self.reads, A::TYPE, id)
            .await
            .map_err(unexpected)?;
        let mut aggregate = A::default();
        for e in &stored {
            aggregate.apply(e.payload.decode().map_err(unexpected)?);
        }
        Ok(NaiveContext {
            id: id.to_owned(),
            aggregate,
            version: stored.len() as u64,
        })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        _: std::collections::HashMap<String, String>,
    ) -> Result<Vec<cqrs_es::EventEnvelope<A>>, cqrs_es::AggregateError<A::Error>> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(unexpected)?;
        for (i, event) in events.iter().enumerate() {
            let e = crate::event::NewEvent::from_domain(
                event,
                A::TYPE,
                &context.id,
                context.version + 1 + i as u64,
            )
            .map_err(unexpected)?;
            let position: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM events")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unexpected)?;
            let row = StoredEvent {
                position: crate::Position::from_i64(position),
                stream_type: e.stream_type,
                stream_id: e.stream_id,
                stream_version: e.stream_version,
                event_type: e.event_type,
                schema_version: e.schema_version,
                actor: "naive".into(),
                request_id: String::new(),
                recorded_at: chrono::Utc::now(),
                payload: e.payload,
            };
            insert(&mut tx, &row).await.map_err(|err| match &err {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    cqrs_es::AggregateError::AggregateConflict
                }
                _ => unexpected(err),
            })?;
        }
        tx.commit().await.map_err(unexpected)?;
        Ok(Vec::new())
    }
}

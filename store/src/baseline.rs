//! Baselines for the benchmarks (SPEC §11): the same rows the ledger writes, inserted with
//! plain SQL into a table of the same shape, so the ledger's figures have a yardstick measured
//! in the same run on the same disk. Both backends: the baseline runs where the ledger runs.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, QueryBuilder, Sqlite};

use crate::error::StoreError;
use crate::event::StoredEvent;
use crate::{postgres, sqlite, Reads, StoreLocation};

pub use crate::sqlite::RowsFloor;

/// A connection to a database with the ledger's schema (created and migrated if needed).
enum Plain {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Plain {
    async fn open(location: &StoreLocation) -> Result<(Reads, Self), StoreError> {
        match location {
            StoreLocation::SqliteFile(path) => {
                let (pool, conn) = sqlite::open(path).await?;
                Ok((Reads::Sqlite(pool), Self::Sqlite(conn)))
            }
            StoreLocation::Postgres(url) => {
                let (pool, writer) = postgres::open(url).await?;
                Ok((
                    Reads::Postgres(pool),
                    Self::Postgres(writer.into_connection()?),
                ))
            }
        }
    }

    /// Inserts `rows` in one transaction (one fsync) with the fewest statements: multi-row
    /// INSERTs on SQLite, one INSERT over arrays on PostgreSQL.
    async fn insert(&mut self, rows: &[StoredEvent]) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(conn) => {
                let mut tx = conn.begin().await?;
                insert_sqlite(&mut tx, rows).await?;
                tx.commit().await
            }
            Self::Postgres(conn) => {
                let mut tx = conn.begin().await?;
                let refs: Vec<&StoredEvent> = rows.iter().collect();
                postgres::insert_events(&mut tx, &refs).await?;
                tx.commit().await
            }
        }
    }
}

impl Plain {
    /// One transaction for one command's events, each placed at `MAX(position) + 1` read
    /// before its INSERT, as a store without a group commit would.
    async fn append_naive(&mut self, mut rows: Vec<StoredEvent>) -> Result<(), sqlx::Error> {
        const NEXT: &str = "SELECT COALESCE(MAX(position) + 1, 0) FROM events";
        match self {
            Self::Sqlite(conn) => {
                let mut tx = conn.begin().await?;
                for row in &mut rows {
                    let next: i64 = sqlx::query_scalar(NEXT).fetch_one(&mut *tx).await?;
                    row.position = crate::Position::from_i64(next);
                    insert_sqlite(&mut tx, std::slice::from_ref(row)).await?;
                }
                tx.commit().await
            }
            Self::Postgres(conn) => {
                let mut tx = conn.begin().await?;
                for row in &mut rows {
                    let next: i64 = sqlx::query_scalar(NEXT).fetch_one(&mut *tx).await?;
                    row.position = crate::Position::from_i64(next);
                    postgres::insert_events(&mut tx, &[&*row]).await?;
                }
                tx.commit().await
            }
        }
    }
}

async fn insert_sqlite(
    conn: &mut SqliteConnection,
    chunk: &[StoredEvent],
) -> Result<(), sqlx::Error> {
    let times: Vec<String> = chunk.iter().map(|e| e.recorded_at.to_rfc3339()).collect();
    let mut q =
        QueryBuilder::<Sqlite>::new(concat!("INSERT INTO events (", event_columns!(), ") "));
    q.push_values(chunk.iter().zip(&times), |mut row, (e, time)| {
        sqlite::push_event(&mut row, e, time);
    });
    q.build().persistent(false).execute(&mut *conn).await?;
    Ok(())
}

/// Inserts `rows` into a fresh SQLite file at `path`; see [`batched_insert_at`].
pub async fn batched_insert(
    path: &Path,
    rows: &[StoredEvent],
    batch: usize,
) -> Result<Duration, StoreError> {
    batched_insert_at(&StoreLocation::SqliteFile(path.to_owned()), rows, batch).await
}

/// Inserts `rows` in transactions of `batch` rows, one fsync each: the fastest plain way to
/// put these rows into the database through sqlx. `location` must be fresh (empty). Returns
/// the time taken.
pub async fn batched_insert_at(
    location: &StoreLocation,
    rows: &[StoredEvent],
    batch: usize,
) -> Result<Duration, StoreError> {
    let (_, mut conn) = Plain::open(location).await?;
    let start = Instant::now();
    for chunk in rows.chunks(batch.clamp(1, 3000)) {
        conn.insert(chunk).await.map_err(StoreError::unavailable)?;
    }
    Ok(start.elapsed())
}

/// A naive cqrs-es event store, as cqrs-es's own persistence works: every command loads its
/// aggregate and commits in a transaction of its own (one fsync per command, no group commit,
/// no global position). The baseline decisions are compared with (SPEC §11).
pub struct PerCommandStore<A> {
    reads: Reads,
    writer: tokio::sync::Mutex<Plain>,
    aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A> PerCommandStore<A> {
    /// On an SQLite file.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at(&StoreLocation::SqliteFile(path.to_owned())).await
    }

    /// On either backend.
    pub async fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        let (reads, writer) = Plain::open(location).await?;
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
        let stored = match &self.reads {
            Reads::Sqlite(pool) => sqlite::read_stream(pool, A::TYPE, id).await,
            Reads::Postgres(pool) => postgres::read_stream(pool, A::TYPE, id).await,
        }
        .map_err(unexpected)?;
        let mut aggregate = A::default();
        for e in &stored {
            aggregate.apply(e.decode().map_err(unexpected)?);
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
        let mut rows = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let e = crate::event::NewEvent::from_domain(
                event,
                A::TYPE,
                &context.id,
                context.version + 1 + i as u64,
            )
            .map_err(unexpected)?;
            rows.push(StoredEvent {
                position: crate::Position::ZERO,
                stream_type: e.stream_type,
                stream_id: e.stream_id,
                stream_version: e.stream_version,
                event_type: e.event_type,
                schema_version: e.schema_version,
                actor: "naive".into(),
                request_id: String::new(),
                recorded_at: chrono::Utc::now(),
                payload: e.payload,
                openings: e.openings,
            });
        }
        let mut conn = self.writer.lock().await;
        conn.append_naive(rows).await.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                cqrs_es::AggregateError::AggregateConflict
            }
            _ => unexpected(err),
        })?;
        Ok(Vec::new())
    }
}

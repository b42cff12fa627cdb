//! Baselines for the benchmarks (SPEC §11): the same rows the ledger writes, inserted with
//! plain SQL into a table of the same shape, so the ledger's figures have a yardstick measured
//! in the same run on the same disk.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

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
    .bind(e.payload.to_string())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Inserts `rows` in transactions of `batch` rows (one fsync each); returns the time taken.
pub async fn batched_insert(
    path: &Path,
    rows: &[StoredEvent],
    batch: usize,
) -> Result<Duration, StoreError> {
    let mut conn = fresh(path).await?;
    let start = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        let mut tx = conn.begin().await.map_err(StoreError::unavailable)?;
        for row in chunk {
            insert(&mut tx, row)
                .await
                .map_err(StoreError::unavailable)?;
        }
        tx.commit().await.map_err(StoreError::unavailable)?;
    }
    Ok(start.elapsed())
}

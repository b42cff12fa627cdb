//! The carrier's tracking updates (SPEC §14), beside the log and never in it: they are
//! personal data (SPEC §12). Written here in transactions of their own (durable before the
//! gateway is answered), deleted by an erasure's commit ([`crate::write_path`]) and by
//! retention.

use crate::{on_backend, Store, StoreError};

pub use crate::event::TrackingUpdateRow;

/// Rows per multi-row INSERT: 7 parameters a row, far below either backend's limit.
const ROWS_PER_INSERT: usize = 500;

macro_rules! tracking_backend {
    ($db:ty) => {
        use sqlx::Row as _;

        use crate::error::StoreError;
        use crate::tracking::{TrackingUpdateRow, ROWS_PER_INSERT};

        type Pool = sqlx::Pool<$db>;

        /// Keeps `rows` in one transaction; one the store already holds (same shipment, time
        /// and status) is left as it is. Answers how many were new.
        #[tracing::instrument(level = "debug", skip_all, fields(rows = rows.len()))]
        pub(crate) async fn insert_tracking(
            pool: &Pool,
            rows: &[TrackingUpdateRow],
        ) -> Result<u64, StoreError> {
            let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
            let mut inserted = 0;
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO tracking_updates (update_id, shipment_id, status, occurred_at, \
                     received_at, details) ",
                );
                q.push_values(chunk, |mut row, u| {
                    row.push_bind(&u.update_id)
                        .push_bind(&u.shipment_id)
                        .push_bind(&u.status)
                        .push_bind(&u.occurred_at)
                        .push_bind(u.received_at)
                        .push_bind(&u.details);
                });
                q.push(" ON CONFLICT (shipment_id, occurred_at, status) DO NOTHING");
                let done = q
                    .build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
                inserted += done.rows_affected();
            }
            tx.commit().await.map_err(StoreError::unavailable)?;
            Ok(inserted)
        }

        /// The rows `sql` selects of `shipment_ids`, a chunk a statement: `sql` ends in
        /// `WHERE `, then `value` is bound followed by ` AND ` if given, then the shipments.
        async fn of_shipments(
            pool: &Pool,
            sql: &str,
            value: Option<&str>,
            shipment_ids: &[&str],
        ) -> Result<Vec<<$db as sqlx::Database>::Row>, StoreError> {
            let mut rows = Vec::new();
            for chunk in shipment_ids.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql);
                if let Some(value) = value {
                    q.push_bind(value).push(" AND ");
                }
                q.push("shipment_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                let found = q
                    .build()
                    .persistent(false)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
                rows.extend(found);
            }
            Ok(rows)
        }

        #[tracing::instrument(level = "debug", skip_all, fields(shipments = shipment_ids.len()))]
        pub(crate) async fn tracking_keys(
            pool: &Pool,
            shipment_ids: &[&str],
        ) -> Result<Vec<(String, String, String)>, StoreError> {
            let sql = "SELECT shipment_id, occurred_at, status FROM tracking_updates WHERE ";
            of_shipments(pool, sql, None, shipment_ids)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(StoreError::unavailable)?,
                        row.try_get(1).map_err(StoreError::unavailable)?,
                        row.try_get(2).map_err(StoreError::unavailable)?,
                    ))
                })
                .collect()
        }

        #[tracing::instrument(level = "debug", skip_all, fields(shipments = shipment_ids.len()))]
        pub(crate) async fn journeys_ended(
            pool: &Pool,
            shipment_ids: &[&str],
            cutoff: &str,
        ) -> Result<std::collections::BTreeSet<String>, StoreError> {
            let sql = "SELECT DISTINCT shipment_id FROM tracking_updates \
                       WHERE status IN ('delivered', 'returned_to_sender') AND occurred_at <= ";
            of_shipments(pool, sql, Some(cutoff), shipment_ids)
                .await?
                .iter()
                .map(|row| row.try_get(0).map_err(StoreError::unavailable))
                .collect()
        }

        /// A shipment's tracking updates, oldest first.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn tracking_of(
            pool: &Pool,
            shipment_id: &str,
        ) -> Result<Vec<TrackingUpdateRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT update_id, shipment_id, status, occurred_at, received_at, details \
                 FROM tracking_updates WHERE shipment_id = $1 ORDER BY occurred_at, status",
            )
            .bind(shipment_id)
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            rows.iter()
                .map(|row| {
                    Ok(TrackingUpdateRow {
                        update_id: row.try_get("update_id")?,
                        shipment_id: row.try_get("shipment_id")?,
                        status: row.try_get("status")?,
                        occurred_at: row.try_get("occurred_at")?,
                        received_at: row.try_get("received_at")?,
                        details: row.try_get("details")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::unavailable)
        }

        /// Deletes up to `limit` updates received before `before` (Unix ms); answers how many.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn delete_tracking_before(
            pool: &Pool,
            before: i64,
            limit: u32,
        ) -> Result<u64, StoreError> {
            let done = sqlx::query(
                "DELETE FROM tracking_updates WHERE update_id IN (SELECT update_id \
                 FROM tracking_updates WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(pool)
            .await
            .map_err(StoreError::unavailable)?;
            // The messages that carried updates that old go with them (their `occurred_at`
            // is the decision's time, after the update was received).
            let cutoff = chrono::DateTime::from_timestamp_millis(before)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let messages = sqlx::query(
                "DELETE FROM webhook_outbox WHERE message_id IN (SELECT message_id \
                 FROM webhook_outbox WHERE shipment_id IS NOT NULL AND occurred_at < $1 \
                 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(done.rows_affected().max(messages.rows_affected()))
        }
    };
}

pub(crate) mod sqlite {
    tracking_backend!(sqlx::Sqlite);
}

pub(crate) mod postgres {
    tracking_backend!(sqlx::Postgres);
}

impl Store {
    /// Keeps tracking updates (SPEC §14) in one transaction; answers how many were new.
    pub async fn insert_tracking(&self, rows: &[TrackingUpdateRow]) -> Result<u64, StoreError> {
        on_backend!(self, tracking::insert_tracking(rows))
    }

    /// A shipment's tracking updates, oldest first.
    pub async fn tracking_of(
        &self,
        shipment_id: &str,
    ) -> Result<Vec<TrackingUpdateRow>, StoreError> {
        on_backend!(self, tracking::tracking_of(shipment_id))
    }

    /// Which updates of `shipment_ids` the store holds, as (shipment, occurred_at, status): an
    /// update sent again is kept, and fanned out, once.
    pub async fn tracking_keys(
        &self,
        shipment_ids: &[&str],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        on_backend!(self, tracking::tracking_keys(shipment_ids))
    }

    /// Which of `shipment_ids` had a `delivered` or `returned_to_sender` update at or before
    /// `cutoff` (RFC 3339 UTC with microseconds): their journey ended then (SPEC §14).
    pub async fn journeys_ended(
        &self,
        shipment_ids: &[&str],
        cutoff: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        on_backend!(self, tracking::journeys_ended(shipment_ids, cutoff))
    }

    /// Deletes up to `limit` tracking updates received before `before` (Unix ms), and up to
    /// `limit` messages that carried one, queued before it; answers the larger count (the
    /// caller goes on while it is `limit`).
    pub async fn delete_tracking_before(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        on_backend!(self, tracking::delete_tracking_before(before, limit))
    }
}

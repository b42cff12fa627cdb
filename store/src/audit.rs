//! The GDPR audit projection's tables (issue 6, docs/adr/0006): one row per access decision
//! (`audit_access`), the shipments they name (`audit_shipment`), decisions per day, partner and
//! outcome (`audit_daily`), and the position applied up to (`audit_projection`).
//!
//! The rows are plain text and integers: this crate knows nothing of the domain's types; the
//! projector (projections/) turns events into rows and the API turns rows into views. The SQL
//! is the same on both backends; only the placeholder syntax differs, which sqlx's
//! [`QueryBuilder`](sqlx::QueryBuilder) writes per backend, so one macro body serves both.

use crate::event::Position;

/// Microseconds in a UTC day: `audit_daily.day` is `decided_at / DAY_MICROS`.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// A shipment as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditShipment {
    pub shipment_id: String,
    pub shipper_id: String,
    pub carrier: String,
    pub tracking_number: String,
    pub destination_country: String,
    pub recipient_ref: Option<String>,
    pub position: u64,
}

/// One recorded access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAccess {
    pub position: u64,
    /// Microseconds since the Unix epoch, UTC.
    pub decided_at: i64,
    pub allowed: bool,
    pub reason: Option<String>,
    pub partner_id: String,
    pub on_behalf_of: Option<String>,
    pub shipment_id: Option<String>,
    /// Filled from `audit_shipment` when the shipment is known.
    pub shipper_id: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub purpose: String,
    /// Comma-separated.
    pub requested: String,
    /// Comma-separated.
    pub granted: String,
    /// Comma-separated.
    pub consent_ids: String,
    pub decision_id: String,
}

/// What one catch-up step writes: the rows of the events of positions `from..next`.
#[derive(Debug, Default)]
pub struct AuditBatch {
    pub shipments: Vec<AuditShipment>,
    pub accesses: Vec<AuditAccess>,
}

/// The filters of `GET /v1/audit/access`; every one given must hold.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub shipment_id: Option<String>,
    pub carrier_tracking: Option<(String, String)>,
    pub partner_id: Option<String>,
    pub shipper_id: Option<String>,
    /// Inclusive, microseconds.
    pub from: Option<i64>,
    /// Exclusive, microseconds.
    pub to: Option<i64>,
    pub allowed: Option<bool>,
    /// Any of these shipments (a DSAR's).
    pub shipment_in: Option<Vec<String>>,
}

/// How a DSAR names its data subject.
#[derive(Debug, Clone)]
pub enum SubjectKey {
    Tracking {
        carrier: String,
        tracking_number: String,
    },
    RecipientRef(String),
}

/// Decisions of one partner in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerCounts {
    pub allowed: u64,
    pub denied: u64,
}

/// Rows per multi-row INSERT: 15 binds a row stays below both backends' bind limits.
pub(crate) const INSERT_CHUNK: usize = 1_000;

/// Sums a batch's decisions per (day, partner, allowed), so each key is upserted once.
pub(crate) fn daily(accesses: &[AuditAccess]) -> Vec<(i64, &str, bool, i64)> {
    let mut sums: std::collections::BTreeMap<(i64, &str, bool), i64> = Default::default();
    for a in accesses {
        *sums
            .entry((
                a.decided_at.div_euclid(DAY_MICROS),
                a.partner_id.as_str(),
                a.allowed,
            ))
            .or_default() += 1;
    }
    sums.into_iter()
        .map(|((day, partner, allowed), n)| (day, partner, allowed, n))
        .collect()
}

fn to_i64(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

pub(crate) fn position_bind(p: Position) -> i64 {
    to_i64(p.get())
}

pub(crate) fn u64_bind(p: u64) -> i64 {
    to_i64(p)
}

/// Defines the audit functions for one backend, over `sqlx::Pool<$db>`.
macro_rules! audit_backend {
    ($db:ty) => {
        use std::collections::{BTreeSet, HashMap};

        use sqlx::{QueryBuilder, Row};

        use crate::audit::{
            daily, position_bind, u64_bind, AccessFilter, AuditAccess, AuditBatch,
            AuditShipment, PartnerCounts, SubjectKey, DAY_MICROS, INSERT_CHUNK,
        };
        use crate::error::StoreError;
        use crate::event::Position;

        type Pool = sqlx::Pool<$db>;

        const ACCESS_COLUMNS: &str = "position, decided_at, allowed, reason, partner_id, \
             on_behalf_of, shipment_id, shipper_id, carrier, tracking_number, purpose, \
             requested, granted, consent_ids, decision_id";

        const SHIPMENT_COLUMNS: &str = "shipment_id, shipper_id, carrier, tracking_number, \
             destination_country, recipient_ref, position";

        /// The position the projection has applied up to (exclusive).
        pub(crate) async fn audit_position(pool: &Pool) -> Result<Position, StoreError> {
            let p: i64 =
                sqlx::query_scalar("SELECT position FROM audit_projection WHERE name = 'audit'")
                    .fetch_one(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
            Ok(Position::new(u64::try_from(p).unwrap_or_default()))
        }

        /// Writes the rows of the events `from..next` and moves the projection to `next`, in
        /// one transaction, only if the projection is still at `from` (another process may
        /// have applied them first: then nothing is written and `false` comes back).
        pub(crate) async fn audit_apply(
            pool: &Pool,
            from: Position,
            next: Position,
            batch: &AuditBatch,
        ) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
            // A write first: on SQLite the transaction takes the write lock here (waiting
            // under busy_timeout), on PostgreSQL the row lock that orders concurrent appliers.
            let moved = sqlx::query(
                "UPDATE audit_projection SET position = $1 WHERE name = 'audit' AND position = $2",
            )
            .bind(position_bind(next))
            .bind(position_bind(from))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
            if moved.rows_affected() != 1 {
                return Ok(false);
            }
            for chunk in batch.shipments.chunks(INSERT_CHUNK) {
                let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                    "INSERT INTO audit_shipment ({SHIPMENT_COLUMNS}) "
                ));
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(s.shipment_id.as_str())
                        .push_bind(s.shipper_id.as_str())
                        .push_bind(s.carrier.as_str())
                        .push_bind(s.tracking_number.as_str())
                        .push_bind(s.destination_country.as_str())
                        .push_bind(s.recipient_ref.as_deref())
                        .push_bind(u64_bind(s.position));
                });
                q.push(" ON CONFLICT (shipment_id) DO NOTHING");
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
            let owners = shipment_owners(&mut tx, batch).await?;
            for chunk in batch.accesses.chunks(INSERT_CHUNK) {
                let mut q: QueryBuilder<$db> =
                    QueryBuilder::new(format!("INSERT INTO audit_access ({ACCESS_COLUMNS}) "));
                q.push_values(chunk, |mut b, a| {
                    let owner = a
                        .shipment_id
                        .as_deref()
                        .and_then(|s| owners.get(s))
                        .filter(|_| a.shipper_id.is_none());
                    let carrier = a.carrier.as_deref().or(owner.map(|o| o.carrier.as_str()));
                    let tracking = a
                        .tracking_number
                        .as_deref()
                        .or(owner.map(|o| o.tracking_number.as_str()));
                    b.push_bind(u64_bind(a.position))
                        .push_bind(a.decided_at)
                        .push_bind(i64::from(a.allowed))
                        .push_bind(a.reason.as_deref())
                        .push_bind(a.partner_id.as_str())
                        .push_bind(a.on_behalf_of.as_deref())
                        .push_bind(a.shipment_id.as_deref())
                        .push_bind(
                            a.shipper_id
                                .as_deref()
                                .or(owner.map(|o| o.shipper_id.as_str())),
                        )
                        .push_bind(carrier)
                        .push_bind(tracking)
                        .push_bind(a.purpose.as_str())
                        .push_bind(a.requested.as_str())
                        .push_bind(a.granted.as_str())
                        .push_bind(a.consent_ids.as_str())
                        .push_bind(a.decision_id.as_str());
                });
                q.push(" ON CONFLICT (position) DO NOTHING");
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
            if !batch.accesses.is_empty() {
                let sums = daily(&batch.accesses);
                for chunk in sums.chunks(INSERT_CHUNK) {
                    let mut q: QueryBuilder<$db> = QueryBuilder::new(
                        "INSERT INTO audit_daily (day, partner_id, allowed, decisions) ",
                    );
                    q.push_values(chunk, |mut b, (day, partner, allowed, n)| {
                        b.push_bind(*day)
                            .push_bind(*partner)
                            .push_bind(i64::from(*allowed))
                            .push_bind(*n);
                    });
                    q.push(
                        " ON CONFLICT (day, partner_id, allowed) DO UPDATE \
                         SET decisions = audit_daily.decisions + excluded.decisions",
                    );
                    q.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::unavailable)?;
                }
            }
            tx.commit().await.map_err(StoreError::unavailable)?;
            Ok(true)
        }

        /// The registration of every shipment the batch's decisions name, by id: from the batch
        /// itself, or (a registration is always earlier in the log than a decision about it)
        /// from audit_shipment. A row is written once, whole, with its owner, carrier and
        /// tracking number: each of its indexes takes one entry, never a second on an update.
        async fn shipment_owners<'b>(
            tx: &mut sqlx::Transaction<'_, $db>,
            batch: &'b AuditBatch,
        ) -> Result<HashMap<&'b str, AuditShipment>, StoreError> {
            let mut owners: HashMap<&str, AuditShipment> = batch
                .shipments
                .iter()
                .map(|s| (s.shipment_id.as_str(), s.clone()))
                .collect();
            let wanted: BTreeSet<&str> = batch
                .accesses
                .iter()
                .filter(|a| a.shipper_id.is_none())
                .filter_map(|a| a.shipment_id.as_deref())
                .filter(|s| !owners.contains_key(s))
                .collect();
            let listed: Vec<&str> = wanted.iter().copied().collect();
            for chunk in listed.chunks(INSERT_CHUNK) {
                let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                    "SELECT {SHIPMENT_COLUMNS} FROM audit_shipment WHERE shipment_id IN ("
                ));
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                let rows = q
                    .build()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::unavailable)?;
                for row in &rows {
                    let found = shipment_row(row)?;
                    // Keyed by the batch's own text, which outlives this function.
                    if let Some(id) = wanted.get(found.shipment_id.as_str()) {
                        owners.insert(id, found);
                    }
                }
            }
            Ok(owners)
        }

        fn shipment_row(r: &<$db as sqlx::Database>::Row) -> Result<AuditShipment, StoreError> {
            let get = |e: sqlx::Error| StoreError::Corrupt {
                position: -1,
                detail: format!("audit_shipment row: {e}"),
            };
            Ok(AuditShipment {
                shipment_id: r.try_get(0).map_err(get)?,
                shipper_id: r.try_get(1).map_err(get)?,
                carrier: r.try_get(2).map_err(get)?,
                tracking_number: r.try_get(3).map_err(get)?,
                destination_country: r.try_get(4).map_err(get)?,
                recipient_ref: r.try_get(5).map_err(get)?,
                position: u64::try_from(r.try_get::<i64, _>(6).map_err(get)?)
                    .unwrap_or_default(),
            })
        }

        fn push_filter(q: &mut QueryBuilder<$db>, f: &AccessFilter) {
            if let Some(s) = &f.shipment_id {
                q.push(" AND shipment_id = ").push_bind(s.as_str());
            }
            if let Some((carrier, tracking)) = &f.carrier_tracking {
                q.push(" AND carrier = ").push_bind(carrier.as_str());
                q.push(" AND tracking_number = ").push_bind(tracking.as_str());
            }
            if let Some(p) = &f.partner_id {
                q.push(" AND partner_id = ").push_bind(p.as_str());
            }
            if let Some(s) = &f.shipper_id {
                q.push(" AND shipper_id = ").push_bind(s.as_str());
            }
            if let Some(from) = f.from {
                q.push(" AND decided_at >= ").push_bind(from);
            }
            if let Some(to) = f.to {
                q.push(" AND decided_at < ").push_bind(to);
            }
            if let Some(allowed) = f.allowed {
                q.push(" AND allowed = ").push_bind(i64::from(allowed));
            }
            if let Some(ids) = &f.shipment_in {
                q.push(" AND shipment_id IN (");
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(id.as_str());
                }
                if ids.is_empty() {
                    list.push("NULL");
                }
                q.push(")");
            }
        }

        /// Up to `limit` decisions matching `filter` with a position after `after`, in log order.
        pub(crate) async fn audit_access(
            pool: &Pool,
            filter: &AccessFilter,
            after: Option<u64>,
            limit: u32,
        ) -> Result<Vec<AuditAccess>, StoreError> {
            let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                "SELECT {ACCESS_COLUMNS} FROM audit_access WHERE position >= "
            ));
            q.push_bind(after.map_or(0, |a| u64_bind(a).saturating_add(1)));
            push_filter(&mut q, filter);
            q.push(" ORDER BY position LIMIT ").push_bind(i64::from(limit));
            let rows = q
                .build()
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?;
            rows.iter()
                .map(|r| {
                    let get = |e: sqlx::Error| StoreError::Corrupt {
                        position: -1,
                        detail: format!("audit_access row: {e}"),
                    };
                    Ok(AuditAccess {
                        position: u64::try_from(r.try_get::<i64, _>(0).map_err(get)?)
                            .unwrap_or_default(),
                        decided_at: r.try_get(1).map_err(get)?,
                        allowed: r.try_get::<i64, _>(2).map_err(get)? != 0,
                        reason: r.try_get(3).map_err(get)?,
                        partner_id: r.try_get(4).map_err(get)?,
                        on_behalf_of: r.try_get(5).map_err(get)?,
                        shipment_id: r.try_get(6).map_err(get)?,
                        shipper_id: r.try_get(7).map_err(get)?,
                        carrier: r.try_get(8).map_err(get)?,
                        tracking_number: r.try_get(9).map_err(get)?,
                        purpose: r.try_get(10).map_err(get)?,
                        requested: r.try_get(11).map_err(get)?,
                        granted: r.try_get(12).map_err(get)?,
                        consent_ids: r.try_get(13).map_err(get)?,
                        decision_id: r.try_get(14).map_err(get)?,
                    })
                })
                .collect()
        }

        /// The shipments a data subject's key names.
        pub(crate) async fn audit_shipments(
            pool: &Pool,
            key: &SubjectKey,
        ) -> Result<Vec<AuditShipment>, StoreError> {
            let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                "SELECT {SHIPMENT_COLUMNS} FROM audit_shipment WHERE "
            ));
            match key {
                SubjectKey::Tracking {
                    carrier,
                    tracking_number,
                } => {
                    q.push("carrier = ").push_bind(carrier.as_str());
                    q.push(" AND tracking_number = ")
                        .push_bind(tracking_number.as_str());
                }
                SubjectKey::RecipientRef(r) => {
                    q.push("recipient_ref = ").push_bind(r.as_str());
                }
            }
            q.push(" ORDER BY position");
            let rows = q
                .build()
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?;
            rows.iter().map(shipment_row).collect()
        }

        /// Decisions per partner with `from <= decided_at < to` (microseconds): whole UTC days
        /// from `audit_daily`, the partial days at the edges from `audit_access`.
        pub(crate) async fn audit_counts(
            pool: &Pool,
            from: i64,
            to: i64,
        ) -> Result<std::collections::BTreeMap<String, PartnerCounts>, StoreError> {
            let mut out = std::collections::BTreeMap::<String, PartnerCounts>::new();
            let first_day = from.div_euclid(DAY_MICROS)
                + i64::from(from.rem_euclid(DAY_MICROS) != 0);
            let end_day = to.div_euclid(DAY_MICROS);
            let mut ranges = Vec::new();
            let mut rows = Vec::new();
            if first_day < end_day {
                rows.extend(
                    sqlx::query(
                        "SELECT partner_id, allowed, CAST(SUM(decisions) AS BIGINT) FROM audit_daily \
                         WHERE day >= $1 AND day < $2 GROUP BY partner_id, allowed",
                    )
                    .bind(first_day)
                    .bind(end_day)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::unavailable)?,
                );
                ranges.push((from, first_day * DAY_MICROS));
                ranges.push((end_day * DAY_MICROS, to));
            } else {
                ranges.push((from, to));
            }
            for (lo, hi) in ranges.into_iter().filter(|(lo, hi)| lo < hi) {
                rows.extend(
                    sqlx::query(
                        "SELECT partner_id, allowed, COUNT(*) FROM audit_access \
                         WHERE decided_at >= $1 AND decided_at < $2 GROUP BY partner_id, allowed",
                    )
                    .bind(lo)
                    .bind(hi)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::unavailable)?,
                );
            }
            for r in &rows {
                let get = |e: sqlx::Error| StoreError::Corrupt {
                    position: -1,
                    detail: format!("audit count row: {e}"),
                };
                let partner: String = r.try_get(0).map_err(get)?;
                let allowed: i64 = r.try_get(1).map_err(get)?;
                let n = u64::try_from(r.try_get::<i64, _>(2).map_err(get)?).unwrap_or_default();
                let c = out.entry(partner).or_default();
                if allowed != 0 {
                    c.allowed += n;
                } else {
                    c.denied += n;
                }
            }
            Ok(out)
        }
    };
}

pub(crate) mod sqlite {
    audit_backend!(sqlx::Sqlite);
}

pub(crate) mod postgres {
    audit_backend!(sqlx::Postgres);
}

//! The GDPR projection's tables (issue 6, docs/adr/0006): one row per access decision
//! (`audit_access`), the shipments they name (`audit_shipment`), decisions per day, partner and
//! outcome (`audit_daily`), and the position applied up to (`audit_projection`). The tables
//! keep their `audit_` names, and the SQLite file its name `ledger.audit.db`, so that existing
//! databases and data directories keep working; in code "audit" names only the verifiable log.
//!
//! The rows are plain text and integers: this crate knows nothing of the domain's types; the
//! projector (projections/) turns events into rows and the API turns rows into views. The SQL
//! is the same on both backends; only the placeholder syntax differs, which sqlx's
//! [`QueryBuilder`](sqlx::QueryBuilder) writes per backend, so one macro body serves both.

use crate::event::Position;
use crate::{Reads, Store, StoreError};

/// Microseconds in a UTC day: `audit_daily.day` is `decided_at / DAY_MICROS`.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// A shipment as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdprShipment {
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
pub struct GdprAccess {
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
    /// `pull` or `webhook` when the ledger served the access itself (SPEC §14).
    pub channel: Option<String>,
    /// Comma-separated: the carrier authorizations an allow rested on, or the one a denial
    /// names (SPEC §16).
    pub authorization_ids: String,
    /// The DPA an allowed read relied on (SPEC §16).
    pub dpa_id: Option<String>,
}

/// What one catch-up step writes: the rows of the events of positions `from..next`.
#[derive(Debug, Default)]
pub struct GdprBatch {
    pub shipments: Vec<GdprShipment>,
    pub accesses: Vec<GdprAccess>,
    /// Shipments whose personal fields an erasure of the batch erased (SPEC §12): their rows'
    /// tracking numbers and recipient references are blanked after the batch's inserts.
    pub erased: Vec<String>,
    /// Decisions whose recorded tracking number an erasure of the batch erased.
    pub erased_positions: Vec<u64>,
    /// A retention sweep of the batch erased the numbers of denials of unknown parcels
    /// recorded before this position.
    pub asked_before: Option<u64>,
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
    /// Only decisions that did not hide the parcel from the partner asking: allows, and
    /// denials for another reason than `unknown_shipment` or `no_consent` (SPEC §2).
    pub parcel_disclosed_only: bool,
    /// Only positions `first..=last`: a time window's span ([`Store::gdpr_time_span`]). With
    /// it a filter on time alone walks the rows in log order between them, instead of the
    /// rows before the window (from the first position on) or the whole window out of the
    /// time index and sorted (SQLite takes either, by what it knows of the bounds).
    pub within: Option<(u64, u64)>,
}

impl AccessFilter {
    /// Whether it names a shipment, a parcel, a partner, a shipper or a DSAR's shipments: the
    /// keys an index of the projection selects by, besides time.
    pub fn keyed(&self) -> bool {
        self.shipment_id.is_some()
            || self.carrier_tracking.is_some()
            || self.partner_id.is_some()
            || self.shipper_id.is_some()
            || self.shipment_in.is_some()
    }
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
    /// Allowed reads the ledger served itself, by channel (`pull`, `webhook`; SPEC §14).
    pub allowed_by_channel: std::collections::BTreeMap<String, u64>,
}

/// Rows per multi-row INSERT: 15 binds a row stays below both backends' bind limits.
pub(crate) const INSERT_CHUNK: usize = 1_000;

/// Sums a batch's decisions per (day, partner, allowed), so each key is upserted once.
pub(crate) fn daily(accesses: &[GdprAccess]) -> Vec<(i64, &str, bool, i64)> {
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

/// Sums a batch's allowed decisions with a channel per (day, partner, channel).
pub(crate) fn daily_channels(accesses: &[GdprAccess]) -> Vec<(i64, &str, &str, i64)> {
    let mut sums: std::collections::BTreeMap<(i64, &str, &str), i64> = Default::default();
    for a in accesses.iter().filter(|a| a.allowed) {
        if let Some(channel) = a.channel.as_deref() {
            *sums
                .entry((
                    a.decided_at.div_euclid(DAY_MICROS),
                    a.partner_id.as_str(),
                    channel,
                ))
                .or_default() += 1;
        }
    }
    sums.into_iter()
        .map(|((day, partner, channel), n)| (day, partner, channel, n))
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

/// Defines the GDPR functions for one backend, over `sqlx::Pool<$db>`: `$not_indexed` is the
/// prefix that keeps a column's index out of a plan, `$by_shipment` the table whose rows of one
/// shipment are read together (SQLite's clustered copy, or `audit_access` itself),
/// `$unsynced` what an apply transaction runs first so that its commit waits for no flush
/// (the projection is rebuilt from the log; on SQLite the file is opened so, `crate::unsynced`),
/// `$insert` how an apply transaction's rows are inserted (see the SQLite module).
macro_rules! gdpr_backend {
    ($db:ty, $not_indexed:literal, $by_shipment:literal, $unsynced:expr, $insert:literal) => {
        use std::collections::{BTreeSet, HashMap};

        use sqlx::{QueryBuilder, Row};

        use crate::gdpr::{
            daily, daily_channels, position_bind, u64_bind, AccessFilter, GdprAccess, GdprBatch,
            GdprShipment, PartnerCounts, SubjectKey, DAY_MICROS, INSERT_CHUNK,
        };
        use crate::error::StoreError;
        use crate::event::Position;

        type Pool = sqlx::Pool<$db>;

        const ACCESS_COLUMNS: &str = "position, decided_at, allowed, reason, partner_id, \
             on_behalf_of, shipment_id, shipper_id, carrier, tracking_number, purpose, \
             requested, granted, consent_ids, decision_id, channel, authorization_ids, dpa_id";

        const SHIPMENT_COLUMNS: &str = "shipment_id, shipper_id, carrier, tracking_number, \
             destination_country, recipient_ref, position";

        /// The position the projection has applied up to (exclusive).
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn gdpr_position(pool: &Pool) -> Result<Position, StoreError> {
            let p: i64 =
                sqlx::query_scalar("SELECT position FROM audit_projection WHERE name = 'audit'")
                    .fetch_one(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
            Ok(Position::new(u64::try_from(p).unwrap_or_default()))
        }

        /// Empties the projection's tables and moves it back to position 0, in one transaction,
        /// so that catch-up rebuilds it from the whole log.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn gdpr_reset(pool: &Pool) -> Result<(), StoreError> {
            let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
            let mut statements = vec![
                "UPDATE audit_projection SET position = 0 WHERE name = 'audit'",
                "DELETE FROM audit_access",
                "DELETE FROM audit_shipment",
                "DELETE FROM audit_daily",
                "DELETE FROM audit_daily_channel",
            ];
            if $by_shipment != "audit_access" {
                statements.push(concat!("DELETE FROM ", $by_shipment));
            }
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
            tx.commit().await.map_err(StoreError::unavailable)
        }

        /// A write transaction on the projection's tables, whose commit waits for no flush
        /// where the projection is not fsynced (`$unsynced`).
        async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, $db>, StoreError> {
            let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
            let unsynced: Option<&str> = $unsynced;
            if let Some(statement) = unsynced {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
            Ok(tx)
        }

        /// Writes the rows of the events `from..next` and moves the projection to `next`, in
        /// one transaction, only if the projection is still at `from` (another process may
        /// have applied them first: then nothing is written and `false` comes back).
        #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), next = next.get(), accesses = batch.accesses.len()))]
        pub(crate) async fn gdpr_apply(
            pool: &Pool,
            from: Position,
            next: Position,
            batch: &GdprBatch,
        ) -> Result<bool, StoreError> {
            let mut tx = begin_write(pool).await?;
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
                    "{} audit_shipment ({SHIPMENT_COLUMNS}) ",
                    $insert
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
                    QueryBuilder::new(format!("{} audit_access ({ACCESS_COLUMNS}) ", $insert));
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
                        .push_bind(tracking.filter(|t| !t.is_empty()))
                        .push_bind(a.purpose.as_str())
                        .push_bind(a.requested.as_str())
                        .push_bind(a.granted.as_str())
                        .push_bind(a.consent_ids.as_str())
                        .push_bind(a.decision_id.as_str())
                        .push_bind(a.channel.as_deref())
                        .push_bind(a.authorization_ids.as_str())
                        .push_bind(a.dpa_id.as_deref());
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
                    let mut q: QueryBuilder<$db> = QueryBuilder::new(concat!(
                        $insert,
                        " audit_daily (day, partner_id, allowed, decisions) "
                    ));
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
                let sums = daily_channels(&batch.accesses);
                for chunk in sums.chunks(INSERT_CHUNK) {
                    let mut q: QueryBuilder<$db> = QueryBuilder::new(concat!(
                        $insert,
                        " audit_daily_channel (day, partner_id, channel, decisions) "
                    ));
                    q.push_values(chunk, |mut b, (day, partner, channel, n)| {
                        b.push_bind(*day)
                            .push_bind(*partner)
                            .push_bind(*channel)
                            .push_bind(*n);
                    });
                    q.push(
                        " ON CONFLICT (day, partner_id, channel) DO UPDATE \
                         SET decisions = audit_daily_channel.decisions + excluded.decisions",
                    );
                    q.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::unavailable)?;
                }
            }
            blank_erased(&mut tx, batch).await?;
            tx.commit().await.map_err(StoreError::unavailable)?;
            Ok(true)
        }

        /// Blanks what the batch's erasures erased from the rows written before (SPEC §12): the
        /// tracking numbers and recipient references of the erased shipments, the numbers the
        /// erased denials recorded, and those of denials of unknown parcels before a retention
        /// sweep's bound. The same statements whether the projection applies the erasures in
        /// log order or an erasure blanks them at once ([`gdpr_blank`]).
        async fn blank_erased(
            tx: &mut sqlx::Transaction<'_, $db>,
            batch: &GdprBatch,
        ) -> Result<(), StoreError> {
            for shipment in &batch.erased {
                for statement in [
                    "UPDATE audit_shipment SET tracking_number = '', recipient_ref = NULL \
                     WHERE shipment_id = $1",
                    concat!(
                        "UPDATE audit_access SET tracking_number = NULL WHERE position IN \
                         (SELECT position FROM ",
                        $by_shipment,
                        " WHERE shipment_id = $1)"
                    ),
                    concat!(
                        "UPDATE ",
                        $by_shipment,
                        " SET tracking_number = NULL WHERE shipment_id = $1"
                    ),
                ] {
                    sqlx::query(statement)
                        .bind(shipment.as_str())
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::unavailable)?;
                }
            }
            for chunk in batch.erased_positions.chunks(INSERT_CHUNK) {
                let mut q: QueryBuilder<$db> = QueryBuilder::new(
                    "UPDATE audit_access SET tracking_number = NULL WHERE position IN (",
                );
                let mut list = q.separated(", ");
                for position in chunk {
                    list.push_bind(u64_bind(*position));
                }
                q.push(")");
                q.build()
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
            if let Some(before) = batch.asked_before {
                sqlx::query(
                    "UPDATE audit_access SET tracking_number = NULL \
                     WHERE shipment_id IS NULL AND tracking_number IS NOT NULL AND position < $1",
                )
                .bind(u64_bind(before))
                .execute(&mut **tx)
                .await
                .map_err(StoreError::unavailable)?;
            }
            Ok(())
        }

        /// Blanks at once what the erasures of `batch` erased from the rows the projection
        /// holds, without moving its position: an erasure's 60 s (SPEC §12) do not wait for a
        /// projection behind a load to reach it in log order. Applying the erasure later blanks
        /// the same rows again, and the rows written meanwhile come from events whose openings
        /// the erasure deleted.
        #[tracing::instrument(level = "debug", skip_all, fields(shipments = batch.erased.len(), positions = batch.erased_positions.len()))]
        pub(crate) async fn gdpr_blank(pool: &Pool, batch: &GdprBatch) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            blank_erased(&mut tx, batch).await?;
            tx.commit().await.map_err(StoreError::unavailable)
        }

        /// The registration of every shipment the batch's decisions name, by id: from the batch
        /// itself, or (a registration is always earlier in the log than a decision about it)
        /// from audit_shipment. A row is written once, whole, with its owner, carrier and
        /// tracking number: each of its indexes takes one entry, never a second on an update.
        #[tracing::instrument(level = "debug", skip_all)]
        async fn shipment_owners<'b>(
            tx: &mut sqlx::Transaction<'_, $db>,
            batch: &'b GdprBatch,
        ) -> Result<HashMap<&'b str, GdprShipment>, StoreError> {
            let mut owners: HashMap<&str, GdprShipment> = batch
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

        fn shipment_row(r: &<$db as sqlx::Database>::Row) -> Result<GdprShipment, StoreError> {
            let get = |e: sqlx::Error| StoreError::Corrupt {
                position: -1,
                detail: format!("audit_shipment row: {e}"),
            };
            Ok(GdprShipment {
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

        /// See `Store::gdpr_time_span`. `$not_indexed` keeps the planner off the rowid, which
        /// would walk every decision before `before`.
        #[tracing::instrument(level = "debug", skip_all, fields(before = before))]
        pub(crate) async fn gdpr_time_span(
            pool: &Pool,
            from: Option<i64>,
            to: Option<i64>,
            before: u64,
        ) -> Result<Option<(u64, u64)>, StoreError> {
            let (first, last): (Option<i64>, Option<i64>) =
                time_span_query("", from, to, before)
                    .build_query_as()
                    .fetch_one(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
            Ok(first
                .zip(last)
                .and_then(|(f, l)| Some((u64::try_from(f).ok()?, u64::try_from(l).ok()?))))
        }

        /// The statement of [`gdpr_time_span`], after `prefix` (tests put `EXPLAIN QUERY
        /// PLAN` there).
        fn time_span_query(
            prefix: &str,
            from: Option<i64>,
            to: Option<i64>,
            before: u64,
        ) -> QueryBuilder<$db> {
            let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                "{prefix}SELECT MIN(position), MAX(position) FROM audit_access \
                 WHERE decided_at >= "
            ));
            q.push_bind(from.unwrap_or(i64::MIN));
            q.push(" AND decided_at < ").push_bind(to.unwrap_or(i64::MAX));
            q.push(format!(" AND {}position < ", $not_indexed))
                .push_bind(u64_bind(before));
            q
        }

        /// The filter's conditions. The index that drives the query is the most selective
        /// one the filter names — a shipment's (about ten rows), the unregistered tracking
        /// number's, a partner's, a shipper's, then the time range's — and every other column
        /// is written so that the planner cannot take its index instead (see the backends).
        fn push_filter(q: &mut QueryBuilder<$db>, f: &AccessFilter) {
            let by_shipment = f.shipment_id.is_some() || f.shipment_in.is_some();
            let by_tracking = !by_shipment && f.carrier_tracking.is_some();
            let by_partner = !by_shipment && !by_tracking && f.partner_id.is_some();
            let by_shipper = !by_shipment && !by_tracking && !by_partner && f.shipper_id.is_some();
            let by_time = !f.keyed() && f.within.is_none();
            let column = |name: &str, drives: bool| {
                if drives {
                    format!(" AND {name}")
                } else {
                    format!(" AND {}{name}", $not_indexed)
                }
            };
            if let Some(s) = &f.shipment_id {
                q.push(" AND shipment_id = ").push_bind(s.as_str());
            }
            if let Some((carrier, tracking)) = &f.carrier_tracking {
                // Only the rows of a parcel never registered by then (see audit_access).
                q.push(column("shipment_id IS NULL", by_tracking));
                q.push(column("carrier = ", by_tracking))
                    .push_bind(carrier.as_str());
                q.push(column("tracking_number = ", by_tracking))
                    .push_bind(tracking.as_str());
            }
            if let Some(p) = &f.partner_id {
                q.push(column("partner_id = ", by_partner))
                    .push_bind(p.as_str());
            }
            if let Some(s) = &f.shipper_id {
                q.push(column("shipper_id = ", by_shipper))
                    .push_bind(s.as_str());
            }
            if let Some((_, last)) = f.within {
                q.push(" AND position <= ").push_bind(u64_bind(last));
            }
            if let Some(from) = f.from {
                q.push(column("decided_at >= ", by_time)).push_bind(from);
            }
            if let Some(to) = f.to {
                q.push(column("decided_at < ", by_time)).push_bind(to);
            }
            if let Some(allowed) = f.allowed {
                q.push(" AND allowed = ").push_bind(i64::from(allowed));
            }
            if f.parcel_disclosed_only {
                q.push(
                    " AND (reason IS NULL OR reason NOT IN ('unknown_shipment', 'no_consent'))",
                );
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
        ///
        /// A parcel named by carrier + tracking number is two index ranges: the decisions about
        /// the shipment registered under it, by shipment id, and the denials asked by that
        /// carrier and tracking number when no shipment had it (no shipment id), by the partial
        /// tracking index. Only the latter are indexed by tracking number: an index over every
        /// row would take a random insertion per decision for a question the shipment index
        /// answers. The two pages are merged by position.
        #[tracing::instrument(level = "debug", skip_all, fields(after = after, limit = limit))]
        pub(crate) async fn gdpr_access(
            pool: &Pool,
            filter: &AccessFilter,
            after: Option<u64>,
            limit: u32,
        ) -> Result<Vec<GdprAccess>, StoreError> {
            let Some((carrier, tracking)) = &filter.carrier_tracking else {
                return access_page(pool, filter, after, limit).await;
            };
            let registered: Vec<String> = sqlx::query_scalar(
                "SELECT shipment_id FROM audit_shipment WHERE carrier = $1 AND tracking_number = $2",
            )
            .bind(carrier.as_str())
            .bind(tracking.as_str())
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            let by_shipment = AccessFilter {
                carrier_tracking: None,
                shipment_in: Some(match &filter.shipment_in {
                    Some(wanted) => registered
                        .into_iter()
                        .filter(|s| wanted.contains(s))
                        .collect(),
                    None => registered,
                }),
                ..filter.clone()
            };
            let mut rows = access_page(pool, &by_shipment, after, limit).await?;
            rows.extend(access_page(pool, filter, after, limit).await?);
            rows.sort_by_key(|r| r.position);
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(rows)
        }

        /// The statement of one page of [`gdpr_access`], after `prefix` (tests put
        /// `EXPLAIN QUERY PLAN` there): a shipment's rows from the table that keeps them
        /// together, any other filter's from `audit_access` by that filter's index.
        fn access_page_query(
            prefix: &str,
            filter: &AccessFilter,
            after: Option<u64>,
            limit: u32,
        ) -> QueryBuilder<$db> {
            let table = if filter.shipment_id.is_some() || filter.shipment_in.is_some() {
                $by_shipment
            } else {
                "audit_access"
            };
            let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                "{prefix}SELECT {ACCESS_COLUMNS} FROM {table} WHERE position >= "
            ));
            let first = filter.within.map_or(0, |(first, _)| u64_bind(first));
            q.push_bind(
                after
                    .map_or(0, |a| u64_bind(a).saturating_add(1))
                    .max(first),
            );
            push_filter(&mut q, filter);
            q.push(" ORDER BY position LIMIT ").push_bind(i64::from(limit));
            q
        }

        /// One index range of [`gdpr_access`].
        #[tracing::instrument(level = "debug", skip_all, fields(after = after, limit = limit))]
        async fn access_page(
            pool: &Pool,
            filter: &AccessFilter,
            after: Option<u64>,
            limit: u32,
        ) -> Result<Vec<GdprAccess>, StoreError> {
            let rows = access_page_query("", filter, after, limit)
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
                    Ok(GdprAccess {
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
                        channel: r.try_get(15).map_err(get)?,
                        authorization_ids: r
                            .try_get::<Option<String>, _>(16)
                            .map_err(get)?
                            .unwrap_or_default(),
                        dpa_id: r.try_get(17).map_err(get)?,
                    })
                })
                .collect()
        }

        /// The shipments a data subject's key names.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn gdpr_shipments(
            pool: &Pool,
            key: &SubjectKey,
        ) -> Result<Vec<GdprShipment>, StoreError> {
            let rows = shipments_query("", key)
                .build()
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?;
            rows.iter().map(shipment_row).collect()
        }

        /// The projected shipments of `ids` (those the projection has applied), in any order.
        pub(crate) async fn gdpr_shipments_by_id(
            pool: &Pool,
            ids: &[String],
        ) -> Result<Vec<GdprShipment>, StoreError> {
            let mut found = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(INSERT_CHUNK) {
                let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                    "SELECT {SHIPMENT_COLUMNS} FROM audit_shipment WHERE shipment_id IN ("
                ));
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                q.push(")");
                let rows = q
                    .build()
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
                for row in &rows {
                    found.push(shipment_row(row)?);
                }
            }
            Ok(found)
        }

        /// The statement of [`gdpr_shipments`], after `prefix`.
        fn shipments_query(prefix: &str, key: &SubjectKey) -> QueryBuilder<$db> {
            let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                "{prefix}SELECT {SHIPMENT_COLUMNS} FROM audit_shipment WHERE "
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
            q
        }

        /// Rows of (partner, key, count) summed over `from <= decided_at < to` (microseconds):
        /// whole UTC days from the daily table `daily` (`SELECT partner_id, <key>, SUM … WHERE
        /// day >= $1 AND day < $2 GROUP BY …`), the partial days at the edges from `audit_access`
        /// (`partial`, the same over `decided_at >= $1 AND decided_at < $2`).
        async fn summed(
            pool: &Pool,
            from: i64,
            to: i64,
            daily: &'static str,
            partial: &'static str,
        ) -> Result<Vec<<$db as sqlx::Database>::Row>, StoreError> {
            let first_day = from.div_euclid(DAY_MICROS)
                + i64::from(from.rem_euclid(DAY_MICROS) != 0);
            let end_day = to.div_euclid(DAY_MICROS);
            let mut ranges = Vec::new();
            let mut rows = Vec::new();
            if first_day < end_day {
                rows.extend(
                    sqlx::query(daily)
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
                    sqlx::query(partial)
                        .bind(lo)
                        .bind(hi)
                        .fetch_all(pool)
                        .await
                        .map_err(StoreError::unavailable)?,
                );
            }
            Ok(rows)
        }

        /// Decisions per partner with `from <= decided_at < to` (microseconds), allowed and
        /// denied, and the allowed ones the ledger served itself by channel: whole UTC days from
        /// `audit_daily` and `audit_daily_channel`, the partial days at the edges from
        /// `audit_access`.
        #[tracing::instrument(level = "debug", skip_all, fields(from = from, to = to))]
        pub(crate) async fn gdpr_counts(
            pool: &Pool,
            from: i64,
            to: i64,
        ) -> Result<std::collections::BTreeMap<String, PartnerCounts>, StoreError> {
            let get = |e: sqlx::Error| StoreError::Corrupt {
                position: -1,
                detail: format!("audit count row: {e}"),
            };
            let count = |r: &<$db as sqlx::Database>::Row| {
                r.try_get::<i64, _>(2)
                    .map(|n| u64::try_from(n).unwrap_or_default())
                    .map_err(get)
            };
            let mut out = std::collections::BTreeMap::<String, PartnerCounts>::new();
            let rows = summed(
                pool,
                from,
                to,
                "SELECT partner_id, allowed, CAST(SUM(decisions) AS BIGINT) FROM audit_daily \
                 WHERE day >= $1 AND day < $2 GROUP BY partner_id, allowed",
                "SELECT partner_id, allowed, COUNT(*) FROM audit_access \
                 WHERE decided_at >= $1 AND decided_at < $2 GROUP BY partner_id, allowed",
            )
            .await?;
            for r in &rows {
                let partner: String = r.try_get(0).map_err(get)?;
                let allowed: i64 = r.try_get(1).map_err(get)?;
                let n = count(r)?;
                let c = out.entry(partner).or_default();
                if allowed != 0 {
                    c.allowed += n;
                } else {
                    c.denied += n;
                }
            }
            let rows = summed(
                pool,
                from,
                to,
                "SELECT partner_id, channel, CAST(SUM(decisions) AS BIGINT) \
                 FROM audit_daily_channel WHERE day >= $1 AND day < $2 \
                 GROUP BY partner_id, channel",
                "SELECT partner_id, channel, COUNT(*) FROM audit_access \
                 WHERE decided_at >= $1 AND decided_at < $2 AND allowed <> 0 \
                 AND channel IS NOT NULL GROUP BY partner_id, channel",
            )
            .await?;
            for r in &rows {
                let partner: String = r.try_get(0).map_err(get)?;
                let channel: String = r.try_get(1).map_err(get)?;
                let n = count(r)?;
                *out.entry(partner)
                    .or_default()
                    .allowed_by_channel
                    .entry(channel)
                    .or_default() += n;
            }
            Ok(out)
        }
    };
}

/// Before a rebuild of the GDPR projection from the whole log (`replay --audit`), with no store
/// open in this process: on SQLite, removes the projection's file if no running process writes
/// it, so that the rebuild starts from an empty file instead of deleting every row (at 10M
/// events the DELETEs took 29–119 s: BENCHMARKS.md, "A rebuild of the GDPR projection").
/// Returns whether it was removed; on PostgreSQL, `false`.
pub fn discard_gdpr_projection(location: &crate::StoreLocation) -> Result<bool, StoreError> {
    match location {
        crate::StoreLocation::SqliteFile(path) if path.as_os_str() != ":memory:" => {
            crate::unsynced::discard_unless_written(&crate::sqlite::gdpr_path(path))
                .map_err(|e| StoreError::unavailable(sqlx::Error::Io(e)))
        }
        _ => Ok(false),
    }
}

impl Store {
    /// The position the GDPR projection has applied up to (exclusive).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_position(&self) -> Result<Position, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => sqlite::gdpr_position(pool).await,
            Reads::Postgres(pool) => postgres::gdpr_position(pool).await,
        }
    }

    /// Empties the GDPR projection and moves it back to position 0, to be rebuilt.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_reset(&self) -> Result<(), StoreError> {
        match &self.inner.gdpr_writes {
            Reads::Sqlite(pool) => sqlite::gdpr_reset(pool).await,
            Reads::Postgres(pool) => postgres::gdpr_reset(pool).await,
        }
    }

    /// Writes the GDPR rows of the events `from..next` and moves the GDPR projection to
    /// `next` in one transaction, if it is still at `from`; `false` when another process
    /// applied them first (nothing written).
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), next = next.get(), accesses = batch.accesses.len()))]
    pub async fn gdpr_apply(
        &self,
        from: Position,
        next: Position,
        batch: &GdprBatch,
    ) -> Result<bool, StoreError> {
        gdpr_apply_through(&self.inner.gdpr_writes, from, next, batch).await
    }

    /// Blanks at once, at the decisions' priority, what the erasures of `batch` erased from the
    /// rows the GDPR projection holds, leaving its position where it is (SPEC §12's 60 s do not
    /// wait for it to reach the erasures in log order).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_blank(&self, batch: &GdprBatch) -> Result<(), StoreError> {
        match &self.inner.gdpr_writes_now {
            Reads::Sqlite(pool) => sqlite::gdpr_blank(pool, batch).await,
            Reads::Postgres(pool) => postgres::gdpr_blank(pool, batch).await,
        }
    }

    /// [`Store::gdpr_apply`] for a catch-up a request waits on: on SQLite through a connection
    /// at the decisions' priority, where [`Store::gdpr_apply`]'s runs only on the CPU they leave
    /// (docs/adr/0006), so that a view asked under load is not held back by that load.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), next = next.get(), accesses = batch.accesses.len()))]
    pub async fn gdpr_apply_now(
        &self,
        from: Position,
        next: Position,
        batch: &GdprBatch,
    ) -> Result<bool, StoreError> {
        gdpr_apply_through(&self.inner.gdpr_writes_now, from, next, batch).await
    }

    /// Up to `limit` projected access decisions matching `filter`, after position `after`,
    /// in log order.
    #[tracing::instrument(level = "debug", skip_all, fields(after = after, limit = limit))]
    pub async fn gdpr_access(
        &self,
        filter: &AccessFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<GdprAccess>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => sqlite::gdpr_access(pool, filter, after, limit).await,
            Reads::Postgres(pool) => postgres::gdpr_access(pool, filter, after, limit).await,
        }
    }

    /// The first and last positions before `before` of the projected decisions with `from <=
    /// decided_at < to` (microseconds, `None` unbounded), or `None` when it holds none: one
    /// range of the time index. A time window's decisions lie between them (an export scans
    /// that span of the log, not the log; decisions' times follow their positions but for the
    /// few that waited on one commit together).
    #[tracing::instrument(level = "debug", skip_all, fields(before = before))]
    pub async fn gdpr_time_span(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        before: u64,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => sqlite::gdpr_time_span(pool, from, to, before).await,
            Reads::Postgres(pool) => postgres::gdpr_time_span(pool, from, to, before).await,
        }
    }

    /// The projected shipments a data subject's key names, in registration order.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn gdpr_shipments(&self, key: &SubjectKey) -> Result<Vec<GdprShipment>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => sqlite::gdpr_shipments(pool, key).await,
            Reads::Postgres(pool) => postgres::gdpr_shipments(pool, key).await,
        }
    }

    /// The projected shipments of `ids`: those the GDPR projection has applied.
    #[tracing::instrument(level = "debug", skip_all, fields(ids = ids.len()))]
    pub async fn gdpr_shipments_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<GdprShipment>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => sqlite::gdpr_shipments_by_id(pool, ids).await,
            Reads::Postgres(pool) => postgres::gdpr_shipments_by_id(pool, ids).await,
        }
    }

    /// Projected decisions per partner with `from <= decided_at < to` (microseconds).
    #[tracing::instrument(level = "debug", skip_all, fields(from = from, to = to))]
    pub async fn gdpr_counts(
        &self,
        from: i64,
        to: i64,
    ) -> Result<std::collections::BTreeMap<String, PartnerCounts>, StoreError> {
        match &self.inner.gdpr {
            Reads::Sqlite(pool) => sqlite::gdpr_counts(pool, from, to).await,
            Reads::Postgres(pool) => postgres::gdpr_counts(pool, from, to).await,
        }
    }
}

/// [`Store::gdpr_apply`] through the connections `writes`.
async fn gdpr_apply_through(
    writes: &Reads,
    from: Position,
    next: Position,
    batch: &GdprBatch,
) -> Result<bool, StoreError> {
    match writes {
        Reads::Sqlite(pool) => sqlite::gdpr_apply(pool, from, next, batch).await,
        Reads::Postgres(pool) => postgres::gdpr_apply(pool, from, next, batch).await,
    }
}

pub(crate) mod postgres;
pub(crate) mod sqlite;

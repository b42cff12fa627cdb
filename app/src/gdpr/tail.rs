//! The access view while the GDPR projection is far behind the log (issue 18).
//!
//! Under a load the projection cannot keep up with (it writes ~30 µs an event, docs/adr/0006),
//! a view that first caught it up waited for the whole lag: tens of seconds after a burst of
//! decisions, until the load eased. Past a lag of [`crate::state::ServiceConfig::audit_tail_after`]
//! events the access view answers the export's way instead: the projection's rows for what it
//! has applied, and the decisions after them read from the log itself, selected by the same
//! filter the export applies, made into rows by the projection's own conversion, joined with
//! their shipment as the projection joins them, and with every erasure among those events
//! applied as the projection will apply it. The answer is the one the projection gives once it
//! has caught up; `tests/api/audit.rs` compares the two on every filter and caller. The record
//! of processing (`GET /v1/audit/ropa`) adds the reads of those decisions to the projection's
//! counts the same way.

use std::collections::{BTreeSet, HashMap};

use consent_ledger_domain::access::ACCESS_STREAM;
use consent_ledger_projections::gdpr::{access_row, rows};
use consent_ledger_store::gdpr::{AccessFilter as RowsFilter, GdprAccess, GdprBatch, GdprShipment};
use consent_ledger_store::{Position, StoredEvent};

use super::filter::{access_event, AccessFilter};
use crate::error::AppError;
use crate::export::pre_selection;
use crate::state::AppState;

/// Positions read from the log per statement.
const STEP: u64 = 16_384;

/// What the view's caller asked, as the view parsed it.
pub(super) struct Asked<'a> {
    /// The filters, with the caller's tenancy applied.
    pub filter: &'a AccessFilter,
    /// The same, as the projection's tables are asked.
    pub rows: &'a RowsFilter,
    pub after: Option<u64>,
    /// Rows wanted: a page and one more, to tell whether another page follows.
    pub want: usize,
}

/// The erasures recorded in the events the projection has not applied yet, as it will apply
/// them to every row written before (`consent_ledger_store`'s `gdpr_apply`).
#[derive(Default)]
struct Erasures {
    shipments: BTreeSet<String>,
    positions: BTreeSet<u64>,
    asked_before: Option<u64>,
}

impl Erasures {
    fn of(batch: GdprBatch) -> Self {
        Self {
            shipments: batch.erased.into_iter().collect(),
            positions: batch.erased_positions.into_iter().collect(),
            asked_before: batch.asked_before,
        }
    }

    /// Blanks what the erasures erased from `row`; whether they did.
    fn blank(&self, row: &mut GdprAccess) -> bool {
        let erased = row
            .shipment_id
            .as_ref()
            .is_some_and(|s| self.shipments.contains(s))
            || self.positions.contains(&row.position)
            || (row.shipment_id.is_none() && self.asked_before.is_some_and(|b| row.position < b));
        if erased && row.tracking_number.is_some() {
            row.tracking_number = None;
            return true;
        }
        false
    }
}

/// Up to `asked.want` rows of the access view after `asked.after`, as the projection will
/// hold them once it has applied every event before `target`, while it has applied those
/// before `applied`.
pub(super) async fn access_rows(
    state: &AppState,
    asked: Asked<'_>,
    applied: Position,
    target: Position,
) -> Result<Vec<GdprAccess>, AppError> {
    let (applied, target) = (applied.get(), target.get());
    let erasures = Erasures::of(
        state
            .gdpr
            .erasures_between(Position::new(applied), Position::new(target))
            .await?,
    );
    let mut found = projected(state, &asked, applied, &erasures).await?;
    if found.len() < asked.want {
        let start = asked
            .after
            .map_or(applied, |a| a.saturating_add(1).max(applied));
        let mut later = unapplied(state, &asked, start, target, asked.want - found.len()).await?;
        join_shipments(state, &mut later).await?;
        for row in &mut later {
            erasures.blank(row);
        }
        found.extend(later);
    }
    Ok(found)
}

/// The projection's rows before `applied`, with the erasures after it applied. A row an
/// erasure blanked no longer has the tracking number a filter may have found it by: such a
/// filter leaves it out, as it will once the projection has applied the erasure.
async fn projected(
    state: &AppState,
    asked: &Asked<'_>,
    applied: u64,
    erasures: &Erasures,
) -> Result<Vec<GdprAccess>, AppError> {
    let limit = u32::try_from(asked.want).unwrap_or(u32::MAX);
    let mut found = Vec::new();
    let mut after = asked.after;
    loop {
        let page = state.store.gdpr_access(asked.rows, after, limit).await?;
        let full = page.len() == asked.want;
        after = page.last().map(|r| r.position).or(after);
        for mut row in page {
            // The projection went on meanwhile: the log answers from `applied` on.
            if row.position >= applied {
                return Ok(found);
            }
            if erasures.blank(&mut row) && asked.rows.carrier_tracking.is_some() {
                continue;
            }
            found.push(row);
            if found.len() == asked.want {
                return Ok(found);
            }
        }
        if !full {
            return Ok(found);
        }
    }
}

/// Up to `want` rows of the decisions at positions `from..to` the filter selects, read from
/// the log, in order (their shipments not joined yet).
async fn unapplied(
    state: &AppState,
    asked: &Asked<'_>,
    from: u64,
    to: u64,
    want: usize,
) -> Result<Vec<GdprAccess>, AppError> {
    // Owners and tracking numbers are looked up in the read model: bring it up to `to`, in
    // case another process wrote.
    state.projector.catch_up().await?;
    let resolved = asked.filter.resolve(&state.projector.read().access);
    let scan = pre_selection(asked.filter, &resolved, None);
    let mut found = Vec::new();
    let mut start = from;
    while start < to && found.len() < want {
        let end = start.saturating_add(STEP).min(to);
        let events = state.store.read_decisions(start..end, &scan).await?;
        let model = state.projector.read();
        for e in &events {
            if let Some(row) = selected(asked, &resolved, &model.access, e) {
                found.push(row);
                if found.len() == want {
                    break;
                }
            }
        }
        start = end;
    }
    Ok(found)
}

/// The row of `e` if it is a decision the view selects.
fn selected(
    asked: &Asked<'_>,
    resolved: &super::filter::Resolved,
    index: &consent_ledger_projections::decider::Decider,
    e: &StoredEvent,
) -> Option<GdprAccess> {
    if e.stream_type != ACCESS_STREAM {
        return None;
    }
    let event = access_event(e)?;
    if !asked
        .filter
        .selects(&super::filter::decision(&event), resolved, index)
    {
        return None;
    }
    let row = access_row(e.position, event)?;
    // As the projection's tables are asked (`parcel_disclosed_only`).
    let hidden = matches!(
        row.reason.as_deref(),
        Some("unknown_shipment" | "no_consent")
    );
    (!(asked.rows.parcel_disclosed_only && hidden)).then_some(row)
}

/// Completes each row with its shipment's owner, carrier and tracking number, as the
/// projection writes a decision's row: from the projected shipment, or from its registration
/// in the log when the projection has not applied that yet.
async fn join_shipments(state: &AppState, found: &mut [GdprAccess]) -> Result<(), AppError> {
    let ids: Vec<String> = found
        .iter()
        .filter(|r| r.shipper_id.is_none())
        .filter_map(|r| r.shipment_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut owners: HashMap<String, GdprShipment> = state
        .store
        .gdpr_shipments_by_id(&ids)
        .await?
        .into_iter()
        .map(|s| (s.shipment_id.clone(), s))
        .collect();
    for id in &ids {
        if !owners.contains_key(id) {
            let registration = state.store.read_stream("shipment", id).await?;
            for s in rows(&registration)?.shipments {
                owners.insert(s.shipment_id.clone(), s);
            }
        }
    }
    for row in found.iter_mut().filter(|r| r.shipper_id.is_none()) {
        let Some(owner) = row.shipment_id.as_ref().and_then(|s| owners.get(s)) else {
            continue;
        };
        row.shipper_id = Some(owner.shipper_id.clone());
        if row.carrier.is_none() {
            row.carrier = Some(owner.carrier.clone());
        }
        if row.tracking_number.is_none() && !owner.tracking_number.is_empty() {
            row.tracking_number = Some(owner.tracking_number.clone());
        }
    }
    Ok(())
}

/// Adds to `counts` the decisions at positions `applied..target` decided in `from..to`, per
/// partner, as the projection counts them once it has applied them (`audit_daily`,
/// `audit_daily_channel`).
pub(super) async fn add_counts(
    state: &AppState,
    applied: Position,
    target: Position,
    period: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    counts: &mut std::collections::BTreeMap<String, consent_ledger_store::gdpr::PartnerCounts>,
) -> Result<(), AppError> {
    let filter = AccessFilter {
        from: Some(period.0),
        to: Some(period.1),
        ..AccessFilter::default()
    };
    let resolved = super::filter::Resolved::default();
    let scan = pre_selection(&filter, &resolved, None);
    let mut start = applied.get();
    while start < target.get() {
        let end = start.saturating_add(STEP).min(target.get());
        let events = state.store.read_decisions(start..end, &scan).await?;
        let model = state.projector.read();
        for e in &events {
            let Some(event) = access_event(e) else {
                continue;
            };
            if !filter.selects(&super::filter::decision(&event), &resolved, &model.access) {
                continue;
            }
            let Some(row) = access_row(e.position, event) else {
                continue;
            };
            let partner = counts.entry(row.partner_id).or_default();
            if row.allowed {
                partner.allowed += 1;
                if let Some(channel) = row.channel {
                    *partner.allowed_by_channel.entry(channel).or_default() += 1;
                }
            } else {
                partner.denied += 1;
            }
        }
        start = end;
    }
    Ok(())
}

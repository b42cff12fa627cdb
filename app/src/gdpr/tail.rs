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
//! counts the same way, and a DSAR (`GET /v1/audit/dsar`) finds the subject's shipments and
//! their accesses so.

use std::collections::{BTreeSet, HashMap};

use consent_ledger_domain::access::ACCESS_STREAM;
use consent_ledger_projections::gdpr::{access_row, rows};
use consent_ledger_store::gdpr::{
    AccessFilter as RowsFilter, GdprAccess, GdprBatch, GdprShipment, SubjectKey,
};
use consent_ledger_store::{DecisionScan, Position, StoredEvent};

use super::filter::{access_event, AccessFilter};
use crate::error::AppError;
use crate::export::pre_selection;
use crate::state::AppState;

/// The most decisions a DSAR holds in memory for its several passes ([`Behind::hold`]).
const HELD_AT_MOST: usize = 50_000;

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

/// How far behind the projection is: it has applied the events before `applied`; a view
/// answers for those before `target`; the erasures between, read once.
#[derive(Debug)]
pub(super) struct Behind {
    applied: u64,
    target: u64,
    erasures: Erasures,
    /// The unapplied decisions every filter to come selects among, when read once
    /// ([`Behind::hold`]).
    held: Option<Vec<StoredEvent>>,
}

impl Behind {
    pub(super) async fn read(
        state: &AppState,
        applied: Position,
        target: Position,
    ) -> Result<Self, AppError> {
        let batch = state.gdpr.erasures_between(applied, target, false).await?;
        Ok(Self::of(applied, target, batch))
    }

    fn of(applied: Position, target: Position, erasures: GdprBatch) -> Self {
        Self {
            applied: applied.get(),
            target: target.get(),
            erasures: Erasures::of(erasures),
            held: None,
        }
    }

    /// [`Behind::read`], and the shipments registered among the events the projection has
    /// not applied (each opened: the number and reference are sealed in its payload), read in
    /// the same scan of the log.
    pub(super) async fn read_with_registrations(
        state: &AppState,
        applied: Position,
        target: Position,
    ) -> Result<(Self, Vec<GdprShipment>), AppError> {
        let mut batch = state.gdpr.erasures_between(applied, target, true).await?;
        let registered = std::mem::take(&mut batch.shipments);
        Ok((Self::of(applied, target, batch), registered))
    }

    /// Reads once the unapplied decisions about `shipments`, and those asked by `tracking`'s
    /// number, for a DSAR, whose passes (its recipients, each one's accesses, the denials)
    /// then select among them instead of each reading the log; left to the log when there are
    /// more than [`HELD_AT_MOST`].
    pub(super) async fn hold(
        &mut self,
        state: &AppState,
        shipments: &[GdprShipment],
        tracking: Option<&AccessFilter>,
    ) -> Result<(), AppError> {
        let mut any: Vec<String> = shipments.iter().map(|s| s.shipment_id.clone()).collect();
        if let Some(tracking) = tracking {
            let resolved = tracking.resolve(&state.projector.read().access);
            let scan = pre_selection(tracking, &resolved, None);
            any.extend(scan.payload_contains.into_iter().flatten());
        }
        if any.is_empty() {
            self.held = Some(Vec::new());
            return Ok(());
        }
        let scan = DecisionScan {
            payload_contains: vec![any],
            ..DecisionScan::of(ACCESS_STREAM)
        };
        let mut held = Vec::new();
        state
            .store
            .scan_decisions(self.applied..self.target, &scan, |events| {
                held.extend(events);
                held.len() <= HELD_AT_MOST
            })
            .await?;
        self.held = (held.len() <= HELD_AT_MOST).then_some(held);
        Ok(())
    }
}

/// The erasures recorded in the events the projection has not applied yet, as it will apply
/// them to every row written before (`consent_ledger_store`'s `gdpr_apply`).
#[derive(Debug, Default)]
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

/// A data subject's shipments (a DSAR's) as the projection will hold them once it has applied
/// every event before `behind.target`: its rows the key finds, less those an erasure it has
/// not applied erased (it blanks the number and reference the key finds them by), and of the
/// shipments `registered` among the events it has not applied ([`Behind::read_with_registrations`])
/// those the key finds, in log order.
pub(super) async fn subject_shipments(
    state: &AppState,
    key: &SubjectKey,
    behind: &Behind,
    registered: Vec<GdprShipment>,
) -> Result<Vec<GdprShipment>, AppError> {
    let erased = &behind.erasures.shipments;
    let mut found: Vec<GdprShipment> = state
        .store
        .gdpr_shipments(key)
        .await?
        .into_iter()
        .filter(|s| !erased.contains(&s.shipment_id))
        .collect();
    for shipment in registered {
        let theirs = match key {
            SubjectKey::Tracking {
                carrier,
                tracking_number,
            } => &shipment.carrier == carrier && &shipment.tracking_number == tracking_number,
            SubjectKey::RecipientRef(r) => shipment.recipient_ref.as_ref() == Some(r),
        };
        // The projection may have gone on meanwhile and hold it already.
        let known = found.iter().any(|s| s.shipment_id == shipment.shipment_id);
        if theirs && !known && !erased.contains(&shipment.shipment_id) {
            found.push(shipment);
        }
    }
    found.sort_by_key(|s| s.position);
    Ok(found)
}

/// Up to `asked.want` rows of the access view after `asked.after`, as the projection will
/// hold them once it has applied every event before `behind.target`.
pub(super) async fn access_rows(
    state: &AppState,
    asked: Asked<'_>,
    behind: &Behind,
) -> Result<Vec<GdprAccess>, AppError> {
    let (applied, erasures) = (behind.applied, &behind.erasures);
    let mut found = projected(state, &asked, applied, erasures).await?;
    if found.len() < asked.want {
        let start = asked
            .after
            .map_or(applied, |a| a.saturating_add(1).max(applied));
        let want = asked.want - found.len();
        let mut later = unapplied(state, &asked, start..behind.target, want, &behind.held).await?;
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

/// Up to `want` rows of the decisions at positions `range` the filter selects, in order (their
/// shipments not joined yet): among the `held` decisions if read before, else from the log.
async fn unapplied(
    state: &AppState,
    asked: &Asked<'_>,
    range: std::ops::Range<u64>,
    want: usize,
    held: &Option<Vec<StoredEvent>>,
) -> Result<Vec<GdprAccess>, AppError> {
    // Owners and tracking numbers are looked up in the read model: bring it up to the range's
    // end, in case another process wrote.
    state.projector.catch_up().await?;
    let resolved = asked.filter.resolve(&state.projector.read().access);
    let mut found = Vec::new();
    let select = |events: &[StoredEvent], found: &mut Vec<GdprAccess>| {
        let model = state.projector.read();
        for e in events.iter().filter(|e| range.contains(&e.position.get())) {
            if found.len() == want {
                break;
            }
            found.extend(selected(asked, &resolved, &model.access, e));
        }
    };
    if let Some(held) = held {
        select(held, &mut found);
        return Ok(found);
    }
    let scan = pre_selection(asked.filter, &resolved, None);
    state
        .store
        .scan_decisions(range.clone(), &scan, |events| {
            select(&events, &mut found);
            found.len() < want
        })
        .await?;
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
    let counted = state
        .store
        .scan_decisions(applied.get()..target.get(), &scan, |events| {
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
            true
        });
    Ok(counted.await?)
}

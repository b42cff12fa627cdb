//! `GET /v1/audit/access` (SPEC §7): who read which parcel, when, why and on which consent, a
//! page at a time, as JSON, CSV or NDJSON; each record as the caller may see it.

use chrono::{DateTime, Utc};
use consent_ledger_domain::access::DenyReason;
use consent_ledger_domain::values::{
    AuthorizationId, ConsentId, DataCategory, LegalBasis, PrincipalId, Role,
};
use consent_ledger_projections::decider::ShipmentRef;
use consent_ledger_projections::model::{ConsentStatus, ReadModel};
use consent_ledger_store::gdpr::{AccessFilter, GdprAccess};
use consent_ledger_store::Position;
use serde::Serialize;
use utoipa::ToSchema;

use super::filter::{self};
use super::{
    csv_text, decode_cursor, encode_cursor, format, fresh_target, joined, json_text, list, ndjson,
    rfc3339, sees_all, status_text, tail, time_of, Cursor, Format, Rendered, Span, CSV_TYPE,
};
use crate::auth::Caller;
use crate::error::AppError;
use crate::query::{page_size, QueryParams};
use crate::state::AppState;

/// A consent an access went through, and where it stood at the decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentLink {
    pub consent_id: ConsentId,
    /// `/v1/consents/{id}`: the consent with its full history.
    pub href: String,
    /// The consent's status when the decision was committed.
    pub status_at_decision: Option<ConsentStatus>,
    pub legal_basis: Option<LegalBasis>,
}

/// One recorded access decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRecord {
    pub position: u64,
    pub decision_id: String,
    pub decided_at: DateTime<Utc>,
    /// `allowed` or `denied`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub partner_id: String,
    pub partner_name: Option<String>,
    pub on_behalf_of: Option<String>,
    pub shipment_id: Option<String>,
    pub shipper_id: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub purpose: String,
    pub requested_categories: Vec<DataCategory>,
    pub granted_categories: Vec<DataCategory>,
    pub consents: Vec<ConsentLink>,
    /// `pull` or `webhook` when the ledger served the data itself (SPEC §14); absent for a
    /// decision whose caller served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The carrier authorizations an allow rested on, or the one a denial names (SPEC §16).
    #[schema(value_type = Vec<String>)]
    pub authorization_ids: Vec<AuthorizationId>,
    /// The DPA an allowed read relied on (SPEC §16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpa_id: Option<String>,
    /// Who the data reached, in order, when a tracking intermediary read for a recipient
    /// (`on_behalf_of`): the intermediary, then the recipient (SPEC §16). Empty otherwise.
    pub chain: Vec<ChainLink>,
}

/// One party of a relayed read's chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainLink {
    pub partner_id: String,
    pub name: Option<String>,
    /// `intermediary` or `recipient`.
    pub role: &'static str,
}

/// The chain of a relayed read: `partner` read for `on_behalf_of`.
pub(super) fn chain(
    model: &ReadModel,
    partner: &str,
    on_behalf_of: Option<&str>,
) -> Vec<ChainLink> {
    let Some(recipient) = on_behalf_of else {
        return Vec::new();
    };
    [(partner, "intermediary"), (recipient, "recipient")]
        .into_iter()
        .map(|(id, role)| ChainLink {
            partner_id: id.to_owned(),
            name: partner_name(model, id),
            role,
        })
        .collect()
}

pub(super) fn partner_name(model: &ReadModel, id: &str) -> Option<String> {
    PrincipalId::parse(id)
        .ok()
        .and_then(|p| model.principals.get(&p))
        .map(|p| p.name.to_string())
}

/// What a partner's own access record shows of a denial that hid the parcel from it (SPEC §2):
/// the reason as it was told, and nothing of the parcel — its id, shipper, carrier or tracking
/// number — so that another tenant's parcel and no parcel read the same. Auditors, the shipper
/// and the gateway's operator see the record as it is.
fn as_told_to_partner(mut r: AccessRecord) -> AccessRecord {
    let hidden = r
        .reason
        .as_deref()
        .and_then(|text| serde_json::from_value::<DenyReason>(text.into()).ok())
        .filter(|reason| reason.hides_the_parcel());
    if let Some(reason) = hidden {
        r.reason = serde_json::to_value(reason.as_seen_by_partner())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        r.shipment_id = None;
        r.shipper_id = None;
        r.carrier = None;
        r.tracking_number = None;
    }
    r
}

fn record(model: &ReadModel, a: GdprAccess) -> Result<AccessRecord, AppError> {
    let decided_at = time_of(a.decided_at);
    let position = a.position;
    let consents = list::<ConsentId>(position, "consent_ids", &a.consent_ids)?
        .into_iter()
        .map(|id| {
            let view = model.consents.get(&id);
            ConsentLink {
                href: format!("/v1/consents/{id}"),
                status_at_decision: view
                    .map(|c| c.status_as_of(Position::new(position), decided_at)),
                legal_basis: view.map(|c| c.legal_basis),
                consent_id: id,
            }
        })
        .collect();
    Ok(AccessRecord {
        chain: chain(model, &a.partner_id, a.on_behalf_of.as_deref()),
        position,
        decided_at,
        outcome: if a.allowed { "allowed" } else { "denied" },
        partner_name: partner_name(model, &a.partner_id),
        decision_id: a.decision_id,
        reason: a.reason,
        partner_id: a.partner_id,
        on_behalf_of: a.on_behalf_of,
        shipment_id: a.shipment_id,
        shipper_id: a.shipper_id,
        carrier: a.carrier,
        tracking_number: a.tracking_number,
        purpose: a.purpose,
        requested_categories: list(position, "requested", &a.requested)?,
        granted_categories: list(position, "granted", &a.granted)?,
        consents,
        channel: a.channel,
        authorization_ids: list(position, "authorization_ids", &a.authorization_ids)?,
        dpa_id: a.dpa_id,
    })
}

const CSV_ACCESS_HEADER: [&str; 20] = [
    "position",
    "decision_id",
    "decided_at",
    "outcome",
    "reason",
    "partner_id",
    "partner_name",
    "on_behalf_of",
    "shipment_id",
    "shipper_id",
    "carrier",
    "tracking_number",
    "purpose",
    "requested_categories",
    "granted_categories",
    "consent_ids",
    "consent_status_at_decision",
    "channel",
    "authorization_ids",
    "dpa_id",
];

fn csv_access_row(r: &AccessRecord) -> [String; 20] {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        r.position.to_string(),
        r.decision_id.clone(),
        rfc3339(r.decided_at),
        r.outcome.to_owned(),
        opt(&r.reason),
        r.partner_id.clone(),
        opt(&r.partner_name),
        opt(&r.on_behalf_of),
        opt(&r.shipment_id),
        opt(&r.shipper_id),
        opt(&r.carrier),
        opt(&r.tracking_number),
        r.purpose.clone(),
        joined(&r.requested_categories),
        joined(&r.granted_categories),
        joined(r.consents.iter().map(|c| &c.consent_id)),
        r.consents
            .iter()
            .map(|c| status_text(c.status_at_decision))
            .collect::<Vec<_>>()
            .join(";"),
        opt(&r.channel),
        joined(&r.authorization_ids),
        opt(&r.dpa_id),
    ]
}

/// One page of access records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessPage {
    pub items: Vec<AccessRecord>,
    /// Pass as `after` for the next page; absent on the last page. Stable under concurrent
    /// appends: a later decision always has a later position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// The access filters of `q` (parsed once, by [`filter::AccessFilter::parse`], as the export
/// parses them), with the caller's tenancy applied (another tenant's shipment: 404), as the
/// GDPR tables are asked.
pub fn access_filter(
    state: &AppState,
    caller: &Caller,
    q: &QueryParams,
) -> Result<AccessFilter, AppError> {
    Ok(access_filters(state, caller, q)?.1)
}

/// [`access_filter`], and the same filters as the export applies them to events.
fn access_filters(
    state: &AppState,
    caller: &Caller,
    q: &QueryParams,
) -> Result<(filter::AccessFilter, AccessFilter), AppError> {
    let mut asked = filter::AccessFilter::parse(|name| q.raw(name).map(str::to_owned))?;
    if sees_all(caller) {
        let rows = asked.rows_filter();
        return Ok((asked, rows));
    }
    match caller.role {
        Role::Shipper => {
            let me = caller.id.as_shipper();
            if asked.shipper.is_some_and(|s| s != me) {
                return Err(AppError::not_found());
            }
            let model = state.projector.read();
            let owned = |r: ShipmentRef| {
                model
                    .access
                    .resolve(&r)
                    .and_then(|id| model.access.shipment_owner(id))
                    == Some(me)
            };
            if asked.shipment.is_some_and(|s| !owned(ShipmentRef::Id(s))) {
                return Err(AppError::not_found());
            }
            if let Some((c, t)) = &asked.tracking {
                if !owned(ShipmentRef::Tracking(c.clone(), t.clone())) {
                    return Err(AppError::not_found());
                }
            }
            asked.shipper = Some(me);
        }
        Role::Partner => {
            let me = caller.id.as_partner();
            if asked.partner.is_some_and(|p| p != me) {
                return Err(AppError::not_found());
            }
            asked.partner = Some(me);
            // Asked about one parcel, a partner finds only the decisions that did not hide it
            // (SPEC §2): for another tenant's parcel and for no parcel alike, none of those.
            if asked.shipment.is_some() || asked.tracking.is_some() {
                let mut rows = asked.rows_filter();
                rows.parcel_disclosed_only = true;
                return Ok((asked, rows));
            }
        }
        _ => {
            return Err(AppError::Forbidden(
                "audit views are for privacy officers, regulators, shippers and partners".into(),
            ))
        }
    }
    let rows = asked.rows_filter();
    Ok((asked, rows))
}

/// The access view's parameters: the access filters, then its own.
pub fn access_params() -> Vec<&'static str> {
    let mut known = filter::FILTER_NAMES.to_vec();
    known.extend(["format", "limit", "after", "at_least_as_fresh"]);
    known
}

/// `GET /v1/audit/access` without HTTP: what the handler and `consent-ledger export` render.
#[tracing::instrument(level = "debug", skip_all, fields(role = %caller.role))]
pub async fn access_view(
    state: &AppState,
    caller: &Caller,
    query: &str,
) -> Result<Rendered, AppError> {
    let q = QueryParams::parse(query, &access_params())?;
    let format = format(&q, &[Format::Json, Format::Csv, Format::Ndjson])?;
    let AccessPage { items, next_after } = access_page(state, caller, &q).await?;
    let (content_type, body) = match format {
        Format::Json => (
            "application/json",
            json_text(&AccessPage {
                items,
                next_after: next_after.clone(),
            })?,
        ),
        Format::Ndjson => ("application/x-ndjson", ndjson(&items)?),
        Format::Csv => (
            CSV_TYPE,
            csv_text(CSV_ACCESS_HEADER, items.iter().map(csv_access_row))?,
        ),
    };
    Ok(Rendered {
        content_type,
        body,
        next_after,
    })
}

/// One page of the decisions `filter` selects after `cursor`, `want` rows at most, from the GDPR
/// projection (caught up), and the span a next page carries. A filter on time alone (and
/// outcome) reads the span of the log where the projection's time index finds the window's
/// decisions (`Store::gdpr_time_span`), not every row before it or after it: the first page
/// finds that span, the next ones read the rest of it and what was applied since.
async fn projected_page(
    state: &AppState,
    filter: &AccessFilter,
    cursor: Option<Cursor>,
    want: u32,
) -> Result<(Vec<GdprAccess>, Option<Span>), AppError> {
    let after = cursor.map(|c| c.after);
    if filter.keyed() || (filter.from.is_none() && filter.to.is_none()) {
        return Ok((state.store.gdpr_access(filter, after, want).await?, None));
    }
    let (inside, span) = match cursor.and_then(|c| c.span) {
        Some(span) => (span.last.map(|last| (0, last)), span),
        None => {
            let applied = state.store.gdpr_position().await?.get();
            let inside = state
                .store
                .gdpr_time_span(filter.from, filter.to, applied)
                .await?;
            let last = inside.map(|(_, last)| last);
            (inside, Span { last, applied })
        }
    };
    let mut rows = match inside {
        Some(within) => {
            let inside = AccessFilter {
                within: Some(within),
                ..filter.clone()
            };
            state.store.gdpr_access(&inside, after, want).await?
        }
        None => Vec::new(),
    };
    let left = want.saturating_sub(u32::try_from(rows.len()).unwrap_or(u32::MAX));
    if left > 0 {
        // Decisions applied since the span was found.
        let since = AccessFilter {
            within: Some((span.applied, u64::MAX)),
            ..filter.clone()
        };
        rows.extend(state.store.gdpr_access(&since, after, left).await?);
    }
    Ok((rows, Some(span)))
}

/// One page of the access records `q` selects (its filters, `limit`, `after`,
/// `at_least_as_fresh`), as the caller may see them: the access view's rows, typed (the
/// console renders them as they are).
pub async fn access_page(
    state: &AppState,
    caller: &Caller,
    q: &QueryParams,
) -> Result<AccessPage, AppError> {
    let limit = page_size(q.get("limit")?)?;
    let cursor = q
        .get::<String>("after")?
        .map(|a| decode_cursor(&a))
        .transpose()?;
    let after = cursor.map(|c| c.after);
    let (asked, filter) = access_filters(state, caller, q)?;
    let target = fresh_target(state, q).await?;
    let applied = state.store.gdpr_position().await?;
    let behind = target.get().saturating_sub(applied.get());
    let (mut rows, span) = if behind > state.config.audit_tail_after {
        // Far behind (a load it cannot keep up with): the log answers for what it has not
        // applied, rather than the view waiting for all of it.
        let asked = tail::Asked {
            filter: &asked,
            rows: &filter,
            after,
            want: limit + 1,
        };
        let behind = tail::Behind::read(state, applied, target).await?;
        // A span found before still holds: the next page may be caught up.
        let span = cursor.and_then(|c| c.span);
        (tail::access_rows(state, asked, &behind).await?, span)
    } else {
        state.gdpr.catch_up_to(target).await?;
        let want = u32::try_from(limit + 1).unwrap_or(u32::MAX);
        projected_page(state, &filter, cursor, want).await?
    };
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_after = more
        .then(|| {
            rows.last().map(|r| {
                encode_cursor(Cursor {
                    after: r.position,
                    span,
                })
            })
        })
        .flatten();
    let items: Vec<AccessRecord> = {
        let model = state.projector.read();
        rows.into_iter()
            .map(|r| record(&model, r))
            .map(|r| match caller.role {
                Role::Partner => r.map(as_told_to_partner),
                _ => r,
            })
            .collect::<Result<_, _>>()?
    };
    Ok(AccessPage { items, next_after })
}

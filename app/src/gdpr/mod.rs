//! The GDPR views (SPEC §7): `GET /v1/audit/access` (who read which parcel,
//! when, why, on which consent), `GET /v1/audit/dsar` (Art. 15: a data subject's recipients),
//! `GET /v1/audit/ropa` (Art. 30: per partner, what it processes and how often).
//!
//! Every view answers as of the log's size now (or `at_least_as_fresh`), so a decision whose
//! answer came back is in the next view: from the audit projection after catching it up, or,
//! when it is far behind, from its rows and the log after them (`tail.rs`). Who
//! sees what follows SPEC §2: privacy officers, regulators and admins everything, a shipper
//! its own shipments' records, a partner its own decisions; another tenant's shipment is 404.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use consent_ledger_domain::access::DenyReason;
use consent_ledger_domain::principal::PartnerProfile;
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, ConsentId, DataCategory, LegalBasis, PrincipalId, RecipientRef,
    Role, ShipmentId, TrackingNumber,
};
use consent_ledger_projections::authorization::AuthorizationView;
use consent_ledger_projections::decider::ShipmentRef;
use consent_ledger_projections::model::{ConsentStatus, DpaView, ReadModel};
use consent_ledger_store::gdpr::{AccessFilter, GdprAccess, GdprShipment, SubjectKey};
use consent_ledger_store::Position;
use serde::Serialize;
use utoipa::ToSchema;

pub mod filter;
mod tail;

use filter::Outcome;

use crate::auth::Caller;
use crate::error::AppError;
use crate::query::{page_size, QueryParams};
use crate::state::AppState;

/// Who sees every tenant's records (SPEC §2): privacy officers and regulators. The operator's
/// admin registers principals and rotates keys; it reads no one's access history.
fn sees_all(caller: &Caller) -> bool {
    caller.is_auditor()
}

/// How a view is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Ndjson,
}

fn format(q: &QueryParams, allowed: &[Format]) -> Result<Format, AppError> {
    let given: Option<String> = q.get("format")?;
    let f = match given.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(other) => {
            return Err(AppError::invalid(
                "format",
                format!("unknown value `{other}`; expected one of json, csv, ndjson"),
            ))
        }
    };
    if !allowed.contains(&f) {
        return Err(AppError::invalid("format", "not offered by this view"));
    }
    Ok(f)
}

fn time_param(q: &QueryParams, name: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    let raw: Option<String> = q.get(name)?;
    raw.map(|s| crate::query::rfc3339_time(&s).map_err(|e| AppError::invalid(name, e)))
        .transpose()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn time_of(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// What a view answers up to: every event before `at_least_as_fresh + 1` if given, else
/// before the log's size now.
async fn fresh_target(state: &AppState, q: &QueryParams) -> Result<Position, AppError> {
    Ok(match q.get::<u64>("at_least_as_fresh")? {
        Some(p) => {
            let size = state.store.next_position().await?;
            if p >= size.get() {
                return Err(AppError::invalid(
                    "at_least_as_fresh",
                    "no event at this position yet",
                ));
            }
            Position::new(p + 1)
        }
        None => state.store.next_position().await?,
    })
}

/// A page cursor: the last position returned, opaque to the caller.
fn encode_cursor(position: u64) -> String {
    B64URL.encode(position.to_string())
}

fn decode_cursor(raw: &str) -> Result<u64, AppError> {
    B64URL
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AppError::invalid("after", "not a cursor this API returned"))
}

/// A list column of a GDPR row (comma-separated, as the projector wrote it), each item parsed:
/// a value that does not parse is an error naming the row, never dropped.
fn list<T>(position: u64, column: &str, text: &str) -> Result<Vec<T>, AppError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse().map_err(|e| {
                AppError::internal(anyhow::anyhow!(
                    "the GDPR row of position {position} holds a bad {column} item: {e}"
                ))
            })
        })
        .collect()
}

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
fn chain(model: &ReadModel, partner: &str, on_behalf_of: Option<&str>) -> Vec<ChainLink> {
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

fn partner_name(model: &ReadModel, id: &str) -> Option<String> {
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

fn status_text(s: Option<ConsentStatus>) -> &'static str {
    match s {
        Some(ConsentStatus::Active) => "active",
        Some(ConsentStatus::Revoked) => "revoked",
        Some(ConsentStatus::Expired) => "expired",
        Some(ConsentStatus::NotYetValid) => "not_yet_valid",
        None => "unknown",
    }
}

/// A list as one CSV cell, `;`-separated.
fn joined<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(";")
}

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

/// RFC 4180 CSV (CRLF line ends, quoting where needed) with a header row. Every cell that a
/// spreadsheet would take for a formula is written as text (see [`formula_safe`]).
pub fn csv_text<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = [String; N]>,
) -> Result<String, AppError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header).map_err(AppError::internal)?;
    for row in rows {
        w.write_record(row.iter().map(|cell| formula_safe(cell.as_str())))
            .map_err(AppError::internal)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    String::from_utf8(bytes).map_err(AppError::internal)
}

/// Characters that make a spreadsheet read a cell as a formula when they come first.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell`, with a `'` before it if it starts like a formula (OWASP "CSV Injection"): a privacy
/// officer opens these files in a spreadsheet, and a partner's name such as
/// `=HYPERLINK("https://…")` is the partner's own text, not the officer's. The quote makes
/// the spreadsheet show the text as it is; a reader of the CSV removes one leading `'` from
/// such a cell to get the value back.
fn formula_safe(cell: &str) -> std::borrow::Cow<'_, [u8]> {
    if cell.starts_with(FORMULA_STARTS) {
        std::borrow::Cow::Owned([b"'", cell.as_bytes()].concat())
    } else {
        std::borrow::Cow::Borrowed(cell.as_bytes())
    }
}

fn ndjson<T: Serialize>(items: &[T]) -> Result<String, AppError> {
    let mut out = String::new();
    for item in items {
        out.push_str(&serde_json::to_string(item).map_err(AppError::internal)?);
        out.push('\n');
    }
    Ok(out)
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

/// A view rendered in the format asked for.
#[derive(Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
    /// For a page of access records: the cursor of the next page, if any.
    pub next_after: Option<String>,
}

const CSV_TYPE: &str = "text/csv; charset=utf-8; header=present";

fn json_text<T: Serialize>(value: &T) -> Result<String, AppError> {
    serde_json::to_string(value).map_err(AppError::internal)
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

/// One page of the access records `q` selects (its filters, `limit`, `after`,
/// `at_least_as_fresh`), as the caller may see them: the access view's rows, typed (the
/// console renders them as they are).
pub async fn access_page(
    state: &AppState,
    caller: &Caller,
    q: &QueryParams,
) -> Result<AccessPage, AppError> {
    let limit = page_size(q.get("limit")?)?;
    let after = q
        .get::<String>("after")?
        .map(|a| decode_cursor(&a))
        .transpose()?;
    let (asked, filter) = access_filters(state, caller, q)?;
    let target = fresh_target(state, q).await?;
    let applied = state.store.gdpr_position().await?;
    let behind = target.get().saturating_sub(applied.get());
    let mut rows = if behind > state.config.audit_tail_after {
        // Far behind (a load it cannot keep up with): the log answers for what it has not
        // applied, rather than the view waiting for all of it.
        let asked = tail::Asked {
            filter: &asked,
            rows: &filter,
            after,
            want: limit + 1,
        };
        let behind = tail::Behind::read(state, applied, target).await?;
        tail::access_rows(state, asked, &behind).await?
    } else {
        state.gdpr.catch_up_to(target).await?;
        state
            .store
            .gdpr_access(&filter, after, u32::try_from(limit + 1).unwrap_or(u32::MAX))
            .await?
    };
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_after = more
        .then(|| rows.last().map(|r| encode_cursor(r.position)))
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

/// One access of a recipient: what it read, when, why, on which ground.
#[derive(Debug, Serialize, ToSchema)]
pub struct DsarAccess {
    pub position: u64,
    pub decided_at: DateTime<Utc>,
    pub shipment_id: Option<String>,
    pub purpose: String,
    pub legal_bases: Vec<LegalBasis>,
    pub consent_ids: Vec<ConsentId>,
    /// The carrier authorizations the read rested on (SPEC §16).
    #[schema(value_type = Vec<String>)]
    pub authorization_ids: Vec<AuthorizationId>,
    /// The DPA the read relied on (SPEC §16).
    pub dpa_id: Option<String>,
    pub data_categories: Vec<DataCategory>,
    /// The partner the recipient read for, when it read as a tracking intermediary: data
    /// reached that partner too.
    pub on_behalf_of: Option<String>,
    /// The whole chain of a relayed read: the intermediary, then the recipient it read for
    /// (SPEC §16). Empty for a direct read.
    pub chain: Vec<ChainLink>,
}

/// A recipient (Art. 15(1)(c)): a partner that was allowed to read the subject's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct DsarRecipient {
    pub partner_id: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub country: Option<String>,
    pub dpa_ref: Option<String>,
    pub accesses: Vec<DsarAccess>,
}

/// A refused attempt: recorded, but the party received nothing and is no recipient.
#[derive(Debug, Serialize, ToSchema)]
pub struct DsarDenied {
    pub position: u64,
    pub decided_at: DateTime<Utc>,
    pub partner_id: String,
    pub name: Option<String>,
    pub shipment_id: Option<String>,
    pub purpose: String,
    pub reason: Option<String>,
    pub requested_categories: Vec<DataCategory>,
    /// The partner it asked for, as a tracking intermediary.
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DsarShipment {
    pub shipment_id: String,
    pub carrier: String,
    pub tracking_number: String,
    pub shipper_id: String,
}

/// An erasure of the subject's personal data (SPEC §12): when, and the position of the
/// `PersonalDataErased` record that holds its reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DsarErasure {
    pub position: u64,
    pub erased_at: DateTime<Utc>,
}

/// The Art. 15 answer for one data subject.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dsar {
    pub generated_at: DateTime<Utc>,
    pub shipments: Vec<DsarShipment>,
    /// The erasures of this recipient reference's data, oldest first (auditors only): a
    /// subject whose data was erased is answered that it was, when, and by which record.
    pub erasures: Vec<DsarErasure>,
    pub recipients: Vec<DsarRecipient>,
    pub denied_attempts: Vec<DsarDenied>,
}

/// Rows read from the GDPR tables per round trip while a DSAR is written. A DSAR lists every
/// decision (GDPR Art. 15 asks for all recipients): it reads page after page until the history
/// ends, never stopping at a cap, and holds one page at a time (bounded memory, SPEC §11).
const DSAR_PAGE: u32 = 10_000;

/// Output of a streamed view is handed on in pieces of about this size.
const STREAM_CHUNK: usize = 64 * 1024;

/// The pages of rows `filter` selects, in position order: from the projection, or, when the
/// DSAR found it far behind (`tail`), from its rows and the log after them (`tail.rs`).
struct Pages<'a> {
    state: &'a AppState,
    filter: filter::AccessFilter,
    rows: AccessFilter,
    tail: Option<&'a tail::Behind>,
    after: Option<u64>,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(
        state: &'a AppState,
        filter: filter::AccessFilter,
        tail: Option<&'a tail::Behind>,
    ) -> Self {
        Self {
            state,
            rows: filter.rows_filter(),
            done: filter.shipment_in.as_ref().is_some_and(Vec::is_empty),
            filter,
            tail,
            after: None,
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<GdprAccess>>, AppError> {
        if self.done {
            return Ok(None);
        }
        let page = match self.tail {
            Some(behind) => {
                let asked = tail::Asked {
                    filter: &self.filter,
                    rows: &self.rows,
                    after: self.after,
                    want: DSAR_PAGE as usize,
                };
                tail::access_rows(self.state, asked, behind).await?
            }
            None => {
                self.state
                    .store
                    .gdpr_access(&self.rows, self.after, DSAR_PAGE)
                    .await?
            }
        };
        self.done = page.len() < DSAR_PAGE as usize;
        self.after = page.last().map(|r| r.position).or(self.after);
        Ok((!page.is_empty()).then_some(page))
    }
}

/// Text handed on in pieces of about [`STREAM_CHUNK`].
struct Chunks<E> {
    buf: String,
    emit: E,
}

impl<E: AsyncFnMut(String) -> Result<(), AppError>> Chunks<E> {
    async fn push(&mut self, text: &str) -> Result<(), AppError> {
        self.buf.push_str(text);
        if self.buf.len() >= STREAM_CHUNK {
            let piece = std::mem::take(&mut self.buf);
            (self.emit)(piece).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(), AppError> {
        if !self.buf.is_empty() {
            let piece = std::mem::take(&mut self.buf);
            (self.emit)(piece).await?;
        }
        Ok(())
    }
}

/// A checked DSAR request, ready to be written: the subject's shipments are found, the
/// caller may see them; what remains is to read and write its history, page by page.
#[derive(Debug)]
pub struct DsarPlan {
    pub content_type: &'static str,
    format: Format,
    generated_at: DateTime<Utc>,
    shipments: Vec<GdprShipment>,
    /// Denied attempts by this carrier and tracking number before the parcel was registered
    /// (shown to auditors).
    unregistered: Option<(CarrierCode, TrackingNumber)>,
    erasures: Vec<DsarErasure>,
    /// How far behind the DSAR found the projection, when far: the log answers for the
    /// events it has not applied.
    tail: Option<tail::Behind>,
}

/// A recipient as the DSAR introduces it, before its accesses.
#[derive(Serialize)]
struct RecipientHead {
    partner_id: String,
    name: Option<String>,
    kind: Option<String>,
    country: Option<String>,
    dpa_ref: Option<String>,
}

fn recipient_head(model: &ReadModel, partner_id: &str) -> RecipientHead {
    let profile = PrincipalId::parse(partner_id)
        .ok()
        .and_then(|p| model.principals.get(&p));
    let partner = profile.and_then(|p| p.partner.as_ref());
    RecipientHead {
        partner_id: partner_id.to_owned(),
        name: profile.map(|p| p.name.to_string()),
        kind: partner.map(|p| p.kind.to_string()),
        country: partner.map(|p| p.country.to_string()),
        dpa_ref: partner.map(|p| p.dpa_ref.to_string()),
    }
}

fn dsar_access(model: &ReadModel, r: GdprAccess) -> Result<DsarAccess, AppError> {
    let consent_ids: Vec<ConsentId> = list(r.position, "consent_ids", &r.consent_ids)?;
    let authorization_ids: Vec<AuthorizationId> =
        list(r.position, "authorization_ids", &r.authorization_ids)?;
    let mut legal_bases: Vec<LegalBasis> = consent_ids
        .iter()
        .filter_map(|id| model.consents.get(id))
        .map(|c| c.legal_basis)
        .chain(
            authorization_ids
                .iter()
                .filter_map(|id| model.authorizations.get(id))
                .map(|a| a.legal_basis),
        )
        .collect();
    legal_bases.sort();
    legal_bases.dedup();
    Ok(DsarAccess {
        position: r.position,
        decided_at: time_of(r.decided_at),
        shipment_id: r.shipment_id,
        purpose: r.purpose,
        legal_bases,
        consent_ids,
        authorization_ids,
        dpa_id: r.dpa_id,
        data_categories: list(r.position, "granted", &r.granted)?,
        chain: chain(model, &r.partner_id, r.on_behalf_of.as_deref()),
        on_behalf_of: r.on_behalf_of,
    })
}

fn dsar_denied(model: &ReadModel, r: GdprAccess) -> Result<DsarDenied, AppError> {
    Ok(DsarDenied {
        position: r.position,
        decided_at: time_of(r.decided_at),
        name: partner_name(model, &r.partner_id),
        requested_categories: list(r.position, "requested", &r.requested)?,
        partner_id: r.partner_id,
        shipment_id: r.shipment_id,
        purpose: r.purpose,
        reason: r.reason,
        on_behalf_of: r.on_behalf_of,
    })
}

fn opt(o: &Option<String>) -> String {
    o.clone().unwrap_or_default()
}

fn csv_recipient_row(p: &RecipientHead, a: &DsarAccess) -> [String; 16] {
    [
        "recipient".into(),
        p.partner_id.clone(),
        opt(&p.name),
        opt(&p.kind),
        opt(&p.country),
        opt(&p.dpa_ref),
        rfc3339(a.decided_at),
        opt(&a.shipment_id),
        a.purpose.clone(),
        a.legal_bases
            .iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        joined(&a.consent_ids),
        joined(&a.data_categories),
        String::new(),
        opt(&a.on_behalf_of),
        joined(&a.authorization_ids),
        opt(&a.dpa_id),
    ]
}

fn csv_denied_row(a: &DsarDenied) -> [String; 16] {
    [
        "denied_attempt".into(),
        a.partner_id.clone(),
        opt(&a.name),
        String::new(),
        String::new(),
        String::new(),
        rfc3339(a.decided_at),
        opt(&a.shipment_id),
        a.purpose.clone(),
        String::new(),
        String::new(),
        joined(&a.requested_categories),
        opt(&a.reason),
        opt(&a.on_behalf_of),
        String::new(),
        String::new(),
    ]
}

/// CSV rows without the header line.
fn csv_rows<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = [String; N]>,
) -> Result<String, AppError> {
    let text = csv_text(header, rows)?;
    Ok(text
        .split_once("\r\n")
        .map_or(String::new(), |(_, rows)| rows.to_owned()))
}

impl DsarPlan {
    /// Writes the DSAR through `emit`, piece by piece: the JSON answer (shipments, then each
    /// recipient with all its accesses, then the denied attempts) or its CSV rows, reading one
    /// page of the GDPR tables at a time and the read model for names only while a page is
    /// rendered. A failure part-way ends the output short of its closing: the reader sees an
    /// incomplete document, never a complete-looking one.
    pub async fn write(
        self,
        state: &AppState,
        emit: impl AsyncFnMut(String) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        let mut out = Chunks {
            buf: String::with_capacity(STREAM_CHUNK * 2),
            emit,
        };
        let json = self.format == Format::Json;
        let subject: Vec<ShipmentId> = self
            .shipments
            .iter()
            .map(|s| s.shipment_id.parse())
            .collect::<Result<_, _>>()
            .map_err(AppError::internal)?;
        let of_subject = |outcome: Outcome| filter::AccessFilter {
            shipment_in: Some(subject.clone()),
            outcome: Some(outcome),
            ..filter::AccessFilter::default()
        };
        let tail = self.tail.as_ref();
        if json {
            let shipments: Vec<DsarShipment> = self
                .shipments
                .into_iter()
                .map(|s| DsarShipment {
                    shipment_id: s.shipment_id,
                    carrier: s.carrier,
                    tracking_number: s.tracking_number,
                    shipper_id: s.shipper_id,
                })
                .collect();
            out.push(&format!(
                "{{\"generated_at\":{},\"shipments\":{},\"erasures\":{},\"recipients\":[",
                json_text(&self.generated_at)?,
                json_text(&shipments)?,
                json_text(&self.erasures)?
            ))
            .await?;
        } else {
            out.push(&csv_text(CSV_DSAR_HEADER, std::iter::empty())?)
                .await?;
            let rows = csv_rows(
                CSV_DSAR_HEADER,
                self.erasures.iter().map(|e| {
                    let mut row: [String; 16] = Default::default();
                    row[0] = "erasure".into();
                    row[6] = rfc3339(e.erased_at);
                    row[12] = format!("erased; recorded at log position {}", e.position);
                    row
                }),
            )?;
            out.push(&rows).await?;
        }
        // The recipients, in the order of their first access: one pass over the subject's
        // allowed reads keeps only their ids.
        let mut recipients: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut pages = Pages::new(state, of_subject(Outcome::Allowed), tail);
        while let Some(page) = pages.next().await? {
            for r in page {
                if seen.insert(r.partner_id.clone()) {
                    recipients.push(r.partner_id);
                }
            }
        }
        for (i, partner) in recipients.iter().enumerate() {
            let head = recipient_head(&state.projector.read(), partner);
            if json {
                let head_text = json_text(&head)?;
                let open = head_text.strip_suffix('}').unwrap_or(&head_text);
                out.push(if i == 0 { "" } else { "," }).await?;
                out.push(open).await?;
                out.push(",\"accesses\":[").await?;
            }
            let mut first = true;
            let mut pages = Pages::new(
                state,
                filter::AccessFilter {
                    partner: Some(partner.parse().map_err(AppError::internal)?),
                    ..of_subject(Outcome::Allowed)
                },
                tail,
            );
            while let Some(page) = pages.next().await? {
                let accesses: Vec<DsarAccess> = {
                    let model = state.projector.read();
                    page.into_iter()
                        .map(|r| dsar_access(&model, r))
                        .collect::<Result<_, _>>()?
                };
                let text = if json {
                    json_items(&accesses, &mut first)?
                } else {
                    csv_rows(
                        CSV_DSAR_HEADER,
                        accesses.iter().map(|a| csv_recipient_row(&head, a)),
                    )?
                };
                out.push(&text).await?;
            }
            if json {
                out.push("]}").await?;
            }
        }
        if json {
            out.push("],\"denied_attempts\":[").await?;
        }
        // Denied attempts in log order: those by a tracking number not yet registered came
        // before the parcel was, so before every attempt on the registered shipment.
        // (The tracking filter also selects the registered parcel's rows: those come next.)
        let mut denied = Vec::new();
        if let Some(tracking) = self.unregistered {
            let by_tracking = filter::AccessFilter {
                tracking: Some(tracking),
                outcome: Some(Outcome::Denied),
                ..filter::AccessFilter::default()
            };
            denied.push((by_tracking, true));
        }
        denied.push((of_subject(Outcome::Denied), false));
        let mut first = true;
        for (filter, unregistered_only) in denied {
            let mut pages = Pages::new(state, filter, tail);
            while let Some(page) = pages.next().await? {
                let attempts: Vec<DsarDenied> = {
                    let model = state.projector.read();
                    page.into_iter()
                        .filter(|r| !unregistered_only || r.shipment_id.is_none())
                        .map(|r| dsar_denied(&model, r))
                        .collect::<Result<_, _>>()?
                };
                let text = if json {
                    json_items(&attempts, &mut first)?
                } else {
                    csv_rows(CSV_DSAR_HEADER, attempts.iter().map(csv_denied_row))?
                };
                out.push(&text).await?;
            }
        }
        if json {
            out.push("]}").await?;
        }
        out.finish().await
    }

    /// The whole DSAR as one text (the offline export, and tests).
    pub async fn text(self, state: &AppState) -> Result<String, AppError> {
        let mut text = String::new();
        self.write(state, async |piece: String| {
            text.push_str(&piece);
            Ok(())
        })
        .await?;
        Ok(text)
    }
}

/// `items` as JSON array elements, each after a comma but the very first of the array.
fn json_items<T: Serialize>(items: &[T], first: &mut bool) -> Result<String, AppError> {
    let mut text = String::new();
    for item in items {
        if !std::mem::take(first) {
            text.push(',');
        }
        text.push_str(&json_text(item)?);
    }
    Ok(text)
}

/// `GET /v1/audit/dsar` without HTTP.
#[tracing::instrument(level = "debug", skip_all, fields(role = %caller.role))]
pub async fn dsar_view(
    state: &AppState,
    caller: &Caller,
    query: &str,
) -> Result<DsarPlan, AppError> {
    let q = QueryParams::parse(
        query,
        &[
            "carrier",
            "tracking_number",
            "recipient_ref",
            "format",
            "at_least_as_fresh",
        ],
    )?;
    let format = format(&q, &[Format::Json, Format::Csv])?;
    if !(sees_all(caller) || caller.role == Role::Shipper) {
        return Err(AppError::Forbidden(
            "a DSAR is answered by the controller: privacy officers, regulators, shippers".into(),
        ));
    }
    let carrier: Option<CarrierCode> = q.get("carrier")?;
    let tracking: Option<TrackingNumber> = q.get("tracking_number")?;
    let recipient: Option<RecipientRef> = q.get("recipient_ref")?;
    let asked_tracking = carrier.clone().zip(tracking.clone());
    let key = match (carrier, tracking, recipient) {
        (Some(c), Some(t), None) => SubjectKey::Tracking {
            carrier: c.to_string(),
            tracking_number: t.to_string(),
        },
        (None, None, Some(r)) => SubjectKey::RecipientRef(r.to_string()),
        (Some(_), None, None) => {
            return Err(AppError::invalid(
                "tracking_number",
                "required with carrier",
            ))
        }
        (None, Some(_), None) => {
            return Err(AppError::invalid(
                "carrier",
                "required with tracking_number",
            ))
        }
        (None, None, None) => {
            return Err(AppError::invalid(
                "recipient_ref",
                "name the data subject by carrier + tracking_number or by recipient_ref",
            ))
        }
        _ => {
            return Err(AppError::invalid(
                "recipient_ref",
                "either carrier + tracking_number or recipient_ref, not both",
            ))
        }
    };
    let target = fresh_target(state, &q).await?;
    let applied = state.store.gdpr_position().await?;
    let far = target.get().saturating_sub(applied.get()) > state.config.audit_tail_after;
    let (tail, mut shipments) = if far {
        // Far behind (a load it cannot keep up with): the log answers for what it has not
        // applied, rather than the DSAR waiting for all of it.
        let (behind, registered) =
            tail::Behind::read_with_registrations(state, applied, target).await?;
        let shipments = tail::subject_shipments(state, &key, &behind, registered).await?;
        (Some(behind), shipments)
    } else {
        state.gdpr.catch_up_to(target).await?;
        (None, state.store.gdpr_shipments(&key).await?)
    };
    let erasures = match &key {
        SubjectKey::RecipientRef(subject) if sees_all(caller) => {
            erasures_of(state, subject).await?
        }
        _ => Vec::new(),
    };
    if caller.role == Role::Shipper {
        let me = caller.id.as_shipper().to_string();
        shipments.retain(|s| s.shipper_id == me);
    }
    if shipments.is_empty() && !sees_all(caller) {
        return Err(AppError::not_found());
    }
    let unregistered = asked_tracking.filter(|_| sees_all(caller));
    let mut tail = tail;
    if let Some(behind) = &mut tail {
        let by_tracking = unregistered.clone().map(|t| filter::AccessFilter {
            tracking: Some(t),
            ..filter::AccessFilter::default()
        });
        behind.hold(state, &shipments, by_tracking.as_ref()).await?;
    }
    Ok(DsarPlan {
        content_type: match format {
            Format::Csv => CSV_TYPE,
            _ => "application/json",
        },
        format,
        generated_at: state.clock.now(),
        shipments,
        unregistered,
        erasures,
        tail,
    })
}

/// The erasures that erased `subject` (a recipient reference), from their records.
async fn erasures_of(state: &AppState, subject: &str) -> Result<Vec<DsarErasure>, AppError> {
    let digest = consent_ledger_store::subject_digest(subject);
    let mut erasures = Vec::new();
    for position in state.store.erasures_of_subject(&digest).await? {
        if let Some(event) = state.store.read_range(position, 1).await?.first() {
            erasures.push(DsarErasure {
                position: position.get(),
                erased_at: event.recorded_at,
            });
        }
    }
    Ok(erasures)
}

const CSV_DSAR_HEADER: [&str; 16] = [
    "section",
    "partner_id",
    "name",
    "kind",
    "country",
    "dpa_ref",
    "decided_at",
    "shipment_id",
    "purpose",
    "legal_bases",
    "consent_ids",
    "data_categories",
    "denial_reason",
    "on_behalf_of",
    "authorization_ids",
    "dpa_id",
];

/// One partner's entry in the Art. 30 record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RopaEntry {
    pub partner_id: String,
    pub name: String,
    pub kind: String,
    pub country: String,
    pub dpa_ref: String,
    /// Of the consents granted to it in force at any time in the period.
    pub purposes: Vec<String>,
    pub data_categories: Vec<String>,
    pub legal_bases: Vec<String>,
    /// DPA references its consents name (Art. 28 contracts).
    pub consent_dpa_refs: Vec<String>,
    pub consents_in_force: usize,
    pub allowed_reads: u64,
    pub denied_reads: u64,
    /// Of the allowed reads, those the ledger served itself, by channel (SPEC §14): `webhook`
    /// (tracking deliveries, and the subscription items decided for them), `pull`.
    pub allowed_by_channel: std::collections::BTreeMap<String, u64>,
    /// Its agreements in the DPA register in force at any time in the period (SPEC §16): role,
    /// validity, sub-processors with their countries, transfer mechanism.
    pub dpas: Vec<DpaView>,
    /// The carrier's authorizations of it in force at any time in the period (SPEC §16): the
    /// class of shipments, purposes, categories and legal basis of each, and its DPA.
    pub authorizations: Vec<AuthorizationView>,
}

/// The Art. 30 record of processing for a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ropa {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub partners: Vec<RopaEntry>,
}

/// `GET /v1/audit/ropa` without HTTP.
#[tracing::instrument(level = "debug", skip_all, fields(role = %caller.role))]
pub async fn ropa_view(
    state: &AppState,
    caller: &Caller,
    query: &str,
) -> Result<Rendered, AppError> {
    let q = QueryParams::parse(query, &["from", "to", "format", "at_least_as_fresh"])?;
    let format = format(&q, &[Format::Json, Format::Csv])?;
    if !sees_all(caller) {
        return Err(AppError::Forbidden(
            "the record of processing is for privacy officers and regulators".into(),
        ));
    }
    let from = time_param(&q, "from")?.ok_or_else(|| AppError::invalid("from", "required"))?;
    let to = time_param(&q, "to")?.ok_or_else(|| AppError::invalid("to", "required"))?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    let target = fresh_target(state, &q).await?;
    let behind = {
        // Its position and its counts read with no page applied in between.
        let _still = state.gdpr.hold().await;
        let applied = state.store.gdpr_position().await?;
        (target.get().saturating_sub(applied.get()) > state.config.audit_tail_after).then_some((
            applied,
            state
                .store
                .gdpr_counts(from.timestamp_micros(), to.timestamp_micros())
                .await?,
        ))
    };
    let counts = match behind {
        // Far behind (a load it cannot keep up with): the log's decisions it has not applied
        // are counted from the log, rather than the record waiting for all of them.
        Some((applied, mut counts)) => {
            tail::add_counts(state, applied, target, (from, to), &mut counts).await?;
            counts
        }
        None => {
            state.gdpr.catch_up_to(target).await?;
            state
                .store
                .gdpr_counts(from.timestamp_micros(), to.timestamp_micros())
                .await?
        }
    };
    let answer = build_ropa(state, from, to, counts);
    Ok(match format {
        Format::Csv => Rendered {
            content_type: CSV_TYPE,
            body: ropa_csv(&answer)?,
            next_after: None,
        },
        _ => Rendered {
            content_type: "application/json",
            body: json_text(&answer)?,
            next_after: None,
        },
    })
}

/// Consents read per hold of the read-model lock while the record of processing is built: the
/// decision path waits for the lock, so no scan holds it for more than this many (SPEC §11).
const ROPA_CHUNK: usize = 1_024;

/// What the record of processing gathers of one partner's consents in force in the period.
#[derive(Default)]
struct RopaConsents {
    purposes: std::collections::BTreeSet<String>,
    categories: std::collections::BTreeSet<String>,
    bases: std::collections::BTreeSet<String>,
    dpas: std::collections::BTreeSet<String>,
    in_force: usize,
}

/// Builds the Art. 30 record from the read model, a chunk of consents per hold of its lock (the
/// lock is released between chunks, so decisions go on; a consent granted meanwhile may or may
/// not be counted, as if the record had been made a moment earlier or later).
pub fn build_ropa(
    state: &AppState,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    counts: std::collections::BTreeMap<String, consent_ledger_store::gdpr::PartnerCounts>,
) -> Ropa {
    use std::collections::BTreeMap;
    use std::ops::Bound;
    let mut by_partner: BTreeMap<PrincipalId, RopaConsents> = BTreeMap::new();
    let mut after: Option<ConsentId> = None;
    loop {
        let model = state.projector.read();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut read = 0;
        for (id, c) in model
            .consents
            .range((lower, Bound::Unbounded))
            .take(ROPA_CHUNK)
        {
            after = Some(*id);
            read += 1;
            let starts = c.valid_from.max(c.granted_at);
            let ends = [c.valid_until, c.revocation.as_ref().map(|r| r.revoked_at)]
                .into_iter()
                .flatten()
                .min();
            if starts >= to || ends.is_some_and(|e| e <= from) {
                continue;
            }
            let entry = by_partner.entry(c.partner_id.into()).or_default();
            entry.in_force += 1;
            entry
                .purposes
                .extend(c.purposes.iter().map(|x| x.to_string()));
            entry
                .categories
                .extend(c.data_categories.iter().map(|x| x.to_string()));
            entry.bases.insert(c.legal_basis.to_string());
            entry.dpas.insert(c.dpa_ref.to_string());
        }
        drop(model);
        if read < ROPA_CHUNK {
            break;
        }
    }
    type Partners = Vec<(PrincipalId, String, PartnerProfile)>;
    let mut authorized: BTreeMap<PrincipalId, Vec<AuthorizationView>> = BTreeMap::new();
    let (partners, mut agreements): (Partners, BTreeMap<PrincipalId, Vec<DpaView>>) = {
        let model = state.projector.read();
        let partners = model
            .principals
            .values()
            .filter_map(|p| Some((p.id, p.name.to_string(), p.partner.clone()?)))
            .collect();
        let mut agreements: BTreeMap<PrincipalId, Vec<DpaView>> = BTreeMap::new();
        for d in model.dpas.values() {
            let ends = [d.valid_until, d.terminated_at].into_iter().flatten().min();
            if d.signed_at < to && ends.is_none_or(|e| e > from) {
                agreements
                    .entry(d.partner_id.into())
                    .or_default()
                    .push(d.clone());
            }
        }
        for a in model.authorizations.values() {
            let ends = [a.valid_until, a.revoked_at].into_iter().flatten().min();
            if a.valid_from.max(a.granted_at) < to && ends.is_none_or(|e| e > from) {
                let mut a = a.clone();
                a.status = a.status_at(to);
                authorized.entry(a.partner_id.into()).or_default().push(a);
            }
        }
        (partners, agreements)
    };
    let mut entries: Vec<RopaEntry> = Vec::new();
    for (id, name, profile) in partners {
        let consents = by_partner.remove(&id).unwrap_or_default();
        let n = counts.get(&id.to_string()).cloned().unwrap_or_default();
        let dpas = agreements.remove(&id).unwrap_or_default();
        let authorizations = authorized.remove(&id).unwrap_or_default();
        if consents.in_force == 0
            && n.allowed == 0
            && n.denied == 0
            && dpas.is_empty()
            && authorizations.is_empty()
        {
            continue;
        }
        entries.push(RopaEntry {
            partner_id: id.to_string(),
            name,
            kind: profile.kind.to_string(),
            country: profile.country.to_string(),
            dpa_ref: profile.dpa_ref.to_string(),
            purposes: consents.purposes.into_iter().collect(),
            data_categories: consents.categories.into_iter().collect(),
            legal_bases: consents.bases.into_iter().collect(),
            consent_dpa_refs: consents.dpas.into_iter().collect(),
            consents_in_force: consents.in_force,
            allowed_reads: n.allowed,
            denied_reads: n.denied,
            allowed_by_channel: n.allowed_by_channel,
            dpas,
            authorizations,
        });
    }
    entries.sort_by(|a, b| a.partner_id.cmp(&b.partner_id));
    Ropa {
        from,
        to,
        generated_at: state.clock.now(),
        partners: entries,
    }
}

const CSV_ROPA_HEADER: [&str; 18] = [
    "partner_id",
    "name",
    "kind",
    "country",
    "dpa_ref",
    "purposes",
    "data_categories",
    "legal_bases",
    "consent_dpa_refs",
    "consents_in_force",
    "allowed_reads",
    "denied_reads",
    "webhook_reads",
    "pull_reads",
    "dpa_roles",
    "dpa_sub_processors",
    "dpa_transfer_mechanisms",
    "authorizations",
];

fn ropa_csv(r: &Ropa) -> Result<String, AppError> {
    csv_text(
        CSV_ROPA_HEADER,
        r.partners.iter().map(|p| {
            [
                p.partner_id.clone(),
                p.name.clone(),
                p.kind.clone(),
                p.country.clone(),
                p.dpa_ref.clone(),
                p.purposes.join(";"),
                p.data_categories.join(";"),
                p.legal_bases.join(";"),
                p.consent_dpa_refs.join(";"),
                p.consents_in_force.to_string(),
                p.allowed_reads.to_string(),
                p.denied_reads.to_string(),
                p.allowed_by_channel
                    .get("webhook")
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                p.allowed_by_channel
                    .get("pull")
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                p.dpas
                    .iter()
                    .map(|d| format!("{}:{}", d.reference, d.role))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.dpas
                    .iter()
                    .flat_map(|d| &d.sub_processors)
                    .map(|s| format!("{} ({})", s.name, s.country))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.dpas
                    .iter()
                    .filter_map(|d| d.transfer_mechanism.map(|t| t.to_string()))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.authorizations
                    .iter()
                    .map(|a| format!("{}:{}", a.id, a.legal_basis))
                    .collect::<Vec<_>>()
                    .join(";"),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_like_formulas_are_written_as_text() {
        let rows = [
            [
                "=HYPERLINK(\"https://x.example\",\"open\")".to_owned(),
                "plain".to_owned(),
            ],
            ["+1".to_owned(), "-2".to_owned()],
            ["@SUM(A1)".to_owned(), "\tTab".to_owned()],
            ["\rCR".to_owned(), "a=b".to_owned()],
        ];
        let text = csv_text(["a", "b"], rows.into_iter()).unwrap();
        let cells: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(
            cells,
            [
                ["'=HYPERLINK(\"https://x.example\",\"open\")", "plain"],
                ["'+1", "'-2"],
                ["'@SUM(A1)", "'\tTab"],
                ["'\rCR", "a=b"],
            ]
        );
    }
}

//! `GET /v1/audit/dsar` (SPEC §7, GDPR Art. 15): a data subject's shipments, every recipient of
//! their tracking with what it received and why, the denied requests and the erasures, streamed
//! page after page.

use chrono::{DateTime, Utc};
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, ConsentId, DataCategory, LegalBasis, PrincipalId, RecipientRef,
    Role, ShipmentId, TrackingNumber,
};
use consent_ledger_projections::model::ReadModel;
use consent_ledger_store::gdpr::{AccessFilter, GdprAccess, GdprShipment, SubjectKey};
use serde::Serialize;
use utoipa::ToSchema;

use super::access::{chain, partner_name, ChainLink};
use super::filter::{self, Outcome};
use super::{
    csv_text, format, fresh_target, joined, json_text, list, rfc3339, sees_all, tail, time_of,
    Format, CSV_TYPE,
};
use crate::auth::Caller;
use crate::error::AppError;
use crate::query::QueryParams;
use crate::state::AppState;

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

//! Consent requests (SPEC §3, modelled on UMA 2.0): a partner submits one to a shipper and may
//! withdraw it while pending; the shipper asked approves it (possibly narrower, through
//! [`crate::approvals`]) or denies it; both parties and auditors list and read them.

use chrono::{DateTime, Utc};
use consent_ledger_domain::request::{
    ConsentRequestCommand, ConsentRequestEvent, Narrowing, RequestStatus,
};
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, Purpose, Reason,
    Role, ShipperId,
};
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::model::RequestView;
use consent_ledger_store::StoredEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::approvals;
use crate::auth::Caller;
use crate::error::AppError;
use crate::history::{stream_history, HistoryEntry};
use crate::query::{page, ListQuery, Page};
use crate::state::AppState;
use crate::write::{self, Answer, Created, Positioned, WriteContext};

/// The `status` values a list of requests may be filtered by.
pub const STATUSES: &[&str] = &["pending", "approved", "denied", "withdrawn", "expired"];

/// Who submits a consent request.
pub const REQUESTERS: &[Role] = &[Role::Partner];

/// The consent fields less `partner_id` (the caller is the partner), plus the shipper asked
/// and a justification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub shipper_id: ShipperId,
    pub scope: ConsentScope,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    #[serde(default)]
    pub dpa_ref: Option<DpaRef>,
    #[serde(default, deserialize_with = "crate::query::optional_writable_time")]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::query::optional_writable_time")]
    pub valid_until: Option<DateTime<Utc>>,
    pub justification: Reason,
}

/// What the shipper may narrow when approving; an absent field keeps what was asked.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    #[serde(default)]
    pub purposes: Option<NonEmptySet<Purpose>>,
    #[serde(default)]
    pub data_categories: Option<NonEmptySet<DataCategory>>,
    #[serde(default, deserialize_with = "crate::query::optional_writable_time")]
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Approved {
    pub consent_id: ConsentId,
    pub position: u64,
}

/// A request with its status now (a pending one past its expiry reads `expired`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestOut {
    #[serde(flatten)]
    pub request: RequestView,
    #[serde(rename = "status")]
    pub status_now: RequestStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub request: RequestOut,
    pub history: Vec<HistoryEntry>,
}

/// Who may see a request: the partner who asked, the shipper asked, and auditors (SPEC §2).
pub fn can_see(caller: &Caller, r: &RequestView) -> bool {
    caller.is_auditor()
        || (caller.role == Role::Shipper && r.shipper_id == caller.id.as_shipper())
        || (caller.role == Role::Partner && r.partner_id == caller.id.as_partner())
}

/// The request if the caller may see it (404 otherwise) and may act on it as `role` (403).
fn acting_on(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
    role: Role,
) -> Result<(), AppError> {
    let model = state.projector.read();
    let request = model
        .requests
        .get(&id)
        .filter(|r| can_see(caller, r))
        .ok_or_else(AppError::not_found)?;
    let party = match role {
        Role::Shipper => request.shipper_id.as_uuid(),
        _ => request.partner_id.as_uuid(),
    };
    if caller.role != role || caller.id.as_uuid() != party {
        return Err(AppError::Forbidden(
            match role {
                Role::Shipper => "only the shipper asked approves or denies a request",
                _ => "only the partner who asked withdraws a request",
            }
            .into(),
        ));
    }
    Ok(())
}

/// Whether the caller may approve or deny request `id`: 404 unless it may see it, 403 unless
/// it is the shipper asked. [`approve`] and [`deny`] check this themselves; a transport may
/// check it first, to refuse before reading a body.
pub fn may_answer(state: &AppState, caller: &Caller, id: ConsentRequestId) -> Result<(), AppError> {
    acting_on(state, caller, id, Role::Shipper)
}

/// Whether the caller may withdraw request `id`: 404 unless it may see it, 403 unless it is
/// the partner who asked. [`withdraw`] checks this itself.
pub fn may_withdraw(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
) -> Result<(), AppError> {
    acting_on(state, caller, id, Role::Partner)
}

/// Asks a shipper for a consent (the calling partner); answers the request's id and position.
#[tracing::instrument(level = "debug", skip_all, fields(shipper = %input.shipper_id))]
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    input: SubmitRequest,
    context: WriteContext,
) -> Result<(Created, Answer), AppError> {
    caller.require(REQUESTERS)?;
    let id = ConsentRequestId::from_uuid(state.ids.new_id());
    let command = ConsentRequestCommand::SubmitConsentRequest {
        id,
        partner: caller.id.as_partner(),
        shipper: input.shipper_id,
        scope: input.scope,
        purposes: input.purposes,
        data_categories: input.data_categories,
        legal_basis: input.legal_basis,
        dpa_ref: input.dpa_ref,
        valid_from: input.valid_from,
        valid_until: input.valid_until,
        justification: input.justification,
        ttl: state.config.request_ttl,
    };
    record(state, id, command, context, Created::of).await
}

/// The requests the caller may see, oldest first, filtered by partner, shipper and status.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub fn list(
    state: &AppState,
    caller: &Caller,
    q: &ListQuery<RequestStatus, ConsentRequestId>,
) -> Page<RequestOut> {
    let now = state.clock.now();
    let model = state.projector.read();
    page(
        &model.requests,
        q.after,
        q.limit,
        |r| {
            let status_now = r.status_at(now);
            let wanted = can_see(caller, r) && q.selects(r.partner_id, r.shipper_id, status_now);
            wanted.then(|| RequestOut {
                request: r.clone(),
                status_now,
            })
        },
        |out| out.request.id,
    )
}

/// One request with its history.
#[tracing::instrument(level = "debug", skip_all, fields(request = %id))]
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
) -> Result<RequestDetail, AppError> {
    let history = stream_history(state, "consent_request", &id.to_string()).await?;
    let now = state.clock.now();
    let model = state.projector.read();
    let request = model
        .requests
        .get(&id)
        .filter(|r| can_see(caller, r))
        .ok_or_else(AppError::not_found)?;
    Ok(RequestDetail {
        request: RequestOut {
            request: request.clone(),
            status_now: request.status_at(now),
        },
        history,
    })
}

/// Approves a pending request (the shipper asked), possibly narrower than asked, never wider;
/// answers the consent granted and the grant's position.
#[tracing::instrument(level = "debug", skip_all, fields(request = %id))]
pub async fn approve(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
    input: ApproveRequest,
    context: WriteContext,
) -> Result<(Approved, Answer), AppError> {
    may_answer(state, caller, id)?;
    let narrowing = Narrowing {
        purposes: input.purposes,
        data_categories: input.data_categories,
        valid_until: input.valid_until,
    };
    write::record(
        state,
        context,
        |meta| approvals::approve_then_grant(state, id, narrowing, meta),
        |events, _| {
            let consent_id = events
                .first()
                .and_then(|e| e.decode::<ConsentRequestEvent>().ok())
                .and_then(|e| match e {
                    ConsentRequestEvent::ConsentRequestApproved { consent_id, .. } => {
                        Some(consent_id)
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!("approval event without consent id"))
                })?;
            // The answer's position is the grant's, so that `at_least_as_fresh` with it sees
            // the consent.
            let granted = state
                .projector
                .read()
                .consents
                .get(&consent_id)
                .map(|c| c.position);
            let position = match granted {
                Some(position) => position,
                None => write::last(events)?.position,
            };
            Ok(Approved {
                consent_id,
                position: position.get(),
            })
        },
    )
    .await
}

/// Denies a pending request (the shipper asked), with a reason.
#[tracing::instrument(level = "debug", skip_all, fields(request = %id))]
pub async fn deny(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
    reason: Reason,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    may_answer(state, caller, id)?;
    let now = state.clock.now();
    let (shipper, partner) = {
        let model = state.projector.read();
        let request = model.requests.get(&id).ok_or_else(AppError::not_found)?;
        (request.shipper_id, request.partner_id)
    };
    // The reason is free text (SPEC §12): not in the message.
    let outbox = crate::webhooks::outbox::messages(
        state,
        partner,
        WebhookEventType::ConsentRequestDenied,
        now,
        &serde_json::json!({
            "request_id": id,
            "shipper_id": shipper,
            "partner_id": partner,
            "denied_at": now,
        }),
    )?;
    let command = ConsentRequestCommand::DenyConsentRequest { reason };
    write::record(
        state,
        context,
        |mut meta| async {
            meta.outbox = outbox;
            Ok(state
                .requests
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Positioned::of(events),
    )
    .await
}

/// Withdraws a pending request (the partner who asked).
#[tracing::instrument(level = "debug", skip_all, fields(request = %id))]
pub async fn withdraw(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    may_withdraw(state, caller, id)?;
    record(
        state,
        id,
        ConsentRequestCommand::WithdrawConsentRequest,
        context,
        Positioned::of,
    )
    .await
}

/// Records one command on a request and answers what `render` makes of the committed events
/// (submit: its id; deny, withdraw: its position).
async fn record<T>(
    state: &AppState,
    id: ConsentRequestId,
    command: ConsentRequestCommand,
    context: WriteContext,
    render: fn(&[StoredEvent]) -> Result<T, AppError>,
) -> Result<(T, Answer), AppError> {
    write::record(
        state,
        context,
        |meta| async {
            Ok(state
                .requests
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| render(events),
    )
    .await
}

//! Consent requests (SPEC §3, modelled on UMA 2.0): `POST /v1/consent-requests` (partner),
//! `GET /v1/consent-requests[/{id}]`, and `POST /v1/consent-requests/{id}/approve|deny`
//! (the addressed shipper) and `/withdraw` (the partner).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ledger_domain::consent::ConsentCommand;
use consent_ledger_domain::request::{ConsentRequestCommand, Narrowing, RequestStatus};
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId, Purpose, Reason, Role,
    ShipperId,
};
use consent_ledger_projections::model::RequestView;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::body::{parse_json, path_id, read_body, QueryParams};
use crate::problem::{ApiError, Problem};
use crate::routes::consents::{history_entry, HistoryEntry};
use crate::routes::principals::ReasonBody;
use crate::routes::{page_size, render_created, render_position, Created, Page, Positioned};
use crate::state::AppState;
use crate::write::write;

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
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
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
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Approved {
    pub consent_id: ConsentId,
    pub position: u64,
}

/// A request with its status now (a pending one past its expiry reads `expired`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestOut<'a> {
    #[serde(flatten)]
    pub request: &'a RequestView,
    #[serde(rename = "status")]
    pub status_now: RequestStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestDetail<'a> {
    #[serde(flatten)]
    pub request: RequestOut<'a>,
    pub history: Vec<HistoryEntry>,
}

fn can_see(caller: &Caller, r: &RequestView) -> bool {
    caller.is_auditor()
        || (caller.role == Role::Shipper && r.shipper_id == caller.id.as_shipper())
        || (caller.role == Role::Partner && r.partner_id == caller.id.as_partner())
}

/// The request if the caller may see it (404 otherwise) and may act on it as `role` (403).
fn acting_on(state: &AppState, caller: &Caller, id: ConsentRequestId, role: Role) -> Result<(), ApiError> {
    let model = state.projector.read();
    let request = model.requests.get(&id).filter(|r| can_see(caller, r)).ok_or_else(ApiError::not_found)?;
    let party = match role {
        Role::Shipper => request.shipper_id.as_uuid(),
        _ => request.partner_id.as_uuid(),
    };
    if caller.role != role || caller.id.as_uuid() != party {
        return Err(ApiError::Forbidden(match role {
            Role::Shipper => "only the shipper asked approves or denies a request".into(),
            _ => "only the partner who asked withdraws a request".into(),
        }));
    }
    Ok(())
}

/// Ask a shipper for a consent (partner).
#[utoipa::path(post, path = "/v1/consent-requests", tag = "consent requests", request_body = SubmitRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[post("/v1/consent-requests")]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Partner])?;
    let body = read_body(payload).await?;
    let input: SubmitRequest = parse_json(&body)?;
    let id = ConsentRequestId::from_uuid(Uuid::now_v7());
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
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::CREATED,
        |meta| async { Ok(state.requests.execute(&id.to_string(), command, meta).await?) },
        |events, _| render_created(events),
    )
    .await
}

/// List the requests the caller may see, oldest first.
#[utoipa::path(get, path = "/v1/consent-requests", tag = "consent requests", security(("bearer" = [])),
    params(("status" = Option<RequestStatus>, Query), ("partner_id" = Option<String>, Query), ("shipper_id" = Option<String>, Query),
        ("limit" = Option<usize>, Query), ("after" = Option<String>, Query)),
    responses((status = 200, description = "{items: [request], next_after?}"), (status = 422, body = Problem)))]
#[get("/v1/consent-requests")]
pub async fn list(state: web::Data<AppState>, req: HttpRequest, caller: Caller) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(req.query_string(), &["partner_id", "shipper_id", "status", "limit", "after"])?;
    let partner: Option<PartnerId> = q.get("partner_id")?;
    let shipper: Option<ShipperId> = q.get("shipper_id")?;
    let status: Option<String> = q.get("status")?;
    let status = status
        .map(|s| {
            serde_json::from_value::<RequestStatus>(serde_json::Value::String(s.clone()))
                .ok()
                .filter(|st| *st != RequestStatus::NotSubmitted)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown value `{s}`; expected pending, approved, denied, withdrawn or expired")))
        })
        .transpose()?;
    let limit = page_size(q.get("limit")?)?;
    let after: Option<ConsentRequestId> = q.get("after")?;
    let now = state.clock.now();
    let model = state.projector.read();
    let range = match after {
        Some(after) => model.requests.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
        None => model.requests.range(..),
    };
    let mut items: Vec<RequestOut<'_>> = range
        .map(|(_, r)| r)
        .filter(|r| can_see(&caller, r))
        .filter(|r| partner.is_none_or(|p| r.partner_id == p))
        .filter(|r| shipper.is_none_or(|s| r.shipper_id == s))
        .map(|r| RequestOut { request: r, status_now: r.status_at(now) })
        .filter(|r| status.is_none_or(|s| r.status_now == s))
        .take(limit + 1)
        .collect();
    let next_after = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|r| r.request.id.to_string()).unwrap_or_default()
    });
    Ok(HttpResponse::Ok().json(Page { items, next_after }))
}

/// One request with its history.
#[utoipa::path(get, path = "/v1/consent-requests/{id}", tag = "consent requests", security(("bearer" = [])),
    responses((status = 200, body = RequestDetail), (status = 404, body = Problem)))]
#[get("/v1/consent-requests/{id}")]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    let stored = state.store.read_stream("consent_request", &id.to_string()).await?;
    let now = state.clock.now();
    let model = state.projector.read();
    let request = model.requests.get(&id).filter(|r| can_see(&caller, r)).ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(RequestDetail {
        request: RequestOut { request, status_now: request.status_at(now) },
        history: stored.into_iter().map(history_entry).collect(),
    }))
}

/// Grants the consent an approval creates, then records the approval.
///
/// Two aggregates, two commits: the consent first, carrying its originating request, so that a
/// crash in between leaves a consent that names its request rather than an approval with no
/// consent; a retry finds that consent and reuses it. If the approval then loses a race (the
/// partner withdrew), the fresh consent is revoked at once and the refusal returned.
async fn approve_and_grant(
    state: &AppState,
    id: ConsentRequestId,
    narrowing: Narrowing,
    meta: CommandMeta,
) -> Result<Vec<StoredEvent>, ApiError> {
    let request = state.requests.load(&id.to_string()).await?;
    let terms = request.approval(&narrowing, state.clock.now())?;
    let existing = state.projector.read().consent_for_request(id).map(|c| c.id);
    let grant_meta = CommandMeta { idempotency: None, ..meta.clone() };
    let consent_id = match existing {
        Some(consent_id) => consent_id,
        None => {
            let consent_id = ConsentId::from_uuid(Uuid::now_v7());
            let grant = ConsentCommand::GrantConsent {
                id: consent_id,
                shipper: terms.shipper,
                partner: terms.partner,
                scope: terms.scope,
                purposes: terms.purposes,
                data_categories: terms.data_categories,
                legal_basis: terms.legal_basis,
                dpa_ref: terms.dpa_ref,
                valid_from: terms.valid_from,
                valid_until: terms.valid_until,
                origin_request: Some(id),
            };
            state.consents.execute(&consent_id.to_string(), grant, grant_meta.clone()).await?;
            consent_id
        }
    };
    let command = ConsentRequestCommand::ApproveConsentRequest { consent_id, narrowing };
    match state.requests.execute(&id.to_string(), command, meta).await {
        Ok(events) => Ok(events),
        Err(refused) => {
            let undo = ConsentCommand::RevokeConsent {
                revoked_by: grant_meta.provenance.actor.parse().unwrap_or_else(|_| terms.shipper.into()),
                reason: Reason::parse("the request could not be approved; the consent granted for it is withdrawn")
                    .map_err(|e| ApiError::Internal(e.into()))?,
            };
            if let Err(e) = state.consents.execute(&consent_id.to_string(), undo, grant_meta).await {
                tracing::error!(error = %e, %consent_id, "could not revoke the consent of a failed approval");
            }
            Err(refused.into())
        }
    }
}

/// Approve a pending request (the shipper asked), possibly narrower than asked, never wider.
#[utoipa::path(post, path = "/v1/consent-requests/{id}/approve", tag = "consent requests", request_body = ApproveRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 200, body = Approved), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "not pending or expired"), (status = 422, body = Problem, description = "widens the request")))]
#[post("/v1/consent-requests/{id}/approve")]
pub async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    acting_on(&state, &caller, id, Role::Shipper)?;
    let body = read_body(payload).await?;
    let input: ApproveRequest = parse_json(&body)?;
    let narrowing = Narrowing { purposes: input.purposes, data_categories: input.data_categories, valid_until: input.valid_until };
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |meta| approve_and_grant(&state, id, narrowing, meta),
        |events, _| {
            let approved = events
                .first()
                .and_then(|e| e.payload.pointer("/ConsentRequestApproved/consent_id"))
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("approval event without consent id")))?;
            Ok(json!({ "consent_id": approved, "position": super::render_position(events)?["position"] }))
        },
    )
    .await
}

/// Deny a pending request (the shipper asked), with a reason.
#[utoipa::path(post, path = "/v1/consent-requests/{id}/deny", tag = "consent requests", request_body = ReasonBody,
    security(("bearer" = [])),
    responses((status = 200, body = Positioned), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[post("/v1/consent-requests/{id}/deny")]
pub async fn deny(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    acting_on(&state, &caller, id, Role::Shipper)?;
    let body = read_body(payload).await?;
    let input: ReasonBody = parse_json(&body)?;
    let command = ConsentRequestCommand::DenyConsentRequest { reason: input.reason };
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |meta| async { Ok(state.requests.execute(&id.to_string(), command, meta).await?) },
        |events, _| render_position(events),
    )
    .await
}

/// Withdraw a pending request (the partner who asked).
#[utoipa::path(post, path = "/v1/consent-requests/{id}/withdraw", tag = "consent requests",
    security(("bearer" = [])),
    responses((status = 200, body = Positioned), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[post("/v1/consent-requests/{id}/withdraw")]
pub async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    acting_on(&state, &caller, id, Role::Partner)?;
    let body = read_body(payload).await?;
    let _: NoBody = parse_json(&body)?;
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |meta| async { Ok(state.requests.execute(&id.to_string(), ConsentRequestCommand::WithdrawConsentRequest, meta).await?) },
        |events, _| render_position(events),
    )
    .await
}

/// A call that takes no body accepts `{}` or nothing, and names any field sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

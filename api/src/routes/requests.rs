//! Consent requests (SPEC §3, modelled on UMA 2.0): `POST /v1/consent-requests` (partner),
//! `GET /v1/consent-requests[/{id}]`, and `POST /v1/consent-requests/{id}/approve|deny`
//! (the addressed shipper) and `/withdraw` (the partner).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ledger_domain::request::{
    ConsentRequestCommand, ConsentRequestEvent, Narrowing, RequestStatus,
};
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, Purpose, Reason,
    Role, ShipperId,
};
use consent_ledger_projections::model::RequestView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use consent_ledger_app::approvals;

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{render_created, render_position, Created, NoBody, Positioned, ReasonBody};
use crate::write::write;
use consent_ledger_app::history::{stream_history, HistoryEntry};
use consent_ledger_app::query::path_id;
use consent_ledger_app::query::{page, ListQuery};
use consent_ledger_app::state::AppState;

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
fn acting_on(
    state: &AppState,
    caller: &Caller,
    id: ConsentRequestId,
    role: Role,
) -> Result<(), ApiError> {
    let model = state.projector.read();
    let request = model
        .requests
        .get(&id)
        .filter(|r| can_see(caller, r))
        .ok_or_else(ApiError::not_found)?;
    let party = match role {
        Role::Shipper => request.shipper_id.as_uuid(),
        _ => request.partner_id.as_uuid(),
    };
    if caller.role != role || caller.id.as_uuid() != party {
        return Err(ApiError::forbidden(match role {
            Role::Shipper => "only the shipper asked approves or denies a request",
            _ => "only the partner who asked withdraws a request",
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
        |meta| async {
            Ok(state
                .requests
                .execute(&id.to_string(), command, meta)
                .await?)
        },
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
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery<RequestStatus, ConsentRequestId> = ListQuery::parse(
        req.query_string(),
        &["pending", "approved", "denied", "withdrawn", "expired"],
    )?;
    let now = state.clock.now();
    let model = state.projector.read();
    let page = page(
        &model.requests,
        q.after,
        q.limit,
        |r| {
            let out = RequestOut {
                request: r,
                status_now: r.status_at(now),
            };
            let wanted = can_see(&caller, r)
                && q.partner.is_none_or(|p| r.partner_id == p)
                && q.shipper.is_none_or(|s| r.shipper_id == s)
                && q.status.is_none_or(|s| out.status_now == s);
            wanted.then_some(out)
        },
        |out| out.request.id,
    );
    Ok(HttpResponse::Ok().json(page))
}

/// One request with its history.
#[utoipa::path(get, path = "/v1/consent-requests/{id}", tag = "consent requests", security(("bearer" = [])),
    responses((status = 200, body = RequestDetail), (status = 404, body = Problem)))]
#[get("/v1/consent-requests/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    let history = stream_history(&state, "consent_request", &id.to_string()).await?;
    let now = state.clock.now();
    let model = state.projector.read();
    let request = model
        .requests
        .get(&id)
        .filter(|r| can_see(&caller, r))
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(RequestDetail {
        request: RequestOut {
            request,
            status_now: request.status_at(now),
        },
        history,
    }))
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
    let narrowing = Narrowing {
        purposes: input.purposes,
        data_categories: input.data_categories,
        valid_until: input.valid_until,
    };
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |meta| async { Ok(approvals::approve_then_grant(&state, id, narrowing, meta).await?) },
        |events, _| {
            let consent_id = events
                .first()
                .and_then(|e| e.payload.decode::<ConsentRequestEvent>().ok())
                .and_then(|e| match e {
                    ConsentRequestEvent::ConsentRequestApproved { consent_id, .. } => {
                        Some(consent_id)
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!("approval event without consent id"))
                })?;
            // The answer's position is the grant's, so that `at_least_as_fresh` with it sees
            // the consent.
            let granted = state
                .projector
                .read()
                .consents
                .get(&consent_id)
                .map(|c| c.position);
            let position = granted.unwrap_or(crate::shapes::last(events)?.position);
            Ok(json!({ "consent_id": consent_id, "position": position }))
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
    let command = ConsentRequestCommand::DenyConsentRequest {
        reason: input.reason,
    };
    record(&state, &req, &caller, &body, id, command).await
}

/// Records one command on a request and answers its position (deny, withdraw).
async fn record(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    body: &[u8],
    id: ConsentRequestId,
    command: ConsentRequestCommand,
) -> Result<HttpResponse, ApiError> {
    write(
        state,
        req,
        caller,
        body,
        StatusCode::OK,
        |meta| async {
            Ok(state
                .requests
                .execute(&id.to_string(), command, meta)
                .await?)
        },
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
    record(
        &state,
        &req,
        &caller,
        &body,
        id,
        ConsentRequestCommand::WithdrawConsentRequest,
    )
    .await
}

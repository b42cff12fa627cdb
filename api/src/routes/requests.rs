//! Consent requests (SPEC §3, modelled on UMA 2.0): `POST /v1/consent-requests` (partner),
//! `GET /v1/consent-requests[/{id}]`, and `POST /v1/consent-requests/{id}/approve|deny`
//! (the addressed shipper) and `/withdraw` (the partner): parse, call
//! [`consent_ledger_app::requests`], render.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::query::{path_id, ListQuery};
use consent_ledger_app::requests::{
    self, ApproveRequest, Approved, RequestDetail, SubmitRequest, REQUESTERS, STATUSES,
};
use consent_ledger_app::state::AppState;
use consent_ledger_domain::request::RequestStatus;
use consent_ledger_domain::values::ConsentRequestId;

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{Created, NoBody, Positioned, ReasonBody};
use crate::write::{context, respond};

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
    // The role before the body: a caller who may not ask hears 403 whatever it sent.
    caller.require(REQUESTERS)?;
    let body = read_body(payload).await?;
    let input: SubmitRequest = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (created, answer) = requests::submit(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &created, answer))
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
    let q: ListQuery<RequestStatus, ConsentRequestId> =
        ListQuery::parse(req.query_string(), STATUSES)?;
    Ok(HttpResponse::Ok().json(requests::list(&state, &caller, &q)))
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
    Ok(HttpResponse::Ok().json(requests::get(&state, &caller, id).await?))
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
    // 404/403 before the body, as for a role.
    requests::may_answer(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let input: ApproveRequest = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (approved, answer) = requests::approve(&state, &caller, id, input, context).await?;
    Ok(respond(StatusCode::OK, &approved, answer))
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
    requests::may_answer(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let input: ReasonBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) = requests::deny(&state, &caller, id, input.reason, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
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
    requests::may_withdraw(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let _: NoBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) = requests::withdraw(&state, &caller, id, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

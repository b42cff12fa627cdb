//! Consent requests (SPEC §3, modelled on UMA 2.0): `POST /v1/consent-requests` (partner),
//! `GET /v1/consent-requests[/{id}]`, and `POST /v1/consent-requests/{id}/approve|deny`
//! (the addressed shipper) and `/withdraw` (the partner): parse, call
//! [`consent_ledger_app::requests`], render.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::query::{path_id, ListQuery, Page};
use consent_ledger_app::requests::{
    self, ApproveRequest, Approved, RequestDetail, RequestOut, SubmitRequest, REQUESTERS, STATUSES,
};
use consent_ledger_app::state::AppState;
use consent_ledger_domain::request::RequestStatus;
use consent_ledger_domain::values::{ConsentRequestId, PartnerId, ShipperId};

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{Created, NoBody, Positioned, ReasonBody};
use crate::write::{context, respond};

/// Ask a shipper for a consent (partner).
#[utoipa::path(post, path = "/v1/consent-requests", tag = "consent requests", operation_id = "submit_request",
    request_body = SubmitRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 201, body = Created),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`partner-suspended`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
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
#[utoipa::path(get, path = "/v1/consent-requests", tag = "consent requests", operation_id = "list_requests",
    security(("bearer" = [])),
    params(
        ("status" = Option<RequestStatus>, Query, description = "the requests in this status now"),
        ("partner_id" = Option<PartnerId>, Query, description = "the requests of this partner"),
        ("shipper_id" = Option<ShipperId>, Query, description = "the requests addressed to this shipper"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "items per page, default 100"),
        ("after" = Option<ConsentRequestId>, Query, description = "cursor: the next_after of the previous page")),
    responses((status = 200, body = Page<RequestOut>, description = "one page, oldest first"),
        (status = 401, response = err::Unauthorized), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
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
#[utoipa::path(get, path = "/v1/consent-requests/{id}", tag = "consent requests", operation_id = "get_request",
    security(("bearer" = [])), params(("id" = ConsentRequestId, Path, description = "the request's id")),
    responses((status = 200, body = RequestDetail), (status = 401, response = err::Unauthorized),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
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
#[utoipa::path(post, path = "/v1/consent-requests/{id}/approve", tag = "consent requests",
    operation_id = "approve_request", request_body = ApproveRequest, security(("bearer" = [])),
    params(("id" = ConsentRequestId, Path, description = "the request's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Approved),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`request-not-pending`, `request-expired`, `partner-suspended`, \
                           `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
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
#[utoipa::path(post, path = "/v1/consent-requests/{id}/deny", tag = "consent requests",
    operation_id = "deny_request", request_body = ReasonBody, security(("bearer" = [])),
    params(("id" = ConsentRequestId, Path, description = "the request's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`request-not-pending`, `request-expired`, `idempotency-key-in-flight` or \
                           `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
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
    operation_id = "withdraw_request", request_body(content = Option<NoBody>, description = "nothing, or `{}`"),
    security(("bearer" = [])),
    params(("id" = ConsentRequestId, Path, description = "the request's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`request-not-pending`, `request-expired`, `idempotency-key-in-flight` or \
                           `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
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

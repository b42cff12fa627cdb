//! `POST /v1/consents`, `GET /v1/consents`, `GET /v1/consents/{id}` (with its history),
//! `GET /v1/consents/{id}/receipt`, `POST /v1/consents/{id}/revoke`: parse, call
//! [`consent_ledger_app::consents`], render.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::consents::{
    self, ConsentDetail, ConsentOut, ConsentReceipt, GrantConsent, GRANTORS, STATUSES,
};
use consent_ledger_app::query::{path_id, ListQuery, Page};
use consent_ledger_app::state::AppState;
use consent_ledger_domain::values::{ConsentId, PartnerId, ShipperId};
use consent_ledger_projections::model::ConsentStatus;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{Created, Positioned, ReasonBody};
use crate::write::{context, respond};

/// Grant a consent (shipper).
#[utoipa::path(post, path = "/v1/consents", tag = "consents", operation_id = "grant_consent",
    request_body = GrantConsent, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 201, body = Created),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`partner-suspended` (`field` is `partner_id`), `idempotency-key-in-flight` or \
                           `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/consents")]
pub async fn grant(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The role before the body: a caller who may not grant hears 403 whatever it sent.
    caller.require(GRANTORS)?;
    let body = read_body(payload).await?;
    let input: GrantConsent = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (created, answer) = consents::grant(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &created, answer))
}

/// List the consents the caller may see, oldest first, filtered by partner, shipper and status.
#[utoipa::path(get, path = "/v1/consents", tag = "consents", operation_id = "list_consents",
    security(("bearer" = [])),
    params(
        ("partner_id" = Option<PartnerId>, Query, description = "the consents granted to this partner"),
        ("shipper_id" = Option<ShipperId>, Query, description = "the consents this shipper granted"),
        ("status" = Option<ConsentStatus>, Query, description = "the consents in this status now"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "items per page, default 100"),
        ("after" = Option<ConsentId>, Query, description = "cursor: the next_after of the previous page")),
    responses((status = 200, body = Page<ConsentOut>, description = "one page, oldest first"),
        (status = 401, response = err::Unauthorized), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/consents")]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery<ConsentStatus, ConsentId> = ListQuery::parse(req.query_string(), STATUSES)?;
    Ok(HttpResponse::Ok().json(consents::list(&state, &caller, &q)))
}

/// One consent with its full history (grant, revocation with reason and actor) and the
/// request it answered.
#[utoipa::path(get, path = "/v1/consents/{id}", tag = "consents", operation_id = "get_consent",
    security(("bearer" = [])), params(("id" = ConsentId, Path, description = "the consent's id")),
    responses((status = 200, body = ConsentDetail), (status = 401, response = err::Unauthorized),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/consents/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(consents::get(&state, &caller, id).await?))
}

/// Revoke a consent (its shipper). Effective at commit: no decision committed after the answer
/// allows through it (SPEC §5.2).
#[utoipa::path(post, path = "/v1/consents/{id}/revoke", tag = "consents", operation_id = "revoke_consent",
    request_body = ReasonBody, security(("bearer" = [])),
    params(("id" = ConsentId, Path, description = "the consent's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-revoked`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/consents/{id}/revoke")]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentId = path_id(&id, "id")?;
    // 404/403 before the body, as for a role.
    consents::may_revoke(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let input: ReasonBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) = consents::revoke(&state, &caller, id, input.reason, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

/// The consent's receipt (ISO/IEC TS 27560 field shape), signed with the log key.
#[utoipa::path(get, path = "/v1/consents/{id}/receipt", tag = "consents", operation_id = "consent_receipt",
    security(("bearer" = [])), params(("id" = ConsentId, Path, description = "the consent's id")),
    responses((status = 200, body = ConsentReceipt), (status = 401, response = err::Unauthorized),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/consents/{id}/receipt")]
pub async fn receipt(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(consents::receipt(&state, &caller, id).await?))
}

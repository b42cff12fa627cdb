//! `/v1/authorizations` (SPEC §16): carrier authorizations of tracking intermediaries, and
//! shippers' objections to them. The use cases are [`consent_ledger_app::authorizations`].

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::authorizations::{
    self, AuthorizationList, GrantAuthorization, ListFilter, RevokeAuthorization, READERS,
};
use consent_ledger_app::query::{path_id, QueryParams};
use consent_ledger_app::state::AppState;
use consent_ledger_app::write::{Created, Positioned};
use consent_ledger_domain::values::{AuthorizationId, PartnerId, Role, ShipperId};
use consent_ledger_projections::authorization::{AuthorizationStatus, AuthorizationView};

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::ReasonBody;
use crate::write::{context, respond};

/// Authorize a tracking intermediary (admin): the partner, the DPA of the register it rests on
/// (that partner's, in force), which shipments (carriers, destination countries, shippers),
/// purposes and categories, the legal basis (never consent) and the period. Indexed once,
/// never fanned out per shipper or shipment; the partner is told (`authorization.granted`).
#[utoipa::path(post, path = "/v1/authorizations", tag = "authorizations", operation_id = "grant_authorization",
    request_body = GrantAuthorization, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 201, body = Created),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/authorizations")]
pub async fn grant(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = read_body(payload).await?;
    let input: GrantAuthorization = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (created, answer) = authorizations::grant(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &created, answer))
}

/// The authorizations the caller may see, oldest first: a partner its own; a shipper every
/// one that can cover its shipments (Art. 13/14 transparency), with its own objection;
/// privacy officers, regulators and admins all.
#[utoipa::path(get, path = "/v1/authorizations", tag = "authorizations", operation_id = "list_authorizations",
    security(("bearer" = [])),
    params(("partner_id" = Option<PartnerId>, Query, description = "one partner's"),
        ("shipper_id" = Option<ShipperId>, Query, description = "those that can cover this shipper's shipments"),
        ("status" = Option<AuthorizationStatus>, Query, description = "those in this status now")),
    responses((status = 200, body = AuthorizationList), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/authorizations")]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(READERS)?;
    let q = QueryParams::parse(req.query_string(), &["partner_id", "shipper_id", "status"])?;
    let filter = ListFilter {
        partner: q.get("partner_id")?,
        shipper: q.get("shipper_id")?,
        status: q.get("status")?,
    };
    Ok(HttpResponse::Ok().json(authorizations::list(&state, &caller, filter)?))
}

/// One authorization; one the caller may not see answers 404.
#[utoipa::path(get, path = "/v1/authorizations/{id}", tag = "authorizations", operation_id = "get_authorization",
    security(("bearer" = [])), params(("id" = AuthorizationId, Path, description = "the authorization's id")),
    responses((status = 200, body = AuthorizationView), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/authorizations/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AuthorizationId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(authorizations::get(&state, &caller, id)?))
}

/// Revoke an authorization (admin), `{"reason"?}`: effective at commit, on every node (SPEC
/// §5.2); the partner is told (`authorization.revoked`).
#[utoipa::path(post, path = "/v1/authorizations/{id}/revoke", tag = "authorizations", operation_id = "revoke_authorization",
    request_body = RevokeAuthorization, security(("bearer" = [])),
    params(("id" = AuthorizationId, Path, description = "the authorization's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-revoked`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/authorizations/{id}/revoke")]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id: AuthorizationId = path_id(&id, "id")?;
    authorizations::get(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let input: RevokeAuthorization = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) = authorizations::revoke(&state, &caller, id, input, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

/// Object to an authorization (a shipper it can cover, GDPR Art. 21), `{"reason"}`: its
/// shipments are excluded from the commit on, on every node (SPEC §5.2) — decisions on them
/// answer `shipper_objected`. The partner is told, without the reason
/// (`authorization.objected`).
#[utoipa::path(post, path = "/v1/authorizations/{id}/objection", tag = "authorizations", operation_id = "object_to_authorization",
    request_body = ReasonBody, security(("bearer" = [])),
    params(("id" = AuthorizationId, Path, description = "the authorization's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-objected`, `already-revoked`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/authorizations/{id}/objection")]
pub async fn object(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: AuthorizationId = path_id(&id, "id")?;
    authorizations::may_object(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let input: ReasonBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) =
        authorizations::object(&state, &caller, id, input.reason, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

/// Withdraw one's objection (its shipper): the authorization covers its shipments again.
#[utoipa::path(delete, path = "/v1/authorizations/{id}/objection", tag = "authorizations", operation_id = "withdraw_objection",
    security(("bearer" = [])),
    params(("id" = AuthorizationId, Path, description = "the authorization's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`no-objection`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[delete("/v1/authorizations/{id}/objection")]
pub async fn withdraw_objection(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AuthorizationId = path_id(&id, "id")?;
    authorizations::may_object(&state, &caller, id)?;
    let context = context(&req, &caller, b"")?;
    let (positioned, answer) =
        authorizations::withdraw_objection(&state, &caller, id, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

//! `POST /v1/principals`, suspension and reactivation (admin), token rotation (admin, or a
//! principal for itself), `GET /v1/me`, `GET /v1/partners`: parse, call
//! [`consent_ledger_app::principals`], render.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::principals::{self, CreatePrincipal, CreatedPrincipal, ADMINS};
use consent_ledger_app::query::path_id;
use consent_ledger_app::state::AppState;
use consent_ledger_domain::values::PrincipalId;
use consent_ledger_projections::model::PrincipalView;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{NoBody, ReasonBody};
use crate::write::{context, respond};

/// Register a principal (admin). A partner's and a shipper's id is its principal id.
///
/// With an `Idempotency-Key`, a retry does not create a second principal; since the token is
/// never stored, the retry answers 409 `token-shown-once` naming the principal made first.
#[utoipa::path(post, path = "/v1/principals", tag = "principals", operation_id = "create_principal",
    request_body = CreatePrincipal, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses(
        (status = 201, body = CreatedPrincipal),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`token-shown-once` (a retry with the same Idempotency-Key: the token is not shown \
                           again), `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/principals")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The role before the body: a caller who may not register hears 403 whatever it sent.
    caller.require(ADMINS)?;
    let body = read_body(payload).await?;
    let input: CreatePrincipal = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (created, answer) = principals::create(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &created, answer))
}

/// Issue a new bearer token (an admin for any principal; any principal for itself). The old
/// token is refused from this answer on, on every node. The new token is shown this once: a
/// retry with the same `Idempotency-Key` answers 409 `token-shown-once`.
#[utoipa::path(post, path = "/v1/principals/{id}/rotate-token", tag = "principals", operation_id = "rotate_principal_token",
    request_body(content = Option<NoBody>, description = "nothing, or `{}`"), security(("bearer" = [])),
    params(("id" = PrincipalId, Path, description = "the principal's id (any other than the caller's own: admins only; else 404)"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = CreatedPrincipal, description = "the principal's id and its new token, shown this once"),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 404, response = err::NotFound), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`token-shown-once` (a retry of a rotation), `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/principals/{id}/rotate-token")]
pub async fn rotate_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: PrincipalId = path_id(&id, "id")?;
    let body = read_body(payload).await?;
    let _: NoBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (rotated, answer) = principals::rotate_token(&state, &caller, id, context).await?;
    Ok(respond(StatusCode::OK, &rotated, answer))
}

/// Suspend a principal of any role (admin): its token answers 401 from this answer on, and a
/// suspended partner is also denied every decision and can receive no grant. An admin cannot
/// suspend itself.
#[utoipa::path(post, path = "/v1/principals/{id}/suspend", tag = "principals", operation_id = "suspend_principal",
    request_body = ReasonBody, security(("bearer" = [])),
    params(("id" = PrincipalId, Path, description = "the principal's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = crate::shapes::Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`invalid-state` (already suspended), `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/principals/{id}/suspend")]
pub async fn suspend(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(ADMINS)?;
    let id: PrincipalId = path_id(&id, "id")?;
    let body = read_body(payload).await?;
    let input: ReasonBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) =
        principals::suspend(&state, &caller, id, input.reason, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

/// Reactivate a suspended principal (admin): its current token is accepted again.
#[utoipa::path(post, path = "/v1/principals/{id}/reactivate", tag = "principals", operation_id = "reactivate_principal",
    request_body(content = Option<NoBody>, description = "nothing, or `{}`"), security(("bearer" = [])),
    params(("id" = PrincipalId, Path, description = "the principal's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = crate::shapes::Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`invalid-state` (not suspended), `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/principals/{id}/reactivate")]
pub async fn reactivate(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(ADMINS)?;
    let id: PrincipalId = path_id(&id, "id")?;
    let body = read_body(payload).await?;
    let _: NoBody = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) = principals::reactivate(&state, &caller, id, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/v1/me", tag = "principals", operation_id = "me", security(("bearer" = [])),
    responses((status = 200, body = PrincipalView), (status = 401, response = err::Unauthorized),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/me")]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(principals::me(&state, &caller)?))
}

/// The partner directory: every partner's id, name, kind, country, DPA reference and status,
/// so that a shipper can find whom to grant. Partners do not see each other.
#[utoipa::path(get, path = "/v1/partners", tag = "principals", operation_id = "list_partners", security(("bearer" = [])),
    responses((status = 200, body = Vec<PrincipalView>), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 429, response = err::TooManyRequests),
        (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/partners")]
pub async fn partners(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(principals::partners(&state, &caller)?))
}

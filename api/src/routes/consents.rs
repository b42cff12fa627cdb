//! `POST /v1/consents`, `GET /v1/consents`, `GET /v1/consents/{id}` (with its history),
//! `GET /v1/consents/{id}/receipt`, `POST /v1/consents/{id}/revoke`: parse, call
//! [`consent_ledger_app::consents`], render.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::consents::{
    self, ConsentDetail, ConsentReceipt, GrantConsent, GRANTORS, STATUSES,
};
use consent_ledger_app::query::{path_id, ListQuery};
use consent_ledger_app::state::AppState;
use consent_ledger_domain::values::ConsentId;
use consent_ledger_projections::model::ConsentStatus;

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{Created, Positioned, ReasonBody};
use crate::write::{context, respond};

/// Grant a consent (shipper).
#[utoipa::path(post, path = "/v1/consents", tag = "consents", request_body = GrantConsent,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = Created), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "partner suspended"), (status = 422, body = Problem)))]
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
#[utoipa::path(get, path = "/v1/consents", tag = "consents", security(("bearer" = [])),
    params(
        ("partner_id" = Option<String>, Query), ("shipper_id" = Option<String>, Query),
        ("status" = Option<ConsentStatus>, Query), ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
        ("after" = Option<String>, Query, description = "cursor: the next_after of the previous page")),
    responses((status = 200, description = "{items: [consent], next_after?}"), (status = 422, body = Problem)))]
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
#[utoipa::path(get, path = "/v1/consents/{id}", tag = "consents", security(("bearer" = [])),
    responses((status = 200, body = ConsentDetail), (status = 404, body = Problem), (status = 422, body = Problem)))]
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
#[utoipa::path(post, path = "/v1/consents/{id}/revoke", tag = "consents", request_body = ReasonBody,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 200, body = Positioned), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already revoked"), (status = 422, body = Problem)))]
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
#[utoipa::path(get, path = "/v1/consents/{id}/receipt", tag = "consents", security(("bearer" = [])),
    responses((status = 200, body = ConsentReceipt), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[get("/v1/consents/{id}/receipt")]
pub async fn receipt(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConsentId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(consents::receipt(&state, &caller, id).await?))
}

//! `/v1/dpas` (SPEC §16): the carrier's register of data processing agreements. The use cases
//! are [`consent_ledger_app::dpas`].

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::dpas::{self, DpaList, RegisterDpa, TerminateDpa, READERS};
use consent_ledger_app::query::{path_id, QueryParams};
use consent_ledger_app::state::AppState;
use consent_ledger_app::write::{Created, Positioned};
use consent_ledger_domain::values::{DpaId, PartnerId, Role};
use consent_ledger_projections::model::DpaView;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::write::{context, respond};

/// Register a data processing agreement (admin): the partner, the reference its `dpa_ref`
/// names, its role (processor, independent or joint controller), when it was signed and until
/// when it holds, its sub-processors with their countries, the transfer mechanism and the
/// signed document's SHA-256. Carrier authorizations rest on one in force.
#[utoipa::path(post, path = "/v1/dpas", tag = "dpas", operation_id = "register_dpa",
    request_body = RegisterDpa, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 201, body = Created),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/dpas")]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = read_body(payload).await?;
    let input: RegisterDpa = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (created, answer) = dpas::register(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &created, answer))
}

/// The register: a partner's own agreements; privacy officers, regulators and admins every
/// one, or one partner's with `partner_id`.
#[utoipa::path(get, path = "/v1/dpas", tag = "dpas", operation_id = "list_dpas",
    security(("bearer" = [])),
    params(("partner_id" = Option<PartnerId>, Query, description = "one partner's")),
    responses((status = 200, body = DpaList), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/dpas")]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(READERS)?;
    let q = QueryParams::parse(req.query_string(), &["partner_id"])?;
    let partner: Option<PartnerId> = q.get("partner_id")?;
    Ok(HttpResponse::Ok().json(dpas::list(&state, &caller, partner)?))
}

/// One agreement; another partner's answers 404 to a partner.
#[utoipa::path(get, path = "/v1/dpas/{id}", tag = "dpas", operation_id = "get_dpa",
    security(("bearer" = [])), params(("id" = DpaId, Path, description = "the DPA's id")),
    responses((status = 200, body = DpaView), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/dpas/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: DpaId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(dpas::get(&state, &caller, id)?))
}

/// Terminate an agreement (admin), `{"reason"?}`: effective at commit, on every node (SPEC
/// §5.2); it is in force nowhere after the answer.
#[utoipa::path(post, path = "/v1/dpas/{id}/terminate", tag = "dpas", operation_id = "terminate_dpa",
    request_body = TerminateDpa, security(("bearer" = [])),
    params(("id" = DpaId, Path, description = "the DPA's id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Positioned),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-terminated`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/dpas/{id}/terminate")]
pub async fn terminate(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id: DpaId = path_id(&id, "id")?;
    dpas::get(&state, &caller, id)?;
    let body = read_body(payload).await?;
    let input: TerminateDpa = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (positioned, answer) = dpas::terminate(&state, &caller, id, input, context).await?;
    Ok(respond(StatusCode::OK, &positioned, answer))
}

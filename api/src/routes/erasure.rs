//! `POST /v1/shipments/{id}/erase` and `POST /v1/subjects/erase` (SPEC §12): the use cases are
//! [`consent_ledger_app::erasure`].

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use consent_ledger_app::erasure::{self, EraseShipment, EraseSubject, Erased, ERASERS};
use consent_ledger_app::query::path_id;
use consent_ledger_app::state::AppState;
use consent_ledger_domain::values::ShipmentId;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::write::{context, respond};

/// Erase a shipment's personal data (Art. 17): its tracking number, recipient reference and
/// the free texts of consents and requests scoped to it. Records `PersonalDataErased`; every
/// proof stays valid, views show `{"erased":true}` in place of the values, and decisions by
/// the tracking number answer `unknown_shipment`. Privacy officers and admins.
#[utoipa::path(post, path = "/v1/shipments/{id}/erase", tag = "erasure", operation_id = "erase_shipment",
    request_body = EraseShipment, security(("bearer" = [])),
    params(("id" = ShipmentId, Path, description = "the shipment's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Erased),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout), (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `idempotency-key-reused`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/shipments/{id}/erase")]
pub async fn erase_shipment(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(ERASERS)?;
    let id: ShipmentId = path_id(&id, "id")?;
    let body = read_body(payload).await?;
    let input: EraseShipment = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let state = state.into_inner();
    let (erased, answer) = erasure::erase_shipment(&state, &caller, id, input, context).await?;
    Ok(respond(StatusCode::OK, &erased, answer))
}

/// Erase every shipment of one data subject, found by recipient reference (Art. 17). Recorded
/// even when none is left, so that a later DSAR for the reference says it was erased.
#[utoipa::path(post, path = "/v1/subjects/erase", tag = "erasure", operation_id = "erase_subject",
    request_body = EraseSubject, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = Erased),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `idempotency-key-reused`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/subjects/erase")]
pub async fn erase_subject(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(ERASERS)?;
    let body = read_body(payload).await?;
    let input: EraseSubject = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let state = state.into_inner();
    let (erased, answer) = erasure::erase_subject(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::OK, &erased, answer))
}

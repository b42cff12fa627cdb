//! `POST /v1/tracking-events` (SPEC §14): the carrier's tracking updates in. The use case is
//! [`consent_ledger_app::tracking`].

use actix_web::{post, web, HttpResponse};
use consent_ledger_app::state::AppState;
use consent_ledger_app::tracking::{self, Ingested, TrackingEventsIn, INGESTERS};

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::openapi::responses as err;
use crate::problem::ApiError;

/// The carrier's tracking updates, 1 to 1,000 a call (its gateway, or an admin). Each is
/// checked on its own: `rejected` lists the refused ones by index with the field and why (never
/// the value: updates are personal data); the others are kept — beside the log, never in it —
/// before the answer. An update sent again (same shipment, status and time) is kept once.
#[utoipa::path(post, path = "/v1/tracking-events", tag = "tracking", operation_id = "ingest_tracking_events",
    request_body = TrackingEventsIn, security(("bearer" = [])),
    responses((status = 200, body = Ingested),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/tracking-events")]
pub async fn ingest(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(INGESTERS)?;
    let body = read_body(payload).await?;
    let input: serde_json::Value = parse_json(&body)?;
    Ok(HttpResponse::Ok().json(tracking::ingest(&state, &caller, input).await?))
}

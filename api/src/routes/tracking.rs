//! `POST /v1/tracking-events` (SPEC §14): the carrier's tracking updates in; and pulling them:
//! `GET /v1/shipments/{id}/tracking`, `GET /v1/tracking`. The use cases are
//! [`consent_ledger_app::tracking`].

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::query::{path_id, QueryParams};
use consent_ledger_app::state::AppState;
use consent_ledger_app::tracking::{
    self, Ingested, PullQuery, Pulled, TrackingEventsIn, INGESTERS,
};
use consent_ledger_domain::values::{CarrierCode, PartnerId, Purpose, ShipmentId, TrackingNumber};
use consent_ledger_projections::decider::ShipmentRef;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::ApiError;
use crate::write::context;

/// The carrier's tracking updates, 1 to 1,000 a call (its gateway, or an admin). Each is
/// checked on its own: `rejected` lists the refused ones by index with the field and why (never
/// the value: updates are personal data); the others are kept — beside the log, never in it —
/// before the answer. An update sent again (same shipment, status and time) is kept once.
/// Each kept update fans out, in the same transaction, to every live subscription covering
/// its shipment: one decision recorded per subscription (`"channel":"webhook"`, with the
/// `body_sha256` of the `tracking.updated` message it allowed) and its messages queued.
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
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(INGESTERS)?;
    let body = read_body(payload).await?;
    let input: serde_json::Value = parse_json(&body)?;
    let request_id = context(&req, &caller, b"")?.request_id;
    Ok(HttpResponse::Ok().json(tracking::ingest(&state, &caller, input, request_id).await?))
}

/// A partner reads a shipment's tracking (the gateway for a partner, `partner_id`): decided and
/// recorded like every read, with `"channel":"pull"`; when allowed, the updates come with the
/// decision, oldest first, minimised to the categories it allowed.
#[utoipa::path(get, path = "/v1/shipments/{id}/tracking", tag = "tracking", operation_id = "pull_shipment_tracking",
    security(("bearer" = [])),
    params(("id" = ShipmentId, Path, description = "the shipment's id"),
        ("purpose" = Purpose, Query, description = "why the partner reads"),
        ("data_categories" = String, Query, description = "comma-separated: status_events, location, proof_of_delivery, recipient_contact"),
        ("partner_id" = Option<PartnerId>, Query, description = "the partner, when the gateway asks")),
    responses((status = 200, body = Pulled, description = "allowed (with `updates`) or denied; recorded before it is sent"),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/shipments/{id}/tracking")]
pub async fn pull_by_id(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ShipmentId = path_id(&id, "id")?;
    let q = QueryParams::parse(
        req.query_string(),
        &["purpose", "data_categories", "partner_id"],
    )?;
    let query = PullQuery::from_params(&q)?;
    let context = context(&req, &caller, b"")?;
    let pulled = tracking::pull(&state, &caller, ShipmentRef::Id(id), query, context).await?;
    Ok(HttpResponse::Ok().json(pulled))
}

/// The same by carrier and tracking number.
#[utoipa::path(get, path = "/v1/tracking", tag = "tracking", operation_id = "pull_tracking",
    security(("bearer" = [])),
    params(("carrier" = String, Query, description = "the carrier's code"),
        ("tracking_number" = String, Query, description = "the carrier's tracking number"),
        ("purpose" = Purpose, Query, description = "why the partner reads"),
        ("data_categories" = String, Query, description = "comma-separated: status_events, location, proof_of_delivery, recipient_contact"),
        ("partner_id" = Option<PartnerId>, Query, description = "the partner, when the gateway asks")),
    responses((status = 200, body = Pulled, description = "allowed (with `updates`) or denied; recorded before it is sent"),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/tracking")]
pub async fn pull_by_number(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(
        req.query_string(),
        &[
            "carrier",
            "tracking_number",
            "purpose",
            "data_categories",
            "partner_id",
        ],
    )?;
    let carrier: CarrierCode = q
        .get("carrier")?
        .ok_or_else(|| ApiError::invalid("carrier", "required"))?;
    let number: TrackingNumber = q
        .get("tracking_number")?
        .ok_or_else(|| ApiError::invalid("tracking_number", "required"))?;
    let query = PullQuery::from_params(&q)?;
    let context = context(&req, &caller, b"")?;
    let shipment = ShipmentRef::Tracking(carrier, number);
    let pulled = tracking::pull(&state, &caller, shipment, query, context).await?;
    Ok(HttpResponse::Ok().json(pulled))
}

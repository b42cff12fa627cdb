//! `POST /v1/shipments`, `GET /v1/shipments/{id}` and
//! `GET /v1/shipments/{id}/authorized-parties`: the use cases are [`consent_ledger_app::shipments`].

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::query::{path_id, rfc3339_time, QueryParams};
use consent_ledger_app::shipments::{self, AuthorizedParties, RegisterShipment, REGISTRARS};
use consent_ledger_app::state::AppState;
use consent_ledger_app::write::Created;
use consent_ledger_domain::values::ShipmentId;
use consent_ledger_projections::model::ShipmentView;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::write::{context, respond};

/// Register a shipment for a shipper: the carrier's gateway or an admin, never the shipper
/// itself (a shipper claiming a tracking number could take over another's parcel).
#[utoipa::path(post, path = "/v1/shipments", tag = "shipments", operation_id = "register_shipment",
    request_body = RegisterShipment, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 201, body = Created),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-exists` (this carrier's tracking number is registered; `field` is \
                           `tracking_number`), `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/shipments")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(REGISTRARS)?;
    let body = read_body(payload).await?;
    let input: RegisterShipment = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (created, answer) = shipments::register(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &created, answer))
}

/// One shipment: its shipper, the gateway and auditors see it; anyone else gets 404.
#[utoipa::path(get, path = "/v1/shipments/{id}", tag = "shipments", operation_id = "get_shipment",
    security(("bearer" = [])), params(("id" = ShipmentId, Path, description = "the shipment's id")),
    responses((status = 200, body = ShipmentView), (status = 401, response = err::Unauthorized),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/shipments/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ShipmentId = path_id(&id, "id")?;
    let shipment: ShipmentView = shipments::get(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(shipment))
}

/// Every partner whose consent covered the shipment at `as_of` (default now): granted by
/// then, not revoked by then, valid then. Answered from the consents' recorded intervals, not
/// by replaying the log. The shipment's shipper, the gateway and auditors may ask.
#[utoipa::path(get, path = "/v1/shipments/{id}/authorized-parties", tag = "shipments",
    operation_id = "authorized_parties", security(("bearer" = [])),
    params(("id" = ShipmentId, Path, description = "the shipment's id"),
        ("as_of" = Option<DateTime<Utc>>, Query, description = "RFC 3339 time; default now")),
    responses((status = 200, body = AuthorizedParties), (status = 401, response = err::Unauthorized),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/shipments/{id}/authorized-parties")]
pub async fn authorized_parties(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ShipmentId = path_id(&id, "id")?;
    let q = QueryParams::parse(req.query_string(), &["as_of"])?;
    let as_of = q
        .raw("as_of")
        .map(rfc3339_time)
        .transpose()
        .map_err(|detail| ApiError::invalid("as_of", detail))?;
    let parties: AuthorizedParties = shipments::authorized_parties(&state, &caller, id, as_of)?;
    Ok(HttpResponse::Ok().json(parties))
}

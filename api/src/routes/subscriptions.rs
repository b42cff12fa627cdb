//! `/v1/subscriptions` (SPEC §14): a partner's subscriptions to tracking updates. The use cases
//! are [`consent_ledger_app::subscriptions`].

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::query::{path_id, QueryParams};
use consent_ledger_app::state::AppState;
use consent_ledger_app::subscriptions::{
    self, CreateSubscription, Subscribed, SubscriptionList, SUBSCRIBERS,
};
use consent_ledger_domain::values::{PartnerId, SubscriptionId};
use consent_ledger_projections::model::SubscriptionView;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::write::{context, respond};

/// Subscribe to the tracking updates of up to 100 shipments (by id, or carrier and tracking
/// number), each decided as a read and recorded (`"channel":"webhook"`): `accepted` the allowed
/// ones, `rejected` the others with the reason; or of every shipment the partner's consents
/// cover, now and later (`"scope":"consented"`). A partner subscribes for itself, the gateway
/// for a partner it names. 201 with the subscription's `id`; 200 without one when no shipment
/// was allowed (nothing is made).
#[utoipa::path(post, path = "/v1/subscriptions", tag = "tracking", operation_id = "create_subscription",
    request_body = CreateSubscription, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key: a retry answers the subscription the first call made")),
    responses((status = 201, body = Subscribed), (status = 200, body = Subscribed, description = "nothing allowed, nothing made"),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/subscriptions")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(SUBSCRIBERS)?;
    let body = read_body(payload).await?;
    let input: CreateSubscription = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let subscribed = subscriptions::create(&state, &caller, input, context).await?;
    let status = if subscribed.id.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(subscribed))
}

/// A partner's own subscriptions; the gateway's: every partner's, or one's with `partner_id`.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "tracking", operation_id = "list_subscriptions",
    security(("bearer" = [])),
    params(("partner_id" = Option<PartnerId>, Query, description = "the gateway's filter")),
    responses((status = 200, body = SubscriptionList), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/subscriptions")]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(req.query_string(), &["partner_id"])?;
    let partner: Option<PartnerId> = q.get("partner_id")?;
    Ok(HttpResponse::Ok().json(subscriptions::list(&state, &caller, partner)?))
}

/// One subscription: its partner's, or the gateway's to see; another partner's answers 404.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "tracking", operation_id = "get_subscription",
    security(("bearer" = [])), params(("id" = SubscriptionId, Path, description = "the subscription's id")),
    responses((status = 200, body = SubscriptionView), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/subscriptions/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: SubscriptionId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(subscriptions::get(&state, &caller, id)?))
}

/// End a subscription (recorded): nothing is delivered through it after.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "tracking", operation_id = "delete_subscription",
    security(("bearer" = [])),
    params(("id" = SubscriptionId, Path, description = "the subscription's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = SubscriptionView), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-deleted`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[delete("/v1/subscriptions/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SUBSCRIBERS)?;
    let id: SubscriptionId = path_id(&id, "id")?;
    let context = context(&req, &caller, b"")?;
    let (view, answer) = subscriptions::delete(&state, &caller, id, context).await?;
    Ok(respond(StatusCode::OK, &view, answer))
}

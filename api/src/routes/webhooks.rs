//! `/v1/webhook-endpoints` (SPEC §13): a partner's webhook endpoints. The use cases are
//! [`consent_ledger_app::webhooks::endpoints`].

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::query::{path_id, QueryParams};
use consent_ledger_app::state::AppState;
use consent_ledger_app::webhooks::endpoints::{
    self, Change, DeliveryList, DeliveryPage, DisableEndpoint, EndpointList, Redelivery,
    RegisterEndpoint, TestSent, MANAGERS,
};
use consent_ledger_domain::values::{PartnerId, WebhookEndpointId};
use consent_ledger_projections::model::WebhookEndpointView;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::NoBody;
use crate::write::{context, respond};
use consent_ledger_app::write::WriteContext;

/// Register a webhook endpoint: a partner for itself, an admin for a partner (`partner_id`).
/// The URL must be `https` on a host whose every address is public (422 naming `url`
/// otherwise); the answer carries the endpoint's `whpk_` public key, to verify `v1a`
/// signatures with. The secret key is never shown.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", operation_id = "register_webhook_endpoint",
    request_body = RegisterEndpoint, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 201, body = WebhookEndpointView),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/webhook-endpoints")]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(MANAGERS)?;
    let body = read_body(payload).await?;
    let input: RegisterEndpoint = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let (endpoint, answer) = endpoints::register(&state, &caller, input, context).await?;
    Ok(respond(StatusCode::CREATED, &endpoint, answer))
}

/// A partner's own endpoints; an admin's: every partner's, or one's with `partner_id`.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks", operation_id = "list_webhook_endpoints",
    security(("bearer" = [])),
    params(("partner_id" = Option<PartnerId>, Query, description = "an admin's filter")),
    responses((status = 200, body = EndpointList), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/webhook-endpoints")]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(req.query_string(), &["partner_id"])?;
    let partner: Option<PartnerId> = q.get("partner_id")?;
    Ok(HttpResponse::Ok().json(endpoints::list(&state, &caller, partner)?))
}

/// One endpoint: its partner's, or an admin's to see; another partner's answers 404.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "get_webhook_endpoint",
    security(("bearer" = [])), params(("id" = WebhookEndpointId, Path, description = "the endpoint's id")),
    responses((status = 200, body = WebhookEndpointView), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/webhook-endpoints/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: WebhookEndpointId = path_id(&id, "id")?;
    Ok(HttpResponse::Ok().json(endpoints::get(&state, &caller, id)?))
}

/// Stop deliveries to an endpoint (its partner or an admin); `{"reason"?}`.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/disable", tag = "webhooks", operation_id = "disable_webhook_endpoint",
    request_body(content = Option<DisableEndpoint>, description = "nothing, `{}` or `{\"reason\"}`"),
    security(("bearer" = [])),
    params(("id" = WebhookEndpointId, Path, description = "the endpoint's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = WebhookEndpointView),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-disabled`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/webhook-endpoints/{id}/disable")]
pub async fn disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(MANAGERS)?;
    let id: WebhookEndpointId = path_id(&id, "id")?;
    let body = read_body(payload).await?;
    let input: DisableEndpoint = parse_json(&body)?;
    let context = context(&req, &caller, &body)?;
    let change = Change::Disable(input);
    let (endpoint, answer) = endpoints::change(&state, &caller, id, change, context).await?;
    Ok(respond(StatusCode::OK, &endpoint, answer))
}

/// Resume deliveries to a disabled endpoint (its partner or an admin).
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/enable", tag = "webhooks", operation_id = "enable_webhook_endpoint",
    request_body(content = Option<NoBody>, description = "nothing, or `{}`"), security(("bearer" = [])),
    params(("id" = WebhookEndpointId, Path, description = "the endpoint's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = WebhookEndpointView),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`already-enabled`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/webhook-endpoints/{id}/enable")]
pub async fn enable(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    write_without_body(state, req, caller, id, payload, || Change::Enable).await
}

/// A new key pair: the answer's `public_key` is the new one; `previous_public_key` keeps
/// signing beside it for 24 h, so receivers can switch without losing a message.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-key", tag = "webhooks", operation_id = "rotate_webhook_key",
    request_body(content = Option<NoBody>, description = "nothing, or `{}`"), security(("bearer" = [])),
    params(("id" = WebhookEndpointId, Path, description = "the endpoint's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 200, body = WebhookEndpointView),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/webhook-endpoints/{id}/rotate-key")]
pub async fn rotate_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    write_without_body(state, req, caller, id, payload, || Change::RotateKey).await
}

/// A write to an endpoint that takes nothing, or `{}`.
async fn write_without_body(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
    change: impl FnOnce() -> Change,
) -> Result<HttpResponse, ApiError> {
    let (id, context) = without_body(&req, &caller, &id, payload).await?;
    let (endpoint, answer) = endpoints::change(&state, &caller, id, change(), context).await?;
    Ok(respond(StatusCode::OK, &endpoint, answer))
}

/// The endpoint named by the path and the write's context, for a write that takes nothing
/// (or `{}`).
async fn without_body(
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
    payload: web::Payload,
) -> Result<(WebhookEndpointId, WriteContext), ApiError> {
    caller.require(MANAGERS)?;
    let id: WebhookEndpointId = path_id(id, "id")?;
    let body = read_body(payload).await?;
    let _: NoBody = parse_json(&body)?;
    Ok((id, context(req, caller, &body)?))
}

/// Queue a `webhook.test` message to the endpoint (whatever types it receives): the receiver
/// gets a signed message like every other, and the partner follows it in the deliveries.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/test", tag = "webhooks", operation_id = "test_webhook_endpoint",
    request_body(content = Option<NoBody>, description = "nothing, or `{}`"), security(("bearer" = [])),
    params(("id" = WebhookEndpointId, Path, description = "the endpoint's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key")),
    responses((status = 202, body = TestSent),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`endpoint-disabled`, `idempotency-key-in-flight` or `concurrent-modification`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/webhook-endpoints/{id}/test")]
pub async fn test(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (id, context) = without_body(&req, &caller, &id, payload).await?;
    let (sent, answer) = endpoints::send_test(&state, &caller, id, context).await?;
    Ok(respond(StatusCode::ACCEPTED, &sent, answer))
}

/// Every delivery attempt to the endpoint, newest first: message id, type, time, HTTP status
/// (or why no answer came), latency, and the next retry while the message is pending. A full
/// page carries `next_cursor`: pass it as `cursor` for the next, older page.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    security(("bearer" = [])),
    params(("id" = WebhookEndpointId, Path, description = "the endpoint's id"),
        ("cursor" = Option<String>, Query, description = "a previous page's `next_cursor`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "default 100")),
    responses((status = 200, body = DeliveryList), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/webhook-endpoints/{id}/deliveries")]
pub async fn deliveries(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(MANAGERS)?;
    let id: WebhookEndpointId = path_id(&id, "id")?;
    let q = QueryParams::parse(req.query_string(), &["cursor", "limit"])?;
    let page = DeliveryPage {
        cursor: q.raw("cursor").map(str::to_owned),
        limit: q.get("limit")?,
    };
    Ok(HttpResponse::Ok().json(endpoints::deliveries(&state, &caller, id, page).await?))
}

/// Attempt a message again at once, with the same `webhook-id` and body (a new timestamp and
/// signature): one the receiver lost, or one given up. Another partner's message is 404.
/// Takes no body (or `{}`).
#[utoipa::path(post, path = "/v1/webhook-deliveries/{message_id}/redeliver", tag = "webhooks", operation_id = "redeliver_webhook_message",
    security(("bearer" = [])),
    params(("message_id" = String, Path, pattern = "^msg_[0-9a-f]{32}$", description = "the message's `webhook-id`")),
    responses((status = 202, body = Redelivery),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 404, response = err::NotFound),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`endpoint-disabled`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/webhook-deliveries/{message_id}/redeliver")]
pub async fn redeliver(
    state: web::Data<AppState>,
    caller: Caller,
    message_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(MANAGERS)?;
    let body = read_body(payload).await?;
    let _: NoBody = parse_json(&body)?;
    let redelivery = endpoints::redeliver(&state, &caller, &message_id).await?;
    Ok(HttpResponse::Accepted().json(redelivery))
}

//! `POST /v1/decisions` and `POST /v1/decisions/batch`: parse, check the role, and hand the
//! questions to [`consent_ledger_app::decide`], where the hot path reads top to bottom.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use consent_ledger_app::decide::{
    self, BatchAnswer, DecisionAnswer, DecisionBatch, DecisionRequest, MAX_BATCH,
};
use consent_ledger_domain::values::Role;

use crate::annotations::responses as err;
use crate::auth::DecisionCaller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::write::{context, respond};
use consent_ledger_app::state::AppState;

/// Decide whether a partner may read a shipment's tracking data, and record the decision.
#[utoipa::path(post, path = "/v1/decisions", tag = "decisions", operation_id = "decide",
    request_body = DecisionRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key; a decision's key replays for 24 hours")),
    responses((status = 200, body = DecisionAnswer, description = "allowed or denied; recorded before it is sent"),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`decision-superseded` (retried with its Idempotency-Key after the ground of its allow \
                           went), `idempotency-key-expired` (after 24 hours) or `idempotency-key-in-flight`"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/decisions")]
pub async fn decide_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: DecisionCaller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Partner, Role::Gateway])?;
    let body = read_body(payload).await?;
    let input: DecisionRequest = parse_json(&body)?;
    decide::ensure_fresh(&state, input.at_least_as_fresh, "at_least_as_fresh").await?;
    let q = decide::question(&state.projector.read(), &caller, &input, "")?;
    let context = context(&req, &caller, &body)?;
    let (mut answers, answer) =
        decide::decide(&state, &caller, context, std::slice::from_ref(&q)).await?;
    let first: DecisionAnswer = answers
        .pop()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no decision recorded")))?;
    Ok(respond(StatusCode::OK, &first, answer))
}

/// Up to 1,000 decisions in one call, recorded in one append.
#[utoipa::path(post, path = "/v1/decisions/batch", tag = "decisions", operation_id = "decide_batch",
    request_body = DecisionBatch, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "retry-safe key; a decision's key replays for 24 hours")),
    responses((status = 200, body = BatchAnswer, description = "one answer per item, in order; recorded before it is sent"),
        (status = 400, response = err::BadRequest), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 408, response = err::RequestTimeout),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`decision-superseded`, `idempotency-key-expired` or `idempotency-key-in-flight`, as for one decision"),
        (status = 413, response = err::PayloadTooLarge), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/decisions/batch")]
pub async fn decide_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: DecisionCaller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Partner, Role::Gateway])?;
    let body = read_body(payload).await?;
    let input: DecisionBatch = parse_json(&body)?;
    if input.items.is_empty() || input.items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "items",
            format!("must hold 1 to {MAX_BATCH} decisions"),
        ));
    }
    let freshest = input.items.iter().filter_map(|i| i.at_least_as_fresh).max();
    decide::ensure_fresh(&state, freshest, "at_least_as_fresh").await?;
    let questions = {
        let model = state.projector.read();
        input
            .items
            .iter()
            .enumerate()
            .map(|(i, r)| decide::question(&model, &caller, r, &format!("items[{i}].")))
            .collect::<Result<Vec<_>, _>>()?
    };
    let context = context(&req, &caller, &body)?;
    let (results, answer) = decide::decide(&state, &caller, context, &questions).await?;
    Ok(respond(StatusCode::OK, &BatchAnswer { results }, answer))
}

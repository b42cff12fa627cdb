//! A write over HTTP: the `Idempotency-Key` header and the request id into the use case's
//! [`WriteContext`], its answer into a response (`Idempotent-Replayed: true` on a replay).

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use consent_ledger_app::write::{Answer, WriteContext, IDEMPOTENCY_KEY};

use crate::problem::ApiError;
use consent_ledger_app::auth::Caller;

/// The request id of this call (set by the request-id middleware).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// The write context of this request: who, which request, which idempotency key.
pub fn context(req: &HttpRequest, caller: &Caller, body: &[u8]) -> Result<WriteContext, ApiError> {
    let key = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid(IDEMPOTENCY_KEY, "must be 1–255 visible ASCII characters")
            })
        })
        .transpose()?;
    let operation = format!("{} {}", req.method(), req.path());
    Ok(WriteContext::new(
        caller,
        request_id(req),
        &operation,
        key,
        body,
    )?)
}

/// The answer of a recorded write, with `Idempotent-Replayed: true` on a replay.
pub fn respond(status: StatusCode, body: &impl serde::Serialize, answer: Answer) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if answer == Answer::Replay {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.json(body)
}

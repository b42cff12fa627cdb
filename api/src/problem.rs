//! The one mapping from errors to RFC 9457 `application/problem+json`. A 4xx says what was
//! wrong and, where a field is to blame, which one; a 5xx is opaque to the caller and its cause
//! chain is logged.

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use consent_ledger_app::rate_limit::retry_after_seconds;
use consent_ledger_app::AppError;
use consent_ledger_domain::consent::ConsentError;
use consent_ledger_domain::principal::PrincipalError;
use consent_ledger_domain::request::ConsentRequestError;
use consent_ledger_domain::shipment::ShipmentError;
use consent_ledger_projections::ProjectionError;
use consent_ledger_store::cqrs::CommandError;
use consent_ledger_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Base of every problem `type`; the slug after it is stable and documented in the README.
pub const PROBLEM_BASE: &str = "https://consent-ledger.dev/problems/";

/// An RFC 9457 problem document, plus `field` naming the offending input where there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `https://consent-ledger.dev/problems/<slug>`: one stable slug per kind of error.
    #[serde(rename = "type")]
    #[schema(
        format = "uri",
        example = "https://consent-ledger.dev/problems/invalid-field"
    )]
    pub type_uri: String,
    /// A short summary, the same for every problem of this type.
    pub title: &'static str,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What was wrong with this request (a 5xx discloses nothing more).
    pub detail: String,
    /// The offending input by its path (`scope.shipment_ids[0]`, `purposes[0]`), or the name
    /// of a query parameter, path id or header.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// An [`AppError`] as an HTTP answer (actix's `ResponseError` may only be implemented here).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub AppError);

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self(AppError::invalid(field, detail))
    }
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self(AppError::conflict(slug, detail))
    }
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self(AppError::internal(cause))
    }
    pub fn not_found() -> Self {
        Self(AppError::not_found())
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self(AppError::Forbidden(detail.into()))
    }
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self(AppError::Unavailable(cause.into()))
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match &self.0 {
            AppError::MalformedBody { .. } => ("malformed-json", "Malformed JSON"),
            AppError::InvalidField { .. } => ("invalid-field", "Invalid field"),
            AppError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            AppError::BodyTimeout { .. } => {
                ("request-timeout", "Request body not received in time")
            }
            AppError::Unauthorized => ("unauthorized", "Unauthorized"),
            AppError::Forbidden(_) => ("forbidden", "Forbidden for this role"),
            AppError::RateLimited { .. } => ("too-many-requests", "Too many requests"),
            AppError::NotFound(_) => ("not-found", "Not found"),
            AppError::Conflict { slug, .. } => (slug, "Conflict with the current state"),
            AppError::IdempotencyKeyReused => ("idempotency-key-reused", "Idempotency key reused"),
            AppError::Unavailable(_) => ("unavailable", "Service unavailable"),
            AppError::Internal(_) | AppError::Replay(_) => ("internal", "Internal error"),
        }
    }
}

/// Errors of the layers below convert through [`AppError`]'s one mapping.
macro_rules! through_app_error {
    ($($from:ty),* $(,)?) => {$(
        impl From<$from> for ApiError {
            fn from(err: $from) -> Self {
                Self(AppError::from(err))
            }
        }
    )*};
}

through_app_error!(
    StoreError,
    ProjectionError,
    CommandError<PrincipalError>,
    CommandError<ShipmentError>,
    CommandError<ConsentError>,
    CommandError<ConsentRequestError>,
    ConsentRequestError,
);

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match &self.0 {
            AppError::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            AppError::InvalidField { .. } | AppError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) | AppError::Replay(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.slug_and_title();
        let detail = match &self.0 {
            AppError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "answering 503");
                "the event store is unavailable; nothing was recorded; retry later".to_owned()
            }
            AppError::Internal(_) | AppError::Replay(_) => {
                tracing::error!(error = ?self.0, "answering 500");
                "an internal error occurred; nothing more is disclosed".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self.0 {
            AppError::InvalidField { field, .. } => Some(field.clone()),
            AppError::Conflict { field, .. } => field.clone(),
            _ => None,
        };
        let problem = Problem {
            type_uri: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
            field,
        };
        let mut response = HttpResponse::build(status);
        match &self.0 {
            AppError::Unauthorized => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            AppError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            AppError::RateLimited { retry_after, .. } => {
                response.insert_header((
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_seconds(*retry_after)),
                ));
            }
            // The body may be half read: the connection cannot carry another request.
            AppError::BodyTimeout { .. } => {
                response.force_close();
            }
            _ => {}
        }
        render(response, &problem)
    }
}

/// The problem document as the body of `response`, with its media type.
fn render(mut response: actix_web::HttpResponseBuilder, problem: &Problem) -> HttpResponse {
    response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
    response.body(serde_json::to_string(problem).unwrap_or_default())
}

/// The media type of every error answer (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem+json answer for an error the HTTP layer raised rather than a use case: a method a
/// path does not take, or a request actix refused before a handler ran. Its `type` slug is
/// the status's reason phrase (`method-not-allowed`); a 5xx says nothing more.
pub fn http_problem(status: StatusCode, detail: impl Into<String>) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let slug = title
        .to_ascii_lowercase()
        .replace(' ', "-")
        .replace('\'', "");
    let detail = if status.is_server_error() {
        let cause: String = detail.into();
        tracing::error!(%status, error = %cause, "answering an HTTP-layer error");
        "an internal error occurred; nothing more is disclosed".to_owned()
    } else {
        detail.into()
    };
    let problem = Problem {
        type_uri: format!("{PROBLEM_BASE}{slug}"),
        title,
        status: status.as_u16(),
        detail,
        field: None,
    };
    render(HttpResponse::build(status), &problem)
}

/// The `ErrorHandlers` hook that gives every error answer the problem+json shape: one a
/// handler rendered through [`ApiError`] passes as it is; any other (an extractor's, a
/// middleware's, actix's own) is rendered again from its status and error, its other headers
/// kept.
pub fn problem_for_any_error<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // A problem already, or a console page saying what went wrong (SPEC §15): kept as it is.
    let is_answer = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
            || (v.as_bytes().starts_with(b"text/html")
                && res.request().path().starts_with("/console/"))
    });
    if is_answer {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = res.response().error().map_or_else(
        || {
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned()
        },
        ToString::to_string,
    );
    let (req, old) = res.into_parts();
    let mut new = http_problem(status, detail);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

impl From<ApiError> for AppError {
    fn from(err: ApiError) -> Self {
        err.0
    }
}

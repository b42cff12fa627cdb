//! The one mapping from errors to RFC 9457 `application/problem+json`. A 4xx says what was
//! wrong and, where a field is to blame, which one; a 5xx is opaque to the caller and its cause
//! chain is logged.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use consent_ledger_projections::ProjectionError;
use consent_ledger_store::{IdempotencyRecord, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// Base of every problem `type`; the slug after it is stable and documented in the README.
pub const PROBLEM_BASE: &str = "https://consent-ledger.dev/problems/";

/// An RFC 9457 problem document, plus `field` naming the offending input where there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {detail}")]
    MalformedBody { detail: String },
    #[error("{field}: {detail}")]
    InvalidField { field: String, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict {
        slug: &'static str,
        detail: String,
        field: Option<String>,
    },
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("service unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error: {0}")]
    Internal(#[source] anyhow::Error),
    /// Not an error the caller sees: the write helper answers it by replaying the first answer.
    #[error("idempotent replay of an earlier request")]
    Replay(IdempotencyRecord),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            detail: detail.into(),
        }
    }
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            slug,
            detail: detail.into(),
            field: None,
        }
    }
    /// Another tenant's object and a missing one answer alike, so existence does not leak.
    pub fn not_found() -> Self {
        Self::NotFound("no such object, or not yours to see".into())
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::MalformedBody { .. } => ("malformed-json", "Malformed JSON"),
            Self::InvalidField { .. } => ("invalid-field", "Invalid field"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            Self::Unauthorized => ("unauthorized", "Unauthorized"),
            Self::Forbidden(_) => ("forbidden", "Forbidden for this role"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::Conflict { slug, .. } => (slug, "Conflict with the current state"),
            Self::IdempotencyKeyReused => ("idempotency-key-reused", "Idempotency key reused"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::Internal(_) | Self::Replay(_) => ("internal", "Internal error"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { .. } => Self::conflict(
                "concurrent-modification",
                "the object was changed concurrently; retry",
            ),
            StoreError::ClaimTaken { claim } => Self::Conflict {
                slug: "already-exists",
                detail: format!("{claim} is already registered"),
                field: claim
                    .starts_with("tracking:")
                    .then(|| "tracking_number".to_owned()),
            },
            StoreError::IdempotencyKeyUsed(record) => Self::Replay(record),
            StoreError::IdempotencyKeyInFlight => Self::conflict(
                "idempotency-key-in-flight",
                "a request with this Idempotency-Key is still in flight",
            ),
            StoreError::Unavailable(_) | StoreError::ShuttingDown => Self::Unavailable(err.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(err: ProjectionError) -> Self {
        match err {
            ProjectionError::Store(e) => e.into(),
            other => Self::Internal(other.into()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidField { .. } | Self::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::Replay(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.slug_and_title();
        let detail = match self {
            Self::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "answering 503");
                "the event store is unavailable; nothing was recorded; retry later".to_owned()
            }
            Self::Internal(_) | Self::Replay(_) => {
                tracing::error!(error = ?self, "answering 500");
                "an internal error occurred; nothing more is disclosed".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            Self::InvalidField { field, .. } => Some(field.clone()),
            Self::Conflict { field, .. } => field.clone(),
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
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            Self::Unauthorized => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

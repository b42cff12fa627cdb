//! [`AppError`]: what a use case can answer besides success, typed so that every transport
//! renders it alike (the HTTP API as RFC 9457 problem+json, the command line as a message), and
//! the one mapping of each domain refusal to it: which kind, which stable slug, which field.

use consent_ledger_domain::consent::ConsentError;
use consent_ledger_domain::principal::PrincipalError;
use consent_ledger_domain::request::ConsentRequestError;
use consent_ledger_domain::shipment::ShipmentError;
use consent_ledger_domain::terms::ValidityError;
use consent_ledger_domain::webhook::WebhookEndpointError;
use consent_ledger_projections::ProjectionError;
use consent_ledger_store::cqrs::CommandError;
use consent_ledger_store::{IdempotencyRecord, StoreError};

/// A use case's refusal or failure. Input errors name the field; 5xx-kind causes are kept
/// for the log and never shown to the caller.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("malformed JSON: {detail}")]
    MalformedBody { detail: String },
    #[error("{field}: {detail}")]
    InvalidField { field: String, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The caller stopped sending its request's body before the end it announced.
    #[error("the request body was not received within {seconds} s; nothing was recorded")]
    BodyTimeout { seconds: u64 },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Over a rate limit ([`crate::rate_limit`], [`Limited`]); nothing was done. `retry_after`
    /// is when the bucket next has room.
    #[error("{limited}; retry after {} s; nothing was recorded", retry_after_seconds(*.retry_after))]
    RateLimited {
        retry_after: std::time::Duration,
        limited: Limited,
    },
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
    /// Not an error the caller sees: [`crate::write::record`] answers it by replaying the first
    /// answer.
    #[error("idempotent replay of an earlier request")]
    Replay(IdempotencyRecord),
}

impl AppError {
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
    /// An unexpected failure; its cause is logged, never shown.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }
}

/// The unique claim an erasure makes on each shipment it erases, so that two erasures of one
/// shipment (two requests, two nodes, a request and retention) cannot both commit.
pub const ERASED_CLAIM: &str = "erased:";

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { .. } => Self::conflict(
                "concurrent-modification",
                "the object was changed concurrently; retry",
            ),
            // The claim's text is never shown: a tracking number is personal (SPEC §12).
            StoreError::ClaimTaken { claim } if claim.starts_with(ERASED_CLAIM) => Self::conflict(
                "already-erased",
                "the shipment's personal data was erased by a concurrent request",
            ),
            StoreError::ClaimTaken { claim } => Self::Conflict {
                slug: "already-exists",
                detail: if claim.starts_with("tracking:") {
                    "this carrier's tracking number is already registered".to_owned()
                } else {
                    "the value is already registered".to_owned()
                },
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

impl From<ProjectionError> for AppError {
    fn from(err: ProjectionError) -> Self {
        match err {
            ProjectionError::Store(e) => e.into(),
            other => Self::Internal(other.into()),
        }
    }
}

fn validity(e: ValidityError) -> AppError {
    AppError::invalid("valid_until", e.to_string())
}

fn conflict(slug: &'static str, e: impl ToString) -> AppError {
    AppError::conflict(slug, e.to_string())
}

impl From<CommandError<PrincipalError>> for AppError {
    fn from(err: CommandError<PrincipalError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                PrincipalError::PartnerProfileRequired
                | PrincipalError::PartnerProfileNotAllowed => {
                    AppError::invalid("partner", e.to_string())
                }
                PrincipalError::NotFound => AppError::not_found(),
                PrincipalError::AlreadyRegistered => conflict("already-exists", e),
                PrincipalError::AlreadySuspended | PrincipalError::NotSuspended => {
                    conflict("invalid-state", e)
                }
            },
        }
    }
}

impl From<CommandError<WebhookEndpointError>> for AppError {
    fn from(err: CommandError<WebhookEndpointError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                WebhookEndpointError::NotFound => AppError::not_found(),
                WebhookEndpointError::AlreadyRegistered => conflict("already-exists", e),
                WebhookEndpointError::AlreadyDisabled => conflict("already-disabled", e),
                WebhookEndpointError::AlreadyEnabled => conflict("already-enabled", e),
                WebhookEndpointError::Disabled => conflict("endpoint-disabled", e),
                WebhookEndpointError::NoEventTypes => {
                    AppError::invalid("event_types", e.to_string())
                }
            },
        }
    }
}

impl From<CommandError<consent_ledger_domain::dpa::DpaError>> for AppError {
    fn from(err: CommandError<consent_ledger_domain::dpa::DpaError>) -> Self {
        use consent_ledger_domain::dpa::DpaError as E;
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                E::NotFound => AppError::not_found(),
                E::AlreadyRegistered => conflict("already-exists", e),
                E::AlreadyTerminated => conflict("already-terminated", e),
                E::EndsBeforeSigned => AppError::invalid("valid_until", e.to_string()),
                E::BadDocumentHash => AppError::invalid("document_sha256", e.to_string()),
            },
        }
    }
}

impl From<CommandError<consent_ledger_domain::authorization::AuthorizationError>> for AppError {
    fn from(err: CommandError<consent_ledger_domain::authorization::AuthorizationError>) -> Self {
        use consent_ledger_domain::authorization::AuthorizationError as E;
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                E::NotFound => AppError::not_found(),
                E::AlreadyGranted => conflict("already-exists", e),
                E::AlreadyRevoked => conflict("already-revoked", e),
                E::AlreadyObjected => conflict("already-objected", e),
                E::NoObjection => conflict("no-objection", e),
                E::ConsentIsNoBasis => AppError::invalid("legal_basis", e.to_string()),
                E::EndsBeforeStart => AppError::invalid("valid_until", e.to_string()),
            },
        }
    }
}

impl From<CommandError<consent_ledger_domain::subscription::SubscriptionError>> for AppError {
    fn from(err: CommandError<consent_ledger_domain::subscription::SubscriptionError>) -> Self {
        use consent_ledger_domain::subscription::SubscriptionError as E;
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                E::NotFound => AppError::not_found(),
                E::AlreadyCreated => conflict("already-exists", e),
                E::AlreadyDeleted => conflict("already-deleted", e),
                E::Empty => AppError::invalid("shipments", e.to_string()),
                E::NotCovered => conflict("not-covered", e),
            },
        }
    }
}

impl From<CommandError<ShipmentError>> for AppError {
    fn from(err: CommandError<ShipmentError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                ShipmentError::UnknownShipper(_) => AppError::invalid("shipper_id", e.to_string()),
                ShipmentError::AlreadyRegistered => conflict("already-exists", e),
            },
        }
    }
}

impl From<CommandError<ConsentError>> for AppError {
    fn from(err: CommandError<ConsentError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                ConsentError::UnknownPartner(_) => AppError::invalid("partner_id", e.to_string()),
                ConsentError::PartnerSuspended(_) => AppError::Conflict {
                    slug: "partner-suspended",
                    detail: e.to_string(),
                    field: Some("partner_id".into()),
                },
                ConsentError::ForeignShipment(_) => {
                    AppError::invalid("scope.shipment_ids", e.to_string())
                }
                ConsentError::Validity(v) => validity(v),
                ConsentError::NotFound => AppError::not_found(),
                ConsentError::AlreadyGranted => conflict("already-exists", e),
                ConsentError::AlreadyRevoked => conflict("already-revoked", e),
                ConsentError::AlreadyNoticed | ConsentError::NotExpiring => {
                    conflict("already-noticed", e)
                }
            },
        }
    }
}

impl From<ConsentRequestError> for AppError {
    fn from(e: ConsentRequestError) -> Self {
        match e {
            ConsentRequestError::UnknownPartner(_) => AppError::Forbidden(e.to_string()),
            ConsentRequestError::PartnerSuspended(_) => conflict("partner-suspended", e),
            // One answer for "no such shipper" and for "not this shipper's shipment", naming
            // no id: a partner must not learn who is a shipper or who owns a shipment id by
            // asking (SPEC §2).
            ConsentRequestError::UnknownShipper(_) | ConsentRequestError::ForeignShipment(_) => {
                AppError::invalid(
                    "shipper_id",
                    "no registered shipper with this id has all the shipments named: a request \
                     goes to one shipper, about that shipper's own shipments",
                )
            }
            ConsentRequestError::Validity(v) => validity(v),
            ConsentRequestError::NotFound => AppError::not_found(),
            ConsentRequestError::AlreadySubmitted => conflict("already-exists", e),
            ConsentRequestError::NotPending(_) => conflict("request-not-pending", e),
            ConsentRequestError::Expired(_) => conflict("request-expired", e),
            ConsentRequestError::NotYetExpired(_) => conflict("request-not-expired", e),
            ConsentRequestError::WidensPurposes => AppError::invalid("purposes", e.to_string()),
            ConsentRequestError::WidensDataCategories => {
                AppError::invalid("data_categories", e.to_string())
            }
            ConsentRequestError::WidensValidity => AppError::invalid("valid_until", e.to_string()),
        }
    }
}

impl From<CommandError<ConsentRequestError>> for AppError {
    fn from(err: CommandError<ConsentRequestError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => e.into(),
        }
    }
}

/// What a refused request was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The principal's own requests.
    Principal,
    /// Tokens this node did not know, presented from the caller's address.
    UnknownTokens,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Principal => "this principal is over its rate limit",
            Self::UnknownTokens => {
                "too many unknown bearer tokens from this address; its rate limit is reached"
            }
        })
    }
}

/// `wait` in whole seconds, rounded up and at least 1: what `Retry-After` takes (RFC 9110
/// §10.2.3), and never "retry now" while the bucket is still empty.
pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

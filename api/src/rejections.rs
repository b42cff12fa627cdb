//! How each domain refusal answers over HTTP: which status, which stable problem type, and
//! which request field it is about.

use consent_ledger_domain::consent::ConsentError;
use consent_ledger_domain::principal::PrincipalError;
use consent_ledger_domain::request::ConsentRequestError;
use consent_ledger_domain::shipment::ShipmentError;
use consent_ledger_domain::terms::ValidityError;
use consent_ledger_store::cqrs::CommandError;

use crate::problem::ApiError;

fn validity(e: ValidityError) -> ApiError {
    ApiError::invalid("valid_until", e.to_string())
}

fn conflict(slug: &'static str, e: impl ToString) -> ApiError {
    ApiError::conflict(slug, e.to_string())
}

impl From<CommandError<PrincipalError>> for ApiError {
    fn from(err: CommandError<PrincipalError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                PrincipalError::PartnerProfileRequired
                | PrincipalError::PartnerProfileNotAllowed => {
                    ApiError::invalid("partner", e.to_string())
                }
                PrincipalError::NotFound => ApiError::not_found(),
                PrincipalError::NotAPartner => ApiError::invalid("id", e.to_string()),
                PrincipalError::AlreadyRegistered => conflict("already-exists", e),
                PrincipalError::AlreadySuspended | PrincipalError::NotSuspended => {
                    conflict("invalid-state", e)
                }
            },
        }
    }
}

impl From<CommandError<ShipmentError>> for ApiError {
    fn from(err: CommandError<ShipmentError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                ShipmentError::UnknownShipper(_) => ApiError::invalid("shipper_id", e.to_string()),
                ShipmentError::AlreadyRegistered => conflict("already-exists", e),
            },
        }
    }
}

impl From<CommandError<ConsentError>> for ApiError {
    fn from(err: CommandError<ConsentError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => match e {
                ConsentError::UnknownPartner(_) => ApiError::invalid("partner_id", e.to_string()),
                ConsentError::PartnerSuspended(_) => ApiError::Conflict {
                    slug: "partner-suspended",
                    detail: e.to_string(),
                    field: Some("partner_id".into()),
                },
                ConsentError::ForeignShipment(_) => {
                    ApiError::invalid("scope.shipment_ids", e.to_string())
                }
                ConsentError::Validity(v) => validity(v),
                ConsentError::NotFound => ApiError::not_found(),
                ConsentError::AlreadyGranted => conflict("already-exists", e),
                ConsentError::AlreadyRevoked => conflict("already-revoked", e),
            },
        }
    }
}

impl From<ConsentRequestError> for ApiError {
    fn from(e: ConsentRequestError) -> Self {
        match e {
            ConsentRequestError::UnknownPartner(_) => ApiError::Forbidden(e.to_string()),
            ConsentRequestError::PartnerSuspended(_) => conflict("partner-suspended", e),
            ConsentRequestError::UnknownShipper(_) => {
                ApiError::invalid("shipper_id", e.to_string())
            }
            ConsentRequestError::ForeignShipment(_) => {
                ApiError::invalid("scope.shipment_ids", e.to_string())
            }
            ConsentRequestError::Validity(v) => validity(v),
            ConsentRequestError::NotFound => ApiError::not_found(),
            ConsentRequestError::AlreadySubmitted => conflict("already-exists", e),
            ConsentRequestError::NotPending(_) => conflict("request-not-pending", e),
            ConsentRequestError::Expired(_) => conflict("request-expired", e),
            ConsentRequestError::NotYetExpired(_) => conflict("request-not-expired", e),
            ConsentRequestError::WidensPurposes => ApiError::invalid("purposes", e.to_string()),
            ConsentRequestError::WidensDataCategories => {
                ApiError::invalid("data_categories", e.to_string())
            }
            ConsentRequestError::WidensValidity => ApiError::invalid("valid_until", e.to_string()),
        }
    }
}

impl From<CommandError<ConsentRequestError>> for ApiError {
    fn from(err: CommandError<ConsentRequestError>) -> Self {
        match err {
            CommandError::Store(e) => e.into(),
            CommandError::Rejected(e) => e.into(),
        }
    }
}

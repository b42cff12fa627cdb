//! What a consent covers, shared by grants and by requests for them (SPEC §3).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::services::Directory;
use crate::values::{CarrierCode, CountryCode, NonEmptySet, ShipmentId, ShipperId};

/// Which of a shipper's shipments a consent covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsentScope {
    /// An explicit list of the shipper's shipments.
    Shipments {
        shipment_ids: NonEmptySet<ShipmentId>,
    },
    /// Every shipment of the shipper, present and future, optionally narrowed by carrier and
    /// destination country. Indexed once per shipper, never fanned out per shipment.
    Shipper {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carriers: Option<NonEmptySet<CarrierCode>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        destination_countries: Option<NonEmptySet<CountryCode>>,
    },
}

impl ConsentScope {
    /// The first listed shipment that is not the shipper's own, if any.
    pub fn foreign_shipment(
        &self,
        shipper: ShipperId,
        directory: &dyn Directory,
    ) -> Option<ShipmentId> {
        match self {
            ConsentScope::Shipments { shipment_ids } => shipment_ids
                .iter()
                .find(|id| directory.shipment_owner(**id) != Some(shipper))
                .copied(),
            ConsentScope::Shipper { .. } => None,
        }
    }

    /// True when a shipment of this consent's shipper with these attributes is in scope.
    pub fn covers(
        &self,
        shipment: ShipmentId,
        carrier: &CarrierCode,
        country: CountryCode,
    ) -> bool {
        match self {
            ConsentScope::Shipments { shipment_ids } => shipment_ids.contains(&shipment),
            ConsentScope::Shipper {
                carriers,
                destination_countries,
            } => {
                carriers.as_ref().is_none_or(|c| c.contains(carrier))
                    && destination_countries
                        .as_ref()
                        .is_none_or(|c| c.contains(&country))
            }
        }
    }
}

/// Why a validity window was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    #[error("valid_from must not lie in the past: consent cannot cover processing that already happened")]
    StartsInThePast,
    #[error("valid_until must be after valid_from")]
    EndsBeforeItStarts,
    #[error("valid_until must be in the future")]
    AlreadyOver,
}

/// How far `valid_from` may lie before now, for clocks of caller and ledger that disagree.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Checks a validity window at `now`: it may not start in the past (beyond [`CLOCK_SKEW`]),
/// must end after it starts, and not already be over.
pub fn check_validity(
    valid_from: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), ValidityError> {
    if valid_from < now - CLOCK_SKEW {
        return Err(ValidityError::StartsInThePast);
    }
    match valid_until {
        Some(until) if until <= valid_from => Err(ValidityError::EndsBeforeItStarts),
        Some(until) if until <= now => Err(ValidityError::AlreadyOver),
        _ => Ok(()),
    }
}

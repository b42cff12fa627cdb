//! The record of an erasure (SPEC §12): which shipments' personal fields were erased, why and
//! on whose order. It holds no personal data itself: ids in clear, its free-text reason sealed
//! like every other (see [`crate::personal`]).

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{self, Personal};
use crate::values::{ConsentId, ConsentRequestId, Reason, ShipmentId};

/// The stream type of erasures: one stream per erasure, its id the erasure's id.
pub const ERASURE_STREAM: &str = "erasure";

/// What asked for an erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErasureCause {
    /// `POST /v1/shipments/{id}/erase` (Art. 17).
    Shipment,
    /// `POST /v1/subjects/erase`: every shipment of one recipient reference (Art. 17).
    Subject,
    /// `serve --retention-days`: shipments whose last event is older than the period
    /// (Art. 5(1)(e)).
    Retention,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ErasureEvent {
    PersonalDataErased {
        cause: ErasureCause,
        /// The shipments whose tracking numbers, recipient references and tracking updates
        /// were erased.
        shipments: Vec<ShipmentId>,
        /// Consents scoped to one of those shipments, whose revocation reasons were erased.
        consents: Vec<ConsentId>,
        /// Consent requests scoped to one of those shipments, whose justifications and denial
        /// reasons were erased.
        requests: Vec<ConsentRequestId>,
        reason: Personal<Reason>,
        /// Positions of denials of unknown parcels asked for by an erased tracking number:
        /// the numbers they recorded are erased too.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        denials: Vec<u64>,
        /// For a retention sweep: the tracking numbers recorded by denials of unknown parcels
        /// before this position are erased (they belong to no shipment).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asked_before: Option<u64>,
        /// For a retention sweep: its period in days.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention_days: Option<u32>,
        erased_at: DateTime<Utc>,
    },
}

impl DomainEvent for ErasureEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PersonalDataErased { .. } => "PersonalDataErased",
        }
        .into()
    }
    fn event_version(&self) -> String {
        personal::schema_version(&self.event_type()).into()
    }
}

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{self, Personal};
use crate::terms::ConsentScope;
use crate::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId,
    PrincipalId, Purpose, Reason, ShipperId,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConsentEvent {
    ConsentGranted {
        id: ConsentId,
        shipper: ShipperId,
        partner: PartnerId,
        scope: ConsentScope,
        purposes: NonEmptySet<Purpose>,
        data_categories: NonEmptySet<DataCategory>,
        legal_basis: LegalBasis,
        dpa_ref: DpaRef,
        valid_from: DateTime<Utc>,
        valid_until: Option<DateTime<Utc>>,
        origin_request: Option<ConsentRequestId>,
        granted_at: DateTime<Utc>,
    },
    ConsentRevoked {
        revoked_by: PrincipalId,
        reason: Personal<Reason>,
        revoked_at: DateTime<Utc>,
    },
    /// The partner was sent `consent.expiring` (`expired: false`) or `consent.expired`.
    ConsentExpiryNoticed {
        expired: bool,
        valid_until: DateTime<Utc>,
        noticed_at: DateTime<Utc>,
    },
}

impl DomainEvent for ConsentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ConsentGranted { .. } => "ConsentGranted",
            Self::ConsentRevoked { .. } => "ConsentRevoked",
            Self::ConsentExpiryNoticed { .. } => "ConsentExpiryNoticed",
        }
        .into()
    }
    fn event_version(&self) -> String {
        personal::schema_version(&self.event_type()).into()
    }
}

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{self, Personal};
use crate::terms::ConsentScope;
use crate::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId, Purpose,
    Reason, ShipperId,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConsentRequestEvent {
    ConsentRequestSubmitted {
        id: ConsentRequestId,
        partner: PartnerId,
        shipper: ShipperId,
        scope: ConsentScope,
        purposes: NonEmptySet<Purpose>,
        data_categories: NonEmptySet<DataCategory>,
        legal_basis: LegalBasis,
        dpa_ref: Option<DpaRef>,
        valid_from: Option<DateTime<Utc>>,
        valid_until: Option<DateTime<Utc>>,
        justification: Personal<Reason>,
        submitted_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// Carries the terms actually granted, which may be narrower than those asked for.
    ConsentRequestApproved {
        consent_id: ConsentId,
        purposes: NonEmptySet<Purpose>,
        data_categories: NonEmptySet<DataCategory>,
        valid_until: Option<DateTime<Utc>>,
        approved_at: DateTime<Utc>,
    },
    ConsentRequestDenied {
        reason: Personal<Reason>,
        denied_at: DateTime<Utc>,
    },
    ConsentRequestWithdrawn {
        withdrawn_at: DateTime<Utc>,
    },
    ConsentRequestExpired {
        expired_at: DateTime<Utc>,
    },
}

impl DomainEvent for ConsentRequestEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ConsentRequestSubmitted { .. } => "ConsentRequestSubmitted",
            Self::ConsentRequestApproved { .. } => "ConsentRequestApproved",
            Self::ConsentRequestDenied { .. } => "ConsentRequestDenied",
            Self::ConsentRequestWithdrawn { .. } => "ConsentRequestWithdrawn",
            Self::ConsentRequestExpired { .. } => "ConsentRequestExpired",
        }
        .into()
    }
    fn event_version(&self) -> String {
        personal::schema_version(&self.event_type()).into()
    }
}

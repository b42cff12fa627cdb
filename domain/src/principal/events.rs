use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::{CountryCode, DisplayName, DpaRef, PartnerKind, PrincipalId, Reason, Role};

/// What the ledger keeps of a partner beyond its name (SPEC §3 Partner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartnerProfile {
    pub kind: PartnerKind,
    pub country: CountryCode,
    pub dpa_ref: DpaRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PrincipalEvent {
    PrincipalRegistered {
        id: PrincipalId,
        role: Role,
        name: DisplayName,
        partner: Option<PartnerProfile>,
        token_sha256: String,
        registered_at: DateTime<Utc>,
    },
    PartnerSuspended {
        reason: Reason,
        suspended_at: DateTime<Utc>,
    },
    PartnerReactivated {
        reactivated_at: DateTime<Utc>,
    },
}

impl DomainEvent for PrincipalEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PrincipalRegistered { .. } => "PrincipalRegistered",
            Self::PartnerSuspended { .. } => "PartnerSuspended",
            Self::PartnerReactivated { .. } => "PartnerReactivated",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

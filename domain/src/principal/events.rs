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
        /// Only in logs written before credentials moved out of the log (SPEC §2): the hex
        /// SHA-256 of the first token. New registrations leave it out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_sha256: Option<String>,
        registered_at: DateTime<Utc>,
    },
    /// Any principal's suspension: its token is refused, and a partner is denied every decision.
    PrincipalSuspended {
        reason: Reason,
        suspended_at: DateTime<Utc>,
    },
    PrincipalReactivated {
        reactivated_at: DateTime<Utc>,
    },
    /// A new token was issued; the old one is refused from this event on. The token's digest
    /// is kept beside the log, never in it.
    PrincipalTokenRotated {
        rotated_at: DateTime<Utc>,
    },
    /// A partner's suspension as logs before every role could be suspended record it; applied
    /// as [`PrincipalEvent::PrincipalSuspended`].
    PartnerSuspended {
        reason: Reason,
        suspended_at: DateTime<Utc>,
    },
    /// Applied as [`PrincipalEvent::PrincipalReactivated`].
    PartnerReactivated {
        reactivated_at: DateTime<Utc>,
    },
}

impl DomainEvent for PrincipalEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PrincipalRegistered { .. } => "PrincipalRegistered",
            Self::PrincipalSuspended { .. } => "PrincipalSuspended",
            Self::PrincipalReactivated { .. } => "PrincipalReactivated",
            Self::PrincipalTokenRotated { .. } => "PrincipalTokenRotated",
            Self::PartnerSuspended { .. } => "PartnerSuspended",
            Self::PartnerReactivated { .. } => "PartnerReactivated",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

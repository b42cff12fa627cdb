use crate::principal::PartnerProfile;
use crate::values::{DisplayName, PrincipalId, Reason, Role};

/// What may be done to a principal. Its credential (the SHA-256 of its bearer token) is not
/// part of any command or event: it is kept beside the log (SPEC §2), written in the same
/// transaction as the event that issues it.
#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalCommand {
    RegisterPrincipal {
        id: PrincipalId,
        role: Role,
        name: DisplayName,
        partner: Option<PartnerProfile>,
    },
    /// Refuse the principal's token from now on; a partner is also denied every decision and
    /// can receive no grant.
    Suspend {
        reason: Reason,
    },
    Reactivate,
    /// Issue a new token; the old one is refused from the commit on.
    RotateToken,
}

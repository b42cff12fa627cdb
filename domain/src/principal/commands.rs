use crate::principal::PartnerProfile;
use crate::values::{DisplayName, PrincipalId, Reason, Role};

#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalCommand {
    /// Register a principal. `token_sha256` is the hex SHA-256 of its bearer token; the token
    /// itself is never stored.
    RegisterPrincipal {
        id: PrincipalId,
        role: Role,
        name: DisplayName,
        partner: Option<PartnerProfile>,
        token_sha256: String,
    },
    /// Stop a partner from receiving grants or positive decisions.
    SuspendPartner {
        reason: Reason,
    },
    ReactivatePartner,
}

//! The authenticated principal of a call (SPEC §2), and what it may see: the same for a bearer
//! token on the API ([`crate::auth`]) and a console session ([`crate::sessions`]).

use consent_ledger_domain::values::{PartnerId, PartnerStatus, PrincipalId, Role};
use consent_ledger_projections::ReadModel;

use crate::error::AppError;

/// The authenticated principal making the call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: PrincipalId,
    pub role: Role,
    /// The position of the event that issued the token the caller presented: the caller holds
    /// only while that is still its principal's current token ([`Caller::still_holds`]).
    pub credential_at: u64,
}

impl Caller {
    /// Which partner's objects a list shows: a partner's own, whatever it asked; another
    /// role's, the partner it asked for (`None`: every partner's).
    pub fn partner_filter(&self, asked: Option<PartnerId>) -> Option<PartnerId> {
        match self.role {
            Role::Partner => Some(self.id.as_partner()),
            _ => asked,
        }
    }

    /// Whether the caller may see an object of `partner`: a partner its own only.
    pub fn sees_partner(&self, partner: PartnerId) -> bool {
        self.role != Role::Partner || partner == self.id.as_partner()
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(Role::as_str).collect();
        Err(AppError::Forbidden(format!(
            "role {} may not do this; allowed: {}",
            self.role,
            allowed.join(", ")
        )))
    }

    /// Privacy officers and regulators read every consent and record (SPEC §2).
    pub fn is_auditor(&self) -> bool {
        matches!(self.role, Role::PrivacyOfficer | Role::Regulator)
    }

    /// Principal `id` as a caller holding its current token, without a token (offline tools
    /// and tests acting as a principal).
    pub fn of(model: &ReadModel, id: PrincipalId) -> Option<Caller> {
        model.principals.get(&id).map(|p| Caller {
            id: p.id,
            role: p.role,
            credential_at: p.credential_at,
        })
    }

    /// Whether, on `model`, the caller's token is still its principal's current one and the
    /// principal is active: false once a rotation or suspension is applied.
    pub fn still_holds(&self, model: &ReadModel) -> bool {
        model.principals.get(&self.id).is_some_and(|p| {
            p.status == PartnerStatus::Active && p.credential_at == self.credential_at
        })
    }
}

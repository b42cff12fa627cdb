use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::principal::{PartnerProfile, PrincipalCommand, PrincipalEvent};
use crate::services::LedgerServices;
use crate::values::{PartnerStatus, Role};

/// Why a principal command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("this principal is already registered")]
    AlreadyRegistered,
    #[error("no such principal")]
    NotFound,
    #[error("a partner needs a partner profile (kind, country, dpa_ref)")]
    PartnerProfileRequired,
    #[error("only a principal of role partner has a partner profile")]
    PartnerProfileNotAllowed,
    #[error("the principal is already suspended")]
    AlreadySuspended,
    #[error("the principal is not suspended")]
    NotSuspended,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    role: Option<Role>,
    partner: Option<PartnerProfile>,
    status: Option<PartnerStatus>,
}

impl Aggregate for Principal {
    const TYPE: &'static str = "principal";
    type Command = PrincipalCommand;
    type Event = PrincipalEvent;
    type Error = PrincipalError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            PrincipalCommand::RegisterPrincipal {
                id,
                role,
                name,
                partner,
            } => {
                if self.role.is_some() {
                    return Err(PrincipalError::AlreadyRegistered);
                }
                match (role, &partner) {
                    (Role::Partner, None) => return Err(PrincipalError::PartnerProfileRequired),
                    (r, Some(_)) if r != Role::Partner => {
                        return Err(PrincipalError::PartnerProfileNotAllowed)
                    }
                    _ => {}
                }
                PrincipalEvent::PrincipalRegistered {
                    id,
                    role,
                    name,
                    partner,
                    token_sha256: None,
                    registered_at: now,
                }
            }
            PrincipalCommand::Suspend { reason } => match self.status()? {
                PartnerStatus::Suspended => return Err(PrincipalError::AlreadySuspended),
                PartnerStatus::Active => PrincipalEvent::PrincipalSuspended {
                    reason,
                    suspended_at: now,
                },
            },
            PrincipalCommand::Reactivate => match self.status()? {
                PartnerStatus::Active => return Err(PrincipalError::NotSuspended),
                PartnerStatus::Suspended => PrincipalEvent::PrincipalReactivated {
                    reactivated_at: now,
                },
            },
            PrincipalCommand::RotateToken => {
                self.status()?;
                PrincipalEvent::PrincipalTokenRotated { rotated_at: now }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PrincipalEvent::PrincipalRegistered { role, partner, .. } => {
                self.status = Some(PartnerStatus::Active);
                self.role = Some(role);
                self.partner = partner;
            }
            PrincipalEvent::PrincipalSuspended { .. } | PrincipalEvent::PartnerSuspended { .. } => {
                self.status = Some(PartnerStatus::Suspended)
            }
            PrincipalEvent::PrincipalReactivated { .. }
            | PrincipalEvent::PartnerReactivated { .. } => {
                self.status = Some(PartnerStatus::Active)
            }
            PrincipalEvent::PrincipalTokenRotated { .. } => {}
        }
    }
}

impl Principal {
    /// The status of a registered principal.
    fn status(&self) -> Result<PartnerStatus, PrincipalError> {
        self.status.ok_or(PrincipalError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{services, t0};
    use crate::values::{DisplayName, DpaRef, PartnerKind, PrincipalId, Reason};

    type Given = TestFramework<Principal>;

    fn id() -> PrincipalId {
        PrincipalId::parse("0190d5f6-0000-7000-8000-000000000001").unwrap()
    }
    fn profile() -> PartnerProfile {
        PartnerProfile {
            kind: PartnerKind::Insurer,
            country: crate::values::CountryCode::parse("DE").unwrap(),
            dpa_ref: DpaRef::parse("DPA-1").unwrap(),
        }
    }
    fn register(role: Role, partner: Option<PartnerProfile>) -> PrincipalCommand {
        PrincipalCommand::RegisterPrincipal {
            id: id(),
            role,
            name: DisplayName::parse("Acme").unwrap(),
            partner,
        }
    }
    fn registered(role: Role, partner: Option<PartnerProfile>) -> PrincipalEvent {
        PrincipalEvent::PrincipalRegistered {
            id: id(),
            role,
            name: DisplayName::parse("Acme").unwrap(),
            partner,
            token_sha256: None,
            registered_at: t0(),
        }
    }
    fn reason() -> Reason {
        Reason::parse("contract ended").unwrap()
    }

    #[test]
    fn registers_a_partner_with_its_profile() {
        Given::with(services())
            .given_no_previous_events()
            .when(register(Role::Partner, Some(profile())))
            .then_expect_events(vec![registered(Role::Partner, Some(profile()))]);
    }

    #[test]
    fn a_partner_needs_a_profile_and_others_must_not_have_one() {
        Given::with(services())
            .given_no_previous_events()
            .when(register(Role::Partner, None))
            .then_expect_error(PrincipalError::PartnerProfileRequired);
        Given::with(services())
            .given_no_previous_events()
            .when(register(Role::Shipper, Some(profile())))
            .then_expect_error(PrincipalError::PartnerProfileNotAllowed);
    }

    #[test]
    fn registers_only_once() {
        Given::with(services())
            .given(vec![registered(Role::Shipper, None)])
            .when(register(Role::Shipper, None))
            .then_expect_error(PrincipalError::AlreadyRegistered);
    }

    #[test]
    fn suspends_and_reactivates_any_principal_once_each() {
        let suspended = PrincipalEvent::PrincipalSuspended {
            reason: reason(),
            suspended_at: t0(),
        };
        for (role, profile) in [(Role::Partner, Some(profile())), (Role::Admin, None)] {
            Given::with(services())
                .given(vec![registered(role, profile.clone())])
                .when(PrincipalCommand::Suspend { reason: reason() })
                .then_expect_events(vec![suspended.clone()]);
            Given::with(services())
                .given(vec![registered(role, profile.clone()), suspended.clone()])
                .when(PrincipalCommand::Suspend { reason: reason() })
                .then_expect_error(PrincipalError::AlreadySuspended);
            Given::with(services())
                .given(vec![registered(role, profile.clone()), suspended.clone()])
                .when(PrincipalCommand::Reactivate)
                .then_expect_events(vec![PrincipalEvent::PrincipalReactivated {
                    reactivated_at: t0(),
                }]);
            Given::with(services())
                .given(vec![registered(role, profile)])
                .when(PrincipalCommand::Reactivate)
                .then_expect_error(PrincipalError::NotSuspended);
        }
    }

    #[test]
    fn a_legacy_partner_suspension_still_suspends() {
        Given::with(services())
            .given(vec![
                registered(Role::Partner, Some(profile())),
                PrincipalEvent::PartnerSuspended {
                    reason: reason(),
                    suspended_at: t0(),
                },
            ])
            .when(PrincipalCommand::Reactivate)
            .then_expect_events(vec![PrincipalEvent::PrincipalReactivated {
                reactivated_at: t0(),
            }]);
    }

    #[test]
    fn rotates_the_token_of_a_registered_principal_only() {
        Given::with(services())
            .given(vec![registered(Role::Gateway, None)])
            .when(PrincipalCommand::RotateToken)
            .then_expect_events(vec![PrincipalEvent::PrincipalTokenRotated {
                rotated_at: t0(),
            }]);
        Given::with(services())
            .given_no_previous_events()
            .when(PrincipalCommand::RotateToken)
            .then_expect_error(PrincipalError::NotFound);
        Given::with(services())
            .given_no_previous_events()
            .when(PrincipalCommand::Suspend { reason: reason() })
            .then_expect_error(PrincipalError::NotFound);
    }
}

//! Carrier authorizations of tracking intermediaries (SPEC §16): the carrier (the operator, an
//! admin) authorizes a partner under a DPA of its register to read the tracking of a class of
//! shipments — by carrier, destination country and shipper — for purposes and data categories,
//! on a legal basis other than consent, for a period; revocable. A shipper whose shipments it
//! covers objects (GDPR Art. 21) and withdraws its objection; an objection excludes that
//! shipper's shipments from the commit on, like a revocation.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::personal::{self, Personal};
use crate::services::LedgerServices;
use crate::values::{
    AuthorizationId, CarrierCode, CountryCode, DataCategory, DpaId, LegalBasis, NonEmptySet,
    PartnerId, Purpose, Reason, ShipperId,
};

/// Which shipments an authorization covers: those matching every list it names (none named:
/// all of the carrier's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthorizationScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub carriers: Option<NonEmptySet<CarrierCode>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub destination_countries: Option<NonEmptySet<CountryCode>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub shipper_ids: Option<NonEmptySet<ShipperId>>,
}

/// What an admin authorizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationTerms {
    pub partner: PartnerId,
    pub dpa: DpaId,
    pub scope: AuthorizationScope,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizationCommand {
    /// `valid_from` defaults to now.
    Grant {
        id: AuthorizationId,
        terms: AuthorizationTerms,
    },
    Revoke {
        reason: Option<Reason>,
    },
    Object {
        shipper: ShipperId,
        reason: Reason,
    },
    WithdrawObjection {
        shipper: ShipperId,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AuthorizationEvent {
    AuthorizationGranted {
        id: AuthorizationId,
        terms: AuthorizationTerms,
        granted_at: DateTime<Utc>,
    },
    AuthorizationRevoked {
        reason: Option<Reason>,
        revoked_at: DateTime<Utc>,
    },
    ShipperObjected {
        shipper: ShipperId,
        /// The shipper's own words: personal (SPEC §12), sealed in the log.
        reason: Personal<Reason>,
        objected_at: DateTime<Utc>,
    },
    ObjectionWithdrawn {
        shipper: ShipperId,
        withdrawn_at: DateTime<Utc>,
    },
}

impl DomainEvent for AuthorizationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AuthorizationGranted { .. } => "AuthorizationGranted",
            Self::AuthorizationRevoked { .. } => "AuthorizationRevoked",
            Self::ShipperObjected { .. } => "ShipperObjected",
            Self::ObjectionWithdrawn { .. } => "ObjectionWithdrawn",
        }
        .into()
    }
    fn event_version(&self) -> String {
        personal::schema_version(&self.event_type()).into()
    }
}

/// Why an authorization command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("this authorization already exists")]
    AlreadyGranted,
    #[error("no such authorization")]
    NotFound,
    #[error("the authorization is already revoked")]
    AlreadyRevoked,
    #[error("a carrier authorization rests on legitimate_interests, contract or legal_obligation, not on consent")]
    ConsentIsNoBasis,
    #[error("valid_until must be after valid_from")]
    EndsBeforeStart,
    #[error("this shipper has already objected")]
    AlreadyObjected,
    #[error("this shipper has not objected")]
    NoObjection,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    granted: bool,
    revoked: bool,
    objections: BTreeSet<ShipperId>,
}

impl Aggregate for Authorization {
    const TYPE: &'static str = "authorization";
    type Command = AuthorizationCommand;
    type Event = AuthorizationEvent;
    type Error = AuthorizationError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            AuthorizationCommand::Grant { id, terms } => {
                if self.granted {
                    return Err(AuthorizationError::AlreadyGranted);
                }
                if terms.legal_basis == LegalBasis::Consent {
                    return Err(AuthorizationError::ConsentIsNoBasis);
                }
                if terms.valid_until.is_some_and(|u| u <= terms.valid_from) {
                    return Err(AuthorizationError::EndsBeforeStart);
                }
                AuthorizationEvent::AuthorizationGranted {
                    id,
                    terms,
                    granted_at: now,
                }
            }
            AuthorizationCommand::Revoke { reason } => {
                self.live()?;
                AuthorizationEvent::AuthorizationRevoked {
                    reason,
                    revoked_at: now,
                }
            }
            AuthorizationCommand::Object { shipper, reason } => {
                self.live()?;
                if self.objections.contains(&shipper) {
                    return Err(AuthorizationError::AlreadyObjected);
                }
                AuthorizationEvent::ShipperObjected {
                    shipper,
                    reason: reason.into(),
                    objected_at: now,
                }
            }
            AuthorizationCommand::WithdrawObjection { shipper } => {
                if !self.granted {
                    return Err(AuthorizationError::NotFound);
                }
                if !self.objections.contains(&shipper) {
                    return Err(AuthorizationError::NoObjection);
                }
                AuthorizationEvent::ObjectionWithdrawn {
                    shipper,
                    withdrawn_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AuthorizationEvent::AuthorizationGranted { .. } => self.granted = true,
            AuthorizationEvent::AuthorizationRevoked { .. } => self.revoked = true,
            AuthorizationEvent::ShipperObjected { shipper, .. } => {
                self.objections.insert(shipper);
            }
            AuthorizationEvent::ObjectionWithdrawn { shipper, .. } => {
                self.objections.remove(&shipper);
            }
        }
    }
}

impl Authorization {
    /// Granted and not revoked.
    fn live(&self) -> Result<(), AuthorizationError> {
        match (self.granted, self.revoked) {
            (false, _) => Err(AuthorizationError::NotFound),
            (true, true) => Err(AuthorizationError::AlreadyRevoked),
            (true, false) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{services, t0};

    fn id<T: std::str::FromStr>(n: u32) -> T
    where
        T::Err: std::fmt::Debug,
    {
        format!("0190d5f6-0000-7000-8000-{n:012}")
            .parse()
            .expect("an id")
    }

    fn terms(basis: LegalBasis, until: Option<DateTime<Utc>>) -> AuthorizationTerms {
        AuthorizationTerms {
            partner: id(2),
            dpa: id(3),
            scope: AuthorizationScope {
                carriers: Some(
                    NonEmptySet::new(vec![CarrierCode::parse("DHL").expect("code")]).expect("set"),
                ),
                destination_countries: None,
                shipper_ids: None,
            },
            purposes: NonEmptySet::new(vec![Purpose::SupplyChainVisibility]).expect("set"),
            data_categories: NonEmptySet::new(vec![DataCategory::StatusEvents]).expect("set"),
            legal_basis: basis,
            valid_from: t0(),
            valid_until: until,
        }
    }

    fn granted() -> AuthorizationEvent {
        AuthorizationEvent::AuthorizationGranted {
            id: id(1),
            terms: terms(LegalBasis::LegitimateInterests, None),
            granted_at: t0(),
        }
    }

    fn given() -> TestFramework<Authorization> {
        TestFramework::with(services())
    }

    #[test]
    fn grants_on_a_basis_other_than_consent_with_a_sound_period() {
        given()
            .given_no_previous_events()
            .when(AuthorizationCommand::Grant {
                id: id(1),
                terms: terms(LegalBasis::LegitimateInterests, None),
            })
            .then_expect_events(vec![granted()]);
        given()
            .given_no_previous_events()
            .when(AuthorizationCommand::Grant {
                id: id(1),
                terms: terms(LegalBasis::Consent, None),
            })
            .then_expect_error(AuthorizationError::ConsentIsNoBasis);
        given()
            .given_no_previous_events()
            .when(AuthorizationCommand::Grant {
                id: id(1),
                terms: terms(LegalBasis::Contract, Some(t0() - Duration::days(1))),
            })
            .then_expect_error(AuthorizationError::EndsBeforeStart);
        given()
            .given(vec![granted()])
            .when(AuthorizationCommand::Grant {
                id: id(1),
                terms: terms(LegalBasis::Contract, None),
            })
            .then_expect_error(AuthorizationError::AlreadyGranted);
    }

    #[test]
    fn a_shipper_objects_once_and_may_withdraw_and_a_revoked_one_takes_neither() {
        let shipper: ShipperId = id(7);
        let reason = Reason::parse("we did not agree to this").expect("reason");
        let objected = AuthorizationEvent::ShipperObjected {
            shipper,
            reason: reason.clone().into(),
            objected_at: t0(),
        };
        given()
            .given(vec![granted()])
            .when(AuthorizationCommand::Object {
                shipper,
                reason: reason.clone(),
            })
            .then_expect_events(vec![objected.clone()]);
        given()
            .given(vec![granted(), objected.clone()])
            .when(AuthorizationCommand::Object {
                shipper,
                reason: reason.clone(),
            })
            .then_expect_error(AuthorizationError::AlreadyObjected);
        given()
            .given(vec![granted(), objected.clone()])
            .when(AuthorizationCommand::WithdrawObjection { shipper })
            .then_expect_events(vec![AuthorizationEvent::ObjectionWithdrawn {
                shipper,
                withdrawn_at: t0(),
            }]);
        given()
            .given(vec![granted()])
            .when(AuthorizationCommand::WithdrawObjection { shipper })
            .then_expect_error(AuthorizationError::NoObjection);
        let revoked = AuthorizationEvent::AuthorizationRevoked {
            reason: None,
            revoked_at: t0(),
        };
        given()
            .given(vec![granted(), revoked.clone()])
            .when(AuthorizationCommand::Object { shipper, reason })
            .then_expect_error(AuthorizationError::AlreadyRevoked);
        given()
            .given(vec![granted(), revoked])
            .when(AuthorizationCommand::Revoke { reason: None })
            .then_expect_error(AuthorizationError::AlreadyRevoked);
        given()
            .given_no_previous_events()
            .when(AuthorizationCommand::Revoke { reason: None })
            .then_expect_error(AuthorizationError::NotFound);
    }
}

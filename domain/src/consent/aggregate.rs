use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::consent::{ConsentCommand, ConsentEvent};
use crate::services::LedgerServices;
use crate::terms::{check_validity, ValidityError};
use crate::values::{PartnerId, PartnerStatus, ShipmentId};

/// Why a consent command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    #[error("this consent is already granted")]
    AlreadyGranted,
    #[error("no such consent")]
    NotFound,
    #[error("partner {0} does not exist")]
    UnknownPartner(PartnerId),
    #[error("partner {0} is suspended and can receive no grant")]
    PartnerSuspended(PartnerId),
    #[error("shipment {0} is not one of this shipper's shipments")]
    ForeignShipment(ShipmentId),
    #[error(transparent)]
    Validity(#[from] ValidityError),
    #[error("the consent is already revoked")]
    AlreadyRevoked,
    #[error("the partner was already told")]
    AlreadyNoticed,
    #[error("the consent has no end, or it is not near")]
    NotExpiring,
}

/// Where a consent stands in its life cycle. Expiry is not a state: it is evaluated by time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    #[default]
    NotGranted,
    Active,
    Revoked,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    state: ConsentState,
    valid_until: Option<DateTime<Utc>>,
    #[serde(default)]
    noticed_expiring: bool,
    #[serde(default)]
    noticed_expired: bool,
}

impl Aggregate for Consent {
    const TYPE: &'static str = "consent";
    type Command = ConsentCommand;
    type Event = ConsentEvent;
    type Error = ConsentError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            ConsentCommand::GrantConsent {
                id,
                shipper,
                partner,
                scope,
                purposes,
                data_categories,
                legal_basis,
                dpa_ref,
                valid_from,
                valid_until,
                origin_request,
            } => {
                if self.state != ConsentState::NotGranted {
                    return Err(ConsentError::AlreadyGranted);
                }
                let facts = services
                    .directory
                    .partner(partner)
                    .ok_or(ConsentError::UnknownPartner(partner))?;
                if facts.status == PartnerStatus::Suspended {
                    return Err(ConsentError::PartnerSuspended(partner));
                }
                if let Some(foreign) = scope.foreign_shipment(shipper, services.directory.as_ref())
                {
                    return Err(ConsentError::ForeignShipment(foreign));
                }
                let valid_from = valid_from.unwrap_or(now);
                check_validity(valid_from, valid_until, now)?;
                ConsentEvent::ConsentGranted {
                    id,
                    shipper,
                    partner,
                    scope,
                    purposes,
                    data_categories,
                    legal_basis,
                    dpa_ref: dpa_ref.unwrap_or(facts.dpa_ref),
                    valid_from,
                    valid_until,
                    origin_request,
                    granted_at: now,
                }
            }
            ConsentCommand::RevokeConsent { revoked_by, reason } => {
                match self.state {
                    ConsentState::NotGranted => return Err(ConsentError::NotFound),
                    ConsentState::Revoked => return Err(ConsentError::AlreadyRevoked),
                    ConsentState::Active => {}
                }
                ConsentEvent::ConsentRevoked {
                    revoked_by,
                    reason: reason.into(),
                    revoked_at: now,
                }
            }
            ConsentCommand::NoticeExpiry { expired } => {
                match self.state {
                    ConsentState::NotGranted => return Err(ConsentError::NotFound),
                    ConsentState::Revoked => return Err(ConsentError::AlreadyRevoked),
                    ConsentState::Active => {}
                }
                let valid_until = self.valid_until.ok_or(ConsentError::NotExpiring)?;
                if expired && now < valid_until {
                    return Err(ConsentError::NotExpiring);
                }
                let told = if expired {
                    self.noticed_expired
                } else {
                    // Past its end, "about to expire" is moot.
                    self.noticed_expiring || now >= valid_until
                };
                if told {
                    return Err(ConsentError::AlreadyNoticed);
                }
                ConsentEvent::ConsentExpiryNoticed {
                    expired,
                    valid_until,
                    noticed_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ConsentEvent::ConsentGranted { valid_until, .. } => {
                self.state = ConsentState::Active;
                self.valid_until = valid_until;
            }
            ConsentEvent::ConsentRevoked { .. } => self.state = ConsentState::Revoked,
            ConsentEvent::ConsentExpiryNoticed { expired: false, .. } => {
                self.noticed_expiring = true;
            }
            ConsentEvent::ConsentExpiryNoticed { expired: true, .. } => {
                self.noticed_expired = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::terms::ConsentScope;
    use crate::testing::{services_with, t0, TestDirectory};
    use crate::values::{
        ConsentId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PrincipalId, Purpose, Reason,
        ShipperId,
    };

    fn uuid(n: u32) -> String {
        format!("0190d5f6-0000-7000-8000-{n:012}")
    }
    fn shipper() -> ShipperId {
        ShipperId::parse(&uuid(1)).unwrap()
    }
    fn partner() -> PartnerId {
        PartnerId::parse(&uuid(2)).unwrap()
    }
    fn own_shipment() -> ShipmentId {
        ShipmentId::parse(&uuid(3)).unwrap()
    }
    fn foreign_shipment() -> ShipmentId {
        ShipmentId::parse(&uuid(4)).unwrap()
    }

    fn directory(status: PartnerStatus) -> Arc<TestDirectory> {
        let dir = Arc::new(TestDirectory::default());
        dir.partner(partner(), status);
        dir.shipment(own_shipment(), shipper());
        dir.shipment(foreign_shipment(), ShipperId::parse(&uuid(9)).unwrap());
        dir
    }

    fn given(status: PartnerStatus) -> TestFramework<Consent> {
        TestFramework::with(services_with(directory(status)).0)
    }

    fn grant(scope: ConsentScope, valid_until: Option<DateTime<Utc>>) -> ConsentCommand {
        ConsentCommand::GrantConsent {
            id: ConsentId::parse(&uuid(5)).unwrap(),
            shipper: shipper(),
            partner: partner(),
            scope,
            purposes: NonEmptySet::new(vec![Purpose::InsuranceClaim]).unwrap(),
            data_categories: NonEmptySet::new(vec![DataCategory::StatusEvents]).unwrap(),
            legal_basis: LegalBasis::Contract,
            dpa_ref: None,
            valid_from: None,
            valid_until,
            origin_request: None,
        }
    }
    fn shipments(id: ShipmentId) -> ConsentScope {
        ConsentScope::Shipments {
            shipment_ids: NonEmptySet::new(vec![id]).unwrap(),
        }
    }
    fn granted() -> ConsentEvent {
        ConsentEvent::ConsentGranted {
            id: ConsentId::parse(&uuid(5)).unwrap(),
            shipper: shipper(),
            partner: partner(),
            scope: shipments(own_shipment()),
            purposes: NonEmptySet::new(vec![Purpose::InsuranceClaim]).unwrap(),
            data_categories: NonEmptySet::new(vec![DataCategory::StatusEvents]).unwrap(),
            legal_basis: LegalBasis::Contract,
            dpa_ref: DpaRef::parse("DPA-DEFAULT").unwrap(),
            valid_from: t0(),
            valid_until: None,
            origin_request: None,
            granted_at: t0(),
        }
    }
    fn revoke() -> ConsentCommand {
        ConsentCommand::RevokeConsent {
            revoked_by: shipper().into(),
            reason: Reason::parse("customer objected").unwrap(),
        }
    }

    #[test]
    fn grants_over_own_shipments_with_the_partners_dpa_by_default() {
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(grant(shipments(own_shipment()), None))
            .then_expect_events(vec![granted()]);
    }

    #[test]
    fn refuses_a_shipment_of_another_shipper() {
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(grant(shipments(foreign_shipment()), None))
            .then_expect_error(ConsentError::ForeignShipment(foreign_shipment()));
    }

    #[test]
    fn shipper_wide_scope_needs_no_shipment() {
        let scope = ConsentScope::Shipper {
            carriers: None,
            destination_countries: None,
        };
        let events = given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(grant(scope, None))
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn refuses_suspended_and_unknown_partners() {
        given(PartnerStatus::Suspended)
            .given_no_previous_events()
            .when(grant(shipments(own_shipment()), None))
            .then_expect_error(ConsentError::PartnerSuspended(partner()));
        TestFramework::<Consent>::with(services_with(Arc::default()).0)
            .given_no_previous_events()
            .when(grant(shipments(own_shipment()), None))
            .then_expect_error(ConsentError::UnknownPartner(partner()));
    }

    #[test]
    fn valid_until_must_follow_valid_from_and_lie_ahead() {
        let mut cmd = grant(shipments(own_shipment()), Some(t0() + Duration::days(1)));
        if let ConsentCommand::GrantConsent { valid_from, .. } = &mut cmd {
            *valid_from = Some(t0() + Duration::days(2));
        }
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(ValidityError::EndsBeforeItStarts.into());
        let mut cmd = grant(shipments(own_shipment()), Some(t0() - Duration::days(1)));
        if let ConsentCommand::GrantConsent { valid_from, .. } = &mut cmd {
            *valid_from = Some(t0() - Duration::minutes(1));
        }
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(ValidityError::EndsBeforeItStarts.into());
        // Within the tolerated clock skew a start may lie just behind; an end may not.
        let mut cmd = grant(shipments(own_shipment()), Some(t0() - Duration::minutes(1)));
        if let ConsentCommand::GrantConsent { valid_from, .. } = &mut cmd {
            *valid_from = Some(t0() - Duration::minutes(3));
        }
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(ValidityError::AlreadyOver.into());
    }

    #[test]
    fn consent_is_never_backdated() {
        let mut cmd = grant(shipments(own_shipment()), None);
        if let ConsentCommand::GrantConsent { valid_from, .. } = &mut cmd {
            *valid_from = Some(t0() - Duration::days(30));
        }
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(ValidityError::StartsInThePast.into());
    }

    #[test]
    fn grants_once() {
        given(PartnerStatus::Active)
            .given(vec![granted()])
            .when(grant(shipments(own_shipment()), None))
            .then_expect_error(ConsentError::AlreadyGranted);
    }

    #[test]
    fn revokes_exactly_once() {
        let revoked = ConsentEvent::ConsentRevoked {
            revoked_by: PrincipalId::from(shipper()),
            reason: Reason::parse("customer objected").unwrap().into(),
            revoked_at: t0(),
        };
        given(PartnerStatus::Active)
            .given(vec![granted()])
            .when(revoke())
            .then_expect_events(vec![revoked.clone()]);
        given(PartnerStatus::Active)
            .given(vec![granted(), revoked])
            .when(revoke())
            .then_expect_error(ConsentError::AlreadyRevoked);
        given(PartnerStatus::Active)
            .given_no_previous_events()
            .when(revoke())
            .then_expect_error(ConsentError::NotFound);
    }
}

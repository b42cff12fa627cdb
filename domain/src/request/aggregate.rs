use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::request::{ConsentRequestCommand, ConsentRequestEvent};
use crate::services::LedgerServices;
use crate::terms::{check_validity, ConsentScope, ValidityError};
use crate::values::{
    DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId, PartnerStatus, Purpose, ShipmentId,
    ShipperId,
};

/// Why a consent-request command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentRequestError {
    #[error("this request is already submitted")]
    AlreadySubmitted,
    #[error("no such consent request")]
    NotFound,
    #[error("partner {0} does not exist")]
    UnknownPartner(PartnerId),
    #[error("partner {0} is suspended")]
    PartnerSuspended(PartnerId),
    #[error("shipper {0} is not a registered shipper")]
    UnknownShipper(ShipperId),
    #[error("shipment {0} is not one of this shipper's shipments")]
    ForeignShipment(ShipmentId),
    #[error(transparent)]
    Validity(#[from] ValidityError),
    #[error("the request is {0:?}, not pending")]
    NotPending(RequestStatus),
    #[error("the request expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the request does not expire before {0}")]
    NotYetExpired(DateTime<Utc>),
    #[error("approval may narrow but never widen the purposes asked for")]
    WidensPurposes,
    #[error("approval may narrow but never widen the data categories asked for")]
    WidensDataCategories,
    #[error("approval may shorten but never extend the validity asked for")]
    WidensValidity,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    #[default]
    NotSubmitted,
    Pending,
    Approved,
    Denied,
    Withdrawn,
    Expired,
}

/// What a shipper may narrow when approving. `None` keeps what was asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Narrowing {
    pub purposes: Option<NonEmptySet<Purpose>>,
    pub data_categories: Option<NonEmptySet<DataCategory>>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// The terms of the consent an approval grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedTerms {
    pub partner: PartnerId,
    pub shipper: ShipperId,
    pub scope: ConsentScope,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    pub dpa_ref: Option<DpaRef>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRequest {
    status: RequestStatus,
    asked: Option<AskedTerms>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AskedTerms {
    partner: PartnerId,
    shipper: ShipperId,
    scope: ConsentScope,
    purposes: NonEmptySet<Purpose>,
    data_categories: NonEmptySet<DataCategory>,
    legal_basis: LegalBasis,
    dpa_ref: Option<DpaRef>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
}

impl ConsentRequest {
    pub fn status(&self) -> RequestStatus {
        self.status
    }

    /// The consent an approval with `narrowing` would grant at `now`, or why it may not.
    /// Both the approve handler and the API (which grants the consent first) call this, so the
    /// rule lives in one place.
    pub fn approval(
        &self,
        narrowing: &Narrowing,
        now: DateTime<Utc>,
    ) -> Result<ApprovedTerms, ConsentRequestError> {
        let asked = self.pending_at(now)?;
        let purposes = match &narrowing.purposes {
            Some(p) if !p.is_subset_of(&asked.purposes) => {
                return Err(ConsentRequestError::WidensPurposes)
            }
            Some(p) => p.clone(),
            None => asked.purposes.clone(),
        };
        let data_categories = match &narrowing.data_categories {
            Some(c) if !c.is_subset_of(&asked.data_categories) => {
                return Err(ConsentRequestError::WidensDataCategories)
            }
            Some(c) => c.clone(),
            None => asked.data_categories.clone(),
        };
        let valid_until = match (narrowing.valid_until, asked.valid_until) {
            (Some(new), Some(old)) if new > old => return Err(ConsentRequestError::WidensValidity),
            (Some(new), _) => Some(new),
            (None, old) => old,
        };
        check_validity(asked.valid_from.unwrap_or(now), valid_until, now)?;
        Ok(ApprovedTerms {
            partner: asked.partner,
            shipper: asked.shipper,
            scope: asked.scope.clone(),
            purposes,
            data_categories,
            legal_basis: asked.legal_basis,
            dpa_ref: asked.dpa_ref.clone(),
            valid_from: asked.valid_from,
            valid_until,
        })
    }

    fn pending_at(&self, now: DateTime<Utc>) -> Result<&AskedTerms, ConsentRequestError> {
        let (RequestStatus::Pending, Some(asked), Some(expires_at)) =
            (self.status, &self.asked, self.expires_at)
        else {
            return Err(match self.status {
                RequestStatus::NotSubmitted => ConsentRequestError::NotFound,
                other => ConsentRequestError::NotPending(other),
            });
        };
        if now >= expires_at {
            return Err(ConsentRequestError::Expired(expires_at));
        }
        Ok(asked)
    }
}

impl Aggregate for ConsentRequest {
    const TYPE: &'static str = "consent_request";
    type Command = ConsentRequestCommand;
    type Event = ConsentRequestEvent;
    type Error = ConsentRequestError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            ConsentRequestCommand::SubmitConsentRequest {
                id,
                partner,
                shipper,
                scope,
                purposes,
                data_categories,
                legal_basis,
                dpa_ref,
                valid_from,
                valid_until,
                justification,
                ttl,
            } => {
                if self.status != RequestStatus::NotSubmitted {
                    return Err(ConsentRequestError::AlreadySubmitted);
                }
                let directory = services.directory.as_ref();
                match directory.partner(partner) {
                    None => return Err(ConsentRequestError::UnknownPartner(partner)),
                    Some(f) if f.status == PartnerStatus::Suspended => {
                        return Err(ConsentRequestError::PartnerSuspended(partner))
                    }
                    Some(_) => {}
                }
                if !directory.is_shipper(shipper) {
                    return Err(ConsentRequestError::UnknownShipper(shipper));
                }
                if let Some(foreign) = scope.foreign_shipment(shipper, directory) {
                    return Err(ConsentRequestError::ForeignShipment(foreign));
                }
                check_validity(valid_from.unwrap_or(now), valid_until, now)?;
                ConsentRequestEvent::ConsentRequestSubmitted {
                    id,
                    partner,
                    shipper,
                    scope,
                    purposes,
                    data_categories,
                    legal_basis,
                    dpa_ref,
                    valid_from,
                    valid_until,
                    justification: justification.into(),
                    submitted_at: now,
                    expires_at: now + ttl,
                }
            }
            ConsentRequestCommand::ApproveConsentRequest {
                consent_id,
                narrowing,
            } => {
                let terms = self.approval(&narrowing, now)?;
                ConsentRequestEvent::ConsentRequestApproved {
                    consent_id,
                    purposes: terms.purposes,
                    data_categories: terms.data_categories,
                    valid_until: terms.valid_until,
                    approved_at: now,
                }
            }
            ConsentRequestCommand::DenyConsentRequest { reason } => {
                self.pending_at(now)?;
                ConsentRequestEvent::ConsentRequestDenied {
                    reason: reason.into(),
                    denied_at: now,
                }
            }
            ConsentRequestCommand::WithdrawConsentRequest => {
                self.pending_at(now)?;
                ConsentRequestEvent::ConsentRequestWithdrawn { withdrawn_at: now }
            }
            ConsentRequestCommand::ExpireConsentRequest => match self.pending_at(now) {
                Err(ConsentRequestError::Expired(_)) => {
                    ConsentRequestEvent::ConsentRequestExpired { expired_at: now }
                }
                Err(other) => return Err(other),
                Ok(_) => {
                    return Err(ConsentRequestError::NotYetExpired(
                        self.expires_at.unwrap_or(now),
                    ))
                }
            },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ConsentRequestEvent::ConsentRequestSubmitted {
                partner,
                shipper,
                scope,
                purposes,
                data_categories,
                legal_basis,
                dpa_ref,
                valid_from,
                valid_until,
                expires_at,
                ..
            } => {
                self.status = RequestStatus::Pending;
                self.expires_at = Some(expires_at);
                self.asked = Some(AskedTerms {
                    partner,
                    shipper,
                    scope,
                    purposes,
                    data_categories,
                    legal_basis,
                    dpa_ref,
                    valid_from,
                    valid_until,
                });
            }
            ConsentRequestEvent::ConsentRequestApproved { .. } => {
                self.status = RequestStatus::Approved
            }
            ConsentRequestEvent::ConsentRequestDenied { .. } => self.status = RequestStatus::Denied,
            ConsentRequestEvent::ConsentRequestWithdrawn { .. } => {
                self.status = RequestStatus::Withdrawn
            }
            ConsentRequestEvent::ConsentRequestExpired { .. } => {
                self.status = RequestStatus::Expired
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
    use crate::testing::{services_with, t0, TestDirectory};
    use crate::values::{ConsentId, ConsentRequestId, Reason};

    fn uuid(n: u32) -> String {
        format!("0190d5f6-0000-7000-8000-{n:012}")
    }
    fn shipper() -> ShipperId {
        ShipperId::parse(&uuid(1)).unwrap()
    }
    fn partner() -> PartnerId {
        PartnerId::parse(&uuid(2)).unwrap()
    }
    fn consent_id() -> ConsentId {
        ConsentId::parse(&uuid(7)).unwrap()
    }
    fn purposes(p: &[Purpose]) -> NonEmptySet<Purpose> {
        NonEmptySet::new(p.to_vec()).unwrap()
    }
    fn categories(c: &[DataCategory]) -> NonEmptySet<DataCategory> {
        NonEmptySet::new(c.to_vec()).unwrap()
    }
    fn scope() -> ConsentScope {
        ConsentScope::Shipper {
            carriers: None,
            destination_countries: None,
        }
    }

    fn framework() -> TestFramework<ConsentRequest> {
        let dir = Arc::new(TestDirectory::default());
        dir.partner(partner(), PartnerStatus::Active);
        dir.shipper(shipper());
        TestFramework::with(services_with(dir).0)
    }

    fn submitted() -> ConsentRequestEvent {
        ConsentRequestEvent::ConsentRequestSubmitted {
            id: ConsentRequestId::parse(&uuid(6)).unwrap(),
            partner: partner(),
            shipper: shipper(),
            scope: scope(),
            purposes: purposes(&[Purpose::InsuranceClaim, Purpose::CustomerService]),
            data_categories: categories(&[DataCategory::StatusEvents, DataCategory::Location]),
            legal_basis: LegalBasis::Contract,
            dpa_ref: None,
            valid_from: None,
            valid_until: Some(t0() + Duration::days(90)),
            justification: Reason::parse("claims handling").unwrap().into(),
            submitted_at: t0(),
            expires_at: t0() + Duration::days(30),
        }
    }

    fn submit() -> ConsentRequestCommand {
        ConsentRequestCommand::SubmitConsentRequest {
            id: ConsentRequestId::parse(&uuid(6)).unwrap(),
            partner: partner(),
            shipper: shipper(),
            scope: scope(),
            purposes: purposes(&[Purpose::InsuranceClaim, Purpose::CustomerService]),
            data_categories: categories(&[DataCategory::StatusEvents, DataCategory::Location]),
            legal_basis: LegalBasis::Contract,
            dpa_ref: None,
            valid_from: None,
            valid_until: Some(t0() + Duration::days(90)),
            justification: Reason::parse("claims handling").unwrap(),
            ttl: Duration::days(30),
        }
    }

    fn approve(narrowing: Narrowing) -> ConsentRequestCommand {
        ConsentRequestCommand::ApproveConsentRequest {
            consent_id: consent_id(),
            narrowing,
        }
    }

    #[test]
    fn submits_with_an_expiry_ttl_after_now() {
        framework()
            .given_no_previous_events()
            .when(submit())
            .then_expect_events(vec![submitted()]);
    }

    #[test]
    fn submitting_needs_a_known_shipper() {
        TestFramework::<ConsentRequest>::with(
            services_with(Arc::new({
                let d = TestDirectory::default();
                d.partner(partner(), PartnerStatus::Active);
                d
            }))
            .0,
        )
        .given_no_previous_events()
        .when(submit())
        .then_expect_error(ConsentRequestError::UnknownShipper(shipper()));
    }

    #[test]
    fn approval_may_narrow() {
        framework()
            .given(vec![submitted()])
            .when(approve(Narrowing {
                purposes: Some(purposes(&[Purpose::InsuranceClaim])),
                data_categories: Some(categories(&[DataCategory::StatusEvents])),
                valid_until: Some(t0() + Duration::days(10)),
            }))
            .then_expect_events(vec![ConsentRequestEvent::ConsentRequestApproved {
                consent_id: consent_id(),
                purposes: purposes(&[Purpose::InsuranceClaim]),
                data_categories: categories(&[DataCategory::StatusEvents]),
                valid_until: Some(t0() + Duration::days(10)),
                approved_at: t0(),
            }]);
    }

    #[test]
    fn approval_never_widens() {
        let wider_purposes = Narrowing {
            purposes: Some(purposes(&[Purpose::FraudPrevention])),
            ..Default::default()
        };
        framework()
            .given(vec![submitted()])
            .when(approve(wider_purposes))
            .then_expect_error(ConsentRequestError::WidensPurposes);
        let wider_categories = Narrowing {
            data_categories: Some(categories(&[DataCategory::RecipientContact])),
            ..Default::default()
        };
        framework()
            .given(vec![submitted()])
            .when(approve(wider_categories))
            .then_expect_error(ConsentRequestError::WidensDataCategories);
        let longer = Narrowing {
            valid_until: Some(t0() + Duration::days(91)),
            ..Default::default()
        };
        framework()
            .given(vec![submitted()])
            .when(approve(longer))
            .then_expect_error(ConsentRequestError::WidensValidity);
    }

    #[test]
    fn only_a_pending_request_is_approved_denied_or_withdrawn() {
        let denied = ConsentRequestEvent::ConsentRequestDenied {
            reason: Reason::parse("no").unwrap().into(),
            denied_at: t0(),
        };
        framework()
            .given(vec![submitted()])
            .when(ConsentRequestCommand::DenyConsentRequest {
                reason: Reason::parse("no").unwrap(),
            })
            .then_expect_events(vec![denied.clone()]);
        for command in [
            approve(Narrowing::default()),
            ConsentRequestCommand::DenyConsentRequest {
                reason: Reason::parse("no").unwrap(),
            },
            ConsentRequestCommand::WithdrawConsentRequest,
        ] {
            framework()
                .given(vec![submitted(), denied.clone()])
                .when(command)
                .then_expect_error(ConsentRequestError::NotPending(RequestStatus::Denied));
        }
        framework()
            .given(vec![submitted()])
            .when(ConsentRequestCommand::WithdrawConsentRequest)
            .then_expect_events(vec![ConsentRequestEvent::ConsentRequestWithdrawn {
                withdrawn_at: t0(),
            }]);
        framework()
            .given_no_previous_events()
            .when(ConsentRequestCommand::WithdrawConsentRequest)
            .then_expect_error(ConsentRequestError::NotFound);
    }

    #[test]
    fn a_request_expires_by_time() {
        let dir = Arc::new(TestDirectory::default());
        let (services, clock) = services_with(dir);
        TestFramework::<ConsentRequest>::with(services.clone())
            .given(vec![submitted()])
            .when(ConsentRequestCommand::ExpireConsentRequest)
            .then_expect_error(ConsentRequestError::NotYetExpired(
                t0() + Duration::days(30),
            ));
        clock.advance(Duration::days(30));
        TestFramework::<ConsentRequest>::with(services.clone())
            .given(vec![submitted()])
            .when(approve(Narrowing::default()))
            .then_expect_error(ConsentRequestError::Expired(t0() + Duration::days(30)));
        TestFramework::<ConsentRequest>::with(services)
            .given(vec![submitted()])
            .when(ConsentRequestCommand::ExpireConsentRequest)
            .then_expect_events(vec![ConsentRequestEvent::ConsentRequestExpired {
                expired_at: t0() + Duration::days(30),
            }]);
    }
}

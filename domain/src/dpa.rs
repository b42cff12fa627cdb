//! The carrier's register of data processing agreements (SPEC §16): with whom, in which role
//! (processor, independent or joint controller), signed when and valid until when, with which
//! sub-processors in which countries, under which transfer mechanism, and the SHA-256 of the
//! signed document. A carrier authorization rests on one in force; an authorization's reads
//! name it. Registered and terminated by an admin; never edited (a new agreement is a new
//! entry), so the log shows which one stood when.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::services::LedgerServices;
use crate::values::{
    CountryCode, DisplayName, DpaId, DpaRef, DpaRole, PartnerId, Reason, TransferMechanism,
};

/// A sub-processor the partner may pass the data to, and where it processes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubProcessor {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: DisplayName,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "DE"))]
    pub country: CountryCode,
    /// The sub-processor's partner id, when it is a partner of this ledger (a relayed read's
    /// recipient, SPEC §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub partner_id: Option<PartnerId>,
}

/// What an admin registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpaTerms {
    pub partner: PartnerId,
    pub reference: DpaRef,
    pub role: DpaRole,
    pub signed_at: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub sub_processors: Vec<SubProcessor>,
    pub transfer_mechanism: Option<TransferMechanism>,
    /// Hex SHA-256 of the signed document, 64 lower-case hex digits.
    pub document_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DpaCommand {
    Register { id: DpaId, terms: DpaTerms },
    Terminate { reason: Option<Reason> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DpaEvent {
    DpaRegistered {
        id: DpaId,
        terms: DpaTerms,
        registered_at: DateTime<Utc>,
    },
    DpaTerminated {
        reason: Option<Reason>,
        terminated_at: DateTime<Utc>,
    },
}

impl DomainEvent for DpaEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DpaRegistered { .. } => "DpaRegistered",
            Self::DpaTerminated { .. } => "DpaTerminated",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// Why a DPA command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpaError {
    #[error("this DPA is already registered")]
    AlreadyRegistered,
    #[error("no such DPA")]
    NotFound,
    #[error("the DPA is already terminated")]
    AlreadyTerminated,
    #[error("valid_until must be after signed_at")]
    EndsBeforeSigned,
    #[error("document_sha256 must be 64 lower-case hex digits")]
    BadDocumentHash,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dpa {
    registered: bool,
    terminated: bool,
}

impl Aggregate for Dpa {
    const TYPE: &'static str = "dpa";
    type Command = DpaCommand;
    type Event = DpaEvent;
    type Error = DpaError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            DpaCommand::Register { id, terms } => {
                if self.registered {
                    return Err(DpaError::AlreadyRegistered);
                }
                if terms.valid_until.is_some_and(|u| u <= terms.signed_at) {
                    return Err(DpaError::EndsBeforeSigned);
                }
                if terms.document_sha256.as_deref().is_some_and(|h| {
                    h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                }) {
                    return Err(DpaError::BadDocumentHash);
                }
                DpaEvent::DpaRegistered {
                    id,
                    terms,
                    registered_at: now,
                }
            }
            DpaCommand::Terminate { reason } => {
                if !self.registered {
                    return Err(DpaError::NotFound);
                }
                if self.terminated {
                    return Err(DpaError::AlreadyTerminated);
                }
                DpaEvent::DpaTerminated {
                    reason,
                    terminated_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DpaEvent::DpaRegistered { .. } => self.registered = true,
            DpaEvent::DpaTerminated { .. } => self.terminated = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{services, t0};

    fn terms(until: Option<DateTime<Utc>>, hash: Option<&str>) -> DpaTerms {
        DpaTerms {
            partner: "0190d5f6-0000-7000-8000-000000000002"
                .parse()
                .expect("an id"),
            reference: DpaRef::parse("DPA-2026-7").expect("reference"),
            role: DpaRole::Processor,
            signed_at: t0(),
            valid_until: until,
            sub_processors: Vec::new(),
            transfer_mechanism: Some(TransferMechanism::Scc),
            document_sha256: hash.map(str::to_owned),
        }
    }

    fn id() -> DpaId {
        "0190d5f6-0000-7000-8000-000000000001"
            .parse()
            .expect("an id")
    }

    #[test]
    fn registers_once_with_a_sound_period_and_hash_then_terminates_once() {
        let good = terms(Some(t0() + Duration::days(365)), Some(&"ab".repeat(32)));
        let registered = DpaEvent::DpaRegistered {
            id: id(),
            terms: good.clone(),
            registered_at: t0(),
        };
        TestFramework::<Dpa>::with(services())
            .given_no_previous_events()
            .when(DpaCommand::Register {
                id: id(),
                terms: good.clone(),
            })
            .then_expect_events(vec![registered.clone()]);
        for (bad, error) in [
            (terms(Some(t0()), None), DpaError::EndsBeforeSigned),
            (terms(None, Some("AB")), DpaError::BadDocumentHash),
            (
                terms(None, Some(&"AB".repeat(32))),
                DpaError::BadDocumentHash,
            ),
        ] {
            TestFramework::<Dpa>::with(services())
                .given_no_previous_events()
                .when(DpaCommand::Register {
                    id: id(),
                    terms: bad,
                })
                .then_expect_error(error);
        }
        TestFramework::<Dpa>::with(services())
            .given(vec![registered.clone()])
            .when(DpaCommand::Register {
                id: id(),
                terms: good,
            })
            .then_expect_error(DpaError::AlreadyRegistered);
        let terminated = DpaEvent::DpaTerminated {
            reason: None,
            terminated_at: t0(),
        };
        TestFramework::<Dpa>::with(services())
            .given(vec![registered.clone()])
            .when(DpaCommand::Terminate { reason: None })
            .then_expect_events(vec![terminated.clone()]);
        TestFramework::<Dpa>::with(services())
            .given(vec![registered, terminated])
            .when(DpaCommand::Terminate { reason: None })
            .then_expect_error(DpaError::AlreadyTerminated);
        TestFramework::<Dpa>::with(services())
            .given_no_previous_events()
            .when(DpaCommand::Terminate { reason: None })
            .then_expect_error(DpaError::NotFound);
    }
}

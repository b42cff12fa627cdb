//! A partner's subscription to the tracking updates of shipments (SPEC §14): the purpose and
//! data categories it reads them for, and which shipments — those it named (each decided as a
//! read when it subscribed), or every shipment its consents cover, present and future
//! (`consented`, never fanned out per shipment).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::services::LedgerServices;
use crate::values::{DataCategory, NonEmptySet, PartnerId, Purpose, ShipmentId, SubscriptionId};

/// Which shipments a subscription covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SubscriptionScope {
    /// These shipments, each allowed when the subscription was made.
    #[cfg_attr(feature = "openapi", schema(title = "shipments"))]
    Shipments {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        shipment_ids: Vec<ShipmentId>,
    },
    /// Every shipment the partner's consents cover, now and later.
    #[cfg_attr(feature = "openapi", schema(title = "consented"))]
    Consented,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionCommand {
    Create {
        id: SubscriptionId,
        partner: PartnerId,
        purpose: Purpose,
        data_categories: NonEmptySet<DataCategory>,
        scope: SubscriptionScope,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SubscriptionEvent {
    SubscriptionCreated {
        id: SubscriptionId,
        partner: PartnerId,
        purpose: Purpose,
        data_categories: NonEmptySet<DataCategory>,
        scope: SubscriptionScope,
        created_at: DateTime<Utc>,
    },
    SubscriptionDeleted {
        deleted_at: DateTime<Utc>,
    },
}

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SubscriptionCreated { .. } => "SubscriptionCreated",
            Self::SubscriptionDeleted { .. } => "SubscriptionDeleted",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// Why a subscription command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("this subscription already exists")]
    AlreadyCreated,
    #[error("no such subscription")]
    NotFound,
    #[error("the subscription is already deleted")]
    AlreadyDeleted,
    #[error("no shipment of the subscription was allowed")]
    Empty,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    created: bool,
    deleted: bool,
}

impl Aggregate for Subscription {
    const TYPE: &'static str = "subscription";
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            SubscriptionCommand::Create {
                id,
                partner,
                purpose,
                data_categories,
                scope,
            } => {
                if self.created {
                    return Err(SubscriptionError::AlreadyCreated);
                }
                if matches!(&scope, SubscriptionScope::Shipments { shipment_ids } if shipment_ids.is_empty())
                {
                    return Err(SubscriptionError::Empty);
                }
                SubscriptionEvent::SubscriptionCreated {
                    id,
                    partner,
                    purpose,
                    data_categories,
                    scope,
                    created_at: now,
                }
            }
            SubscriptionCommand::Delete => {
                if !self.created {
                    return Err(SubscriptionError::NotFound);
                }
                if self.deleted {
                    return Err(SubscriptionError::AlreadyDeleted);
                }
                SubscriptionEvent::SubscriptionDeleted { deleted_at: now }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SubscriptionEvent::SubscriptionCreated { .. } => self.created = true,
            SubscriptionEvent::SubscriptionDeleted { .. } => self.deleted = true,
        }
    }
}

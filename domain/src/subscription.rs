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
    /// One shipment of it ends: SPEC §14's 14 days after a `delivered` or `returned_to_sender`.
    End {
        shipment_id: ShipmentId,
    },
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
    /// Nothing more of this shipment is sent on it; the partner was told with a final
    /// `tracking.updated` (`"subscription_ended": true`) in this event's commit.
    SubscriptionShipmentEnded {
        shipment_id: ShipmentId,
        ended_at: DateTime<Utc>,
    },
}

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SubscriptionCreated { .. } => "SubscriptionCreated",
            Self::SubscriptionDeleted { .. } => "SubscriptionDeleted",
            Self::SubscriptionShipmentEnded { .. } => "SubscriptionShipmentEnded",
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
    #[error("the subscription does not cover this shipment, or it has ended")]
    NotCovered,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    created: bool,
    deleted: bool,
    /// The shipments it names that have not ended.
    #[serde(default)]
    live: Vec<ShipmentId>,
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
            SubscriptionCommand::End { shipment_id } => {
                if self.deleted || !self.live.contains(&shipment_id) {
                    return Err(SubscriptionError::NotCovered);
                }
                SubscriptionEvent::SubscriptionShipmentEnded {
                    shipment_id,
                    ended_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SubscriptionEvent::SubscriptionCreated { scope, .. } => {
                self.created = true;
                if let SubscriptionScope::Shipments { shipment_ids } = scope {
                    self.live = shipment_ids;
                }
            }
            SubscriptionEvent::SubscriptionDeleted { .. } => self.deleted = true,
            SubscriptionEvent::SubscriptionShipmentEnded { shipment_id, .. } => {
                self.live.retain(|s| *s != shipment_id)
            }
        }
    }
}

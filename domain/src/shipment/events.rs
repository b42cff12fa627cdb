use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{self, Personal};
use crate::values::{
    CarrierCode, CountryCode, RecipientRef, ShipmentId, ShipperId, TrackingNumber,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShipmentEvent {
    ShipmentRegistered {
        id: ShipmentId,
        shipper: ShipperId,
        carrier: CarrierCode,
        tracking_number: Personal<TrackingNumber>,
        destination_country: CountryCode,
        recipient_ref: Option<Personal<RecipientRef>>,
        registered_at: DateTime<Utc>,
    },
}

impl DomainEvent for ShipmentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ShipmentRegistered { .. } => "ShipmentRegistered".into(),
        }
    }
    fn event_version(&self) -> String {
        personal::schema_version(&self.event_type()).into()
    }
}

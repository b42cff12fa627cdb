use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::personal::Personal;
use crate::services::LedgerServices;
use crate::shipment::{ShipmentCommand, ShipmentEvent};
use crate::values::ShipperId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    #[error("this shipment is already registered")]
    AlreadyRegistered,
    #[error("shipper {0} is not a registered shipper")]
    UnknownShipper(ShipperId),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    shipper: Option<ShipperId>,
}

impl Aggregate for Shipment {
    const TYPE: &'static str = "shipment";
    type Command = ShipmentCommand;
    type Event = ShipmentEvent;
    type Error = ShipmentError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let ShipmentCommand::RegisterShipment {
            id,
            shipper,
            carrier,
            tracking_number,
            destination_country,
            recipient_ref,
        } = command;
        if self.shipper.is_some() {
            return Err(ShipmentError::AlreadyRegistered);
        }
        if !services.directory.is_shipper(shipper) {
            return Err(ShipmentError::UnknownShipper(shipper));
        }
        let event = ShipmentEvent::ShipmentRegistered {
            id,
            shipper,
            carrier,
            tracking_number: tracking_number.into(),
            destination_country,
            recipient_ref: recipient_ref.map(Personal::from),
            registered_at: services.now(),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ShipmentEvent::ShipmentRegistered { shipper, .. } => self.shipper = Some(shipper),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{services_with, t0, TestDirectory};
    use crate::values::{CarrierCode, CountryCode, ShipmentId, TrackingNumber};

    fn shipper() -> ShipperId {
        ShipperId::parse("0190d5f6-0000-7000-8000-0000000000aa").unwrap()
    }
    fn register() -> ShipmentCommand {
        ShipmentCommand::RegisterShipment {
            id: ShipmentId::parse("0190d5f6-0000-7000-8000-000000000501").unwrap(),
            shipper: shipper(),
            carrier: CarrierCode::parse("dhl").unwrap(),
            tracking_number: TrackingNumber::parse("JJD0001").unwrap(),
            destination_country: CountryCode::parse("DE").unwrap(),
            recipient_ref: None,
        }
    }
    fn registered() -> ShipmentEvent {
        ShipmentEvent::ShipmentRegistered {
            id: ShipmentId::parse("0190d5f6-0000-7000-8000-000000000501").unwrap(),
            shipper: shipper(),
            carrier: CarrierCode::parse("DHL").unwrap(),
            tracking_number: TrackingNumber::parse("JJD0001").unwrap().into(),
            destination_country: CountryCode::parse("DE").unwrap(),
            recipient_ref: None,
            registered_at: t0(),
        }
    }

    #[test]
    fn registers_a_shipment_of_a_known_shipper_with_the_carrier_upper_cased() {
        let dir = Arc::new(TestDirectory::default());
        dir.shipper(shipper());
        TestFramework::<Shipment>::with(services_with(dir).0)
            .given_no_previous_events()
            .when(register())
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn refuses_an_unknown_shipper_and_a_second_registration() {
        TestFramework::<Shipment>::with(services_with(Arc::default()).0)
            .given_no_previous_events()
            .when(register())
            .then_expect_error(ShipmentError::UnknownShipper(shipper()));
        let dir = Arc::new(TestDirectory::default());
        dir.shipper(shipper());
        TestFramework::<Shipment>::with(services_with(dir).0)
            .given(vec![registered()])
            .when(register())
            .then_expect_error(ShipmentError::AlreadyRegistered);
    }
}

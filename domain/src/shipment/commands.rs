use crate::values::{
    CarrierCode, CountryCode, RecipientRef, ShipmentId, ShipperId, TrackingNumber,
};

#[derive(Debug, Clone, PartialEq)]
pub enum ShipmentCommand {
    /// Register a shipment. The (carrier, tracking number) pair is kept unique by the store,
    /// which claims it in the same transaction as the event.
    RegisterShipment {
        id: ShipmentId,
        shipper: ShipperId,
        carrier: CarrierCode,
        tracking_number: TrackingNumber,
        destination_country: CountryCode,
        recipient_ref: Option<RecipientRef>,
    },
}

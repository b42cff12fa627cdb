//! Shipments (SPEC §3): registered by their shipper or by the carrier's gateway.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{Shipment, ShipmentError};
pub use commands::ShipmentCommand;
pub use events::ShipmentEvent;

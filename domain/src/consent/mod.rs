//! Consents (SPEC §3): a shipper's grant to one partner; active until revoked (terminal).
//! Expiry is a matter of time, evaluated when asked, never an event.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{Consent, ConsentError, ConsentState};
pub use commands::ConsentCommand;
pub use events::ConsentEvent;

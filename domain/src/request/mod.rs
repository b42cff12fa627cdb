//! Consent requests (SPEC §3), modelled on UMA 2.0's request_submitted flow: a partner asks a
//! shipper; the request is then approved (possibly narrower than asked, never wider), denied,
//! withdrawn by the partner, or expires.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{ApprovedTerms, ConsentRequest, ConsentRequestError, Narrowing, RequestStatus};
pub use commands::ConsentRequestCommand;
pub use events::ConsentRequestEvent;

//! Principals (SPEC §2): who may call the API, in which role. A partner is a principal of role
//! `partner` with a partner profile; it can be suspended and reactivated.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{Principal, PrincipalError};
pub use commands::PrincipalCommand;
pub use events::{PartnerProfile, PrincipalEvent};

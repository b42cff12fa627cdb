//! Partner webhooks (SPEC §13, docs/adr/0010). Built so far: a partner's endpoints and their
//! keys ([`endpoints`]), and where a message may be delivered ([`target`]: https only, public
//! addresses only, checked again at every connection). The signatures are
//! `consent_ledger_audit::webhook` (Standard Webhooks `v1a`).

pub mod delivery;
pub mod endpoints;
pub mod expiry;
pub mod metrics;
pub mod outbox;
pub mod target;

//! # consent-ledger domain
//!
//! The consent model of SPEC §2–§3 as cqrs-es aggregates. No I/O: time, new ids and what other
//! aggregates know come in through [`LedgerServices`]. OpenAPI schemas of its values are behind
//! the optional `openapi` feature (the HTTP API turns it on; the domain needs none).
//!
//! # Layout
//! - [`values`]: newtypes for every id and value, each with one fallible constructor.
//! - [`terms`]: consent scope and validity rules shared by grants and requests.
//! - [`principal`], [`shipment`], [`consent`], [`request`]: one aggregate each, with its
//!   commands (imperative), events (past tense) and typed errors in separate files.
//! - [`personal`]: [`personal::Personal`] fields (sealed in leaves by the store) and the
//!   pointers of each event type's personal fields (SPEC §12).
//! - [`erasure`]: the `PersonalDataErased` event an erasure records.
//! - [`webhook`]: partner webhook endpoints (SPEC §13).
//! - [`dpa`]: the carrier's register of data processing agreements (SPEC §16).
//! - [`authorization`]: the carrier's authorizations of tracking intermediaries under a DPA,
//!   and shippers' objections to them (SPEC §16).
//! - [`access`]: the access decision events (allowed, denied with a reason) and the deny reasons.
//! - [`services`]: the clock, the id generator and the directory command handlers may consult.
//! - `country`: ISO 3166-1 alpha-2 codes; `testing`: fixed services for tests.
//!
//! Hot path (a write): `command → Aggregate::handle (decides) → events → Aggregate::apply
//! (cannot fail)`. The access decision itself is not an aggregate: `projections::decider`
//! decides it in memory and records an [`access::AccessEvent`].

pub mod access;
pub mod authorization;
pub mod consent;
mod country;
pub mod dpa;
pub mod erasure;
pub mod personal;
pub mod principal;
pub mod request;
pub mod services;
pub mod shipment;
pub mod subscription;
pub mod terms;
#[doc(hidden)]
pub mod testing;
pub mod values;
pub mod webhook;

pub use services::{
    Clock, Directory, IdGenerator, LedgerServices, ManualClock, PartnerFacts, SystemClock, UuidV7,
};

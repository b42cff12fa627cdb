//! # consent-ledger domain
//!
//! The consent model of SPEC §2–§3 as cqrs-es aggregates. No I/O: time and what other
//! aggregates know come in through [`LedgerServices`].
//!
//! # Layout
//! - [`values`]: newtypes for every id and value, each with one fallible constructor.
//! - [`terms`]: consent scope and validity rules shared by grants and requests.
//! - [`principal`], [`shipment`], [`consent`], [`request`]: one aggregate each, with its
//!   commands (imperative), events (past tense) and typed errors in separate files.
//! - [`services`]: the clock and the directory that command handlers may consult.
//!
//! A write is `command → Aggregate::handle (decides) → events → Aggregate::apply (cannot fail)`.

pub mod access;
pub mod consent;
mod country;
pub mod principal;
pub mod request;
pub mod services;
pub mod shipment;
pub mod terms;
#[doc(hidden)]
pub mod testing;
pub mod values;

pub use services::{
    Clock, Directory, IdGenerator, LedgerServices, ManualClock, PartnerFacts, SystemClock, UuidV7,
};

//! # consent-ledger audit
//!
//! Signing and (later) the RFC 9162 tree math of the verifiable log (SPEC §6). No I/O beyond
//! reading and writing the key file.
//!
//! # Layout
//! - [`keys`]: the log's Ed25519 key as a C2SP signed-note private key, and its vkey.

pub mod keys;

pub use keys::{KeyError, LogKey};

//! # consent-ledger audit
//!
//! Signing and the RFC 9162 tree math of the verifiable log (SPEC §6). No I/O beyond reading
//! and writing the key file; the tree math has none at all.
//!
//! Append path: leaf data → [`tree::leaf_hash`] → [`tree::Frontier::push`] (O(log n) hashes,
//! reports the completed subtrees for the store to keep) → [`tree::Frontier::root`] →
//! [`note::Checkpoint::sign`].
//!
//! Verify path: vkey text → [`note::VerifierKey`] → [`note::VerifierKey::open_checkpoint`] →
//! trusted (origin, size, root) → [`tree`] proof checks.
//!
//! # Layout
//! - [`bundle`]: export bundles (SPEC §6) and their offline verification.
//! - [`commitment`]: salted commitments to personal fields in leaves, and their openings
//!   (SPEC §12).
//! - [`keys`]: the log's Ed25519 key as a C2SP signed-note private key, and its vkey.
//! - [`leaf`]: an event as RFC 8785 canonical JSON, the leaf data, and its leaf hash.
//! - [`note`]: C2SP tlog-checkpoint bodies, signed and opened as C2SP signed notes (Ed25519).
//! - [`verify`]: the offline verifier's streaming core: a bundle checked in blocks on every core.
//! - [`webhook`]: Standard Webhooks `v1a` (Ed25519) keys and signatures for partner webhooks
//!   (SPEC §13).
//! - [`tree`]: RFC 9162 §2.1 Merkle tree hashes, inclusion and consistency proofs (made from
//!   stored subtree hashes, and verified), and the append [`tree::Frontier`].

pub mod bundle;
pub mod commitment;
pub mod keys;
pub mod leaf;
pub mod note;
pub mod tree;
pub mod verify;
pub mod webhook;

pub use keys::{KeyError, LogKey};
pub use note::{Checkpoint, CheckpointError, NoteError, VerifierKey};
pub use tree::{Frontier, Hash, NodeId, ProofError, TreeError};

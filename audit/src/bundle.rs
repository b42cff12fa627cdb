//! Export bundles (SPEC §6): one NDJSON text, a header line
//! `{"format":"consent-ledger-bundle/1","origin":…,"vkey":…,"checkpoint":"<signed note>"}` and then
//! one line per exported event `{"position":N,"leaf":"<canonical JSON>","inclusion_proof":[…]}`.
//! [`verify_bundle`] checks one offline with nothing but the bundle and the trusted vkey: every
//! event is in the tree the signed checkpoint commits to, so a bundle holding only one
//! shipment's events verifies without any other event.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::note::{Checkpoint, NoteError, VerifierKey};
use crate::tree::{leaf_hash, verify_inclusion, Hash, ProofError};

/// The `format` of the header line.
pub const BUNDLE_FORMAT: &str = "consent-ledger-bundle/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    pub format: String,
    pub origin: String,
    pub vkey: String,
    pub checkpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleLine {
    pub position: u64,
    pub leaf: String,
    pub inclusion_proof: Vec<String>,
}

impl BundleLine {
    /// The line for the event at `position` with its leaf data and PATH as hashes.
    pub fn new(position: u64, leaf: String, proof: &[Hash]) -> Self {
        Self {
            position,
            leaf,
            inclusion_proof: proof.iter().map(|h| B64.encode(h)).collect(),
        }
    }
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    pub checkpoint: Checkpoint,
    pub events: usize,
}

/// Why a bundle was refused, with the 1-based line at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {kind}")]
pub struct BundleError {
    pub line: usize,
    pub kind: BundleErrorKind,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleErrorKind {
    #[error("the bundle is empty")]
    Empty,
    #[error("not a bundle line: {0}")]
    Malformed(String),
    #[error("format `{0}` is not {BUNDLE_FORMAT}")]
    UnknownFormat(String),
    #[error("the checkpoint does not verify with the trusted key: {0}")]
    Checkpoint(NoteError),
    #[error("the header's origin `{header}` is not the checkpoint's `{checkpoint}`")]
    OriginMismatch { header: String, checkpoint: String },
    #[error("position {position} is not after the previous line's")]
    OutOfOrder { position: u64 },
    #[error("the leaf says position {inside:?}, the line says {line}")]
    PositionMismatch { line: u64, inside: Option<u64> },
    #[error("a proof hash is not base64 of 32 bytes")]
    BadProofHash,
    #[error("the event is not in the checkpoint's tree: {0}")]
    NotIncluded(ProofError),
}

fn at(line: usize, kind: BundleErrorKind) -> BundleError {
    BundleError { line, kind }
}

/// Verifies a bundle against the trusted `vkey` alone (`consent-ledger verify`).
pub fn verify_bundle(bundle: &str, vkey: &VerifierKey) -> Result<VerifiedBundle, BundleError> {
    let mut lines = bundle
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let (n, first) = lines.next().ok_or(at(1, BundleErrorKind::Empty))?;
    let header: BundleHeader = serde_json::from_str(first)
        .map_err(|e| at(n, BundleErrorKind::Malformed(e.to_string())))?;
    if header.format != BUNDLE_FORMAT {
        return Err(at(n, BundleErrorKind::UnknownFormat(header.format)));
    }
    // The header's own vkey is informative only: trust comes from the key the caller holds.
    let checkpoint = vkey
        .open_checkpoint(&header.checkpoint)
        .map_err(|e| at(n, BundleErrorKind::Checkpoint(e)))?;
    if checkpoint.origin() != header.origin {
        return Err(at(
            n,
            BundleErrorKind::OriginMismatch {
                header: header.origin,
                checkpoint: checkpoint.origin().to_owned(),
            },
        ));
    }
    let mut previous: Option<u64> = None;
    let mut events = 0;
    for (n, text) in lines {
        let line: BundleLine = serde_json::from_str(text)
            .map_err(|e| at(n, BundleErrorKind::Malformed(e.to_string())))?;
        if previous.is_some_and(|p| line.position <= p) {
            return Err(at(
                n,
                BundleErrorKind::OutOfOrder {
                    position: line.position,
                },
            ));
        }
        let inside = serde_json::from_str::<serde_json::Value>(&line.leaf)
            .ok()
            .and_then(|leaf| leaf.get("position").and_then(serde_json::Value::as_u64));
        if inside != Some(line.position) {
            return Err(at(
                n,
                BundleErrorKind::PositionMismatch {
                    line: line.position,
                    inside,
                },
            ));
        }
        let proof = line
            .inclusion_proof
            .iter()
            .map(|h| {
                B64.decode(h)
                    .ok()
                    .and_then(|b| Hash::try_from(b.as_slice()).ok())
            })
            .collect::<Option<Vec<Hash>>>()
            .ok_or(at(n, BundleErrorKind::BadProofHash))?;
        verify_inclusion(
            &leaf_hash(line.leaf.as_bytes()),
            line.position,
            checkpoint.size(),
            &proof,
            checkpoint.root(),
        )
        .map_err(|e| at(n, BundleErrorKind::NotIncluded(e)))?;
        previous = Some(line.position);
        events += 1;
    }
    Ok(VerifiedBundle { checkpoint, events })
}

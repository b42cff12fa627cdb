//! Export bundles (SPEC §6, §12): one NDJSON text, a header line
//! `{"format":"consent-ledger-bundle/2","origin":…,"vkey":…,"checkpoint":"<signed note>"}` and then
//! one line per exported event
//! `{"position":N,"leaf":"<canonical JSON>","inclusion_proof":[…],"openings":{…},"erased":[…]}`.
//! [`verify_bundle`] checks one offline with nothing but the bundle and the trusted vkey: every
//! event is in the tree the signed checkpoint commits to, so a bundle holding only one
//! shipment's events verifies without any other event.
//!
//! Format `/2` is for leaves that hold each personal field as a commitment
//! `{"commitment":"<base64 SHA-256(salt ‖ value)>"}` (SPEC §12, [`crate::commitment`]). An event
//! line discloses the fields it must in `"openings"`, a JSON pointer into the leaf for each, to
//! `{"value":…,"salt":"<base64>"}`, and the verifier checks every opening against the
//! commitment it names. A field whose opening was erased is listed in `"erased"` instead: the
//! leaf did not change, so the line still verifies, and the verifier checks only that a
//! commitment stands there. Both members are optional and left out when empty, so a line that
//! discloses nothing reads as in format `/1`.
//!
//! A bundle of format `/1` (exported before commitments) still verifies: its leaves and proofs
//! did not change. Its lines may not carry `openings` or `erased`, which `/1` did not have.
//!
//! The header may carry one optional field more, `"consistency":{"from_size":M,"proof":[…]}`:
//! PROOF(M, D[n]) (RFC 9162 §2.1.4) from an older tree of `M` events to the bundle's checkpoint.
//! [`verify_bundle_since`] uses it to show that the bundle's checkpoint extends an older one the
//! verifier already trusts, so the log was only appended to in between.
//!
//! Verify path: header → [`VerifierKey::open_checkpoint`] → (consistency with the trusted
//! checkpoint) → per line: leaf hash → [`InclusionVerifier`] (stops where a path joins the one
//! before it) → the line's openings and erased fields against the leaf (parsed only for a line
//! that has them).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::commitment::{check_opening, commitment_at, Opening, OpeningError};
use crate::note::{Checkpoint, NoteError, VerifierKey};
use crate::tree::{leaf_hash, verify_consistency, Hash, InclusionVerifier, ProofError};

/// The `format` of the header line of the bundles written now, whose event lines may carry
/// `openings` and `erased`.
pub const BUNDLE_FORMAT: &str = "consent-ledger-bundle/2";

/// The `format` of bundles exported before commitments: still verified, never written.
pub const BUNDLE_FORMAT_V1: &str = "consent-ledger-bundle/1";

/// The longest line a bundle may hold, in bytes without its line end: 1 MiB. An event line is
/// a few hundred bytes plus its leaf (an event's payload, bounded by the API's body limit of
/// 512 KiB) and a proof of at most 64 hashes; a longer line is refused at once, naming it,
/// rather than buffered (a 512 MiB line once cost the streaming verifier 26 s and 1.6 GB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    pub format: String,
    pub origin: String,
    pub vkey: String,
    pub checkpoint: String,
    /// Present when the export was asked for a proof from an older tree size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<BundleConsistency>,
}

/// The header's optional consistency proof: PROOF(`from_size`, D[checkpoint size]), base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleConsistency {
    pub from_size: u64,
    pub proof: Vec<String>,
}

impl BundleConsistency {
    pub fn new(from_size: u64, proof: &[Hash]) -> Self {
        Self {
            from_size,
            proof: proof.iter().map(|h| B64.encode(h)).collect(),
        }
    }
}

/// An event line. Members are written in the order of the fields; the two of format `/2` are
/// left out when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleLine {
    pub position: u64,
    pub leaf: String,
    pub inclusion_proof: Vec<String>,
    /// The personal fields the line discloses: JSON pointer into the leaf → the opening of the
    /// commitment there. A map, so pointers are written sorted and each once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub openings: BTreeMap<String, Opening>,
    /// Pointers to the leaf's commitments whose openings were erased, in the writer's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<String>,
}

impl BundleLine {
    /// The line for the event at `position` with its leaf data and PATH as hashes, disclosing
    /// nothing.
    pub fn new(position: u64, leaf: String, proof: &[Hash]) -> Self {
        Self {
            position,
            leaf,
            inclusion_proof: proof.iter().map(|h| B64.encode(h)).collect(),
            openings: BTreeMap::new(),
            erased: Vec::new(),
        }
    }

    /// The line disclosing `openings` (pointer → opening), in place of any it had.
    pub fn with_openings(mut self, openings: BTreeMap<String, Opening>) -> Self {
        self.openings = openings;
        self
    }

    /// The line naming `erased` pointers, in place of any it had.
    pub fn with_erased(mut self, erased: Vec<String>) -> Self {
        self.erased = erased;
        self
    }
}

/// Appends an event line and its newline to `out`, byte for byte what `serde_json` writes for
/// the [`BundleLine`] of `position`, `leaf` and `proof` with `openings` (each a pointer, the
/// value and its base64 salt) and `erased`, without building the line's strings first (an
/// export writes millions).
///
/// The caller passes `openings` sorted by pointer, as [`BundleLine::openings`] writes them; if
/// they are not, a sorted copy is written. `erased` is written in the order given. A pointer
/// opened twice, erased twice, or both opened and erased is an error and nothing is written:
/// the verifier would refuse the line.
pub fn write_line(
    out: &mut Vec<u8>,
    position: u64,
    leaf: &str,
    proof: &[Hash],
    openings: &[(&str, &str, &str)],
    erased: &[String],
) -> Result<(), serde_json::Error> {
    use std::io::Write;
    let sorted;
    let openings = if openings.is_sorted_by(|a, b| a.0 <= b.0) {
        openings
    } else {
        sorted = {
            let mut copy = openings.to_vec();
            copy.sort_by(|a, b| a.0.cmp(b.0));
            copy
        };
        &sorted[..]
    };
    if let Some(pointer) = named_twice(openings, erased) {
        return Err(<serde_json::Error as serde::ser::Error>::custom(
            format_args!(
                "the pointer `{pointer}` is named twice in the line's openings and erased"
            ),
        ));
    }
    out.extend_from_slice(b"{\"position\":");
    write!(out, "{position}").map_err(serde_json::Error::io)?;
    out.extend_from_slice(b",\"leaf\":");
    serde_json::to_writer(&mut *out, leaf)?;
    out.extend_from_slice(b",\"inclusion_proof\":[");
    let mut text = [0u8; 44];
    for (i, hash) in proof.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        // 32 bytes are always 44 base64 characters, so the buffer always fits.
        let written = B64
            .encode_slice(hash, &mut text)
            .map_err(|e| serde_json::Error::io(std::io::Error::other(e)))?;
        out.extend_from_slice(&text[..written]);
        out.push(b'"');
    }
    out.push(b']');
    if !openings.is_empty() {
        out.extend_from_slice(b",\"openings\":{");
        for (i, (pointer, value, salt)) in openings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, pointer)?;
            out.extend_from_slice(b":{\"value\":");
            serde_json::to_writer(&mut *out, value)?;
            out.extend_from_slice(b",\"salt\":");
            serde_json::to_writer(&mut *out, salt)?;
            out.push(b'}');
        }
        out.push(b'}');
    }
    if !erased.is_empty() {
        out.extend_from_slice(b",\"erased\":");
        serde_json::to_writer(&mut *out, erased)?;
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// A pointer that `openings` (sorted by pointer) and `erased` name more than once together.
/// Lines name a few pointers, so the quadratic look through `erased` costs nothing.
fn named_twice<'a>(openings: &[(&'a str, &str, &str)], erased: &'a [String]) -> Option<&'a str> {
    if let Some(pair) = openings.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Some(pair[0].0);
    }
    erased.iter().enumerate().find_map(|(i, pointer)| {
        let twice = erased[..i].contains(pointer)
            || openings
                .binary_search_by(|o| o.0.cmp(pointer.as_str()))
                .is_ok();
        twice.then_some(pointer.as_str())
    })
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    pub checkpoint: Checkpoint,
    pub events: usize,
    /// The size of the trusted older checkpoint the bundle's was shown consistent with.
    pub consistent_with: Option<u64>,
    /// Openings checked against their leaves' commitments (format `/2`).
    pub openings: usize,
    /// Erased fields named, each shown to be a commitment in its leaf (format `/2`).
    pub erased: usize,
}

/// Why a bundle was refused, with the 1-based line at fault.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {kind}")]
pub struct BundleError {
    pub line: usize,
    pub kind: BundleErrorKind,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BundleErrorKind {
    #[error("the bundle is empty")]
    Empty,
    #[error("not a bundle line: {0}")]
    Malformed(String),
    #[error("the line is longer than {limit} bytes; no bundle line is")]
    LineTooLong { limit: usize },
    #[error("format `{0}` is neither {BUNDLE_FORMAT} nor {BUNDLE_FORMAT_V1}")]
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
    /// An opening that does not open its commitment, or an opened or erased pointer where the
    /// leaf has no commitment; the error names the pointer.
    #[error("{0}")]
    Opening(OpeningError),
    #[error("the trusted checkpoint is of log `{trusted}`, the bundle's of `{bundle}`")]
    OtherLog { trusted: String, bundle: String },
    #[error(
        "the bundle's checkpoint covers {bundle} events, fewer than the {trusted} of the trusted \
         one; a log only grows, so export again"
    )]
    OlderThanTrusted { trusted: u64, bundle: u64 },
    #[error(
        "the header carries no consistency proof from size {from_size} (it has {carried}); \
         export again with since={from_size}"
    )]
    NoConsistencyProof { from_size: u64, carried: Carried },
    #[error(
        "the checkpoint of {bundle} events is not consistent with the trusted checkpoint of \
         {trusted} events: {error}"
    )]
    Inconsistent {
        trusted: u64,
        bundle: u64,
        error: ProofError,
    },
}

/// Which consistency proof a header carries, for [`BundleErrorKind::NoConsistencyProof`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    None,
    FromSize(u64),
}

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::FromSize(size) => write!(f, "one from size {size}"),
        }
    }
}

fn at(line: usize, kind: BundleErrorKind) -> BundleError {
    BundleError { line, kind }
}

/// Refuses line `n` if its `length` (in bytes, without the line end) is over
/// [`MAX_LINE_BYTES`]. Checked before anything else about the line, blank or not, so that a
/// reader that stops buffering a line at the limit gives the same verdict.
pub fn check_length(n: usize, length: usize) -> Result<(), BundleError> {
    if length > MAX_LINE_BYTES {
        return Err(at(
            n,
            BundleErrorKind::LineTooLong {
                limit: MAX_LINE_BYTES,
            },
        ));
    }
    Ok(())
}

/// Verifies a bundle against the trusted `vkey` alone (`consent-ledger verify`).
pub fn verify_bundle(bundle: &str, vkey: &VerifierKey) -> Result<VerifiedBundle, BundleError> {
    verify_lines(bundle, vkey, None)
}

/// Verifies a bundle as [`verify_bundle`] does, and that its checkpoint extends `trusted`, an
/// older checkpoint of the same log that the caller opened with the same key
/// (`consent-ledger verify --since`). Equal sizes need equal roots; a smaller tree needs the
/// header's consistency proof from exactly `trusted`'s size. Faults of the consistency are
/// reported at the header line.
pub fn verify_bundle_since(
    bundle: &str,
    vkey: &VerifierKey,
    trusted: &Checkpoint,
) -> Result<VerifiedBundle, BundleError> {
    verify_lines(bundle, vkey, Some(trusted))
}

fn verify_lines(
    bundle: &str,
    vkey: &VerifierKey,
    trusted: Option<&Checkpoint>,
) -> Result<VerifiedBundle, BundleError> {
    let mut lines = bundle.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut verifier = None;
    for (n, text) in lines.by_ref() {
        check_length(n, text.len())?;
        if !text.trim().is_empty() {
            verifier = Some(BundleVerifier::from_header(n, text, vkey, trusted)?);
            break;
        }
    }
    let mut verifier = verifier.ok_or(at(1, BundleErrorKind::Empty))?;
    for (n, text) in lines {
        verifier.line(n, text)?;
    }
    Ok(verifier.finish())
}

/// Verifies a bundle line by line, for bundles read as a stream: [`Self::from_header`] with
/// the first non-blank line, then [`Self::line`] with each later one (blank lines are skipped),
/// then [`Self::finish`].
///
/// Runs of lines can also be checked apart, in parallel: [`Self::run`] gives a [`LineRun`]
/// checker for a run, and [`Self::join`] takes the finished runs back in bundle order. The
/// result, and the first bad line named, are those of checking line by line.
#[derive(Debug)]
pub struct BundleVerifier {
    checkpoint: Checkpoint,
    consistent_with: Option<u64>,
    lines: LineRun,
}

impl BundleVerifier {
    /// Checks the header line (number `n`): its format, the checkpoint's signature by `vkey`,
    /// its origin, and, given a `trusted` older checkpoint, the consistency proof.
    pub fn from_header(
        n: usize,
        text: &str,
        vkey: &VerifierKey,
        trusted: Option<&Checkpoint>,
    ) -> Result<Self, BundleError> {
        check_length(n, text.len())?;
        let header: BundleHeader = serde_json::from_str(text)
            .map_err(|e| at(n, BundleErrorKind::Malformed(e.to_string())))?;
        let disclosures = match header.format.as_str() {
            BUNDLE_FORMAT => true,
            BUNDLE_FORMAT_V1 => false,
            _ => return Err(at(n, BundleErrorKind::UnknownFormat(header.format))),
        };
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
        let consistent_with = match trusted {
            None => None,
            Some(trusted) => {
                check_consistency(trusted, &checkpoint, header.consistency.as_ref())
                    .map_err(|kind| at(n, kind))?;
                Some(trusted.size())
            }
        };
        Ok(Self {
            lines: LineRun::new(&checkpoint, disclosures),
            checkpoint,
            consistent_with,
        })
    }

    /// Checks one event line (number `n`); a blank line is skipped.
    pub fn line(&mut self, n: usize, text: &str) -> Result<(), BundleError> {
        self.lines.line(n, text)
    }

    /// A checker for a run of the bundle's lines that knows nothing of the lines before it.
    pub fn run(&self) -> LineRun {
        LineRun::new(&self.checkpoint, self.lines.disclosures)
    }

    /// Takes the run of lines that follows those checked so far: fails with the first bad line
    /// of the run, or with its first event if that is not after the last one before it.
    pub fn join(&mut self, run: LineRun) -> Result<(), BundleError> {
        if let (Some((n, position)), Some(previous)) = (run.first, self.lines.last) {
            if position <= previous {
                return Err(at(n, BundleErrorKind::OutOfOrder { position }));
            }
        }
        if let Some(error) = run.error {
            return Err(error);
        }
        self.lines.events += run.events;
        self.lines.openings += run.openings;
        self.lines.erased += run.erased;
        if run.last.is_some() {
            self.lines.last = run.last;
        }
        Ok(())
    }

    /// What the verified bundle held.
    pub fn finish(self) -> VerifiedBundle {
        VerifiedBundle {
            checkpoint: self.checkpoint,
            events: self.lines.events,
            consistent_with: self.consistent_with,
            openings: self.lines.openings,
            erased: self.lines.erased,
        }
    }
}

/// Checks a run of a bundle's event lines against its checkpoint (see [`BundleVerifier::run`]).
#[derive(Debug, Clone)]
pub struct LineRun {
    inclusion: InclusionVerifier,
    /// Whether lines may carry `openings` and `erased` (format `/2`, not `/1`).
    disclosures: bool,
    proof: Vec<Hash>,
    /// The line number and position of the run's first event line that parsed.
    first: Option<(usize, u64)>,
    last: Option<u64>,
    events: usize,
    openings: usize,
    erased: usize,
    error: Option<BundleError>,
}

impl LineRun {
    fn new(checkpoint: &Checkpoint, disclosures: bool) -> Self {
        Self {
            inclusion: InclusionVerifier::new(checkpoint.size(), *checkpoint.root()),
            disclosures,
            proof: Vec::new(),
            first: None,
            last: None,
            events: 0,
            openings: 0,
            erased: 0,
            error: None,
        }
    }

    /// Checks one event line (number `n`); a blank line is skipped. After an error the run
    /// keeps it and checks nothing more.
    pub fn line(&mut self, n: usize, text: &str) -> Result<(), BundleError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        self.check(n, text)
            .inspect_err(|e| self.error = Some(e.clone()))
    }

    /// [`Self::line`] for a line read as bytes: one that is not UTF-8 is malformed.
    pub fn line_bytes(&mut self, n: usize, bytes: &[u8]) -> Result<(), BundleError> {
        let text = check_length(n, bytes.len()).and_then(|()| {
            std::str::from_utf8(bytes)
                .map_err(|e| at(n, BundleErrorKind::Malformed(format!("not UTF-8: {e}"))))
        });
        match text {
            Ok(text) => self.line(n, text),
            Err(error) => {
                if self.error.is_none() {
                    self.error = Some(error.clone());
                }
                Err(self.error.clone().unwrap_or(error))
            }
        }
    }

    fn check(&mut self, n: usize, text: &str) -> Result<(), BundleError> {
        check_length(n, text.len())?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let line: LineIn = serde_json::from_str(text)
            .map_err(|e| at(n, BundleErrorKind::Malformed(e.to_string())))?;
        // Refused as a line that does not parse is, before it counts as the run's first: a
        // member format /1 does not have is an unknown field there.
        if !self.disclosures && (line.openings.is_some() || line.erased.is_some()) {
            return Err(at(
                n,
                BundleErrorKind::Malformed(format!(
                    "`openings` and `erased` are members of {BUNDLE_FORMAT} lines, not of \
                     {BUNDLE_FORMAT_V1} ones"
                )),
            ));
        }
        if self.first.is_none() {
            self.first = Some((n, line.position));
        }
        if self.last.is_some_and(|p| line.position <= p) {
            return Err(at(
                n,
                BundleErrorKind::OutOfOrder {
                    position: line.position,
                },
            ));
        }
        // Typed, so the rest of the leaf is skipped rather than built; a leaf naming its
        // position twice is refused.
        let inside = serde_json::from_str::<LeafPosition>(&line.leaf)
            .ok()
            .map(|l| l.position);
        if inside != Some(line.position) {
            return Err(at(
                n,
                BundleErrorKind::PositionMismatch {
                    line: line.position,
                    inside,
                },
            ));
        }
        self.proof.clear();
        for element in &line.inclusion_proof {
            let hash = element.0.ok_or(at(n, BundleErrorKind::BadProofHash))?;
            self.proof.push(hash);
        }
        self.inclusion
            .verify(&leaf_hash(line.leaf.as_bytes()), line.position, &self.proof)
            .map_err(|e| at(n, BundleErrorKind::NotIncluded(e)))?;
        let openings = line.openings.map(|o| o.0).unwrap_or_default();
        let erased = line.erased.unwrap_or_default();
        if !(openings.is_empty() && erased.is_empty()) {
            check_disclosures(&line.leaf, &openings, &erased).map_err(|kind| at(n, kind))?;
        }
        self.last = Some(line.position);
        self.events += 1;
        self.openings += openings.len();
        self.erased += erased.len();
        Ok(())
    }
}

/// Checks a line's `openings` and `erased` against its leaf data, parsed once here (SPEC §12):
/// each pointer named once, each opening opening the commitment it names, each erased pointer
/// at a commitment.
fn check_disclosures(
    leaf: &str,
    openings: &[(String, Opening)],
    erased: &[String],
) -> Result<(), BundleErrorKind> {
    // A pointer twice would count twice, and one both opened and erased says two things.
    let mut pointers: Vec<&str> = openings
        .iter()
        .map(|(p, _)| p.as_str())
        .chain(erased.iter().map(String::as_str))
        .collect();
    pointers.sort_unstable();
    if let Some(pair) = pointers.windows(2).find(|pair| pair[0] == pair[1]) {
        let pointer = pair[0];
        let opened = openings.iter().any(|(p, _)| p == pointer);
        let erased = erased.iter().any(|p| p == pointer);
        let how = match (opened, erased) {
            (true, true) => "both opened and erased",
            (true, false) => "opened twice",
            _ => "erased twice",
        };
        return Err(BundleErrorKind::Malformed(format!("{pointer}: {how}")));
    }
    // The leaf parsed as JSON already for its position; this cannot fail on a leaf that did,
    // but it is untrusted text, so a failure is a verdict rather than a panic.
    let leaf: serde_json::Value = serde_json::from_str(leaf)
        .map_err(|e| BundleErrorKind::Malformed(format!("the leaf is not JSON: {e}")))?;
    for (pointer, opening) in openings {
        check_opening(&leaf, pointer, opening).map_err(BundleErrorKind::Opening)?;
    }
    for pointer in erased {
        erased_at(&leaf, pointer).map_err(BundleErrorKind::Opening)?;
    }
    Ok(())
}

/// Whether a commitment object stands at `pointer` in `leaf`, as [`check_opening`] finds one.
fn erased_at(leaf: &serde_json::Value, pointer: &str) -> Result<(), OpeningError> {
    commitment_at(leaf, pointer)?
        .map(|_| ())
        .ok_or_else(|| OpeningError::NoCommitment {
            pointer: pointer.to_owned(),
        })
}

/// The bundle's checkpoint extends the trusted one (RFC 9162 §2.1.4.2).
fn check_consistency(
    trusted: &Checkpoint,
    bundle: &Checkpoint,
    carried: Option<&BundleConsistency>,
) -> Result<(), BundleErrorKind> {
    if trusted.origin() != bundle.origin() {
        return Err(BundleErrorKind::OtherLog {
            trusted: trusted.origin().to_owned(),
            bundle: bundle.origin().to_owned(),
        });
    }
    let (old, new) = (trusted.size(), bundle.size());
    if old > new {
        return Err(BundleErrorKind::OlderThanTrusted {
            trusted: old,
            bundle: new,
        });
    }
    // Trees of equal size, or an empty old tree, need no proof (RFC 9162 defines PROOF for
    // 0 < m < n only); verify_consistency then compares the roots.
    let proof = if old == 0 || old == new {
        Vec::new()
    } else {
        let proof =
            carried
                .filter(|c| c.from_size == old)
                .ok_or(BundleErrorKind::NoConsistencyProof {
                    from_size: old,
                    carried: carried.map_or(Carried::None, |c| Carried::FromSize(c.from_size)),
                })?;
        proof
            .proof
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Option<Vec<Hash>>>()
            .ok_or(BundleErrorKind::BadProofHash)?
    };
    verify_consistency(old, new, trusted.root(), bundle.root(), &proof).map_err(|error| {
        BundleErrorKind::Inconsistent {
            trusted: old,
            bundle: new,
            error,
        }
    })
}

fn decode_hash(text: &str) -> Option<Hash> {
    let mut hash = [0u8; 32];
    // A 32-byte hash is 44 base64 characters; decoding into a buffer of exactly 32 bytes
    // refuses any other length.
    if text.len() != 44 {
        return None;
    }
    match B64.decode_slice(text, &mut hash) {
        Ok(32) => Some(hash),
        _ => None,
    }
}

/// An event line as read for verification: the proof decoded in place, no string per hash.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    position: u64,
    leaf: String,
    inclusion_proof: Vec<ProofHash>,
    /// `None` when the member is absent; `null` is refused, as [`BundleLine`] refuses it.
    #[serde(default, deserialize_with = "present")]
    openings: Option<OpeningsIn>,
    #[serde(default, deserialize_with = "present")]
    erased: Option<Vec<String>>,
}

/// A member that is there: deserialised as `T` itself, so `null` is no way to leave it out.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A line's `openings` in the order written, every entry kept: a pointer given twice is found
/// and refused rather than silently replaced, as a map would.
struct OpeningsIn(Vec<(String, Opening)>);

impl<'de> Deserialize<'de> for OpeningsIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OpeningsIn;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of JSON pointers to openings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OpeningsIn, A::Error> {
                // No capacity from the input's hint: it is untrusted.
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Opening>()? {
                    entries.push(entry);
                }
                Ok(OpeningsIn(entries))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// One proof element: the hash, or `None` if the string is not base64 of 32 bytes (refused as
/// [`BundleErrorKind::BadProofHash`] rather than as a malformed line).
struct ProofHash(Option<Hash>);

impl<'de> Deserialize<'de> for ProofHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ProofHash;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 hash")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ProofHash, E> {
                Ok(ProofHash(decode_hash(v)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The one field of a leaf the verifier reads.
#[derive(Deserialize)]
struct LeafPosition {
    position: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_44_character_base64_of_32_bytes_is_a_hash() {
        let good = B64.encode([7u8; 32]);
        assert_eq!(decode_hash(&good), Some([7u8; 32]));
        assert_eq!(decode_hash(&B64.encode([7u8; 31])), None);
        assert_eq!(decode_hash(&B64.encode([7u8; 33])), None);
        assert_eq!(decode_hash(&good.replace('=', "A")), None);
        assert_eq!(
            decode_hash("not base64 at all, but 44 characters long!!"),
            None
        );
    }

    #[test]
    fn write_line_writes_what_serde_writes() {
        let leaf = "{\"actor\":\"a \\\"q\\\" \\u0001 é \u{1} \u{7f} \u{2028} 𝄞\",\"position\":12}";
        let salt = B64.encode([3u8; 32]);
        let escaped = "JJD \"0\" \\ é \u{1} \u{7f} \u{2028} 𝄞";
        let openings: [&[(&str, &str, &str)]; 3] = [
            &[],
            &[("/payload/tracking_number", "JJD0001", &salt)],
            &[
                ("/payload/a~1b", escaped, &salt),
                ("/payload/reason", "", &salt),
                ("/payload/é\"", "x", "not base64 \u{0}"),
            ],
        ];
        let erased: [&[&str]; 3] = [&[], &["/payload/recipient_ref"], &["/z", "/a\"\\"]];
        for proof in [
            vec![],
            vec![[1u8; 32]],
            vec![[0u8; 32], [255u8; 32], [9u8; 32]],
        ] {
            for opened in openings {
                for erased in erased {
                    let erased: Vec<String> = erased.iter().map(|&p| p.to_owned()).collect();
                    let mut out = b"before\n".to_vec();
                    write_line(&mut out, 12, leaf, &proof, opened, &erased).unwrap();
                    let line = BundleLine::new(12, leaf.to_owned(), &proof)
                        .with_openings(
                            opened
                                .iter()
                                .map(|&(pointer, value, salt)| {
                                    let opening = Opening {
                                        value: value.to_owned(),
                                        salt: salt.to_owned(),
                                    };
                                    (pointer.to_owned(), opening)
                                })
                                .collect(),
                        )
                        .with_erased(erased.clone());
                    let expected = serde_json::to_string(&line).unwrap();
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        format!("before\n{expected}\n")
                    );
                    assert_eq!(serde_json::from_str::<BundleLine>(&expected).unwrap(), line);
                }
            }
        }
    }

    #[test]
    fn write_line_sorts_openings_and_refuses_a_pointer_named_twice() {
        let salt = B64.encode([3u8; 32]);
        let sorted = [("/a", "1", salt.as_str()), ("/b", "2", &salt)];
        let unsorted = [sorted[1], sorted[0]];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_line(&mut a, 1, "{}", &[], &sorted, &[]).unwrap();
        write_line(&mut b, 1, "{}", &[], &unsorted, &[]).unwrap();
        assert_eq!(a, b);

        type Disclosed<'a> = &'a [(&'a str, &'a str, &'a str)];
        let twice: [(Disclosed, &[&str]); 3] = [
            (&[sorted[0], sorted[0]], &[]),
            (&sorted, &["/b"]),
            (&[], &["/c", "/d", "/c"]),
        ];
        for (opened, erased) in twice {
            let erased: Vec<String> = erased.iter().map(|&p| p.to_owned()).collect();
            let mut out = b"before".to_vec();
            assert!(write_line(&mut out, 1, "{}", &[], opened, &erased).is_err());
            assert_eq!(out, b"before", "nothing written");
        }
    }

    #[test]
    fn a_header_without_consistency_has_no_such_field() {
        let header = BundleHeader {
            format: BUNDLE_FORMAT.into(),
            origin: "o".into(),
            vkey: "v".into(),
            checkpoint: "c".into(),
            consistency: None,
        };
        let text = serde_json::to_string(&header).unwrap();
        assert_eq!(
            text,
            r#"{"format":"consent-ledger-bundle/2","origin":"o","vkey":"v","checkpoint":"c"}"#
        );
        assert_eq!(serde_json::from_str::<BundleHeader>(&text).unwrap(), header);
    }
}

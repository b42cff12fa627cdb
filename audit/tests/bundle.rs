//! Export bundles verified offline (SPEC §6), and `--since`: a bundle's checkpoint shown
//! consistent with an older checkpoint the verifier trusts, through the header's RFC 9162
//! consistency proof. Bundles here are built from the tree math alone, as any writer could.
//! Format `/2` (SPEC §12): openings of the leaves' commitments, and erased fields, checked
//! against the leaves; format `/1` still verifies.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consent_ledger_audit::bundle::{
    verify_bundle, verify_bundle_since, write_line, BundleConsistency, BundleError,
    BundleErrorKind, BundleHeader, BundleLine, Carried, BUNDLE_FORMAT, BUNDLE_FORMAT_V1,
};
use consent_ledger_audit::commitment::{commit, Opening, OpeningError, SALT_BYTES};
use consent_ledger_audit::note::{NoteError, VerifierKey};
use consent_ledger_audit::tree::{
    consistency_proof_in_memory, leaf_hash, mth, Hash, MemoryTree, ProofError,
};
use consent_ledger_audit::{Checkpoint, LogKey};

const ORIGIN: &str = "example.org/log";

/// A log of `n` events: their leaf data (canonical JSON naming their position) and hashes.
struct Log {
    key: LogKey,
    leaves: Vec<String>,
    hashes: Vec<Hash>,
}

impl Log {
    fn new(n: u64) -> Self {
        let leaves: Vec<String> = (0..n)
            .map(|p| {
                format!(
                    r#"{{"actor":"a","payload":{{"n":{}}},"position":{p}}}"#,
                    p * 7
                )
            })
            .collect();
        Self::of(leaves)
    }

    /// A log of these leaves (each naming its position).
    fn of(leaves: Vec<String>) -> Self {
        let hashes = leaves.iter().map(|l| leaf_hash(l.as_bytes())).collect();
        Self {
            key: LogKey::generate(ORIGIN).expect("key"),
            leaves,
            hashes,
        }
    }

    fn vkey(&self) -> VerifierKey {
        self.key.vkey().parse().expect("vkey")
    }

    /// The signed checkpoint of the first `size` events.
    fn note(&self, size: u64) -> String {
        Checkpoint::new(ORIGIN, size, mth(&self.hashes[..size as usize]))
            .expect("checkpoint")
            .sign(&self.key)
    }

    /// The trusted checkpoint of the first `size` events, opened as a verifier would.
    fn trusted(&self, size: u64) -> Checkpoint {
        self.vkey()
            .open_checkpoint(&self.note(size))
            .expect("opens")
    }

    /// A bundle of `positions` against the checkpoint of `size` events, with a consistency proof
    /// from `since` if given.
    fn bundle(&self, size: u64, positions: &[u64], since: Option<u64>) -> String {
        let tree = MemoryTree::new(self.hashes[..size as usize].to_vec());
        let consistency = since.map(|old| {
            let proof = consistency_proof_in_memory(&self.hashes[..size as usize], old)
                .expect("consistency proof");
            BundleConsistency::new(old, &proof)
        });
        let header = BundleHeader {
            format: BUNDLE_FORMAT.into(),
            origin: ORIGIN.into(),
            vkey: self.key.vkey(),
            checkpoint: self.note(size),
            consistency,
        };
        let mut out = serde_json::to_string(&header).expect("header");
        for &p in positions {
            let proof = tree.inclusion_path(p).expect("path");
            let line = BundleLine::new(p, self.leaves[p as usize].clone(), &proof);
            out.push('\n');
            out.push_str(&serde_json::to_string(&line).expect("line"));
        }
        out.push('\n');
        out
    }

    /// The line of the event at `position` against the checkpoint of `size` events, disclosing
    /// nothing.
    fn line(&self, size: u64, position: u64) -> BundleLine {
        let tree = MemoryTree::new(self.hashes[..size as usize].to_vec());
        let proof = tree.inclusion_path(position).expect("path");
        BundleLine::new(position, self.leaves[position as usize].clone(), &proof)
    }

    /// A bundle of `format` holding `lines` against the checkpoint of `size` events.
    fn bundle_of(&self, format: &str, size: u64, lines: &[BundleLine]) -> String {
        let header = BundleHeader {
            format: format.into(),
            origin: ORIGIN.into(),
            vkey: self.key.vkey(),
            checkpoint: self.note(size),
            consistency: None,
        };
        let mut out = serde_json::to_string(&header).expect("header");
        for line in lines {
            out.push('\n');
            out.push_str(&serde_json::to_string(line).expect("line"));
        }
        out.push('\n');
        out
    }
}

fn refused(result: Result<impl std::fmt::Debug, BundleError>) -> (usize, BundleErrorKind) {
    let err = result.expect_err("refused");
    (err.line, err.kind)
}

#[test]
fn a_bundle_verifies_since_every_older_size() {
    let log = Log::new(21);
    let vkey = log.vkey();
    let all: Vec<u64> = (0..21).collect();
    for old in 0..=21 {
        let bundle = log.bundle(21, &all, Some(old));
        let verified = verify_bundle_since(&bundle, &vkey, &log.trusted(old)).unwrap_or_else(|e| {
            panic!("since {old}: {e}");
        });
        assert_eq!(verified.events, 21);
        assert_eq!(verified.consistent_with, Some(old));
        assert_eq!(verified.checkpoint.size(), 21);
        // The field is optional: a verifier that is not asked about it ignores it.
        assert_eq!(
            verify_bundle(&bundle, &vkey)
                .expect("plain")
                .consistent_with,
            None
        );
    }
    // A sparse bundle of a few events, since a size between them.
    let bundle = log.bundle(21, &[2, 9, 20], Some(10));
    assert_eq!(
        verify_bundle_since(&bundle, &vkey, &log.trusted(10))
            .expect("sparse")
            .events,
        3
    );
}

#[test]
fn a_checkpoint_of_the_same_size_needs_the_same_root_and_no_proof() {
    let log = Log::new(9);
    let bundle = log.bundle(9, &[0, 8], None);
    let verified = verify_bundle_since(&bundle, &log.vkey(), &log.trusted(9)).expect("same");
    assert_eq!(verified.consistent_with, Some(9));

    // Another root at the same size, signed by the log's own key (a forked log).
    let fork = Checkpoint::new(ORIGIN, 9, leaf_hash(b"another history"))
        .expect("checkpoint")
        .sign(&log.key);
    let fork = log.vkey().open_checkpoint(&fork).expect("opens");
    assert_eq!(
        refused(verify_bundle_since(&bundle, &log.vkey(), &fork)),
        (
            1,
            BundleErrorKind::Inconsistent {
                trusted: 9,
                bundle: 9,
                error: ProofError::NewRootMismatch
            }
        )
    );
}

#[test]
fn an_old_checkpoint_with_another_root_signed_by_the_same_key_is_inconsistent() {
    let log = Log::new(13);
    let bundle = log.bundle(13, &[1, 5, 12], Some(6));
    // The operator rewrote history before size 6 and re-signed its checkpoint: the proof from
    // the genuine tree of 6 does not rebuild the rewritten root.
    let mut rewritten = log.hashes.clone();
    rewritten[3] = leaf_hash(b"rewritten event");
    let tampered = Checkpoint::new(ORIGIN, 6, mth(&rewritten[..6]))
        .expect("checkpoint")
        .sign(&log.key);
    let tampered = log
        .vkey()
        .open_checkpoint(&tampered)
        .expect("validly signed");
    assert_eq!(
        refused(verify_bundle_since(&bundle, &log.vkey(), &tampered)),
        (
            1,
            BundleErrorKind::Inconsistent {
                trusted: 6,
                bundle: 13,
                error: ProofError::OldRootMismatch
            }
        )
    );
    // Without --since the same bundle verifies: only the old checkpoint is at fault.
    assert!(verify_bundle(&bundle, &log.vkey()).is_ok());
}

#[test]
fn a_bundle_without_a_proof_from_the_trusted_size_is_refused() {
    let log = Log::new(10);
    let trusted = log.trusted(4);
    assert_eq!(
        refused(verify_bundle_since(
            &log.bundle(10, &[0], None),
            &log.vkey(),
            &trusted
        )),
        (
            1,
            BundleErrorKind::NoConsistencyProof {
                from_size: 4,
                carried: Carried::None
            }
        )
    );
    assert_eq!(
        refused(verify_bundle_since(
            &log.bundle(10, &[0], Some(5)),
            &log.vkey(),
            &trusted
        )),
        (
            1,
            BundleErrorKind::NoConsistencyProof {
                from_size: 4,
                carried: Carried::FromSize(5)
            }
        )
    );
}

#[test]
fn a_corrupted_consistency_proof_is_refused_at_the_header() {
    let log = Log::new(10);
    let bundle = log.bundle(10, &[3], Some(3));
    let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
    let mut header: BundleHeader = serde_json::from_str(&lines[0]).expect("header");
    let good = header.consistency.clone().expect("carried");
    assert!(good.proof.len() >= 2);

    let verify = |header: &BundleHeader, lines: &mut Vec<String>| {
        lines[0] = serde_json::to_string(header).expect("header");
        refused(verify_bundle_since(
            &lines.join("\n"),
            &log.vkey(),
            &log.trusted(3),
        ))
    };
    // Every element flipped: the proof no longer rebuilds one of the two roots.
    for e in 0..good.proof.len() {
        let mut flipped = good.clone();
        let mut bytes = B64.decode(&flipped.proof[e]).expect("base64");
        bytes[0] ^= 1;
        flipped.proof[e] = B64.encode(bytes);
        header.consistency = Some(flipped);
        let (line, kind) = verify(&header, &mut lines);
        assert_eq!(line, 1);
        assert!(
            matches!(
                kind,
                BundleErrorKind::Inconsistent {
                    trusted: 3,
                    bundle: 10,
                    error: ProofError::OldRootMismatch | ProofError::NewRootMismatch,
                }
            ),
            "element {e}: {kind}"
        );
    }
    let mut dropped = good.clone();
    dropped.proof.pop();
    header.consistency = Some(dropped);
    assert_eq!(
        verify(&header, &mut lines),
        (
            1,
            BundleErrorKind::Inconsistent {
                trusted: 3,
                bundle: 10,
                error: ProofError::WrongProofLength {
                    expected: good.proof.len(),
                    got: good.proof.len() - 1,
                },
            }
        )
    );
    let mut garbled = good.clone();
    garbled.proof[0] = "not a hash".into();
    header.consistency = Some(garbled);
    assert_eq!(
        verify(&header, &mut lines),
        (1, BundleErrorKind::BadProofHash)
    );
    header.consistency = Some(good);
    lines[0] = serde_json::to_string(&header).expect("header");
    assert!(verify_bundle_since(&lines.join("\n"), &log.vkey(), &log.trusted(3)).is_ok());
}

#[test]
fn old_checkpoints_of_another_key_another_log_or_a_later_size_are_refused() {
    let log = Log::new(8);
    let bundle = log.bundle(8, &[7], Some(2));

    // Signed by another key: the verifier cannot even open it as trusted.
    let stranger = LogKey::generate(ORIGIN).expect("key");
    let foreign = Checkpoint::new(ORIGIN, 2, mth(&log.hashes[..2]))
        .expect("checkpoint")
        .sign(&stranger);
    assert!(matches!(
        log.vkey().open_checkpoint(&foreign),
        Err(NoteError::UnknownKey { .. })
    ));

    // Another origin, though signed by this key.
    let other = Checkpoint::new("example.org/other", 2, mth(&log.hashes[..2]))
        .expect("checkpoint")
        .sign(&log.key);
    let other = log.vkey().open_checkpoint(&other).expect("opens");
    assert_eq!(
        refused(verify_bundle_since(&bundle, &log.vkey(), &other)),
        (
            1,
            BundleErrorKind::OtherLog {
                trusted: "example.org/other".into(),
                bundle: ORIGIN.into()
            }
        )
    );

    // A bundle older than what is trusted.
    let small = log.bundle(5, &[4], None);
    assert_eq!(
        refused(verify_bundle_since(&small, &log.vkey(), &log.trusted(8))),
        (
            1,
            BundleErrorKind::OlderThanTrusted {
                trusted: 8,
                bundle: 5
            }
        )
    );
}

#[test]
fn the_header_is_named_by_its_line_after_blank_lines() {
    let log = Log::new(6);
    let bundle = format!("\n\n{}", log.bundle(6, &[1], None));
    assert_eq!(
        refused(verify_bundle_since(&bundle, &log.vkey(), &log.trusted(2))).0,
        3
    );
    assert_eq!(verify_bundle(&bundle, &log.vkey()).expect("ok").events, 1);
}

#[test]
fn every_leaf_of_a_dense_bundle_is_checked() {
    // The verifier stops where a path joins the previous one; a changed leaf anywhere, or a
    // changed hash in a shared part of a path, must still be found at its own line.
    let log = Log::new(40);
    let all: Vec<u64> = (0..40).collect();
    let bundle = log.bundle(40, &all, None);
    let vkey = log.vkey();
    assert_eq!(verify_bundle(&bundle, &vkey).expect("ok").events, 40);
    let lines: Vec<&str> = bundle.lines().collect();
    for target in 1..lines.len() {
        let mut changed: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        let mut line: BundleLine = serde_json::from_str(&changed[target]).expect("line");
        line.leaf = line.leaf.replacen("\"a\"", "\"b\"", 1);
        changed[target] = serde_json::to_string(&line).expect("line");
        let err = verify_bundle(&changed.join("\n"), &vkey).expect_err("changed leaf");
        assert_eq!(err.line, target + 1, "{err}");

        let mut line: BundleLine = serde_json::from_str(lines[target]).expect("line");
        let last = line.inclusion_proof.len() - 1;
        let mut bytes = B64.decode(&line.inclusion_proof[last]).expect("base64");
        bytes[31] ^= 0x80;
        line.inclusion_proof[last] = B64.encode(bytes);
        let mut changed: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        changed[target] = serde_json::to_string(&line).expect("line");
        let err = verify_bundle(&changed.join("\n"), &vkey).expect_err("changed top hash");
        assert_eq!(
            (err.line, err.kind),
            (
                target + 1,
                BundleErrorKind::NotIncluded(ProofError::RootMismatch)
            )
        );
    }
}

/// Verifies `bundle` with its event lines cut into runs at the given line indexes (0-based,
/// counted over all lines), each run checked on its own and joined in order, as a parallel
/// verifier does.
fn verify_in_runs(
    bundle: &str,
    vkey: &VerifierKey,
    cuts: &[usize],
) -> Result<consent_ledger_audit::bundle::VerifiedBundle, BundleError> {
    use consent_ledger_audit::bundle::BundleVerifier;
    let lines: Vec<&str> = bundle.lines().collect();
    let mut verifier = BundleVerifier::from_header(1, lines[0], vkey, None)?;
    let mut bounds = vec![1];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 1 && c < lines.len()));
    bounds.push(lines.len());
    bounds.dedup();
    let runs: Vec<_> = bounds
        .windows(2)
        .map(|w| {
            let mut run = verifier.run();
            for (i, text) in lines[w[0]..w[1]].iter().enumerate() {
                if run.line(w[0] + i + 1, text).is_err() {
                    break;
                }
            }
            run
        })
        .collect();
    for run in runs {
        verifier.join(run)?;
    }
    Ok(verifier.finish())
}

#[test]
fn runs_checked_apart_and_joined_answer_as_line_by_line() {
    let log = Log::new(30);
    let vkey = log.vkey();
    let good = log.bundle(30, &[0, 1, 2, 5, 8, 9, 13, 20, 21, 29], None);
    let lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let edit = |at: usize, f: &dyn Fn(&mut BundleLine)| {
        let mut changed = lines.clone();
        let mut line: BundleLine = serde_json::from_str(&changed[at]).expect("line");
        f(&mut line);
        changed[at] = serde_json::to_string(&line).expect("line");
        changed.join("\n")
    };
    let mut bundles = vec![good.clone()];
    for at in 1..lines.len() {
        // Malformed, out of order (a copy of the line before), a leaf at another position, a
        // bad hash, a changed leaf, and an out-of-order line that is also wrong otherwise.
        let mut malformed = lines.clone();
        malformed[at] = "{not json".into();
        bundles.push(malformed.join("\n"));
        if at >= 2 {
            let mut repeated = lines.clone();
            repeated[at] = lines[at - 1].clone();
            bundles.push(repeated.join("\n"));
            let mut swapped = lines.clone();
            swapped.swap(at - 1, at);
            bundles.push(swapped.join("\n"));
            let earlier: BundleLine = serde_json::from_str(&lines[at - 1]).expect("line");
            bundles.push(edit(at, &|l| {
                l.position = earlier.position;
                l.leaf = l.leaf.replacen("\"a\"", "\"b\"", 1);
            }));
        }
        bundles.push(edit(at, &|l| l.position += 1));
        bundles.push(edit(at, &|l| l.inclusion_proof[0] = "xx".into()));
        bundles.push(edit(at, &|l| l.leaf = l.leaf.replacen("\"a\"", "\"b\"", 1)));
    }
    let n = lines.len();
    for bundle in &bundles {
        let sequential = verify_bundle(bundle, &vkey);
        for a in 1..=n {
            for b in a..=n {
                assert_eq!(
                    verify_in_runs(bundle, &vkey, &[a, b]),
                    sequential,
                    "runs cut at {a} and {b}"
                );
            }
        }
    }
    assert!(verify_bundle(&good, &vkey).is_ok());
}

// --- Format /2: openings and erased fields (SPEC §12) ------------------------------------------

const TRACKING: &str = "/payload/ShipmentRegistered/tracking_number";
const CARRIER: &str = "/payload/ShipmentRegistered/carrier";

/// A log of `n` events whose leaves commit to a tracking number each, as sealed leaves do, and
/// the opening of each commitment.
fn committed_log(n: u64) -> (Log, Vec<Opening>) {
    let (leaves, openings) = (0..n)
        .map(|p| {
            let (commitment, opening) = commit(&format!("JJD{p:04}"), &[p as u8; SALT_BYTES]);
            let leaf = serde_json::json!({
                "actor": "a",
                "payload": {"ShipmentRegistered": {"carrier": "DHL", "tracking_number": commitment}},
                "position": p,
            });
            (leaf.to_string(), opening)
        })
        .unzip();
    (Log::of(leaves), openings)
}

fn opened(pointer: &str, opening: &Opening) -> BTreeMap<String, Opening> {
    BTreeMap::from([(pointer.to_owned(), opening.clone())])
}

/// The bundle of lines 2, 3 and 4 of a log of 8 events (lines 2 to 4 of the text), the one of
/// the event at position 3 (line 3) disclosing `openings` and naming `erased`.
fn with_line_3(
    log: &Log,
    openings: BTreeMap<String, Opening>,
    erased: &[&str],
) -> Result<consent_ledger_audit::bundle::VerifiedBundle, BundleError> {
    let erased = erased.iter().map(|&p| p.to_owned()).collect();
    let lines = [
        log.line(8, 1),
        log.line(8, 3).with_openings(openings).with_erased(erased),
        log.line(8, 6),
    ];
    verify_bundle(&log.bundle_of(BUNDLE_FORMAT, 8, &lines), &log.vkey())
}

#[test]
fn a_v2_line_opening_its_commitment_verifies_and_counts_the_opening() {
    let (log, openings) = committed_log(8);
    let verified = with_line_3(&log, opened(TRACKING, &openings[3]), &[]).expect("verifies");
    assert_eq!(
        (verified.events, verified.openings, verified.erased),
        (3, 1, 0)
    );

    // Written as an export writes it, every line opening its commitment.
    let tree = MemoryTree::new(log.hashes.clone());
    let mut bundle = log.bundle_of(BUNDLE_FORMAT, 8, &[]).into_bytes();
    for p in [0u64, 2, 5, 7] {
        let proof = tree.inclusion_path(p).expect("path");
        let opening = &openings[p as usize];
        let disclosed = [(TRACKING, opening.value.as_str(), opening.salt.as_str())];
        write_line(
            &mut bundle,
            p,
            &log.leaves[p as usize],
            &proof,
            &disclosed,
            &[],
        )
        .expect("written");
    }
    let bundle = String::from_utf8(bundle).expect("UTF-8");
    let verified = verify_bundle(&bundle, &log.vkey()).expect("verifies");
    assert_eq!(
        (verified.events, verified.openings, verified.erased),
        (4, 4, 0)
    );
}

#[test]
fn a_changed_value_is_refused_naming_its_line_and_pointer() {
    let (log, openings) = committed_log(8);
    let forged = Opening {
        value: "JJD9999".into(),
        ..openings[3].clone()
    };
    assert_eq!(
        refused(with_line_3(&log, opened(TRACKING, &forged), &[])),
        (
            3,
            BundleErrorKind::Opening(OpeningError::Mismatch {
                pointer: TRACKING.into()
            })
        )
    );
    // Another event's genuine opening opens no commitment but its own.
    assert_eq!(
        refused(with_line_3(&log, opened(TRACKING, &openings[4]), &[])),
        (
            3,
            BundleErrorKind::Opening(OpeningError::Mismatch {
                pointer: TRACKING.into()
            })
        )
    );
}

#[test]
fn a_changed_salt_is_refused() {
    let (log, openings) = committed_log(8);
    let other_salt = Opening {
        salt: B64.encode([99u8; SALT_BYTES]),
        ..openings[3].clone()
    };
    assert_eq!(
        refused(with_line_3(&log, opened(TRACKING, &other_salt), &[])),
        (
            3,
            BundleErrorKind::Opening(OpeningError::Mismatch {
                pointer: TRACKING.into()
            })
        )
    );
    let short_salt = Opening {
        salt: B64.encode([3u8; 16]),
        ..openings[3].clone()
    };
    assert_eq!(
        refused(with_line_3(&log, opened(TRACKING, &short_salt), &[])),
        (
            3,
            BundleErrorKind::Opening(OpeningError::BadSalt {
                pointer: TRACKING.into()
            })
        )
    );
}

#[test]
fn an_opening_where_the_leaf_has_no_commitment_is_refused() {
    let (log, openings) = committed_log(8);
    for pointer in [
        CARRIER,
        "/payload/ShipmentRegistered",
        "/payload/nothing",
        "",
    ] {
        assert_eq!(
            refused(with_line_3(&log, opened(pointer, &openings[3]), &[])),
            (
                3,
                BundleErrorKind::Opening(OpeningError::NoCommitment {
                    pointer: pointer.into()
                })
            ),
            "{pointer:?}"
        );
    }
    assert_eq!(
        refused(with_line_3(&log, opened("payload", &openings[3]), &[])),
        (
            3,
            BundleErrorKind::Opening(OpeningError::BadPointer {
                pointer: "payload".into()
            })
        )
    );
    // A leaf of format /1's time, with no commitment at all.
    let plain = Log::new(8);
    assert!(matches!(
        refused(with_line_3(&plain, opened("/payload/n", &openings[3]), &[])),
        (
            3,
            BundleErrorKind::Opening(OpeningError::NoCommitment { .. })
        )
    ));
}

#[test]
fn an_erased_commitment_verifies_and_is_counted() {
    let (log, _) = committed_log(8);
    let verified = with_line_3(&log, BTreeMap::new(), &[TRACKING]).expect("verifies");
    assert_eq!(
        (verified.events, verified.openings, verified.erased),
        (3, 0, 1)
    );
}

#[test]
fn an_erased_pointer_at_a_plain_field_is_refused() {
    let (log, _) = committed_log(8);
    for pointer in [CARRIER, "/payload/nothing", "/position"] {
        assert_eq!(
            refused(with_line_3(&log, BTreeMap::new(), &[pointer])),
            (
                3,
                BundleErrorKind::Opening(OpeningError::NoCommitment {
                    pointer: pointer.into()
                })
            )
        );
    }
    assert!(matches!(
        refused(with_line_3(&log, BTreeMap::new(), &["payload"])),
        (3, BundleErrorKind::Opening(OpeningError::BadPointer { .. }))
    ));
}

#[test]
fn a_pointer_named_twice_is_malformed() {
    let (log, openings) = committed_log(8);
    // Opened and erased both.
    assert!(matches!(
        refused(with_line_3(
            &log,
            opened(TRACKING, &openings[3]),
            &[TRACKING]
        )),
        (3, BundleErrorKind::Malformed(_))
    ));
    // Erased twice.
    assert!(matches!(
        refused(with_line_3(&log, BTreeMap::new(), &[TRACKING, TRACKING])),
        (3, BundleErrorKind::Malformed(_))
    ));
    // Opened twice: JSON allows a key twice, a map would keep one of them unseen.
    let line = serde_json::to_string(&log.line(8, 3).with_openings(opened(TRACKING, &openings[3])))
        .expect("line");
    let member = format!(
        r#""{TRACKING}":{}"#,
        serde_json::to_string(&openings[3]).expect("opening")
    );
    let twice = line.replacen(&member, &format!("{member},{member}"), 1);
    assert_ne!(twice, line);
    let bundle = format!("{}{twice}\n", log.bundle_of(BUNDLE_FORMAT, 8, &[]));
    assert!(matches!(
        refused(verify_bundle(&bundle, &log.vkey())),
        (2, BundleErrorKind::Malformed(_))
    ));
}

#[test]
fn members_of_v2_that_are_null_or_of_another_type_are_malformed() {
    let (log, _) = committed_log(8);
    let line = serde_json::to_string(&log.line(8, 3)).expect("line");
    let head = log.bundle_of(BUNDLE_FORMAT, 8, &[]);
    for member in [
        r#""openings":null"#,
        r#""erased":null"#,
        r#""openings":[]"#,
        r#""erased":"/payload""#,
        r#""openings":{"/payload":{"value":"v"}}"#,
        r#""openings":{"/payload":{"value":"v","salt":"s","extra":1}}"#,
        r#""erasures":[]"#,
    ] {
        // The line's closing brace, then one member more.
        let bundle = format!("{head}{},{member}}}\n", &line[..line.len() - 1]);
        assert!(
            matches!(
                refused(verify_bundle(&bundle, &log.vkey())),
                (2, BundleErrorKind::Malformed(_))
            ),
            "{member}"
        );
    }
    // Present but empty: nothing disclosed, nothing to check.
    let empty = format!(
        r#"{head}{},"openings":{{}},"erased":[]}}
"#,
        &line[..line.len() - 1]
    );
    let verified = verify_bundle(&empty, &log.vkey()).expect("verifies");
    assert_eq!(
        (verified.events, verified.openings, verified.erased),
        (1, 0, 0)
    );
}

#[test]
fn a_v1_bundle_still_verifies() {
    for log in [Log::new(8), committed_log(8).0] {
        let lines = [log.line(8, 0), log.line(8, 3), log.line(8, 7)];
        let bundle = log.bundle_of(BUNDLE_FORMAT_V1, 8, &lines);
        assert!(bundle.starts_with(r#"{"format":"consent-ledger-bundle/1","#));
        let verified = verify_bundle(&bundle, &log.vkey()).expect("verifies");
        assert_eq!(
            (verified.events, verified.openings, verified.erased),
            (3, 0, 0)
        );
        // The same lines under format /2 read alike.
        let v2 = verify_bundle(&log.bundle_of(BUNDLE_FORMAT, 8, &lines), &log.vkey());
        assert_eq!(v2, Ok(verified));
    }
}

#[test]
fn a_v1_line_carrying_openings_or_erased_is_refused() {
    let (log, openings) = committed_log(8);
    let cases = [
        log.line(8, 3).with_openings(opened(TRACKING, &openings[3])),
        log.line(8, 3).with_erased(vec![TRACKING.into()]),
    ];
    for line in cases {
        let bundle = log.bundle_of(BUNDLE_FORMAT_V1, 8, &[log.line(8, 1), line.clone()]);
        assert!(matches!(
            refused(verify_bundle(&bundle, &log.vkey())),
            (3, BundleErrorKind::Malformed(_))
        ));
        // The same line verifies under format /2.
        assert!(verify_bundle(
            &log.bundle_of(BUNDLE_FORMAT, 8, &[log.line(8, 1), line]),
            &log.vkey()
        )
        .is_ok());
    }
    // Present though empty: format /1 has no such member at all.
    let line = serde_json::to_string(&log.line(8, 3)).expect("line");
    let empty = format!(
        r#"{}{},"openings":{{}}}}
"#,
        log.bundle_of(BUNDLE_FORMAT_V1, 8, &[]),
        &line[..line.len() - 1]
    );
    assert!(matches!(
        refused(verify_bundle(&empty, &log.vkey())),
        (2, BundleErrorKind::Malformed(_))
    ));
}

#[test]
fn an_unknown_format_is_refused_at_the_header() {
    let log = Log::new(4);
    for format in ["consent-ledger-bundle/3", "consent-ledger-bundle/0", ""] {
        let bundle = log.bundle_of(format, 4, &[log.line(4, 1)]);
        assert_eq!(
            refused(verify_bundle(&bundle, &log.vkey())),
            (1, BundleErrorKind::UnknownFormat(format.into()))
        );
    }
}

#[test]
fn runs_joined_count_and_refuse_openings_as_line_by_line() {
    let (log, openings) = committed_log(12);
    let vkey = log.vkey();
    let line = |p: u64, how: u8| {
        let line = log.line(12, p);
        match how {
            0 => line,
            1 => line.with_openings(opened(TRACKING, &openings[p as usize])),
            _ => line.with_erased(vec![TRACKING.into()]),
        }
    };
    let good: Vec<BundleLine> = (0..12).map(|p| line(p, (p % 3) as u8)).collect();
    let text = log.bundle_of(BUNDLE_FORMAT, 12, &good);
    let verified = verify_bundle(&text, &vkey).expect("verifies");
    assert_eq!(
        (verified.events, verified.openings, verified.erased),
        (12, 4, 4)
    );
    let mut bundles = vec![text];
    for at in [1usize, 4, 7, 11] {
        let mut bad = good.clone();
        bad[at] = line(at as u64, 1).with_openings(opened(TRACKING, &openings[0]));
        bundles.push(log.bundle_of(BUNDLE_FORMAT, 12, &bad));
        let mut bad = good.clone();
        bad[at] = line(at as u64, 0).with_erased(vec![CARRIER.into()]);
        bundles.push(log.bundle_of(BUNDLE_FORMAT, 12, &bad));
    }
    let n = good.len() + 1;
    for bundle in &bundles {
        let sequential = verify_bundle(bundle, &vkey);
        for a in 1..=n {
            for b in a..=n {
                assert_eq!(
                    verify_in_runs(bundle, &vkey, &[a, b]),
                    sequential,
                    "runs cut at {a} and {b}"
                );
            }
        }
    }
}

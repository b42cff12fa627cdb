//! The offline verifier reads hostile input (STYLE: "untrusted bytes never panic"): every parser
//! and proof check on the verification path answers `Ok` or `Err` for arbitrary bytes, for
//! arbitrary numbers (sizes and indexes up to `u64::MAX`), and for valid inputs with a few bytes
//! flipped, inserted or deleted. And a valid bundle changed by one byte after its header is
//! either still the same bundle (whitespace) or refused at the changed line or a later one: never
//! accepted with other content, never blamed on a line before the change.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use consent_ledger_audit::bundle::{
    verify_bundle, verify_bundle_since, BundleConsistency, BundleError, BundleHeader, BundleLine,
    BundleVerifier, VerifiedBundle, BUNDLE_FORMAT,
};
use consent_ledger_audit::commitment::{
    check_opening, check_opening_in_payload, commit, Opening, OpeningError, SALT_BYTES,
};
use consent_ledger_audit::note::{self, VerifierKey};
use consent_ledger_audit::tree::{
    consistency_proof_in_memory, consistency_proof_nodes, inclusion_path_nodes, leaf_hash, mth,
    path_block, root_nodes, verify_consistency, verify_inclusion, Frontier, Hash,
    InclusionVerifier, MemoryTree, NodeId,
};
use consent_ledger_audit::verify::{verify_reader, VerifyError};
use consent_ledger_audit::{Checkpoint, LogKey};
use proptest::prelude::*;
use proptest::sample::Index;

const ORIGIN: &str = "example.org/log";
const EVENTS: usize = 24;

/// A log of [`EVENTS`] events under a key from a fixed seed, so that every bundle (Ed25519
/// signatures are deterministic) and so every failure reproduces.
struct Log {
    key: LogKey,
    vkey: VerifierKey,
    leaves: Vec<String>,
    hashes: Vec<Hash>,
    /// The opening of the commitment in the leaf, for the events that have one.
    openings: Vec<Option<Opening>>,
}

/// Where the leaves that commit to a tracking number hold it.
const TRACKING: &str = "/payload/tracking_number";

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let seed = [42u8; 32];
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let hash = consent_ledger_audit::keys::key_hash(ORIGIN, public.as_bytes());
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&seed);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log.key");
        std::fs::write(
            &path,
            format!(
                "PRIVATE+KEY+{ORIGIN}+{hash:08x}+{}\n",
                base64_encode(&bytes)
            ),
        )
        .expect("key file");
        let key = LogKey::load(&path).expect("fixed key");
        let vkey = key.vkey().parse().expect("vkey");
        // Leaves with JSON escapes, non-ASCII and control characters, so that a changed byte
        // can land inside an escape sequence; every third commits to a tracking number (SPEC
        // §12) whose value has them too.
        let (leaves, openings): (Vec<String>, Vec<Option<Opening>>) = (0..EVENTS)
            .map(|p| {
                let mut leaf = serde_json::json!({
                    "actor": format!("a \"q\" \\ é \u{1f} 𝄞 {p}"),
                    "payload": {"n": p * 7},
                    "position": p,
                });
                let mut opening = None;
                if p % 3 == 0 {
                    let value = format!("JJD \"{p}\" \\ é \u{1f}");
                    let (commitment, opened) = commit(&value, &[p as u8; SALT_BYTES]);
                    leaf["payload"]["tracking_number"] = commitment;
                    opening = Some(opened);
                }
                (leaf.to_string(), opening)
            })
            .unzip();
        let hashes = leaves.iter().map(|l| leaf_hash(l.as_bytes())).collect();
        Log {
            key,
            vkey,
            leaves,
            hashes,
            openings,
        }
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Log {
    fn note(&self, size: usize) -> String {
        Checkpoint::new(ORIGIN, size as u64, mth(&self.hashes[..size]))
            .expect("checkpoint")
            .sign(&self.key)
    }

    fn trusted(&self, size: usize) -> Checkpoint {
        self.vkey.open_checkpoint(&self.note(size)).expect("opens")
    }

    /// A valid bundle of `positions` (sorted, below `size`) against the checkpoint of `size`
    /// events, with a consistency proof from `since` if given; and the length of its header
    /// line with its newline. Of the events with a commitment, every other line opens it and
    /// the rest name it erased.
    fn bundle(&self, size: usize, positions: &[usize], since: Option<usize>) -> (String, usize) {
        let tree = MemoryTree::new(self.hashes[..size].to_vec());
        let consistency = since.map(|old| {
            let proof = consistency_proof_in_memory(&self.hashes[..size], old as u64)
                .expect("consistency proof");
            BundleConsistency::new(old as u64, &proof)
        });
        let header = BundleHeader {
            format: BUNDLE_FORMAT.into(),
            origin: ORIGIN.into(),
            vkey: self.key.vkey(),
            checkpoint: self.note(size),
            consistency,
        };
        let mut out = serde_json::to_string(&header).expect("header");
        out.push('\n');
        let header_len = out.len();
        for &p in positions {
            let proof = tree.inclusion_path(p as u64).expect("path");
            let mut line = BundleLine::new(p as u64, self.leaves[p].clone(), &proof);
            if let Some(opening) = &self.openings[p] {
                line = if p % 2 == 0 {
                    line.with_openings([(TRACKING.to_owned(), opening.clone())].into())
                } else {
                    line.with_erased(vec![TRACKING.to_owned()])
                };
            }
            out.push_str(&serde_json::to_string(&line).expect("line"));
            out.push('\n');
        }
        (out, header_len)
    }
}

// --- Mutations ----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

/// Bytes that matter to the formats read here, and any byte.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        2 => proptest::sample::select(
            b"\n\r \t\"\\{}[],:+=/0123456789-Aaz\x00\x1f\x7f\xe2\x80\x94\xff".to_vec()
        ),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Edit::Flip(i, 1 << bit)),
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..=4)
}

fn mutate(original: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(i, mask) if !bytes.is_empty() => bytes[i.index(len)] ^= mask,
            Edit::Set(i, b) if !bytes.is_empty() => bytes[i.index(len)] = *b,
            Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i.index(bytes.len()));
            }
            _ => {}
        }
    }
    bytes
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bundle of a random size and a random subset of its events.
fn bundle_shape() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (1..=EVENTS).prop_flat_map(|size| {
        (
            Just(size),
            proptest::sample::subsequence((0..size).collect::<Vec<_>>(), 0..=size.min(8)),
        )
    })
}

/// The streaming verifier's verdict; a panicked checking thread is a failure of this suite.
fn streamed(bytes: &[u8], trusted: Option<&Checkpoint>) -> Result<VerifiedBundle, VerifyError> {
    let result = verify_reader(bytes, &log().vkey, trusted, &|_| {});
    assert!(
        !matches!(result, Err(VerifyError::Panicked)),
        "a checking thread panicked"
    );
    result
}

/// What "the same content" means: the events a bundle's text holds, as (position, leaf), and
/// what each line discloses, as (openings, erased).
type Content = ((u64, String), (BTreeMap<String, Opening>, Vec<String>));

fn events(bundle: &str) -> Vec<Content> {
    bundle
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: BundleLine = serde_json::from_str(l).expect("a line the verifier accepted");
            ((line.position, line.leaf), (line.openings, line.erased))
        })
        .collect()
}

fn hashes(max: usize) -> impl Strategy<Value = Vec<Hash>> {
    proptest::collection::vec(any::<Hash>(), 0..=max)
}

/// Sizes and indexes: small ones, ones near powers of two, and ones near `u64::MAX`.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=70,
        (0u32..64, -2i64..=2).prop_map(|(k, d)| (1u64 << k).wrapping_add_signed(d)),
        (0u64..=70).prop_map(|d| u64::MAX - d),
        any::<u64>(),
    ]
}

/// A proof as long as the sizes call for (so the RFC's loop runs to its end), or of any length.
fn proof_for(expected: Option<usize>, exact: bool, mut proof: Vec<Hash>) -> Vec<Hash> {
    if let (true, Some(len)) = (exact, expected) {
        proof.resize(len, [7; 32]);
    }
    proof
}

/// A key of a generated leaf: the pointer's escapes (`/`, `~`), JSON's (`"`, `\\`, a control
/// character), and the names a leaf uses.
fn leaf_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("payload".to_owned()),
        Just("commitment".to_owned()),
        Just("field".to_owned()),
        Just("a/b".to_owned()),
        Just("~0".to_owned()),
        Just("q\"\\\u{1}".to_owned()),
        Just(String::new()),
        "[a-c~/]{1,3}",
    ]
}

/// A leaf of any shape, with commitment objects (opened by [`committed`]'s opening, or not) in
/// some of its places.
fn leaf_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let (good, _) = committed();
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z\"]{0,4}".prop_map(Value::String),
        Just(good.clone()),
        Just(json!({"commitment": "bm90IGEgaGFzaA=="})),
        Just(json!({"commitment": 7})),
        Just(json!({"commitment": good["commitment"].clone(), "value": "x"})),
    ];
    scalar.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(leaf_key(), inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every pointer into `value` (RFC 6901, escaped), the empty one first.
fn pointers_into(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        serde_json::Value::Object(members) => {
            for (key, member) in members {
                let token = key.replace('~', "~0").replace('/', "~1");
                pointers_into(member, format!("{at}/{token}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers_into(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The commitment object the generated leaves hold, and its opening.
fn committed() -> (serde_json::Value, Opening) {
    commit("JJD0001", &[3; SALT_BYTES])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // --- Openings of commitments (bundle format /2, SPEC §12) -----------------------------------

    /// `audit-log` reads each commitment from the payload's text in one pass; it must answer what
    /// the parsed leaf answers, for every place in any payload and for pointers that lead nowhere.
    #[test]
    fn an_opening_read_from_the_payload_text_is_checked_as_on_the_parsed_leaf(
        payload in leaf_value(),
        place in any::<Index>(),
        stray in prop_oneof![Just("".to_owned()), Just("/01".to_owned()), Just("/+0".to_owned()),
            Just("/x".to_owned()), "/[a-c~0-9/]{0,6}", "[a-c/]{0,3}"],
        pretty in any::<bool>(),
        elsewhere in any::<bool>(),
    ) {
        let (_, opening) = committed();
        let leaf = serde_json::json!({ "payload": payload });
        let mut pointers = Vec::new();
        pointers_into(&leaf, String::new(), &mut pointers);
        let mut pointer = format!("{}{stray}", place.get(&pointers));
        if elsewhere {
            // The same path under a member the leaf does not have.
            pointer = pointer.replacen("/payload", "/commitment", 1);
        }
        let text = if pretty {
            serde_json::to_string_pretty(&payload)
        } else {
            serde_json::to_string(&payload)
        }
        .expect("a value serializes");
        prop_assert_eq!(
            check_opening_in_payload(&text, &pointer, &opening).map_err(|e| e.to_string()),
            Ok(check_opening(&leaf, &pointer, &opening)),
            "pointer {:?} in {}", pointer, text
        );
    }

    #[test]
    fn any_payload_text_read_for_an_opening_is_checked_or_refused(
        payload in any::<String>(),
        pointer in prop_oneof![any::<String>(), Just("/payload".to_owned())],
    ) {
        let (_, opening) = committed();
        let parsed = serde_json::from_str::<serde_json::Value>(&payload);
        match check_opening_in_payload(&payload, &pointer, &opening) {
            Ok(answer) => match parsed {
                Ok(parsed) => prop_assert_eq!(
                    answer,
                    check_opening(&serde_json::json!({ "payload": parsed }), &pointer, &opening)
                ),
                // A pointer that is no pointer is refused before the text is read.
                Err(_) => prop_assert!(
                    matches!(answer, Err(OpeningError::BadPointer { .. })),
                    "{:?} read as JSON", payload
                ),
            },
            Err(_) => prop_assert!(parsed.is_err(), "{:?} refused", payload),
        }
    }

    #[test]
    fn any_opening_of_any_leaf_is_checked_or_refused(
        leaf in any::<String>(),
        pointer in any::<String>(),
        value in any::<String>(),
        salt in any::<String>(),
    ) {
        let leaf: serde_json::Value = serde_json::from_str(&leaf).unwrap_or(serde_json::Value::Null);
        let opening = Opening { value, salt };
        prop_assert!(check_opening(&leaf, &pointer, &opening).is_err());
    }

    #[test]
    fn only_the_committed_value_and_salt_open_a_commitment(
        value in any::<String>(),
        other in any::<String>(),
        salt in any::<[u8; SALT_BYTES]>(),
    ) {
        let (commitment, opening) = commit(&value, &salt);
        let leaf = serde_json::json!({ "payload": { "field": commitment } });
        prop_assert!(check_opening(&leaf, "/payload/field", &opening).is_ok());
        let forged = Opening { value: other.clone(), ..opening };
        prop_assert_eq!(check_opening(&leaf, "/payload/field", &forged).is_ok(), other == value);
    }

    // --- Verifier keys and signed notes ---------------------------------------------------------

    #[test]
    fn any_text_parses_as_a_vkey_or_is_refused(s in any::<String>()) {
        let _ = s.parse::<VerifierKey>();
    }

    #[test]
    fn a_damaged_vkey_parses_only_as_the_same_key_or_is_refused(edits in edits()) {
        let vkey = log().key.vkey();
        let damaged = text(&mutate(vkey.as_bytes(), &edits));
        if let Ok(parsed) = damaged.parse::<VerifierKey>() {
            // A changed name, hash or key cannot match the others; only a spelling of the same
            // key may pass (the key hash's hex digits in the other case).
            prop_assert_eq!(parsed, log().vkey.clone(), "accepted {:?}", damaged);
        }
    }

    #[test]
    fn any_text_opens_as_a_note_or_is_refused(s in any::<String>(), bytes in any::<Vec<u8>>()) {
        let vkey = &log().vkey;
        let _ = vkey.open(&s);
        let _ = vkey.open_checkpoint(&s);
        let _ = vkey.open_checkpoint(&text(&bytes));
        let _ = note::open_checkpoint(&s, &s);
        let _ = Checkpoint::parse_body(&s);
    }

    #[test]
    fn a_damaged_note_opens_only_as_the_same_checkpoint(size in 0..=EVENTS, edits in edits()) {
        let original = log().note(size);
        let damaged = text(&mutate(original.as_bytes(), &edits));
        if let Ok(opened) = log().vkey.open_checkpoint(&damaged) {
            prop_assert_eq!(opened, log().trusted(size), "accepted {:?}", damaged);
        }
    }

    /// A body that reads is the one way to spell its checkpoint (so it has one signature).
    #[test]
    fn a_checkpoint_body_that_reads_is_canonical(size in 0..=EVENTS, edits in edits()) {
        let body = log().trusted(size).to_body();
        for candidate in [text(&mutate(body.as_bytes(), &edits)), body] {
            if let Ok(checkpoint) = Checkpoint::parse_body(&candidate) {
                prop_assert_eq!(checkpoint.to_body(), candidate);
            }
        }
    }

    #[test]
    fn any_origin_makes_a_checkpoint_or_is_refused(origin in any::<String>(), size in number()) {
        if let Ok(checkpoint) = Checkpoint::new(&origin, size, [1; 32]) {
            let body = checkpoint.to_body();
            prop_assert_eq!(Checkpoint::parse_body(&body), Ok(checkpoint));
        }
    }

    // --- Bundles --------------------------------------------------------------------------------

    #[test]
    fn any_bytes_are_a_verdict_on_a_bundle(bytes in any::<Vec<u8>>(), lines in proptest::collection::vec(any::<String>(), 0..4)) {
        let vkey = &log().vkey;
        let _ = verify_bundle(&text(&bytes), vkey);
        let _ = streamed(&bytes, None);
        let joined = lines.join("\n");
        let _ = verify_bundle(&joined, vkey);
        let _ = verify_bundle_since(&joined, vkey, &log().trusted(3));
        let _ = streamed(joined.as_bytes(), Some(&log().trusted(0)));
    }

    /// Header and event lines read alone, and event lines after a valid header.
    #[test]
    fn any_line_is_a_verdict(line in any::<String>(), bytes in any::<Vec<u8>>(), n in any::<usize>()) {
        let vkey = &log().vkey;
        let _ = BundleVerifier::from_header(n, &line, vkey, None);
        let _ = BundleVerifier::from_header(n, &line, vkey, Some(&log().trusted(5)));
        let (bundle, _) = log().bundle(EVENTS, &[1, 2], None);
        let header = bundle.lines().next().expect("header");
        let mut verifier = BundleVerifier::from_header(1, header, vkey, None).expect("valid header");
        let mut run = verifier.run();
        let _ = run.line(n, &line);
        let _ = run.line_bytes(n, &bytes);
        let _ = verifier.line(n, &line);
        let _ = verifier.join(run);
    }

    #[test]
    fn a_damaged_bundle_is_a_verdict(
        (size, positions) in bundle_shape(),
        since in proptest::option::of(0..=EVENTS),
        edits in edits(),
    ) {
        let since = since.map(|s| s.min(size));
        let (bundle, _) = log().bundle(size, &positions, since);
        let damaged = mutate(bundle.as_bytes(), &edits);
        let vkey = &log().vkey;
        let trusted = since.map(|s| log().trusted(s));
        let _ = verify_bundle(&text(&damaged), vkey);
        if let Some(trusted) = &trusted {
            let _ = verify_bundle_since(&text(&damaged), vkey, trusted);
        }
        let streamed_verdict = streamed(&damaged, trusted.as_ref());
        // Read as a stream or at once, a text bundle gets the same verdict.
        if let Ok(as_text) = std::str::from_utf8(&damaged) {
            let at_once = match &trusted {
                Some(trusted) => verify_bundle_since(as_text, vkey, trusted),
                None => verify_bundle(as_text, vkey),
            };
            // The line and the kind of fault, not the parser's message (whose column may count
            // a trailing CR one way or the other).
            match (streamed_verdict, at_once) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(VerifyError::Refused(a)), Err(b)) => prop_assert_eq!(
                    (a.line, std::mem::discriminant(&a.kind)),
                    (b.line, std::mem::discriminant(&b.kind)),
                    "streamed {:?}, at once {:?}", a, b
                ),
                (a, b) => prop_assert!(false, "streamed {:?}, at once {:?}", a, b),
            }
        }
    }

    /// One byte changed anywhere after the header line: the same bundle, or refused at that line
    /// or after it.
    #[test]
    fn one_changed_byte_is_caught_at_its_line(
        (size, positions) in bundle_shape(),
        at in any::<Index>(),
        new in byte(),
    ) {
        let (bundle, header_len) = log().bundle(size, &positions, None);
        prop_assume!(bundle.len() > header_len);
        let at = header_len + at.index(bundle.len() - header_len);
        prop_assume!(bundle.as_bytes()[at] != new);
        let mut damaged = bundle.clone().into_bytes();
        damaged[at] = new;
        // 1-based: the line holding the byte (a line's newline belongs to it).
        let line = 1 + bundle.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        let original = verify_bundle(&bundle, &log().vkey).expect("valid bundle");

        let mut verdicts = vec![streamed(&damaged, None).map_err(|e| match e {
            VerifyError::Refused(e) => e,
            other => panic!("not a verdict: {other}"),
        })];
        if let Ok(text) = std::str::from_utf8(&damaged) {
            verdicts.push(verify_bundle(text, &log().vkey));
        }
        for verdict in verdicts {
            match verdict {
                Ok(verified) => {
                    prop_assert_eq!(&verified, &original);
                    let text = std::str::from_utf8(&damaged).expect("accepted, so UTF-8");
                    prop_assert_eq!(events(text), events(&bundle), "accepted other content");
                }
                Err(BundleError { line: refused_at, kind }) => prop_assert!(
                    refused_at >= line,
                    "byte {} of line {} changed to {:#04x}, refused at line {}: {}",
                    at, line, new, refused_at, kind
                ),
            }
        }
    }

    // --- Tree proofs ----------------------------------------------------------------------------

    #[test]
    fn any_inclusion_proof_is_a_verdict(
        index in number(),
        size in number(),
        exact in any::<bool>(),
        proof in hashes(70),
        leaf in any::<Hash>(),
        root in any::<Hash>(),
    ) {
        let expected = inclusion_path_nodes(index, size).ok().map(|p| p.len());
        let proof = proof_for(expected, exact, proof);
        let _ = verify_inclusion(&leaf, index, size, &proof, &root);
        let mut verifier = InclusionVerifier::new(size, root);
        let once = verifier.verify(&leaf, index, &proof);
        prop_assert_eq!(once.clone(), verify_inclusion(&leaf, index, size, &proof, &root));
        // Twice, so that a remembered path (if any was accepted) is walked too.
        prop_assert_eq!(verifier.verify(&leaf, index, &proof), once);
        let _ = verifier.verify(&leaf, index.wrapping_add(1), &proof);
    }

    /// Arbitrary proofs checked one after another by one verifier answer as each alone would,
    /// also after a real proof was accepted into its memory.
    #[test]
    fn an_inclusion_verifier_with_memory_answers_as_the_rfc(
        size in 1..=EVENTS,
        asks in proptest::collection::vec((0u64..=30, any::<bool>(), edits()), 1..6),
    ) {
        let hashes = &log().hashes[..size];
        let tree = MemoryTree::new(hashes.to_vec());
        let root = tree.root();
        let mut verifier = InclusionVerifier::new(size as u64, root);
        for (index, damage, edits) in asks {
            let real = tree.inclusion_path(index).unwrap_or_default();
            let leaf = hashes.get(index as usize).copied().unwrap_or([0; 32]);
            let proof: Vec<Hash> = if damage {
                let flat: Vec<u8> = real.iter().flatten().copied().collect();
                mutate(&flat, &edits).chunks(32).filter(|c| c.len() == 32).map(|c| c.try_into().unwrap()).collect()
            } else {
                real
            };
            prop_assert_eq!(
                verifier.verify(&leaf, index, &proof),
                verify_inclusion(&leaf, index, size as u64, &proof, &root)
            );
        }
    }

    #[test]
    fn any_consistency_proof_is_a_verdict(
        old in number(),
        new in number(),
        exact in any::<bool>(),
        proof in hashes(130),
        old_root in any::<Hash>(),
        new_root in any::<Hash>(),
    ) {
        let expected = consistency_proof_nodes(old, new).ok().map(|p| p.len());
        let proof = proof_for(expected, exact, proof);
        let _ = verify_consistency(old, new, &old_root, &new_root, &proof);
        let _ = verify_consistency(new, old, &new_root, &old_root, &proof);
    }

    /// The node arithmetic behind the proofs, at any size and index.
    #[test]
    fn node_arithmetic_never_overflows(
        index in number(),
        size in number(),
        level in 0u32..=70,
        hashes in hashes(70),
    ) {
        let _ = path_block(index, size, level);
        let _ = inclusion_path_nodes(index, size);
        let _ = consistency_proof_nodes(index, size);
        prop_assert!(root_nodes(size).len() <= 64);
        if let Some(node) = NodeId::new(level, index) {
            let leaves = node.leaves();
            prop_assert!(leaves.start < leaves.end);
        }
        if let Ok(frontier) = Frontier::from_parts(size, hashes) {
            let _ = frontier.root();
            prop_assert_eq!(frontier.size(), size);
        }
    }
}

/// The fixed key and log the properties use are what they claim.
#[test]
fn the_fixture_is_a_valid_log() {
    let log = log();
    let (bundle, header_len) = log.bundle(EVENTS, &[0, 5, 23], Some(7));
    assert_eq!(
        bundle.as_bytes()[header_len - 1],
        b'\n',
        "the header ends where it says"
    );
    let verified = verify_bundle_since(&bundle, &log.vkey, &log.trusted(7)).expect("verifies");
    assert_eq!(verified.events, 3);
    let (all, _) = log.bundle(EVENTS, &(0..EVENTS).collect::<Vec<_>>(), None);
    let verified_all = verify_bundle(&all, &log.vkey).expect("verifies");
    // Commitments at 0, 3, …, 21: opened at the even positions, erased at the odd ones.
    assert_eq!((verified_all.openings, verified_all.erased), (4, 4));
    assert!(all.contains(r#""erased":["/payload/tracking_number"]"#));
    assert_eq!(verified.consistent_with, Some(7));
    assert_eq!(
        streamed(bundle.as_bytes(), Some(&log.trusted(7))).expect("streams"),
        verified
    );
    assert_eq!(events(&bundle).len(), 3);
    // Deterministic: the same seed, the same signatures.
    assert_eq!(log.note(3), log.note(3));
    assert_eq!(log.vkey.name(), ORIGIN);
}

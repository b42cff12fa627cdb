//! Checkpoints (c2sp.org/tlog-checkpoint) signed as notes (c2sp.org/signed-note, Ed25519).
//! Pure text handling: no I/O.
//!
//! A signed checkpoint reads:
//!
//! ```text
//! example.com/log          ← origin
//! 20852163                 ← tree size, decimal, no leading zeroes
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=   ← root hash, standard base64
//!                          ← blank line: end of the signed text (the "body")
//! — example.com/log Az3grlgtzPICa5OS…            ← em dash, space, key name, space,
//!                                                   base64(4-byte key hash ‖ signature)
//! ```
//!
//! The checked parts follow the Go reference implementation, golang.org/x/mod/sumdb/note
//! (`Open`, `NewVerifier`), so a note we accept Go accepts too. We are stricter in three ways,
//! none of which an honest signer trips: Ed25519 is checked with `verify_strict`; every
//! signature line of the trusted key is verified (Go verifies the first and skips repeats); and
//! base64 must be canonical (padded, unused bits zero), where Go's decoder tolerates stray bits.

use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::keys::{is_control, is_valid_key_name, key_hash, LogKey};
use crate::tree::Hash;

/// The signature-type byte for Ed25519 in a vkey (c2sp.org/signed-note, "Signature types").
const ALG_ED25519: u8 = 0x01;

/// Starts every signature line: EM DASH (U+2014), then a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Signature lines a note may carry before we stop reading it. The spec requires accepting at
/// least 16; 100 is Go's limit, and bounds the work an untrusted note can cause.
pub const MAX_SIGNATURES: usize = 100;

/// Why a checkpoint body (c2sp.org/tlog-checkpoint, "Note text") was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint body must end with a newline")]
    MissingFinalNewline,
    #[error("checkpoint body has {found} lines; it needs origin, tree size and root hash")]
    TooFewLines { found: usize },
    #[error("checkpoint line {line} is empty; origin and extension lines must be non-empty")]
    EmptyLine { line: usize },
    #[error("checkpoint origin `{origin}` contains a control character")]
    BadOrigin { origin: String },
    #[error(
        "checkpoint tree size `{text}` is not a canonical decimal (digits only, no leading zeroes, \
         at most u64::MAX)"
    )]
    BadSize { text: String },
    #[error("checkpoint root hash `{text}` is not standard base64")]
    BadRootEncoding { text: String },
    #[error("checkpoint root hash is {len} bytes; SHA-256 roots are 32")]
    BadRootLength { len: usize },
    #[error("checkpoint line {line} contains a control character")]
    ControlCharacter { line: usize },
}

/// Why a note's layout (c2sp.org/signed-note, "Format") was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedNote {
    #[error("byte {offset} is an ASCII control character other than newline (CR is one)")]
    ControlCharacter { offset: usize },
    #[error("no blank line separates the text from the signatures")]
    NoSignatureBlock,
    #[error("the last signature line does not end with a newline")]
    UnterminatedSignatures,
    #[error("signature line {line} does not start with an em dash (U+2014) and a space")]
    NotASignatureLine { line: usize },
    #[error("signature line {line} names a key with a '+' or a space, or no name at all")]
    BadKeyName { line: usize },
    #[error("signature line {line} is not base64 of a 4-byte key hash and a signature")]
    BadSignatureEncoding { line: usize },
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

/// Why a verifier key (`<name>+<key hash>+<base64(0x01 ‖ public key)>`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedVkey {
    #[error("expected <name>+<8 hex digits>+<base64 key>")]
    Layout,
    #[error("key name must be non-empty, with no '+', spaces or control characters")]
    BadName,
    #[error("key hash must be 8 lowercase or uppercase hex digits")]
    BadKeyHash,
    #[error("key is not standard base64")]
    BadEncoding,
    #[error("key type {0:#04x} is not Ed25519 (0x01)")]
    UnknownAlgorithm(u8),
    #[error("an Ed25519 public key is 32 bytes, with a valid curve point")]
    BadPublicKey,
    #[error("key hash does not match SHA-256(name ‖ \\n ‖ 0x01 ‖ key)")]
    KeyHashMismatch,
}

/// Everything that can go wrong making or opening a signed note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(#[from] MalformedNote),
    #[error("malformed verifier key: {0}")]
    MalformedVkey(#[from] MalformedVkey),
    /// The note may be well signed, but not by the key we trust.
    #[error("note has no signature by key {name}+{key_hash:08x}")]
    UnknownKey { name: String, key_hash: u32 },
    /// A signature claims to be by the trusted key and is not: the whole note is refused, as
    /// the spec recommends.
    #[error("invalid signature by key {name}+{key_hash:08x}")]
    BadSignature { name: String, key_hash: u32 },
    /// Only notes whose text ends with a newline and has no control characters can be signed.
    #[error("note text must end with a newline and contain no control characters but newlines")]
    UnsignableText,
    #[error("signed note is not a checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// A log's tree head in the c2sp.org/tlog-checkpoint format: origin, tree size, root hash and
/// any extension lines. Holding one means its body is well formed and can be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    // INVARIANT: origin is non-empty and has no control characters (so no newline); every
    // extension line is non-empty and has none either. `to_body` relies on it.
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines (their use is NOT RECOMMENDED by the spec).
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() {
            return Err(CheckpointError::EmptyLine { line: 1 });
        }
        if origin.contains(is_control) {
            return Err(CheckpointError::BadOrigin {
                origin: origin.to_owned(),
            });
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 9162 Merkle Tree Hash of the first [`Self::size`] leaves.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// Opaque lines after the root hash, as they were signed.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: `origin\nsize\nbase64(root)\n` and any extension lines.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Reads a checkpoint body strictly: exactly what [`Self::to_body`] writes, and extension
    /// lines. The size must be canonical (`0`, or digits without a leading zero or sign), since a
    /// checkpoint that could be spelled two ways could be signed two ways.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let text = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = text.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { found: lines.len() });
        };
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyLine { line: i + 1 });
            }
            if line.contains(is_control) {
                return Err(CheckpointError::ControlCharacter { line: i + 1 });
            }
        }
        let mut checkpoint = Self::new(origin, parse_size(size)?, parse_root(root)?)?;
        checkpoint.extensions = extensions.iter().map(|&l| l.to_owned()).collect();
        Ok(checkpoint)
    }

    /// The signed note of this checkpoint. Cannot fail: a `Checkpoint` always has a signable body
    /// and a [`LogKey`] always has a valid name.
    pub fn sign(&self, key: &LogKey) -> String {
        write_note(&self.to_body(), key)
    }
}

/// `0`, or ASCII digits with no leading zero, within u64 (tlog-checkpoint, "Note text" item 2).
fn parse_size(text: &str) -> Result<u64, CheckpointError> {
    let bad = || CheckpointError::BadSize {
        text: text.to_owned(),
    };
    // u64::from_str alone would accept "+5" and "007".
    if !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

fn parse_root(text: &str) -> Result<Hash, CheckpointError> {
    // The engine refuses missing padding and non-zero trailing bits, so each root has one
    // spelling.
    let bytes = B64
        .decode(text)
        .map_err(|_| CheckpointError::BadRootEncoding {
            text: text.to_owned(),
        })?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| CheckpointError::BadRootLength { len })
}

/// Offset of the first control character other than newline. This is what refuses CRLF line
/// ends.
fn first_control_character(text: &str) -> Option<usize> {
    text.bytes().position(|b| b < 0x20 && b != b'\n')
}

/// Signs `body` (the note text) with `key` and returns the signed note: the body, a blank line
/// and one signature line.
///
/// The body must end with a newline and contain no control characters other than newlines, or
/// no verifier could open the note ([`NoteError::UnsignableText`]).
pub fn sign(body: &str, key: &LogKey) -> Result<String, NoteError> {
    if !body.ends_with('\n') || first_control_character(body).is_some() {
        return Err(NoteError::UnsignableText);
    }
    Ok(write_note(body, key))
}

/// The signed note of a body already known to be signable.
fn write_note(body: &str, key: &LogKey) -> String {
    // Ed25519 over the note text including its final newline, not the blank line
    // (c2sp.org/signed-note, "Ed25519 signatures").
    let signature = key.signing_key().sign(body.as_bytes());
    let mut blob = Vec::with_capacity(4 + 64);
    blob.extend_from_slice(&key.key_hash().to_be_bytes());
    blob.extend_from_slice(&signature.to_bytes());
    format!(
        "{body}\n{SIGNATURE_PREFIX}{} {}\n",
        key.name(),
        B64.encode(blob)
    )
}

/// A trusted Ed25519 verifier key, parsed from its C2SP vkey text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_hash: u32,
    key: VerifyingKey,
}

impl FromStr for VerifierKey {
    type Err = MalformedVkey;

    /// Reads `<name>+<key hash>+<base64(0x01 ‖ public key)>`, as Go's `note.NewVerifier` does.
    fn from_str(vkey: &str) -> Result<Self, MalformedVkey> {
        // Split from the left: the name has no '+', but standard base64 may.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash16), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedVkey::Layout);
        };
        if !is_valid_key_name(name) {
            return Err(MalformedVkey::BadName);
        }
        // from_str_radix alone would accept a sign, and fewer digits.
        if hash16.len() != 8 || !hash16.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MalformedVkey::BadKeyHash);
        }
        let claimed = u32::from_str_radix(hash16, 16).map_err(|_| MalformedVkey::BadKeyHash)?;
        let bytes = B64.decode(key64).map_err(|_| MalformedVkey::BadEncoding)?;
        let (&alg, public) = bytes.split_first().ok_or(MalformedVkey::BadPublicKey)?;
        if alg != ALG_ED25519 {
            return Err(MalformedVkey::UnknownAlgorithm(alg));
        }
        let public: &[u8; 32] = public.try_into().map_err(|_| MalformedVkey::BadPublicKey)?;
        let key = VerifyingKey::from_bytes(public).map_err(|_| MalformedVkey::BadPublicKey)?;
        if key_hash(name, public) != claimed {
            return Err(MalformedVkey::KeyHashMismatch);
        }
        Ok(Self {
            name: name.to_owned(),
            key_hash: claimed,
            key,
        })
    }
}

impl VerifierKey {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// Checks a signed note against this key and returns its text (the body, with its final
    /// newline), which may be trusted from then on.
    ///
    /// Signature lines by other keys, even ones sharing our name or our key hash (not both), are
    /// ignored, as c2sp.org/signed-note requires; they must still be well formed. Every line by
    /// this key must verify, and at least one must be present.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let (body, signatures) = split_note(note)?;
        let mut verified = false;
        for (i, line) in signatures.split_terminator('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(MalformedNote::TooManySignatures.into());
            }
            let (name, key_hash, signature) = parse_signature_line(line, i + 1)?;
            if name != self.name || key_hash != self.key_hash {
                continue;
            }
            let bad = || NoteError::BadSignature {
                name: self.name.clone(),
                key_hash: self.key_hash,
            };
            let signature = Signature::from_slice(&signature).map_err(|_| bad())?;
            // verify_strict also refuses small-order keys and non-canonical signatures, which
            // honest signers never produce.
            self.key
                .verify_strict(body.as_bytes(), &signature)
                .map_err(|_| bad())?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::UnknownKey {
                name: self.name.clone(),
                key_hash: self.key_hash,
            });
        }
        Ok(body)
    }

    /// Checks a detached Ed25519 signature of `message` by this key (strictly, as [`Self::open`]).
    pub fn verify_detached(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|s| self.key.verify_strict(message, &s).is_ok())
    }

    /// [`Self::open`], then reads the text as a checkpoint.
    ///
    /// The spec says a log's key name SHOULD equal the checkpoint origin, but does not require
    /// it (sum.golang.org's do differ), so comparing the origin is left to the caller.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Ok(Checkpoint::parse_body(self.open(note)?)?)
    }
}

/// [`VerifierKey::open`] with the vkey given as text.
pub fn open<'n>(note: &'n str, vkey: &str) -> Result<&'n str, NoteError> {
    vkey.parse::<VerifierKey>()?.open(note)
}

/// [`VerifierKey::open_checkpoint`] with the vkey given as text.
pub fn open_checkpoint(note: &str, vkey: &str) -> Result<Checkpoint, NoteError> {
    vkey.parse::<VerifierKey>()?.open_checkpoint(note)
}

/// Splits a note at its *last* blank line into the text (with its final newline) and the
/// signature block (every line newline-terminated), as Go's `note.Open` does.
fn split_note(note: &str) -> Result<(&str, &str), MalformedNote> {
    if let Some(offset) = first_control_character(note) {
        return Err(MalformedNote::ControlCharacter { offset });
    }
    let split = note.rfind("\n\n").ok_or(MalformedNote::NoSignatureBlock)?;
    // Both slices cut next to an ASCII '\n', so on char boundaries.
    let (body, signatures) = (&note[..split + 1], &note[split + 2..]);
    if !signatures.ends_with('\n') {
        // Also covers an empty signature block.
        return Err(MalformedNote::UnterminatedSignatures);
    }
    Ok((body, signatures))
}

/// Reads `— <name> <base64(key hash ‖ signature)>` (without its newline) into name, key hash and
/// signature bytes. `number` counts signature lines from 1, for the error.
fn parse_signature_line(line: &str, number: usize) -> Result<(&str, u32, Vec<u8>), MalformedNote> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(MalformedNote::NotASignatureLine { line: number })?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(MalformedNote::BadSignatureEncoding { line: number })?;
    if !is_valid_key_name(name) {
        return Err(MalformedNote::BadKeyName { line: number });
    }
    let mut blob = B64
        .decode(b64)
        .map_err(|_| MalformedNote::BadSignatureEncoding { line: number })?;
    // A key hash and at least one byte of signature, as Go requires of any signature type.
    let [a, b, c, d, _, ..] = blob.as_slice() else {
        return Err(MalformedNote::BadSignatureEncoding { line: number });
    };
    let key_hash = u32::from_be_bytes([*a, *b, *c, *d]);
    Ok((name, key_hash, blob.split_off(4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "example.com/consent-ledger";

    fn key(name: &str) -> LogKey {
        LogKey::generate(name).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::new(ORIGIN, 20852163, [7; 32]).unwrap()
    }

    #[test]
    fn a_checkpoint_body_reads_back_as_written() {
        let c = checkpoint();
        let body = c.to_body();
        assert_eq!(
            body,
            format!("{ORIGIN}\n20852163\n{}\n", B64.encode([7u8; 32]))
        );
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), c);

        let empty = Checkpoint::new(ORIGIN, 0, crate::tree::empty_root()).unwrap();
        assert_eq!(Checkpoint::parse_body(&empty.to_body()).unwrap(), empty);
    }

    #[test]
    fn extension_lines_are_kept_so_the_signed_bytes_round_trip() {
        let body = format!("{}ext one\n— not a signature\n", checkpoint().to_body());
        let c = Checkpoint::parse_body(&body).unwrap();
        assert_eq!(c.extensions(), ["ext one", "— not a signature"]);
        assert_eq!(c.to_body(), body);
    }

    #[test]
    fn non_canonical_or_broken_bodies_are_refused() {
        use CheckpointError as E;
        let root = B64.encode([7u8; 32]);
        let size = |text: &str| E::BadSize { text: text.into() };
        let unpadded = root.trim_end_matches('=');
        let url_safe = root.replace('H', "-");
        let cases = [
            (format!("{ORIGIN}\n5\n{root}"), E::MissingFinalNewline),
            (String::new(), E::MissingFinalNewline),
            (format!("{ORIGIN}\n5\n"), E::TooFewLines { found: 2 }),
            (format!("\n5\n{root}\n"), E::EmptyLine { line: 1 }),
            (format!("{ORIGIN}\n5\n{root}\n\n"), E::EmptyLine { line: 4 }),
            (
                format!("{ORIGIN}\r\n5\n{root}\n"),
                E::ControlCharacter { line: 1 },
            ),
            (format!("{ORIGIN}\n05\n{root}\n"), size("05")),
            (format!("{ORIGIN}\n00\n{root}\n"), size("00")),
            (format!("{ORIGIN}\n+5\n{root}\n"), size("+5")),
            (format!("{ORIGIN}\n-5\n{root}\n"), size("-5")),
            (format!("{ORIGIN}\n 5\n{root}\n"), size(" 5")),
            (format!("{ORIGIN}\n\u{665}\n{root}\n"), size("\u{665}")),
            (
                format!("{ORIGIN}\n18446744073709551616\n{root}\n"),
                size("18446744073709551616"),
            ),
            (
                format!("{ORIGIN}\n5\n{unpadded}\n"),
                E::BadRootEncoding {
                    text: unpadded.into(),
                },
            ),
            (
                format!("{ORIGIN}\n5\n{url_safe}\n"),
                E::BadRootEncoding { text: url_safe },
            ),
            (
                format!("{ORIGIN}\n5\n{}\n", B64.encode([7u8; 31])),
                E::BadRootLength { len: 31 },
            ),
            (
                format!("{ORIGIN}\n5\n{}\n", B64.encode([7u8; 33])),
                E::BadRootLength { len: 33 },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(Checkpoint::parse_body(&body), Err(expected), "{body:?}");
        }
        assert_eq!(
            Checkpoint::parse_body(&format!("{ORIGIN}\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size(),
            u64::MAX
        );
    }

    #[test]
    fn origins_that_would_break_the_body_are_refused() {
        assert!(Checkpoint::new("", 1, [0; 32]).is_err());
        assert!(Checkpoint::new("a\nb", 1, [0; 32]).is_err());
        assert!(Checkpoint::new("a\rb", 1, [0; 32]).is_err());
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_vkey() {
        let k = key(ORIGIN);
        let note = checkpoint().sign(&k);
        let (body, sig) = note.split_once("\n\n").unwrap();
        assert_eq!(format!("{body}\n"), checkpoint().to_body());
        assert!(sig.starts_with(&format!("\u{2014} {ORIGIN} ")));
        assert!(sig.ends_with('\n') && !sig[..sig.len() - 1].contains('\n'));

        assert_eq!(open_checkpoint(&note, &k.vkey()).unwrap(), checkpoint());
        assert_eq!(open(&note, &k.vkey()).unwrap(), checkpoint().to_body());
        assert_eq!(sign(&checkpoint().to_body(), &k).unwrap(), note);
    }

    #[test]
    fn a_note_signed_by_another_key_is_refused() {
        let note = checkpoint().sign(&key(ORIGIN));
        let other = key(ORIGIN);
        assert!(matches!(
            open(&note, &other.vkey()),
            Err(NoteError::UnknownKey { .. })
        ));
        let renamed = key("example.com/other");
        assert!(matches!(
            open(&note, &renamed.vkey()),
            Err(NoteError::UnknownKey { .. })
        ));
    }

    #[test]
    fn any_changed_byte_of_the_body_is_refused() {
        let k = key(ORIGIN);
        let note = checkpoint().sign(&k);
        let body_len = checkpoint().to_body().len();
        // All but the final newline, whose loss would remove the blank line too.
        for i in 0..body_len - 1 {
            let mut bytes = note.clone().into_bytes();
            // Stay printable ASCII so the failure is the signature, not the layout.
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(
                matches!(
                    open(&tampered, &k.vkey()),
                    Err(NoteError::BadSignature { .. })
                ),
                "byte {i}"
            );
        }
    }

    #[test]
    fn signatures_by_other_keys_are_ignored() {
        let k = key(ORIGIN);
        let body = checkpoint().to_body();
        let ours = checkpoint().sign(&k);
        let our_line = ours.strip_prefix(&format!("{body}\n")).unwrap();
        let witness = sign(&body, &key("witness.example/w1"))
            .unwrap()
            .strip_prefix(&format!("{body}\n"))
            .unwrap()
            .to_owned();
        // Same name as ours, other key hash: another key, so ignored even with a junk signature.
        let mut junk = k.key_hash().wrapping_add(1).to_be_bytes().to_vec();
        junk.extend_from_slice(&[0; 64]);
        let same_name = format!("\u{2014} {ORIGIN} {}\n", B64.encode(&junk));
        // Same key hash, other name: also another key.
        let mut junk = k.key_hash().to_be_bytes().to_vec();
        junk.push(0);
        let same_hash = format!("\u{2014} other.example {}\n", B64.encode(&junk));

        let note = format!("{body}\n{witness}{same_name}{our_line}{same_hash}");
        assert_eq!(open(&note, &k.vkey()).unwrap(), body);

        let without_ours = format!("{body}\n{witness}{same_name}{same_hash}");
        assert!(matches!(
            open(&without_ours, &k.vkey()),
            Err(NoteError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_bad_signature_by_the_trusted_key_spoils_the_note() {
        let k = key(ORIGIN);
        let body = checkpoint().to_body();
        let note = checkpoint().sign(&k);
        let mut junk = k.key_hash().to_be_bytes().to_vec();
        junk.extend_from_slice(&[0; 64]);
        let forged = format!("{note}\u{2014} {ORIGIN} {}\n", B64.encode(&junk));
        assert!(matches!(
            open(&forged, &k.vkey()),
            Err(NoteError::BadSignature { .. })
        ));
        // A truncated signature by our key is a bad signature, not a crash.
        junk.truncate(10);
        let short = format!("{body}\n\u{2014} {ORIGIN} {}\n", B64.encode(&junk));
        assert!(matches!(
            open(&short, &k.vkey()),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_refused() {
        use MalformedNote as M;
        let k = key(ORIGIN);
        let body = checkpoint().to_body();
        let note = checkpoint().sign(&k);
        let sig_line = note.strip_prefix(&format!("{body}\n")).unwrap();
        let b64 = sig_line.rsplit_once(' ').unwrap().1.trim_end();
        let cases: Vec<(String, M)> = vec![
            (body.clone(), M::NoSignatureBlock),
            (format!("{body}{sig_line}"), M::NoSignatureBlock),
            (format!("{body}\n"), M::UnterminatedSignatures),
            (
                note.trim_end_matches('\n').to_owned(),
                M::UnterminatedSignatures,
            ),
            (
                note.replace('\n', "\r\n"),
                M::ControlCharacter {
                    offset: ORIGIN.len(),
                },
            ),
            (
                format!("{body}\n\u{2013} {ORIGIN} {b64}\n"),
                M::NotASignatureLine { line: 1 },
            ),
            (
                format!("{body}\n- {ORIGIN} {b64}\n"),
                M::NotASignatureLine { line: 1 },
            ),
            (
                format!("{body}\n\u{2014}{ORIGIN} {b64}\n"),
                M::NotASignatureLine { line: 1 },
            ),
            (
                format!("{note}unexpected line\n"),
                M::NotASignatureLine { line: 2 },
            ),
            (
                format!("{body}\n\u{2014} {ORIGIN} {}\n", b64.trim_end_matches('=')),
                M::BadSignatureEncoding { line: 1 },
            ),
            (
                format!("{body}\n\u{2014} {ORIGIN} !{}\n", &b64[1..]),
                M::BadSignatureEncoding { line: 1 },
            ),
            (
                format!("{body}\n\u{2014} {ORIGIN}\n"),
                M::BadSignatureEncoding { line: 1 },
            ),
            (
                format!("{body}\n\u{2014} {ORIGIN} \n"),
                M::BadSignatureEncoding { line: 1 },
            ),
            (
                format!("{body}\n\u{2014} {ORIGIN} AAAA\n"),
                M::BadSignatureEncoding { line: 1 },
            ),
            (
                format!("{body}\n\u{2014}  {b64}\n"),
                M::BadKeyName { line: 1 },
            ),
            (
                format!("{body}\n\u{2014} a+b {b64}\n"),
                M::BadKeyName { line: 1 },
            ),
            (
                format!("{body}\n\u{2014} a\u{a0}b {b64}\n"),
                M::BadKeyName { line: 1 },
            ),
            (
                format!("{body}\n{}", sig_line.repeat(MAX_SIGNATURES + 1)),
                M::TooManySignatures,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                open(&text, &k.vkey()),
                Err(NoteError::Malformed(expected)),
                "{text:?}"
            );
        }
        // The limit is Go's; the spec asks for at least 16.
        let many = format!("{body}\n{}", sig_line.repeat(MAX_SIGNATURES));
        assert_eq!(open(&many, &k.vkey()).unwrap(), body);
    }

    #[test]
    fn the_body_is_split_at_the_last_blank_line() {
        let k = key(ORIGIN);
        let text = "first\n\nsecond\n\n";
        let note = sign(text, &k).unwrap();
        assert_eq!(open(&note, &k.vkey()).unwrap(), text);
        assert!(matches!(
            open_checkpoint(&note, &k.vkey()),
            Err(NoteError::Checkpoint(_))
        ));
    }

    #[test]
    fn unsignable_text_is_refused() {
        let k = key(ORIGIN);
        for text in ["", "no newline", "cr\r\n", "tab\there\n"] {
            assert_eq!(sign(text, &k), Err(NoteError::UnsignableText), "{text:?}");
        }
    }

    #[test]
    fn malformed_vkeys_are_refused() {
        use MalformedVkey as V;
        let k = key(ORIGIN);
        let vkey = k.vkey();
        // Split from the left: standard base64 may itself hold a '+' (regression: a random key
        // whose vkey did made this test fail now and then).
        let (hash, b64) = vkey[ORIGIN.len() + 1..].split_once('+').unwrap();
        let raw = B64.decode(b64).unwrap();
        let rehash = |name: &str| format!("{:08x}", key_hash(name, raw[1..].try_into().unwrap()));
        let mut other_alg = raw.clone();
        other_alg[0] = 0x02;
        let cases: Vec<(String, V)> = vec![
            (String::new(), V::Layout),
            (ORIGIN.to_owned(), V::Layout),
            (format!("{ORIGIN}+{hash}"), V::Layout),
            (format!("+{hash}+{b64}"), V::BadName),
            (format!("a b+{}+{b64}", rehash("a b")), V::BadName),
            (format!("{ORIGIN}+{}+{b64}", &hash[1..]), V::BadKeyHash),
            (format!("{ORIGIN}++{}+{b64}", &hash[1..]), V::BadKeyHash),
            (format!("{ORIGIN}+0x{}+{b64}", &hash[2..]), V::BadKeyHash),
            (format!("{ORIGIN}+{hash}+{b64}!"), V::BadEncoding),
            (format!("{ORIGIN}+{hash}+"), V::BadPublicKey),
            (
                format!("{ORIGIN}+{hash}+{}", B64.encode(&raw[..32])),
                V::BadPublicKey,
            ),
            (
                format!("{ORIGIN}+{hash}+{}", B64.encode(&other_alg)),
                V::UnknownAlgorithm(0x02),
            ),
            (format!("{ORIGIN}+00000000+{b64}"), V::KeyHashMismatch),
            (format!("other.example+{hash}+{b64}"), V::KeyHashMismatch),
        ];
        for (text, expected) in cases {
            assert_eq!(
                text.parse::<VerifierKey>(),
                Err(expected.clone()),
                "{text:?}"
            );
            let note = checkpoint().sign(&k);
            assert_eq!(open(&note, &text), Err(NoteError::MalformedVkey(expected)));
        }
        let parsed: VerifierKey = vkey.parse().unwrap();
        assert_eq!((parsed.name(), parsed.key_hash()), (ORIGIN, k.key_hash()));
    }

    /// Untrusted input never panics and never opens: every substring of a signed note, and the
    /// note with each byte changed (as Go's note tests mangle their inputs).
    #[test]
    fn no_mangling_of_a_note_opens_or_panics() {
        let k = key("a");
        let note = Checkpoint::new("o", 1, [1; 32]).unwrap().sign(&k);
        let vkey = k.vkey();
        let bytes = note.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                if (i, j) == (0, bytes.len()) {
                    continue;
                }
                if let Ok(text) = std::str::from_utf8(&bytes[i..j]) {
                    assert!(open(text, &vkey).is_err(), "{text:?}");
                }
            }
        }
        for i in 0..bytes.len() {
            for delta in [1u8, 0x80] {
                let mut b = bytes.to_vec();
                b[i] = b[i].wrapping_add(delta);
                if let Ok(text) = String::from_utf8(b) {
                    assert!(open(&text, &vkey).is_err(), "{text:?}");
                }
            }
        }
    }
}

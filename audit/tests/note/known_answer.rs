//! Known answers from golang.org/x/mod/sumdb/note, `note_test.go` (golang/mod at commit
//! 02c991387e35f9e4c0a9b7ce137717055f8d716d; TestNewVerifier, TestSign, TestOpen), and the
//! checkpoint example of c2sp.org/tlog-checkpoint (C2SP/C2SP `tlog-checkpoint.md` at commit
//! 2793893976c835db049c194d8f2c4f946dcb70ba).

use consent_ledger_audit::note::{self, Checkpoint, MalformedNote, MalformedVkey, VerifierKey};
use consent_ledger_audit::NoteError;

use crate::load_private_key;

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

#[test]
fn go_private_key_gives_go_vkey_and_go_signature() {
    // The skey's base64 holds a '+', so this also checks the key is split from the left.
    let key = load_private_key(PETER_SKEY);
    assert_eq!(key.vkey(), PETER_VKEY);
    assert_eq!(key.key_hash(), 0xc74f20a3);
    // TestSign: Ed25519 is deterministic, so our note must equal Go's byte for byte.
    assert_eq!(
        note::sign(TEXT, &key).unwrap(),
        format!("{TEXT}\n{PETER_SIG}")
    );
}

#[test]
fn go_vkeys_parse() {
    let peter: VerifierKey = PETER_VKEY.parse().unwrap();
    assert_eq!(
        (peter.name(), peter.key_hash()),
        ("PeterNeumann", 0xc74f20a3)
    );
    let enoch: VerifierKey = ENOCH_VKEY.parse().unwrap();
    assert_eq!((enoch.name(), enoch.key_hash()), ("EnochRoot", 0xaf0cfe78));
}

#[test]
fn go_manglings_of_the_vkey_are_refused() {
    // TestNewVerifier: every proper substring, and every byte incremented.
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if (i, j) != (0, b.len()) {
                let k = std::str::from_utf8(&b[i..j]).unwrap();
                assert!(k.parse::<VerifierKey>().is_err(), "{k:?}");
            }
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] += 1;
        let k = String::from_utf8(m).unwrap();
        assert!(k.parse::<VerifierKey>().is_err(), "{k:?}");
    }
    // Wrong length key and unknown algorithm, each with its key hash adjusted to match. Go
    // refuses the first for its length; we already refuse its base64, whose last character
    // before the padding has non-zero unused bits (Go's decoder tolerates those, ours does not).
    assert_eq!(
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            .parse::<VerifierKey>(),
        Err(MalformedVkey::BadEncoding)
    );
    assert_eq!(
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".parse::<VerifierKey>(),
        Err(MalformedVkey::UnknownAlgorithm(0x65))
    );
}

#[test]
fn go_signed_notes_open_with_either_key_and_ignore_the_other() {
    // TestOpen: one note signed by both keys.
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(note::open(&both, PETER_VKEY).unwrap(), TEXT);
    assert_eq!(note::open(&both, ENOCH_VKEY).unwrap(), TEXT);
    assert_eq!(
        note::open(&format!("{TEXT}\n{ENOCH_SIG}"), ENOCH_VKEY).unwrap(),
        TEXT
    );
    assert!(matches!(
        note::open(&format!("{TEXT}\n{ENOCH_SIG}"), PETER_VKEY),
        Err(NoteError::UnknownKey { .. })
    ));
    // Repeated signatures (Go drops the repeats; we verify each, and they are all good).
    let repeated = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}");
    assert_eq!(note::open(&repeated, PETER_VKEY).unwrap(), TEXT);
}

#[test]
fn go_invalid_signature_is_refused() {
    // TestOpen "Invalid signature": four base64 characters spliced into Peter's signature.
    let sig = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        note::open(&format!("{TEXT}\n{sig}"), PETER_VKEY),
        Err(NoteError::BadSignature {
            name: "PeterNeumann".into(),
            key_hash: 0xc74f20a3
        })
    );
    // A corrupt signature by a key we do not trust is ignored, as in Go.
    let enoch_bad = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
    let note = format!("{TEXT}\n{PETER_SIG}{enoch_bad}");
    assert_eq!(note::open(&note, PETER_VKEY).unwrap(), TEXT);
}

#[test]
fn go_malformed_notes_are_refused() {
    // TestOpen "Invalid encoded message syntax" (the "\xff" case cannot be a &str at all).
    let bad = [
        TEXT.to_owned(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!("{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        // Too many signatures: Go refuses 101.
        format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
    ];
    for note in bad {
        assert!(
            matches!(note::open(&note, PETER_VKEY), Err(NoteError::Malformed(_))),
            "{note:?}"
        );
    }
    assert!(matches!(
        note::open(&format!("{TEXT}\n{}", PETER_SIG.repeat(101)), PETER_VKEY),
        Err(NoteError::Malformed(MalformedNote::TooManySignatures))
    ));
}

#[test]
fn c2sp_checkpoint_example_parses() {
    let body =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let c = Checkpoint::parse_body(body).unwrap();
    assert_eq!(c.origin(), "example.com/behind-the-sofa");
    assert_eq!(c.size(), 20852163);
    assert_eq!(
        hex::encode(c.root()),
        "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
    );
    assert!(c.extensions().is_empty());
    assert_eq!(c.to_body(), body);
}

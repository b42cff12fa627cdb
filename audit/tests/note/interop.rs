//! Our notes and vkeys against Cloudflare's `signed_note` 0.2 (github.com/cloudflare/azul), a
//! separate implementation of c2sp.org/signed-note: each side verifies what the other signs.

use consent_ledger_audit::{note, Checkpoint, LogKey};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};

use crate::private_key_text;

const ORIGIN: &str = "example.com/consent-ledger";

fn checkpoint(size: u64) -> Checkpoint {
    Checkpoint::new(ORIGIN, size, [size as u8; 32]).unwrap()
}

/// Keys until one whose vkey has a '+' in its base64 (checks the left split); a few suffice.
fn keys() -> Vec<LogKey> {
    let mut keys = Vec::new();
    while keys.len() < 8
        || !keys
            .iter()
            .any(|k: &LogKey| k.vkey().matches('+').count() > 2)
    {
        assert!(keys.len() < 200, "no vkey with a '+' in its base64");
        keys.push(LogKey::generate(ORIGIN).unwrap());
    }
    keys
}

#[test]
fn they_verify_our_notes_with_our_vkey() {
    for (i, key) in keys().iter().enumerate() {
        let verifier = StandardVerifier::new(&key.vkey()).unwrap();
        let note = Note::from_bytes(checkpoint(i as u64).sign(key).as_bytes()).unwrap();
        let (verified, unverified) = note
            .verify(&VerifierList::new(vec![Box::new(verifier)]))
            .unwrap();
        assert_eq!(verified.len(), 1);
        assert_eq!(
            (verified[0].name(), verified[0].id()),
            (ORIGIN, key.key_hash())
        );
        assert!(unverified.is_empty());
        assert_eq!(note.text(), checkpoint(i as u64).to_body().as_bytes());
    }
}

#[test]
fn we_verify_their_notes_made_with_our_private_key() {
    for (i, key) in keys().iter().enumerate() {
        let signer = StandardSigner::new(&private_key_text(key)).unwrap();
        let body = checkpoint(i as u64).to_body();
        let mut theirs = Note::new(body.as_bytes(), &[]).unwrap();
        theirs.add_sigs(&[&signer]).unwrap();
        let text = String::from_utf8(theirs.to_bytes()).unwrap();
        // Ed25519 is deterministic: both sides write the same bytes.
        assert_eq!(text, checkpoint(i as u64).sign(key));
        assert_eq!(
            note::open_checkpoint(&text, &key.vkey()).unwrap(),
            checkpoint(i as u64)
        );
    }
}

#[test]
fn both_refuse_a_note_by_another_key() {
    let [a, b] = [0, 1].map(|_| LogKey::generate(ORIGIN).unwrap());
    let text = checkpoint(3).sign(&a);
    assert!(note::open(&text, &b.vkey()).is_err());
    let theirs = Note::from_bytes(text.as_bytes()).unwrap();
    let list = VerifierList::new(vec![Box::new(StandardVerifier::new(&b.vkey()).unwrap())]);
    assert!(theirs.verify(&list).is_err());
}

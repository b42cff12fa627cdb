//! `consent_ledger_audit::note` checked against the outside world: the known-answer vectors of
//! Go's reference implementation and the C2SP specs (known_answer.rs), and an independent Rust
//! implementation, Cloudflare's `signed_note` crate (interop.rs).

mod interop;
mod known_answer;

use std::path::Path;

use consent_ledger_audit::LogKey;

/// Loads a C2SP private key text (`PRIVATE+KEY+…`) through the key file, the only way in.
pub fn load_private_key(skey: &str) -> LogKey {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.key");
    std::fs::write(&path, skey).unwrap();
    LogKey::load(&path).unwrap()
}

/// The private key text of `key`, as its key file holds it.
pub fn private_key_text(key: &LogKey) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.key");
    key.save(&path).unwrap();
    read(&path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim_end().to_owned()
}

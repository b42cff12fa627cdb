//! The log's Ed25519 signing key, kept as a C2SP signed-note private key
//! (`PRIVATE+KEY+<name>+<key hash>+<base64(0x01 ‖ seed)>`), with its verifier key in the
//! C2SP vkey format (`<name>+<key hash>+<base64(0x01 ‖ public key)>`).

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature-algorithm byte for Ed25519 in C2SP signed-note keys.
const ALG_ED25519: u8 = 0x01;
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not a C2SP Ed25519 private key: {detail}")]
    Malformed { path: String, detail: String },
    #[error("key name `{0}` must be non-empty and contain no '+', spaces or control characters")]
    BadName(String),
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A named Ed25519 signing key. Its `Debug` never shows the secret.
pub struct LogKey {
    name: String,
    signing: SigningKey,
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogKey")
            .field("name", &self.name)
            .field("vkey", &self.vkey())
            .finish_non_exhaustive()
    }
}

/// The characters a signed note may not contain, newline aside: "ASCII control characters
/// (those below U+0020)", c2sp.org/signed-note "Format". DEL (U+007F) is not among them.
pub(crate) fn is_control(c: char) -> bool {
    c < ' '
}

/// c2sp.org/signed-note key names: non-empty, no Unicode space (Rust's `is_whitespace` and Go's
/// `unicode.IsSpace` agree), no '+'. Control characters are refused too, since a note cannot
/// hold them.
pub(crate) fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c == '+' || c.is_whitespace() || is_control(c))
}

/// Names are held to the C2SP signed-note rule, so that every note this key signs can be opened.
fn check_name(name: &str) -> Result<(), KeyError> {
    if !is_valid_key_name(name) {
        return Err(KeyError::BadName(name.to_owned()));
    }
    Ok(())
}

impl LogKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The C2SP key hash: the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
    pub fn key_hash(&self) -> u32 {
        key_hash(&self.name, self.verifying_key().as_bytes())
    }

    /// The verifier key in C2SP vkey format.
    pub fn vkey(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(self.verifying_key().as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_hash(),
            B64.encode(bytes)
        )
    }

    fn private_text(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(self.signing.as_bytes());
        format!(
            "{PRIVATE_PREFIX}{}+{:08x}+{}\n",
            self.name,
            self.key_hash(),
            B64.encode(bytes)
        )
    }

    /// A detached Ed25519 signature (RFC 8032) of `message`, for documents that are not notes
    /// (consent receipts); check it with [`crate::note::VerifierKey::verify_detached`].
    pub fn sign_detached(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing_key().sign(message).to_bytes()
    }

    /// Reads a key written by [`LogKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?;
        let malformed = |detail: &str| KeyError::Malformed {
            path: shown.clone(),
            detail: detail.to_owned(),
        };
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| malformed("missing PRIVATE+KEY+ prefix"))?;
        // Split from the left: the name has no '+', but standard base64 may.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected name+hash+key"));
        };
        if !is_valid_key_name(name) {
            return Err(malformed(
                "key name has a '+', a space or a control character",
            ));
        }
        let bytes = B64
            .decode(b64)
            .map_err(|_| malformed("key is not base64"))?;
        let [ALG_ED25519, seed @ ..] = bytes.as_slice() else {
            return Err(malformed("not an Ed25519 key"));
        };
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| malformed("Ed25519 seed must be 32 bytes"))?;
        let key = Self {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&seed),
        };
        if format!("{:08x}", key.key_hash()) != hash {
            return Err(malformed("key hash does not match name and key"));
        }
        Ok(key)
    }

    /// Writes the key to a new file readable by its owner only (mode 0600).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.private_text().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Loads the key at `path`, or creates and saves one named `name` if there is none.
    pub fn load_or_create(path: &Path, name: &str) -> Result<Self, KeyError> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate(name)?;
        key.save(path)?;
        Ok(key)
    }
}

/// The C2SP signed-note key hash of an Ed25519 public key.
pub fn key_hash(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_loads_back_and_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        let key = LogKey::load_or_create(&path, "example.com/log").unwrap();
        let again = LogKey::load_or_create(&path, "ignored").unwrap();
        assert_eq!(key.vkey(), again.vkey());
        assert!(key.vkey().starts_with("example.com/log+"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn a_tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        LogKey::generate("example.com/log")
            .unwrap()
            .save(&path)
            .unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("example.com/log", "evil.com/log");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            LogKey::load(&path),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn names_with_separators_are_refused() {
        assert!(matches!(LogKey::generate("a+b"), Err(KeyError::BadName(_))));
    }
}

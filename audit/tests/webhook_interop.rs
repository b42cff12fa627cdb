//! Standard Webhooks `v1a` against implementations that are not this one: Python's
//! `cryptography` and Node's built-in `crypto` verify what `audit::webhook` signs, with the
//! `whpk_` key as a partner would hold it; Python signs with a `whsk_` seed and this crate
//! verifies. A machine without one of them skips that part with a notice; CI (`CI` set) fails
//! instead.

use std::process::Command;

use consent_ledger_audit::webhook::{signature_header, verify, WebhookKey};

const ID: &str = "msg_01J9ZK3R8QH2V6TXW0YB4CN5DE";
const TS: i64 = 1_764_842_400;
const BODY: &str = r#"{"type":"consent.revoked","timestamp":"2026-12-04T10:00:00Z","data":{"consent_id":"0193a1b2-0000-7000-8000-000000000001","reason":"ünïcødé ✓"}}"#;

/// Runs `program args…`; `None` (with a notice, or a failure in CI) when the program or its
/// library is missing.
fn run(program: &str, args: &[&str], what: &str) -> Option<std::process::Output> {
    let out = match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) => {
            missing(&format!("{program}: {e}"), what);
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") {
        missing(&stderr, what);
        return None;
    }
    Some(out)
}

fn missing(why: &str, what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what}: needed in CI ({why}); .ci/run installs it"
    );
    eprintln!("SKIPPED {what}: {why}");
}

const PYTHON_VERIFY: &str = r#"
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
public, header, msg_id, ts, body = sys.argv[1:6]
key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
content = f"{msg_id}.{ts}.{body}".encode()
ok = 0
for part in header.split(" "):
    scheme, _, sig = part.partition(",")
    if scheme != "v1a":
        continue
    try:
        key.verify(base64.b64decode(sig), content)
        ok += 1
    except Exception:
        pass
print(ok)
"#;

const PYTHON_SIGN: &str = r#"
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
secret, msg_id, ts, body = sys.argv[1:5]
key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(secret.removeprefix("whsk_")))
print("v1a," + base64.b64encode(key.sign(f"{msg_id}.{ts}.{body}".encode())).decode())
"#;

const NODE_VERIFY: &str = r#"
const crypto = require("crypto");
const [publicKey, header, id, ts, body] = process.argv.slice(1);
const raw = Buffer.from(publicKey.replace(/^whpk_/, ""), "base64");
const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
const content = Buffer.from(`${id}.${ts}.${body}`, "utf8");
let ok = 0;
for (const part of header.split(" ")) {
  const [scheme, sig] = part.split(",");
  if (scheme === "v1a" && crypto.verify(null, content, key, Buffer.from(sig, "base64"))) ok++;
}
console.log(ok);
"#;

fn count(out: &std::process::Output, who: &str) -> u32 {
    assert!(
        out.status.success(),
        "{who}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{who} printed {:?}", out.stdout))
}

#[test]
fn python_and_node_verify_what_we_sign_with_both_keys_of_a_rotation() {
    let (old, new) = (
        WebhookKey::generate().expect("key"),
        WebhookKey::generate().expect("key"),
    );
    let header = signature_header(&[&new, &old], ID, TS, BODY.as_bytes());
    let ts = TS.to_string();
    for key in [&old, &new] {
        let public = key.public();
        let args = [public.as_str(), header.as_str(), ID, ts.as_str(), BODY];
        let mut python = vec!["-c", PYTHON_VERIFY];
        python.extend(args);
        if let Some(out) = run("python3", &python, "Python cryptography") {
            assert_eq!(
                count(&out, "python"),
                1,
                "exactly this key's signature verifies"
            );
        }
        let mut node = vec!["-e", NODE_VERIFY];
        node.extend(args);
        if let Some(out) = run("node", &node, "Node crypto") {
            assert_eq!(
                count(&out, "node"),
                1,
                "exactly this key's signature verifies"
            );
        }
    }
    // A changed body: nothing verifies, for them as for us.
    let public = old.public();
    let changed = BODY.replace("revoked", "granted");
    let args = ["-c", PYTHON_VERIFY, &public, &header, ID, &ts, &changed];
    if let Some(out) = run("python3", &args, "Python cryptography") {
        assert_eq!(count(&out, "python"), 0);
    }
}

#[test]
fn we_verify_what_python_signs_with_a_whsk_seed() {
    let key = WebhookKey::generate().expect("key");
    let ts = TS.to_string();
    let secret = key.secret();
    let args = ["-c", PYTHON_SIGN, &secret, ID, &ts, BODY];
    let Some(out) = run("python3", &args, "Python cryptography") else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        verify(&key.public(), &header, ID, TS, BODY.as_bytes()),
        Ok(())
    );
    // Ed25519 is deterministic: the same seed and content give our signature byte for byte.
    assert_eq!(header, key.sign(ID, TS, BODY.as_bytes()));
}

# Verifies a consent-ledger webhook (Standard Webhooks v1a, Ed25519) with the endpoint's
# whpk_ public key. Needs `pip install cryptography`. Deduplicate on the webhook-id header.
import base64, contextlib, sys, time
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def verify(public_key: str, headers: dict, body: bytes, tolerance: int = 300) -> bool:
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > tolerance:
        return False  # too old or too new: a replay
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    content = f"{msg_id}.{ts}.".encode() + body
    for scheme, _, signature in (p.partition(",") for p in headers["webhook-signature"].split()):
        with contextlib.suppress(InvalidSignature, ValueError):
            if scheme == "v1a" and key.verify(base64.b64decode(signature), content) is None:
                return True
    return False

if __name__ == "__main__":  # verify.py PUBLIC_KEY ID TIMESTAMP SIGNATURE < BODY
    public_key, msg_id, ts, signature = sys.argv[1:5]
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": signature}
    sys.exit(0 if verify(public_key, headers, sys.stdin.buffer.read()) else 1)

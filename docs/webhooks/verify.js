// Verifies a consent-ledger webhook (Standard Webhooks v1a, Ed25519) with the endpoint's
// whpk_ public key, on Node's built-in crypto. Deduplicate on the webhook-id header.
const crypto = require("crypto");

function verify(publicKey, headers, body, tolerance = 300) {
  const id = headers["webhook-id"], ts = headers["webhook-timestamp"];
  if (Math.abs(Date.now() / 1000 - Number(ts)) > tolerance) return false; // a replay
  const x = Buffer.from(publicKey.replace(/^whpk_/, ""), "base64").toString("base64url");
  const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
  const content = Buffer.concat([Buffer.from(`${id}.${ts}.`), body]);
  return headers["webhook-signature"].split(" ").some((part) => {
    const [scheme, signature] = part.split(",");
    return scheme === "v1a" && crypto.verify(null, content, key, Buffer.from(signature, "base64"));
  });
}

module.exports = { verify };

if (require.main === module) { // node verify.js PUBLIC_KEY ID TIMESTAMP SIGNATURE < BODY
  const [publicKey, id, ts, signature] = process.argv.slice(2);
  const headers = { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": signature };
  process.exit(verify(publicKey, headers, require("fs").readFileSync(0)) ? 0 : 1);
}

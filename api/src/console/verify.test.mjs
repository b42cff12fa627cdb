// The in-page verifier (verify.js) against real bundles and the Rust verifier's verdicts.
//
//   node --test api/src/console/verify.test.mjs
//
// testdata/ holds bundles exported by `consent-ledger serve` (GET /v1/audit/export, as a
// privacy officer, of a log with allowed and denied reads, a denial by an unknown carrier and
// tracking number, a revocation and an erasure) and the log's vkey (GET /v1/log/vkey):
// - bundle.ndjson: every access decision (5 lines, two disclosing a sealed tracking number),
//   exported with since=8 (its header carries a consistency proof from a tree of 8 events);
// - erased.ndjson: one erased shipment's registration (its tracking number in `erased`) and a
//   decision;
// - trusted.note: the checkpoint of 8 events an earlier export was signed with.
// Each case below changes a copy at run time, and `expected` is what `consent-ledger verify`
// printed for that copy (its stdout on success, its stderr on failure). verify.js must give
// the same text, line and message. With CONSENT_LEDGER_BIN=<path of the consent-ledger binary>
// the last test runs the binary on every case too and checks that it still prints `expected`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { MAX_LINE_BYTES, verifyBundle } from "./verify.js";

const fixture = (name) => readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");
const BUNDLE = fixture("bundle.ndjson");
const ERASED = fixture("erased.ndjson");
const VKEY = fixture("vkey.txt");
const TRUSTED = fixture("trusted.note");

/** The bundle's lines (without the final empty one), to change one and join them again. */
const linesOf = (text) => text.replace(/\n$/, "").split("\n");
const join_ = (lines) => `${lines.join("\n")}\n`;
/** The bundle with line `n` (1-based) replaced by `change(line)`. */
function withLine(text, n, change) {
  const lines = linesOf(text);
  lines[n - 1] = change(lines[n - 1]);
  return join_(lines);
}
/** The bundle with the JSON of line `n` replaced by `change(object)`. */
const withJson = (text, n, change) =>
  withLine(text, n, (line) => JSON.stringify(change(JSON.parse(line))));
/** `text` with the character at `index` replaced by another base64 character. */
const flipAt = (text, index) =>
  text.slice(0, index) + (text[index] === "A" ? "B" : "A") + text.slice(index + 1);

// Two bundles signed by keys of small order, which no honest signer has: WebCrypto alone (RFC
// 8032's check) accepts their signatures, ed25519-dalek's verify_strict, and so verify.js,
// refuses them.
const sha256 = (...parts) => createHash("sha256").update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest();
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const le32 = (n) => Buffer.from(Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn)));
const fromLe = (bytes) => [...bytes].reverse().reduce((n, b) => (n << 8n) | BigInt(b), 0n);
const IDENTITY = Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]); // the neutral point
const BASEPOINT = Buffer.from(`58${"66".repeat(31)}`, "hex");

/** A one-event bundle of log `example.org/log` whose checkpoint is signed by `signature`. */
function smallOrderBundle(publicKey, signature) {
  const name = "example.org/log";
  const leaf = '{"position":0}';
  const root = sha256([0], leaf).toString("base64");
  const body = `${name}\n1\n${root}\n`;
  const keyHash = sha256(name, [0x0a, 0x01], publicKey).subarray(0, 4);
  const vkey = `${name}+${keyHash.toString("hex")}+${Buffer.concat([Buffer.from([1]), publicKey]).toString("base64")}`;
  const sig = signature(Buffer.from(body));
  const note = `${body}\n\u2014 ${name} ${Buffer.concat([keyHash, sig]).toString("base64")}\n`;
  const header = { format: "consent-ledger-bundle/2", origin: name, vkey, checkpoint: note };
  return { vkey, text: join_([JSON.stringify(header), JSON.stringify({ position: 0, leaf, inclusion_proof: [] })]) };
}

/** The neutral point as the key: (R = B, s = 1) satisfies [s]B = R + [k]A for any message. */
const neutralKey = smallOrderBundle(IDENTITY, () => Buffer.concat([BASEPOINT, le32(1n)]));

/** A real key (a fixed seed) signing with R = the neutral point, s = k·a. */
const neutralR = (() => {
  const seed = Buffer.alloc(32, 0x2a);
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const publicKey = Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x, "base64url");
  const h = createHash("sha512").update(seed).digest();
  const scalar = Buffer.from(h.subarray(0, 32));
  scalar[0] &= 248;
  scalar[31] = (scalar[31] & 127) | 64;
  const a = fromLe(scalar);
  const forged = smallOrderBundle(publicKey, (message) => {
    const k = fromLe(createHash("sha512").update(Buffer.concat([IDENTITY, publicKey, message])).digest()) % L;
    return Buffer.concat([IDENTITY, le32((k * a) % L)]);
  });
  const honest = smallOrderBundle(publicKey, (message) => sign(null, message, privateKey));
  // The honest signature with s + L for s: the same point, but not a canonical scalar.
  const unreduced = smallOrderBundle(publicKey, (message) => {
    const signature = sign(null, message, privateKey);
    return Buffer.concat([signature.subarray(0, 32), le32(fromLe(signature.subarray(32)) + L)]);
  });
  return { forged, honest, unreduced };
})();

const CASES = [
  {
    name: "the exported bundle verifies",
    input: () => BUNDLE,
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":0,\"events\":5,\"openings_checked\":2,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "with --since the older checkpoint, the bundle's extends it",
    input: () => BUNDLE,
    since: TRUSTED,
    expected:
      "{\"consistent_with_size\":8,\"erased_fields\":0,\"events\":5,\"openings_checked\":2,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "a bundle with an erased field verifies",
    input: () => ERASED,
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":1,\"events\":2,\"openings_checked\":0,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "read as bytes, with CRLF line ends and blank lines, it verifies",
    input: () => new TextEncoder().encode(`\r\n \t\r\n${linesOf(BUNDLE).join("\r\n\u00a0\r\n")}\r\n`),
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":0,\"events\":5,\"openings_checked\":2,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "a leaf byte flipped on line 3",
    input: () => withLine(BUNDLE, 3, (line) => line.replace("insurance_claim", "insurance_clain")),
    expected:
      "error: bundle refused: line 3: the event is not in the checkpoint's tree: inclusion proof does not lead to the given root hash: line 3: the event is not in the checkpoint's tree: inclusion proof does not lead to the given root hash",
  },
  {
    name: "lines 3 and 4 swapped",
    input: () => {
      const lines = linesOf(BUNDLE);
      [lines[2], lines[3]] = [lines[3], lines[2]];
      return join_(lines);
    },
    expected:
      "error: bundle refused: line 4: position 8 is not after the previous line's: line 4: position 8 is not after the previous line's",
  },
  {
    name: "the header moved below an event line",
    input: () => {
      const lines = linesOf(BUNDLE);
      [lines[0], lines[1]] = [lines[1], lines[0]];
      return join_(lines);
    },
    expected:
      "error: bundle refused: line 1: not a bundle line: unknown field `position`, expected one of `format`, `origin`, `vkey`, `checkpoint`, `consistency` at line 1 column 11: line 1: not a bundle line: unknown field `position`, expected one of `format`, `origin`, `vkey`, `checkpoint`, `consistency` at line 1 column 11",
  },
  {
    name: "a proof hash corrupted on line 2",
    input: () => withJson(BUNDLE, 2, (o) => ({ ...o, inclusion_proof: [flipAt(o.inclusion_proof[0], 5), ...o.inclusion_proof.slice(1)] })),
    expected:
      "error: bundle refused: line 2: the event is not in the checkpoint's tree: inclusion proof does not lead to the given root hash: line 2: the event is not in the checkpoint's tree: inclusion proof does not lead to the given root hash",
  },
  {
    name: "a proof hash on line 4 that is not base64 of 32 bytes",
    input: () => withJson(BUNDLE, 4, (o) => ({ ...o, inclusion_proof: [o.inclusion_proof[0].slice(0, -2) + "==", ...o.inclusion_proof.slice(1)] })),
    expected:
      "error: bundle refused: line 4: a proof hash is not base64 of 32 bytes: line 4: a proof hash is not base64 of 32 bytes",
  },
  {
    name: "a proof hash missing on line 5",
    input: () => withJson(BUNDLE, 5, (o) => ({ ...o, inclusion_proof: o.inclusion_proof.slice(1) })),
    expected:
      "error: bundle refused: line 5: the event is not in the checkpoint's tree: proof has 3 hashes, but these tree sizes need exactly 4: line 5: the event is not in the checkpoint's tree: proof has 3 hashes, but these tree sizes need exactly 4",
  },
  {
    name: "the checkpoint's signature changed",
    input: () =>
      withJson(BUNDLE, 1, (h) => {
        const at = h.checkpoint.lastIndexOf(" ") + 20;
        return { ...h, checkpoint: flipAt(h.checkpoint, at) };
      }),
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: invalid signature by key consent-ledger.local/log+d341ba06: line 1: the checkpoint does not verify with the trusted key: invalid signature by key consent-ledger.local/log+d341ba06",
  },
  {
    name: "the checkpoint's tree size changed",
    input: () => withJson(BUNDLE, 1, (h) => ({ ...h, checkpoint: h.checkpoint.replace("\n14\n", "\n15\n") })),
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: invalid signature by key consent-ledger.local/log+d341ba06: line 1: the checkpoint does not verify with the trusted key: invalid signature by key consent-ledger.local/log+d341ba06",
  },
  {
    name: "another key of the same name",
    input: () => BUNDLE,
    vkey: "consent-ledger.local/log+9d07b35d+ATQ8kVbwbTQfZlEh0bxaWoBPyhCzG9uCXct1s2Y56dYc",
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: note has no signature by key consent-ledger.local/log+9d07b35d: line 1: the checkpoint does not verify with the trusted key: note has no signature by key consent-ledger.local/log+9d07b35d",
  },
  {
    name: "the key of another log",
    input: () => BUNDLE,
    vkey: "other.example/log+88cc9bec+AZuduPuTv9BMqn+UETimrSxQ5m5teP4P75Ct5VW3dTDj",
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: note has no signature by key other.example/log+88cc9bec: line 1: the checkpoint does not verify with the trusted key: note has no signature by key other.example/log+88cc9bec",
  },
  {
    name: "a vkey that is not one",
    input: () => BUNDLE,
    vkey: VKEY.replace(/\+[0-9a-f]{8}\+/, "+d341ba0+"),
    expected:
      "error: --vkey: key hash must be 8 lowercase or uppercase hex digits",
  },
  {
    name: "the header's origin is not the checkpoint's",
    input: () => withJson(BUNDLE, 1, (h) => ({ ...h, origin: "consent-ledger.local/other" })),
    expected:
      "error: bundle refused: line 1: the header's origin `consent-ledger.local/other` is not the checkpoint's `consent-ledger.local/log`: line 1: the header's origin `consent-ledger.local/other` is not the checkpoint's `consent-ledger.local/log`",
  },
  {
    name: "a header member the format does not have",
    input: () => withLine(BUNDLE, 1, (line) => line.replace('{"format"', '{"signed_by":"me","format"')),
    expected:
      "error: bundle refused: line 1: not a bundle line: unknown field `signed_by`, expected one of `format`, `origin`, `vkey`, `checkpoint`, `consistency` at line 1 column 12: line 1: not a bundle line: unknown field `signed_by`, expected one of `format`, `origin`, `vkey`, `checkpoint`, `consistency` at line 1 column 12",
  },
  {
    name: "an unknown format",
    input: () => withJson(BUNDLE, 1, (h) => ({ ...h, format: "consent-ledger-bundle/3" })),
    expected:
      "error: bundle refused: line 1: format `consent-ledger-bundle/3` is neither consent-ledger-bundle/2 nor consent-ledger-bundle/1: line 1: format `consent-ledger-bundle/3` is neither consent-ledger-bundle/2 nor consent-ledger-bundle/1",
  },
  {
    name: "an opening's salt cut short on line 3",
    input: () =>
      withJson(BUNDLE, 3, (o) => {
        const [[pointer, opening]] = Object.entries(o.openings);
        return { ...o, openings: { [pointer]: { ...opening, salt: opening.salt.slice(4) } } };
      }),
    expected:
      "error: bundle refused: line 3: /payload/TrackingAccessDenied/tracking_number: the salt is not 32 bytes of base64: line 3: /payload/TrackingAccessDenied/tracking_number: the salt is not 32 bytes of base64",
  },
  {
    name: "an opening's salt changed on line 6",
    input: () =>
      withJson(BUNDLE, 6, (o) => {
        const [[pointer, opening]] = Object.entries(o.openings);
        return { ...o, openings: { [pointer]: { ...opening, salt: flipAt(opening.salt, 3) } } };
      }),
    expected:
      "error: bundle refused: line 6: /payload/TrackingAccessDenied/tracking_number: the value and salt do not open the leaf's commitment: line 6: /payload/TrackingAccessDenied/tracking_number: the value and salt do not open the leaf's commitment",
  },
  {
    name: "an opening's value changed on line 3",
    input: () =>
      withJson(BUNDLE, 3, (o) => {
        const [[pointer, opening]] = Object.entries(o.openings);
        return { ...o, openings: { [pointer]: { ...opening, value: "JJD000000000" } } };
      }),
    expected:
      "error: bundle refused: line 3: /payload/TrackingAccessDenied/tracking_number: the value and salt do not open the leaf's commitment: line 3: /payload/TrackingAccessDenied/tracking_number: the value and salt do not open the leaf's commitment",
  },
  {
    name: "a pointer both opened and erased",
    input: () => withJson(BUNDLE, 3, (o) => ({ ...o, erased: Object.keys(o.openings) })),
    expected:
      "error: bundle refused: line 3: not a bundle line: /payload/TrackingAccessDenied/tracking_number: both opened and erased: line 3: not a bundle line: /payload/TrackingAccessDenied/tracking_number: both opened and erased",
  },
  {
    name: "an erased pointer where the leaf has no commitment",
    input: () => withJson(ERASED, 2, (o) => ({ ...o, erased: ["/payload/ShipmentRegistered/carrier"] })),
    expected:
      "error: bundle refused: line 2: /payload/ShipmentRegistered/carrier: the leaf has no commitment there: line 2: /payload/ShipmentRegistered/carrier: the leaf has no commitment there",
  },
  {
    name: "the leaf's position is not the line's",
    input: () => withJson(BUNDLE, 2, (o) => ({ ...o, position: 99 })),
    expected:
      "error: bundle refused: line 2: the leaf says position Some(7), the line says 99: line 2: the leaf says position Some(7), the line says 99",
  },
  {
    name: "a position that is not a u64",
    input: () => withLine(BUNDLE, 4, (line) => line.replace(/^\{"position":\d+/, '{"position":-8')),
    expected:
      "error: bundle refused: line 4: not a bundle line: invalid value: integer `-8`, expected u64 at line 1 column 14: line 4: not a bundle line: invalid value: integer `-8`, expected u64 at line 1 column 14",
  },
  {
    name: "a line that is not JSON",
    input: () => withLine(BUNDLE, 5, (line) => line.slice(0, 100)),
    expected:
      "error: bundle refused: line 5: not a bundle line: EOF while parsing a string at line 1 column 100: line 5: not a bundle line: EOF while parsing a string at line 1 column 100",
  },
  {
    name: "an empty bundle",
    input: () => "",
    expected:
      "error: bundle refused: line 1: the bundle is empty: line 1: the bundle is empty",
  },
  {
    name: "a bundle of blank lines",
    input: () => "\n \n\t\r\n",
    expected:
      "error: bundle refused: line 1: the bundle is empty: line 1: the bundle is empty",
  },
  {
    name: "as format /1, without openings and erased, it verifies",
    input: () =>
      join_(
        linesOf(BUNDLE).map((line, i) => {
          const o = JSON.parse(line);
          if (i === 0) return JSON.stringify({ ...o, format: "consent-ledger-bundle/1" });
          delete o.openings;
          delete o.erased;
          return JSON.stringify(o);
        }),
      ),
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":0,\"events\":5,\"openings_checked\":0,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "format /1 with openings",
    input: () => withJson(BUNDLE, 1, (h) => ({ ...h, format: "consent-ledger-bundle/1" })),
    expected:
      "error: bundle refused: line 3: not a bundle line: `openings` and `erased` are members of consent-ledger-bundle/2 lines, not of consent-ledger-bundle/1 ones: line 3: not a bundle line: `openings` and `erased` are members of consent-ledger-bundle/2 lines, not of consent-ledger-bundle/1 ones",
  },
  {
    name: "a line longer than MAX_LINE_BYTES",
    input: () => withLine(BUNDLE, 4, (line) => line + " ".repeat(MAX_LINE_BYTES + 1 - line.length)),
    expected:
      "error: bundle refused: line 4: the line is longer than 1048576 bytes; no bundle line is: line 4: the line is longer than 1048576 bytes; no bundle line is",
  },
  {
    name: "a line of exactly MAX_LINE_BYTES",
    input: () => withLine(BUNDLE, 4, (line) => line + " ".repeat(MAX_LINE_BYTES - line.length)),
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":0,\"events\":5,\"openings_checked\":2,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "read as bytes, a last line of MAX_LINE_BYTES and a lone CR (the file reader strips it)",
    input: () => {
      const lines = linesOf(BUNDLE);
      const last = lines.pop();
      return new TextEncoder().encode(`${join_(lines)}${last}${" ".repeat(MAX_LINE_BYTES - last.length)}\r`);
    },
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":0,\"events\":5,\"openings_checked\":2,\"origin\":\"consent-ledger.local/log\",\"tree_size\":14,\"verified\":true}",
  },
  {
    name: "bytes that are not UTF-8 on line 4",
    input: () => {
      const bytes = new TextEncoder().encode(withLine(BUNDLE, 4, (line) => line.replace("insurance_claim", "insurance\u00e9claim")));
      const at = bytes.indexOf(0xc3);
      bytes[at + 1] = 0x28;
      return bytes;
    },
    expected:
      "error: bundle refused: line 4: not a bundle line: not UTF-8: invalid utf-8 sequence of 1 bytes from index 445: line 4: not a bundle line: not UTF-8: invalid utf-8 sequence of 1 bytes from index 445",
  },
  {
    name: "--since a checkpoint the bundle carries no proof from",
    input: () => withJson(BUNDLE, 1, (h) => ({ format: h.format, origin: h.origin, vkey: h.vkey, checkpoint: h.checkpoint })),
    since: TRUSTED,
    expected:
      "error: bundle refused: line 1: the header carries no consistency proof from size 8 (it has none); export again with since=8: line 1: the header carries no consistency proof from size 8 (it has none); export again with since=8",
  },
  {
    name: "--since with a consistency proof corrupted",
    input: () => withJson(BUNDLE, 1, (h) => ({ ...h, consistency: { ...h.consistency, proof: [flipAt(h.consistency.proof[0], 7)] } })),
    since: TRUSTED,
    expected:
      "error: bundle refused: line 1: the checkpoint of 14 events is not consistent with the trusted checkpoint of 8 events: consistency proof does not lead to the new root hash: line 1: the checkpoint of 14 events is not consistent with the trusted checkpoint of 8 events: consistency proof does not lead to the new root hash",
  },
  {
    name: "--since a checkpoint whose signature was changed",
    input: () => BUNDLE,
    since: TRUSTED.replace(/ \S+\n$/, ` ${flipAt(TRUSTED.split(" ").pop(), 20)}`),
    expected:
      "error: --since: the old checkpoint does not verify with --vkey: invalid signature by key consent-ledger.local/log+d341ba06",
  },
  {
    name: "a signature by a key of small order (WebCrypto alone accepts it)",
    input: () => neutralKey.text,
    vkey: neutralKey.vkey,
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: invalid signature by key example.org/log+b9ebf168: line 1: the checkpoint does not verify with the trusted key: invalid signature by key example.org/log+b9ebf168",
  },
  {
    name: "a signature whose R is of small order (WebCrypto alone accepts it)",
    input: () => neutralR.forged.text,
    vkey: neutralR.forged.vkey,
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: invalid signature by key example.org/log+fac8cce0: line 1: the checkpoint does not verify with the trusted key: invalid signature by key example.org/log+fac8cce0",
  },
  {
    name: "a signature whose s is not reduced",
    input: () => neutralR.unreduced.text,
    vkey: neutralR.unreduced.vkey,
    expected:
      "error: bundle refused: line 1: the checkpoint does not verify with the trusted key: invalid signature by key example.org/log+fac8cce0: line 1: the checkpoint does not verify with the trusted key: invalid signature by key example.org/log+fac8cce0",
  },
  {
    name: "the same key's honest signature verifies",
    input: () => neutralR.honest.text,
    vkey: neutralR.honest.vkey,
    expected:
      "{\"consistent_with_size\":null,\"erased_fields\":0,\"events\":1,\"openings_checked\":0,\"origin\":\"example.org/log\",\"tree_size\":1,\"verified\":true}",
  },
];

for (const c of CASES) {
  test(c.name, async () => {
    const options = c.since === undefined ? {} : { since: c.since };
    const input = c.input();
    const result = await verifyBundle(input, c.vkey ?? VKEY, options);
    assert.equal(result.text, c.expected);
    const refused = /^error: bundle refused: line (\d+): /.exec(c.expected);
    if (refused !== null) {
      assert.equal(result.ok, false);
      assert.equal(result.line, Number(refused[1]));
      assert.equal(result.error, `line ${result.line}: ${result.message}`);
      // The command line prints the error, then its source: the same BundleError again.
      assert.equal(c.expected, `error: bundle refused: ${result.error}: ${result.error}`);
    } else if (c.expected.startsWith("error: ")) {
      assert.equal(result.ok, false);
      assert.equal(result.line, null);
      assert.equal(c.expected, `error: ${result.error}`);
    } else {
      const printed = JSON.parse(c.expected);
      assert.equal(result.ok, true);
      assert.equal(result.summary, c.expected);
      assert.deepEqual(
        [result.events, result.openings, result.erased, result.origin, result.size, result.consistentWith],
        [printed.events, printed.openings_checked, printed.erased_fields, printed.origin, printed.tree_size, printed.consistent_with_size],
      );
      const text = typeof input === "string" ? input : new TextDecoder().decode(input);
      const header = JSON.parse(linesOf(text).find((line) => line.trim() !== ""));
      assert.equal(result.root, header.checkpoint.split("\n")[2]);
    }
  });
}

const BIN = process.env.CONSENT_LEDGER_BIN;
test(
  "the expected verdicts are what `consent-ledger verify` prints",
  { skip: BIN ? false : "set CONSENT_LEDGER_BIN to the consent-ledger binary to run it" },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "verify-js-"));
    try {
      const differ = [];
      for (const [i, c] of CASES.entries()) {
        const bundle = join(dir, `${i}.ndjson`);
        writeFileSync(bundle, c.input());
        const args = ["verify", bundle, "--vkey", c.vkey ?? VKEY];
        if (c.since !== undefined) {
          writeFileSync(join(dir, `${i}.note`), c.since);
          args.push("--since", join(dir, `${i}.note`));
        }
        const run = spawnSync(BIN, args, { encoding: "utf8" });
        const printed = (run.status === 0 ? run.stdout : run.stderr).trim();
        if (printed !== c.expected) differ.push(`${c.name}\n    expected: ${c.expected}\n    printed:  ${printed}`);
      }
      assert.deepEqual(differ, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

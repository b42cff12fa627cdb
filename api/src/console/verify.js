// In-page verifier of export bundles (SPEC §6, §12, §15): "A regulator can verify a bundle in
// the browser page itself, without sending it to the server."
//
// A dependency-free ES module that gives the verdicts of the Rust verifier
// (`consent_ledger_audit::bundle::verify_bundle`, and `consent-ledger verify`, which runs the
// same checks line by line through `consent_ledger_audit::verify::verify_reader`): the same
// refusals, naming the same line, with the same message text. Crypto goes through WebCrypto only
// (SHA-256, and Ed25519 as in Chromium >= 137 and Node >= 20); Ed25519 is checked as strictly as
// ed25519-dalek's `verify_strict`, which WebCrypto alone is not (see `verifyStrict`).
//
//   import { verifyBundle } from "./verify.js";
//   const v = await verifyBundle(bundleTextOrBytes, vkeyText);            // `verify BUNDLE --vkey`
//   const w = await verifyBundle(bundle, vkey, { since: oldCheckpoint }); // `... --since OLD`
//   v.ok   → { ok: true, origin, size, root, extensions, events, openings, erased,
//              consistentWith, summary, text }
//   !v.ok  → { ok: false, line, message, error, text }
//
// `text` is the line `consent-ledger verify` prints: on success its stdout JSON (`summary` is
// the same line), on failure its stderr `error: …` line. On failure `line` is the 1-based line
// at fault and `message` the Display text of the Rust error's kind (`BundleErrorKind`: "the
// event is not in the checkpoint's tree: …"), `error` that of the whole `BundleError` ("line 3:
// the event is not in the checkpoint's tree: …"). When the vkey or the `since` checkpoint is
// refused, before any bundle line is read, `line` is null, `message` the reason and `error`
// what the command line says ("--vkey: key hash must be 8 lowercase or uppercase hex digits").
// `size` (and `consistentWith`) are Numbers, or BigInts beyond 2^53.
//
// What the Rust verifier does, and so this module, in order:
// - lines split at "\n", one "\r" before it stripped; every line (blank ones too) at most
//   MAX_LINE_BYTES bytes of UTF-8; blank lines (only Unicode White_Space) skipped;
// - the first non-blank line is the header: `{"format","origin","vkey","checkpoint",
//   "consistency"?}` read as serde_json reads `BundleHeader` (unknown members refused, the
//   errors serde_json's, with their line and column), its checkpoint opened as a C2SP signed
//   note with the trusted vkey (the header's own vkey is informative only), its origin equal to
//   the checkpoint's; `consistency` is checked only given `since`;
// - each later line `{"position","leaf","inclusion_proof","openings"?,"erased"?}`: positions
//   strictly increasing, the leaf's own `position` equal to the line's, every proof hash base64
//   of 32 bytes, SHA-256(0x00 ‖ leaf) included in the checkpoint's tree by RFC 9162 §2.1.3.2
//   (the leaf text is hashed as it stands: it is not re-canonicalised), then each opening
//   opening the commitment its JSON pointer names (SHA-256(salt ‖ value)) and each erased
//   pointer at a commitment.
//
// Input: a string (checked as `verify_bundle(&str)` checks it) or bytes (a Uint8Array or
// ArrayBuffer, as read from a file: checked as `consent-ledger verify` reads a file, so a line
// that is not UTF-8 is refused naming it, and a "\r" ending the last line is stripped too).

/** The longest line a bundle may hold, in bytes without its line end (audit/src/bundle.rs). */
export const MAX_LINE_BYTES = 1 << 20;
export const BUNDLE_FORMAT = "consent-ledger-bundle/2";
export const BUNDLE_FORMAT_V1 = "consent-ledger-bundle/1";
/** Signature lines a note may carry before it is refused (audit/src/note.rs). */
const MAX_SIGNATURES = 100;

const utf8 = new TextEncoder();
// ignoreBOM: a leading U+FEFF is text like any other (Rust keeps it).
const text = new TextDecoder("utf-8", { ignoreBOM: true });
const str = (bytes) => text.decode(bytes);

/**
 * Verifies an export bundle against the trusted vkey, as `consent-ledger verify BUNDLE --vkey
 * VKEY [--since OLD_CHECKPOINT]` does.
 *
 * @param {string | Uint8Array | ArrayBuffer} input the bundle
 * @param {string} vkeyText the log's vkey (`GET /v1/log/vkey`); surrounding white space is
 *   trimmed, as the command line trims it
 * @param {{since?: string}} [options] `since`: an older signed checkpoint of the log (the note's
 *   text) that the bundle's must extend, by the consistency proof its header carries
 */
export async function verifyBundle(input, vkeyText, options = {}) {
  let vkey;
  try {
    vkey = await parseVkey(rustTrim(String(vkeyText)));
  } catch (e) {
    if (!(e instanceof VkeyError)) throw e;
    return outsideFailure(`--vkey: ${e.message}`, e.message);
  }
  let trusted = null;
  if (options.since !== undefined && options.since !== null) {
    try {
      trusted = await openCheckpoint(vkey, utf8.encode(String(options.since)));
    } catch (e) {
      if (!(e instanceof NoteError)) throw e;
      const message = `--since: the old checkpoint does not verify with --vkey: ${e.message}`;
      return outsideFailure(message, e.message);
    }
  }
  let bytes;
  let fromFile;
  if (typeof input === "string") {
    bytes = utf8.encode(input);
    fromFile = false;
  } else if (input instanceof Uint8Array) {
    bytes = input;
    fromFile = true;
  } else if (input instanceof ArrayBuffer) {
    bytes = new Uint8Array(input);
    fromFile = true;
  } else {
    throw new TypeError("verifyBundle: the bundle must be a string, a Uint8Array or an ArrayBuffer");
  }
  try {
    const verified = await verifyLines(bytes, fromFile, vkey, trusted);
    return success(verified);
  } catch (e) {
    if (!(e instanceof BundleError)) throw e;
    const error = `line ${e.line}: ${e.reason}`;
    return {
      ok: false,
      line: e.line,
      message: e.reason,
      error,
      // The command line prints `{:#}` of anyhow's error: "bundle refused: {BundleError}" and
      // then its source, the BundleError again.
      text: `error: bundle refused: ${error}: ${error}`,
    };
  }
}

function outsideFailure(error, message) {
  return { ok: false, line: null, message, error, text: `error: ${error}` };
}

function success(v) {
  const size = v.checkpoint.size;
  // serde_json::json! sorts the keys (no preserve_order).
  const output =
    `{"consistent_with_size":${v.consistentWith === null ? "null" : v.consistentWith},` +
    `"erased_fields":${v.erased},"events":${v.events},"openings_checked":${v.openings},` +
    `"origin":${jsonString(v.checkpoint.origin)},"tree_size":${size},"verified":true}`;
  return {
    ok: true,
    origin: v.checkpoint.origin,
    size: safeNumber(size),
    root: base64Encode(v.checkpoint.root),
    extensions: v.checkpoint.extensions,
    events: v.events,
    openings: v.openings,
    erased: v.erased,
    consistentWith: v.consistentWith === null ? null : safeNumber(v.consistentWith),
    summary: output,
    text: output,
  };
}

const safeNumber = (n) => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);

// ---------------------------------------------------------------------------------------------
// Errors

/** A refused bundle: the 1-based line at fault and the Display text of the error's kind. */
class BundleError extends Error {
  constructor(line, reason) {
    super(`line ${line}: ${reason}`);
    this.line = line;
    this.reason = reason;
  }
}

class VkeyError extends Error {}
class NoteError extends Error {}
class ProofError extends Error {}
class OpeningError extends Error {}

/** A serde_json error: its message, and its position (line 0: none yet). */
class JsonError extends Error {
  constructor(msg, line = 0, column = 0) {
    super(line === 0 ? msg : `${msg} at line ${line} column ${column}`);
    this.msg = msg;
    this.line = line;
    this.column = column;
  }
}

const notABundleLine = (line, detail) => new BundleError(line, `not a bundle line: ${detail}`);

// ---------------------------------------------------------------------------------------------
// The bundle, line by line (audit/src/bundle.rs `verify_lines`, `BundleVerifier`, `LineRun`;
// audit/src/verify.rs for bytes)

async function verifyLines(bytes, fromFile, vkey, trusted) {
  let verifier = null;
  for (const { n, start, end } of lines(bytes, fromFile)) {
    const line = bytes.subarray(start, end);
    if (verifier === null) {
      checkLength(n, line.length);
      if (fromFile) checkUtf8(n, line);
      if (!isBlank(line)) verifier = await BundleVerifier.fromHeader(n, line, vkey, trusted);
      continue;
    }
    try {
      verifier.readLine(n, line, fromFile);
    } catch (e) {
      if (!(e instanceof BundleError)) throw e;
      // A line before this one may still fail its proof: that one is named first.
      await verifier.settle();
      throw e;
    }
    if (verifier.pendingBytes >= BATCH_BYTES || verifier.pending.length >= BATCH_LINES) {
      await verifier.settle();
    }
  }
  if (verifier === null) throw new BundleError(1, "the bundle is empty");
  await verifier.settle();
  return verifier.finish();
}

// Lines are read and checked one by one as far as no hash is needed, then a batch of them has
// its hashes computed at once (WebCrypto answers asynchronously, and one digest at a time would
// be slow), and the verdicts are taken in line order: the first bad line is named, as the Rust
// verifier names it.
const BATCH_LINES = 2048;
const BATCH_BYTES = 8 << 20;

/**
 * The lines of a bundle with their 1-based numbers: split at "\n", and without a "\r" before
 * it. Rust's `str::lines` strips a "\r" only where a "\n" follows it; the file reader of
 * `consent-ledger verify` strips one ending the last line too.
 */
function* lines(bytes, fromFile) {
  let start = 0;
  let n = 0;
  while (start < bytes.length) {
    const nl = bytes.indexOf(0x0a, start);
    let end = nl < 0 ? bytes.length : nl;
    const next = nl < 0 ? bytes.length : nl + 1;
    if ((nl >= 0 || fromFile) && end > start && bytes[end - 1] === 0x0d) end -= 1;
    n += 1;
    yield { n, start, end };
    start = next;
  }
}

function checkLength(n, length) {
  if (length > MAX_LINE_BYTES) {
    throw new BundleError(n, `the line is longer than ${MAX_LINE_BYTES} bytes; no bundle line is`);
  }
}

function checkUtf8(n, line) {
  const bad = utf8Error(line);
  if (bad !== null) throw notABundleLine(n, `not UTF-8: ${bad}`);
}

/** Rust's `text.trim().is_empty()`: nothing but Unicode White_Space. */
function isBlank(line) {
  let ascii = true;
  for (let i = 0; i < line.length; i++) {
    const b = line[i];
    if (b === 0x20 || (b >= 0x09 && b <= 0x0d)) continue;
    if (b < 0x80) return false;
    ascii = false;
  }
  return ascii || RUST_WHITE_SPACE_ONLY.test(str(line));
}

const RUST_WHITE_SPACE = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const RUST_WHITE_SPACE_ONLY = new RegExp(`^[${RUST_WHITE_SPACE}]*$`, "u");
const RUST_TRIM_START = new RegExp(`^[${RUST_WHITE_SPACE}]+`, "u");
const RUST_TRIM_END = new RegExp(`[${RUST_WHITE_SPACE}]+$`, "u");
const rustTrim = (s) => s.replace(RUST_TRIM_START, "").replace(RUST_TRIM_END, "");
const isRustWhiteSpace = (c) => RUST_WHITE_SPACE_ONLY.test(c);

class BundleVerifier {
  static async fromHeader(n, line, vkey, trusted) {
    let header;
    try {
      header = parseWhole(line, (de) => de.deStruct(HEADER));
    } catch (e) {
      throw jsonRefusal(n, e);
    }
    const format = str(header.format);
    let disclosures;
    if (format === BUNDLE_FORMAT) disclosures = true;
    else if (format === BUNDLE_FORMAT_V1) disclosures = false;
    else {
      throw new BundleError(
        n,
        `format \`${format}\` is neither ${BUNDLE_FORMAT} nor ${BUNDLE_FORMAT_V1}`,
      );
    }
    let checkpoint;
    try {
      checkpoint = await openCheckpoint(vkey, header.checkpoint);
    } catch (e) {
      if (!(e instanceof NoteError)) throw e;
      throw new BundleError(n, `the checkpoint does not verify with the trusted key: ${e.message}`);
    }
    const origin = str(header.origin);
    if (checkpoint.origin !== origin) {
      throw new BundleError(
        n,
        `the header's origin \`${origin}\` is not the checkpoint's \`${checkpoint.origin}\``,
      );
    }
    let consistentWith = null;
    if (trusted !== null) {
      const reason = await checkConsistency(trusted, checkpoint, header.consistency);
      if (reason !== null) throw new BundleError(n, reason);
      consistentWith = trusted.size;
    }
    return new BundleVerifier(checkpoint, consistentWith, disclosures);
  }

  constructor(checkpoint, consistentWith, disclosures) {
    this.checkpoint = checkpoint;
    this.consistentWith = consistentWith;
    this.disclosures = disclosures;
    // The position of the last line read; lines before it are verified or pending.
    this.last = null;
    this.pending = [];
    this.pendingBytes = 0;
    this.events = 0;
    this.openings = 0;
    this.erased = 0;
  }

  /** Checks event line `n` as far as no hash is needed (`LineRun::check`), and queues it. */
  readLine(n, line, fromFile) {
    checkLength(n, line.length);
    if (fromFile) checkUtf8(n, line);
    if (isBlank(line)) return;
    let parsed;
    try {
      parsed = parseWhole(line, (de) => de.deStruct(LINE));
    } catch (e) {
      throw jsonRefusal(n, e);
    }
    const { position, leaf, inclusion_proof: proof, openings, erased } = parsed;
    if (!this.disclosures && (openings !== null || erased !== null)) {
      throw notABundleLine(
        n,
        `\`openings\` and \`erased\` are members of ${BUNDLE_FORMAT} lines, not of ` +
          `${BUNDLE_FORMAT_V1} ones`,
      );
    }
    if (this.last !== null && position <= this.last) {
      throw new BundleError(n, `position ${position} is not after the previous line's`);
    }
    let inside = null;
    try {
      inside = parseWhole(leaf, (de) => de.deStruct(LEAF_POSITION)).position;
    } catch (e) {
      if (!(e instanceof JsonError)) throw e;
    }
    if (inside !== position) {
      const said = inside === null ? "None" : `Some(${inside})`;
      throw new BundleError(n, `the leaf says position ${said}, the line says ${position}`);
    }
    if (proof.some((hash) => hash === null)) {
      throw new BundleError(n, "a proof hash is not base64 of 32 bytes");
    }
    this.last = position;
    this.pending.push({ n, position, leaf, proof, openings: openings ?? [], erased: erased ?? [] });
    this.pendingBytes += line.length;
  }

  /**
   * The proofs and disclosures of the queued lines, hashed together; throws the first bad
   * line's refusal.
   */
  async settle() {
    const paths = new InclusionBatch(this.checkpoint.size, this.checkpoint.root);
    const outcomes = await Promise.all(
      this.pending.map(async ({ n, position, leaf, proof, openings, erased }, order) => {
        try {
          await paths.verify(order, await leafHash(leaf), position, proof);
        } catch (e) {
          if (!(e instanceof ProofError)) throw e;
          return new BundleError(n, `the event is not in the checkpoint's tree: ${e.message}`);
        }
        if (openings.length > 0 || erased.length > 0) {
          const reason = await checkDisclosures(leaf, openings, erased);
          if (reason !== null) return new BundleError(n, reason);
        }
        return null;
      }),
    );
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    outcomes.forEach((refusal, i) => {
      if (refusal !== null) throw refusal;
      this.events += 1;
      this.openings += queued[i].openings.length;
      this.erased += queued[i].erased.length;
    });
  }

  finish() {
    return {
      checkpoint: this.checkpoint,
      events: this.events,
      consistentWith: this.consistentWith,
      openings: this.openings,
      erased: this.erased,
    };
  }
}

function jsonRefusal(n, e) {
  if (!(e instanceof JsonError)) throw e;
  return notABundleLine(n, e.message);
}

/**
 * A line's openings and erased pointers against its leaf (`check_disclosures`): each pointer
 * named once, each opening opening its commitment, each erased pointer at a commitment. The
 * reason for a refusal, or null.
 */
async function checkDisclosures(leafBytes, openings, erased) {
  const all = openings.map(([pointer]) => pointer).concat(erased);
  const pointers = all.map(str);
  const sorted = [...pointers].sort(compareCodePoints);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1] === sorted[i]) {
      const pointer = sorted[i];
      const opened = openings.some(([p]) => str(p) === pointer);
      const isErased = erased.some((p) => str(p) === pointer);
      const how = opened && isErased ? "both opened and erased" : opened ? "opened twice" : "erased twice";
      return `not a bundle line: ${pointer}: ${how}`;
    }
  }
  let leaf;
  try {
    leaf = parseWhole(leafBytes, (de) => de.deValue());
  } catch (e) {
    if (!(e instanceof JsonError)) throw e;
    return `not a bundle line: the leaf is not JSON: ${e.message}`;
  }
  try {
    for (const [pointer, opening] of openings) await checkOpening(leaf, str(pointer), opening);
    for (const pointer of erased) commitmentAt(leaf, str(pointer));
  } catch (e) {
    if (!(e instanceof OpeningError)) throw e;
    return e.message;
  }
  return null;
}

/** Orders strings as Rust orders `&str`: by UTF-8 bytes, which is by code points. */
function compareCodePoints(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

// ---------------------------------------------------------------------------------------------
// Commitments (audit/src/commitment.rs)

const SALT_BYTES = 32;

/** The commitment string at `pointer` in `leaf` (`check_opening`, `commitment_at`). */
function commitmentAt(leaf, pointer) {
  if (!(pointer === "" || pointer.startsWith("/"))) {
    throw new OpeningError(`${pointer}: not a JSON pointer into the leaf`);
  }
  const target = jsonPointer(leaf, pointer);
  if (target instanceof Map && target.size === 1) {
    const commitment = target.get("commitment");
    if (typeof commitment === "string") return commitment;
  }
  throw new OpeningError(`${pointer}: the leaf has no commitment there`);
}

async function checkOpening(leaf, pointer, opening) {
  const committed = commitmentAt(leaf, pointer);
  const salt = base64Decode(opening.salt);
  if (salt === null || salt.length !== SALT_BYTES) {
    throw new OpeningError(`${pointer}: the salt is not ${SALT_BYTES} bytes of base64`);
  }
  const expected = base64Encode(await sha256(concat(salt, opening.value)));
  if (expected !== committed) {
    throw new OpeningError(`${pointer}: the value and salt do not open the leaf's commitment`);
  }
}

/** serde_json's `Value::pointer` (RFC 6901 as serde_json reads it). */
function jsonPointer(value, pointer) {
  if (pointer === "") return value;
  if (!pointer.startsWith("/")) return undefined;
  let target = value;
  for (const raw of pointer.split("/").slice(1)) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (target instanceof Map) {
      target = target.get(token);
    } else if (Array.isArray(target)) {
      if (token.startsWith("+") || (token.startsWith("0") && token.length !== 1)) return undefined;
      if (!/^\+?[0-9]+$/.test(token)) return undefined;
      const index = BigInt(token);
      if (index > 0xffffffffffffffffn || index >= BigInt(target.length)) return undefined;
      target = target[Number(index)];
    } else {
      return undefined;
    }
    if (target === undefined) return undefined;
  }
  return target;
}

// ---------------------------------------------------------------------------------------------
// The Merkle tree (audit/src/tree.rs): RFC 9162 §2.1

async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0x00), data));
}

async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(0x01), left, right));
}

function split(n) {
  // The largest power of two smaller than n, for n >= 2 (a Number or a BigInt).
  if (typeof n === "bigint") return 1n << BigInt((n - 1n).toString(2).length - 1);
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function inclusionPathLen(index, size) {
  let len = 0;
  let lo = typeof size === "bigint" ? 0n : 0;
  let hi = size;
  while (hi - lo > 1) {
    const mid = lo + split(hi - lo);
    if (index < mid) hi = mid;
    else lo = mid;
    len += 1;
  }
  return len;
}

function consistencyProofLen(oldSize, newSize) {
  let len = 0;
  let lo = 0n;
  let hi = newSize;
  let oldRootKnown = true;
  while (oldSize !== hi) {
    const mid = lo + split(hi - lo);
    if (oldSize <= mid) {
      hi = mid;
    } else {
      lo = mid;
      oldRootKnown = false;
    }
    len += 1;
  }
  if (!oldRootKnown) len += 1;
  return len;
}

const wrongLength = (expected, got) =>
  new ProofError(`proof has ${got} hashes, but these tree sizes need exactly ${expected}`);

/**
 * `verify_inclusion` (RFC 9162 §2.1.3.2, the proof's length checked first) for the proofs of a
 * batch of lines, run together; `verify` throws a ProofError.
 *
 * The Rust verifier runs it as `InclusionVerifier`, which stops where a proof reaches the state
 * (fn, sn, r) of the accepted proof of the line before with the same elements left to take: the
 * rest of the computation is that one's. Here a proof that reaches the state of an earlier
 * line's proof in the batch, with the same elements left, takes that proof's outcome; and two
 * proofs hashing the same pair share the hash. The answers are those of `verify_inclusion`.
 * Tree indices are Numbers while the tree size allows, else BigInts.
 */
class InclusionBatch {
  constructor(size, root) {
    this.small = size <= BigInt(Number.MAX_SAFE_INTEGER);
    this.size = this.small ? Number(size) : size;
    this.root = root;
    // The two inputs' keys → { hash, order, step, fn, sn, proof, outcome } of the first proof
    // that asked for their node hash.
    this.nodes = new Map();
  }

  async verify(order, leaf, index, proof) {
    const small = this.small;
    const size = this.size;
    const at = small ? Number(index) : index;
    if (at >= size) {
      throw new ProofError(`leaf index ${index} is outside a tree of ${size} leaves`);
    }
    const expected = inclusionPathLen(at, size);
    if (proof.length !== expected) throw wrongLength(expected, proof.length);
    const outcome = this.walk(order, { bytes: leaf, key: base64Encode(leaf) }, at, proof);
    const result = await outcome.promise;
    if (result === "length") throw wrongLength(expected, proof.length);
    if (result === "root") {
      throw new ProofError("inclusion proof does not lead to the given root hash");
    }
  }

  walk(order, leaf, index, proof) {
    const outcome = {};
    outcome.promise = (async () => {
      const small = this.small;
      const [one, zero] = small ? [1, 0] : [1n, 0n];
      const odd = small ? (x) => x % 2 === 1 : (x) => (x & 1n) === 1n;
      const half = small ? (x) => (x - (x % 2)) / 2 : (x) => x >> 1n;
      let fn = index;
      let sn = this.size - one;
      let r = leaf;
      for (let i = 0; i < proof.length; i++) {
        if (sn === zero) return "length";
        const p = proof[i];
        const right = odd(fn) || fn === sn;
        const key = right ? p.key + r.key : r.key + p.key;
        const seen = this.nodes.get(key);
        if (seen === undefined) {
          const hash = (right ? nodeHash(p.bytes, r.bytes) : nodeHash(r.bytes, p.bytes)).then(
            (bytes) => ({ bytes, key: base64Encode(bytes) }),
          );
          this.nodes.set(key, { hash, order, step: i, fn, sn, proof, outcome });
          r = await hash;
        } else if (
          seen.order < order &&
          seen.fn === fn &&
          seen.sn === sn &&
          sameTail(seen.proof, seen.step + 1, proof, i + 1)
        ) {
          // From here this proof computes what the earlier one does.
          return seen.outcome.promise;
        } else {
          r = await seen.hash;
        }
        if (right) {
          while (!odd(fn) && fn !== zero) {
            fn = half(fn);
            sn = half(sn);
          }
        }
        fn = half(fn);
        sn = half(sn);
      }
      if (sn !== zero) return "length";
      return equalBytes(r.bytes, this.root) ? "ok" : "root";
    })();
    return outcome;
  }
}

function sameTail(a, i, b, j) {
  if (a.length - i !== b.length - j) return false;
  for (let k = 0; i + k < a.length; k++) if (a[i + k].key !== b[j + k].key) return false;
  return true;
}

const EMPTY_ROOT = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; // SHA-256 of nothing

/** `verify_consistency` (RFC 9162 §2.1.4.2); throws a ProofError. */
async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  if (oldSize > newSize) {
    throw new ProofError(
      `old tree size ${oldSize} is larger than new tree size ${newSize}; swap them`,
    );
  }
  const expected = oldSize === 0n || oldSize === newSize ? 0 : consistencyProofLen(oldSize, newSize);
  if (proof.length !== expected) throw wrongLength(expected, proof.length);
  const oldMismatch = () => new ProofError("consistency proof does not lead to the old root hash");
  const newMismatch = () => new ProofError("consistency proof does not lead to the new root hash");
  if (oldSize === 0n) {
    if (base64Encode(oldRoot) !== EMPTY_ROOT) throw oldMismatch();
    return;
  }
  if (oldSize === newSize) {
    if (!equalBytes(oldRoot, newRoot)) throw newMismatch();
    return;
  }
  if (proof.length === 0) throw wrongLength(expected, proof.length);
  const path = (oldSize & (oldSize - 1n)) === 0n ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw wrongLength(expected, proof.length);
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw wrongLength(expected, proof.length);
  if (!equalBytes(fr, oldRoot)) throw oldMismatch();
  if (!equalBytes(sr, newRoot)) throw newMismatch();
}

/**
 * The bundle's checkpoint extends the trusted one (`check_consistency`): the reason it does
 * not, or null.
 */
async function checkConsistency(trusted, bundle, carried) {
  if (trusted.origin !== bundle.origin) {
    return `the trusted checkpoint is of log \`${trusted.origin}\`, the bundle's of \`${bundle.origin}\``;
  }
  const [oldSize, newSize] = [trusted.size, bundle.size];
  if (oldSize > newSize) {
    return (
      `the bundle's checkpoint covers ${newSize} events, fewer than the ${oldSize} of the ` +
      "trusted one; a log only grows, so export again"
    );
  }
  let proof = [];
  if (!(oldSize === 0n || oldSize === newSize)) {
    if (carried === null || carried.from_size !== oldSize) {
      const has = carried === null ? "none" : `one from size ${carried.from_size}`;
      return (
        `the header carries no consistency proof from size ${oldSize} (it has ${has}); ` +
        `export again with since=${oldSize}`
      );
    }
    proof = carried.proof.map(decodeHash);
    if (proof.some((h) => h === null)) return "a proof hash is not base64 of 32 bytes";
  }
  try {
    await verifyConsistency(oldSize, newSize, trusted.root, bundle.root, proof);
  } catch (e) {
    if (!(e instanceof ProofError)) throw e;
    return (
      `the checkpoint of ${newSize} events is not consistent with the trusted checkpoint of ` +
      `${oldSize} events: ${e.message}`
    );
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Signed notes and checkpoints (audit/src/note.rs, audit/src/keys.rs): C2SP signed-note with
// Ed25519, C2SP tlog-checkpoint

const SIGNATURE_PREFIX = utf8.encode("\u2014 ");

/** `<name>+<key hash>+<base64(0x01 ‖ public key)>`, as `VerifierKey::from_str` reads it. */
async function parseVkey(vkey) {
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new VkeyError("expected <name>+<8 hex digits>+<base64 key>");
  const name = vkey.slice(0, first);
  const hash16 = vkey.slice(first + 1, second);
  const key64 = vkey.slice(second + 1);
  if (!isValidKeyName(name)) {
    throw new VkeyError("key name must be non-empty, with no '+', spaces or control characters");
  }
  if (!/^[0-9a-fA-F]{8}$/.test(hash16)) {
    throw new VkeyError("key hash must be 8 lowercase or uppercase hex digits");
  }
  const claimed = parseInt(hash16, 16) >>> 0;
  const bytes = base64Decode(utf8.encode(key64));
  if (bytes === null) throw new VkeyError("key is not standard base64");
  const badPublicKey = "an Ed25519 public key is 32 bytes, with a valid curve point";
  if (bytes.length === 0) throw new VkeyError(badPublicKey);
  if (bytes[0] !== 0x01) {
    throw new VkeyError(`key type 0x${bytes[0].toString(16).padStart(2, "0")} is not Ed25519 (0x01)`);
  }
  const publicKey = bytes.slice(1);
  if (publicKey.length !== 32) throw new VkeyError(badPublicKey);
  const point = decompress(publicKey);
  if (point === null) throw new VkeyError(badPublicKey);
  const nameBytes = utf8.encode(name);
  const digest = await sha256(concat(nameBytes, Uint8Array.of(0x0a, 0x01), publicKey));
  const hash = ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0;
  if (hash !== claimed) {
    throw new VkeyError("key hash does not match SHA-256(name ‖ \\n ‖ 0x01 ‖ key)");
  }
  return { name, nameBytes, keyHash: claimed, publicKey, smallOrder: isSmallOrder(point), cryptoKey: null };
}

/** c2sp.org/signed-note key names: non-empty, no '+', no Unicode space, no control character. */
function isValidKeyName(name) {
  if (name === "") return false;
  for (const c of name) {
    if (c === "+" || c < " " || isRustWhiteSpace(c)) return false;
  }
  return true;
}

const hex8 = (n) => n.toString(16).padStart(8, "0");

/** `VerifierKey::open_checkpoint`: the note opened with the key, its text read as a checkpoint. */
async function openCheckpoint(vkey, note) {
  return parseCheckpoint(await openNote(vkey, note));
}

/** `VerifierKey::open`: the note's text (bytes, with its final newline). */
async function openNote(vkey, note) {
  const malformed = (detail) => new NoteError(`malformed note: ${detail}`);
  for (let i = 0; i < note.length; i++) {
    if (note[i] < 0x20 && note[i] !== 0x0a) {
      throw malformed(
        `byte ${i} is an ASCII control character other than newline (CR is one)`,
      );
    }
  }
  let split = -1;
  for (let i = note.length - 2; i >= 0; i--) {
    if (note[i] === 0x0a && note[i + 1] === 0x0a) {
      split = i;
      break;
    }
  }
  if (split < 0) throw malformed("no blank line separates the text from the signatures");
  const body = note.subarray(0, split + 1);
  const signatures = note.subarray(split + 2);
  if (signatures.length === 0 || signatures[signatures.length - 1] !== 0x0a) {
    throw malformed("the last signature line does not end with a newline");
  }
  const badSignature = () =>
    new NoteError(`invalid signature by key ${vkey.name}+${hex8(vkey.keyHash)}`);
  let verified = false;
  let start = 0;
  for (let i = 0; start < signatures.length; i++) {
    const end = signatures.indexOf(0x0a, start);
    const line = signatures.subarray(start, end);
    start = end + 1;
    if (i >= MAX_SIGNATURES) throw malformed(`note has more than ${MAX_SIGNATURES} signatures`);
    const number = i + 1;
    if (!startsWith(line, SIGNATURE_PREFIX)) {
      throw malformed(
        `signature line ${number} does not start with an em dash (U+2014) and a space`,
      );
    }
    const rest = line.subarray(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(0x20);
    const badEncoding = () =>
      malformed(
        `signature line ${number} is not base64 of a 4-byte key hash and a signature`,
      );
    if (space < 0) throw badEncoding();
    const name = str(rest.subarray(0, space));
    if (!isValidKeyName(name)) {
      throw malformed(
        `signature line ${number} names a key with a '+' or a space, or no name at all`,
      );
    }
    const blob = base64Decode(rest.subarray(space + 1));
    if (blob === null || blob.length < 5) throw badEncoding();
    const keyHash = ((blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3]) >>> 0;
    if (name !== vkey.name || keyHash !== vkey.keyHash) continue;
    if (!(await verifyStrict(vkey, body, blob.subarray(4)))) throw badSignature();
    verified = true;
  }
  if (!verified) {
    throw new NoteError(`note has no signature by key ${vkey.name}+${hex8(vkey.keyHash)}`);
  }
  return body;
}

/**
 * Ed25519 as ed25519-dalek's `verify_strict`: a 64-byte signature whose s is canonical and
 * whose R is a curve point, neither R nor the key of small order, then the RFC 8032 check
 * (WebCrypto).
 */
async function verifyStrict(vkey, message, signature) {
  if (signature.length !== 64) return false;
  const R = signature.subarray(0, 32);
  const s = littleEndian(signature.subarray(32));
  if (s >= ED_L) return false;
  const point = decompress(R);
  if (point === null || isSmallOrder(point) || vkey.smallOrder) return false;
  try {
    if (vkey.cryptoKey === null) {
      vkey.cryptoKey = await crypto.subtle.importKey(
        "raw",
        vkey.publicKey,
        { name: "Ed25519" },
        false,
        ["verify"],
      );
    }
    return await crypto.subtle.verify({ name: "Ed25519" }, vkey.cryptoKey, signature, message);
  } catch {
    // A key or signature WebCrypto will not take verifies nothing.
    return false;
  }
}

/** `Checkpoint::parse_body`: `origin\nsize\nbase64(root)\n` and extension lines. */
function parseCheckpoint(body) {
  const bad = (detail) => new NoteError(`signed note is not a checkpoint: ${detail}`);
  const textBody = str(body);
  if (!textBody.endsWith("\n")) throw bad("checkpoint body must end with a newline");
  const parts = textBody.slice(0, -1).split("\n");
  if (parts.length < 3) {
    throw bad(
      `checkpoint body has ${parts.length} lines; it needs origin, tree size and root hash`,
    );
  }
  parts.forEach((line, i) => {
    if (line === "") {
      throw bad(`checkpoint line ${i + 1} is empty; origin and extension lines must be non-empty`);
    }
    if ([...line].some((c) => c < " ")) {
      throw bad(`checkpoint line ${i + 1} contains a control character`);
    }
  });
  const [origin, sizeText, rootText, ...extensions] = parts;
  if (
    !/^[0-9]+$/.test(sizeText) ||
    (sizeText.length > 1 && sizeText.startsWith("0")) ||
    BigInt(sizeText) > 0xffffffffffffffffn
  ) {
    throw bad(
      `checkpoint tree size \`${sizeText}\` is not a canonical decimal (digits only, no ` +
        "leading zeroes, at most u64::MAX)",
    );
  }
  const root = base64Decode(utf8.encode(rootText));
  if (root === null) throw bad(`checkpoint root hash \`${rootText}\` is not standard base64`);
  if (root.length !== 32) {
    throw bad(`checkpoint root hash is ${root.length} bytes; SHA-256 roots are 32`);
  }
  return { origin, size: BigInt(sizeText), root, extensions };
}

// Edwards25519, only as far as the strict checks need: does a point decompress, is it of
// small order (ed25519-dalek `CompressedEdwardsY::decompress`, `is_small_order`).
const ED_P = (1n << 255n) - 19n;
const ED_L = (1n << 252n) + 27742317777372353535851937790883648493n;
const mod = (a) => ((a % ED_P) + ED_P) % ED_P;
function power(base, exp) {
  let result = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % ED_P;
    b = (b * b) % ED_P;
    e >>= 1n;
  }
  return result;
}
const inverse = (a) => power(a, ED_P - 2n);
const ED_D = mod(-121665n * inverse(121666n));
const SQRT_M1 = power(2n, (ED_P - 1n) / 4n);

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/** The point of a 32-byte encoding, or null: y taken mod p (the top bit is x's sign). */
function decompress(bytes) {
  const y = mod(littleEndian(bytes) & ((1n << 255n) - 1n));
  const sign = bytes[31] >> 7;
  const u = mod(y * y - 1n);
  const v = mod(ED_D * y * y + 1n);
  const w = mod(u * inverse(v));
  let x = power(w, (ED_P + 3n) / 8n);
  if (mod(x * x - w) !== 0n) {
    x = mod(x * SQRT_M1);
    if (mod(x * x - w) !== 0n) return null;
  }
  if ((x & 1n) === 1n) x = ED_P - x;
  if (sign === 1) x = mod(-x);
  return { x, y };
}

function double({ x, y }) {
  const xy = mod(x * y);
  const t = mod(ED_D * xy * xy);
  return {
    x: mod(2n * xy * inverse(mod(1n + t))),
    y: mod((y * y + x * x) * inverse(mod(1n - t))),
  };
}

function isSmallOrder(point) {
  const p8 = double(double(double(point)));
  return p8.x === 0n && p8.y === 1n;
}

// ---------------------------------------------------------------------------------------------
// serde_json, as far as the verifier's types read it: the same acceptance, the same errors at
// the same line and column (serde_json 1.0 `de.rs`, `read.rs`, `error.rs`; serde_derive's
// struct visitors with deny_unknown_fields; the float_roundtrip and raw_value features)

const E = {
  eofList: "EOF while parsing a list",
  eofObject: "EOF while parsing an object",
  eofString: "EOF while parsing a string",
  eofValue: "EOF while parsing a value",
  colon: "expected `:`",
  listCommaOrEnd: "expected `,` or `]`",
  objectCommaOrEnd: "expected `,` or `}`",
  ident: "expected ident",
  value: "expected value",
  escape: "invalid escape",
  number: "invalid number",
  range: "number out of range",
  control: "control character (\\u0000-\\u001F) found while parsing a string",
  keyString: "key must be a string",
  loneSurrogate: "lone leading surrogate in hex escape",
  trailingComma: "trailing comma",
  trailing: "trailing characters",
  hexEnd: "unexpected end of hex escape",
  recursion: "recursion limit exceeded",
};

const RAW_VALUE_TOKEN = "$serde_json::private::RawValue";
const U64_MAX = 0xffffffffffffffffn;
const isDigit = (c) => c >= 0x30 && c <= 0x39;

/** `serde_json::from_str`: the value `read` reads, and nothing but white space after it. */
function parseWhole(bytes, read) {
  const de = new De(bytes);
  const value = read(de);
  de.end();
  return value;
}

/** A custom (unpositioned) error, as `de::Error::custom` makes it: a trailing
 *  " at line L column C" is read back as the position. */
function custom(msg) {
  const m = /^([\s\S]*) at line ([0-9]+) column ([0-9]+)$/.exec(msg);
  if (m !== null) return new JsonError(m[1], Number(m[2]), Number(m[3]));
  return new JsonError(msg);
}

const invalidType = (unexpected, expected) =>
  custom(`invalid type: ${unexpected}, expected ${expected}`);

/** A parsed number: u64 and i64 as BigInt, f64 as a Number. */
function describeNumber(n) {
  return n.kind === "f64" ? `floating point \`${formatF64(n.value)}\`` : `integer \`${n.value}\``;
}

class De {
  constructor(bytes) {
    this.s = bytes;
    this.i = 0;
    this.depth = 128;
  }

  peek() {
    return this.i < this.s.length ? this.s[this.i] : -1;
  }

  peekOrNull() {
    return this.i < this.s.length ? this.s[this.i] : 0;
  }

  next() {
    return this.i < this.s.length ? this.s[this.i++] : -1;
  }

  at(index) {
    let start = index;
    while (start > 0 && this.s[start - 1] !== 0x0a) start -= 1;
    let line = 1;
    for (let k = 0; k < start; k++) if (this.s[k] === 0x0a) line += 1;
    return { line, column: index - start };
  }

  error(msg) {
    const p = this.at(this.i);
    return new JsonError(msg, p.line, p.column);
  }

  peekError(msg) {
    const p = this.at(Math.min(this.s.length, this.i + 1));
    return new JsonError(msg, p.line, p.column);
  }

  fix(err) {
    if (err instanceof JsonError && err.line === 0) return this.error(err.msg);
    return err;
  }

  ws() {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) this.i += 1;
      else return c;
    }
  }

  end() {
    if (this.ws() >= 0) throw this.peekError(E.trailing);
  }

  parseIdent(rest) {
    for (const expected of rest) {
      const c = this.next();
      if (c < 0) throw this.error(E.eofValue);
      if (c !== expected.charCodeAt(0)) throw this.error(E.ident);
    }
  }

  enter() {
    this.depth -= 1;
    if (this.depth === 0) throw this.peekError(E.recursion);
  }

  // Numbers (`parse_integer` and what it calls). With float_roundtrip the float is the
  // correctly rounded value of the whole literal, as JavaScript's Number() reads it.
  parseInteger(positive) {
    const start = this.i;
    const first = this.next();
    if (first < 0) throw this.error(E.eofValue);
    if (first === 0x30) {
      if (isDigit(this.peekOrNull())) throw this.peekError(E.number);
    } else if (first >= 0x31 && first <= 0x39) {
      while (isDigit(this.peekOrNull())) this.i += 1;
    } else {
      throw this.error(E.number);
    }
    const digits = str(this.s.subarray(start, this.i));
    const significand = BigInt(digits);
    const c = this.peekOrNull();
    if (c === 0x2e || c === 0x65 || c === 0x45 || significand > U64_MAX) {
      const zero = /^0*$/.test(digits);
      let fraction = "";
      let zeroFraction = true;
      if (this.peekOrNull() === 0x2e) {
        this.i += 1;
        const from = this.i;
        while (isDigit(this.peekOrNull())) this.i += 1;
        if (this.i === from) {
          throw this.peekError(this.peek() < 0 ? E.eofValue : E.number);
        }
        fraction = str(this.s.subarray(from, this.i));
        zeroFraction = /^0*$/.test(fraction);
      }
      let exponent = "";
      const e = this.peekOrNull();
      if (e === 0x65 || e === 0x45) {
        this.i += 1;
        let sign = "+";
        const s = this.peekOrNull();
        if (s === 0x2b || s === 0x2d) {
          sign = s === 0x2b ? "+" : "-";
          this.i += 1;
        }
        const d = this.next();
        if (d < 0) throw this.error(E.eofValue);
        if (!isDigit(d)) throw this.error(E.number);
        let exp = d - 0x30;
        while (isDigit(this.peekOrNull())) {
          this.i += 1;
          const digit = this.s[this.i - 1] - 0x30;
          if (exp >= 214748364 && (exp > 214748364 || digit > 7)) {
            // The exponent overflows an i32: an error, or zero.
            if (!(zero && zeroFraction) && sign === "+") throw this.error(E.range);
            while (isDigit(this.peekOrNull())) this.i += 1;
            return { kind: "f64", value: positive ? 0 : -0 };
          }
          exp = exp * 10 + digit;
        }
        exponent = `e${sign}${exp}`;
      }
      const value = Number(`${digits}${fraction === "" ? "" : `.${fraction}`}${exponent}`);
      if (!Number.isFinite(value)) throw this.error(E.range);
      return { kind: "f64", value: positive ? value : -value };
    }
    if (positive) return { kind: "u64", value: significand };
    if (significand === 0n) return { kind: "f64", value: -0 };
    if (significand <= 1n << 63n) return { kind: "i64", value: -significand };
    return { kind: "f64", value: -Number(significand) };
  }

  // Strings (`parse_str` with validation, `ignore_str`)
  parseStr() {
    let start = this.i;
    let chunks = null;
    const s = this.s;
    for (;;) {
      let k = this.i;
      while (k < s.length) {
        const c = s[k];
        if (c === 0x22 || c === 0x5c || c < 0x20) break;
        k += 1;
      }
      this.i = k;
      if (k === s.length) throw this.error(E.eofString);
      const c = s[k];
      if (c === 0x22) {
        this.i += 1;
        if (chunks === null) return s.subarray(start, k);
        chunks.push(s.subarray(start, k));
        return concat(...chunks);
      }
      if (c === 0x5c) {
        chunks ??= [];
        chunks.push(s.subarray(start, k));
        this.i += 1;
        chunks.push(this.parseEscape());
        start = this.i;
      } else {
        this.i += 1;
        throw this.error(E.control);
      }
    }
  }

  parseEscape() {
    const c = this.next();
    if (c < 0) throw this.error(E.eofString);
    switch (c) {
      case 0x22: return Uint8Array.of(0x22);
      case 0x5c: return Uint8Array.of(0x5c);
      case 0x2f: return Uint8Array.of(0x2f);
      case 0x62: return Uint8Array.of(0x08);
      case 0x66: return Uint8Array.of(0x0c);
      case 0x6e: return Uint8Array.of(0x0a);
      case 0x72: return Uint8Array.of(0x0d);
      case 0x74: return Uint8Array.of(0x09);
      case 0x75: return this.parseUnicodeEscape();
      default: throw this.error(E.escape);
    }
  }

  decodeHexEscape() {
    if (this.s.length - this.i < 4) {
      this.i = this.s.length;
      throw this.error(E.eofString);
    }
    const h = str(this.s.subarray(this.i, this.i + 4));
    this.i += 4;
    if (!/^[0-9a-fA-F]{4}$/.test(h)) throw this.error(E.escape);
    return parseInt(h, 16);
  }

  parseUnicodeEscape() {
    const n = this.decodeHexEscape();
    if (n >= 0xdc00 && n <= 0xdfff) throw this.error(E.loneSurrogate);
    if (n < 0xd800 || n > 0xdbff) return utf8.encode(String.fromCharCode(n));
    if (this.peek() < 0) throw this.error(E.eofString);
    if (this.peek() === 0x5c) this.i += 1;
    else {
      this.i += 1;
      throw this.error(E.hexEnd);
    }
    if (this.peek() < 0) throw this.error(E.eofString);
    if (this.peek() === 0x75) this.i += 1;
    else {
      this.i += 1;
      throw this.error(E.hexEnd);
    }
    const n2 = this.decodeHexEscape();
    if (n2 < 0xdc00 || n2 > 0xdfff) throw this.error(E.loneSurrogate);
    return utf8.encode(String.fromCharCode(n, n2));
  }

  ignoreStr() {
    const s = this.s;
    for (;;) {
      while (this.i < s.length && s[this.i] !== 0x22 && s[this.i] !== 0x5c && s[this.i] >= 0x20) {
        this.i += 1;
      }
      if (this.i === s.length) throw this.error(E.eofString);
      const c = s[this.i];
      if (c === 0x22) {
        this.i += 1;
        return;
      }
      if (c !== 0x5c) throw this.error(E.control);
      this.i += 1;
      const e = this.next();
      if (e < 0) throw this.error(E.eofString);
      if (e === 0x75) this.decodeHexEscape();
      else if (![0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(e)) {
        throw this.error(E.escape);
      }
    }
  }

  /** `peek_invalid_type`: reads the value that is there and names it. */
  peekInvalidType(expected) {
    let err;
    switch (this.peekOrNull()) {
      case 0x6e:
        this.i += 1;
        this.parseIdent("ull");
        err = invalidType("null", expected);
        break;
      case 0x74:
        this.i += 1;
        this.parseIdent("rue");
        err = invalidType("boolean `true`", expected);
        break;
      case 0x66:
        this.i += 1;
        this.parseIdent("alse");
        err = invalidType("boolean `false`", expected);
        break;
      case 0x2d:
        this.i += 1;
        err = invalidType(describeNumber(this.parseInteger(false)), expected);
        break;
      case 0x22:
        this.i += 1;
        err = invalidType(`string ${rustDebugStr(str(this.parseStr()))}`, expected);
        break;
      case 0x5b:
        err = invalidType("sequence", expected);
        break;
      case 0x7b:
        err = invalidType("map", expected);
        break;
      default:
        if (isDigit(this.peekOrNull())) {
          err = invalidType(describeNumber(this.parseInteger(true)), expected);
        } else {
          err = this.peekError(E.value);
        }
    }
    return this.fix(err);
  }

  // Deserializers of the verifier's types. Each runs serde_json's `deserialize_*` and the
  // visitor serde generates or the Rust code defines.

  /** A `String` (and any visitor taking only a string): its UTF-8 bytes. */
  deStr(expected = "a string") {
    const c = this.ws();
    if (c < 0) throw this.peekError(E.eofValue);
    if (c === 0x22) {
      this.i += 1;
      return this.parseStr();
    }
    throw this.fix(this.peekInvalidType(expected));
  }

  /** A `u64`, as a BigInt. */
  deU64() {
    const c = this.ws();
    if (c < 0) throw this.peekError(E.eofValue);
    let n;
    if (c === 0x2d) {
      this.i += 1;
      n = this.parseInteger(false);
    } else if (isDigit(c)) {
      n = this.parseInteger(true);
    } else {
      throw this.fix(this.peekInvalidType("u64"));
    }
    if (n.kind === "u64") return n.value;
    if (n.kind === "i64") throw this.fix(custom(`invalid value: integer \`${n.value}\`, expected u64`));
    throw this.fix(invalidType(describeNumber(n), "u64"));
  }

  /** `ProofHash`: a string, the hash if it is base64 of 32 bytes, else null. */
  deProofHash() {
    const text = this.deStr("a base64 hash");
    const bytes = decodeHash(text);
    // Canonical base64: the text names the bytes one way only.
    return bytes === null ? null : { bytes, key: str(text) };
  }

  /** An `Option<T>`: null, or the value. */
  deOption(read) {
    if (this.ws() === 0x6e) {
      this.i += 1;
      this.parseIdent("ull");
      return null;
    }
    return read(this);
  }

  /** A `[…]` read by `visit(seqAccess)`, or an error naming what is there. */
  deSeq(visit, expected) {
    const c = this.ws();
    if (c < 0) throw this.peekError(E.eofValue);
    if (c !== 0x5b) throw this.fix(this.peekInvalidType(expected));
    return this.inSeq(visit);
  }

  inSeq(visit) {
    this.enter();
    this.i += 1;
    let ret;
    let err = null;
    try {
      ret = visit(new SeqAccess(this));
    } catch (e) {
      if (!(e instanceof JsonError)) throw e;
      err = e;
    }
    this.depth += 1;
    try {
      this.endSeq();
    } catch (e) {
      if (!(e instanceof JsonError)) throw e;
      err ??= e;
    }
    if (err !== null) throw this.fix(err);
    return ret;
  }

  /** A `{…}` read by `visit(mapAccess)`, or an error naming what is there. */
  deMap(visit, expected) {
    const c = this.ws();
    if (c < 0) throw this.peekError(E.eofValue);
    if (c !== 0x7b) throw this.fix(this.peekInvalidType(expected));
    return this.inMap(visit);
  }

  inMap(visit) {
    this.enter();
    this.i += 1;
    let ret;
    let err = null;
    try {
      ret = visit(new MapAccess(this));
    } catch (e) {
      if (!(e instanceof JsonError)) throw e;
      err = e;
    }
    this.depth += 1;
    try {
      this.endMap();
    } catch (e) {
      if (!(e instanceof JsonError)) throw e;
      err ??= e;
    }
    if (err !== null) throw this.fix(err);
    return ret;
  }

  /** A `Vec<T>`. */
  deVec(read) {
    return this.deSeq((seq) => {
      const items = [];
      while (seq.hasNext()) items.push(read(this));
      return items;
    }, "a sequence");
  }

  /** A struct serde derives: from a map, or from a sequence of its fields in order. */
  deStruct(spec) {
    const c = this.ws();
    if (c < 0) throw this.peekError(E.eofValue);
    if (c === 0x5b) return this.inSeq((seq) => visitStructSeq(this, seq, spec));
    if (c === 0x7b) return this.inMap((map) => visitStructMap(this, map, spec));
    throw this.fix(this.peekInvalidType(`struct ${spec.name}`));
  }

  /** `IgnoredAny` (`ignore_value`): any JSON value, without a depth limit. */
  ignoreValue() {
    const stack = [];
    let enclosing = null;
    for (;;) {
      const peek = this.ws();
      if (peek < 0) throw this.peekError(E.eofValue);
      let frame = null;
      switch (peek) {
        case 0x6e:
          this.i += 1;
          this.parseIdent("ull");
          break;
        case 0x74:
          this.i += 1;
          this.parseIdent("rue");
          break;
        case 0x66:
          this.i += 1;
          this.parseIdent("alse");
          break;
        case 0x2d:
          this.i += 1;
          this.ignoreNumber();
          break;
        case 0x22:
          this.i += 1;
          this.ignoreStr();
          break;
        case 0x5b:
        case 0x7b:
          if (enclosing !== null) stack.push(enclosing);
          enclosing = null;
          this.i += 1;
          frame = peek;
          break;
        default:
          if (isDigit(peek)) this.ignoreNumber();
          else throw this.peekError(E.value);
      }
      let acceptComma;
      if (frame !== null) {
        acceptComma = false;
      } else if (enclosing !== null) {
        frame = enclosing;
        enclosing = null;
        acceptComma = true;
      } else if (stack.length > 0) {
        frame = stack.pop();
        acceptComma = true;
      } else {
        return;
      }
      for (;;) {
        const c = this.ws();
        if (c === 0x2c && acceptComma) {
          this.i += 1;
          break;
        } else if ((c === 0x5d && frame === 0x5b) || (c === 0x7d && frame === 0x7b)) {
          // The frame closes.
        } else if (c >= 0) {
          if (acceptComma) {
            throw this.peekError(frame === 0x5b ? E.listCommaOrEnd : E.objectCommaOrEnd);
          }
          break;
        } else {
          throw this.peekError(frame === 0x5b ? E.eofList : E.eofObject);
        }
        this.i += 1;
        if (stack.length === 0) return;
        frame = stack.pop();
        acceptComma = true;
      }
      if (frame === 0x7b) {
        const c = this.ws();
        if (c === 0x22) this.i += 1;
        else if (c >= 0) throw this.peekError(E.keyString);
        else throw this.peekError(E.eofObject);
        this.ignoreStr();
        const d = this.ws();
        if (d === 0x3a) this.i += 1;
        else if (d >= 0) throw this.peekError(E.colon);
        else throw this.peekError(E.eofObject);
      }
      enclosing = frame;
    }
  }

  ignoreNumber() {
    const c = this.next();
    if (c === 0x30) {
      if (isDigit(this.peekOrNull())) throw this.peekError(E.number);
    } else if (c >= 0x31 && c <= 0x39) {
      while (isDigit(this.peekOrNull())) this.i += 1;
    } else {
      throw this.error(E.number);
    }
    if (this.peekOrNull() === 0x2e) {
      this.i += 1;
      const from = this.i;
      while (isDigit(this.peekOrNull())) this.i += 1;
      if (this.i === from) throw this.peekError(E.number);
    }
    const e = this.peekOrNull();
    if (e === 0x65 || e === 0x45) {
      this.i += 1;
      const s = this.peekOrNull();
      if (s === 0x2b || s === 0x2d) this.i += 1;
      if (!isDigit(this.next() < 0 ? 0 : this.s[this.i - 1])) throw this.error(E.number);
      while (isDigit(this.peekOrNull())) this.i += 1;
    }
  }

  /**
   * A `serde_json::Value`: null, booleans, {number}, strings (JS strings), arrays and objects
   * (Maps; a repeated key keeps its last value).
   */
  deValue() {
    const c = this.ws();
    if (c < 0) throw this.peekError(E.eofValue);
    try {
      switch (c) {
        case 0x6e:
          this.i += 1;
          this.parseIdent("ull");
          return null;
        case 0x74:
          this.i += 1;
          this.parseIdent("rue");
          return true;
        case 0x66:
          this.i += 1;
          this.parseIdent("alse");
          return false;
        case 0x2d:
          this.i += 1;
          return { number: this.parseInteger(false) };
        case 0x22:
          this.i += 1;
          return str(this.parseStr());
        case 0x5b:
          return this.inSeq((seq) => {
            const items = [];
            while (seq.hasNext()) items.push(this.deValue());
            return items;
          });
        case 0x7b:
          return this.inMap((map) => this.visitValueMap(map));
        default:
          if (isDigit(c)) return { number: this.parseInteger(true) };
          throw this.peekError(E.value);
      }
    } catch (e) {
      throw this.fix(e);
    }
  }

  visitValueMap(map) {
    const object = new Map();
    if (!map.hasNextKey()) return object;
    const first = str(map.key());
    if (first === RAW_VALUE_TOKEN) {
      // serde_json's raw_value feature: the value is a string holding JSON, which is read.
      map.colon();
      const raw = this.deStr("raw value");
      try {
        return parseWhole(raw, (de) => de.deValue());
      } catch (e) {
        if (!(e instanceof JsonError)) throw e;
        throw custom(e.message);
      }
    }
    map.colon();
    object.set(first, this.deValue());
    while (map.hasNextKey()) {
      const key = str(map.key());
      map.colon();
      object.set(key, this.deValue());
    }
    return object;
  }

  endSeq() {
    const c = this.ws();
    if (c === 0x5d) {
      this.i += 1;
    } else if (c === 0x2c) {
      this.i += 1;
      throw this.peekError(this.ws() === 0x5d ? E.trailingComma : E.trailing);
    } else if (c >= 0) {
      throw this.peekError(E.trailing);
    } else {
      throw this.peekError(E.eofList);
    }
  }

  endMap() {
    const c = this.ws();
    if (c === 0x7d) this.i += 1;
    else if (c === 0x2c) throw this.peekError(E.trailingComma);
    else if (c >= 0) throw this.peekError(E.trailing);
    else throw this.peekError(E.eofObject);
  }
}

class SeqAccess {
  constructor(de) {
    this.de = de;
    this.first = true;
  }

  /** `has_next_element`: whether another element follows (its comma eaten). */
  hasNext() {
    const de = this.de;
    const c = de.ws();
    if (c < 0) throw de.peekError(E.eofList);
    if (c === 0x5d) return false;
    if (this.first) {
      this.first = false;
      return true;
    }
    if (c !== 0x2c) throw de.peekError(E.listCommaOrEnd);
    de.i += 1;
    const d = de.ws();
    if (d === 0x5d) throw de.peekError(E.trailingComma);
    if (d < 0) throw de.peekError(E.eofValue);
    return true;
  }
}

class MapAccess {
  constructor(de) {
    this.de = de;
    this.first = true;
  }

  /** `has_next_key`: whether another key follows (its comma eaten, its quote not). */
  hasNextKey() {
    const de = this.de;
    const c = de.ws();
    if (c < 0) throw de.peekError(E.eofObject);
    if (c === 0x7d) return false;
    if (this.first) {
      this.first = false;
      if (c === 0x22) return true;
      throw de.peekError(E.keyString);
    }
    if (c !== 0x2c) throw de.peekError(E.objectCommaOrEnd);
    de.i += 1;
    const d = de.ws();
    if (d === 0x22) return true;
    if (d === 0x7d) throw de.peekError(E.trailingComma);
    if (d < 0) throw de.peekError(E.eofValue);
    throw de.peekError(E.keyString);
  }

  /** The key, after `hasNextKey` (`MapKey::deserialize_any`). */
  key() {
    this.de.i += 1;
    return this.de.parseStr();
  }

  /** `parse_object_colon`, before each value. */
  colon() {
    const de = this.de;
    const c = de.ws();
    if (c === 0x3a) de.i += 1;
    else if (c >= 0) throw de.peekError(E.colon);
    else throw de.peekError(E.eofObject);
  }
}

/**
 * serde_derive's `visit_map`: keys by name (an unknown one refused under deny_unknown_fields,
 * else ignored), none twice, then the missing ones defaulted or refused in field order.
 */
function visitStructMap(de, map, spec) {
  const values = new Array(spec.fields.length).fill(undefined);
  while (map.hasNextKey()) {
    const name = str(map.key());
    const index = spec.fields.findIndex((f) => f.name === name);
    if (index < 0) {
      if (spec.deny) {
        const names = spec.fields.map((f) => `\`${f.name}\``);
        const expected =
          names.length === 1 ? names[0] : names.length === 2 ? `${names[0]} or ${names[1]}` : `one of ${names.join(", ")}`;
        throw custom(`unknown field \`${name}\`, expected ${expected}`);
      }
      map.colon();
      de.ignoreValue();
      continue;
    }
    const field = spec.fields[index];
    if (values[index] !== undefined) throw custom(`duplicate field \`${field.name}\``);
    map.colon();
    values[index] = field.read(de);
  }
  const out = {};
  spec.fields.forEach((field, i) => {
    if (values[i] !== undefined) out[field.name] = values[i];
    else if ("missing" in field) out[field.name] = field.missing;
    else throw custom(`missing field \`${field.name}\``);
  });
  return out;
}

/** serde_derive's `visit_seq`: the fields in order; a missing one defaulted or refused. */
function visitStructSeq(de, seq, spec) {
  const n = spec.fields.length;
  const out = {};
  spec.fields.forEach((field, i) => {
    if (seq.hasNext()) out[field.name] = field.read(de);
    else if ("missing" in field) out[field.name] = field.missing;
    else {
      throw custom(
        `invalid length ${i}, expected struct ${spec.name} with ${n} element${n === 1 ? "" : "s"}`,
      );
    }
  });
  return out;
}

const readOpening = (de) => de.deStruct(OPENING);

/** `BundleHeader` (deny_unknown_fields; `consistency` defaults to None). */
const HEADER = {
  name: "BundleHeader",
  deny: true,
  fields: [
    { name: "format", read: (de) => de.deStr() },
    { name: "origin", read: (de) => de.deStr() },
    { name: "vkey", read: (de) => de.deStr() },
    { name: "checkpoint", read: (de) => de.deStr() },
    { name: "consistency", read: (de) => de.deOption((d) => d.deStruct(CONSISTENCY)), missing: null },
  ],
};

const CONSISTENCY = {
  name: "BundleConsistency",
  deny: true,
  fields: [
    { name: "from_size", read: (de) => de.deU64() },
    { name: "proof", read: (de) => de.deVec((d) => str(d.deStr())) },
  ],
};

/** `LineIn`: `openings` and `erased` may be absent but not null. */
const LINE = {
  name: "LineIn",
  deny: true,
  fields: [
    { name: "position", read: (de) => de.deU64() },
    { name: "leaf", read: (de) => de.deStr() },
    { name: "inclusion_proof", read: (de) => de.deVec((d) => d.deProofHash()) },
    {
      name: "openings",
      // OpeningsIn: every entry kept, in the order written.
      read: (de) =>
        de.deMap((map) => {
          const entries = [];
          while (map.hasNextKey()) {
            const pointer = map.key();
            map.colon();
            entries.push([pointer, readOpening(de)]);
          }
          return entries;
        }, "a map of JSON pointers to openings"),
      missing: null,
    },
    { name: "erased", read: (de) => de.deVec((d) => d.deStr()), missing: null },
  ],
};

const OPENING = {
  name: "Opening",
  deny: true,
  fields: [
    { name: "value", read: (de) => de.deStr() },
    { name: "salt", read: (de) => de.deStr() },
  ],
};

/** `LeafPosition`: the one member of the leaf the verifier reads; others ignored. */
const LEAF_POSITION = {
  name: "LeafPosition",
  deny: false,
  fields: [{ name: "position", read: (de) => de.deU64() }],
};

// ---------------------------------------------------------------------------------------------
// Rust's formatting, where serde_json's messages quote the input

/** A string as Rust's `{:?}` writes it. */
function rustDebugStr(s) {
  let out = '"';
  for (const c of s) {
    switch (c) {
      case "\0": out += "\\0"; break;
      case "\t": out += "\\t"; break;
      case "\r": out += "\\r"; break;
      case "\n": out += "\\n"; break;
      case "\\": out += "\\\\"; break;
      case '"': out += '\\"'; break;
      default:
        if (GRAPHEME_EXTEND.test(c) || (c !== " " && NOT_PRINTABLE.test(c))) {
          out += `\\u{${c.codePointAt(0).toString(16)}}`;
        } else {
          out += c;
        }
    }
  }
  return `${out}"`;
}

const GRAPHEME_EXTEND = /^\p{Grapheme_Extend}$/u;
// core::unicode::printable: Cc Cf Cs Co Cn Zl Zp Zs are escaped (but the space).
const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

/** An f64 as serde_json writes it into messages (zmij): shortest round-trip digits, fixed
 *  notation for decimal exponents -5..=15 (with ".0" on integers), else `d.ddde±N`. */
function formatF64(x) {
  if (Object.is(x, -0)) return "-0.0";
  if (x === 0) return "0.0";
  const sign = x < 0 ? "-" : "";
  const [mantissa, exponent] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const e = Number(exponent);
  let body;
  if (e >= -5 && e <= 15) {
    if (digits.length - 1 <= e) body = `${digits}${"0".repeat(e - (digits.length - 1))}.0`;
    else if (e >= 0) body = `${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
    else body = `0.${"0".repeat(-e - 1)}${digits}`;
  } else {
    const rest = digits.length > 1 ? `.${digits.slice(1)}` : "";
    body = `${digits[0]}${rest}e${e < 0 ? "-" : "+"}${Math.abs(e)}`;
  }
  return sign + body;
}

/** A string as serde_json writes it (for the origin in the success line). */
function jsonString(s) {
  let out = '"';
  for (const c of s) {
    const code = c.codePointAt(0);
    if (c === '"') out += '\\"';
    else if (c === "\\") out += "\\\\";
    else if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (c === "\b") out += "\\b";
    else if (c === "\f") out += "\\f";
    else if (code < 0x20) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += c;
  }
  return `${out}"`;
}

/** Why bytes are not UTF-8, as Rust's `Utf8Error` says it, or null. */
function utf8Error(bytes) {
  const cont = (b) => b !== undefined && b >= 0x80 && b <= 0xbf;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i += 1;
      continue;
    }
    const invalid = (len) => `invalid utf-8 sequence of ${len} bytes from index ${i}`;
    const incomplete = () => `incomplete utf-8 byte sequence from index ${i}`;
    let width;
    if (b >= 0xc2 && b <= 0xdf) width = 2;
    else if (b >= 0xe0 && b <= 0xef) width = 3;
    else if (b >= 0xf0 && b <= 0xf4) width = 4;
    else return invalid(1);
    const b1 = bytes[i + 1];
    if (b1 === undefined) return incomplete();
    let ok1;
    if (width === 2) ok1 = cont(b1);
    else if (width === 3) {
      ok1 =
        (b === 0xe0 && b1 >= 0xa0 && b1 <= 0xbf) ||
        (b >= 0xe1 && b <= 0xec && cont(b1)) ||
        (b === 0xed && b1 >= 0x80 && b1 <= 0x9f) ||
        (b >= 0xee && b <= 0xef && cont(b1));
    } else {
      ok1 =
        (b === 0xf0 && b1 >= 0x90 && b1 <= 0xbf) ||
        (b >= 0xf1 && b <= 0xf3 && cont(b1)) ||
        (b === 0xf4 && b1 >= 0x80 && b1 <= 0x8f);
    }
    if (!ok1) return invalid(1);
    for (let k = 2; k < width; k++) {
      if (bytes[i + k] === undefined) return incomplete();
      if (!cont(bytes[i + k])) return invalid(k);
    }
    i += width;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Bytes, base64 and SHA-256

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function startsWith(bytes, prefix) {
  return bytes.length >= prefix.length && equalBytes(bytes.subarray(0, prefix.length), prefix);
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;

function base64Encode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    out += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return out;
}

/**
 * Standard base64 as the Rust `base64` crate's STANDARD engine decodes it: padded to a multiple
 * of four, no other character, unused bits zero. The bytes (of UTF-8 text), or null.
 */
function base64Decode(input) {
  const s = typeof input === "string" ? utf8.encode(input) : input;
  if (s.length % 4 !== 0) return null;
  let pad = 0;
  if (s.length > 0 && s[s.length - 1] === 0x3d) pad = s[s.length - 2] === 0x3d ? 2 : 1;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const last = i + 4 === s.length;
    const count = last ? 4 - pad : 4;
    let n = 0;
    for (let k = 0; k < 4; k++) {
      let v = 0;
      if (k < count) {
        v = B64_VALUE[s[i + k]];
        if (v < 0) return null;
      }
      n = (n << 6) | v;
    }
    if (count === 2 && (n & 0xffff) !== 0) return null;
    if (count === 3 && (n & 0xff) !== 0) return null;
    out[o++] = (n >> 16) & 0xff;
    if (count > 2) out[o++] = (n >> 8) & 0xff;
    if (count > 3) out[o++] = n & 0xff;
  }
  return out;
}

/** A proof hash: base64 of exactly 32 bytes (44 characters), else null. */
function decodeHash(input) {
  const s = typeof input === "string" ? utf8.encode(input) : input;
  if (s.length !== 44) return null;
  const bytes = base64Decode(s);
  return bytes !== null && bytes.length === 32 ? bytes : null;
}

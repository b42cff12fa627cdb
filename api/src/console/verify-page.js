// The verify page (SPEC §15): the chosen bundle is read and verified in this page with
// verify.js; nothing is sent to the server.
import { verifyBundle } from "/console/static/verify.js";

const form = document.getElementById("verify");
const verdict = document.getElementById("verdict");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("bundle").files[0];
  const vkey = document.getElementById("vkey").value.trim();
  verdict.className = "";
  if (!file) {
    verdict.textContent = "Choose a bundle file first.";
    return;
  }
  verdict.textContent = "Verifying…";
  try {
    // Bytes, as the command line reads a file: a file that is not UTF-8 is told so.
    const result = await verifyBundle(new Uint8Array(await file.arrayBuffer()), vkey);
    if (result.ok) {
      verdict.className = "good";
      verdict.textContent =
        `verified: ${result.events} events of the log ${result.origin}, in its signed ` +
        `checkpoint of ${result.size} events\n${result.summary}`;
    } else {
      verdict.className = "bad";
      // As `consent-ledger verify` says it: "line N: why" (or why the key was refused).
      verdict.textContent = result.error ?? `line ${result.line}: ${result.message}`;
    }
  } catch (e) {
    verdict.className = "bad";
    verdict.textContent = `the verifier failed: ${e}`;
  }
});

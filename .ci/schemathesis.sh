#!/usr/bin/env bash
# Property-based API testing of the real `consent-ledger` binary against its own OpenAPI
# document (schemathesis): every operation of /openapi.json gets generated valid and invalid
# requests, and every answer must be no 5xx, a status the document lists for that operation,
# the content type it lists, and a body matching the listed schema.
#
# Runs from `.ci/run`, and by hand from the repository root:
#   bash .ci/schemathesis.sh
# Knobs (environment): CARGO_TARGET_DIR, SCHEMATHESIS_VENV (where schemathesis is installed),
# SCHEMATHESIS_MAX_EXAMPLES (cases per operation and phase, default 25), SCHEMATHESIS_SEED
# (default fixed, so that a failure reproduces; set another to explore), SCHEMATHESIS_REPORT_DIR,
# SCHEMATHESIS_SERVE_ARGS (more `serve` flags, e.g. a rate limit high enough for the run).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/consent-ledger-target}"
VENV="${SCHEMATHESIS_VENV:-/var/tmp/consent-ledger-schemathesis-venv}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
SEED="${SCHEMATHESIS_SEED:-20261204}"
REPORT_DIR="${SCHEMATHESIS_REPORT_DIR:-${CARGO_TARGET_DIR}/schemathesis-report}"

echo "== schemathesis ${SCHEMATHESIS_VERSION} (in ${VENV})"
if ! "${VENV}/bin/st" --version 2>/dev/null | grep -qF "${SCHEMATHESIS_VERSION}"; then
  # A venv of our own: Debian's Python refuses system-wide pip installs (PEP 668).
  if ! python3 -m venv --clear "${VENV}"; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --clear "${VENV}"
  fi
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
fi
"${VENV}/bin/st" --version

echo "== the consent-ledger binary (the debug build the tests use)"
cargo build -p consent-ledger
BIN="${CARGO_TARGET_DIR}/debug/consent-ledger"

# A fresh embedded store: the run must not touch a PostgreSQL database named by the caller.
unset DATABASE_URL
WORK="$(mktemp -d /var/tmp/consent-ledger-schemathesis.XXXXXX)"
SERVER_PID=""
cleanup() {
  if [[ -n "${SERVER_PID}" ]] && kill -0 "${SERVER_PID}" 2>/dev/null; then
    kill -TERM "${SERVER_PID}" 2>/dev/null || true
    wait "${SERVER_PID}" 2>/dev/null || true
  fi
  rm -rf "${WORK}"
}
trap cleanup EXIT

ADMIN_JSON="$("${BIN}" --data-dir "${WORK}/data" principal create --role admin --name ci)"
ADMIN_TOKEN="$(printf '%s' "${ADMIN_JSON}" | "${VENV}/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
[[ -n "${ADMIN_TOKEN}" ]] || { echo "no admin token in: ${ADMIN_JSON}" >&2; exit 1; }

# Port 0: the kernel picks a free loopback port, which the server prints on its first line.
# shellcheck disable=SC2086 # SCHEMATHESIS_SERVE_ARGS is a list of flags
"${BIN}" --data-dir "${WORK}/data" serve --listen 127.0.0.1:0 ${SCHEMATHESIS_SERVE_ARGS:-} \
  >"${WORK}/stdout" 2>"${WORK}/stderr" &
SERVER_PID=$!
BASE=""
for _ in $(seq 1 100); do
  BASE="$(sed -n 's/^consent-ledger listening on \(http:\/\/[0-9.:]*\)$/\1/p' "${WORK}/stdout")"
  [[ -n "${BASE}" ]] && break
  kill -0 "${SERVER_PID}" 2>/dev/null || { cat "${WORK}/stderr" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n "${BASE}" ]] || { cat "${WORK}/stderr" >&2; echo "the server did not start" >&2; exit 1; }
echo "server at ${BASE} (pid ${SERVER_PID}), store in ${WORK}/data"

# The admin registers one principal of each other role, a shipment and a consent, so that
# the other roles' runs reach their use cases instead of stopping at 403 or 404.
TOKENS="$("${VENV}/bin/python" - "${BASE}" "${ADMIN_TOKEN}" <<'PY'
import json, sys, urllib.request
base, admin = sys.argv[1], sys.argv[2]
def post(path, body, token=admin):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
made = {"admin": admin}
for role in ["shipper", "gateway", "privacy_officer", "regulator"]:
    made[role] = post("/v1/principals", {"role": role, "name": "ci " + role})
partner = post("/v1/principals", {"role": "partner", "name": "ci partner",
    "partner": {"kind": "insurer", "country": "DE", "dpa_ref": "DPA-CI-1"}})
shipment = post("/v1/shipments", {"carrier": "DHL", "tracking_number": "JJD000CI1",
    "destination_country": "DE", "recipient_ref": "crm:ci-1", "shipper_id": made["shipper"]["id"]})
post("/v1/consents", {"partner_id": partner["id"],
    "scope": {"type": "shipments", "shipment_ids": [shipment["id"]]},
    "purposes": ["insurance_claim"], "data_categories": ["status_events"],
    "legal_basis": "contract"}, token=made["shipper"]["token"])
made["partner"] = partner
for role, who in made.items():
    print(role, who if role == "admin" else who["token"])
PY
)"

echo "== st run, once per role (checks: no 5xx, documented statuses, content types and bodies)"
mkdir -p "${REPORT_DIR}"
start=$(date +%s)
status=0
while read -r role token; do
  echo "-- as ${role}"
  # From the scratch directory: schemathesis keeps a cache (.schemathesis/) in its working
  # directory. One worker: with several, hypothesis calls ast.parse from threads at once,
  # which CPython 3.11 does not survive ("AST constructor recursion depth mismatch").
  (cd "${WORK}" && "${VENV}/bin/st" run "${BASE}/openapi.json" \
    --header "Authorization: Bearer ${token}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${MAX_EXAMPLES}" \
    --seed "${SEED}" \
    --workers 1 \
    --request-timeout 15 \
    --output-sanitize true \
    --report junit --report-junit-path "${REPORT_DIR}/junit-${role}.xml" \
    --generation-database none \
    --no-color </dev/null) || status=1
done <<<"${TOKENS}"
echo "schemathesis took $(( $(date +%s) - start )) s for every role; reports in ${REPORT_DIR}"

if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
  echo "the server died during the run:" >&2
  tail -n 50 "${WORK}/stderr" >&2
  exit 1
fi
if [[ "${status}" -ne 0 ]]; then
  echo "schemathesis found failures; the server's last log lines (5xx causes are logged there):" >&2
  tail -n 30 "${WORK}/stderr" >&2
fi
exit "${status}"

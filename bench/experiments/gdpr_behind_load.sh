#!/usr/bin/env bash
# What an officer and an erasure meet while the GDPR projection is behind a load it cannot keep
# up with (issue 18). On a copy of a `bench http` data directory (DIR, e.g. the one `bench all`
# leaves in <dir>/http), the server BIN runs and wrk sends single decisions (its `single.lua`)
# or batches (`batch.lua`), 64 or 8 connections:
#
#   bench/experiments/gdpr_behind_load.sh view  BIN DIR single|batch
#       an officer's view of one parcel (`GET /v1/audit/access?shipment_id=…&limit=10`) asked
#       every 2 s after the last answer while wrk runs 24 s; prints each answer's status and time
#       (VIEW='/v1/audit/ropa?from=…&to=…' asks that view instead)
#   bench/experiments/gdpr_behind_load.sh erase BIN DIR
#       20 s into 120 s of single decisions, one parcel erased; prints the seconds until no
#       file of the data directory holds its tracking number (SPEC §12: 60 s)
#
# The copy goes to SCRATCH (default /var/tmp/gdpr-behind-load), port 18080. Needs wrk, jq, curl,
# sqlite3, bc.
set -eu
WHAT=$1; BIN=$2; SRC=$3; MODE=${4:-single}
RUN=${SCRATCH:-/var/tmp/gdpr-behind-load}
URL=http://127.0.0.1:18080
rm -rf "$RUN"; cp -a "$SRC" "$RUN"; sync
DPO=$("$BIN" --data-dir "$RUN" principal create --role privacy_officer --name DPO | jq -r .token)
SHIP=$(grep -o '"shipment_id":"[^"]*"' "$RUN/wrk/single.lua" | sed -n 7p | cut -d'"' -f4)
RUST_LOG=warn "$BIN" --data-dir "$RUN" serve --listen 127.0.0.1:18080 >"$RUN.serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf $URL/healthz >/dev/null && break; sleep 0.1; done
wrk -t2 -c64 -d3s -s "$RUN/wrk/single.lua" $URL/ >/dev/null
case $WHAT in
view)
  if [ "$MODE" = batch ]; then CONN=8; else CONN=64; fi
  wrk -t2 -c$CONN -d24s -s "$RUN/wrk/$MODE.lua" $URL/ >"$RUN.wrk" &
  W=$!
  T=""
  for _ in $(seq 1 10); do
    sleep 2
    T="$T $(curl -s -o /dev/null -w '%{http_code}:%{time_total}' -H "Authorization: Bearer $DPO" \
      "$URL${VIEW:-/v1/audit/access?shipment_id=$SHIP&limit=10}")"
  done
  wait $W
  echo "$MODE: $(awk '/Requests\/sec/ {print $2}' "$RUN.wrk") requests/s; the views (status:seconds):$T"
  ;;
erase)
  TN=$(sqlite3 "$RUN/ledger.audit.db" "SELECT tracking_number FROM audit_shipment WHERE shipment_id = '$SHIP'")
  wrk -t2 -c64 -d120s -s "$RUN/wrk/single.lua" $URL/ >"$RUN.wrk" &
  W=$!
  sleep 20
  T0=$(date +%s.%N)
  curl -s -o /dev/null -w "erase: %{http_code} in %{time_total} s\n" -H "Authorization: Bearer $DPO" \
    -H 'content-type: application/json' -d '{"reason":"the recipient asked"}' "$URL/v1/shipments/$SHIP/erase"
  while true; do
    N=0
    for f in "$RUN"/ledger.audit.db "$RUN"/ledger.audit.db-wal "$RUN"/ledger.db "$RUN"/ledger.db-wal; do
      if [ -f "$f" ]; then N=$((N + $(grep -c -a -F "$TN" "$f" || true))); fi
    done
    T=$(echo "$(date +%s.%N) - $T0" | bc)
    if [ $N -eq 0 ]; then echo "the erased number gone from every file $T s after the erasure was asked"; break; fi
    if [ "$(echo "$T > 200" | bc)" = 1 ]; then echo "the erased number still in $N places $T s after"; break; fi
    sleep 2
  done
  kill $W 2>/dev/null || true
  ;;
*) echo "usage: $0 view|erase BIN DIR [single|batch]" >&2; exit 2 ;;
esac

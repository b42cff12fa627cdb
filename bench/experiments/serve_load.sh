#!/usr/bin/env bash
# One load through `serve` on a fresh copy of a data directory, as the experiments that compare
# two builds or two directories alternately run it (BENCHMARKS.md cites them):
#
#   bench/experiments/serve_load.sh BIN DIR single|batch LABEL
#
# DIR is a `bench http` data directory (e.g. the one `bench all` leaves in <dir>/http); a copy
# of it goes to SCRATCH (default /var/tmp/serve-load), the server BIN runs on it at port 18080,
# wrk sends 3 s of warm-up then SECONDS_EACH (15) of the directory's `single.lua` (64
# connections) or `batch.lua` (8), and one line is printed: LABEL, decisions/s, p99, and a
# decision's CPU by stage of the server (from /proc/PID/task/*/stat; the log reads are the
# checkpoint behind the writer) and the bytes its group commit wrote (`wchar`). Needs wrk, curl,
# bc.
set -eu
BIN=$1; SRC=$2; MODE=$3; LABEL=$4
SECS=${SECONDS_EACH:-15}
RUN=${SCRATCH:-/var/tmp/serve-load}
URL=http://127.0.0.1:18080
if [ "$MODE" = batch ]; then CONN=8; PER=1000; else CONN=64; PER=1; fi
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null || true' EXIT

# "name ticks wchar" of the server's threads, summed by name.
sample() {
  for t in /proc/$PID/task/*; do
    echo "$(tr ' ' '_' <"$t/comm") $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}') \
$(awk '/^wchar/ {print $2}' "$t/io")"
  done | awk '{sub(/-[0-9]+$/, "", $1); a[$1] += $2; w[$1] += $3} END {for (k in a) print k, a[k], w[k]}' | sort
}

rm -rf "$RUN"; cp -a "$SRC" "$RUN"
env -u DATABASE_URL RUST_LOG=warn "$BIN" serve --data-dir "$RUN" --listen 127.0.0.1:18080 \
  >"$RUN.serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do curl -sf $URL/healthz >/dev/null && break; sleep 0.1; done
curl -sf $URL/healthz >/dev/null || { echo "the server did not start: $RUN.serve.log" >&2; exit 1; }
wrk -t2 -c$CONN -d3s -s "$RUN/wrk/$MODE.lua" $URL/ >/dev/null
sample >"$RUN.s0"
wrk -t2 -c$CONN -d${SECS}s --latency -s "$RUN/wrk/$MODE.lua" $URL/ >"$RUN.wrk"
sample >"$RUN.s1"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
RPS=$(awk '/Requests\/sec/ {print $2}' "$RUN.wrk")
P99=$(awk '$1 == "99%" {print $2}' "$RUN.wrk")
N=$(echo "$RPS * $PER * $SECS" | bc)
join "$RUN.s0" "$RUN.s1" | awk -v n="$N" -v label="$LABEL" -v rps="$RPS" -v per=$PER -v p99="$P99" '
  $1 == "log-commit" || $1 == "log-writer" {c += $4 - $2; cw += $5 - $3}
  $1 ~ /^log-reader/ {r += $4 - $2}
  $1 ~ /^gdpr/ {g += $4 - $2}
  $1 ~ /^actix/ {h += $4 - $2}
  END {printf "%-10s decisions/s %7.0f  p99 %9s  µs a decision: HTTP %.2f, group commit %.2f, log reads %.2f, GDPR projection %.2f; group commit wrote %.0f B a decision\n",
       label, rps * per, p99, h * 1e4 / n, c * 1e4 / n, r * 1e4 / n, g * 1e4 / n, cw / n}'

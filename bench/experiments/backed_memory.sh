#!/usr/bin/env bash
# How much of a decision's cost on a virtual machine is its host faulting memory back in
# (BENCHMARKS.md, "Pages new to the page cache, and the host behind them"). The kernel of such a
# machine may report the memory it frees to its host (free page reporting, with virtio_balloon),
# which takes it back; the next page the kernel hands out from it, to a file growing in the page
# cache as the log and the GDPR projection's file do with every decision, is a fault the host
# serves. This script runs the same load with reporting as the machine has it and with
# reporting held off, alternately:
#
#   bench/experiments/backed_memory.sh BIN DIR single|batch PAIRS
#
# On a fresh copy of a `bench http` data directory (DIR, e.g. the one `bench all` leaves in
# <dir>/http) for each run, the server BIN runs, wrk sends 3 s of warm-up then SECONDS (15) of
# the directory's `single.lua` (64 connections) or `batch.lua` (8), and the run prints its
# decisions/s, p99 and the CPU of the server's stages a decision (the log reads: the checkpoint
# behind the writer), from /proc/PID/task/*/stat.
# "reporting": page_reporting_order as the machine has it, after 8 s for the kernel to report
# what the run before freed. "backed": page_reporting_order set past the largest order (no block
# is reported) and 6 GiB of memory touched and freed, so that the kernel's free memory is memory
# the host holds. The machine's setting is put back at the end, also on failure.
#
# Needs root, a kernel with /sys/module/page_reporting, wrk, curl, bc, cc. Copies go to
# SCRATCH (default /var/tmp/backed-memory), port 18080.
set -eu
BIN=$1; SRC=$2; MODE=$3; PAIRS=${4:-3}
SECS=${SECONDS_EACH:-15}
RUN=${SCRATCH:-/var/tmp/backed-memory}
ORDER=/sys/module/page_reporting/parameters/page_reporting_order
URL=http://127.0.0.1:18080
if [ "$MODE" = batch ]; then CONN=8; PER=1000; else CONN=64; PER=1; fi
AS_FOUND=$(cat $ORDER)
PID=""
cleanup() {
  echo "$AS_FOUND" >$ORDER
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
}
trap cleanup EXIT

TOUCH=$(mktemp -d)/touch
cc -O2 -x c -o "$TOUCH" - <<'EOF'
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
  size_t n = (size_t)atol(argv[1]) << 30;
  char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  madvise(p, n, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < n; i += 4096) p[i] = 1;
  return munmap(p, n);
}
EOF

# CPU ticks of the server's threads, summed by name: "name ticks".
ticks() {
  for t in /proc/$PID/task/*; do
    echo "$(tr ' ' '_' <"$t/comm") $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done | awk '{sub(/-[0-9]+$/, "", $1); a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}

run() {
  local label=$1
  rm -rf "$RUN"; cp -a "$SRC" "$RUN"
  env -u DATABASE_URL RUST_LOG=warn "$BIN" serve --data-dir "$RUN" --listen 127.0.0.1:18080 \
    >"$RUN.serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do curl -sf $URL/healthz >/dev/null && break; sleep 0.1; done
  curl -sf $URL/healthz >/dev/null || { echo "the server did not start: $RUN.serve.log" >&2; exit 1; }
  wrk -t2 -c$CONN -d3s -s "$RUN/wrk/$MODE.lua" $URL/ >/dev/null
  ticks >"$RUN.t0"
  wrk -t2 -c$CONN -d${SECS}s --latency -s "$RUN/wrk/$MODE.lua" $URL/ >"$RUN.wrk"
  ticks >"$RUN.t1"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  local rps p99 n
  rps=$(awk '/Requests\/sec/ {print $2}' "$RUN.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$RUN.wrk")
  n=$(echo "$rps * $PER * $SECS" | bc)
  join "$RUN.t0" "$RUN.t1" | awk -v n="$n" -v label="$label" -v rps="$rps" -v per=$PER -v p99="$p99" '
    $1 == "log-commit" || $1 == "log-writer" {c += $3 - $2}
    $1 ~ /^log-reader/ {r += $3 - $2}
    $1 ~ /^gdpr/ {g += $3 - $2}
    $1 ~ /^actix/ {h += $3 - $2}
    END {printf "%-10s decisions/s %7.0f  p99 %9s  µs a decision: HTTP %.2f, group commit %.2f, log reads %.2f, GDPR projection %.2f\n",
         label, rps * per, p99, h * 1e4 / n, c * 1e4 / n, r * 1e4 / n, g * 1e4 / n}'
}

for i in $(seq 1 "$PAIRS"); do
  echo "$AS_FOUND" >$ORDER; sleep 8
  run reporting
  echo 11 >$ORDER
  "$TOUCH" 6
  run backed
done

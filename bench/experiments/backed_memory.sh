#!/usr/bin/env bash
# How much of a decision's cost on a virtual machine is its host faulting memory back in
# (BENCHMARKS.md, "Pages new to the page cache, and the host behind them"). The kernel of such a
# machine may report the memory it frees to its host (free page reporting, with virtio_balloon),
# which takes it back; the next page the kernel hands out from it, to a file growing in the page
# cache as the log and the GDPR projection's file do with every decision, is a fault the host
# serves. This script runs the same load with reporting as the machine has it and with
# reporting held off, alternately:
#
#   bench/experiments/backed_memory.sh BENCH DIR single|batch PAIRS
#
# Each run is `BENCH load` (BENCH: the `consent-ledger-bench` binary, which serves with the
# `consent-ledger` beside it or CONSENT_LEDGER_BIN): a fresh copy of the `bench http` data
# directory DIR, 3 s of warm-up then SECONDS_EACH (15) of its `single.lua` or `batch.lua`, one
# line of decisions/s, p99 and a decision's CPU by stage of the server.
# "reporting": page_reporting_order as the machine has it, after 8 s for the kernel to report
# what the run before freed. "backed": page_reporting_order set past the largest order (no block
# is reported) and 6 GiB of memory touched and freed, so that the kernel's free memory is memory
# the host holds. The machine's setting is put back at the end, also on failure.
#
# Needs root, a kernel with /sys/module/page_reporting, cc, wrk.
set -eu
BENCH=$1; SRC=$2; MODE=$3; PAIRS=${4:-3}
run() {
  "$BENCH" load --from "$SRC" --load "$MODE" --seconds "${SECONDS_EACH:-15}" --label "$1"
}
ORDER=/sys/module/page_reporting/parameters/page_reporting_order
AS_FOUND=$(cat $ORDER)
WORK=$(mktemp -d)
trap 'echo "$AS_FOUND" >$ORDER; rm -rf "$WORK"' EXIT

TOUCH=$WORK/touch
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

for i in $(seq 1 "$PAIRS"); do
  echo "$AS_FOUND" >$ORDER; sleep 8
  run reporting
  echo 11 >$ORDER
  "$TOUCH" 6
  run backed
done

#!/usr/bin/env bash
# The floor of a durable answer against `serve`'s own ceiling, alternately (BENCHMARKS.md, "The
# floor of a durable answer written into SQLite"): each round, `GET /healthz` of `serve` on a
# fresh data directory, then the single decisions' requests answered by `consent-ledger-bench
# durable-floor --sqlite` (each body committed as a row of an SQLite table opened as the log's
# is) and by `durable-floor` (each body written into a file and fdatasynced), 10 s each on 64
# connections, the first 2–3 s of each server a warm-up.
#
#   bench/experiments/floor_vs_healthz.sh HTTP_DIR [ROUNDS]
#
# HTTP_DIR is a `bench http` directory (e.g. <dir>/http of `bench all`), for its wrk/single.lua.
# The binaries are $CARGO_TARGET_DIR/release/consent-ledger and consent-ledger-bench (release
# builds of this tree); wrk on the PATH.
set -euo pipefail
script="$1/wrk/single.lua"
rounds="${2:-4}"
bin="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

# start DIR COMMAND...: runs COMMAND until it prints its URL; sets pid and url.
start() {
    local dir="$1"
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    "$@" >"$dir/out" 2>"$dir/err" &
    pid=$!
    for _ in $(seq 100); do
        grep -q listening "$dir/out" && break
        sleep 0.1
    done
    url="$(sed -n 's/.*listening on //p' "$dir/out")"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
rate() { awk '/Requests\/sec/ {print $2}'; }
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }

echo "round healthz sqlite-row (ratio) file (ratio)"
for round in $(seq "$rounds"); do
    start "$work/serve" env -u DATABASE_URL "$bin/consent-ledger" --data-dir "$work/serve/data" \
        serve --listen 127.0.0.1:0
    wrk -t2 -c64 -d2s "$url/healthz" >/dev/null
    healthz="$(wrk -t2 -c64 -d10s "$url/healthz" | rate)"
    stop
    start "$work/sqlite" "$bin/consent-ledger-bench" durable-floor --dir "$work/sqlite" --sqlite
    wrk -t2 -c64 -d3s -s "$script" "$url/" >/dev/null
    sqlite="$(wrk -t2 -c64 -d10s -s "$script" "$url/" | rate)"
    stop
    start "$work/file" "$bin/consent-ledger-bench" durable-floor --dir "$work/file"
    wrk -t2 -c64 -d3s -s "$script" "$url/" >/dev/null
    file="$(wrk -t2 -c64 -d10s -s "$script" "$url/" | rate)"
    stop
    echo "$round $healthz $sqlite ($(ratio "$sqlite" "$healthz")) $file ($(ratio "$file" "$healthz"))"
done

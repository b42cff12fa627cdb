#!/usr/bin/env bash
# `bench decisions` before and after a change, in the same run: builds the release binary of
# BEFORE (a commit) in a worktree of its own, the release binaries of this checkout, then runs
# the decision benchmark alternately with each, ROUNDS times, on the same disk.
#
#   bench/scripts/before-after.sh BEFORE [ROUNDS] [-- extra `decisions` flags]
#
# Commits before the `app/` redesign (docs/adr/0007) ran the harness as `consent-ledger bench
# decisions`; later ones as `consent-ledger-bench decisions`. Each run prints its Markdown table.
set -euo pipefail
before="${1:?usage: before-after.sh BEFORE [ROUNDS] [-- flags]}"
rounds="${2:-2}"
shift $(( $# >= 2 ? 2 : 1 ))
[[ "${1:-}" == "--" ]] && shift
flags=("$@")
here="$(cd "$(dirname "$0")/../.." && pwd)"
work="${BENCH_WORK:-/var/tmp/consent-ledger-before-after}"
mkdir -p "$work"

# Separate build directories: two checkouts must not share one.
if [[ ! -d "$work/src" ]]; then
  git -C "$here" worktree add --detach "$work/src" "$before" >/dev/null
fi
CARGO_TARGET_DIR="$work/target" cargo build --release --manifest-path "$work/src/Cargo.toml" -q
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}" cargo build --release --workspace \
  --manifest-path "$here/Cargo.toml" -q
after_dir="${CARGO_TARGET_DIR:-$here/target}/release"

old() {
  if "$work/target/release/consent-ledger" bench --help >/dev/null 2>&1; then
    "$work/target/release/consent-ledger" bench decisions "$@"
  else
    "$work/target/release/consent-ledger-bench" decisions "$@"
  fi
}

for round in $(seq 1 "$rounds"); do
  for side in before after; do
    dir="$work/run-$side-$round"
    rm -rf "$dir" && mkdir -p "$dir"
    echo "### round $round, $side ($([[ $side == before ]] && echo "$before" || git -C "$here" rev-parse --short HEAD))"
    if [[ $side == before ]]; then
      old --dir "$dir" "${flags[@]}"
    else
      "$after_dir/consent-ledger-bench" decisions --dir "$dir" "${flags[@]}"
    fi
    rm -rf "$dir"
  done
done

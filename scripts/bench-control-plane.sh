#!/usr/bin/env bash
# The coordinator under N simulated nodes of 8 ranks (`coordinator load-test`, release
# build): one run per size, each with a flooding client in the second half of its steady
# phase. Writes one JSON line per size to OUT (default target/control-plane.jsonl) and
# draws docs/control-plane.svg from it (scripts/plot-control-plane.py). Figures go to
# BENCHMARKS.md ("Control plane under load").
#
#   scripts/bench-control-plane.sh [SIZES...]          (default: 16 128 512 2048)
#
# STEADY_S (default 30: one soft-state flush falls inside), FLOOD (default 16 loops).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(16 128 512 2048)
out=${OUT:-target/control-plane.jsonl}
bin=target/release/coordinator
[[ -x $bin ]] || { echo "bench-control-plane.sh: build first: cargo build --release -p coordinator" >&2; exit 1; }
: >"$out"
for n in "${sizes[@]}"; do
  echo "== $n nodes" >&2
  result=$("$bin" load-test --nodes "$n" --steady-s "${STEADY_S:-30}" --flood "${FLOOD:-16}" 2>/dev/null)
  echo "$result" >&2
  tail -1 <<<"$result" >>"$out"
done
python3 scripts/plot-control-plane.py "$out" docs/control-plane.svg "before soft heartbeats=docs/control-plane-before.jsonl"
echo "figures: $out, plot: docs/control-plane.svg" >&2

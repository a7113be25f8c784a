#!/usr/bin/env bash
# Repeated fault runs for RELIABILITY.md: the chaos test (worker/tests/chaos.rs) over
# seeds FIRST..LAST with FAULTS faults each, then the storage outage tests RUNS times.
# Prints one line per run (the seed's schedule and what it survived) and a tally.
#
#   scripts/chaos.sh [FIRST] [LAST] [FAULTS] [RUNS]      (defaults: 1 10 5 3)
#
# Needs the workspace built (`cargo build --workspace`, as ./test.sh does) and
# scripts/setup.sh (moto) for the storage tests.
set -uo pipefail
cd "$(dirname "$0")/.."

first=${1:-1} last=${2:-10} faults=${3:-5} runs=${4:-3}
passed=0 failed=0
for seed in $(seq "$first" "$last"); do
  out=$(CHAOS_SEED=$seed CHAOS_FAULTS=$faults cargo test -q -p worker --test chaos -- --nocapture 2>&1)
  if [[ $? -eq 0 ]]; then
    passed=$((passed + 1))
    grep -E "^chaos seed $seed: [0-9]+ faults survived" <<<"$out"
  else
    failed=$((failed + 1))
    echo "chaos seed $seed: FAILED"
    grep -E "^chaos seed|panicked|assert" <<<"$out" | head -20
  fi
done
echo "chaos: $passed passed, $failed failed (seeds $first-$last, $faults faults each)"
opassed=0 ofailed=0
for run in $(seq 1 "$runs"); do
  if out=$(cargo test -q -p worker --test storage_outage -- --nocapture 2>&1); then
    opassed=$((opassed + 1))
    grep -E "^outages while" <<<"$out"
  else
    ofailed=$((ofailed + 1))
    echo "storage outage run $run: FAILED"
    grep -E "panicked|assert" <<<"$out" | head -20
  fi
done
echo "storage outages: $opassed passed, $ofailed failed ($runs runs of both tests)"
[[ $failed -eq 0 && $ofailed -eq 0 ]]

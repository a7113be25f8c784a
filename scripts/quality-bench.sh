#!/usr/bin/env bash
# Model quality on camera models training never saw: trains each given config (unless its
# final checkpoint exists), evaluates its newest checkpoint on the three fixed splice
# benchmarks (`worker splice-bench make --seed 0|1|2` of the held-out side of `dataloader
# split --seed 0`), then sets every model side by side with 95% bootstrap intervals over
# images and paired differences from the first config (`worker eval compare`). Figures go
# to BENCHMARKS.md ("Model quality").
#
#   scripts/quality-bench.sh CONFIG [CONFIG...]
#
# Needs the packed split and the benchmarks (`./run.sh` makes work/train-packed,
# work/holdout.txt; the benchmarks are made here when missing). WORK (default work/quality)
# holds the evaluations: <config name>-s<seed>.json. CHECKPOINT_<n>=REF evaluates another
# checkpoint for config number n (1-based), e.g. an exported model.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 1 ]] || { sed -n 2,14p "$0" >&2; exit 2; }
wk=${WORKER:-target/release/worker}
[[ -x $wk ]] || { echo "quality-bench.sh: build first: cargo build --release -p worker" >&2; exit 1; }
work=${WORK:-work/quality}
mkdir -p "$work"
for seed in 0 1 2; do
  if [[ ! -f work/splice-bench-s$seed/labels.csv ]]; then
    [[ -f work/holdout.txt ]] || { echo "quality-bench.sh: run ./run.sh first (work/holdout.txt)" >&2; exit 1; }
    "$wk" splice-bench make --photos work/holdout.txt --out "work/splice-bench-s$seed" --count 40 --seed "$seed"
  fi
done

runs=()
n=0
for config in "$@"; do
  n=$((n + 1))
  name=$(basename "$config" .toml)
  ref_var=CHECKPOINT_$n
  ref=${!ref_var:-}
  if [[ -z $ref ]]; then
    start=$(date +%s)
    "$wk" train --config "$config" --resume >>"$work/$name-train.log" 2>&1 \
      || { echo "quality-bench.sh: training $config failed, see $work/$name-train.log" >&2; exit 1; }
    echo "== $name: trained (or already trained) in $(( $(date +%s) - start )) s" >&2
  fi
  files=()
  for seed in 0 1 2; do
    out=$work/$name${ref:+-$n}-s$seed.json
    if [[ ! -f $out ]]; then
      "$wk" eval splice --config "$config" ${ref:+--checkpoint "$ref"} \
        --data "work/splice-bench-s$seed" --per-side 25 --json "$out" >"${out%.json}.txt" 2>&1 \
        || { echo "quality-bench.sh: evaluating $name on seed $seed failed, see ${out%.json}.txt" >&2; exit 1; }
    fi
    files+=("$out")
  done
  runs+=(--run "$name${ref:+-$n}=$(IFS=,; echo "${files[*]}")")
done
first=${runs[1]%%=*}
"$wk" eval compare "${runs[@]}" --baseline "$first" --json "$work/compare.json"

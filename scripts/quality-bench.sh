#!/usr/bin/env bash
# Model quality on camera models training never saw: trains each given config (unless its
# final checkpoint exists), evaluates its newest checkpoint on the three fixed splice
# benchmarks (`worker splice-bench make --seed 0|1|2` of the held-out side of `dataloader
# split --seed 0`), then sets every model side by side with 95% bootstrap intervals over
# images and paired differences from the first config (`worker eval compare`), and runs the
# three linear probes of the frozen image tower on the held-out cameras (`worker probe exif`
# and `radial` on work/holdout.txt, `probe splice` on benchmark seed 0) for every model and
# for a randomly initialised tower of the first config's model. Figures go to BENCHMARKS.md
# ("Model quality").
#
#   scripts/quality-bench.sh CONFIG [CONFIG...]
#
# Needs the packed split and the benchmarks (`./run.sh` makes work/train-packed,
# work/holdout.txt; the benchmarks are made here when missing). WORK (default work/quality)
# holds the evaluations: <config name>-s<seed>.json, <config name>-probe-<kind>.json.
# CHECKPOINT_<n>=REF evaluates another checkpoint for config number n (1-based), e.g. an
# exported model.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 1 ]] || { sed -n 2,18p "$0" >&2; exit 2; }
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

# The three probes of one model (the arguments select it), unless already run.
probes() {
  local name=$1 kind out data
  shift
  for kind in exif radial splice; do
    out=$work/$name-probe-$kind.json
    [[ -f $out ]] && continue
    if [[ $kind == splice ]]; then data=(--data work/splice-bench-s0); else data=(--photos work/holdout.txt); fi
    "$wk" probe "$kind" "$@" "${data[@]}" --json "$out" >"${out%.json}.txt" 2>&1 \
      || { echo "quality-bench.sh: probe $kind of $name failed, see ${out%.json}.txt" >&2; exit 1; }
  done
}

runs=()
names=()
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
  probes "$name${ref:+-$n}" --config "$config" ${ref:+--checkpoint "$ref"}
  names+=("$name${ref:+-$n}")
done
first=${runs[1]%%=*}
"$wk" eval compare "${runs[@]}" --baseline "$first" --json "$work/compare.json"
random=$(basename "$1" .toml)-random-init
probes "$random" --config "$1" --random-init
python3 - "$work" "${names[@]}" "$random" <<'EOF'
import json, sys
work, names = sys.argv[1], sys.argv[2:]
print("\nLinear probes of the frozen image tower, held-out cameras (accuracy / majority baseline):\n")
print("| model | EXIF tags, mean | radial distortion | real vs spliced |")
print("|---|---|---|---|")
for name in names:
    r = {k: json.load(open(f"{work}/{name}-probe-{k}.json")) for k in ("exif", "radial", "splice")}
    exif = f"{r['exif']['mean_accuracy']:.3f} / {r['exif']['mean_majority_baseline']:.3f}"
    other = [f"{r[k]['probe']['accuracy']:.3f} / {r[k]['probe']['majority_baseline']:.3f}" for k in ("radial", "splice")]
    print(f"| {name} | {exif} | {other[0]} | {other[1]} |")
EOF

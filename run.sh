#!/usr/bin/env bash
# The main job: split a photo folder by camera model, pack both sides into webdataset
# shards, train configs/cpu-small.toml on the training side as a coordinated job
# (`coordinator launch --nodes 2 --local --eval-agents 1`: a coordinator, two local worker
# nodes with one CPU training process each, data-parallel, and an evaluation agent), and
# end with the evaluations of the final checkpoint on the camera models training never
# saw: zero-shot splice detection and localisation on a splice benchmark made from their
# photos, and zero-shot retrieval.
#
#   ./run.sh [PHOTO_DIR]
#
# PHOTO_DIR defaults to the real camera photos in ../shared/data/cameras/images when they
# are there, else photos from simulated cameras are generated first. Outputs go under
# $WORK_DIR (default ./work). Set OUT_URL to put datasets and checkpoints in object storage
# instead (s3://bucket/prefix with AWS_* variables and, for S3-compatible servers,
# AWS_ENDPOINT_URL). Running it again continues (or just re-evaluates) the same run; delete
# the checkpoints to start over. CONFIG picks another training config, NODES the number of
# local worker nodes. While it trains, the dashboard URL that launch prints shows the job
# (sign in with work/launch-<config>/tokens/operator.token); TensorBoard reads
# work/runs/<config>/checkpoints/tensorboard.
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup.sh
cargo build --release -p dataloader -p worker -p coordinator
dl=target/release/dataloader
wk=target/release/worker
work=${WORK_DIR:-work}
config=${CONFIG:-configs/cpu-small.toml}
mkdir -p "$work"

if [[ $# -ge 1 ]]; then
  photos=$1
  [[ -d $photos ]] || { echo "run.sh: photo folder '$photos' does not exist" >&2; exit 2; }
elif [[ -d ../shared/data/cameras/images ]]; then
  photos=../shared/data/cameras/images
else
  photos=$work/synth
  if [[ ! -f $photos/cameras.csv ]]; then
    "$dl" generate --out "$photos" --count 64 --width 2000 --height 1500 --seed 1
  fi
fi

out=${OUT_URL:-$work}
"$dl" split "$photos" --holdout-fraction 0.2 --seed 0 \
  --train-list "$work/train.txt" --holdout-list "$work/holdout.txt"
for side in train holdout; do
  if [[ $out != *://* ]]; then rm -rf "$out/$side-packed"; fi
  "$dl" pack "$work/$side.txt" --out "$out/$side-packed" --zstd --shard-size-mb 32
done

# Cross-camera splices of the held-out photos (and authentic controls), for the eval suite.
rm -rf "$work/splice-bench"
"$wk" splice-bench make --photos "$work/holdout.txt" --out "$work/splice-bench" --count 40 --seed 0

# The job's config: the chosen one with this run's dataset, checkpoint and eval locations.
name=$(basename "$config" .toml)
run=$out/runs/$name
job=$work/$name-job.toml
sed -e "/^\[data\]/,/^\[/ s#^url = .*#url = \"$out/train-packed\"#" \
    -e "/^\[checkpoint\]/,/^\[/ s#^url = .*#url = \"$run/checkpoints\"#" \
    -e "s#^path = \"work/splice-bench\"#path = \"$work/splice-bench\"#" \
    -e "s#^data = \"work/holdout-packed\"#data = \"$out/holdout-packed\"#" "$config" > "$job"
rm -rf "$work/launch-$name"
# The dashboard and Prometheus metrics on a free loopback port (launch prints the URLs;
# METRICS_LISTEN=127.0.0.1:9464 picks the port).
target/release/coordinator launch --nodes "${NODES:-2}" --local --eval-agents 1 \
  --config "$job" --work-dir "$work/launch-$name" --metrics-listen "${METRICS_LISTEN:-127.0.0.1:0}"

#!/usr/bin/env bash
# The main job. Today: pack a photo folder into webdataset shards and stream training
# batches from them, printing what was seen.
#
#   ./run.sh [PHOTO_DIR]
#
# Without PHOTO_DIR it generates photos from simulated cameras first. Outputs go under
# $WORK_DIR (default ./work). Set OUT_URL to pack into object storage instead
# (s3://bucket/prefix with AWS_* variables and, for S3-compatible servers, AWS_ENDPOINT_URL).
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup.sh
cargo build --release -p dataloader
dl=target/release/dataloader
work=${WORK_DIR:-work}
mkdir -p "$work"

if [[ $# -ge 1 ]]; then
  photos=$1
  [[ -d $photos ]] || { echo "run.sh: photo folder '$photos' does not exist" >&2; exit 2; }
else
  photos=$work/synth
  if [[ ! -f $photos/cameras.csv ]]; then
    "$dl" generate --out "$photos" --count 64 --width 2000 --height 1500 --seed 1
  fi
fi

out=${OUT_URL:-$work/dataset}
if [[ $out != *://* ]]; then rm -rf "$out"; fi
"$dl" pack "$photos" --out "$out" --zstd --shard-size-mb 32
"$dl" inspect "$out" --samples 2
for rank in 0 1; do
  "$dl" stream "$out" --batch-size 16 --world 2 --rank "$rank" --seed 0 --epoch 0 --max-batches 2
done

#!/usr/bin/env bash
# Whole-sample fetch against ranged fetch (head + the byte ranges a crop needs), from a
# real S3-compatible server (moto), for 1 MP and 12 MP photos, in one run: bytes and
# requests per sample and patches/s, as `dataloader bench --fetch whole,ranged,auto`
# prints them. Figures go to BENCHMARKS.md ("Reading only what a crop needs").
#
#   scripts/bench-ranged-reads.sh [PHOTOS_12MP] [PHOTOS_1MP]     (defaults: 48 and 256)
#
# Needs scripts/setup.sh (for .venv: moto and the tokenizer vocabulary) and a release build
# (`cargo build --release -p dataloader`).
set -euo pipefail
cd "$(dirname "$0")/.."

n12=${1:-48}
n1=${2:-256}
bin=target/release/dataloader
[[ -x $bin ]] || { echo "bench-ranged-reads.sh: build first: cargo build --release -p dataloader" >&2; exit 1; }
S3_BUCKET=datasets source scripts/s3-background.sh

for size in "12mp 4000 3000 $n12" "1mp 1152 864 $n1"; do
  read -r name w h n <<<"$size"
  echo "== $name: $n photos of ${w}x${h}"
  "$bin" generate --out "$work/$name" --count "$n" --width "$w" --height "$h" --seed 7 >/dev/null
  "$bin" pack "$work/$name" --out "s3://datasets/$name" --shard-size-mb "${SHARD_MB:-8}"
  batches=$(( n / 16 ))
  "$bin" bench "s3://datasets/$name" --batches "$batches" --batch-size 16 --threads 2 \
    --prefetch 32 --fetch whole,ranged,auto
done

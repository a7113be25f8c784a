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
work=$(mktemp -d)
log=$work/s3.log
scripts/s3-server.sh datasets >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
for _ in $(seq 1 300); do
  grep -q '^S3 server at' "$log" && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n1)
[[ -n $endpoint ]] || { cat "$log" >&2; echo "bench-ranged-reads.sh: no S3 server" >&2; exit 1; }
export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export RUST_LOG=${RUST_LOG:-warn}

for size in "12mp 4000 3000 $n12" "1mp 1152 864 $n1"; do
  read -r name w h n <<<"$size"
  echo "== $name: $n photos of ${w}x${h}"
  "$bin" generate --out "$work/$name" --count "$n" --width "$w" --height "$h" --seed 7 >/dev/null
  "$bin" pack "$work/$name" --out "s3://datasets/$name" --shard-size-mb "${SHARD_MB:-8}"
  batches=$(( n / 16 ))
  "$bin" bench "s3://datasets/$name" --batches "$batches" --batch-size 16 --threads 2 \
    --prefetch 32 --fetch whole,ranged,auto
done

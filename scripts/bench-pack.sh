#!/usr/bin/env bash
# `dataloader pack` throughput on generated 12 MP and 1 MP photos, read from a local
# folder and from JPEG objects in a real S3-compatible server (moto), written to that
# server: photos/s, and photos per CPU-second of the packer (its user + system time over
# all threads: the per-core figure). Figures go to BENCHMARKS.md ("Packing throughput").
#
#   scripts/bench-pack.sh [PHOTOS_12MP] [PHOTOS_1MP]     (defaults: 48 and 384)
#
# Needs scripts/setup.sh (.venv with moto and boto3) and a release build
# (`cargo build --release -p dataloader`).
set -euo pipefail
cd "$(dirname "$0")/.."

n12=${1:-48}
n1=${2:-384}
bin=target/release/dataloader
[[ -x $bin ]] || { echo "bench-pack.sh: build first: cargo build --release -p dataloader" >&2; exit 1; }
S3_BUCKET=datasets source scripts/s3-background.sh

# Runs `dataloader pack ARGS...` and prints wall time, photos/s and photos per CPU-second.
timed_pack() {
  local label=$1 photos=$2
  shift 2
  local t0 t1 cpu0 cpu1
  t0=$(date +%s.%N)
  /usr/bin/env time -f '%U %S' -o "$work/cpu" "$bin" pack "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  t1=$(date +%s.%N)
  read -r cpu0 cpu1 <"$work/cpu"
  python3 - "$label" "$photos" "$t0" "$t1" "$cpu0" "$cpu1" <<'EOF'
import sys
label, n, t0, t1, u, s = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
wall, cpu = t1 - t0, u + s
print(f"{label}: {n} photos in {wall:.1f} s: {n / wall:.1f} photos/s, "
      f"{n / cpu:.1f} photos per CPU-second ({cpu:.1f} CPU-s)")
EOF
}

for size in "12mp 4000 3000 $n12" "1mp 1152 864 $n1"; do
  read -r name w h n <<<"$size"
  echo "== $name: $n photos of ${w}x${h}"
  "$bin" generate --out "$work/$name" --count "$n" --width "$w" --height "$h" --seed 11 >/dev/null
  .venv/bin/python - "$work/$name" "$name" <<'EOF'
import os, sys, boto3
from concurrent.futures import ThreadPoolExecutor
folder, name = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3")
files = sorted(f for f in os.listdir(folder) if f.endswith(".jpg"))
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda f: s3.upload_file(os.path.join(folder, f), "datasets", f"photos-{name}/{f}"), files))
EOF
  timed_pack "$name from a local folder" "$n" "$work/$name" --out "s3://datasets/from-folder-$name"
  timed_pack "$name from S3 objects" "$n" "s3://datasets/photos-$name" --out "s3://datasets/from-s3-$name"
done
echo "cores: $(nproc)"

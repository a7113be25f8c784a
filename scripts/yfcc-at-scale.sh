#!/usr/bin/env bash
# The YFCC100M path at scale, end to end, against a real S3-compatible server (moto):
# a YFCC-style corpus of LINES metadata lines (photos of mixed sizes, videos, thin EXIF,
# missing and truncated photos, duplicates; `dataloader generate-yfcc`), packed by two
# parts at once, part 1 SIGKILLed at a random moment and rerun, merged, every shard
# verified against the corpus's expected outcome, and a few training steps of
# configs/cpu-small.toml on the merged dataset. The test suite runs the same on 330 lines
# (dataloader/tests/yfcc_pack.rs); this is the large run.
#
#   scripts/yfcc-at-scale.sh [LINES]       (default 21700: about 20,000 photos to pack)
#
# Needs scripts/setup.sh and release builds (`cargo build --release -p dataloader -p worker`).
set -euo pipefail
cd "$(dirname "$0")/.."

lines=${1:-21700}
bin=target/release
for b in dataloader worker; do
  [[ -x $bin/$b ]] || { echo "yfcc-at-scale.sh: build first: cargo build --release -p dataloader -p worker" >&2; exit 1; }
done
S3_BUCKET=yfcc source scripts/s3-background.sh
say() { echo "[$(date +%T)] $*"; }

corpus=s3://yfcc/corpus
out=s3://yfcc/packed
say "generating $lines lines under $corpus"
"$bin/dataloader" generate-yfcc --out "$corpus" --lines "$lines" --seed 1
pack() {
  # exec: a part run in the background is the dataloader process itself, so the SIGKILL
  # below reaches it (not a subshell that would leave it running).
  exec "$bin/dataloader" pack --out "$out" --yfcc-dataset "$corpus/yfcc100m_dataset.bz2" \
    --yfcc-exif "$corpus/yfcc100m_exif.bz2" --photos "$corpus/data/images" \
    --tags-from-corpus --block-size 1000 --shard-size-mb 64 --part "$1"
}
say "packing with two parts at once"
start=$(date +%s)
(pack 0/2 >"$work/part0.log" 2>&1) &
p0=$!
(pack 1/2 >"$work/part1.log" 2>&1) &
p1=$!
delay=$(( 20 + RANDOM % 40 ))
sleep "$delay"
kill -KILL "$p1" 2>/dev/null && say "part 1 SIGKILLed after $delay s" || say "part 1 had already ended"
wait "$p1" 2>/dev/null || true
wait "$p0" || { cat "$work/part0.log"; exit 1; }
say "$(grep '^part' "$work/part0.log")"
if "$bin/dataloader" merge-manifests "$out" >"$work/merge-early.log" 2>&1; then
  say "merge before the rerun succeeded: part 1 had finished before the kill"
else
  say "merge before the rerun refused: $(grep -o 'parts not finished[^;]*' "$work/merge-early.log" | head -n1)"
fi
say "rerunning part 1"
(pack 1/2) | grep '^part' 
"$bin/dataloader" merge-manifests "$out"
say "packed in $(( $(date +%s) - start )) s, kill and rerun included"

say "verifying every shard and the packed photos against the corpus"
"$bin/dataloader" inspect "$out" --verify | tail -n 3
.venv/bin/python - "$corpus" "$out" <<'EOF'
import json, sys, boto3
s3 = boto3.client("s3")
def get(url, name):
    bucket, _, prefix = url[5:].partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read())
truth, manifest = get(sys.argv[1], "truth.json"), get(sys.argv[2], "manifest.json")
keys = []
for shard in manifest["shards"]:
    keys += [s["key"] for s in get(sys.argv[2], shard["index"])["samples"]]
assert keys == truth["packed"], "packed photos differ from the corpus's"
assert manifest["skipped"] == truth["skipped"], (manifest["skipped"], truth["skipped"])
print(f"{len(keys)} photos packed as the corpus says, {len(manifest['shards'])} shards; "
      f"skipped as expected: {manifest['skipped']}")
EOF

say "training configs/cpu-small.toml for 6 steps on the packed dataset"
sed -e "s|^url = \"work/train-packed\"|url = \"$out\"|" \
  -e "s|^url = \"work/runs/cpu-small/checkpoints\"|url = \"$work/ckpt\"|" configs/cpu-small.toml >"$work/train.toml"
[[ $(grep -c -e "url = \"$out\"" -e "url = \"$work/ckpt\"" "$work/train.toml") == 2 ]] ||
  { echo "could not point configs/cpu-small.toml at $out" >&2; exit 1; }
RUST_LOG=info "$bin/worker" --log-format text train --config "$work/train.toml" --stop-at-step 6 2>&1 |
  grep -E "step|epoch" | tail -n 4
say "done"

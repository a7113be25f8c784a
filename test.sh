#!/usr/bin/env bash
# The test suite: installs what it needs (scripts/setup.sh, and scripts/setup-cluster-tools.sh
# for kustomize and Slurm), checks formatting and lints (a file `cargo fmt` would change or
# a clippy warning fails the suite, in the CPU and the GPU build), then runs every test of
# the workspace. Tests that need the real camera photos look for ../shared/data/cameras (or
# $CAMERAS_DIR) and fail under CI=true when it is missing. Then the GPU build's checks.
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup.sh
scripts/setup-cluster-tools.sh
# A one-off build (CI, a fresh clone) gains nothing from incremental state, which would
# add gigabytes to the build folder.
if [[ ${CI:-} == true ]]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --features worker/cuda -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads "${TEST_THREADS:-2}"
# The GPU build: compiled and linked against the wheel's CUDA libraries, checked without a
# GPU (GPU-only tests are ignored here; the GPU kit's gpu-check runs them on a GPU node),
# and the GPU kit made from it, run in a node-like environment (tests/gpu_kit.rs).
PROFILE=dev XZ_LEVEL=-1 scripts/gpu-kit target/gpu-kit-dev
cargo test -p worker --features cuda --test gpu_build --test gpu_kit

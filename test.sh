#!/usr/bin/env bash
# The test suite: installs what it needs (scripts/setup.sh), then runs every test of the
# workspace. Tests that need the real camera photos look for ../shared/data/cameras (or
# $CAMERAS_DIR) and fail under CI=true when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads "${TEST_THREADS:-2}"

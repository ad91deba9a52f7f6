#!/usr/bin/env bash
# The README's test command: set up, build, run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh "$@"
BUILD_DIR=${KVPOOL_BUILD_DIR:-build}
# Real-process tests are RUN_SERIAL; the rest share the two cores.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 300

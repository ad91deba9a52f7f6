#!/usr/bin/env bash
# Configures and builds kvpool with Ninja into $KVPOOL_BUILD_DIR (default: build/).
# Extra arguments go to CMake, e.g. scripts/build.sh -DKVPOOL_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KVPOOL_BUILD_DIR:-build}
BUILD_TYPE=${KVPOOL_BUILD_TYPE:-RelWithDebInfo}
JOBS=${KVPOOL_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"

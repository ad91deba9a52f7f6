#!/usr/bin/env bash
# Configures (first time) and builds one of the clang-14 sanitizer builds; used by
# scripts/ci-sanitizers.sh and scripts/fuzz.sh (docs/development.md "Sanitizer builds").
#
#   scripts/clang-build.sh asan [TARGET...]   build-clang/: ASan + UBSan, and the libFuzzer targets
#   scripts/clang-build.sh tsan [TARGET...]   build-tsan/:  TSan
#
# Both are -O1 with line tables only and link with lld: quick to build, readable stacks.
# KVPOOL_ASAN_BUILD_DIR / KVPOOL_TSAN_BUILD_DIR move them; KVPOOL_JOBS sets ninja's -j.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/clang-build.sh asan|tsan [TARGET...]}
shift
case $kind in
  asan) dir=${KVPOOL_ASAN_BUILD_DIR:-build-clang}
        flags=(-DKVPOOL_SANITIZE=address,undefined -DKVPOOL_FUZZ=ON) ;;
  tsan) dir=${KVPOOL_TSAN_BUILD_DIR:-build-tsan}
        flags=(-DKVPOOL_SANITIZE=thread) ;;
  *) echo "clang-build.sh: unknown build '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
# Sanitizer builds leave out the CUDA runtime: libcudart_static is an uninstrumented blob, and
# without a GPU (CI) the GPU tier's logic runs on the emulated device, which these builds cover.
flags+=(-DKVPOOL_WITH_CUDA=OFF)
if [[ ! -f $dir/build.ninja ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_{EXE,SHARED,MODULE}_LINKER_FLAGS=-fuse-ld=lld "${flags[@]}"
fi
ninja -C "$dir" -j "${KVPOOL_JOBS:-$(nproc)}" "$@"

#!/usr/bin/env bash
# Installs kvpool into a temporary prefix and builds examples/consumer against it with
# find_package(kvpool), as an inference server would; then runs it.
#   consumer_test.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
# SANITIZERS (e.g. address,undefined) must match the kvpool build: a sanitized libkvpool only
# loads into a program built with the same runtime.
set -euo pipefail
build_dir=$1
source_dir=$2
sanitize=${3:-}
extra=()
if [ -n "$sanitize" ]; then
  extra=(-DCMAKE_CXX_FLAGS="-fsanitize=$sanitize" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=$sanitize")
fi
prefix=$(mktemp -d /tmp/kvpool-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix/usr" >/dev/null
test -f "$prefix/usr/include/kvpool/client.h"
test -f "$prefix/usr/lib/cmake/kvpool/kvpoolConfig.cmake" || test -f "$prefix"/usr/lib/*/cmake/kvpool/kvpoolConfig.cmake
# Public headers must not leak gRPC, protobuf or absl.
if grep -rlE '#include [<"](grpc|google/protobuf|absl)' "$prefix/usr/include/kvpool"; then
  echo "public headers include a private dependency" >&2
  exit 1
fi
cmake -S "$source_dir/examples/consumer" -B "$prefix/consumer-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix/usr" "${extra[@]}" >/dev/null
cmake --build "$prefix/consumer-build" >/dev/null
"$prefix/consumer-build/kvpool_consumer"
"$prefix/usr/bin/kvpoolctl" --help >/dev/null
echo "consumer built and ran against the installed kvpool"

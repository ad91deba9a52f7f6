#!/usr/bin/env bash
# Installs the Debian 12 packages kvpool needs to build and test. Idempotent and
# non-interactive: packages already present are skipped; apt runs only when something is missing.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config
  # control plane
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  # data plane (UCX; ucx-utils brings ucx_perftest, the transfer benchmarks' reference)
  libucx-dev ucx-utils
  # hashing, CLI parsing, JSON output
  libxxhash-dev libcli11-dev nlohmann-json3-dev
  # SSD tier (src/storage)
  librocksdb-dev
  # Prometheus /metrics on kvpoold and kvpool-scheduler
  prometheus-cpp-dev
  # tests: Catch2; openssl makes the TLS tests' certificates; systemd-analyze checks the units
  catch2 openssl systemd
  # tests/deploy: dpkg-shlibdeps computes the .deb's Depends (CPack)
  dpkg-dev
  # kvpool-bench replay --plot draws its chart with gnuplot
  gnuplot-nox
  # fuzzing, sanitizer and -Wthread-safety builds (clang's libFuzzer and runtimes)
  clang-14 libclang-rt-14-dev lld-14
)

# npm tools of tests/deploy (the Kubernetes manifests' schema check), pinned, into a
# project-local folder that .gitignore covers. Without node/npm the test skips.
# prometheus-operator 4.4.x is the release built on kubernetes-models 4's base (ServiceMonitor).
DEPLOY_TOOLS=(kubernetes-models@4.5.1 yaml@2.9.1 @kubernetes-models/prometheus-operator@4.4.4)
tools_dir="$(cd "$(dirname "$0")/.." && pwd)/.cache/deploy-tools"
if command -v npm >/dev/null; then
  have=$(cd "$tools_dir" 2>/dev/null && node -e 'for (const p of ["kubernetes-models", "yaml",
    "@kubernetes-models/prometheus-operator"])
    process.stdout.write(p + "@" + require("./node_modules/" + p + "/package.json").version + " ")' \
    2>/dev/null || true)
  if [ "$have" != "${DEPLOY_TOOLS[*]} " ]; then
    echo "setup: npm installing ${DEPLOY_TOOLS[*]} into $tools_dir"
    mkdir -p "$tools_dir"
    npm install --prefix "$tools_dir" --no-audit --no-fund --no-save --loglevel=error \
      "${DEPLOY_TOOLS[@]}"
  fi
else
  echo "setup: no npm: tests/deploy's Kubernetes schema check will be skipped"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: refresh them once, then install.
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# The README's main job: set up, build, start a local kvpoold on loopback, run a short
# prefix-caching workload against it, show the node's status, and stop the daemon cleanly; then
# replay a generated multi-tenant trace through a local cluster (kvpool-scheduler and 4 kvpoold
# on loopback, 8 simulated instances) once per caching mode and routing policy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD_DIR=${KVPOOL_BUILD_DIR:-build}

work=$(mktemp -d /tmp/kvpool-demo.XXXXXX)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting kvpoold on 127.0.0.1 (port chosen by the kernel)"
"$BUILD_DIR/daemon/kvpoold" --listen=127.0.0.1:0 --port-file="$work/port" \
  --data-dir="$work/data" --capacity=256MiB --node-id=demo-node >"$work/kvpoold.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 200); do
  [ -s "$work/port" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/kvpoold.log"; echo "kvpoold exited" >&2; exit 1; }
  sleep 0.05
done
[ -s "$work/port" ] || { cat "$work/kvpoold.log"; echo "kvpoold did not start" >&2; exit 1; }
address="127.0.0.1:$(cat "$work/port")"
echo "   kvpoold is serving at $address"
echo

echo "== workload: shared system prompt, three multi-turn chats"
"$BUILD_DIR/examples/kvpool-demo" --address "$address"
echo

echo "== kvpoolctl status"
"$BUILD_DIR/client/kvpoolctl/kvpoolctl" --address "$address" status
echo

echo "== stopping kvpoold (SIGTERM)"
kill -TERM "$daemon_pid"
wait "$daemon_pid" && echo "   kvpoold stopped cleanly"
daemon_pid=""
echo
echo "daemon log:"
sed 's/^/   /' "$work/kvpoold.log"
echo

echo "== trace replay on a local cluster: kvpool-scheduler + 4 kvpoold, 8 instances"
echo "   (a generated trace; pass --trace FILE to kvpool-bench replay for a Mooncake trace)"
"$BUILD_DIR/bench/kvpool-bench" replay --gen-requests 400 --nodes 4 --instances 8 \
  --dir "$work/replay"

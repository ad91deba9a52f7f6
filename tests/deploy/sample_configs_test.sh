#!/usr/bin/env bash
# Starts each daemon with its sample config (deploy/*.toml), overriding only what a test host
# must (loopback port 0, a small pool, a temporary data dir), and checks that it parses the
# file, serves (writes its port file) and stops cleanly on SIGTERM. A key the daemon does not
# know or a value it refuses makes it exit with code 2 and fails the test.
# Usage: sample_configs_test.sh SOURCE_DIR KVPOOLD KVPOOL_SCHEDULER
set -euo pipefail
source_dir=$1
kvpoold=$2
scheduler=$3
work=$(mktemp -d /tmp/kvpool-configs.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

run() {  # NAME BINARY ARGS...
  local name=$1 binary=$2; shift 2
  "$binary" "$@" --listen 127.0.0.1:0 --port-file "$work/$name.port" >"$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    [ -s "$work/$name.port" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || true
      pid=
      echo "FAIL: $name exited with its sample config:" >&2
      cat "$work/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$work/$name.port" ] || { echo "FAIL: $name did not serve within 20 s" >&2; cat "$work/$name.log" >&2; exit 1; }
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || { echo "FAIL: $name exited $rc after SIGTERM" >&2; cat "$work/$name.log" >&2; exit 1; }
  echo "$name: served on port $(cat "$work/$name.port") with deploy/$name.toml, stopped cleanly"
}

small=(--capacity 64MiB --slab 4MiB --data-dir "$work/data" --no-data-plane --node-id sample-config-test)
# The sample's SSD tier is sized for a real node; a test host gets a small one.
if "$kvpoold" --help | grep -q -- '--disk-capacity'; then small+=(--disk-capacity 64MiB); fi
run kvpoold "$kvpoold" --config "$source_dir/deploy/kvpoold.toml" "${small[@]}"
run kvpool-scheduler "$scheduler" --config "$source_dir/deploy/kvpool-scheduler.toml"

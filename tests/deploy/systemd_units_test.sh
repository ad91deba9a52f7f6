#!/usr/bin/env bash
# Checks deploy/systemd without installing anything or needing a running systemd:
#   - renders the unit templates the way `cmake --install` does, but pointing at the build
#     tree's binaries (systemd-analyze verify needs ExecStart to exist and be executable);
#   - `systemd-analyze verify` must print nothing, as root and as an unprivileged user;
#   - `systemd-analyze security --offline` must rate each unit at or below its bound;
#   - the directives the deployment relies on are present (memlock, hardening, restart, user);
#   - the sysusers.d file parses (systemd-sysusers --dry-run into an empty root);
#   - every flag in ExecStart and every key of the sample configs (commented examples too)
#     exists in the daemon's --help.
# Usage: systemd_units_test.sh SOURCE_DIR KVPOOLD KVPOOL_SCHEDULER
set -euo pipefail
source_dir=$1
kvpoold=$2
scheduler=$3

for tool in systemd-analyze systemd-sysusers; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (Debian package systemd)"; exit 77; }
done

work=$(mktemp -d /tmp/kvpool-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

mkdir -p "$work/bin" "$work/units"
ln -s "$(realpath "$kvpoold")" "$work/bin/kvpoold"
ln -s "$(realpath "$scheduler")" "$work/bin/kvpool-scheduler"
cmake -DKVPOOL_UNIT_BINDIR="$work/bin" -DKVPOOL_UNIT_CONFDIR=/etc/kvpool \
      -DKVPOOL_UNIT_DOCDIR=/usr/share/doc/kvpool -DKVPOOL_UNIT_OUT_DIR="$work/units" \
      -P "$source_dir/deploy/cmake/render_units.cmake"
units=("$work/units/kvpoold.service" "$work/units/kvpool-scheduler.service")
for u in "${units[@]}"; do test -f "$u" || fail "not rendered: $u"; done

# verify: any output (unknown key, bad value, missing binary) is a failure.
check_verify() {
  local who=$1; shift
  local out
  if ! out=$("$@" systemd-analyze verify --man=no "${units[@]}" 2>&1) || [ -n "$out" ]; then
    fail "systemd-analyze verify as $who:"$'\n'"$out"
  fi
}
check_verify root env
if [ "$(id -u)" -eq 0 ]; then
  check_verify nobody setpriv --reuid=nobody --regid=nogroup --clear-groups
fi

# Exposure bounds (systemd-analyze's 0-10 scale, --threshold in tenths). kvpoold keeps /dev,
# AF_NETLINK/AF_IB and a memlock limit of infinity for RDMA, so its bound is higher.
declare -A bound=([kvpoold]=45 [kvpool-scheduler]=20)
for u in "${units[@]}"; do
  name=$(basename "$u" .service)
  if ! out=$(systemd-analyze security --offline=yes --threshold="${bound[$name]}" "$u" 2>&1); then
    fail "$name: exposure above $((bound[$name] / 10)).$((bound[$name] % 10)): $(echo "$out" | tail -1)"
  else
    echo "$name: $(echo "$out" | tail -1)"
  fi
done

# Directives the deployment relies on.
require() {
  local unit=$1; shift
  for line in "$@"; do
    grep -qxF "$line" "$work/units/$unit.service" || fail "$unit.service lacks '$line'"
  done
}
common=(Type=exec User=kvpool Group=kvpool Restart=on-failure NoNewPrivileges=yes
        ProtectSystem=strict ProtectHome=yes PrivateTmp=yes CapabilityBoundingSet=
        WantedBy=multi-user.target)
require kvpoold "${common[@]}" LimitMEMLOCK=infinity StateDirectory=kvpool \
  ReadWritePaths=/var/lib/kvpool \
  "ExecStart=$work/bin/kvpoold --config /etc/kvpool/kvpoold.toml"
require kvpool-scheduler "${common[@]}" PrivateDevices=yes \
  "ExecStart=$work/bin/kvpool-scheduler --config /etc/kvpool/kvpool-scheduler.toml"
# Type=notify only once the daemons call sd_notify.
if grep -rqs sd_notify "$source_dir/daemon"; then
  fail "the daemons call sd_notify now: switch the units to Type=notify"
fi

# sysusers.d: the kvpool user, checked against an empty root.
mkdir -p "$work/root/etc"
if ! out=$(systemd-sysusers --dry-run --root="$work/root" "$source_dir/deploy/systemd/kvpool.sysusers" 2>&1) ||
   ! grep -q "Creating user 'kvpool'" <<<"$out"; then
  fail "kvpool.sysusers:"$'\n'"$out"
fi

# Flags: ExecStart arguments and the sample configs' keys against the real --help.
long_flags() { "$1" --help | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sed 's/^--//' | sort -u; }
check_flags() {  # DAEMON_BINARY WHERE FLAG...
  local binary=$1 where=$2; shift 2
  local known
  known=$(long_flags "$binary" || true)
  grep -qx config <<<"$known" || fail "$binary --help lists no --config"
  for flag in "$@"; do
    grep -qxF -- "$flag" <<<"$known" || fail "$where: $(basename "$binary") has no --$flag"
  done
}
for pair in "kvpoold:$kvpoold" "kvpool-scheduler:$scheduler"; do
  name=${pair%%:*}
  binary=${pair#*:}
  mapfile -t flags < <(grep '^ExecStart=' "$work/units/$name.service" |
                       grep -oE -- ' --[a-z0-9-]+' | sed 's/^ --//')
  check_flags "$binary" "$name.service" "${flags[@]}"
  # `key = value` lines of the sample config, commented-out examples included: an example
  # an operator uncomments must be a real flag too.
  mapfile -t keys < <(sed -nE 's/^[[:space:]#]*([A-Za-z0-9_-]+)[[:space:]]*=.*/\1/p' \
                      "$source_dir/deploy/$name.toml")
  [ "${#keys[@]}" -gt 0 ] || fail "deploy/$name.toml has no keys"
  check_flags "$binary" "deploy/$name.toml" "${keys[@]}"
done

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "units verified (root and nobody), exposure within bounds, flags and config keys exist"

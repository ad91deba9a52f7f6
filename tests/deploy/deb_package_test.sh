#!/usr/bin/env bash
# Builds the .deb with CPack from an existing build tree and checks it as dpkg sees it:
#   - the file list (`dpkg-deb -c`): binaries, libkvpool, headers, CMake package, systemd units,
#     sysusers.d, sample configs, docs;
#   - the control fields: Depends from dpkg-shlibdeps (gRPC, protobuf, UCX), conffiles, and
#     maintainer scripts that `sh -n` accepts;
#   - the installed units name /usr/bin and /etc/kvpool.
# Then `cmake --install --prefix P` into a temporary prefix: the units name P, the configs land
# in P/etc/kvpool, and a second install keeps an edited config.
# Usage: deb_package_test.sh BUILD_DIR WITH_BENCH(ON|OFF)
set -euo pipefail
build_dir=$(realpath "$1")
with_bench=${2:-ON}

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done
work=$(mktemp -d /tmp/kvpool-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

if ! cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1; then
  cat "$work/cpack.log" >&2
  echo "FAIL: cpack" >&2
  exit 1
fi
debs=("$work"/out/kvpool_*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] || { echo "FAIL: no single kvpool_*.deb in $work/out" >&2; exit 1; }
deb=${debs[0]}
echo "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"

# ---- file list ----
dpkg-deb -c "$deb" | sed -E 's/ -> .*//' | awk '{print $6}' | sed 's|^\./|/|' >"$work/files"
expect=(/usr/bin/kvpoold /usr/bin/kvpool-scheduler /usr/bin/kvpoolctl
        /usr/lib/systemd/system/kvpoold.service /usr/lib/systemd/system/kvpool-scheduler.service
        /usr/lib/sysusers.d/kvpool.conf /etc/kvpool/kvpoold.toml /etc/kvpool/kvpool-scheduler.toml
        /usr/include/kvpool/client.h /usr/share/doc/kvpool/operations.md)
[ "$with_bench" = ON ] && expect+=(/usr/bin/kvpool-bench)
for f in "${expect[@]}"; do
  grep -qxF "$f" "$work/files" || fail "package lacks $f"
done
grep -qE '^/usr/lib/([a-z0-9_-]+/)?libkvpool\.so' "$work/files" || fail "package lacks libkvpool.so"
grep -qE '^/usr/lib/([a-z0-9_-]+/)?cmake/kvpool/kvpoolConfig\.cmake$' "$work/files" ||
  fail "package lacks the CMake package (kvpoolConfig.cmake)"
# Nothing outside the FHS places a package may use, nothing from the build tree.
if grep -vE '^/(usr|etc)(/|$)' "$work/files" | grep -v '^/$'; then fail "files outside /usr and /etc"; fi
if grep -q "$build_dir" "$work/files"; then fail "build-tree paths in the package"; fi

# ---- control ----
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libgrpc++ libprotobuf libucx libc6; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (dpkg-shlibdeps)"
done
[ "$(dpkg-deb -f "$deb" Package)" = kvpool ] || fail "Package is not kvpool"
dpkg-deb -e "$deb" "$work/control"
for script in postinst prerm postrm; do
  test -x "$work/control/$script" || { fail "no executable $script"; continue; }
  sh -n "$work/control/$script" || fail "$script: shell syntax"
done
for conf in /etc/kvpool/kvpoold.toml /etc/kvpool/kvpool-scheduler.toml; do
  grep -qxF "$conf" "$work/control/conffiles" 2>/dev/null || fail "$conf is not a conffile"
done

# ---- installed units ----
dpkg-deb -x "$deb" "$work/root"
grep -qxF 'ExecStart=/usr/bin/kvpoold --config /etc/kvpool/kvpoold.toml' \
  "$work/root/usr/lib/systemd/system/kvpoold.service" || fail "kvpoold.service ExecStart"
grep -qxF 'ExecStart=/usr/bin/kvpool-scheduler --config /etc/kvpool/kvpool-scheduler.toml' \
  "$work/root/usr/lib/systemd/system/kvpool-scheduler.service" || fail "kvpool-scheduler.service ExecStart"
# The packaged binaries start (libkvpool found through the package's RPATH layout).
"$work/root/usr/bin/kvpoolctl" --help >/dev/null || fail "packaged kvpoolctl --help"
"$work/root/usr/bin/kvpoold" --version >/dev/null || fail "packaged kvpoold --version"

# ---- cmake --install into a prefix ----
prefix=$work/prefix
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log"
grep -qxF "ExecStart=$prefix/bin/kvpoold --config $prefix/etc/kvpool/kvpoold.toml" \
  "$prefix/lib/systemd/system/kvpoold.service" || fail "installed kvpoold.service does not name $prefix"
for f in bin/kvpoold bin/kvpool-scheduler bin/kvpoolctl etc/kvpool/kvpoold.toml \
         etc/kvpool/kvpool-scheduler.toml lib/sysusers.d/kvpool.conf; do
  test -e "$prefix/$f" || fail "cmake --install lacks $f"
done
echo 'log-level = "debug"  # edited' >>"$prefix/etc/kvpool/kvpoold.toml"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install2.log"
grep -q '# edited' "$prefix/etc/kvpool/kvpoold.toml" || fail "a second install overwrote an edited config"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "deb and install tree complete: $(wc -l <"$work/files") paths"

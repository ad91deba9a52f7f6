#!/usr/bin/env bash
# Static checks of deploy/docker/Dockerfile (no Docker engine runs here or in CI):
#   - both stages are Debian 12; the build stage uses scripts/setup.sh and scripts/build.sh
#     and packs the .deb with CPack; the runtime stage installs that .deb;
#   - every COPY from the build context names a file or folder that exists;
#   - EXPOSEd ports are the sample configs' listen ports;
#   - the entrypoint's flags exist in kvpoold --help and its config path is one the package
#     installs; the image's uid is the one the Kubernetes manifests run as.
# Usage: dockerfile_test.sh SOURCE_DIR KVPOOLD
set -euo pipefail
source_dir=$1
kvpoold=$2
dockerfile=$source_dir/deploy/docker/Dockerfile
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

test -f "$dockerfile" || { echo "FAIL: no $dockerfile" >&2; exit 1; }
# Instructions with their continuation lines joined.
instructions=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile" | grep -vE '^\s*(#|$)')

mapfile -t bases < <(awk '$1 == "FROM" {print $2}' <<<"$instructions")
[ "${#bases[@]}" -ge 2 ] || fail "expected a build stage and a runtime stage, got ${#bases[@]}"
for b in "${bases[@]}"; do
  [[ $b == debian:12 || $b == debian:12-slim ]] || fail "base image $b is not Debian 12"
done
grep -q 'scripts/setup.sh' <<<"$instructions" || fail "build stage does not run scripts/setup.sh"
grep -q 'scripts/build.sh' <<<"$instructions" || fail "build stage does not run scripts/build.sh"
grep -qE 'cpack .*-G DEB' <<<"$instructions" || fail "build stage does not pack a .deb"
grep -qE 'apt-get install .*kvpool_\*\.deb' <<<"$instructions" || fail "runtime stage does not install the .deb"

# COPY sources from the context (not --from=stage) must exist.
while read -r -a words; do
  [ "${words[0]}" = COPY ] || continue
  [[ ${words[1]} == --from=* ]] && continue
  n=${#words[@]}
  for ((i = 1; i < n - 1; ++i)); do
    [[ ${words[i]} == --* ]] && continue
    src=${words[i]}
    [ "$src" = . ] || [ -e "$source_dir/$src" ] || fail "COPY source '$src' does not exist"
  done
done <<<"$instructions"

# Ports: the sample configs' listen ports.
exposed=$(awk '$1 == "EXPOSE" {for (i = 2; i <= NF; ++i) print $i}' <<<"$instructions" | sort -u)
for config in kvpoold kvpool-scheduler; do
  port=$(sed -nE 's/^listen = "[^"]*:([0-9]+)".*/\1/p' "$source_dir/deploy/$config.toml")
  [ -n "$port" ] || fail "deploy/$config.toml has no listen port"
  grep -qx "$port" <<<"$exposed" || fail "port $port of deploy/$config.toml is not EXPOSEd"
done

# Entrypoint and its flags.
grep -qxF 'ENTRYPOINT ["kvpoold"]' <<<"$instructions" || fail 'ENTRYPOINT is not ["kvpoold"]'
cmd=$(sed -nE 's/^CMD \[(.*)\]$/\1/p' <<<"$instructions" | tr -d '",')
known=$("$kvpoold" --help | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
for word in $cmd; do
  if [[ $word == --* ]]; then
    grep -qxF -- "$word" <<<"$known" || fail "CMD flag $word: kvpoold has no such flag"
  fi
done
grep -q -- '--config /etc/kvpool/kvpoold.toml' <<<"$cmd" ||
  fail "CMD does not read /etc/kvpool/kvpoold.toml (where the .deb puts the config)"

# The image's user is the one the manifests run as.
uid=$(sed -nE 's/.*useradd .*--uid ([0-9]+).*/\1/p' <<<"$instructions")
[ -n "$uid" ] || fail "no fixed uid for the kvpool user"
for manifest in "$source_dir"/deploy/kubernetes/kvpool*.yaml; do
  while read -r run_as; do
    [ "$run_as" = 0 ] || [ "$run_as" = "$uid" ] ||
      fail "$(basename "$manifest") runs as $run_as, the image's kvpool user is $uid"
  done < <(sed -nE 's/^\s*runAsUser: ([0-9]+).*/\1/p' "$manifest")
done

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "Dockerfile: Debian 12 stages, context paths, ports, entrypoint flags and uid consistent"

#!/usr/bin/env bash
# Builds the libFuzzer targets (ASan + UBSan, build-clang/) and runs each of them
# (docs/fuzzing.md).
#
#   scripts/fuzz.sh [--runs N | --time SECONDS] [TARGET...]
#
#   --runs N        each target executes N inputs after its seed corpus, with a fixed seed
#                   (what CI runs; default 2000)
#   --time SECONDS  each target runs this long, growing its corpus in
#                   $KVPOOL_FUZZ_CORPUS/<target> (default: <build>/fuzz-corpus), kept between runs
#   TARGET          prompt_tree, global_index, trace, options, mempool_service,
#                   scheduler_service (default: all)
#
# The seed corpus and dictionaries are generated (kvpool_fuzz_seeds) into <build>/fuzz-seeds on
# every run. A crash stops nothing: every target runs, then the script fails and lists the
# crashing inputs (<build>/fuzz-artifacts/<target>-crash-*). Reproduce one with
#   build-clang/tests/fuzz/<target>_fuzzer <file>
set -euo pipefail
cd "$(dirname "$0")/.."

runs=2000
time_s=""
targets=()
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --time) time_s=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(prompt_tree global_index trace options mempool_service scheduler_service)
((${#targets[@]})) || targets=("${all[@]}")

build=${KVPOOL_ASAN_BUILD_DIR:-build-clang}
bash scripts/clang-build.sh asan kvpool_fuzz_seeds "${targets[@]/%/_fuzzer}"

seeds=$build/fuzz-seeds
artifacts=$build/fuzz-artifacts
logs=$build/fuzz-logs
rm -rf "$seeds"
mkdir -p "$artifacts" "$logs"
"$build/tests/fuzz/kvpool_fuzz_seeds" "$seeds"

# Every sanitizer report is fatal; leaks are checked by libFuzzer per input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

failed=()
printf '%-18s %10s %8s %9s  %s\n' target executed seconds exec/s result
for t in "${targets[@]}"; do
  args=(-print_final_stats=1 -artifact_prefix="$artifacts/$t-" -rss_limit_mb=2048 -timeout=30)
  [[ -f $seeds/$t.dict ]] && args+=(-dict="$seeds/$t.dict")
  # --help / --version print to stdout: close the target's stdout.
  [[ $t == options ]] && args+=(-close_fd_mask=1)
  if [[ -n $time_s ]]; then
    corpus=${KVPOOL_FUZZ_CORPUS:-$build/fuzz-corpus}/$t
    mkdir -p "$corpus"
    args+=(-max_total_time="$time_s" "$corpus" "$seeds/$t")
  else
    # A fresh corpus directory per CI run: the same inputs every time.
    corpus=$build/fuzz-ci-corpus/$t
    rm -rf "$corpus"
    mkdir -p "$corpus"
    args+=(-runs="$runs" -seed=1 -max_total_time=300 "$corpus" "$seeds/$t")
  fi
  start=$(date +%s)
  result=ok
  if ! "$build/tests/fuzz/${t}_fuzzer" "${args[@]}" >"$logs/$t.log" 2>&1; then
    result=CRASH
    failed+=("$t")
  fi
  seconds=$(($(date +%s) - start))
  executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  printf '%-18s %10s %8s %9s  %s\n' "$t" "${executed:-?}" "$seconds" \
    "$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)" "$result"
done

if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "---- $t: last lines of $logs/$t.log"
    tail -n 40 "$logs/$t.log"
  done
  echo "fuzz.sh: crashing inputs:" >&2
  ls -1 "$artifacts" >&2
  exit 1
fi

#!/usr/bin/env bash
# The sanitizer stages of CI (.ci/run runs them after scripts/test.sh); docs/development.md
# "Sanitizer builds" explains them.
#
#   scripts/ci-sanitizers.sh [asan] [fuzz] [tsan]     (default: all three, in this order)
#
#   asan  build-clang/ (clang-14, ASan + UBSan): every ctest test but the install and deploy
#         checks (they test packaging, not code), once.
#   fuzz  the same build: every libFuzzer target for a short fixed number of runs
#         (scripts/fuzz.sh --runs $KVPOOL_FUZZ_RUNS, default 2000).
#   tsan  build-tsan/ (clang-14, TSan): the concurrency-heavy tests (TSAN_TESTS below), the
#         daemons they start built with TSan too, with Debian's abseil made visible to TSan
#         (tests/tsan/absl_tsan_preload.cc).
#
# Every sanitizer report fails the stage (halt_on_error). Reports of every process, the tests'
# daemons included, go to <build>/sanitizer-logs/ and are printed at the end of the stage.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
((${#stages[@]})) || stages=(asan fuzz tsan)
asan_dir=${KVPOOL_ASAN_BUILD_DIR:-build-clang}
tsan_dir=${KVPOOL_TSAN_BUILD_DIR:-build-tsan}

# The tests that exercise our threads hardest, as a ctest -R regex (names as
# catch_discover_tests makes them): the TransferEngine's progress threads and concurrent
# submitters; MemPool under concurrent callers (unit); and, with kvpoold and kvpool-scheduler
# themselves built with TSan, the data plane clients (concurrent Puts and Gets, a client killed
# mid-Put, a node restarted under its clients), node-to-node transfers (a peer killed
# mid-transfer), concurrent clients of one node and a frozen client holding leases. About 2
# minutes on the 2-core CI machine once built.
# Not here: the `kvpool-bench soak` test. Under it TSan reports the event publisher's queue,
# which is only touched under its mutex, as racing with the publisher's absl::Condition: the
# shim cannot yet present every abseil-internal Condition evaluation as holding the mutex
# (tests/tsan/absl_tsan_preload.cc).
# Also the SSD tier's lock-free paths: write-behind, SwapOut's writes and Match's promotion racing with
# publishes, deletes and demotions (with RocksDB's own internals suppressed, see tsan.supp).
TSAN_TESTS='^(TransferEngine|DataPlane|NodeTransfer|MemPool: concurrent|kvpoold: concurrent clients|Fault: a frozen client|Write-behind: under concurrent|SwapOut under concurrent|Tiers: concurrent matches|Tiers: reads stay)'
TSAN_TARGETS=(kvpool_transport_tests kvpool_unit_tests kvpool_integration_tests
              kvpool_storage_tests)

stage_start=0
begin() {
  stage_start=$(date +%s)
  echo
  echo "==== ci-sanitizers: $1 ($(date -u +%H:%M:%S) UTC)"
}
end() {
  echo "==== ci-sanitizers: $1 done in $(($(date +%s) - stage_start)) s"
}

# Fails when any process wrote a sanitizer report to $1, and prints the reports.
check_reports() {
  local dir=$1
  if compgen -G "$dir/*" >/dev/null; then
    echo "---- sanitizer reports in $dir:"
    for f in "$dir"/*; do
      echo "---- $f"
      cat "$f"
    done
    return 1
  fi
}

run_ctest() {
  local dir=$1
  shift
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" --timeout 600 "$@"
}

for stage in "${stages[@]}"; do
  case $stage in
    asan)
      begin "ASan + UBSan build and tests"
      # Everything: every test binary ctest knows must exist, and the fuzzers come along.
      bash scripts/clang-build.sh asan
      logs=$PWD/$asan_dir/sanitizer-logs
      rm -rf "$logs" && mkdir -p "$logs"
      status=0
      ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:log_path=$logs/asan \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan \
        run_ctest "$asan_dir" -LE 'install|deploy' || status=$?
      check_reports "$logs" || status=1
      end "asan"
      ((status == 0)) || exit "$status"
      ;;
    fuzz)
      begin "libFuzzer targets, ${KVPOOL_FUZZ_RUNS:-2000} runs each"
      bash scripts/fuzz.sh --runs "${KVPOOL_FUZZ_RUNS:-2000}"
      end "fuzz"
      ;;
    tsan)
      begin "TSan build and the concurrency-heavy tests"
      bash scripts/clang-build.sh tsan "${TSAN_TARGETS[@]}"
      # Debian's abseil is not built with TSan: tests/tsan/absl_tsan_preload.cc tells TSan about
      # its locks. Its lock events are approximate (a lock taken inside abseil may be unseen),
      # hence no mutex-misuse or lock-order reports; data races are what this stage looks for.
      clang++-14 -std=c++20 -shared -fPIC -O1 -o "$tsan_dir/libabsl_tsan_preload.so" \
        tests/tsan/absl_tsan_preload.cc -ldl
      logs=$PWD/$tsan_dir/sanitizer-logs
      rm -rf "$logs" && mkdir -p "$logs"
      status=0
      LD_PRELOAD=$PWD/$tsan_dir/libabsl_tsan_preload.so \
      TSAN_OPTIONS="halt_on_error=1:report_mutex_bugs=0:detect_deadlocks=0:suppressions=$PWD/scripts/tsan.supp:log_path=$logs/tsan" \
        run_ctest "$tsan_dir" -R "$TSAN_TESTS" || status=$?
      check_reports "$logs" || status=1
      end "tsan"
      ((status == 0)) || exit "$status"
      ;;
    *) echo "ci-sanitizers.sh: unknown stage '$stage' (asan, fuzz, tsan)" >&2; exit 2 ;;
  esac
done

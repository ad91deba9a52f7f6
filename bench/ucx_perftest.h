// Running UCX's own benchmark, `ucx_perftest` (Debian: ucx-utils), as the reference that
// `kvpool-bench transfer` compares kvpool's data plane with: a server and a client process on
// loopback, both restricted to one UCX transport through UCX_TLS.
//
// Units, as ucx_perftest 1.13 prints them (src/tools/perf/perftest.c, print_progress): latency
// columns are seconds * 1e6 (microseconds); bandwidth columns are bytes/s / (1024 * 1024), so its
// "MB/s" is MiB/s; ping-pong tests (ucp_put_lat) report half the round trip (libperf.c divides
// by 2), the stream tests (ucp_put_bw, ucp_get) the time per iteration.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/status.h"

namespace kvpool::bench {

/// One result line of ucx_perftest. A plain value type.
struct PerftestResult {
  /// Iterations the line covers (cumulative since the start of the measured phase). Default: 0.
  uint64_t iterations = 0;
  /// Median per-iteration time of the recent iterations, in microseconds (the "50.0%ile" or
  /// "typical" column); halved for ping-pong tests (one-way latency). Default: 0.
  double typical_latency_us = 0;
  /// Average time per iteration over the last report interval, in microseconds. Default: 0.
  double average_latency_us = 0;
  /// Average time per iteration since the start, in microseconds. Default: 0.
  double overall_latency_us = 0;
  /// Bandwidth over the last report interval, in MiB/s (ucx_perftest's "MB/s"). Default: 0.
  double average_bandwidth_mib_per_s = 0;
  /// Bandwidth since the start, in MiB/s (ucx_perftest's "MB/s"). Default: 0.
  double overall_bandwidth_mib_per_s = 0;
  /// Messages per second over the last interval and since the start. Default: 0.
  double average_message_rate = 0;
  double overall_message_rate = 0;
  /// True for the final line; false when only a progress line ("[thread 0] ...") was found,
  /// e.g. because the run was stopped before it finished. Default: false.
  bool final = false;

  /// overall_bandwidth_mib_per_s in bytes per second.
  double overall_bandwidth_bytes_per_s() const {
    return overall_bandwidth_mib_per_s * 1024.0 * 1024.0;
  }
};

/// Parses ucx_perftest's standard output: the CSV format (-v) or the plain table, with or
/// without -f. Returns the final result line, else the last progress line (final = false).
/// NOT_FOUND when there is no result line at all (the run failed before measuring). Pure.
Result<PerftestResult> ParsePerftestOutput(std::string_view output);

/// One ucx_perftest measurement. A plain value type.
struct PerftestRun {
  /// ucx_perftest binary. Default: "/usr/bin/ucx_perftest".
  std::string binary = "/usr/bin/ucx_perftest";
  /// Test name as ucx_perftest -t takes it: "ucp_put_bw", "ucp_get", "ucp_put_lat", ...
  /// Required.
  std::string test;
  /// Message size in bytes (-s). Required.
  uint64_t size_bytes = 0;
  /// Measured iterations (-n). Default: 10000.
  uint64_t iterations = 10'000;
  /// Warm-up iterations (-w). Default: 1000.
  uint64_t warmup_iterations = 1'000;
  /// Outstanding operations (-O); 0 leaves ucx_perftest's default. Default: 0.
  uint32_t max_outstanding = 0;
  /// UCX_TLS of both processes ("tcp", "shm", ...). Required.
  std::string tls;
  /// How long the client may run before it is stopped, in milliseconds; a stopped run still
  /// returns its last progress line (final = false). Default: 30000.
  int timeout_ms = 30'000;
  /// Directory for the two processes' output files; created if missing. Required.
  std::string work_dir;
};

/// What a run measured and how it was started.
struct PerftestOutcome {
  PerftestResult result;
  /// The two command lines, as a shell would run them (environment included).
  std::string server_command;
  std::string client_command;
  /// True when the client was stopped at PerftestRun::timeout_ms.
  bool timed_out = false;
};

/// Starts `ucx_perftest -p PORT` (server) on a free loopback port, waits until it listens,
/// runs the client against 127.0.0.1 and parses its output. Both processes are stopped on every
/// path. INVALID_ARGUMENT for a run without test, size or tls; NOT_FOUND when the binary does not
/// exist; UNAVAILABLE when a process fails (the message names its output file and last line).
/// Not thread-safe with other runs (they would race for ports only; safe in practice).
Result<PerftestOutcome> RunPerftest(const PerftestRun& run);

}  // namespace kvpool::bench

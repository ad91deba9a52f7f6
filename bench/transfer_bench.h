// `kvpool-bench transfer`: kvpool's client data plane (kvpool::DataPlane Put/Get) against a real
// kvpoold on loopback, next to `ucx_perftest` on the same transport and block size in the same
// run, and a single-thread memcpy as the physical ceiling. See docs/benchmarks.md, "transfer".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"

namespace kvpool::bench {

struct TransferBenchOptions {
  /// kvpoold binary, started once per transport with --ucx-tls. Default: next to kvpool-bench.
  std::string kvpoold_binary;
  /// UCX transports to measure, as UCX_TLS names them. Default: {"tcp", "shm"}.
  std::vector<std::string> tls = {"tcp", "shm"};
  /// Block sizes in bytes (each a positive multiple of 64); the smallest is also the latency
  /// size. Default: 16 KiB, 256 KiB, 1 MiB.
  std::vector<uint64_t> block_sizes_bytes = {16u << 10, 256u << 10, 1u << 20};
  /// Blocks per DataPlane::Put/Get call in the bandwidth runs. Default: 16.
  uint32_t batch_blocks = 16;
  /// Batches kept in flight in the bandwidth runs (the next ones are submitted before the
  /// oldest is waited for); each in-flight batch uses its own blocks and buffer range. Default: 2.
  uint32_t inflight_batches = 2;
  /// Time budget of one bandwidth measurement (one direction, one size, one access pattern or
  /// one ucx_perftest run), in seconds. Default: 0.5.
  double seconds = 0.5;
  /// Repetitions of each bandwidth measurement, kvpool and ucx_perftest interleaved; the best
  /// of each is reported (all in JSON). Default: 2.
  uint32_t repeat = 2;
  /// Byte budget of one bandwidth point: a point stops at whichever budget is reached first.
  /// Default: 4 GiB.
  uint64_t max_bytes = 4ull << 30;
  /// Timed one-block Puts and Gets each in the latency runs (and ucx_perftest iterations there).
  /// Default: 5000.
  uint32_t latency_iterations = 5'000;
  /// Blocks and block size of the batched Get (one KV cache). Default: 64 blocks of 256 KiB.
  uint32_t big_batch_blocks = 64;
  uint64_t big_batch_block_bytes = 256u << 10;
  /// Align the local buffer to 2 MiB and ask for transparent huge pages (madvise). Default: true.
  bool huge_local_buffer = true;
  /// ucx_perftest binary; empty skips the reference (reported unavailable). Default:
  /// "/usr/bin/ucx_perftest".
  std::string ucx_perftest_binary = "/usr/bin/ucx_perftest";
};

/// Runs the benchmark: progress on stderr; a table per transport on stdout unless `quiet`.
/// Returns every number as JSON, or the error that stopped kvpool's own part (kvpoold not
/// starting, a refused or failed transfer). A failing ucx_perftest only warns: its numbers are
/// then null.
Result<nlohmann::json> RunTransferBench(const TransferBenchOptions& options, bool quiet);

}  // namespace kvpool::bench

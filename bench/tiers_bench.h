// `kvpool-bench tiers`: the SSD tier in-process (MemPool + BlockStore in one directory):
// demotion and promotion throughput against dd (and an in-process pwrite/pread) of the same
// bytes in the same directory, Match latency of a DISK hit against a HOST hit, allocations that
// evict with and without write-behind, a HOST hit's latency while other calls promote or swap
// out, and recovery time per stored block.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"

namespace kvpool::bench {

struct TiersBenchOptions {
  /// Directory on the disk to measure (a fresh subdirectory is made and removed). Default:
  /// "/tmp".
  std::string dir = "/tmp";
  /// Bytes per block. Default: 1 MiB.
  uint64_t block_bytes = 1ull << 20;
  /// Bytes moved by the throughput runs (rounded down to whole blocks). Default: 256 MiB.
  uint64_t total_bytes = 256ull << 20;
  /// Match repetitions per tier for the latency run. Default: 200.
  uint32_t match_rounds = 200;
  /// Allocations per run of the pressure measurement (with and without write-behind).
  /// Default: 200.
  uint32_t pressure_rounds = 200;
  /// Blocks stored for the recovery run (512-byte blocks). Default: 100000.
  uint32_t recovery_blocks = 100'000;
};

/// Runs the benchmark; prints a table to stdout unless `quiet`; returns the results as JSON.
Result<nlohmann::json> RunTiersBench(const TiersBenchOptions& options, bool quiet);

}  // namespace kvpool::bench

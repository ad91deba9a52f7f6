// `kvpool-bench control`: MemPool control-plane latency through gRPC on loopback against a real
// kvpoold process.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"

namespace kvpool::bench {

struct ControlBenchOptions {
  /// kvpoold to use; empty: start one from `kvpoold_binary`. Default: empty.
  std::string address;
  /// kvpoold binary to start when no address is given. Default: next to kvpool-bench.
  std::string kvpoold_binary;
  /// Tokens per Insert/Match prompt. Default: 4096.
  uint32_t prompt_tokens = 4096;
  /// Tokens per block. Default: 16.
  uint32_t block_tokens = 16;
  /// Timed Insert and Match calls each. Default: 500.
  uint32_t iterations = 500;
  /// Blocks per batched AllocMem/FreeMem. Default: 4096.
  uint32_t batch_blocks = 4096;
  /// Batched AllocMem/FreeMem rounds. Default: 50.
  uint32_t batch_rounds = 50;
};

/// Runs the benchmark; prints a table unless `quiet`; returns JSON or the error that stopped it.
Result<nlohmann::json> RunControlBench(const ControlBenchOptions& options, bool quiet);

}  // namespace kvpool::bench

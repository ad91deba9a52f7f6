// `kvpool-bench index`: in-process Insert and Match of long prompts in the prompt tree and in a
// whole node (MemPool), plus index memory per cached block.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvpool::bench {

struct IndexBenchOptions {
  /// Prompt lengths in tokens. Default: 4K, 32K, 128K.
  std::vector<uint32_t> prompt_tokens = {4096, 32768, 131072};
  /// Tokens per block. Default: 16.
  uint32_t block_tokens = 16;
  /// Distinct prompts inserted per length (they share a 1K-token system prompt). Default: 32.
  uint32_t prompts = 32;
  /// Match repetitions per prompt. Default: 20.
  uint32_t match_rounds = 20;
};

/// Runs the benchmark, prints a table to stdout unless `quiet`, returns the results as JSON.
nlohmann::json RunIndexBench(const IndexBenchOptions& options, bool quiet);

}  // namespace kvpool::bench

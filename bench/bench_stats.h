// Small statistics helpers for kvpool-bench.
#pragma once

#include <chrono>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvpool::bench {

/// Percentiles of a sample, in the sample's unit.
struct Summary {
  size_t n = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};

/// Summarises `samples` (sorted in place). An empty sample gives all zeros.
Summary Summarize(std::vector<double>& samples);
nlohmann::json ToJson(const Summary& s);

using BenchClock = std::chrono::steady_clock;
inline double NanosSince(BenchClock::time_point start) {
  return std::chrono::duration<double, std::nano>(BenchClock::now() - start).count();
}

}  // namespace kvpool::bench

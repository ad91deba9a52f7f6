#include "bench/replay/replay_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvpool::bench {

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(index, values.size() - 1)];
}

nlohmann::json PercentilesMs(const std::vector<double>& seconds) {
  const double mean =
      seconds.empty() ? 0 : std::accumulate(seconds.begin(), seconds.end(), 0.0) / seconds.size();
  return {{"p50", 1000 * Percentile(seconds, 50)},
          {"p90", 1000 * Percentile(seconds, 90)},
          {"p99", 1000 * Percentile(seconds, 99)},
          {"mean", 1000 * mean}};
}

double CoefficientOfVariation(const std::vector<double>& values) {
  if (values.empty()) return 0;
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  if (mean == 0) return 0;
  double var = 0;
  for (double v : values) var += (v - mean) * (v - mean);
  return std::sqrt(var / values.size()) / mean;
}

nlohmann::json LatencySet::Json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [op, v] : samples_) {
    out[op] = {{"count", v.size()}, {"p50", Percentile(v, 50)}, {"p99", Percentile(v, 99)}};
  }
  return out;
}

}  // namespace kvpool::bench

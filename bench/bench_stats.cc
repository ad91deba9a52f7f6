#include "bench/bench_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvpool::bench {

Summary Summarize(std::vector<double>& samples) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.n = samples.size();
  auto pct = [&](double p) {
    const size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(s.n))) - 1;
    return samples[std::min(i, s.n - 1)];
  };
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
  s.p50 = pct(0.50);
  s.p90 = pct(0.90);
  s.p99 = pct(0.99);
  s.min = samples.front();
  s.max = samples.back();
  return s;
}

nlohmann::json ToJson(const Summary& s) {
  return {{"n", s.n},     {"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90},
          {"p99", s.p99}, {"min", s.min},   {"max", s.max}};
}

}  // namespace kvpool::bench

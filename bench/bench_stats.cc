#include "bench/bench_stats.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvpool::bench {

uint64_t ReadTicks() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<uint64_t>(BenchClock::now().time_since_epoch().count());
#endif
}

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

nlohmann::json PercentilesMs(std::vector<double> seconds) {
  const Summary s = Summarize(seconds);
  return {{"p50", 1000 * s.p50}, {"p90", 1000 * s.p90}, {"p99", 1000 * s.p99},
          {"mean", 1000 * s.mean}};
}

double CoefficientOfVariation(const std::vector<double>& values) {
  if (values.empty()) return 0;
  const double mean =
      std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  if (mean == 0) return 0;
  double var = 0;
  for (double v : values) var += (v - mean) * (v - mean);
  return std::sqrt(var / static_cast<double>(values.size())) / mean;
}

nlohmann::json LatencySet::Json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [op, v] : samples_) {
    std::vector<double> sorted = v;
    const Summary s = Summarize(sorted);
    out[op] = {{"count", s.n}, {"p50", s.p50}, {"p99", s.p99}};
  }
  return out;
}

}  // namespace kvpool::bench

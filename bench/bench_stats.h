// Small statistics helpers for kvpool-bench.
#pragma once

#include <chrono>
#include <map>
#include <string>
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

/// {"p50","p90","p99","mean"} of `seconds`, in milliseconds (the same nearest-rank percentiles).
nlohmann::json PercentilesMs(std::vector<double> seconds);
/// Standard deviation over mean (population); 0 for no values or a mean of 0.
double CoefficientOfVariation(const std::vector<double>& values);

/// Latency samples in microseconds, by operation name. Not thread-safe.
class LatencySet {
 public:
  void Add(const std::string& op, double micros) { samples_[op].push_back(micros); }
  /// {op: {"count", "p50", "p99"}} in microseconds.
  nlohmann::json Json() const;

 private:
  std::map<std::string, std::vector<double>> samples_;
};

using BenchClock = std::chrono::steady_clock;
inline double NanosSince(BenchClock::time_point start) {
  return std::chrono::duration<double, std::nano>(BenchClock::now() - start).count();
}
inline double MicrosSince(BenchClock::time_point start) { return NanosSince(start) / 1e3; }

/// A cheap tick counter for timing sub-microsecond calls one by one: the x86 time-stamp counter
/// (a read costs ~10 ns in this project's VMs, steady_clock ~30 ns), which is also what
/// ucx_perftest times its iterations with; steady_clock elsewhere. Ticks become nanoseconds
/// with TickTimer::NanosPerTick, measured against steady_clock over the timed loop itself.
uint64_t ReadTicks();

/// Measures the tick rate over a span of ticks and steady_clock time.
class TickTimer {
 public:
  TickTimer() : wall_start_(BenchClock::now()), ticks_start_(ReadTicks()) {}
  /// Nanoseconds per tick since construction (call after the timed loop).
  double NanosPerTick() const {
    const uint64_t ticks = ReadTicks() - ticks_start_;
    const double nanos = NanosSince(wall_start_);
    return ticks == 0 ? 1.0 : nanos / static_cast<double>(ticks);
  }

 private:
  BenchClock::time_point wall_start_;
  uint64_t ticks_start_;
};

}  // namespace kvpool::bench

// Small statistics helpers of the replay: percentiles, coefficient of variation, and named
// latency samples of pool operations.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvpool::bench {

/// The p-th percentile (0..100) of `values` by nearest rank; 0 for no values.
double Percentile(std::vector<double> values, double p);
/// {"p50","p90","p99","mean"} of `seconds`, in milliseconds.
nlohmann::json PercentilesMs(const std::vector<double>& seconds);
/// Standard deviation over mean (population); 0 when the mean is 0.
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

}  // namespace kvpool::bench

// A fixed-size latency histogram for long runs: memory stays constant whatever the run's length
// (a one-hour soak would otherwise keep tens of millions of samples).
#pragma once

#include <array>
#include <cstdint>

namespace kvpool::bench {

/// Latencies in microseconds in log-spaced buckets, 8 per power of two (about 9 % wide), from
/// 1 us to about 18 minutes; smaller values count as 1 us, larger ones in the last bucket.
/// Percentiles are the geometric middle of their bucket. Not thread-safe: one per thread, merged
/// at the end.
class LatencyHistogram {
 public:
  void Add(double micros);
  /// Adds every sample of `other`.
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  /// The `q` quantile (0..1, nearest rank) in microseconds; 0 when empty.
  double Percentile(double q) const;
  /// Largest sample, exact, in microseconds.
  double max_micros() const { return max_micros_; }

 private:
  static constexpr int kPerOctave = 8;
  static constexpr int kBuckets = 30 * kPerOctave;
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  double max_micros_ = 0;
};

}  // namespace kvpool::bench

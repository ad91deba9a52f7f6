#include "bench/soak/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace kvpool::bench {

void LatencyHistogram::Add(double micros) {
  const double v = std::max(micros, 1.0);
  const int bucket = std::min(kBuckets - 1, static_cast<int>(std::log2(v) * kPerOctave));
  ++buckets_[static_cast<size_t>(bucket)];
  ++count_;
  max_micros_ = std::max(max_micros_, micros);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_micros_ = std::max(max_micros_, other.max_micros_);
}

double LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const double mid = std::exp2((static_cast<double>(i) + 0.5) / kPerOctave);
      return std::min(mid, max_micros_);
    }
  }
  return max_micros_;
}

}  // namespace kvpool::bench

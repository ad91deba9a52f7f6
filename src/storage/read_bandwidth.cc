#include "storage/read_bandwidth.h"

#include <algorithm>
#include <cmath>

namespace kvpool::storage {

ReadBandwidthEstimate::ReadBandwidthEstimate(uint64_t half_life_bytes)
    : half_life_bytes_(static_cast<double>(half_life_bytes > 0 ? half_life_bytes
                                                                : kDefaultHalfLifeBytes)) {}

void ReadBandwidthEstimate::Record(uint64_t bytes, double seconds) {
  if (bytes == 0 || !std::isfinite(seconds) || seconds < 0) return;
  const double b = static_cast<double>(bytes);
  const double decay = std::exp2(-b / half_life_bytes_);
  weighted_bytes_ = weighted_bytes_ * decay + b;
  weighted_seconds_ = weighted_seconds_ * decay + std::max(seconds, 1e-9);
  recorded_bytes_ += bytes;
}

double ReadBandwidthEstimate::bytes_per_s() const {
  return weighted_seconds_ > 0 ? weighted_bytes_ / weighted_seconds_ : 0;
}

}  // namespace kvpool::storage

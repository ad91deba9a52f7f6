// A running estimate of a tier's read bandwidth from timed reads (docs/storage.md "Measured
// read bandwidth").
#pragma once

#include <cstdint>

namespace kvpool::storage {

/// Bytes over seconds of the reads recorded, both summed with an exponential decay by bytes: a
/// read's weight (its bytes and its seconds) halves with every `half_life_bytes` read after it.
/// The figure therefore follows the last few hundred MiB of reads (a change of disk, of load, of
/// page-cache hit rate): it is the bandwidth those reads achieved, their bytes over their time.
///
/// Not thread-safe: a value type; BlockStore guards its own under a mutex.
class ReadBandwidthEstimate {
 public:
  /// Default half-life: 256 MiB.
  static constexpr uint64_t kDefaultHalfLifeBytes = 256ull << 20;

  /// `half_life_bytes` must be > 0 (0 is taken as the default).
  explicit ReadBandwidthEstimate(uint64_t half_life_bytes = kDefaultHalfLifeBytes);

  /// Records a read of `bytes` that took `seconds`. Reads of 0 bytes, and negative or not
  /// finite durations, are ignored; a duration of 0 counts as one nanosecond.
  void Record(uint64_t bytes, double seconds);
  /// The estimate in bytes per second; 0 until a read was recorded.
  double bytes_per_s() const;
  /// Bytes recorded so far (no decay).
  uint64_t recorded_bytes() const { return recorded_bytes_; }

 private:
  double half_life_bytes_;
  double weighted_bytes_ = 0;
  double weighted_seconds_ = 0;
  uint64_t recorded_bytes_ = 0;
};

}  // namespace kvpool::storage

// A small, portable pseudo-random generator for the workload library. Not API.
//
// The standard distributions (std::uniform_int_distribution, std::exponential_distribution) are
// not specified bit for bit, so the same seed may give different traces with different standard
// libraries. Traces must be reproducible everywhere, so the draws are written out here.
#pragma once

#include <cmath>
#include <cstdint>

namespace kvpool::workload::internal {

// __extension__ keeps -Wpedantic quiet about the GCC/Clang 128-bit integer.
__extension__ typedef unsigned __int128 Uint128;

/// SplitMix64's finaliser: a bijective, well-mixing 64-bit hash.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// SplitMix64 (Steele, Lea, Flood 2014): 64-bit state, passes BigCrush, trivially portable.
/// Not thread-safe; a value type.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  /// The next 64 uniform bits.
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  /// Uniform in [0, 1) with 53 bits of precision.
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  /// Uniform integer in [lo, hi] (inclusive); lo <= hi. Lemire's multiply-shift: the bias is at
  /// most (hi - lo + 1) / 2^64, far below anything a trace could show.
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    const uint64_t span = hi - lo + 1;  // 0 means the full 64-bit range
    if (span == 0) return Next();
    return lo + static_cast<uint64_t>((static_cast<Uint128>(Next()) * span) >> 64);
  }

  /// True with probability p.
  bool Bernoulli(double p) { return NextDouble() < p; }

  /// Exponentially distributed with the given mean (> 0).
  double Exponential(double mean) { return -mean * std::log1p(-NextDouble()); }

 private:
  uint64_t state_;
};

}  // namespace kvpool::workload::internal

// Time sources. Code that needs the time takes a Clock* so tests can drive it by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kvpool {

/// A monotonic millisecond clock. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Milliseconds since an arbitrary fixed point; never decreases.
  virtual int64_t NowMs() const = 0;
};

/// std::chrono::steady_clock. Thread-safe.
class SteadyClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  /// A process-wide instance.
  static SteadyClock* Default() {
    static SteadyClock clock;
    return &clock;
  }
};

/// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'000'000) : now_ms_(start_ms) {}
  // Relaxed ordering: the value is the only shared state, and readers need no other memory to
  // be published with it.
  int64_t NowMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  void AdvanceMs(int64_t delta_ms) { now_ms_.fetch_add(delta_ms, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace kvpool

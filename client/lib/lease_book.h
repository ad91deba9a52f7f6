// The client side of lease enforcement on the data plane. One-sided RMA runs no code on the
// node, so the node cannot refuse a Put or Get itself: libkvpool refuses, before any byte moves,
// transfers on blocks that its Client holds no live lease for (docs/transport.md "Who checks
// what").
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"
#include "kvpool/types.h"

namespace kvpool::client_internal {

/// CLOCK_MONOTONIC_COARSE as a std::chrono clock. A read costs a few nanoseconds where
/// steady_clock costs tens in a VM, which matters on a path that checks leases on every Put and
/// Get; it lags real time by up to resolution() (a scheduler tick).
struct CoarseMonotonicClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<CoarseMonotonicClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept;
  /// How far now() may lag real time (clock_getres).
  static duration resolution() noexcept;
};

/// What one Client's leases hold, as the node reported it: per block, the leases that hold it,
/// whether it may be written (allocated, not yet inserted) and its location.
///
/// Deadlines are kept with this process's monotonic clock from the moment a response arrived, so
/// the book never trusts a lease longer than the node does (the node started counting first).
/// The clock is the coarse one: each deadline is shortened by its resolution, so a reading that
/// lags real time never makes an expired lease look live.
///
/// Thread-safe. Shared (shared_ptr) by a Client and the DataPlanes connected through it.
class LeaseBook {
 public:
  using Clock = CoarseMonotonicClock;

  /// `sweep_interval`: expired leases are forgotten at most this often (each sweep is
  /// O(leases)). Default: 1 s.
  explicit LeaseBook(Clock::duration sweep_interval = std::chrono::seconds(1))
      : sweep_interval_(sweep_interval) {}

  /// AllocMem: `blocks` are writable under `lease_id` for `ttl_ms`.
  void OnAllocated(uint64_t lease_id, uint32_t ttl_ms, std::span<const BlockLocation> blocks);
  /// Match with a lease: `blocks` are readable under `lease_id` for `ttl_ms`.
  void OnPinned(uint64_t lease_id, uint32_t ttl_ms, std::span<const BlockLocation> blocks);
  /// Insert: `allocated` (the request's handles) are no longer writable; with keep_pinned,
  /// `result` (the cached block per position) is readable under the lease, at the locations
  /// of the allocated blocks they replace or keep.
  void OnInserted(uint64_t lease_id, std::span<const BlockHandle> allocated,
                  std::span<const BlockHandle> result, bool keep_pinned);
  /// FreeMem: `handles` left the lease.
  void OnFreed(uint64_t lease_id, std::span<const BlockHandle> handles);
  /// Renew: new time left.
  void OnRenewed(uint64_t lease_id, uint32_t ttl_ms);
  /// Release, or a lease the node reports unknown or expired.
  void OnReleased(uint64_t lease_id);

  /// Forgets every lease (the node restarted: they died with it).
  void Clear();

  /// OK when every block is held by a live lease of this book, at the offset and length the
  /// node gave for it, and (for_write) is still writable. FAILED_PRECONDITION otherwise, naming
  /// the first block that is not and why.
  Status Check(std::span<const BlockLocation> blocks, bool for_write);
  /// Any live lease holding `handle`, or 0.
  uint64_t LeaseOf(BlockHandle handle);
  /// A live lease under which `handle` is allocated and writable, or 0.
  uint64_t WritableLeaseOf(BlockHandle handle);

  /// Leases and blocks tracked (for tests).
  size_t lease_count();
  size_t block_count();

 private:
  struct Holder {
    uint64_t lease_id = 0;
    bool writable = false;
  };
  struct BlockEntry {
    uint64_t offset = 0;
    uint64_t length = 0;
    std::vector<Holder> holders;
  };
  struct LeaseEntry {
    Clock::time_point deadline;
    std::vector<BlockHandle> handles;
  };

  void AddLocked(uint64_t lease_id, uint32_t ttl_ms, std::span<const BlockLocation> blocks,
                 bool writable) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropHolderLocked(BlockHandle handle, uint64_t lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLeaseLocked(uint64_t lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets expired leases now and then, so a client that lets leases expire stays small.
  void MaybeSweepLocked(Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool LiveLocked(uint64_t lease_id, Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock::duration sweep_interval_;
  absl::Mutex mu_;
  absl::flat_hash_map<BlockHandle, BlockEntry> blocks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, LeaseEntry> leases_ ABSL_GUARDED_BY(mu_);
  Clock::time_point next_sweep_ ABSL_GUARDED_BY(mu_){};
};

}  // namespace kvpool::client_internal

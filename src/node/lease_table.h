// Leases of one node: pins with deadlines.
#pragma once

#include <cstdint>
#include <deque>
#include <queue>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "kvpool/types.h"

namespace kvpool::node {

/// One lease. `allocated` lists blocks handed out by AllocMem under this lease and `pinned` the
/// cached blocks it pins (a block can appear in both after an Insert with keep_pinned). The
/// lists are not pruned when a block is freed or inserted: the owner re-checks each handle when
/// the lease ends, and handles carry generations, so stale entries are skipped safely.
struct LeaseRecord {
  uint64_t id = 0;
  uint32_t namespace_id = 0;
  int64_t deadline_ms = 0;
  std::vector<BlockHandle> allocated;
  std::vector<BlockHandle> pinned;
};

/// The active leases, ordered by deadline for expiry. Ids are random 64-bit values (never 0), so
/// a client cannot guess another client's lease.
///
/// Not thread-safe; owned by MemPool under its lock.
class LeaseTable {
 public:
  LeaseTable();

  /// Starts a lease of `namespace_id` that ends at `deadline_ms`.
  LeaseRecord& Create(uint32_t namespace_id, int64_t deadline_ms);
  /// The active lease `id`, or nullptr.
  LeaseRecord* Find(uint64_t id);
  /// True if `id` expired recently (the last few thousand expiries are remembered, so an error
  /// can say "expired" rather than "unknown").
  bool RecentlyExpired(uint64_t id) const;
  /// Moves the deadline of an active lease.
  void Renew(LeaseRecord& lease, int64_t deadline_ms);
  /// Ends a lease and returns its record.
  LeaseRecord Remove(uint64_t id);
  /// Ends every lease whose deadline is <= now_ms, appending their records to `*expired`.
  void TakeExpired(int64_t now_ms, std::vector<LeaseRecord>* expired);
  /// The earliest deadline among active leases, or INT64_MAX.
  int64_t NextDeadlineMs();

  size_t size() const { return leases_.size(); }

 private:
  struct HeapItem {
    int64_t deadline_ms;
    uint64_t id;
    bool operator>(const HeapItem& o) const { return deadline_ms > o.deadline_ms; }
  };
  void RememberExpired(uint64_t id);

  absl::flat_hash_map<uint64_t, LeaseRecord> leases_;
  // Lazy min-heap: a renewed lease leaves its old item behind; items whose deadline no longer
  // matches the lease are skipped when they surface.
  std::priority_queue<HeapItem, std::vector<HeapItem>, std::greater<HeapItem>> heap_;
  std::mt19937_64 rng_;
  absl::flat_hash_set<uint64_t> recently_expired_;
  std::deque<uint64_t> expired_order_;
};

}  // namespace kvpool::node

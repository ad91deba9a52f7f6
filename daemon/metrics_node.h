// kvpoold's pool metrics, read from MemPool::GetStats (and the data plane's pool memory) at
// scrape time.
#pragma once

#include <prometheus/collectable.h>

#include <functional>
#include <memory>

#include "kvpool/types.h"

namespace kvpool::daemon {

/// A Collectable that calls `stats` on every scrape and turns it into kvpool_pool_*,
/// kvpool_leases_* and kvpool_namespace_* families (docs/monitoring.md). `stats` must be
/// thread-safe (MemPool::GetStats is) and outlive the collectable. Thread-safe.
std::shared_ptr<prometheus::Collectable> MakePoolCollector(std::function<PoolStats()> stats);

/// The pool's slabs on the data plane (transport::PoolMemory): each its own UCX allocation.
struct SlabCounts {
  uint64_t in_use = 0;      ///< slabs a namespace holds now
  uint64_t idle = 0;        ///< slabs given back, still mapped for their namespace
  uint64_t maps = 0;        ///< slabs mapped since start
  uint64_t reuses = 0;      ///< idle slabs claimed again by their namespace since start
  uint64_t unmaps = 0;      ///< idle slabs unmapped for another namespace since start
  uint64_t lost_bytes = 0;  ///< pool bytes another mapping of the process holds now
};

/// A Collectable for kvpool_pool_slabs and kvpool_pool_slab_*: calls `counts` on every scrape.
/// `counts` must be thread-safe and outlive the collectable.
std::shared_ptr<prometheus::Collectable> MakeSlabCollector(std::function<SlabCounts()> counts);

/// A Collectable for kvpool_node_draining: 1 while `draining` returns true (kvpoolctl drain),
/// else 0. `draining` must be thread-safe and outlive the collectable.
std::shared_ptr<prometheus::Collectable> MakeDrainCollector(std::function<bool()> draining);

}  // namespace kvpool::daemon

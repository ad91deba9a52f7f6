// kvpoold's pool metrics, read from MemPool::GetStats at scrape time.
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

/// A Collectable for kvpool_node_draining: 1 while `draining` returns true (kvpoolctl drain),
/// else 0. `draining` must be thread-safe and outlive the collectable.
std::shared_ptr<prometheus::Collectable> MakeDrainCollector(std::function<bool()> draining);

}  // namespace kvpool::daemon

// kvpool-scheduler's metrics, read from SchedulerService::Stats at scrape time.
#pragma once

#include <prometheus/collectable.h>

#include <functional>
#include <memory>

#include "daemon/scheduler_service.h"

namespace kvpool::daemon {

/// A Collectable that calls `stats` on every scrape and turns it into kvpool_scheduler_*
/// families (docs/monitoring.md). `stats` must be thread-safe and outlive the collectable.
/// Thread-safe.
std::shared_ptr<prometheus::Collectable> MakeSchedulerCollector(
    std::function<SchedulerServiceStats()> stats);

}  // namespace kvpool::daemon

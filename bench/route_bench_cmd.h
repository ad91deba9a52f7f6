// `kvpool-bench route`: the global scheduler's Route over a large in-process index.
#pragma once

#include <nlohmann/json.hpp>

#include "scheduler/route_bench.h"

namespace kvpool::bench {

/// Runs scheduler::RunRouteBench, prints a table unless `quiet`, returns the result as JSON.
nlohmann::json RunRouteBenchCommand(const scheduler::RouteBenchOptions& options, bool quiet);

}  // namespace kvpool::bench

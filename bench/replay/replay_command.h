// Command-line wiring of `kvpool-bench replay` and `kvpool-bench cluster up|down|status`.
#pragma once

#include <string>

#include "bench/replay/replay.h"
#include "launch/local_cluster.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvpool::bench {

/// Adds replay's options to `sub`, bound to `*opts` (borrowed; must outlive parsing).
void AddReplayOptions(CLI::App* sub, ReplayOptions* opts);

/// Adds `up`, `down` and `status` under `sub`, bound to `*opts` (its work_dir, nodes, capacity
/// and transports). Returns nothing; the caller checks which one parsed by name.
void AddClusterOptions(CLI::App* sub, launch::LocalClusterOptions* opts);

}  // namespace kvpool::bench

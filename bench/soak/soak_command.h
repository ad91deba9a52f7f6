// Command-line wiring of `kvpool-bench soak`.
#pragma once

#include "bench/soak/soak.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvpool::bench {

/// Adds soak's options to `sub`, bound to `*opts` (borrowed; must outlive parsing).
void AddSoakOptions(CLI::App* sub, SoakOptions* opts);

/// Runs the soak and prints its tables (or JSON with `json`). Exit code: 0 when the run is OK,
/// 3 when the accounting differs or an unexpected error occurred, 1 when it could not run.
int RunSoakCommand(const SoakOptions& opts, bool json);

}  // namespace kvpool::bench
